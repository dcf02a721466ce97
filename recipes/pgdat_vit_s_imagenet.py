"""PGD-AT, ViT-S (DeiT-S), ImageNet, L∞ 4/255: the ViT-S recipe of Singh et al. (2023), "Revisiting
Adversarial Training for ImageNet" (RobustBench `Singh2023Revisiting_ViT-S-ConvStem`), at its code's settings
(`nmndeep/revisiting-at` @d7166c0).

AdamW betas (0.9, 0.95), weight decay 0.05 off 1-D parameters and biases (`main.py:161, 433-459`), lr 1e-3
(`run_train.sh:14`), linear warmup over 20 epochs then cosine to 5e-6 (`main.py:230-243, 956-974`), 300
epochs, mixed precision, weight average 0.9999 every step (`main.py:882-885, 996-997`); training attack
APGD-CE with 2 iterations at ε 4/255, first step 2ε, no random start, in eval mode (`run_train.sh:14`,
`main.py:178, 279`, `autopgd_train_clean.py:134-169`); timm augmentation: RandAugment rand-m9-mstd0.5-inc1,
bicubic RandomResizedCrop (0.08, 1), flip (`parserr.py:17-40`); evaluation Resize(256, bicubic) +
CenterCrop(224) (`dataset_convnext_like.py:95-102`).

Differences: the model is timm's `deit_small_patch16_224` without the ConvStem of the RobustBench entry
(four 3×3 stride-2 convolutions in place of the patch embedding; not a timm model name); the attack is
PGD-2 with step 2ε, not APGD's adaptive step; Mixup 0.8 / CutMix 1.0 with label smoothing 0.1 and random
erasing 0.25 are left out (the defenses take hard labels); batch 512 (the code's is 80 per GPU × GPUs, a
count it does not record) at the script's lr.

Reported (RobustBench `Singh2023Revisiting_ViT-S-ConvStem`, its 5,000-image ImageNet test subset; the
ConvStem model, so expect this recipe below it): clean 72.56, AA 48.08.

Run:  robustzoo train recipes/pgdat_vit_s_imagenet.py --data-dir DIR --amp auto
"""
from robustzoo import EMA, PGDAT, Cosine, Fixed, Recipe, Reported
from robustzoo.data import Stream


def recipe() -> Recipe:
    return Recipe(
        name="pgdat-vit-s-imagenet",
        model="deit_small_patch16_224",
        dataset="imagenet",
        stream=Stream(image_size=224, interpolation="bicubic", auto_augment="rand-m9-mstd0.5-inc1", crop_pct=0.875),
        val_size=0,
        policy=Fixed(eps=4 / 255, step_size=8 / 255, steps=2, start_scale=0.0),
        defense=PGDAT(),
        eps=4 / 255,
        epochs=300,
        batch_size=512,
        optimizer="adamw",
        betas=(0.9, 0.95),
        lr=1e-3,
        weight_decay=0.05,
        decay_norm_and_bias=False,
        schedule=Cosine(warmup=20 / 300, floor=5e-6 / 1e-3),
        ema=EMA(decay=0.9999),
        val_steps=2,
        reported=Reported("RobustBench ImageNet L∞ 4/255, Singh2023Revisiting_ViT-S-ConvStem (Singh et al. 2023)",
                          clean=72.56, aa=48.08),
        description=__doc__,
    )
