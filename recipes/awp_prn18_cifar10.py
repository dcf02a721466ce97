"""AT-AWP (Wu et al. 2020): PGD-10 (eps 8/255, step 2/255), AWP γ = 0.01, no warmup; PreActResNet-18,
CIFAR-10, in the settings of Rice et al. as the SAAT paper runs it.

SGD lr 0.1, momentum 0.9, weight decay 5e-4, batch 128, 200 epochs, lr ×0.1 at epochs 100 and 150;
crop(4) + flip; held-out 1,000 images for the best checkpoint.

Reported (SAAT paper, Table 2, CIFAR10 PR-18) row "AWP-AT": clean 81.47, PGD-20 55.54, AA 49.96 (best
checkpoint).

Run:  robustzoo train recipes/awp_prn18_cifar10.py --data-dir DIR
"""
from robustzoo import AWP, Fixed, PGDAT, Piecewise, Recipe, Reported


def recipe() -> Recipe:
    return Recipe(
        name="awp-prn18-cifar10",
        model="cifar_preact_resnet18",
        dataset="cifar10",
        val_size=1000,
        policy=Fixed(eps=8 / 255, step_size=2 / 255, steps=10),
        defense=AWP(PGDAT(), gamma=0.01, warmup=0),
        eps=8 / 255,
        attack_train_mode=True,  # Rice et al.'s code attacks with the model in train mode
        epochs=200,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule=Piecewise(milestones=(0.5, 0.75), gamma=0.1),
        reported=Reported("SAAT paper, Table 2, AWP-AT (PreActResNet-18, best checkpoint)", clean=81.47, pgd20=55.54, aa=49.96),
        description=__doc__,
    )
