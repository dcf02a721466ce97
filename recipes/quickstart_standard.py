"""The quickstart's baseline: the same net, data and schedule as recipes/quickstart.py, trained without
attacks (steps = 0).

Compare both under the same evaluation (README: Quickstart): at eps 32/255 this net's PGD-20 accuracy
collapses; the adversarially trained net's does not.
"""
import dataclasses
from pathlib import Path

from robustzoo import Fixed, Recipe, load_recipe


def recipe() -> Recipe:
    base, _ = load_recipe(Path(__file__).with_name("quickstart.py"))
    return dataclasses.replace(base, name="quickstart-standard", policy=Fixed(eps=base.eps, step_size=base.eps / 4, steps=0),
                               reported=None)  # the reference numbers are the adversarially trained net's
