"""N-FGSM, PreActResNet-18, CIFAR-10: de Jorge et al. (2022), "Make some noise: reliable and efficient
single-step adversarial training": `fgsm_rs_prn18_cifar10.py` with N-FGSM's attack and 30 epochs.

As `pdejorge/N-FGSM` @0a9e4f0 `train.py`: noise from U[−2ε, 2ε] (`--unif 2`, lines 51-56, 217-222), clamped
to [0, 1], then one step of α = ε = 8/255 (line 50; `experiments.sh:9`) with no projection back onto the ε
ball (`--clip -1`, lines 57-62, 232-233; only the [0, 1] clamp, line 231), so ‖δ‖∞ reaches 3ε; 30 epochs
(line 36); everything else as FGSM-RS (model in train mode, CyclicLR 0 → 0.2 → 0, SGD 0.9 / 5e-4, batch 128,
the final model).

Reported: none here. The paper's PreActResNet-18 numbers are in its figures, which could not be read from
this machine; the recipe states no target rather than a guessed one.

Run:  robustzoo train recipes/nfgsm_prn18_cifar10.py --data-dir DIR
"""
import dataclasses
from pathlib import Path

from robustzoo import Fixed, Recipe, load_recipe


def recipe() -> Recipe:
    base, _ = load_recipe(Path(__file__).with_name("fgsm_rs_prn18_cifar10.py"))
    return dataclasses.replace(  # `Recipe.replace` skips None: the base's reported numbers must not carry over
        base, name="nfgsm-prn18-cifar10", epochs=30, reported=None, description=__doc__,
        policy=Fixed(eps=8 / 255, step_size=8 / 255, steps=1, start_scale=2.0, project=False))
