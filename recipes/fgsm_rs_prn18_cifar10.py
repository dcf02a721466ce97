"""FGSM-RS ("fast AT"), PreActResNet-18, CIFAR-10: Wong, Rice & Kolter (2020), "Fast is better than free:
revisiting adversarial training".

As `locuslab/fast_adversarial` @54f7287 `CIFAR10/train_fgsm.py`: one FGSM step of α = 10/255 = 1.25·ε (line 31)
from a uniform start in the ε = 8/255 ball (lines 107-110), projected back onto the ball and [0, 1]
(lines 111-118), the model in train mode throughout (line 73); SGD momentum 0.9, weight decay 5e-4, batch 128,
15 epochs (lines 22-29), LR one triangle 0 → 0.2 → 0 stepped per batch (torch's CyclicLR, lines 85-88, 129:
`Cyclic(peak=0.5)`); crop (zero padding 4) + flip; no early stopping (off by default, line 36): the last
epoch is the model (`val_size=0`). Left out: CyclicLR's default momentum cycling 0.9 → 0.8 → 0.9 (here
momentum stays 0.9), apex O2 mixed precision (use `--amp`), and the last partial batch of each epoch (here
dropped).

Reported (Wong et al. 2020, "FGSM" row, PreActResNet-18, as quoted in locuslab/fast_adversarial#8):
clean 83.81, PGD-50 with 10 restarts 46.06. Our `pgd50` has one restart, so it reads a little higher.

Run:  robustzoo reproduce recipes/fgsm_rs_prn18_cifar10.py --data-dir DIR
"""
from robustzoo import PGDAT, Cyclic, Fixed, Recipe, Reported


def recipe() -> Recipe:
    return Recipe(
        name="fgsm-rs-prn18-cifar10",
        model="cifar_preact_resnet18",
        dataset="cifar10",
        val_size=0,
        policy=Fixed(eps=8 / 255, step_size=10 / 255, steps=1),
        defense=PGDAT(),
        eps=8 / 255,
        attack_train_mode=True,
        epochs=15,
        batch_size=128,
        lr=0.2,
        momentum=0.9,
        weight_decay=5e-4,
        schedule=Cyclic(peak=0.5),
        reported=Reported("Wong et al. 2020, FGSM (PreActResNet-18), as quoted in locuslab/fast_adversarial#8; "
                          "PGD-50 with 10 restarts", clean=83.81, pgd50=46.06),
        description=__doc__,
    )
