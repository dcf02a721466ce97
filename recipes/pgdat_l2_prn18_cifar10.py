"""PGD-AT in L2, PreActResNet-18, CIFAR-10: Rice et al. (2020)'s L2 run, `pgdat_prn18_cifar10.py` in the L2
ball of radius 128/255.

As `locuslab/robust_overfitting` @c47a25c: the run's command line (`experiments/cifar10_standard_l2/
preactresnet18_0/output.log:1`): `--norm l_2 --epsilon 128 --pgd-alpha 15 --attack-iters 10 --restarts 1`,
200 epochs, lr 0.1 piecewise (×0.1 at 100 and 150), batch 128; the L2 attack steps along the normalized
gradient and renormalizes δ onto the ball (`train_cifar.py:110-113`), from a uniform direction at a radius
uniform in [0, ε] (`train_cifar.py:79-87`); everything else as the L∞ recipe (model in train mode during
the attack, weight decay 5e-4, early stopping on a held-out split here where the code used the test set).
ε = 128/255 ≈ 0.502 (the usual "0.5").

Reported (the code's committed log, `output.log:106`, best epoch 103, its PGD-10 at ε 128/255 with step
15/255 on the test set): clean 88.67, PGD-10 71.62; the final epoch (`output.log:202`): 88.90 / 68.24.
Our `pgd10` steps eps/4, so it is at least as strong.

Run:  robustzoo reproduce recipes/pgdat_l2_prn18_cifar10.py --data-dir DIR
"""
from pathlib import Path

from robustzoo import Fixed, Recipe, Reported, load_recipe


def recipe() -> Recipe:
    base, _ = load_recipe(Path(__file__).with_name("pgdat_prn18_cifar10.py"))
    return base.replace(name="pgdat-l2-prn18-cifar10", norm="L2", eps=128 / 255,
                        policy=Fixed(eps=128 / 255, step_size=15 / 255, steps=10, norm="L2"),
                        reported=Reported("Rice et al. 2020, robust_overfitting code log, L2 PreActResNet-18 best "
                                          "checkpoint (epoch 103), PGD-10 at eps 128/255", clean=88.67, pgd10=71.62),
                        description=__doc__)
