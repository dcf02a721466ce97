"""LAS-PGD-AT, ResNet-18, CIFAR-10 (LAS-AT, Jia et al. 2022, Tables 1 and 6): `las_at_wrn34_cifar10.py` on a
ResNet-18, with the strategy net updated every k = 40 steps.

The ablation (Table 6) and the k sweep (Table 1) train ResNet-18 with LAS-PGD-AT; the paper gives no other
setting, so this recipe keeps the LAS-PGD code's (`LAS_PGD_AT/LAS_AT_train_cifar10.py` at ee756b7, whose
`--model ResNet18` builds the same ResNet-18, lines 451-458) and sets k = 40: "Considering AT efficiency, we
set k to 40" (las-at.md:218), and Table 6's full row equals Table 1's k = 40 column (the code's default is
k = 20: `las_at_resnet18_cifar10_k20.py`). The three losses: L1 the target's CE on the adversarial batch,
L2 the look-ahead's robust accuracy (weight alpha = 4, the code's R2_param), L3 its clean accuracy (beta = 2,
R3_param); the ablation rows zero alpha and/or beta (`las_at_resnet18_cifar10_l1*.py`).

Reported (LAS-AT paper, Table 6, L1+L2+L3, ResNet18, CIFAR-10; PGD-10, not PGD-20): clean 82.3, PGD-10
54.29, AA 49.89.

Run:  robustzoo reproduce recipes/las_at_resnet18_cifar10.py --data-dir DIR
"""
from pathlib import Path

from robustzoo import Recipe, Reported, load_recipe
from robustzoo.policies import LearnedLAS


def recipe() -> Recipe:
    base, _ = load_recipe(Path(__file__).with_name("las_at_wrn34_cifar10.py"))
    return base.replace(name="las-at-resnet18-cifar10", model="cifar_resnet18", policy=LearnedLAS(update_every=40),
                        reported=Reported("LAS-AT paper, Table 6, L1+L2+L3 (ResNet-18)", clean=82.3, pgd10=54.29,
                                          aa=49.89),
                        description=__doc__)
