"""The min-max loop: policy → attack → defense loss → step. It knows no policy or defense by name."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from . import distributed, runs
from .checkpoint import (STATE_PREFIXES, atomic_write, dumps, flatten_state, load_checkpoint, rng_state,
                         save_checkpoint, set_rng_state, unflatten_state, write_json)
from .data import Data, StreamData, load_data, open_aux
from .evaluation import run_attacks
from .errors import (CheckpointError, InvalidValueError, PreemptedError, RunExistsError,
                     TrainingDivergedError)
from .models import build_model, create_model
from .models.autocast import AMP_DTYPES
from .defenses import Defense
from .epoch import EpochCounts
from .policies import AttackPolicy, Feedback
from .preemption import CheckpointClock, StopRequest
from .recipe import Recipe
from .strategy import Strategy

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")
FINITE_EVERY = 10  # steps between reads of the non-finite-loss flag (one host read each, none per step)


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
                     attack_train_mode: bool = False, final_eps: float | None = None,
                     train_model: nn.Module | None = None) -> tuple[Strategy, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One min-max step: a = policy(x); x_adv = g(x, a, w); loss at (perturbed) w; policy update; w step.

    `train_model` runs the training loss (the DDP wrapper of `model` in data-parallel runs, whose backward
    all-reduces the gradients); the attack runs on `model` itself, so ranks never wait on each other's
    per-sample step counts. `final_eps` projects x_adv onto that ball (of `strategy.norm`) around x before the
    loss (the strategy's own budgets shape only the attack path; `Recipe.final_clip`). Returns the strategy,
    x_adv, the per-sample loss and the logits on x_adv.
    """
    strategy = policy.strategy(model, x, y)
    with train_mode(model, attack_train_mode), autocast(x.device, amp_dtype):
        x_adv = attacked = defense.attack(model, x, y, strategy)
    if final_eps is not None and strategy.norm == "L2":
        delta = x_adv - x
        radius = delta.flatten(1).norm(dim=1).view((-1,) + (1,) * (x.dim() - 1))
        x_adv = (x + delta * torch.clamp(final_eps / (radius + 1e-12), max=1.0)).clamp(0.0, 1.0)
    elif final_eps is not None:  # x and x_adv are in [0, 1], so the projection stays there
        x_adv = torch.min(torch.max(x_adv, x - final_eps), x + final_eps)
    optimizer.zero_grad(set_to_none=True)
    with autocast(x.device, amp_dtype), defense.perturb_weights(model, x, x_adv, y, strategy):
        loss, logits = defense.loss(train_model or model, x, x_adv, y, strategy)
        (scaler.scale(loss.mean()) if scaler else loss.mean()).backward()
    if scaler:
        scaler.unscale_(optimizer)  # the policy sees true gradients
    group = optimizer.param_groups[0]
    decay = max(g.get("weight_decay", 0.0) for g in optimizer.param_groups)  # the decayed group's (no-decay first)
    policy.update(Feedback(model, x, y, attacked, strategy, loss.detach(), group["lr"], group.get("base_lr"),
                           decay))  # the attack's own x_adv (LAS's R1: before the clip)
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return strategy, x_adv, loss, logits


def build_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer: SGD (momentum, nesterov) or AdamW (`betas`); `decay_norm_and_bias=False` puts
    1-D parameters (norms, biases) in a group without weight decay (timm's `param_groups_weight_decay`)."""
    params: Any = model.parameters()
    if not recipe.decay_norm_and_bias:
        try:  # timm >= 1.0.10 exports it; 1.0.9 (the robustbench extra's pin) keeps it in optim_factory
            from timm.optim import param_groups_weight_decay
        except ImportError:
            from timm.optim.optim_factory import param_groups_weight_decay

        params = param_groups_weight_decay(model, recipe.weight_decay)
    if recipe.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay)
    return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                           nesterov=recipe.nesterov)


