"""Training attacks: per-sample PGD (the kernel) and SAAT's SA-PGD. Evaluation attacks: `robustzoo.evaluation`."""
from .pgd import LossFn, cross_entropy, cw_margin, pgd
from .sapgd import sa_pgd

__all__ = ["LossFn", "cross_entropy", "cw_margin", "pgd", "sa_pgd"]
