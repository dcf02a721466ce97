"""LAS-PGD-AT ablation, ResNet-18, CIFAR-10 (LAS-AT Table 6, row L1): `las_at_resnet18_cifar10.py` with the look-ahead terms off (alpha = beta = 0).

In the code the ablation is the reward weights set to zero (`--R2_param` / `--R3_param`,
`LAS_PGD_AT/LAS_AT_train_cifar10.py:60-65, 401-402` at ee756b7).

Reported (LAS-AT paper, Table 6, row L1, ResNet18; PGD-10, not PGD-20): clean 81.83, PGD-10 53.88, AA 49.06.

Run:  robustzoo reproduce recipes/las_at_resnet18_cifar10_l1.py --data-dir DIR
"""
from pathlib import Path

from robustzoo import Recipe, Reported, load_recipe
from robustzoo.policies import LearnedLAS


def recipe() -> Recipe:
    base, _ = load_recipe(Path(__file__).with_name("las_at_resnet18_cifar10.py"))
    return base.replace(name="las-at-resnet18-cifar10-l1", policy=LearnedLAS(update_every=40, alpha=0.0, beta=0.0),
                        reported=Reported("LAS-AT paper, Table 6, L1 (ResNet-18)", clean=81.83, pgd10=53.88, aa=49.06),
                        description=__doc__)
