"""PGD-AT, ResNet-50, ImageNet, L∞ 4/255: Salman et al. (2020), "Do Adversarially Robust ImageNet Models
Transfer Better?" (RobustBench `Salman2020Do_R50`), trained as the MadryLab `robustness` library does.

The library (`MadryLab/robustness` @a954124): SGD momentum 0.9, weight decay 1e-4 on every parameter
(`defaults.py:26-31, 71-75`, `train.py:82-83`); the attack in eval mode (`attacker.py:309-315`) without a
random start (`defaults.py:92-98`); training augmentation RandomResizedCrop(224) + flip + ColorJitter(0.1,
0.1, 0.1) + PCA lighting (`data_augmentation.py:40-51`), evaluation Resize(256) + CenterCrop(224) (:57-61),
normalization inside the model (`datasets.py:193-201`). Salman et al.'s run, as the maintainers describe it
(MadryLab/robustness issue #76): 3 PGD steps, batch 512, 90 epochs; step size 2ε/3 and lr 0.1 ×0.1 every
30 epochs are the paper's appendix as recalled (not checked against it here).

Differences: timm's ColorJitter(0.1) without the PCA lighting; no held-out split (the last epoch is kept,
`best` = last).

Reported (RobustBench `model_info/imagenet/Linf/Salman2020Do_R50.json`, its 5,000-image ImageNet test subset):
clean 64.02, AA 34.96.

Data: ImageNet as train/<wnid>/*.JPEG and val/<wnid>/*.JPEG (streamed); evaluation on RobustBench's subset.
Run:  robustzoo train recipes/pgdat_resnet50_imagenet.py --data-dir DIR --amp auto  (then evaluate --attack aa)
"""
from robustzoo import PGDAT, Fixed, Piecewise, Recipe, Reported
from robustzoo.data import Stream


def recipe() -> Recipe:
    return Recipe(
        name="pgdat-resnet50-imagenet",
        model="resnet50",  # timm's ResNet-50 (torchvision's architecture)
        dataset="imagenet",
        stream=Stream(image_size=224, color_jitter=0.1, crop_pct=0.875),
        val_size=0,
        policy=Fixed(eps=4 / 255, step_size=(2 / 3) * 4 / 255, steps=3, start_scale=0.0),  # from x
        defense=PGDAT(),
        eps=4 / 255,
        epochs=90,
        batch_size=512,
        lr=0.1,
        momentum=0.9,
        weight_decay=1e-4,
        schedule=Piecewise(milestones=(1 / 3, 2 / 3), gamma=0.1),
        val_steps=3,
        reported=Reported("RobustBench ImageNet L∞ 4/255, Salman2020Do_R50 (Salman et al. 2020)", clean=64.02,
                          aa=34.96),
        description=__doc__,
    )
