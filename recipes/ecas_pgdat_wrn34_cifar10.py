"""ECAS-PGD-AT, WRN-34-10, CIFAR-10 (ECAS, "Entropy-Guided Cyclical Adversarial Strategy").

CyclicEntropyECAS: eps cycles over 3..12/255 once per epoch (Eq. 2), per-sample entropy routing with
h_high 2.274 / h_low 1.3 (the authors' CIFAR-10 values), 10 PGD steps of 2·eps/10 (the authors' code);
on PGD-AT in the base settings of Rice et al. as the LAS-AT code runs them: 200 epochs, lr ×0.1 at 100
and 150, weight decay 5e-4, early stopping on a 1,000-image held-out split.

Reported (ECAS paper, Table 1, row "+ Cyclic + entropy", WRN34-10): clean 86.32, PGD-20 56.80,
C&W 55.89, AA 53.43.

Run:  robustzoo train recipes/ecas_pgdat_wrn34_cifar10.py --data-dir DIR
"""
from robustzoo import PGDAT, Piecewise, Recipe, Reported
from robustzoo.policies import CyclicEntropyECAS


def recipe() -> Recipe:
    return Recipe(
        name="ecas-pgdat-wrn34-cifar10",
        model="cifar_wrn_34_10",
        dataset="cifar10",
        val_size=1000,
        policy=CyclicEntropyECAS(eps_space=[e / 255 for e in range(3, 13)], scheduler="cyclic",
                                 h_high=2.274, h_low=1.3, steps=10),
        defense=PGDAT(true_prob=0.7),  # PGD-AT/train_pgd_cifar10_entropy.py:62-73, 318-320
        eps=8 / 255,
        epochs=200,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule=Piecewise(milestones=(0.5, 0.75), gamma=0.1),
        reported=Reported("ECAS paper, Table 1, + Cyclic + entropy (WRN-34-10)", clean=86.32, pgd20=56.8, cw=55.89, aa=53.43),
        description=__doc__,
    )
