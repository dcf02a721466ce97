"""`robustzoo.evaluate`: robust accuracy of any model that maps [0,1] images to logits, on any data."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .. import distributed
from ..checkpoint import write_json
from ..data import Data, Split
from ..errors import EvaluationError, InvalidValueError
from ..models.autocast import Autocast, amp_dtype
from ..strategy import check_budget
from .attacks import (AttackResult, autoattack_run, check_adversarial, check_attack, check_autoattack, default_eps,
                      white_box)
from .guards import check_input_range, is_randomized
from .masking import sanity_checks


@dataclass
class RobustnessResult:
    """Accuracy per attack on `n` images, with the threat model and the settings that produced it."""

    results: list[AttackResult]
    n: int
    threat_model: dict[str, Any]
    seed: int
    batch_size: int
    indices: list[int] = field(default_factory=list)  # positions in `data` of the evaluated images, in order
    seconds: float = 0.0
    outcomes: dict[str, list[bool]] = field(default_factory=dict)  # per attack, per image (as `indices`)
    notes: list[str] = field(default_factory=list)  # what the guards changed or found, in words
    flags: list[dict[str, Any]] = field(default_factory=list)  # gradient-masking checks that fired
    sanity: dict[str, Any] = field(default_factory=dict)  # the numbers of the sanity checks
    record: dict[str, Any] = field(default_factory=dict)  # versions and options: what reproduces it

    @property
    def accuracy(self) -> dict[str, float]:
        """`{"clean": 0.84, "pgd20": 0.41, ..., "worst_case": 0.40}` (worst case when outcomes are kept)."""
        out = {r.attack: r.accuracy for r in self.results}
        if self.outcomes:
            out["worst_case"] = self.worst_case
        return out

    @property
    def worst_case(self) -> float:
        """Share of images that survive every attack run (the per-image AND over attacks)."""
        survive = [all(flags) for flags in zip(*self.outcomes.values())]
        return sum(survive) / max(len(survive), 1)

    def to_dict(self) -> dict[str, Any]:
        """The JSON record: accuracy per attack, settings, timings, per-image outcomes and the image indices."""
        return {"n": self.n, "threat_model": self.threat_model, "seed": self.seed, "batch_size": self.batch_size,
                "seconds": round(self.seconds, 3), "accuracy": self.accuracy,
                "results": [asdict(r) for r in self.results], "indices": self.indices,
                "outcomes": {k: [int(v) for v in vs] for k, vs in self.outcomes.items()}, "notes": self.notes,
                "flags": self.flags, "sanity": self.sanity, "record": self.record}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the result as JSON, atomically."""
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RobustnessResult":
        """Read a result written by `save`."""
        d = json.loads(Path(path).read_text())
        return cls([AttackResult(**r) for r in d["results"]], d["n"], d["threat_model"], d["seed"],
                   d["batch_size"], d.get("indices", []), d.get("seconds", 0.0),
                   {k: [bool(v) for v in vs] for k, vs in d.get("outcomes", {}).items()}, d.get("notes", []),
                   d.get("flags", []), d.get("sanity", {}), d.get("record", {}))

    def table(self, title: str = "") -> Any:
        """A rich Table: attack, accuracy, seconds."""
        from rich.table import Table

        eps, norm = self.threat_model["eps"], self.threat_model.get("norm", "Linf")
        budget = f"L∞ eps={eps * 255:.2f}/255" if norm == "Linf" else f"{norm} eps={eps:g}"
        table = Table(title=title or f"n={self.n}, {budget}, seed {self.seed}")
        for col in ("attack", "accuracy", "seconds"):
            table.add_column(col, justify="left" if col == "attack" else "right")
        for r in self.results:
            table.add_row(r.attack, f"{r.accuracy:.2%}", f"{r.seconds:.1f}")
        if len(self.outcomes) > 1:
            table.add_row("worst case (all attacks)", f"{self.worst_case:.2%}", f"{self.seconds:.1f}")
        return table

    def __rich__(self) -> Any:
        return self.table()


ORDERS = ("balanced", "first")  # which n images: class-balanced (default) or the data's first n (RobustBench)


def balanced_order(y: Tensor) -> Tensor:
    """Indices that interleave the classes (1st of each class, then 2nd of each...): any prefix is balanced.

    Within a class the data's own order is kept, so the order depends only on the labels."""
    y = y.long().cpu()
    if y.numel() == 0:
        return y
    order = torch.argsort(y, stable=True)
    counts = torch.bincount(y)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(y)
    rank[order] = torch.arange(len(y)) - starts[y[order]]  # position of each sample within its class
    return torch.argsort(rank * (int(y.max()) + 1) + y, stable=True)


