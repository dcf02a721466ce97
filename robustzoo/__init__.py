"""robustzoo: adversarial training with adaptive attack policies, and a zoo of robust models."""
import warnings

with warnings.catch_warnings():  # timm 1.0.9 (the version robustbench pins) warns on import about torch.jit.interface
    warnings.filterwarnings("ignore", message=".*torch.jit.interface.*", category=FutureWarning)
    import timm  # noqa: F401
from . import models  # noqa: F401  (registers the CIFAR architectures into timm)
from .attacks import pgd
from .data import Aux, Stream, load_data
from .defenses import AWP, MART, PGDAT, TRADES, Defense, create_defense, list_defenses, register_defense
from .ema import EMA
from .errors import RobustzooError
from .models import Normalize, create_model
from .policies import AttackPolicy, Fixed, create_policy, list_policies, register_policy
from .recipe import Recipe, Reported, load_recipe
from .evaluation import RobustnessResult, evaluate, run_attacks
from .schedules import Cosine, Cyclic, Piecewise
from .strategy import Strategy
from .trainer import Trainer, load_model
from .zoo import RobustnessCard, list_zoo, load, push
from .zoo.robustbench import import_robustbench

__version__ = "0.1.0"

__all__ = ["import_robustbench", "AWP", "MART", "TRADES", "AttackPolicy", "Cosine", "Cyclic", "Defense", "EMA", "Fixed", "Normalize", "PGDAT", "Piecewise", "Recipe",
           "Reported", "RobustnessCard", "RobustnessResult", "RobustzooError", "Strategy", "Trainer", "create_defense", "create_model",
           "create_policy", "evaluate", "list_defenses", "list_policies", "list_zoo", "load", "load_data", "load_model",
           "load_recipe", "pgd", "push", "register_defense", "register_policy", "run_attacks"]
