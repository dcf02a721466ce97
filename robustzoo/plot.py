"""`robustzoo plot RUN_DIR`: training curves and the evolution of the eps distribution (LAS-AT Fig. 4)."""
from __future__ import annotations

import json
from pathlib import Path

from .checkpoint import atomic_write
from .errors import InvalidValueError, RobustzooError


def _records(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise InvalidValueError(f"{path} not found; expected a run folder written by `robustzoo train`")
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    if not records:
        raise InvalidValueError(f"{path} holds no finished epoch yet")
    return records


def plot_run(run_dir: str | Path) -> list[Path]:
    """Write `curves.png` (losses, accuracies) and `strategy.png` (eps/steps distributions per epoch)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RobustzooError("plotting needs matplotlib: pip install 'robustzoo[plot]'") from None
    run_dir = Path(run_dir)
    records = _records(run_dir)
    epochs = [r["epoch"] for r in records]
    written = []

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [r["train_loss"] for r in records], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    for key, label in (("train_robust_acc", "train (x_adv)"), ("val_clean_acc", "val clean"),
                       ("val_robust_acc", "val PGD")):
        ax_acc.plot(epochs, [r[key] for r in records], marker="o", label=label)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    ax_acc.legend()
    written.append(_save(fig, run_dir / "curves.png"))

    stats = [r.get("strategy", {}) for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, name, unit in zip(axes, ("eps", "step_size", "steps"), ("/255", "/255", "")):
        bins = sorted({int(b) for s in stats for b in s.get("hist", {}).get(name, {})})
        if not bins:
            ax.set_axis_off()
            continue
        bottom = [0.0] * len(records)
        colors = plt.cm.viridis([i / max(len(bins) - 1, 1) for i in range(len(bins))])
        for color, b in zip(colors, bins):
            share = [s.get("hist", {}).get(name, {}).get(str(b), 0) / max(s.get("n", 0), 1) for s in stats]
            ax.bar(epochs, share, bottom=bottom, color=color, label=f"{b}{unit}")
            bottom = [u + v for u, v in zip(bottom, share)]
        ax.set(xlabel="epoch", ylabel="share of training samples", title=f"{name} distribution per epoch")
        ax.legend(fontsize=7, ncol=2)
    written.append(_save(fig, run_dir / "strategy.png"))
    plt.close("all")
    return written


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return path
