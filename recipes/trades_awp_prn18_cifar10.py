"""TRADES-AWP (Wu et al. 2020): TRADES β = 6 (10 KL steps of 2/255, eps 8/255), AWP γ = 0.005 from
the 10th epoch on; PreActResNet-18, CIFAR-10, in the settings of the authors' trades_AWP code.

SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, 200 epochs, lr ×0.1 at epochs 100 and 150
(1-based, as that code counts); crop(4) + flip; held-out 1,000 images for the best checkpoint.

Reported (SAAT paper, Table 2, CIFAR10 PR-18) row "AWP-TRADES": clean 81.64, PGD-20 55.52, AA 51.38
(best checkpoint).

Run:  robustzoo train recipes/trades_awp_prn18_cifar10.py --data-dir DIR
"""
from robustzoo import AWP, Fixed, Piecewise, Recipe, Reported, TRADES


def recipe() -> Recipe:
    return Recipe(
        name="trades-awp-prn18-cifar10",
        model="cifar_preact_resnet18",
        dataset="cifar10",
        val_size=1000,
        policy=Fixed(eps=8 / 255, step_size=2 / 255, steps=10),
        defense=AWP(TRADES(beta=6.0), gamma=0.005, warmup=9),  # the code's 1-based `epoch >= 10`
        eps=8 / 255,
        epochs=200,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule=Piecewise(milestones=(99 / 200, 149 / 200), gamma=0.1),  # 1-based epochs 100, 150
        reported=Reported("SAAT paper, Table 2, AWP-TRADES (PreActResNet-18, best checkpoint)", clean=81.64, pgd20=55.52, aa=51.38),
        description=__doc__,
    )
