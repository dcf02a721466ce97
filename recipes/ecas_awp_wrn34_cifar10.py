"""ECAS-AWP, WRN-34-10, CIFAR-10 (ECAS, "Entropy-Guided Cyclical Adversarial Strategy").

CyclicEntropyECAS: eps cycles over 6..15/255 once per epoch (Eq. 2; the AWP eps space), per-sample
entropy routing with h_high 2.274 / h_low 1.3 (the authors' CIFAR-10 values), 10 PGD steps of 2·eps/10;
on AT-AWP (γ 0.01) in its base settings: 200 epochs, lr ×0.1 at 100 and 150, weight decay 5e-4,
1,000-image held-out split.

Reported (ECAS paper, Table 4, row "ECAS-AWP (ours)", WRN34-10): clean 88.17, PGD-20 59.10,
C&W 57.50, AA 54.54.

Run:  robustzoo train recipes/ecas_awp_wrn34_cifar10.py --data-dir DIR
"""
from robustzoo import AWP, PGDAT, Piecewise, Recipe, Reported
from robustzoo.policies import CyclicEntropyECAS


def recipe() -> Recipe:
    return Recipe(
        name="ecas-awp-wrn34-cifar10",
        model="cifar_wrn_34_10",
        dataset="cifar10",
        val_size=1000,
        policy=CyclicEntropyECAS(eps_space=[e / 255 for e in range(6, 16)], scheduler="cyclic",
                                 h_high=2.274, h_low=1.3, steps=10),
        defense=AWP(PGDAT(), gamma=0.01),
        eps=8 / 255,
        final_clip=True,  # ECAS-AWP trains on delta clamped to 8/255 (AWP/train_awp_cifar10_entropy.py:562)
        epochs=200,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule=Piecewise(milestones=(0.5, 0.75), gamma=0.1),
        reported=Reported("ECAS paper, Table 4, ECAS-AWP (WRN-34-10)", clean=88.17, pgd20=59.1, cw=57.5, aa=54.54),
        description=__doc__,
    )
