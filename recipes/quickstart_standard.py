"""The quickstart's baseline: the same net, data and schedule, trained without attacks (steps = 0).

Compare it with recipes/quickstart.py under the same evaluation (README: Quickstart): its PGD-20
accuracy at eps 32/255 collapses, the adversarially trained net's does not.
"""
from robustzoo import PGDAT, Fixed, Piecewise, Recipe

EPS = 32 / 255


def recipe() -> Recipe:
    return Recipe(
        name="quickstart-standard",
        model="cifar_small_cnn",
        model_kwargs={"width": 64},
        dataset="digits",
        val_size=200,
        policy=Fixed(eps=EPS, step_size=EPS / 4, steps=0),  # no attack: clean training
        defense=PGDAT(),
        eps=EPS,
        epochs=40,
        batch_size=64,
        lr=0.05,
        weight_decay=5e-4,
        schedule=Piecewise((0.5, 0.75)),
    )
