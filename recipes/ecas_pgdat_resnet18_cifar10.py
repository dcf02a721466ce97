"""ECAS-PGD-AT, ResNet-18, CIFAR-10 (ECAS paper, Table 3): `ecas_pgdat_wrn34_cifar10.py` on a ResNet-18.

The ECAS code's `--model ResNet18` (`models/resnet.py:92-93` at 5b30080) is the standard CIFAR ResNet-18;
the paper: "tested on ResNet18 and WideResNet34-10 ... we use their original hyperparameters". Nothing
else changes.

Reported (ECAS paper, Table 3, ECAS-PGD-AT "+Ours", ResNet18; clean and AA only): clean 81.39, AA 49.94.

Run:  robustzoo reproduce recipes/ecas_pgdat_resnet18_cifar10.py --data-dir DIR
"""
from pathlib import Path

from robustzoo import Recipe, Reported, load_recipe


def recipe() -> Recipe:
    base, _ = load_recipe(Path(__file__).with_name("ecas_pgdat_wrn34_cifar10.py"))
    return base.replace(name="ecas-pgdat-resnet18-cifar10", model="cifar_resnet18",
                        reported=Reported("ECAS paper, Table 3, ECAS-PGD-AT (ResNet-18)", clean=81.39, aa=49.94),
                        description=__doc__)