def as_tensors(data: Any, convert: bool = True) -> tuple[Tensor, Tensor]:
    """(x float in [0,1], y long) from a robustzoo `Data`/`Split`, a pair of tensors, a Dataset or a DataLoader.

    `convert=False` leaves uint8 images as they are (convert the ones used with `as_float`)."""
    if isinstance(data, Data):
        data = data.test
    if isinstance(data, Split):
        return (as_float(data.x) if convert else data.x), data.y.long()
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        x, y = data
    elif isinstance(data, (torch.utils.data.DataLoader, torch.utils.data.Dataset)):
        items = data if isinstance(data, torch.utils.data.DataLoader) else \
            torch.utils.data.DataLoader(data, batch_size=256, shuffle=False)
        xs, ys = zip(*((xb, yb) for xb, yb, *_ in items))
        x, y = torch.cat([torch.as_tensor(v) for v in xs]), torch.cat([torch.as_tensor(v) for v in ys])
    else:
        raise InvalidValueError(f"data of type {type(data).__name__}; expected a robustzoo Data or Split, a pair "
                                f"of tensors (x, y), a Dataset or a DataLoader")
    if len(x) != len(y):
        raise InvalidValueError(f"data has {len(x)} images but {len(y)} labels")
    return (as_float(x) if convert else x), y.long()


def as_float(x: Tensor) -> Tensor:
    """uint8 images → float in [0, 1]; float images as float32."""
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


