"""ECAS-PGD-AT, WRN-34-10, CIFAR-100 (ECAS paper, Table 2): `ecas_pgdat_wrn34_cifar10.py` on CIFAR-100.

What the CIFAR-100 script changes (ECAS @5b30080): the entropy thresholds, h_high 4.582 / h_low 3.35 (ln 100
= 4.605) (`PGD-AT/train_pgd_cifar100_entropy.py:42-43`); label smoothing 0.7 over 100 classes (line 46). Everything else as the CIFAR-10 recipe.

Reported (ECAS paper, Table 2, C100 ECAS-PGD-AT "+Ours", WRN34-10; clean and AA only): clean 61.16, AA 28.83.

Run:  robustzoo reproduce recipes/ecas_pgdat_wrn34_cifar100.py --data-dir DIR
"""
from pathlib import Path

from robustzoo import Recipe, Reported, load_recipe
from robustzoo.policies import CyclicEntropyECAS


def recipe() -> Recipe:
    base, _ = load_recipe(Path(__file__).with_name("ecas_pgdat_wrn34_cifar10.py"))
    p = base.policy
    policy = CyclicEntropyECAS(eps_space=p.eps_space, scheduler=p.scheduler, h_high=4.582, h_low=3.35, steps=p.steps,
                               big_options=p.big_options)
    return base.replace(name="ecas-pgdat-wrn34-cifar100", dataset="cifar100", policy=policy,
                        reported=Reported("ECAS paper, Table 2, ECAS-PGD-AT (WRN-34-10, CIFAR-100)", clean=61.16, aa=28.83),
                        description=__doc__)
