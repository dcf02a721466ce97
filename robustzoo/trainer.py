"""The min-max loop: policy → attack → defense loss → step. It knows no policy or defense by name."""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from .attacks import run_attacks
from .checkpoint import (flatten_state, load_checkpoint, rng_state, save_checkpoint, set_rng_state,
                         unflatten_state, write_json)
from .data import Data, Loader, load_data
from .errors import CheckpointError, InvalidValueError
from .models import build_model, create_model
from .policies import Feedback
from .recipe import Recipe

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` picks CUDA when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise InvalidValueError(f"device={device!r}; expected auto, cpu, cuda or cuda:N") from None


@contextlib.contextmanager
def train_mode(model: nn.Module, training: bool) -> Iterator[None]:
    was = model.training
    model.train(training)
    try:
        yield
    finally:
        model.train(was)


class Trainer:
    """Runs a recipe into `out_dir`: last/best checkpoints, metrics.jsonl, config.json; resumes exactly."""

    def __init__(self, recipe: Recipe, out_dir: str | Path, *, device: str = "auto", amp: str | None = None,
                 channels_last: bool = False, data: Data | None = None, progress: bool = True,
                 recipe_sha256: str | None = None):
        if amp not in (None, "bf16", "fp16"):
            raise InvalidValueError(f"amp={amp!r}; expected bf16, fp16 or none")
        self.recipe, self.out = recipe, Path(out_dir)
        self.device, self.progress = resolve_device(device), progress
        self.amp_dtype = AMP_DTYPES.get(amp) if amp else None
        self.channels_last = channels_last
        torch.manual_seed(recipe.seed)
        self.data = data or load_data(recipe.dataset, recipe.data_dir, val_size=recipe.val_size,
                                      download=recipe.download, seed=recipe.seed)
        d = self.data
        self.model = create_model(recipe.model, num_classes=d.num_classes, mean=d.mean, std=d.std,
                                  in_chans=d.in_chans, **recipe.model_kwargs).to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                         weight_decay=recipe.weight_decay, nesterov=recipe.nesterov)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.loader = Loader(d.train, recipe.batch_size, shuffle=True, augment=d.augment, drop_last=True,
                             device=self.device, seed=recipe.seed)
        self.epoch, self.step, self.best = 0, 0, -1.0
        self.run_info = {"model": self.model.config, "recipe": recipe.summary(), "recipe_sha256": recipe_sha256,
                         "dataset": {"name": d.name, "data_dir": recipe.data_dir, "classes": d.classes,
                                     "val_size": recipe.val_size, "seed": recipe.seed},
                         "threat_model": {"norm": "Linf", "eps": recipe.eps},
                         "amp": amp, "channels_last": channels_last}

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train to `recipe.epochs`, continuing from `out_dir/last.safetensors` when `resume`."""
        if resume:
            self.load_state(self.out / "last.safetensors")
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "metrics.jsonl").unlink(missing_ok=True)
        write_json(self.out / "config.json", self.run_info)
        record: dict[str, Any] = {}
        for epoch in range(self.epoch, self.recipe.epochs):
            start = time.perf_counter()
            train = self.train_epoch(epoch)
            val = self.validate()
            self.epoch = epoch + 1
            record = {"epoch": self.epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                      **train, **val, "seconds": round(time.perf_counter() - start, 3)}
            is_best = val["val_robust_acc"] > self.best
            self.best = max(self.best, val["val_robust_acc"])
            self.save_state(self.out / "last.safetensors", record)
            if is_best:
                self.save_weights(self.out / "best.safetensors", record)
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        return record

    def train_epoch(self, epoch: int) -> dict[str, float]:
        recipe, model, device = self.recipe, self.model, self.device
        recipe.policy.start_epoch(epoch, recipe.epochs)
        recipe.defense.start_epoch(epoch, recipe.epochs)
        self.loader.set_epoch(epoch)
        model.train()
        totals = torch.zeros(5, device=device)  # loss, correct, n, eps, steps
        with self._progress(epoch) as update:
            for i, (x, y) in enumerate(self.loader):
                lr = recipe.lr * recipe.schedule((epoch + i / len(self.loader)) / recipe.epochs)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                strategy = recipe.policy.strategy(model, x, y)
                with train_mode(model, recipe.attack_train_mode), self._autocast():
                    x_adv = recipe.defense.attack(model, x, y, strategy)
                with self._autocast():
                    loss, logits = recipe.defense.loss(model, x, x_adv, y, strategy)
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss.mean()).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                recipe.policy.update(Feedback(model, x, y, x_adv, strategy, loss.detach(), lr))
                self.step += 1
                with torch.no_grad():
                    totals += torch.stack([loss.detach().sum(), (logits.argmax(1) == y).sum(),
                                           torch.tensor(len(y), device=device),
                                           strategy.eps.to(device).sum(), strategy.steps.to(device).sum()])
                update(i + 1, len(self.loader), totals)
        loss, correct, n, eps, steps = totals.tolist()
        n = max(n, 1)
        return {"train_loss": loss / n, "train_robust_acc": correct / n, "mean_eps": eps / n,
                "mean_steps": steps / n}

    def validate(self) -> dict[str, float]:
        """Clean and PGD-K accuracy on the held-out split (the early-stopping signal of Rice et al.)."""
        if len(self.data.val) == 0:
            return {"val_clean_acc": 0.0, "val_robust_acc": 0.0}
        attack = f"pgd{self.recipe.val_steps}"
        with self._autocast():
            clean, robust = run_attacks(self.model, self.data.val.x.float() / 255, self.data.val.y,
                                        ["clean", attack], eps=self.recipe.eps, batch_size=256,
                                        seed=self.recipe.seed)
        return {"val_clean_acc": clean.accuracy, "val_robust_acc": robust.accuracy}

    # -- state ------------------------------------------------------------------------------------
    def save_weights(self, path: Path, record: dict[str, Any]) -> None:
        """Model weights alone, with what rebuilds the model (`config`) in the metadata."""
        tensors = {k: v for k, v in self.model.state_dict().items()}
        save_checkpoint(path, tensors, {"config": self.model.config, "run": self.run_info, "metrics": record})

    def save_state(self, path: Path, record: dict[str, Any]) -> None:
        """Everything resume needs, in one atomic file (and a readable copy of its JSON state)."""
        tensors = dict(self.model.state_dict())
        state = {"epoch": self.epoch, "step": self.step, "best": self.best, "metrics": record,
                 "config": self.model.config, "run": self.run_info,
                 "optimizer": flatten_state(self.optimizer.state_dict(), "optimizer", tensors),
                 "scaler": flatten_state(self.scaler.state_dict(), "scaler", tensors),
                 "policy": flatten_state(self.recipe.policy.state_dict(), "policy", tensors),
                 "rng": flatten_state(rng_state(), "rng", tensors)}
        tensors = {(k if k.split(".")[0] in ("optimizer", "scaler", "policy", "rng") else f"model.{k}"): v
                   for k, v in tensors.items()}
        save_checkpoint(path, tensors, state)
        write_json(path.with_suffix(".json"), {k: v for k, v in state.items() if k not in ("optimizer", "rng")})

    def load_state(self, path: Path) -> None:
        tensors, state = load_checkpoint(path)
        if state.get("config") != self.model.config:
            raise CheckpointError(f"{path} was written for model {state.get('config')}, not {self.model.config}")
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_state)
        self.optimizer.load_state_dict(unflatten_state(state["optimizer"], tensors))
        if state.get("scaler"):
            self.scaler.load_state_dict(unflatten_state(state["scaler"], tensors))
        self.recipe.policy.load_state_dict(unflatten_state(state["policy"], tensors))
        set_rng_state(unflatten_state(state["rng"], tensors))
        self.epoch, self.step, self.best = state["epoch"], state["step"], state["best"]
        metrics = self.out / "metrics.jsonl"  # drop lines of an epoch that ended after the checkpoint
        if metrics.exists():
            lines = [ln for ln in metrics.read_text().splitlines() if json.loads(ln)["epoch"] <= self.epoch]
            metrics.write_text("".join(ln + "\n" for ln in lines))

    # -- helpers ----------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @contextlib.contextmanager
    def _progress(self, epoch: int, every: int = 10) -> Iterator[Any]:
        """A rich progress bar showing loss, accuracy and mean eps/steps; reads the device every `every` steps."""
        if not self.progress:
            yield lambda *a: None
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn(f"epoch {epoch + 1}/{self.recipe.epochs}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), TextColumn("{task.fields[stats]}"), transient=False) as bar:
            task = bar.add_task("train", total=len(self.loader), stats="")

            def update(i: int, total: int, totals: torch.Tensor) -> None:
                if i % every and i != total:
                    return
                loss, correct, n, eps, steps = totals.tolist()
                bar.update(task, completed=i, stats=f"loss {loss / n:.3f} acc {correct / n:.3f} "
                                                    f"eps {eps / n * 255:.1f}/255 steps {steps / n:.1f}")
            yield update


def load_model(path: str | Path, device: str = "cpu") -> nn.Module:
    """A trained model from a run folder (best, else last checkpoint) or a checkpoint file, in eval mode."""
    path = Path(path)
    if path.is_dir():
        path = next((p for p in (path / "best.safetensors", path / "last.safetensors") if p.is_file()),
                    path / "best.safetensors")
    tensors, meta = load_checkpoint(path)
    if "config" not in meta:
        raise CheckpointError(f"{path} has no robustzoo model config in its metadata")
    model = build_model(meta["config"])
    prefix = "model." if any(k.startswith("optimizer.") for k in tensors) else ""
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix) and
             not k.split(".")[0] in ("optimizer", "scaler", "policy", "rng")}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not match its model config: {str(e).splitlines()[0]}") from None
    model.run_info = meta.get("run", {})
    return model.to(resolve_device(device)).eval()