def evaluate(model: nn.Module, data: Any, attacks: Sequence[str] = ("clean", "pgd20", "aa"), *,
             eps: float | None = None, n: int | None = None, batch_size: int = 256, seed: int = 0,
             aa_version: str = "standard", aa_attacks: Sequence[str] | None = None, randomized: bool = False,
             sanity: bool | None = None, sanity_n: int = 200, chunk_size: int = 1000,
             state_path: str | os.PathLike | None = None, amp: str | None = None,
             norm: str = "Linf", order: str = "balanced") -> RobustnessResult:
    """Accuracy of `model` under each attack on the first `n` images of `data` in class-balanced order.

    The order interleaves the classes (`balanced_order`), so `n=1000` of a class-sorted test set takes 100
    of each of 10 classes. Same seed, same images → same numbers. Guards: inputs must be in [0, 1]; the
    model runs in eval mode and is put back; a randomized model is refused unless `randomized` (then
    AutoAttack runs its `rand` version); AutoAttack is fitted to the class count; every x_adv is checked
    and re-scored. Per-image outcomes are kept; `sanity` (default: on when `aa` runs) adds the masking
    checks on `sanity_n` images. With `state_path`, each finished chunk of `chunk_size` images is saved
    there and a restarted evaluation continues from it. Under torchrun each rank takes every world_size-th image.
    `amp` ("bf16" / "fp16") runs every model pass under autocast (`Autocast`; fp32 logits), e.g. to make
    AutoAttack cheaper on a GPU; the default is fp32, and the result records which ran. `eps` defaults to
    8/255 in L∞; `norm="L2"` makes it an L2 radius, to be given (e.g. 0.5): PGD-K and CW take normalized-gradient steps in the L2 ball, AutoAttack
    runs pyautoattack's L2 version, and x_adv is checked against ‖x_adv − x‖₂ ≤ eps. `order="first"` takes
    the first `n` in the data's own order instead (RobustBench's `n_examples`, for comparing with its
    numbers at n < the whole split); with every image both orders evaluate the same set.
    """
    attacks = [check_attack(a) for a in attacks]
    dtype = amp_dtype(amp)
    if dtype is not None:
        model = Autocast(model, dtype)
    eps = check_budget(default_eps(eps, norm), norm)
    if n is not None and n < 1:
        raise InvalidValueError(f"n={n!r}; expected a positive number of images or None for all")
    if batch_size < 1 or chunk_size < 1:
        raise InvalidValueError(f"batch_size={batch_size!r}, chunk_size={chunk_size!r}; expected positive integers")
    if "aa" in attacks:
        check_autoattack(aa_version, aa_attacks)
    if order not in ORDERS:
        raise InvalidValueError(f"order={order!r}; expected one of {', '.join(ORDERS)}")
    x, y = as_tensors(data, convert=False)  # only the evaluated images are converted
    picked = order
    order = (balanced_order(y) if picked == "balanced" else torch.arange(len(y)))[:n]
    check_input_range(as_float(x[order]))
    device = next(model.parameters()).device
    start, notes, was_training = time.perf_counter(), [], model.training
    if was_training:
        notes.append("the model was in train mode: evaluated in eval mode (BatchNorm statistics, dropout off), "
                     "then put back in train mode")
    model.eval()
    try:
        probe = as_float(x[order[:32]]).contiguous().to(device)
        with torch.no_grad():  # one pass gives the class count and the first logits of the determinism check
            logits = model(probe) if len(probe) else None
        num_classes = logits.shape[1] if logits is not None else 0
        randomness = logits is not None and is_randomized(model, probe, logits)
        if randomized and not randomness:
            notes.append("randomized=True, but the same images gave the same logits twice; AutoAttack still "
                         "runs its rand version as asked")
        if randomness:
            if not randomized:
                raise InvalidValueError("the model gives different logits for the same images (a randomized "
                                        "defense); expected a deterministic model, or pass randomized=True "
                                        "(--randomized) to evaluate it with AutoAttack's rand version (EOT)")
            notes.append("randomized model: AutoAttack runs its rand version (APGD with 20 EOT samples)")
        if randomized and "aa" in attacks and not aa_attacks:
            aa_version = "rand"
        options = {"attacks": attacks, "eps": eps, "n": len(order), "batch_size": batch_size, "seed": seed,
                   "aa_version": aa_version, "aa_attacks": list(aa_attacks) if aa_attacks else None,
                   "randomized": randomized, "chunk_size": chunk_size, "amp": amp if dtype is not None else None,
                   **({"order": picked} if picked != "balanced" else {}),
                   **({"norm": norm} if norm != "Linf" else {})}
        shard = order[distributed.get_rank()::distributed.get_world_size()]
        batches, settings = _attack_batches(model, x, y, shard, attacks, eps, batch_size, seed, aa_version,
                                            aa_attacks, num_classes, options, _rank_state(state_path), notes, norm)
        if sanity if sanity is not None else "aa" in attacks:
            subset = order[:sanity_n]
            flags, numbers = sanity_checks(model, as_float(x[subset]).contiguous().to(device),
                                           y[subset].to(device), eps, batch_size=batch_size, seed=seed, norm=norm)
        else:
            flags, numbers = [], {}
    finally:
        model.train(was_training)
    indices, outcomes, seconds = _collect(batches, attacks, order.tolist())
    results = [AttackResult(a, sum(outcomes[a]) / max(len(indices), 1), len(indices), seconds[a],
                            settings.get(a, {})) for a in attacks]
    record = {**options, "versions": versions(), "num_classes": num_classes}
    return RobustnessResult(results, len(indices), {"norm": norm, "eps": eps}, seed, batch_size, indices,
                            time.perf_counter() - start, outcomes, list(dict.fromkeys(notes)),
                            [f.to_dict() for f in flags], numbers, record)


def _rank_state(path: str | os.PathLike | None) -> Path | None:
    """This rank's state file (`X.rankR.json` under torchrun)."""
    if path is None:
        return None
    path = Path(path)
    world = distributed.get_world_size()
    return path if world == 1 else path.with_name(f"{path.stem}.rank{distributed.get_rank()}{path.suffix}")


