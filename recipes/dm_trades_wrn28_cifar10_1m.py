"""TRADES + 1M generated images, WRN-28-10 (Swish), CIFAR-10: Wang et al. (2023), "Better Diffusion Models
Further Improve Adversarial Training", at the settings of its code (`wzekai99/DM-Improves-AT` @b390f25,
README.md:58-70: `train-wa.py --data cifar10s --batch-size 512 --model wrn-28-10-swish --num-adv-epochs 400
--lr 0.2 --beta 5.0 --unsup-fraction 0.7 --aux-data-filename 1m.npz --ls 0.1`).

Data: every batch of 512 holds int(512·0.7) = 358 generated images drawn with replacement from the
memory-mapped `1m.npz` (their labels as the file gives them) and 154 real ones (`core/data/semisup.py:235-257`);
an epoch is ceil(50000/512) = 98 batches (:15); crop + flip on both. TRADES β 5, label smoothing 0.1 on the
clean CE (`gowal21uncovering/utils/trades.py:42, 110`), KL-PGD 10 × 2/255 with the attack in train mode
(:44-45); SGD nesterov, lr 0.2, weight decay 5e-4 off the BatchNorm parameters (`watrain.py:58-71`); cosine
schedule with 2.5% warmup (`--scheduler cosinew`, `core/utils/train.py:92-94`); weight average τ 0.995 after
980 steps (`train-wa.py:29`, `watrain.py:50-51, 244-258`), the reported checkpoint the best average on 1024
held-out images (`train-wa.py:121-127`).

Differences (the trainer's forms): OneCycleLR's cosine warmup from lr/25 and its momentum cycling 0.95↔0.85
are a linear warmup at momentum 0.9 here; the average's ramp (1+t)/(10+t) is timm's plain decay after step
980, and its BatchNorm statistics are averaged (DM copies the model's each epoch); the attack's train mode
updates BatchNorm statistics (DM freezes them); TRADES starts at x + 0.001·N(0, 1); the best checkpoint is
picked by PGD-40 CE on a random 1024-image split (DM: PGD-40 CW on the first 1024); the auxiliary rows are
spread evenly over each batch (DM shuffles the batch).

Reported (Wang et al. 2023, the 1M / batch 512 / 400 epochs WRN-28-10 row, as recalled: no copy of the
paper here to check; the README lists the 20M model only, 92.44 / 67.31): clean 91.12, AA 63.35.

Data: put DM-Improves-AT's `1m.npz` (cifar10, the EDM-generated set) at
`$ROBUSTZOO_DATA/dm-improves-at/cifar10/1m.npz` (or edit the path below).
Run:  robustzoo train recipes/dm_trades_wrn28_cifar10_1m.py --data-dir DIR
"""
from robustzoo import EMA, TRADES, Cosine, Fixed, Recipe, Reported
from robustzoo.data import Aux, default_data_dir


def recipe() -> Recipe:
    return Recipe(
        name="dm-trades-wrn28-cifar10-1m",
        model="cifar_wrn_28_10",
        model_kwargs={"act_layer": "silu"},  # DeepMind's WRN-28-10 with Swish (RobustBench's DMWideResNet)
        dataset="cifar10",
        val_size=1024,
        aux=Aux(str(default_data_dir() / "dm-improves-at" / "cifar10" / "1m.npz"), fraction=0.7, num_batches=98),
        policy=Fixed(eps=8 / 255, step_size=2 / 255, steps=10),
        defense=TRADES(beta=5.0, label_smoothing=0.1),
        attack_train_mode=True,
        eps=8 / 255,
        epochs=400,
        batch_size=512,
        lr=0.2,
        momentum=0.9,
        nesterov=True,
        weight_decay=5e-4,
        decay_norm_and_bias=False,
        schedule=Cosine(warmup=0.025),
        ema=EMA(decay=0.995, update_after_step=980),
        val_steps=40,
        reported=Reported("Wang et al. 2023 (DM-Improves-AT), WRN-28-10, 1M generated, batch 512, 400 epochs",
                          clean=91.12, aa=63.35),
        description=__doc__,
    )
