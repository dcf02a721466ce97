"""LAS-TRADES, WRN-34-10, CIFAR-10 (LAS-AT, Jia et al. 2022).

LearnedLAS over eps 3..15/255, step 1..6/255, steps 3..15 (LAS-AT paper, Sec. 4.1); α = 2, β = 4;
strategy network CIFAR ResNet-18, SGD lr 1e-3; θ updated every k = 40 target steps (Table 1), plus a
per-sample TRADES β head over 4..8 (the paper does not list the β options: an assumption to check
against the authors' code); on TRADES in its original settings: 76 epochs, lr ×0.1 for the last two,
weight decay 2e-4, last checkpoint.

Reported (LAS-AT paper, Table 2, row LAS-TRADES(ours), WRN34-10): clean 85.24, PGD-20 57.07, C&W 55.45,
AA 54.15.

Run:  robustzoo train recipes/las_trades_wrn34_cifar10.py --data-dir DIR
"""
from robustzoo import Piecewise, Recipe, Reported, TRADES
from robustzoo.policies import LearnedLAS


def recipe() -> Recipe:
    return Recipe(
        name="las-trades-wrn34-cifar10",
        model="cifar_wrn_34_10",
        dataset="cifar10",
        val_size=0,
        policy=LearnedLAS(beta_options=(4.0, 5.0, 6.0, 7.0, 8.0)),
        defense=TRADES(beta=6.0),
        eps=8 / 255,
        epochs=76,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=2e-4,
        schedule=Piecewise(milestones=(74 / 76,), gamma=0.1),
        reported=Reported("LAS-AT paper, Table 2, LAS-TRADES (WRN-34-10)", clean=85.24, pgd20=57.07, cw=55.45, aa=54.15),
        description=__doc__,
    )