def _attack_batches(model: nn.Module, x: Tensor, y: Tensor, shard: Tensor, attacks: list[str], eps: float,
                    batch_size: int, seed: int, aa_version: str, aa_attacks: Sequence[str] | None,
                    num_classes: int, options: dict[str, Any], state_path: Path | None,
                    notes: list[str], norm: str = "Linf") -> tuple[list[dict[str, Any]], dict[str, dict]]:
    """Each chunk's per-image outcomes under every attack; chunks already in the state file are kept.

    A chunk is `chunk_size` images (a multiple of `batch_size`): white-box attacks go batch by batch, each
    seeded from the seed and the batch's number; AutoAttack takes the chunk at once, so that it re-batches
    the images still robust after each of its attacks as in one uninterrupted call."""
    device = next(model.parameters()).device
    state = {"options": options, "indices": shard.tolist(), "chunks": {}}
    if state_path is not None and state_path.is_file():
        saved = json.loads(state_path.read_text())
        if saved.get("options") != options or saved.get("indices") != state["indices"]:
            raise EvaluationError(f"state file {state_path} belongs to another evaluation (options or images "
                                  f"differ); remove it or pass the same options")
        state = saved
    settings: dict[str, dict] = state.get("settings", {})
    chunk = -(-options["chunk_size"] // batch_size) * batch_size
    for number, begin in enumerate(range(0, len(shard), chunk)):
        if str(number) in state["chunks"]:
            continue
        idx = shard[begin:begin + chunk]
        xc, yc = as_float(x[idx]).contiguous().to(device), y[idx].contiguous().to(device)
        done: dict[str, Any] = {"indices": idx.tolist(), "outcomes": {}, "seconds": {}, "notes": []}
        for name in attacks:
            begun = time.perf_counter()
            if name == "aa":
                x_adv, reported, ran = autoattack_run(model, xc, yc, eps, version=aa_version, attacks=aa_attacks,
                                                      batch_size=batch_size, seed=seed, num_classes=num_classes,
                                                      norm=norm)
                settings[name] = ran
                done["notes"] += [f"AutoAttack adapted to {num_classes} classes: {c}" for c in ran["changes"]]
            else:
                parts, reported = [], None
                for b in range(0, len(idx), batch_size):
                    generator = torch.Generator().manual_seed(seed + 1_000_003 * ((begin + b) // batch_size))
                    x_b, settings[name] = white_box(model, xc[b:b + batch_size], yc[b:b + batch_size], name, eps,
                                                    generator, norm)
                    parts.append(x_b)
                x_adv = torch.cat(parts)
            check_adversarial(xc, x_adv, eps, name, norm=norm)
            with torch.no_grad():  # always re-scored from x_adv, in eval mode
                predicted = torch.cat([model(x_adv[b:b + batch_size]).argmax(1)
                                       for b in range(0, len(idx), batch_size)])
            if reported is not None and (disagree := int((reported.to(predicted.device) != predicted).sum())):
                done["notes"].append(f"{name}: {disagree} image(s) re-scored from x_adv differ from the "
                                     f"prediction the attack reported; the re-scored one counts")
            done["outcomes"][name] = (predicted == yc).tolist()
            done["seconds"][name] = time.perf_counter() - begun
        state["chunks"][str(number)] = done
        state["settings"] = settings
        if state_path is not None:
            write_json(state_path, state)
    chunks = [state["chunks"][k] for k in sorted(state["chunks"], key=int)]
    for done in chunks:
        notes.extend(done["notes"])
    gathered = distributed.all_gather_object(chunks)  # every rank's, for the result
    return [c for rank in gathered for c in rank], settings


def _collect(batches: list[dict[str, Any]], attacks: list[str], order: list[int]) -> tuple[
        list[int], dict[str, list[bool]], dict[str, float]]:
    """Indices, per-image outcomes and seconds, in evaluation `order` (whichever rank attacked them)."""
    position = {i: k for k, i in enumerate(order)}
    rows = sorted(((i, {a: b["outcomes"][a][k] for a in attacks}) for b in batches
                   for k, i in enumerate(b["indices"])), key=lambda r: position[r[0]])
    seconds = {a: sum(b["seconds"][a] for b in batches) for a in attacks}
    return ([i for i, _ in rows], {a: [bool(o[a]) for _, o in rows] for a in attacks}, seconds)


def versions() -> dict[str, str]:
    """The package versions an evaluation ran with."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"torch": torch.__version__}
    for name in ("timm", "pyautoattack", "robustzoo"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out



def compare(a: RobustnessResult, b: RobustnessResult) -> dict[str, dict[str, Any]]:
    """Per attack run in both: accuracy in each and the images (data indices) whose outcome changed."""
    if not a.outcomes or not b.outcomes:
        raise InvalidValueError("comparing needs per-image outcomes; expected results written by this version")
    pos_b = {i: k for k, i in enumerate(b.indices)}
    common = [(k, pos_b[i], i) for k, i in enumerate(a.indices) if i in pos_b]
    out = {}
    for attack in [x for x in a.outcomes if x in b.outcomes] + (["worst_case"] if a.outcomes else []):
        if attack == "worst_case":
            fa = [all(f) for f in zip(*a.outcomes.values())]
            fb = [all(f) for f in zip(*b.outcomes.values())]
        else:
            fa, fb = a.outcomes[attack], b.outcomes[attack]
        out[attack] = {"a": a.accuracy.get(attack), "b": b.accuracy.get(attack), "common": len(common),
                       "lost": [i for ka, kb, i in common if fa[ka] and not fb[kb]],
                       "gained": [i for ka, kb, i in common if not fa[ka] and fb[kb]]}
    return out
