"""MART, WRN-34-10, CIFAR-10: Wang et al. (2020), "Improving adversarial robustness requires revisiting
misclassified examples".

As `YisenWang/MART` @99b19ea `train_wideresnet.py` (the latest training script) with `mart.py` @2514b7e:
β = 6 (line 41); the inner attack CE-PGD from x + 0.001·N(0, 1), 10 steps of 0.007, eps 0.031, the model in
eval mode (`mart.py:17-29`: `MART()` and the default attack mode); SGD lr 0.1, momentum 0.9, weight decay 7e-4
(lines 27-32, changed from 2e-4 in 99b19ea), batch 128, 90 epochs (line 25), lr ×0.1 from the code's 1-based
epoch 75 and ×0.01 from 90 (lines 109-119: here 0-based 74 and 89); crop + flip; a checkpoint per epoch and
no held-out selection: the last epoch is the model (`val_size=0`).

Reported (LAS-AT paper, Table 2, row "MART", WRN34-10, CIFAR-10): clean 84.17, PGD-10 58.98, PGD-20 58.56,
C&W 54.58, AA 51.10.

Run:  robustzoo reproduce recipes/mart_wrn34_cifar10.py --data-dir DIR
"""
from robustzoo import MART, Fixed, Piecewise, Recipe, Reported


def recipe() -> Recipe:
    return Recipe(
        name="mart-wrn34-cifar10",
        model="cifar_wrn_34_10",
        dataset="cifar10",
        val_size=0,
        policy=Fixed(eps=0.031, step_size=0.007, steps=10),
        defense=MART(beta=6.0),
        eps=8 / 255,
        epochs=90,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=7e-4,
        schedule=Piecewise(milestones=(74 / 90, 89 / 90), gamma=0.1),
        reported=Reported("LAS-AT paper, Table 2, MART (WRN-34-10)", clean=84.17, pgd10=58.98, pgd20=58.56, cw=54.58,
                          aa=51.1),
        description=__doc__,
    )
