"""LAS-AWP, WRN-34-20, CIFAR-100 (LAS-AT, Jia et al. 2022, Table 5): `las_awp_wrn34_cifar100.py` on WRN-34-20.

The paper states no other change ("We also adopt WRN-34-20 for our method"), and the authors' code has no
option for it (`LAS_AWP/LAS_AWP_train_cifar100.py` at ee756b7 builds `WideResNet()` = WRN-34-10, lines
539-541): this recipe assumes the same script and README settings with `widen_factor=20`.

Reported (LAS-AT paper, Table 5, LAS-AWP, WRN34-20, CIFAR-100): clean 67.31, AA 31.92.

Run:  robustzoo reproduce recipes/las_awp_wrn34_20_cifar100.py --data-dir DIR
"""
from pathlib import Path

from robustzoo import Recipe, Reported, load_recipe


def recipe() -> Recipe:
    base, _ = load_recipe(Path(__file__).with_name("las_awp_wrn34_cifar100.py"))
    return base.replace(name="las-awp-wrn34-20-cifar100", model="cifar_wrn_34_20",
                        reported=Reported("LAS-AT paper, Table 5, LAS-AWP (WRN-34-20, CIFAR-100)", clean=67.31, aa=31.92),
                        description=__doc__)
