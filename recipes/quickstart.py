"""Quickstart: PGD-AT of a small CNN on scikit-learn's handwritten digits (8×8, no download).

Runs in a few minutes on 2 CPU cores. Threat model L∞ eps = 32/255 (digits are low-resolution and
nearly binary, so 8/255 is too weak a test). A network trained without attacks falls to near 0% under
PGD-20 at this eps; this one keeps well above that (README: Quickstart).

Reported: not a paper's row but robustzoo's reference run (README, "What the quickstart shows": 2 CPU
cores, first 200 digits test images): clean 98.0, PGD-20 76.5, CW-30 80.5, AA 74.5. Check it with
`robustzoo reproduce recipes/quickstart.py --n 200`.
"""
from robustzoo import PGDAT, Fixed, Piecewise, Recipe, Reported

EPS = 32 / 255


def recipe() -> Recipe:
    return Recipe(
        name="quickstart",
        model="cifar_small_cnn",
        model_kwargs={"width": 64},
        dataset="digits",
        val_size=200,
        policy=Fixed(eps=EPS, step_size=EPS / 4, steps=10),
        defense=PGDAT(),
        eps=EPS,
        epochs=40,
        batch_size=64,
        lr=0.05,
        weight_decay=5e-4,
        schedule=Piecewise((0.5, 0.75)),
        reported=Reported("robustzoo reference run (README quickstart, n=200)", clean=98.0, pgd20=76.5, cw=80.5,
                          aa=74.5),
    )
