"""Evaluation, in one place: `evaluate` (robustzoo's public entry) and what it is made of.

- `robustness.py`: `evaluate`, `RobustnessResult`, the class-balanced order, resumable chunks, `compare`
- `attacks.py`: the named attacks (clean, fgsm, pgdK, cw, aa through `pyautoattack`) and the x_adv check
- `guards.py`: what must hold before a model is attacked (input range, determinism)
- `masking.py`: the gradient-masking sanity checks
- `card.py`: filling a robustness card from an evaluation (imported where used: it needs the trainer)
- `cli.py`: the body of `robustzoo evaluate` / `compare` / `--reproduce` (imported by the CLI)
"""
from .attacks import (AttackResult, autoattack, check_adversarial, check_attack, check_autoattack, list_attacks,
                      run_attacks)
from .masking import sanity_checks
from .robustness import RobustnessResult, balanced_order, compare, evaluate

__all__ = ["AttackResult", "RobustnessResult", "autoattack", "balanced_order", "check_adversarial", "check_attack",
           "check_autoattack", "compare", "evaluate", "list_attacks", "run_attacks", "sanity_checks"]
