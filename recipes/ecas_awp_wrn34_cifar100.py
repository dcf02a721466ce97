"""ECAS-AWP, WRN-34-10, CIFAR-100 (ECAS paper, Table 2): `ecas_awp_wrn34_cifar10.py` on CIFAR-100.

What the CIFAR-100 script changes (ECAS @5b30080): the entropy thresholds, h_high 4.582 / h_low 3.35 (ln 100
= 4.605) (`AWP/train_awp_cifar100_entropy.py`; that script fails at import as shipped, `from models.preact_resnet import PreActResNet18` with no such file, line 20, so the rest is assumed from the CIFAR-10 script). Everything else as the CIFAR-10 recipe.

Reported (ECAS paper, Table 2, C100 ECAS-AWP "+Ours", WRN34-10; clean and AA only): clean 64.77, AA 29.78.

Run:  robustzoo reproduce recipes/ecas_awp_wrn34_cifar100.py --data-dir DIR
"""
from pathlib import Path

from robustzoo import Recipe, Reported, load_recipe
from robustzoo.policies import CyclicEntropyECAS


def recipe() -> Recipe:
    base, _ = load_recipe(Path(__file__).with_name("ecas_awp_wrn34_cifar10.py"))
    p = base.policy
    policy = CyclicEntropyECAS(eps_space=p.eps_space, scheduler=p.scheduler, h_high=4.582, h_low=3.35, steps=p.steps,
                               big_options=p.big_options)
    return base.replace(name="ecas-awp-wrn34-cifar100", dataset="cifar100", policy=policy,
                        reported=Reported("ECAS paper, Table 2, ECAS-AWP (WRN-34-10, CIFAR-100)", clean=64.77, aa=29.78),
                        description=__doc__)
