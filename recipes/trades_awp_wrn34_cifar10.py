"""TRADES-AWP, WRN-34-10, CIFAR-10: Wu et al. (2020), "Adversarial Weight Perturbation Helps Robust
Generalization", on TRADES.

Settings of the authors' trades_AWP/train_trades_cifar.py: β = 6, KL inner maximization (10 steps of
2/255, eps 8/255, start x + 0.001·N(0, 1)); AWP γ = 0.005 from the 10th epoch on (9 warmup epochs);
SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, 200 epochs, lr ×0.1 at epochs 100 and 150.

Reported: the AWP paper's TRADES-AWP WRN-34-10 row, listed on RobustBench as `Wu2020Adversarial`:
clean 85.36, AA 56.17. That paper is not in ../shared/papers: check the numbers there before citing.

Run:  robustzoo train recipes/trades_awp_wrn34_cifar10.py --data-dir DIR
"""
from robustzoo import AWP, Fixed, Piecewise, Recipe, Reported, TRADES


def recipe() -> Recipe:
    return Recipe(
        name="trades-awp-wrn34-cifar10",
        model="cifar_wrn_34_10",
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
        reported=Reported("AWP paper (Wu et al. 2020) via RobustBench Wu2020Adversarial; not in ../shared/papers", clean=85.36, aa=56.17),
        description=__doc__,
    )
