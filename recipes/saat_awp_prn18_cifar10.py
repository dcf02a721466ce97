"""AWP-SAAT, PreActResNet-18, CIFAR-10.

LossConstrainedSAAT: ρ = 1.7, ε_max = 9/255, τ = α = 2/255, K = 3 (Sec. 4.1); on AT-AWP (γ 0.01) in the settings of Rice et al. that the SAAT paper follows: 200 epochs, SGD lr 0.1, momentum 0.9,
weight decay 5e-4, lr ÷10 at epochs 100 and 150, crop(4) + flip; held-out 1,000 images for the best
checkpoint. The attacks run with the model in train mode, as the SAAT code (a fork of the AWP code) does.

Reported (SAAT paper, Table 1, row AWP-SAAT_up (ε_max = 9, ρ = 1.7): clean 79.49, PGD-20 56.25, AA 50.67 (best checkpoint).

Run:  robustzoo train recipes/saat_awp_prn18_cifar10.py --data-dir DIR
"""
from robustzoo import AWP, PGDAT, Piecewise, Recipe, Reported
from robustzoo.policies import LossConstrainedSAAT


def recipe() -> Recipe:
    return Recipe(
        name="saat-awp-prn18-cifar10",
        model="cifar_preact_resnet18",
        dataset="cifar10",
        val_size=1000,
        policy=LossConstrainedSAAT(rho=1.7, eps_max=9 / 255, tau=2 / 255, step_size=2 / 255, steps_per_budget=3,
                                   mode="up"),
        defense=AWP(PGDAT(), gamma=0.01),
        eps=8 / 255,
        attack_train_mode=True,  # the SAAT code's attacks (the AWP code's) run in train mode
        epochs=200,
        batch_size=128,
        lr=0.1,
        momentum=0.9,
        weight_decay=5e-4,
        schedule=Piecewise(milestones=(0.5, 0.75), gamma=0.1),
        reported=Reported("SAAT paper, Table 1, AWP-SAAT_up (eps_max 9, rho 1.7, best checkpoint)", clean=79.49, pgd20=56.25, aa=50.67),
        description=__doc__,
    )
