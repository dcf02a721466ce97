"""TRADES, WRN-34-10, CIFAR-10: the original settings of Zhang et al. (2019), "Theoretically Principled
Trade-off between Robustness and Accuracy".

β = 6; inner maximization of KL(f(x) ‖ f(x_adv)) from x + 0.001·N(0, 1), 10 steps of 0.007, eps 0.031;
SGD lr 0.1, momentum 0.9, weight decay 2e-4, batch 128, 76 epochs, lr ×0.1 for the last two (the code's 1-based `epoch >= 75`); the last
checkpoint is reported (no held-out split: `best.safetensors` is the last epoch).

Reported (LAS-AT paper, Table 2, row "TRADES", WRN34-10, CIFAR-10): clean 85.72, PGD-20 56.10,
C&W 53.87, AA 53.40.

Run:  robustzoo train recipes/trades_wrn34_cifar10.py --data-dir DIR
"""
from robustzoo import Fixed, Piecewise, Recipe, Reported, TRADES


def recipe() -> Recipe:
    return Recipe(
        name="trades-wrn34-cifar10",
        model="cifar_wrn_34_10",
        dataset="cifar10",
        val_size=0,
        policy=Fixed(eps=0.031, step_size=0.007, steps=10),
        defense=TRADES(beta=6.0),
        eps=8 / 255,
        epochs=76,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=2e-4,
        schedule=Piecewise(milestones=(74 / 76,), gamma=0.1),
        reported=Reported("LAS-AT paper, Table 2, TRADES (WRN-34-10)", clean=85.72, pgd20=56.1, cw=53.87, aa=53.4),
        description=__doc__,
    )
