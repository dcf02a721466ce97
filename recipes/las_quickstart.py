"""LAS-PGD-AT on the digits data: a CPU-sized look at LAS-AT's learned strategy (the paper's Fig. 4).

The quickstart's net, data and threat model (eps 32/255), with LearnedLAS choosing eps, step size and
steps per sample over LAS-AT's ranges scaled by 4 (eps 12..60/255, step 4..24/255, steps 3..15). The
strategy network (a small CNN) is updated every 2 target steps (the paper's k = 40 would give it only
a handful of updates in a run this short). `robustzoo plot runs/las-quickstart` draws the per-epoch eps
distribution.
"""
from robustzoo import PGDAT, Piecewise, Recipe
from robustzoo.policies import LearnedLAS

EPS = 32 / 255


def recipe() -> Recipe:
    return Recipe(
        name="las-quickstart",
        model="cifar_small_cnn",
        model_kwargs={"width": 64},
        dataset="digits",
        val_size=200,
        policy=LearnedLAS(eps_options=[e / 255 for e in range(12, 61, 4)],
                          step_options=[s / 255 for s in range(4, 25, 4)], steps_options=range(3, 16),
                          backbone="cifar_small_cnn", backbone_kwargs={"width": 16}, hidden=32,
                          lr=1e-2, update_every=2),
        defense=PGDAT(),
        eps=EPS,
        epochs=40,
        batch_size=64,
        lr=0.05,
        weight_decay=5e-4,
        schedule=Piecewise((0.5, 0.75)),
    )
