"""RobustBench's architectures as robustzoo models: its own classes, built by its own model zoo.

Used only when a RobustBench entry is not one of our architectures (`robustzoo import` converts those to
ours); needs the optional extra `pip install "robustzoo[robustbench]"`. The architecture name is
`robustbench:<dataset>/<threat model>/<entry>`, e.g. `robustbench:cifar10/Linf/Rice2020Overfitting`.
"""
from __future__ import annotations

import sys
import warnings
from types import ModuleType
from typing import Any

from torch import nn

from ..errors import InvalidValueError, MissingExtraError, UnknownNameError

PREFIX = "robustbench:"
DATASETS = {"cifar10": 10, "cifar100": 100}  # what robustzoo can evaluate (ImageNet and corruptions: not yet)
THREAT_MODELS = ("Linf", "L2")


def robustbench() -> ModuleType:
    """The `robustbench` package, importable as shipped on PyPI (1.1.1).

    robustbench 1.1.1 imports AutoAttack as `autoattack` (its name when installed from git), while its own
    requirement `pyautoattack` installs it as `pyautoattack`: the same code, so the name is aliased here."""
    try:
        import pyautoattack
        import pyautoattack.state
    except ImportError:  # pragma: no cover - pyautoattack is a core dependency
        pyautoattack = None
    if pyautoattack is not None and "autoattack" not in sys.modules:
        try:
            import autoattack  # noqa: F401  (the git install, if present, wins)
        except ImportError:
            sys.modules["autoattack"] = pyautoattack
            sys.modules["autoattack.state"] = pyautoattack.state
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its imports warn about deprecated torch.jit / timm APIs
            import robustbench as rb
            import robustbench.utils  # noqa: F401
    except ImportError as e:
        raise MissingExtraError(f"RobustBench models need the robustbench package ({e}); install it with "
                                f"pip install \"robustzoo[robustbench]\"") from None
    return rb


def entries(dataset: str, threat_model: str) -> dict[str, dict[str, Any]]:
    """RobustBench's model zoo for one dataset and threat model: entry name → {'model': builder, 'gdrive_id'}."""
    if dataset not in DATASETS:
        raise UnknownNameError("RobustBench dataset", dataset, DATASETS)
    if threat_model not in THREAT_MODELS:
        raise UnknownNameError("RobustBench threat model", threat_model, THREAT_MODELS)
    robustbench()  # importable (the alias) or a one-line error naming the extra
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    zoo = model_dicts[BenchmarkDataset(dataset)]
    if ThreatModel(threat_model) not in zoo:
        raise InvalidValueError(f"RobustBench has no {dataset} {threat_model} models; expected one of "
                                f"{', '.join(t.value for t in zoo)}")
    return zoo[ThreatModel(threat_model)]


def entry(name: str, dataset: str, threat_model: str) -> dict[str, Any]:
    """One RobustBench entry, or an error naming the close ones."""
    zoo = entries(dataset, threat_model)
    if name not in zoo:
        raise UnknownNameError(f"RobustBench {dataset}/{threat_model} model", name, zoo)
    if not zoo[name].get("gdrive_id"):  # its builder fetches weights itself (timm / torch.hub: unchecked pickles)
        raise InvalidValueError(f"RobustBench entry {name!r} loads its weights inside its builder (no checkpoint "
                                f"file to check); robustzoo imports entries with a checkpoint file only")
    return zoo[name]


def architecture_name(name: str, dataset: str, threat_model: str) -> str:
    """`robustbench:cifar10/Linf/NAME`: how a robustzoo config names a RobustBench architecture."""
    return f"{PREFIX}{dataset}/{threat_model}/{name}"


def parse_architecture(architecture: str) -> tuple[str, str, str]:
    """(name, dataset, threat model) of a `robustbench:DATASET/THREAT/NAME` architecture."""
    parts = architecture[len(PREFIX):].split("/") if architecture.startswith(PREFIX) else []
    if len(parts) != 3 or not all(parts):
        raise InvalidValueError(f"architecture {architecture!r}; expected robustbench:DATASET/THREAT_MODEL/NAME")
    dataset, threat_model, name = parts
    return name, dataset, threat_model


def create_robustbench_model(architecture: str, num_classes: int | None = None) -> nn.Module:
    """A fresh (untrained) RobustBench module from its own model zoo, for a safetensors state dict to fill."""
    name, dataset, threat_model = parse_architecture(architecture)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = entry(name, dataset, threat_model)["model"]()
    expected = DATASETS[dataset]
    if num_classes is not None and num_classes != expected:
        raise InvalidValueError(f"{architecture}: num_classes={num_classes}; RobustBench's {dataset} models have "
                                f"{expected}")
    return with_timm_attributes(net, architecture)


def with_timm_attributes(net: nn.Module, architecture: str) -> nn.Module:
    """Give a RobustBench module the attributes timm's `save_for_hf` reads (`robustzoo push`), where it has none."""
    _, dataset, _ = parse_architecture(architecture)
    size = 32 if dataset.startswith("cifar") else 224
    if not hasattr(net, "pretrained_cfg"):
        net.pretrained_cfg = {"architecture": architecture, "num_classes": DATASETS[dataset],
                              "input_size": (3, size, size)}
    for attr, value in (("num_classes", DATASETS[dataset]), ("num_features", 0)):
        if not hasattr(net, attr):
            setattr(net, attr, value)
    return net
