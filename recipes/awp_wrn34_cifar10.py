"""AT-AWP, WRN-34-10, CIFAR-10: Wu et al. (2020), "Adversarial Weight Perturbation Helps Robust
Generalization", on the PGD-AT of Rice et al.

PGD-10 (eps 8/255, step 2/255); AWP γ = 0.01, no warmup; SGD lr 0.1, momentum 0.9, weight decay 5e-4,
batch 128, 200 epochs, lr 0.1 → 0.01 at 100 → 0.001 at 150; held-out 1,000 images for the best checkpoint.

Reported (LAS-AT paper, Table 2, row "AWP", WRN34-10, CIFAR-10): clean 85.57, PGD-20 58.13, C&W 56.03,
AA 53.90.

Run:  robustzoo train recipes/awp_wrn34_cifar10.py --data-dir DIR
CPU smoke run on the JPEG CIFAR-10 tree:  robustzoo train recipes/awp_wrn34_cifar10.py --epochs 1
      --data-dir DIR --model cifar_small_cnn --train-subset 512 --val-size 100
"""
from robustzoo import AWP, Fixed, PGDAT, Piecewise, Recipe, Reported


def recipe() -> Recipe:
    return Recipe(
        name="awp-wrn34-cifar10",
        model="cifar_wrn_34_10",
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
        reported=Reported("LAS-AT paper, Table 2, AWP (WRN-34-10)", clean=85.57, pgd20=58.13, cw=56.03, aa=53.9),
        description=__doc__,
    )
