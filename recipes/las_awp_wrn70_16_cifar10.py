"""LAS-AWP, WRN-70-16, CIFAR-10 (LAS-AT, Jia et al. 2022, Table 5): `las_awp_wrn34.py` on a wider, deeper net.

The paper states no other change ("We also adopt WRN-70-16 for our method"), and the authors' code has no
option for it (`LAS_AWP/LAS_AWP_train_cifar10.py` at ee756b7 always builds `WideResNet()` = WRN-34-10,
lines 648-650; the `--width-factor` argument is unused): this recipe assumes the same script and README
settings with `WideResNet(depth=70, widen_factor=16)` for the target (and so the AWP proxy).

Reported (LAS-AT paper, Table 5, LAS-AWP, WRN70-16, CIFAR-10): clean 85.66, AA 57.61 (the slides say 57.86).

Run:  robustzoo reproduce recipes/las_awp_wrn70_16_cifar10.py --data-dir DIR
"""
from pathlib import Path

from robustzoo import Recipe, Reported, load_recipe


def recipe() -> Recipe:
    base, _ = load_recipe(Path(__file__).with_name("las_awp_wrn34.py"))
    return base.replace(name="las-awp-wrn70-16-cifar10", model="cifar_wrn_70_16",
                        reported=Reported("LAS-AT paper, Table 5, LAS-AWP (WRN-70-16, CIFAR-10)", clean=85.66, aa=57.61),
                        description=__doc__)
