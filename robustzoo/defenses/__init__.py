"""Defenses: the outer loss of adversarial training (and the loss its inner attack maximizes)."""
from .awp import AWP, perturbed_weights
from .base import DEFENSES, Defense, create_defense, list_defenses, register_defense
from .mart import MART, boosted_cross_entropy
from .pgd_at import PGDAT
from .trades import TRADES, kl_divergence

__all__ = ["AWP", "DEFENSES", "Defense", "MART", "PGDAT", "TRADES", "boosted_cross_entropy", "create_defense",
           "kl_divergence", "list_defenses", "perturbed_weights", "register_defense"]
