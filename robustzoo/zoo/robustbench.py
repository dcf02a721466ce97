"""RobustBench in and out: import its models as robustzoo run folders, export results as its `model_info` JSON.

Import is the one place robustzoo reads a pickle: RobustBench ships `.pt` files. Before its `load_model`
reads one, the file is checked here: an HTML page (a failed Google Drive download, robustbench #68, #158)
is named as such, and the file must load with `torch.load(weights_only=True)`, which cannot run code;
a file that needs full unpickling is refused unless the caller trusts it (`trust_pickle=True`). The run
folder written holds safetensors only, so nothing after the import unpickles anything.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from .. import runs
from ..checkpoint import save_checkpoint, sha256_file, write_json
from ..errors import CheckpointError, InvalidValueError, RunExistsError
from ..models import Normalize, create_model
from ..models import robustbench as rbm
from .card import RobustnessCard

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
DEFAULT_EPS = {"Linf": 8 / 255, "L2": 0.5}  # RobustBench's CIFAR threat models
WEIGHTS = "model.safetensors"


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint that only full unpickling (which can run code) would read."""


# -- our architectures for RobustBench's ------------------------------------------------------------------
_WRN = {(28, 10): "cifar_wrn_28_10", (34, 10): "cifar_wrn_34_10", (34, 20): "cifar_wrn_34_20",
        (70, 16): "cifar_wrn_70_16"}


def native_architecture(net: nn.Module) -> tuple[str, dict[str, torch.Tensor], list[float], list[float]] | None:
    """(our architecture, its state dict, mean, std) for a RobustBench module we have, else None.

    RobustBench's `WideResNet` (TRADES' code, `model_zoo/architectures/wide_resnet.py`) computes what our
    `cifar_wrn_*` computes (same pre-activation blocks, shortcut on the activated input, 8×8 average pool);
    `Rice2020OverfittingNet` is that network behind a (x − mu) / sigma, which becomes our `Normalize`."""
    from robustbench.model_zoo.architectures.wide_resnet import WideResNet

    if type(net) is WideResNet:
        mean, std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]
    elif type(net).__name__ == "Rice2020OverfittingNet" and isinstance(net, WideResNet):
        mean, std = net.mu.flatten().tolist(), net.sigma.flatten().tolist()
    else:
        return None
    blocks = [net.block1.layer, net.block2.layer, net.block3.layer]
    n = len(blocks[0])
    widen = net.fc.in_features // 64
    name = _WRN.get((6 * n + 4, widen))
    if (name is None or hasattr(net, "sub_block1") or net.fc.bias is None or net.conv1.in_channels != 3
            or any(block.droprate for stage in blocks for block in stage)):
        return None
    state = {"conv1.weight": net.conv1.weight, "fc.weight": net.fc.weight, "fc.bias": net.fc.bias}
    state.update({f"bn.{k}": v for k, v in net.bn1.state_dict().items()})
    for i, block in enumerate(b for stage in blocks for b in stage):
        for ours, theirs in (("bn1", block.bn1), ("conv1", block.conv1), ("bn2", block.bn2), ("conv2", block.conv2),
                             ("shortcut", block.convShortcut)):
            if theirs is not None:
                state.update({f"blocks.{i}.{ours}.{k}": v for k, v in theirs.state_dict().items()})
    return name, {k: v.detach().clone() for k, v in state.items()}, mean, std


# -- reading RobustBench's files ----------------------------------------------------------------------------
def check_checkpoint(path: Path, *, trust_pickle: bool = False) -> None:
    """`path` is a checkpoint `torch.load(weights_only=True)` reads (or `trust_pickle`); else one clear error."""
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<?xml")) or b"<html" in head:
        raise CheckpointError(f"{path} is an HTML page, not a checkpoint (a failed Google Drive download); delete "
                              f"it and import again, or download the file by hand")
    if not head:
        raise CheckpointError(f"{path} is empty (an interrupted download); delete it and import again")
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" not in str(e) and "Unsupported" not in str(e):  # a corrupt file, not an unsafe one
            raise CheckpointError(f"{path} is not a readable torch checkpoint ({str(e).splitlines()[0][:160]}); "
                                  f"delete it and import again") from None
        if trust_pickle:
            return
        raise UnsafeCheckpointError(
            f"{path} cannot be read with torch.load(weights_only=True): it needs full unpickling, which can run "
            f"code ({str(e).splitlines()[0][:160]}); refusing. If you trust its source, pass --trust-pickle "
            f"(Python: trust_pickle=True)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable torch checkpoint ({str(e).splitlines()[0][:160]}); "
                              f"delete it and import again") from None


