"""LAS-PGD-AT, WRN-34-10, CIFAR-10 (LAS-AT, Jia et al. 2022).

LearnedLAS over eps 3..15/255, step 1..6/255, steps 3..15 (LAS-AT paper, Sec. 4.1); α = 2, β = 4;
strategy network CIFAR ResNet-18, SGD lr 1e-3; θ updated every k = 40 target steps (Table 1); on PGD-AT
in the base settings of Rice et al. (the paper trains 'with the same setting as the base models'): 200
epochs, lr ×0.1 at 100 and 150, weight decay 5e-4, early stopping on a 1,000-image held-out split.

Reported (LAS-AT paper, Table 2, row LAS-AT(ours), WRN34-10): clean 86.23, PGD-20 56.49, C&W 55.73, AA
53.58.

Run:  robustzoo train recipes/las_at_wrn34_cifar10.py --data-dir DIR
"""
from robustzoo import PGDAT, Piecewise, Recipe, Reported
from robustzoo.policies import LearnedLAS


def recipe() -> Recipe:
    return Recipe(
        name="las-at-wrn34-cifar10",
        model="cifar_wrn_34_10",
        dataset="cifar10",
        val_size=1000,
        policy=LearnedLAS(),  # the paper's ranges and settings are the defaults
        defense=PGDAT(),
        eps=8 / 255,
        epochs=200,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule=Piecewise(milestones=(0.5, 0.75), gamma=0.1),
        reported=Reported("LAS-AT paper, Table 2, LAS-AT (WRN-34-10)", clean=86.23, pgd20=56.49, cw=55.73, aa=53.58),
        description=__doc__,
    )
