"""LAS-AWP, PreActResNet-18, Tiny-ImageNet (LAS-AT, Jia et al. 2022).
LearnedLAS as the authors' LAS-AWP code runs it (`LAS_AWP/LAS_AWP_train_TinyImageNet.py` at ee756b7): eps 7..15/255,
step 2..5/255, steps 8..15 (README command); reward clamp(CE, 0, 10) + 8·robust acc + 2·clean acc of the
look-ahead; θ every k = 10 steps (line 176) by SGD lr 1e-4 without momentum, gradient norm clipped at 1.0, its LR following the
target's schedule; the training perturbation clipped to the 8/255 ball (line 699: `final_clip=True`).
On AT-AWP (γ 0.01) from 0-based epoch 10 (`--awp-warmup 10`, lines 175, 722), with 64×64 inputs and
no augmentation at all (`New_ImageNet_get_loaders_64`: ToTensor only, `TinyImageNet_utils.py:148-166`).
Schedule as the script: 200 epochs, piecewise lr 0.1 → 0.01 at half → 0.001 at three quarters. Left out:
the script also clips the target's gradient norm at 10 (line 742), which the trainer does not do.

Reported (LAS-AT paper, Table 4, row LAS-AWP(ours), PreActResNet18, Tiny ImageNet): clean 45.26, AA
18.42.

Run:  robustzoo train recipes/las_awp_prn18_tinyimagenet.py --data-dir DIR
"""
from robustzoo import AWP, PGDAT, Piecewise, Recipe, Reported
from robustzoo.policies import LearnedLAS


def recipe() -> Recipe:
    return Recipe(
        name="las-awp-prn18-tinyimagenet",
        model="cifar_preact_resnet18",
        dataset="tiny_imagenet",
        val_size=1000,
        policy=LearnedLAS(eps_options=[e / 255 for e in range(7, 16)],
                          step_options=[s / 255 for s in range(2, 6)], steps_options=range(8, 16),
                          alpha=8.0, beta=2.0, update_every=10, follow_target_lr=True),
        defense=AWP(PGDAT(), gamma=0.01, warmup=10),
        eps=8 / 255,
        final_clip=True,  # the code trains on delta clamped to 8/255
        augment=False,  # the Tiny-ImageNet loader has no crop or flip
        epochs=200,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule=Piecewise(milestones=(0.5, 0.75), gamma=0.1),
        reported=Reported("LAS-AT paper, Table 4, LAS-AWP (PreActResNet-18, Tiny ImageNet)", clean=45.26, aa=18.42),
        description=__doc__,
    )