@contextlib.contextmanager
def _weights_only(trusted: bool) -> Iterator[None]:
    """Make robustbench's own `torch.load` weights-only (or, for a trusted file, a full load), then restore."""
    keys = ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    saved = {k: os.environ.pop(k, None) for k in keys}
    os.environ[keys[1] if trusted else keys[0]] = "1"
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


def read_model_info(source: str | Path, name: str, dataset: str, threat_model: str) -> dict[str, Any]:
    """An entry's `model_info` JSON: a file, or a RobustBench checkout (`model_info/DATASET/THREAT/NAME.json`).

    The package on PyPI does not ship these files. Some committed ones are not strict JSON (e.g.
    `Jia2022LAS-AT_34_10.json` has an unquoted link): a bare URL value is quoted before parsing."""
    path = Path(source).expanduser()
    if path.is_dir():
        for candidate in (path / "model_info" / dataset / threat_model / f"{name}.json",
                          path / dataset / threat_model / f"{name}.json", path / f"{name}.json"):
            if candidate.is_file():
                path = candidate
                break
        else:
            raise InvalidValueError(f"--model-info {source}: no model_info/{dataset}/{threat_model}/{name}.json "
                                    f"there; expected a RobustBench checkout or the entry's JSON file")
    if not path.is_file():
        raise InvalidValueError(f"--model-info {source} not found; expected a RobustBench checkout or a JSON file")
    try:
        text = re.sub(r'("\w+"\s*:\s*)(https?://[^",\s}]+)', r'\1"\2"', path.read_text(encoding="utf-8"))
        info = json.loads(text)
    except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InvalidValueError(f"--model-info {path} is not a model_info JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(info, dict):
        raise InvalidValueError(f"--model-info {path} is not a model_info JSON (expected an object)")
    _eps(info.get("eps"), threat_model, str(path))  # a bad eps is found before any download
    return info


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _eps(value: Any, threat_model: str, source: str = "model_info") -> float:
    """`"8/255"` / `0.5` / None → a float (RobustBench writes eps as a string fraction)."""
    if value in (None, ""):
        return DEFAULT_EPS[threat_model]
    try:
        if isinstance(value, str) and "/" in value:
            num, den = value.split("/", 1)
            eps = float(num) / float(den)
        else:
            eps = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        eps = -1.0
    if not 0 < eps < float("inf"):
        raise InvalidValueError(f"{source}: eps {value!r}; expected a positive budget such as \"8/255\" or 0.5")
    return eps


# -- import -----------------------------------------------------------------------------------------------
def import_robustbench(name: str, out: str | Path, *, dataset: str = "cifar10", threat_model: str = "Linf",
                       model_dir: str | Path = "./models", model_info: str | Path | None = None,
                       trust_pickle: bool = False, native: bool = True, overwrite: bool = False) -> Path:
    """Load RobustBench's `name` through `robustbench.utils.load_model` and write a robustzoo run folder.

    The folder holds `model.safetensors` (weights + config), `config.json` and `card.md` (provenance: the
    entry, its paper and its reported numbers when `model_info` is given). Where the architecture is ours
    (`native_architecture`) the weights are converted to it and equal logits are checked; elsewhere the
    config names RobustBench's module (`robustbench:DATASET/THREAT/NAME`), which loading rebuilds from the
    `robustbench` package. A missing checkpoint is downloaded by robustbench's own downloader."""
    out = Path(out)
    runs.check_not_a_file(out)
    if runs.found(out) and not overwrite:
        raise RunExistsError(f"{out} already holds a run ({runs.describe(out)}); pass --overwrite to replace it")
    info = read_model_info(model_info, name, dataset, threat_model) if model_info else {}
    spec = rbm.entry(name, dataset, threat_model)
    from robustbench import utils as rbu

    if isinstance(spec.get("gdrive_id"), list):
        paths = [Path(model_dir) / dataset / threat_model / f"{name}.pt_m{i}.pt" for i in range(len(spec["gdrive_id"]))]
    else:
        paths = [Path(model_dir) / dataset / threat_model / f"{name}.pt"]
    for i, path in enumerate(paths):
        if not path.is_file():
            gid = spec["gdrive_id"][i] if len(paths) > 1 else spec["gdrive_id"]
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise InvalidValueError(f"--model-dir {model_dir} cannot be written ({e.strerror or e})") from None
            try:
                rbu.download_gdrive_new(gid, path)  # needs the internet; robustbench's own downloader
            except Exception as e:  # gdown / requests raise their own types (no network, quota, a moved file)
                raise CheckpointError(f"{path} not found and RobustBench's download failed ({type(e).__name__}: "
                                      f"{str(e).splitlines()[0][:160] if str(e) else ''}); put the entry's "
                                      f"checkpoint there by hand") from None
            if not path.is_file():
                raise CheckpointError(f"{path} not found and RobustBench's download wrote nothing; put the entry's "
                                      f"checkpoint there by hand")
        check_checkpoint(path, trust_pickle=trust_pickle)
    with _weights_only(trust_pickle), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            net = rbu.load_model(name, model_dir=str(model_dir), dataset=dataset, threat_model=threat_model).eval()
        except (RuntimeError, KeyError, ValueError, TypeError) as e:
            raise CheckpointError(f"{paths[0]} does not fit RobustBench's {name} ({type(e).__name__}: "
                                  f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None
    checkpoint_sha = [sha256_file(p) for p in paths]
    converted = native_architecture(net) if native else None
    num_classes = rbm.DATASETS[dataset]
    if converted:
        arch, state, mean, std = converted
        model = create_model(arch, num_classes=num_classes, mean=mean, std=std).eval()
        model.model.load_state_dict(state)
        max_diff, scale = _max_logit_difference(net, model, dataset)
        if max_diff > 1e-5 * max(1.0, scale):
            raise CheckpointError(f"{name}: converted to {arch} but logits differ by {max_diff:.2e}; a conversion bug "
                                  f"(re-run with --no-native to keep RobustBench's module)")
    else:
        arch = rbm.architecture_name(name, dataset, threat_model)
        model = Normalize(rbm.with_timm_attributes(net, arch), [0.0, 0.0, 0.0], [1.0, 1.0, 1.0])
        model.config = {"architecture": arch, "num_classes": num_classes, "in_chans": 3, "img_size": None,
                        "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "model_kwargs": {}}
        max_diff = None
    eps = _eps(info.get("eps"), threat_model)
    provenance = {"source": "robustbench", "entry": name, "dataset": dataset, "threat_model": threat_model,
                  "paper": info.get("name"), "link": info.get("link"), "authors": info.get("authors"),
                  "venue": info.get("venue"), "architecture": info.get("architecture"),
                  "additional_data": info.get("additional_data"), "license": info.get("license"),
                  "reported_clean": _number(info.get("clean_acc")),
                  "reported_autoattack": _number(info.get("autoattack_acc")),
                  "reported_by_paper": _number(info.get("reported")),
                  "checkpoint_sha256": checkpoint_sha, "converted_to": arch if converted else None,
                  "max_logit_difference": max_diff, "robustbench_version": _version("robustbench")}
    run_info = {"model": model.config,
                "dataset": {"name": dataset, "classes": CIFAR10_CLASSES if dataset == "cifar10" else None,
                            "input_size": [3, 32, 32] if dataset.startswith("cifar") else [3, 224, 224],
                            "val_size": 0, "seed": 0},
                "threat_model": {"norm": threat_model, "eps": eps}, "imported": provenance}
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        runs.clear(out)
    save_checkpoint(out / WEIGHTS, model.state_dict(), {"config": model.config, "run": run_info})
    write_json(out / "config.json", run_info)
    card_for_import(run_info).save(out / "card.md")
    return out


def _max_logit_difference(theirs: nn.Module, ours: nn.Module, dataset: str) -> tuple[float, float]:
    """Largest |logit difference| of the two models on 8 seeded random images, and the largest |logit|."""
    size = 32 if dataset.startswith("cifar") else 224
    x = torch.rand(8, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = theirs(x), ours(x)
    return float((a - b).abs().max()), float(a.abs().max())


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def card_for_import(run_info: dict[str, Any]) -> RobustnessCard:
    """The card of an imported model: RobustBench's entry as provenance, its reported numbers as targets."""
    p, model = run_info["imported"], run_info["model"]
    paper = {k: p[f] for k, f in (("clean", "reported_clean"), ("aa", "reported_autoattack")) if p.get(f) is not None}
    if paper:  # RobustBench's own AutoAttack numbers (the leaderboard's), as targets
        paper = {"source": f"RobustBench leaderboard ({p['entry']})", **paper}
    lines = [f"Imported from RobustBench entry `{p['entry']}` ({p['dataset']}, {p['threat_model']}) with "
             f"`robustzoo import` (robustbench {p.get('robustbench_version')}); not trained by robustzoo."]
    if p.get("paper"):
        lines.append(f"Paper: {p['paper']} — {p.get('authors') or '?'}, {p.get('venue') or '?'} "
                     f"({p.get('link') or '—'}).")
    lines.append(f"Licence: {p.get('license') or 'not stated by the RobustBench entry; see the paper authors'}.")
    if p.get("converted_to"):
        lines.append(f"Weights converted to robustzoo's `{p['converted_to']}`: max |logit difference| against "
                     f"RobustBench's module {p['max_logit_difference']:.1e} on 8 random images.")
    else:
        lines.append("The architecture is RobustBench's own module: loading needs `pip install "
                     "\"robustzoo[robustbench]\"`.")
    lines.append("Original checkpoint sha256: " + ", ".join(f"`{s}`" for s in p["checkpoint_sha256"]) + ".")
    return RobustnessCard(name=p["entry"], architecture=model["architecture"], dataset=p["dataset"],
                          num_classes=int(model["num_classes"]), threat_model=dict(run_info["threat_model"]),
                          policy="unknown", defense="unknown", paper=paper, provenance=dict(p),
                          license="other" if not p.get("license") else str(p["license"]).lower(),
                          description="\n\n".join(lines))


# -- export -----------------------------------------------------------------------------------------------
MODEL_INFO_FIELDS = ("link", "name", "authors", "additional_data", "number_forward_passes", "dataset", "venue",
                     "architecture", "eps", "clean_acc", "reported", "autoattack_acc", "footnote")


def model_info(result: dict[str, Any], card: RobustnessCard | None = None, **overrides: Any) -> dict[str, Any]:
    """RobustBench's `model_info` fields (its `ModelInfo`) from an evaluation (`RobustnessResult.to_dict()`)
    and the model's card.

    Accuracies are percentages as strings with two decimals, eps as RobustBench writes it ("8/255"); what
    neither the result nor the card knows (authors, venue, link) is left None for the submitter to fill."""
    acc, options = result.get("accuracy", {}), result.get("record", {})
    if "aa" not in acc:
        raise InvalidValueError("--robustbench-json needs an AutoAttack result (add aa to --attack)")
    if result.get("n") not in (None, 10000):
        overrides.setdefault("footnote", f"robustzoo evaluation on {result['n']} test images "
                                         f"({options.get('order', 'balanced')} order), not the full 10,000")
    prov = (card.provenance if card else None) or {}
    eps = result.get("threat_model", {}).get("eps")
    norm = result.get("threat_model", {}).get("norm", "Linf")
    eps_text = (f"{round(eps * 255)}/255" if norm == "Linf" and abs(eps * 255 - round(eps * 255)) < 1e-6
                else f"{eps:g}") if eps is not None else None
    info = {"link": prov.get("link"), "name": prov.get("paper") or (card.name if card else None),
            "authors": prov.get("authors"), "additional_data": prov.get("additional_data", False),
            "number_forward_passes": 1, "dataset": options.get("dataset") or (card.dataset if card else None),
            "venue": prov.get("venue"),
            "architecture": prov.get("architecture") or (card.architecture if card else None), "eps": eps_text,
            "clean_acc": f"{100 * acc['clean']:.2f}" if "clean" in acc else None,
            "reported": (f"{prov['reported_by_paper']:g}" if prov.get("reported_by_paper") is not None else
                         f"{card.paper['aa']:g}" if card and card.paper.get("aa") is not None else None),
            "autoattack_acc": f"{100 * acc['aa']:.2f}", "footnote": None}
    info.update(overrides)
    return {k: info.get(k) for k in MODEL_INFO_FIELDS}
