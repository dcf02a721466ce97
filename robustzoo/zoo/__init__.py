"""The model zoo: robustness cards, and push to / load from the Hugging Face Hub."""
from .card import RobustnessCard
from .catalog import card_from_recipe, card_from_run, list_zoo, zoo_card
from .hub import PushResult, load, push

__all__ = ["PushResult", "RobustnessCard", "card_from_recipe", "card_from_run", "list_zoo", "load", "push", "zoo_card"]
