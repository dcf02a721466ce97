"""The min-max loop: policy → attack → defense loss → step. It knows no policy or defense by name."""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from . import distributed
from .attacks import run_attacks
from .checkpoint import (STATE_PREFIXES, atomic_write, flatten_state, load_checkpoint, rng_state, save_checkpoint,
                         set_rng_state, unflatten_state, write_json)
from .data import Data, Loader, load_data
from .errors import CheckpointError, InvalidValueError
from .models import build_model, create_model
from .models.autocast import AMP_DTYPES
from .defenses import Defense
from .policies import AttackPolicy, Feedback
from .recipe import Recipe
from .strategy import Strategy

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` picks CUDA when there is one, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise InvalidValueError(f"device={device!r}; expected auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidValueError(f"device={device!r}, but this machine has no CUDA device; use cpu or auto")
    return resolved


def resolve_amp(amp: str | None, device: torch.device) -> str | None:
    """`auto`: bf16 on GPUs that support it, fp16 (with a grad scaler) on older GPUs, fp32 on the CPU."""
    if amp not in (None, "none", "auto", "bf16", "fp16"):
        raise InvalidValueError(f"amp={amp!r}; expected auto, bf16, fp16 or none")
    if amp == "auto":
        if device.type != "cuda":
            return None
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return None if amp == "none" else amp


@contextlib.contextmanager
def train_mode(model: nn.Module, training: bool) -> Iterator[None]:
    was = model.training
    model.train(training)
    try:
        yield
    finally:
        model.train(was)


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """`torch.autocast` for `dtype`, or nothing when `dtype` is None (fp32)."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def adversarial_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, policy: AttackPolicy,
                     defense: Defense, optimizer: torch.optim.Optimizer, *,
                     scaler: torch.amp.GradScaler | None = None, amp_dtype: torch.dtype | None = None,
                     attack_train_mode: bool = False,
                     train_model: nn.Module | None = None) -> tuple[Strategy, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One min-max step: a = policy(x); x_adv = g(x, a, w); loss at (perturbed) w; policy update; w step.

    `train_model` runs the training loss (the DDP wrapper of `model` in data-parallel runs, whose backward
    all-reduces the gradients); the attack runs on `model` itself, so ranks never wait on each other's
    per-sample step counts. Returns the strategy, x_adv, the per-sample loss and the logits on x_adv.
    """
    strategy = policy.strategy(model, x, y)
    with train_mode(model, attack_train_mode), autocast(x.device, amp_dtype):
        x_adv = defense.attack(model, x, y, strategy)
    optimizer.zero_grad(set_to_none=True)
    with autocast(x.device, amp_dtype), defense.perturb_weights(model, x, x_adv, y, strategy):
        loss, logits = defense.loss(train_model or model, x, x_adv, y, strategy)
        (scaler.scale(loss.mean()) if scaler else loss.mean()).backward()
    if scaler:
        scaler.unscale_(optimizer)  # the policy sees true gradients
    policy.update(Feedback(model, x, y, x_adv, strategy, loss.detach(), optimizer.param_groups[0]["lr"]))
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return strategy, x_adv, loss, logits


class Trainer:
    """Runs a recipe into `out_dir`: last/best checkpoints, metrics.jsonl, config.json; resumes exactly.

    Under torchrun (`WORLD_SIZE` > 1) it trains data-parallel: `recipe.batch_size` is the global batch,
    split over the ranks; gradients are all-reduced by DDP; only rank 0 writes files.
    `amp="auto"` is bf16 on GPUs that support it (fp16 with a grad scaler on older ones), fp32 on the CPU.
    `compile` compiles the model (attack and training passes) with `torch.compile`, in that mode.
    `sync_bn` (CUDA, data parallel) computes BatchNorm statistics over the global batch.
    """

    def __init__(self, recipe: Recipe, out_dir: str | Path, *, device: str = "auto", amp: str | None = "auto",
                 channels_last: bool = False, compile: bool | str = False, sync_bn: bool = False,
                 data: Data | None = None, progress: bool = True,
                 recipe_sha256: str | None = None, recipe_path: str | None = None):
        self.dist, self.device = distributed.setup(resolve_device(device))
        amp = resolve_amp(amp, self.device)
        compile_mode = "default" if compile is True else (compile or None)
        if compile_mode is not None and compile_mode not in COMPILE_MODES:
            raise InvalidValueError(f"compile={compile!r}; expected one of {', '.join(COMPILE_MODES)}")
        if sync_bn and self.device.type != "cuda":
            raise InvalidValueError(f"sync_bn=True on {self.device}; torch's SyncBatchNorm needs CUDA devices")
        if sync_bn and recipe.attack_train_mode:
            raise InvalidValueError("sync_bn=True with attack_train_mode=True; per-sample attacks run a different "
                                    "number of passes on each rank, so their BatchNorm cannot synchronize")
        if self.device.type == "cuda":  # a few batch shapes (active sets) recur all run long; benchmarking
            # picks algorithms by timing, so a run with deterministic algorithms on keeps it off
            torch.backends.cudnn.benchmark = not torch.are_deterministic_algorithms_enabled()
        self.recipe, self.out = recipe, Path(out_dir)
        self.progress = progress and self.dist.is_main
        self.amp_dtype = AMP_DTYPES.get(amp) if amp else None
        self.channels_last = channels_last
        torch.manual_seed(recipe.seed)  # the same initial weights (and LAS strategy network) on every rank
        self.data = data or load_data(recipe.dataset, recipe.data_dir, val_size=recipe.val_size,
                                      download=recipe.download, seed=recipe.seed, train_subset=recipe.train_subset)
        d = self.data
        model = create_model(recipe.model, num_classes=d.num_classes, mean=d.mean, std=d.std,
                             in_chans=d.in_chans, **recipe.model_kwargs)
        if sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        recipe.policy.setup(self.model)
        if compile_mode:
            self.model.compile(mode=compile_mode)  # in place: state_dict keys stay the model's own
        self.train_model: nn.Module = self.model
        if self.dist.enabled:
            self.train_model = nn.parallel.DistributedDataParallel(  # BatchNorm statistics: see train_epoch
                self.model, device_ids=[self.device] if self.device.type == "cuda" else None,
                broadcast_buffers=False)
            torch.manual_seed(rank_seed(recipe.seed, self.dist.rank))  # each rank its own attack noise
        self._bn_stats = [] if sync_bn else [b for name, b in self.model.named_buffers()
                                             if name.endswith(("running_mean", "running_var"))]
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                         weight_decay=recipe.weight_decay, nesterov=recipe.nesterov)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.loader = Loader(d.train, recipe.batch_size, shuffle=True, augment=d.augment, drop_last=True,
                             device=self.device, seed=recipe.seed, rank=self.dist.rank,
                             world_size=self.dist.world_size)
        self.epoch, self.step, self.best = 0, 0, -1.0
        self.run_info = {"model": self.model.config, "recipe": recipe.summary(), "recipe_path": recipe_path,
                         "recipe_sha256": recipe_sha256,
                         "dataset": {"name": d.name, "data_dir": recipe.data_dir, "classes": d.classes,
                                     "input_size": list(d.train.x.shape[1:]),
                                     "val_size": recipe.val_size, "seed": recipe.seed},
                         "threat_model": {"norm": "Linf", "eps": recipe.eps},
                         "amp": amp, "channels_last": channels_last, "compile": compile_mode,
                         "world_size": self.dist.world_size, "sync_bn": sync_bn}

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train to `recipe.epochs`, continuing from `out_dir/last.safetensors` when `resume`."""
        main = self.dist.is_main  # rank 0 alone writes; every rank reads on resume
        if resume:
            self.load_state(self.out / "last.safetensors")
        elif main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "metrics.jsonl").unlink(missing_ok=True)
        if main:
            write_json(self.out / "config.json", self.run_info)
        record: dict[str, Any] = {}
        for epoch in range(self.epoch, self.recipe.epochs):
            start = time.perf_counter()
            train = self.train_epoch(epoch)
            val = self.validate()
            self.epoch = epoch + 1
            record = {"epoch": self.epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                      **train, **val, "seconds": round(time.perf_counter() - start, 3)}
            is_best = len(self.data.val) == 0 or val["val_robust_acc"] > self.best  # no val split: best = last
            self.best = max(self.best, val["val_robust_acc"])
            local = self.local_states()  # every rank's RNG state (a collective: all ranks call it)
            if main:  # metrics, then best, then last: a crash before `last` is written replays the epoch
                self._write_metrics([*self._read_metrics(), record])
                if is_best:
                    self.save_weights(self.out / "best.safetensors", record)
                self.save_state(self.out / "last.safetensors", record, local)
        distributed.barrier()
        return record

    def _read_metrics(self) -> list[dict[str, Any]]:
        path = self.out / "metrics.jsonl"
        records = []
        for line in path.read_text().splitlines() if path.exists() else []:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def _write_metrics(self, records: list[dict[str, Any]]) -> None:
        atomic_write(self.out / "metrics.jsonl",
                     lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in records)))

    def train_epoch(self, epoch: int) -> dict[str, float]:
        recipe, model, device = self.recipe, self.model, self.device
        recipe.policy.start_epoch(epoch, recipe.epochs)
        recipe.defense.start_epoch(epoch, recipe.epochs)
        self.loader.set_epoch(epoch)
        model.train()
        if len(self.loader) == 0:
            raise InvalidValueError(f"{len(self.data.train)} training images make no full batch of "
                                    f"{recipe.batch_size}; expected at least batch_size images")
        totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss, correct, eps: on the device
        step_sums: dict[torch.device, torch.Tensor] = {}  # summed where the policy keeps them (Fixed: host)
        n = 0
        with self._progress(epoch) as update:
            for i, (x, y) in enumerate(self.loader):
                lr = recipe.lr * recipe.schedule((epoch + i / len(self.loader)) / recipe.epochs)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                strategy, x_adv, loss, logits = adversarial_step(
                    model, x, y, recipe.policy, recipe.defense, self.optimizer, scaler=self.scaler,
                    amp_dtype=self.amp_dtype, attack_train_mode=recipe.attack_train_mode,
                    train_model=self.train_model)
                if self.dist.enabled:  # ranks' BatchNorm statistics averaged: every rank attacks and validates
                    distributed.all_reduce_mean_(self._bn_stats)  # the same model, the one saved and resumed
                recipe.policy.record(strategy)
                self.step += 1
                with torch.no_grad():  # no host-device sync: each count is summed where it lives
                    totals += torch.stack([loss.detach().sum(), (logits.argmax(1) == y).sum(),
                                           strategy.eps.to(device).sum()]).double()
                    steps = strategy.steps.sum()
                    step_sums[steps.device] = step_sums[steps.device] + steps if steps.device in step_sums else steps
                n += len(y)
                update(i + 1, len(self.loader), totals, n, step_sums)
        steps = sum(float(v) for v in step_sums.values())
        counts = torch.cat([totals, torch.tensor([n, steps], dtype=torch.float64, device=device)])
        loss, correct, eps, n, steps = distributed.all_reduce_sum_(counts).tolist()  # all ranks
        return {"train_loss": loss / n, "train_robust_acc": correct / n, "mean_eps": eps / n,
                "mean_steps": steps / n, "strategy": recipe.policy.epoch_stats()}

    def validate(self) -> dict[str, float]:
        """Clean and PGD-K accuracy on the held-out split (the early-stopping signal of Rice et al.)."""
        if len(self.data.val) == 0:
            return {"val_clean_acc": 0.0, "val_robust_acc": 0.0}
        attack = f"pgd{self.recipe.val_steps}"
        shard = slice(self.dist.rank, None, self.dist.world_size)  # each rank its share; counts summed
        x, y = self.data.val.x[shard], self.data.val.y[shard]
        counts = torch.zeros(3, dtype=torch.float64, device=self.device)
        if len(y):
            with self._autocast():
                clean, robust = run_attacks(self.model, x.float() / 255, y, ["clean", attack], eps=self.recipe.eps,
                                            batch_size=256, seed=self.recipe.seed + self.dist.rank)
            counts += torch.tensor([round(clean.accuracy * len(y)), round(robust.accuracy * len(y)), len(y)],
                                   dtype=torch.float64, device=self.device)
        clean, robust, n = distributed.all_reduce_sum_(counts).tolist()
        return {"val_clean_acc": clean / n, "val_robust_acc": robust / n}

    # -- state ------------------------------------------------------------------------------------
    def save_weights(self, path: Path, record: dict[str, Any]) -> None:
        """Model weights alone, with what rebuilds the model (`config`) in the metadata."""
        tensors = {k: v for k, v in self.model.state_dict().items()}
        save_checkpoint(path, tensors, {"config": self.model.config, "run": self.run_info, "metrics": record})

    def local_states(self) -> list[dict[str, Any]]:
        """What differs between ranks (RNG streams, a policy's own generators), for every rank, in rank order."""
        return distributed.all_gather_object({"rng": rng_state(), "policy": self.recipe.policy.local_state_dict()})

    def save_state(self, path: Path, record: dict[str, Any], local: list[dict[str, Any]] | None = None) -> None:
        """Everything resume needs, in one atomic file (and a readable copy of its JSON state)."""
        local = local if local is not None else self.local_states()
        tensors = dict(self.model.state_dict())
        state = {"epoch": self.epoch, "step": self.step, "best": self.best, "metrics": record,
                 "config": self.model.config, "run": self.run_info, "world_size": self.dist.world_size,
                 "optimizer": flatten_state(self.optimizer.state_dict(), "optimizer", tensors),
                 "scaler": flatten_state(self.scaler.state_dict(), "scaler", tensors),
                 "policy": flatten_state(self.recipe.policy.state_dict(), "policy", tensors),
                 "local": flatten_state(local, "local", tensors)}
        tensors = {(k if k.split(".")[0] in STATE_PREFIXES else f"model.{k}"): v for k, v in tensors.items()}
        save_checkpoint(path, tensors, state)
        write_json(path.with_suffix(".json"), {k: v for k, v in state.items() if k not in ("optimizer", "local")})

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
        self.epoch, self.step, self.best = state["epoch"], state["step"], state["best"]
        local = unflatten_state(state.get("local", []), tensors)
        if "rng" in state:  # written before per-rank states existed (single process)
            local = [{"rng": unflatten_state(state["rng"], tensors), "policy": {}}]
        if len(local) == self.dist.world_size:
            set_rng_state(local[self.dist.rank]["rng"])
            self.recipe.policy.load_local_state_dict(local[self.dist.rank]["policy"])
        else:  # another number of processes: same weights and schedule, freshly seeded random streams
            torch.manual_seed(rank_seed(self.recipe.seed + self.epoch, self.dist.rank))
            if self.dist.is_main:
                print(f"resuming a {len(local)}-process run on {self.dist.world_size}: "
                      f"random streams re-seeded at epoch {self.epoch}", flush=True)
        if self.dist.is_main:  # drop the lines of an epoch that ended after the checkpoint was written
            self._write_metrics([r for r in self._read_metrics() if r.get("epoch", 0) <= self.epoch])

    # -- helpers ----------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.device, self.amp_dtype)

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

            def update(i: int, total: int, totals: torch.Tensor, n: int,
                       step_sums: dict[torch.device, torch.Tensor]) -> None:
                if i % every and i != total:
                    return
                loss, correct, eps = totals.tolist()
                steps = sum(float(v) for v in step_sums.values())
                bar.update(task, completed=i, stats=f"loss {loss / n:.3f} acc {correct / n:.3f} "
                                                    f"eps {eps / n * 255:.1f}/255 steps {steps / n:.1f}")
            yield update


def rank_seed(seed: int, rank: int) -> int:
    """The torch seed of `rank` in a data-parallel run: distinct per rank, fixed by the recipe's seed."""
    return (seed * 1_000_003 + 7919 * (rank + 1)) % (2 ** 63)


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint a run folder stands for (best, else last), or `path` itself when it is a file."""
    path = Path(path)
    if path.is_dir():
        path = next((p for p in (path / "best.safetensors", path / "last.safetensors") if p.is_file()),
                    path / "best.safetensors")
    return path


def load_model(path: str | Path, device: str = "cpu") -> nn.Module:
    """A trained model from a run folder (best, else last checkpoint) or a checkpoint file, in eval mode."""
    path = resolve_checkpoint(path)
    tensors, meta = load_checkpoint(path)
    if "config" not in meta:
        raise CheckpointError(f"{path} has no robustzoo model config in its metadata")
    model = build_model(meta["config"])
    prefix = "model." if "optimizer" in meta else ""  # a full training state, not weights alone
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix) and
             not k.split(".")[0] in STATE_PREFIXES}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not match its model config: {str(e).splitlines()[0]}") from None
    model.run_info = meta.get("run", {})
    return model.to(resolve_device(device)).eval()
