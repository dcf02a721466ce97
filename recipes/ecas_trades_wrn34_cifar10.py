"""ECAS-TRADES, WRN-34-10, CIFAR-10 (ECAS paper, Table 2).

As `TRADES/train_trades_cifar10_entropy.py` (ECAS @5b30080) runs it: eps cycles over 5..9/255 (line 42),
entropy routing with h_high 2.274 / h_low 1.3 (lines 43-44), low-entropy samples get one random eps of the
two biggest, {8, 9}/255, per batch (`if item > 7`, line 183; the paper says "the three biggest"), 10 steps of
2·eps/10; TRADES β = 6 (line 197) with a **CE** inner attack on CIFAR-10 (`attack_batch`, lines 146-164;
`TRADES(inner="ce")`). Schedule: 110 epochs, lr 0.1 ×0.1 from 0-based epoch 99 and never again — the
second milestone is written `lr_steps * 104/ 100`, beyond the last step (line 228), so the code runs one
drop; this recipe runs what the code ran. Weight decay 5e-4, no label smoothing. The code keeps the best
test-set PGD-10 epoch; this recipe selects on a 1,000-image held-out split.

Reported (ECAS paper, Table 2, C10 TRADES "+Ours", WRN34-10; clean and AA only): clean 83.99, AA 52.02.

Run:  robustzoo reproduce recipes/ecas_trades_wrn34_cifar10.py --data-dir DIR
"""
from robustzoo import Piecewise, Recipe, Reported, TRADES
from robustzoo.policies import CyclicEntropyECAS


def recipe() -> Recipe:
    return Recipe(
        name="ecas-trades-wrn34-cifar10",
        model="cifar_wrn_34_10",
        dataset="cifar10",
        val_size=1000,
        policy=CyclicEntropyECAS(eps_space=[e / 255 for e in range(5, 10)], scheduler="cyclic",
                                 h_high=2.274, h_low=1.3, steps=10, big_options=[8 / 255, 9 / 255]),
        defense=TRADES(beta=6.0, inner="ce"),
        eps=8 / 255,
        epochs=110,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule=Piecewise(milestones=(99 / 110,), gamma=0.1),  # the code's one effective drop
        reported=Reported("ECAS paper, Table 2, ECAS-TRADES (WRN-34-10, CIFAR-10)", clean=83.99, aa=52.02),
        description=__doc__,
    )
