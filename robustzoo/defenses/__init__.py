"""Defenses: the outer loss of adversarial training (and the loss its inner attack maximizes)."""
from .base import DEFENSES, Defense, create_defense, list_defenses, register_defense
from .pgd_at import PGDAT

__all__ = ["DEFENSES", "Defense", "PGDAT", "create_defense", "list_defenses", "register_defense"]
