"""LAS-PGD-AT, WRN-34-10, CIFAR-10 (LAS-AT, Jia et al. 2022).

LearnedLAS as the authors' LAS-PGD code runs it (`LAS_PGD_AT/LAS_AT_train_cifar10.py` at ee756b7; the
policy's defaults): eps 3..15/255, steps 3..14, step 1..5/255 (README command); reward clamp(CE, 0, 10) +
4·robust acc + 2·clean acc of the look-ahead (lines 365-411); θ every k = 20 steps (line 52) by SGD lr
1e-4 without momentum, gradient norm clipped at 1.0 (lines 57, 632); strategy net: CIFAR ResNet-18 on raw
pixels, heads on its pooled features. Training loss: CE on labels smoothed to 0.7 for the true class
(`PGDAT(true_prob=0.7)`, lines 89-100, 656-658). Schedule as the code: 110 epochs (line 29, README
command), lr 0.1 ×0.1 from 0-based epoch 99 and again from 104 (MultiStepLR stepped per iteration at
`lr_steps*99/110` and `lr_steps*104/110`, lines 497-505, 667), SGD momentum 0.9, weight decay 5e-4 (line
464), batch 128, crop+flip. Assumption where we cannot follow the code: it keeps the epoch with the best
PGD-10 on the *test* set (lines 695, 730-749); this recipe selects on a 1,000-image held-out training split.

Reported (LAS-AT paper, Table 2, row LAS-AT(ours), WRN34-10): clean 86.23, PGD-20 56.49, C&W 55.73, AA
53.58.

Run:  robustzoo train recipes/las_at_wrn34_cifar10.py --data-dir DIR
"""
from robustzoo import PGDAT, Piecewise, Recipe, Reported
from robustzoo.policies import LearnedLAS


def recipe() -> Recipe:
    return Recipe(
        name="las-at-wrn34-cifar10",
        model="cifar_wrn_34_10",
        dataset="cifar10",
        val_size=1000,
        policy=LearnedLAS(),  # the code's LAS-PGD settings are the defaults
        defense=PGDAT(true_prob=0.7),
        eps=8 / 255,
        epochs=110,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule=Piecewise(milestones=(99 / 110, 104 / 110), gamma=0.1),  # 0-based epochs 99 and 104
        reported=Reported("LAS-AT paper, Table 2, LAS-AT (WRN-34-10)", clean=86.23, pgd20=56.49, cw=55.73, aa=53.58),
        description=__doc__,
    )
