"""LAS-AWP, WRN-34-10, CIFAR-10: the mission's example (LAS-AT, Jia et al. 2022).
LearnedLAS as the authors' LAS-AWP code runs it (`LAS_AWP/LAS_AWP_train_cifar10.py` at ee756b7): eps 7..15/255,
step 2..5/255, steps 8..16 (README command); reward clamp(CE, 0, 10) + 1·robust acc + 1·clean acc of the
look-ahead; θ every step (k = 1) by SGD lr 1e-4 without momentum, gradient norm clipped at 1.0, its LR following the
target's schedule; the training perturbation clipped to the 8/255 ball (line 815: `final_clip=True`).
On AT-AWP (γ 0.01) in
its base settings: 200 epochs, lr ×0.1 at 100 and 150, weight decay 5e-4, 1,000-image held-out split.

Reported (LAS-AT paper, Table 2, row LAS-AWP(ours), WRN34-10): clean 87.74, PGD-20 60.16, C&W 58.22, AA
55.52.

Run:  robustzoo train recipes/las_awp_wrn34.py --data-dir DIR
"""
from robustzoo import AWP, PGDAT, Piecewise, Recipe, Reported
from robustzoo.policies import LearnedLAS


def recipe() -> Recipe:
    return Recipe(
        name="las-awp-wrn34-cifar10",
        model="cifar_wrn_34_10",
        dataset="cifar10",
        val_size=1000,
        policy=LearnedLAS(eps_options=[e / 255 for e in range(7, 16)],
                          step_options=[s / 255 for s in range(2, 6)], steps_options=range(8, 17),
                          alpha=1.0, beta=1.0, update_every=1, follow_target_lr=True),
        defense=AWP(PGDAT(), gamma=0.01),
        eps=8 / 255,
        final_clip=True,  # the code trains on delta clamped to 8/255
        epochs=200,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule=Piecewise(milestones=(0.5, 0.75), gamma=0.1),
        reported=Reported("LAS-AT paper, Table 2, LAS-AWP (WRN-34-10)", clean=87.74, pgd20=60.16, cw=58.22, aa=55.52),
        description=__doc__,
    )
