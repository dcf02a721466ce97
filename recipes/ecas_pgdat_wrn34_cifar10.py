"""ECAS-PGD-AT, WRN-34-10, CIFAR-10 (ECAS, "Entropy-Guided Cyclical Adversarial Strategy").

CyclicEntropyECAS: eps cycles over 3..12/255 once per epoch (Eq. 2), per-sample entropy routing with
h_high 2.274 / h_low 1.3 (the authors' CIFAR-10 values), 10 PGD steps of 2·eps/10 (the authors' code);
on PGD-AT as `PGD-AT/train_pgd_cifar10_entropy.py` (ECAS @5b30080) runs it: 110 epochs, lr 0.1 ×0.1 from
0-based epoch 99 and again from 104 (MultiStepLR per iteration at `lr_steps*99/110`, `lr_steps*104/110`,
lines 221-229, 329; the paper: "decreases ten times after epoch 99"), weight decay 5e-4, label smoothing
0.7. The code keeps the best test-set PGD-10 epoch; this recipe selects on a 1,000-image held-out split.

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
        epochs=110,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule=Piecewise(milestones=(99 / 110, 104 / 110), gamma=0.1),  # 0-based epochs 99 and 104
        reported=Reported("ECAS paper, Table 1, + Cyclic + entropy (WRN-34-10)", clean=86.32, pgd20=56.8, cw=55.89, aa=53.43),
        description=__doc__,
    )
