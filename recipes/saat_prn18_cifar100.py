"""SAAT_up, PreActResNet-18, CIFAR-100 (SAAT paper, Appendix Table 2, best checkpoint): `saat_prn18_cifar10.py` on CIFAR-100.

The paper gives no ρ or ε_max for this row (only for the PreActResNet-18 CIFAR-10 rows of Table 1): this
recipe assumes the CIFAR-10 ones, ρ = 1.7 and ε_max = 14/255, with the global settings of Sec. 4.1 (200
epochs, lr ÷10 at 100 and 150, weight decay 5e-4, α = τ = 2/255, K = 3).

Reported (SAAT paper, Appendix Table 2, PreActResNet-18, CIFAR-100, best checkpoint; Table 3 has the last one): clean 53.20, PGD-20 29.29,
AA 25.25.

Run:  robustzoo reproduce recipes/saat_prn18_cifar100.py --data-dir DIR
"""
from pathlib import Path

from robustzoo import Recipe, Reported, load_recipe


def recipe() -> Recipe:
    base, _ = load_recipe(Path(__file__).with_name("saat_prn18_cifar10.py"))
    return base.replace(name="saat-prn18-cifar100", dataset="cifar100",
                        reported=Reported("SAAT paper, Appendix Table 2, SAAT_up (PreActResNet-18, CIFAR-100, best checkpoint)",
                                          clean=53.20, pgd20=29.29, aa=25.25),
                        description=__doc__)
