"""SAAT_up, SATRADES_up, PreActResNet-18, CIFAR-10 (SAAT paper, Appendix Table 2, best checkpoint): `saat_prn18_cifar10.py` on TRADES (β = 6 assumed, the TRADES default; attacks in eval mode as the TRADES code).

The paper gives no ρ or ε_max for this row (only for the PreActResNet-18 CIFAR-10 rows of Table 1): this
recipe assumes the CIFAR-10 ones, ρ = 1.7 and ε_max = 14/255, with the global settings of Sec. 4.1 (200
epochs, lr ÷10 at 100 and 150, weight decay 5e-4, α = τ = 2/255, K = 3).

Reported (SAAT paper, Appendix Table 2, SATRADES_up, PreActResNet-18, CIFAR-10, best checkpoint; Table 3 has the last one): clean 81.76, PGD-20 53.44,
AA 50.04.

Run:  robustzoo reproduce recipes/saat_trades_prn18_cifar10.py --data-dir DIR
"""
from pathlib import Path

from robustzoo import TRADES, Recipe, Reported, load_recipe


def recipe() -> Recipe:
    base, _ = load_recipe(Path(__file__).with_name("saat_prn18_cifar10.py"))
    return base.replace(name="saat-trades-prn18-cifar10", defense=TRADES(beta=6.0), attack_train_mode=False,
                        reported=Reported("SAAT paper, Appendix Table 2, SAAT_up (SATRADES_up, PreActResNet-18, CIFAR-10, best checkpoint)",
                                          clean=81.76, pgd20=53.44, aa=50.04),
                        description=__doc__)
