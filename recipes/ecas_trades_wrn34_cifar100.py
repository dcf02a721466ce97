"""ECAS-TRADES, WRN-34-10, CIFAR-100 (ECAS paper, Table 2): `ecas_trades_wrn34_cifar10.py` on CIFAR-100.

What the CIFAR-100 script changes (ECAS @5b30080): the entropy thresholds, h_high 4.582 / h_low 3.35 (ln 100
= 4.605) and the inner attack, which on CIFAR-100 is TRADES's own KL attack (`TRADES/train_trades_cifar100_entropy.py:146-172`; the same one-drop schedule, line 236). Everything else as the CIFAR-10 recipe.

Reported (ECAS paper, Table 2, C100 ECAS-TRADES "+Ours", WRN34-10; clean and AA only): clean 58.69, AA 28.24.

Run:  robustzoo reproduce recipes/ecas_trades_wrn34_cifar100.py --data-dir DIR
"""
from pathlib import Path

from robustzoo import TRADES, Recipe, Reported, load_recipe
from robustzoo.policies import CyclicEntropyECAS


def recipe() -> Recipe:
    base, _ = load_recipe(Path(__file__).with_name("ecas_trades_wrn34_cifar10.py"))
    p = base.policy
    policy = CyclicEntropyECAS(eps_space=p.eps_space, scheduler=p.scheduler, h_high=4.582, h_low=3.35, steps=p.steps,
                               big_options=p.big_options)
    return base.replace(name="ecas-trades-wrn34-cifar100", dataset="cifar100", policy=policy,
                        defense=TRADES(beta=6.0, inner="kl"),
                        reported=Reported("ECAS paper, Table 2, ECAS-TRADES (WRN-34-10, CIFAR-100)", clean=58.69, aa=28.24),
                        description=__doc__)
