"""ECAS-TRADES, ResNet-18, CIFAR-10 (ECAS paper, Table 3): `ecas_trades_wrn34_cifar10.py` on a ResNet-18.

The ECAS code's `--model ResNet18` (`models/resnet.py:92-93` at 5b30080) is the standard CIFAR ResNet-18;
the paper: "tested on ResNet18 and WideResNet34-10 ... we use their original hyperparameters". Nothing
else changes.

Reported (ECAS paper, Table 3, ECAS-TRADES "+Ours", ResNet18; clean and AA only): clean 78.61, AA 48.83.

Run:  robustzoo reproduce recipes/ecas_trades_resnet18_cifar10.py --data-dir DIR
"""
from pathlib import Path

from robustzoo import Recipe, Reported, load_recipe


def recipe() -> Recipe:
    base, _ = load_recipe(Path(__file__).with_name("ecas_trades_wrn34_cifar10.py"))
    return base.replace(name="ecas-trades-resnet18-cifar10", model="cifar_resnet18",
                        reported=Reported("ECAS paper, Table 3, ECAS-TRADES (ResNet-18)", clean=78.61, aa=48.83),
                        description=__doc__)