class Trainer:
    """Runs a recipe into `out_dir`: last/best checkpoints, metrics.jsonl, config.json; resumes exactly.

    Under torchrun (`WORLD_SIZE` > 1) it trains data-parallel: `recipe.batch_size` is the global batch,
    split over the ranks; gradients are all-reduced by DDP; only rank 0 writes files.
    `amp="auto"` is bf16 on GPUs that support it (fp16 with a grad scaler on older ones), fp32 on the CPU.
    `compile` compiles the model (attack and training passes) with `torch.compile`, in that mode.
    `sync_bn` (CUDA, data parallel) computes BatchNorm statistics over the global batch.
    `workers` sets the decoding processes of a streamed dataset (`Stream.workers`; not part of the run).
    `checkpoint_every` (minutes; 0: off) also writes an exact checkpoint inside an epoch; SIGTERM and SIGUSR1
    make the run finish its step, write one and stop (`PreemptedError`); a non-finite training loss stops it
    (`TrainingDivergedError`) before anything non-finite is written.
    """

    def __init__(self, recipe: Recipe, out_dir: str | Path, *, device: str = "auto", amp: str | None = "auto",
                 channels_last: bool = False, compile: bool | str = False, sync_bn: bool = False,
                 data: Data | StreamData | None = None, progress: bool = True, checkpoint_every: float = 30.0,
                 recipe_sha256: str | None = None, recipe_path: str | None = None, workers: int | None = None):
        if not checkpoint_every >= 0:
            raise InvalidValueError(f"checkpoint_every={checkpoint_every!r}; expected minutes >= 0 (0: only at "
                                    f"epoch ends)")
        self.checkpoint_every = float(checkpoint_every)
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
                                      download=recipe.download, seed=recipe.seed, train_subset=recipe.train_subset,
                                      stream=recipe.stream, aux=recipe.aux)
        d = self.data
        if recipe.aux is not None and d.aux is None:  # data passed in: map the recipe's auxiliary set
            d.aux = open_aux(recipe.aux.path, d.num_classes)
        if workers is not None and d.streamed:  # decoding processes: a property of the machine, not the run
            d.stream = dataclasses.replace(d.stream, workers=workers)
        model = create_model(recipe.model, num_classes=d.num_classes, mean=d.mean, std=d.std,
                             in_chans=d.in_chans, **recipe.model_kwargs)
        if sync_bn:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        recipe.policy.setup(self.model)
        # weight averaging (timm's ModelEmaV3): a copy of the model, updated after every step; BatchNorm
        # statistics are all-reduced before each update under DDP, so every rank holds the same average
        self.ema = recipe.ema.build(self.model) if recipe.ema else None
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
        self.optimizer = build_optimizer(self.model, recipe)
        for group in self.optimizer.param_groups:  # what policies scale their own LR by (Feedback.base_lr)
            group["base_lr"] = recipe.lr
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.loader = d.train_loader(recipe.batch_size, augment=recipe.augment, device=self.device, seed=recipe.seed,
                                     rank=self.dist.rank, world_size=self.dist.world_size,
                                     aux_per_batch=recipe.aux.per_batch(recipe.batch_size) if recipe.aux else 0,
                                     num_batches=recipe.aux.num_batches if recipe.aux else None)
        self.epoch, self.step, self.best = 0, 0, -1.0
        self.last_record: dict[str, Any] = {}  # the metrics of the last finished epoch
        self._epoch_state: dict[str, Any] | None = None  # a mid-epoch checkpoint's epoch, until it resumes
        self._clock = CheckpointClock(0, StopRequest())
        self.run_info = {"model": self.model.config, "recipe": recipe.summary(), "recipe_path": recipe_path,
                         "recipe_sha256": recipe_sha256,
                         "dataset": {"name": d.name, "data_dir": recipe.data_dir, "classes": d.classes,
                                     "input_size": list(d.input_size),
                                     "val_size": recipe.val_size, "seed": recipe.seed,
                                     **({"stream": d.stream.config()} if d.streamed else {})},
                         "threat_model": {"norm": recipe.norm, "eps": recipe.eps},
                         "amp": amp, "channels_last": channels_last, "compile": compile_mode,
                         "world_size": self.dist.world_size, "sync_bn": sync_bn}

    # -- the loop ---------------------------------------------------------------------------------
    def fit(self, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
        """Train to `recipe.epochs` into `out_dir`; returns the last epoch's metrics.

        A folder that holds a run is refused unless `resume` (continue it: same recipe, more epochs allowed;
        no checkpoint yet starts it) or `overwrite` (delete it and start over).
        """
        if resume and overwrite:
            raise InvalidValueError("resume=True with overwrite=True; expected one of them (--resume or --overwrite)")
        main = self.dist.is_main  # rank 0 alone writes; every rank reads on resume
        self._prepare_out(resume, overwrite)
        if main:
            write_json(self.out / "config.json", self.run_info)
        stop = StopRequest()
        self._clock = CheckpointClock(self.checkpoint_every, stop)
        if self.epoch >= self.recipe.epochs and main:
            print(f"{self.out}: the run has finished its {self.epoch} epochs; pass a larger --epochs to extend it",
                  flush=True)
        with stop.handlers():
            for epoch in range(self.epoch, self.recipe.epochs):
                start = time.perf_counter()
                train = self.train_epoch(epoch)
                val = self.validate()
                record = {"epoch": epoch + 1, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                          **train, **val, "seconds": round(time.perf_counter() - start, 3)}
                self._require_finite_weights(epoch)
                self.epoch, self.last_record = epoch + 1, record
                is_best = len(self.data.val) == 0 or val["val_robust_acc"] > self.best  # no val split: best = last
                self.best = max(self.best, val["val_robust_acc"])
                local = self.local_states()  # every rank's RNG state (a collective: all ranks call it)
                if main:  # metrics, then best, then last: a crash before `last` is written replays the epoch
                    self._write_metrics([*self._read_metrics(), record])
                    if is_best:
                        self.save_weights(self.out / "best.safetensors", record)
                    self.save_state(self.out / "last.safetensors", record, local)
                self._clock.saved()
        distributed.barrier()
        return self.last_record

    def _prepare_out(self, resume: bool, overwrite: bool) -> None:
        """Refuse what would destroy or mix runs; clear for `overwrite`; load the checkpoint to resume from."""
        problem = None
        if self.dist.is_main:
            try:
                runs.check_out(self.out)
                if overwrite:
                    if gone := runs.clear(self.out):
                        print(f"--overwrite: deleted the run in {self.out} ({', '.join(gone)})", flush=True)
                elif not resume:
                    runs.refuse_existing(self.out)
                elif not (self.out / "last.safetensors").is_file() and (self.out / "config.json").is_file():
                    runs.refuse_mixed(self.out, json.loads((self.out / "config.json").read_text()), self.run_info)
            except (InvalidValueError, RunExistsError) as e:
                problem = (type(e).__name__, str(e))
        problem = distributed.all_gather_object(problem)[0]  # rank 0 decides for all
        if problem:
            raise (RunExistsError if problem[0] == "RunExistsError" else InvalidValueError)(problem[1])
        checkpoint = self.out / "last.safetensors"
        if resume and checkpoint.is_file():
            self.load_state(checkpoint)
        elif self.dist.is_main:
            if resume:
                print(f"--resume: no checkpoint in {self.out} yet; starting the run", flush=True)
            (self.out / "metrics.jsonl").unlink(missing_ok=True)

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
        text = "".join(dumps(r) + "\n" for r in records)  # strict JSON: a non-finite number is null
        atomic_write(self.out / "metrics.jsonl", lambda tmp: Path(tmp).write_text(text))

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One epoch (from the batch a mid-epoch checkpoint stopped at); after every step it may write an exact
        checkpoint (interval due, or a stop signal: then it stops), and every `FINITE_EVERY` steps it checks
        that the loss stayed finite."""
        recipe, model, device = self.recipe, self.model, self.device
        recipe.policy.start_epoch(epoch, recipe.epochs)
        recipe.defense.start_epoch(epoch, recipe.epochs)
        model.train()
        if len(self.loader) == 0:
            raise InvalidValueError(f"{len(self.data.train)} training images make no full batch of "
                                    f"{recipe.batch_size}; expected at least batch_size images")
        run = EpochCounts.start(device, self._epoch_state, recipe.policy)
        self.loader.set_epoch(epoch, run.position, run.loader_state)
        self._epoch_state = None
        with self._progress(epoch) as update:
            for i, (x, y) in enumerate(self.loader, run.position):
                lr = recipe.lr * recipe.schedule((epoch + i / len(self.loader)) / recipe.epochs)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                strategy, x_adv, loss, logits = adversarial_step(
                    model, x, y, recipe.policy, recipe.defense, self.optimizer, scaler=self.scaler,
                    amp_dtype=self.amp_dtype, attack_train_mode=recipe.attack_train_mode,
                    final_eps=recipe.eps if recipe.final_clip else None, train_model=self.train_model)
                if self.dist.enabled:  # ranks' BatchNorm statistics averaged: every rank attacks and validates
                    distributed.all_reduce_mean_(self._bn_stats)  # the same model, the one saved and resumed
                recipe.policy.record(strategy)
                self.step += 1
                if self.ema is not None:
                    self.ema.update(model, step=self.step)
                run.add(loss, logits, y, strategy, self.step)
                update(i + 1, len(self.loader), run.totals, run.n, run.step_sums)
                if (i + 1) % FINITE_EVERY == 0:
                    self._require_finite_loss(run, epoch)
                save, stop = self._clock.after_step()
                if save or stop:
                    self._save_mid_epoch(run, epoch, i + 1, stop)
        self._require_finite_loss(run, epoch)
        if self._clock.settle():  # a stop asked for during the last step: keep the epoch, skip validation
            self._save_mid_epoch(run, epoch, len(self.loader), stop=True)
        return run.summary(recipe.policy)

    def _require_finite_loss(self, run: "EpochCounts", epoch: int) -> None:
        """Stop at a non-finite training loss (one host read; all ranks agree); nothing is written."""
        first = int(distributed.all_reduce_max_(run.first_bad.clone()))
        if first < 0:
            return
        kept = (f"last.safetensors and best.safetensors keep the finite weights of epoch {self.epoch}"
                if self.epoch else "no checkpoint holds non-finite weights")
        raise TrainingDivergedError(f"training diverged: the loss is not finite at step {first} (epoch {epoch + 1}); "
                                    f"{kept}; try a lower learning rate (lr={self.recipe.lr:g}) or --amp none")

    def _require_finite_weights(self, epoch: int) -> None:
        """Never write non-finite weights: one host read per checkpoint."""
        tensors = [p.detach() for p in self.model.parameters() if p.is_floating_point()]
        if self.ema is not None:  # the average is what gets written: its BatchNorm statistics too
            tensors += [t.detach() for t in self.ema.module.state_dict().values() if t.is_floating_point()]
        params = tensors
        if params and not bool(torch.stack([torch.isfinite(p).all() for p in params]).all()):
            raise TrainingDivergedError(f"training diverged: the weights are not finite in epoch {epoch + 1}; "
                                        f"nothing was written; try a lower learning rate "
                                        f"(lr={self.recipe.lr:g}) or --amp none")

    def _save_mid_epoch(self, run: "EpochCounts", epoch: int, position: int, stop: bool) -> None:
        """An exact checkpoint after `position` batches of `epoch` (every rank calls it); stop if asked."""
        self._require_finite_loss(run, epoch)
        self._require_finite_weights(epoch)
        local = self.local_states(run.local_state(self.recipe.policy))
        path = self.out / "last.safetensors"
        if self.dist.is_main:
            self.save_state(path, self.last_record, local,
                            position=position, loader_state=self.loader.generator_state())
        self._clock.saved()
        if stop:
            distributed.barrier()
            raise PreemptedError(f"{self._clock.stop.signal or 'a stop signal to another rank'}: stopped at "
                                 f"epoch {epoch + 1}, batch {position} of {len(self.loader)}; the exact state is "
                                 f"in {path}; run the same command with --resume to continue")

    @property
    def eval_model(self) -> nn.Module:
        """The weights the run is validated, selected and saved on: the average with EMA, else the model."""
        return self.ema.module if self.ema is not None else self.model

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
                clean, robust = run_attacks(self.eval_model, x.float() / 255, y, ["clean", attack], eps=self.recipe.eps,
                                            norm=self.recipe.norm,
                                            batch_size=256, seed=self.recipe.seed + self.dist.rank)
            counts += torch.tensor([round(clean.accuracy * len(y)), round(robust.accuracy * len(y)), len(y)],
                                   dtype=torch.float64, device=self.device)
        clean, robust, n = distributed.all_reduce_sum_(counts).tolist()
        return {"val_clean_acc": clean / n, "val_robust_acc": robust / n}

    # -- state ------------------------------------------------------------------------------------
    def save_weights(self, path: Path, record: dict[str, Any]) -> None:
        """Model weights alone (the average with EMA), with what rebuilds the model (`config`) in the metadata."""
        tensors = {k: v for k, v in self.eval_model.state_dict().items()}
        save_checkpoint(path, tensors, {"config": self.model.config, "run": self.run_info, "metrics": record})

    def local_states(self, epoch: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """What differs between ranks (RNG streams, a policy's own generators, a mid-epoch checkpoint's running
        counts), for every rank, in rank order (a collective)."""
        mine = {"rng": rng_state(), "policy": self.recipe.policy.local_state_dict(), **({"epoch": epoch} if epoch else {})}
        return distributed.all_gather_object(mine)

    def save_state(self, path: Path, record: dict[str, Any], local: list[dict[str, Any]] | None = None, *,
                   position: int = 0, loader_state: torch.Tensor | None = None) -> None:
        """Everything resume needs, in one atomic file (and a readable copy of its JSON state).

        `position` > 0: a mid-epoch state, `position` batches into epoch `self.epoch` + 1, with the loader's
        augmentation generator and (in `local`) every rank's running counts of that epoch."""
        local = local if local is not None else self.local_states()
        tensors = dict(self.model.state_dict())
        if self.ema is not None:  # the average beside the raw weights: a resume continues both
            tensors.update({f"ema.{k}": v for k, v in self.ema.module.state_dict().items()})
        state = {"epoch": self.epoch, "position": position, "step": self.step, "best": self.best, "metrics": record,
                 "config": self.model.config, "run": self.run_info, "world_size": self.dist.world_size,
                 "optimizer": flatten_state(self.optimizer.state_dict(), "optimizer", tensors),
                 "scaler": flatten_state(self.scaler.state_dict(), "scaler", tensors),
                 "policy": flatten_state(self.recipe.policy.state_dict(), "policy", tensors),
                 "local": flatten_state(local, "local", tensors),
                 "loader": flatten_state(loader_state if position else None, "local.loader", tensors)}
        tensors = {(k if k.split(".")[0] in STATE_PREFIXES else f"model.{k}"): v for k, v in tensors.items()}
        save_checkpoint(path, tensors, state)
        write_json(path.with_suffix(".json"), {k: v for k, v in state.items() if k not in ("optimizer", "local")})

    def load_state(self, path: Path) -> None:
        """Continue from a checkpoint of `save_state`: refused when the run there trained another recipe."""
        tensors, state = load_checkpoint(path)
        if state.get("run"):
            runs.refuse_mixed(self.out, state["run"], self.run_info)
        if state.get("config") != self.model.config:
            raise CheckpointError(f"{path} was written for model {state.get('config')}, not {self.model.config}")
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_state)
        ema_state = {k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")}
        if self.ema is not None:
            if not ema_state:
                raise RunExistsError(f"cannot resume {self.out}: the run there keeps no weight average (ema) and "
                                     f"this recipe has one; expected the recipe that started it, or --overwrite")
            self.ema.module.load_state_dict(ema_state)
        self.optimizer.load_state_dict(unflatten_state(state["optimizer"], tensors))
        for group in self.optimizer.param_groups:  # checkpoints older than `base_lr` lack it
            group["base_lr"] = self.recipe.lr
        if state.get("scaler"):
            self.scaler.load_state_dict(unflatten_state(state["scaler"], tensors))
        self.recipe.policy.load_state_dict(unflatten_state(state["policy"], tensors))
        self.epoch, self.step, self.best = state["epoch"], state["step"], state["best"]
        self.last_record = state.get("metrics") or {}
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
        if state.get("position"):  # mid-epoch: this rank's running counts (all of them on rank 0 if N changed)
            counts = [r.get("epoch", {}) for r in local]
            mine = counts[self.dist.rank] if len(local) == self.dist.world_size else \
                (EpochCounts.merge(counts) if self.dist.is_main else {})
            self._epoch_state = {"position": state["position"], "loader": unflatten_state(state["loader"], tensors),
                                 "counts": mine}
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
    """The checkpoint a run folder stands for (best, else last, else an import's model), or `path` itself."""
    path = Path(path)
    if path.is_dir():
        path = next((p for p in (path / "best.safetensors", path / "last.safetensors", path / "model.safetensors")
                     if p.is_file()), path / "best.safetensors")  # model.safetensors: an imported model
    return path


def load_model(path: str | Path, device: str = "cpu") -> nn.Module:
    """A trained model from a run folder (best, else last checkpoint) or a checkpoint file, in eval mode.

    A training state (`last.safetensors`) gives its weight average when the run keeps one (`Recipe.ema`),
    else its raw weights; a weights file (`best.safetensors`, `model.safetensors`) gives what it holds.
    """
    path = resolve_checkpoint(path)
    tensors, meta = load_checkpoint(path)
    if "config" not in meta:
        raise CheckpointError(f"{path} has no robustzoo model config in its metadata")
    model = build_model(meta["config"])
    prefix = ""
    if "optimizer" in meta:  # a full training state, not weights alone
        prefix = "ema." if any(k.startswith("ema.") for k in tensors) else "model."
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix) and
             (prefix or k.split(".")[0] not in STATE_PREFIXES)}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not match its model config: {str(e).splitlines()[0]}") from None
    model.run_info = meta.get("run", {})
    return model.to(resolve_device(device)).eval()
