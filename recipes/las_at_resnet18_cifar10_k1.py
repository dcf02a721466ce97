"""LAS-PGD-AT k sweep, ResNet-18, CIFAR-10 (LAS-AT Table 1, k = 1): `las_at_resnet18_cifar10.py` with the
strategy net updated every 1 target steps (the code's `--interval_num`, `LAS_PGD_AT/LAS_AT_train_cifar10.py:52,
596` at ee756b7: one strategy update per k target updates).

Reported (LAS-AT paper, Table 1, k = 1, ResNet18; clean and PGD-10 only): clean 82.88, PGD-10 53.71.

Run:  robustzoo reproduce recipes/las_at_resnet18_cifar10_k1.py --data-dir DIR
"""
from pathlib import Path

from robustzoo import Recipe, Reported, load_recipe
from robustzoo.policies import LearnedLAS


def recipe() -> Recipe:
    base, _ = load_recipe(Path(__file__).with_name("las_at_resnet18_cifar10.py"))
    return base.replace(name="las-at-resnet18-cifar10-k1", policy=LearnedLAS(update_every=1),
                        reported=Reported("LAS-AT paper, Table 1, k = 1 (ResNet-18)", clean=82.88, pgd10=53.71),
                        description=__doc__)
