"""LAS-TRADES, WRN-34-10, CIFAR-10 (LAS-AT, Jia et al. 2022).

LearnedLAS as the authors' LAS-TRADES code runs it (`LAS_Trades/LAS_Trades_train_cifar10.py` at ee756b7):
eps 5..9/255, steps 7..14, step 2..4/255, per-sample TRADES β 5..9 (README command); reward: the TRADES
loss clamped to [0, 20] + 8·robust acc + 4·clean acc (lines 391-432); θ every step (k = 1, line 55) by SGD
lr 1e-4, momentum 0.9, weight decay 5e-4 (line 60), gradient norm clipped at 1.0, its LR following the
target's drops (lines 479-482). Schedule as the code: 100 epochs (line 29, README command), lr 0.1 ×0.1
from 0-based epoch 75 and again from 90 (MultiStepLR per iteration at `lr_steps*75/100`, `lr_steps*90/100`,
lines 464, 471-473, 634), SGD momentum 0.9, weight decay 5e-4 (lines 34-35, 463), no label smoothing.
The code keeps the best test-set PGD-10 epoch (lines 653, 682); this recipe keeps the last (no held-out
split, as the TRADES recipes).

Reported (LAS-AT paper, Table 2, row LAS-TRADES(ours), WRN34-10): clean 85.24, PGD-20 57.07, C&W 55.45,
AA 54.15.

Run:  robustzoo train recipes/las_trades_wrn34_cifar10.py --data-dir DIR
"""
from robustzoo import Piecewise, Recipe, Reported, TRADES
from robustzoo.policies import LearnedLAS


def recipe() -> Recipe:
    return Recipe(
        name="las-trades-wrn34-cifar10",
        model="cifar_wrn_34_10",
        dataset="cifar10",
        val_size=0,
        policy=LearnedLAS(eps_options=[e / 255 for e in range(5, 10)], steps_options=range(7, 15),
                          step_options=[s / 255 for s in range(2, 5)], beta_options=[float(b) for b in range(5, 10)],
                          alpha=8.0, beta=4.0, r1="step-loss", r1_clip=20.0, update_every=1, momentum=0.9,
                          weight_decay=5e-4, follow_target_lr=True),
        defense=TRADES(beta=6.0),
        eps=8 / 255,
        epochs=100,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule=Piecewise(milestones=(0.75, 0.9), gamma=0.1),  # 0-based epochs 75 and 90
        reported=Reported("LAS-AT paper, Table 2, LAS-TRADES (WRN-34-10)", clean=85.24, pgd20=57.07, cw=55.45, aa=54.15),
        description=__doc__,
    )
