"""PGD-AT, PreActResNet-18, CIFAR-10: the settings of Rice et al. (2020), "Overfitting in adversarially
robust deep learning".

PGD-10 (eps 8/255, step 2/255, uniform random start); SGD lr 0.1, momentum 0.9, weight decay 5e-4,
batch 128, 200 epochs, lr ×0.1 at epochs 100 and 150; crop(4, reflect) + flip; early stopping on
PGD-10 accuracy of a held-out 1,000-image training split (`best.safetensors`).

Reported for this setting (SAAT paper, Table 1, row "AT", PreActResNet-18, CIFAR-10):
best checkpoint clean 82.02 / PGD-20 52.59 / AA 48.23; last checkpoint 83.89 / 45.28 / 42.88.

Run:  robustzoo train recipes/pgdat_prn18_cifar10.py --data-dir DIR   (DIR holds cifar-10-batches-py/)
"""
from robustzoo import Fixed, PGDAT, Piecewise, Recipe, Reported


def recipe() -> Recipe:
    return Recipe(
        name="pgdat-prn18-cifar10",
        model="cifar_preact_resnet18",
        dataset="cifar10",
        val_size=1000,
        policy=Fixed(eps=8 / 255, step_size=2 / 255, steps=10),
        defense=PGDAT(),
        eps=8 / 255,
        attack_train_mode=True,  # Rice et al.'s code attacks with the model in train mode
        epochs=200,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule=Piecewise(milestones=(0.5, 0.75), gamma=0.1),
        reported=Reported("SAAT paper, Table 1, AT (PreActResNet-18, best checkpoint)", clean=82.02, pgd20=52.59, aa=48.23),
        description=__doc__,
    )
