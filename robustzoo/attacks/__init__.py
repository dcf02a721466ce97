"""Attacks: per-sample PGD for training, named attacks (PGD-K, CW, AutoAttack) for evaluation."""
from .evaluation import AttackResult, autoattack, check_attack, check_autoattack, list_attacks, run_attacks
from .pgd import LossFn, cross_entropy, cw_margin, pgd
from .sapgd import sa_pgd

__all__ = ["AttackResult", "LossFn", "autoattack", "check_attack", "check_autoattack", "cross_entropy", "cw_margin",
           "list_attacks", "pgd", "run_attacks", "sa_pgd"]
