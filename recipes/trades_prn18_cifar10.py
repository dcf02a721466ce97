"""TRADES (Zhang et al. 2019), β = 6, KL inner maximization (10 steps of 2/255, eps 8/255, start x +
0.001·N(0, 1)); PreActResNet-18, CIFAR-10, in the settings of Rice et al. as the SAAT paper runs it.

SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, 200 epochs, lr ×0.1 at epochs 100 and 150;
crop(4) + flip; held-out 1,000 images for the best checkpoint.

Reported (SAAT paper, Table 2, CIFAR10 PR-18) row "TRADES": clean 81.09, PGD-20 52.70, AA 48.91 (best
checkpoint).

Run:  robustzoo train recipes/trades_prn18_cifar10.py --data-dir DIR
"""
from robustzoo import Fixed, Piecewise, Recipe, Reported, TRADES


def recipe() -> Recipe:
    return Recipe(
        name="trades-prn18-cifar10",
        model="cifar_preact_resnet18",
        dataset="cifar10",
        val_size=1000,
        policy=Fixed(eps=8 / 255, step_size=2 / 255, steps=10),
        defense=TRADES(beta=6.0),
        eps=8 / 255,
        epochs=200,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule=Piecewise(milestones=(0.5, 0.75), gamma=0.1),
        reported=Reported("SAAT paper, Table 2, TRADES (PreActResNet-18, best checkpoint)", clean=81.09, pgd20=52.7, aa=48.91),
        description=__doc__,
    )
