"""Push a trained run to the Hugging Face Hub, and load a zoo model back: safetensors only, sha256-checked.

A pushed repo holds what timm's own Hub convention expects (`config.json` + `model.safetensors` with the
backbone's native state dict, so `timm.create_model("hf-hub:REPO", pretrained=True)` works) plus the
robustness card as `README.md`. The Hub endpoint, token, cache and offline mode are huggingface_hub's:
`HF_ENDPOINT`, `HF_TOKEN` / `huggingface-cli login`, `HF_HUB_CACHE`, `HF_HUB_OFFLINE`.
"""
from __future__ import annotations

import inspect
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled,
                                    RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError)
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
import torch
from torch import nn

from ..checkpoint import sha256_file
from ..errors import CheckpointError, HubError, IntegrityError, InvalidValueError
from ..models import Normalize, build_model
from ..trainer import load_model, resolve_checkpoint, resolve_device
from .card import RobustnessCard
from .catalog import card_from_run, is_repo_id, zoo_card

WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"
CONFIG_FORMAT = 1


@dataclass
class PushResult:
    """Where a push landed: repo, commit, and the card as pushed (with the weights' sha256)."""

    repo_id: str
    commit: str
    url: str
    card: RobustnessCard


def push(run_dir: str | Path, repo_id: str, *, private: bool = False, token: str | None = None,
         name: str | None = None, endpoint: str | None = None) -> PushResult:
    """Upload a run's weights, timm config and robustness card to `repo_id` in one commit.

    The card is `RUN_DIR/card.md` when `robustzoo evaluate RUN_DIR --card` made one, else one made from the
    run; it is named `name` (default: the repo's name) and saved back with the commit it was pushed in."""
    run_dir = Path(run_dir)
    if not is_repo_id(repo_id):
        raise InvalidValueError(f"repo id {repo_id!r}; expected OWNER/NAME, e.g. my-user/las-awp-cifar10")
    checkpoint = resolve_checkpoint(run_dir)
    model = load_model(checkpoint)
    card_path = run_dir / "card.md"
    if card_path.is_file():
        card = RobustnessCard.load(card_path)
        measured_on = card.evaluation.get("checkpoint_sha256")
        if card.results and measured_on != sha256_file(checkpoint):
            raise IntegrityError(f"{card_path} holds results measured on other weights than {checkpoint}; "
                                 f"run `robustzoo evaluate {run_dir} --card` again before pushing")
    else:
        card = card_from_run(run_dir, model.run_info)
    card = card.replace(name=name or repo_id.split("/")[1], repo_id=repo_id, revision=None)
    api = HfApi(endpoint=endpoint, token=token)
    with tempfile.TemporaryDirectory(prefix="robustzoo-push-") as tmp:
        save_for_hub(model, Path(tmp))
        card = card.replace(weights_sha256=sha256_file(Path(tmp) / WEIGHTS),
                            config_sha256=sha256_file(Path(tmp) / CONFIG))
        card.save(Path(tmp) / CARD)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if private and not api.repo_info(repo_id).private:
                raise HubError(f"{repo_id} already exists and is public: --private would not make it private "
                               f"(change its visibility on the Hub, or push without --private)")
            info = api.upload_folder(repo_id=repo_id, folder_path=tmp, allow_patterns=[WEIGHTS, CONFIG, CARD],
                                     commit_message=f"robustzoo push: {card.name}")
        except HubError:
            raise
        except Exception as e:  # HTTP errors, and the client's connection errors (httpx/requests, by version)
            if not (isinstance(e, (HfHubHTTPError, OSError)) or _is_transport_error(e)):
                raise
            raise HubError(f"push to {repo_id} on {endpoint or constants.ENDPOINT} failed: {_first_line(e)}") from None
    card = card.replace(revision=info.oid)
    card.save(card_path)  # the local copy pins the commit: copy it to zoo_cards/ to make a zoo entry
    return PushResult(repo_id, info.oid, info.commit_url, card)


def save_for_hub(model: Normalize, folder: Path) -> None:
    """`model.safetensors` + `config.json` in timm's format, with robustzoo's rebuild record added."""
    try:
        from timm.models import save_for_hf
    except ImportError:  # timm < 1.0.10 (e.g. the 1.0.9 robustbench pins) keeps it in _hub
        from timm.models._hub import save_for_hf
    from timm.models import _hub

    config = model.config
    run = getattr(model, "run_info", {})
    dataset = run.get("dataset", {})
    in_chans = config.get("in_chans", 3)
    input_size = dataset.get("input_size") or [in_chans, *model.model.pretrained_cfg["input_size"][1:]]
    record = {"format": CONFIG_FORMAT, "model": config,
              "dataset": {"name": dataset.get("name"), "classes": dataset.get("classes"), "input_size": input_size},
              "threat_model": run.get("threat_model", {}),
              **({"weight_averaging": run["recipe"]["ema"]} if (run.get("recipe") or {}).get("ema") else {})}
    data = {"input_size": tuple(input_size), "mean": tuple(config["mean"]), "std": tuple(config["std"])}
    kwargs = dict(safe_serialization=True, model_config={"robustzoo": record, "label_names": dataset.get("classes")},
                  model_args={**config.get("model_kwargs", {}), "in_chans": in_chans})
    if "data_config" in inspect.signature(save_for_hf).parameters:
        save_for_hf(model.model, str(folder), data_config=data, **kwargs)
        return
    saved = model.model.pretrained_cfg  # older timm writes the pretrained_cfg's data fields instead
    model.model.pretrained_cfg = {**saved, **data}
    try:
        if getattr(_hub, "_has_hf_hub", True):
            save_for_hf(model.model, str(folder), **kwargs)
        else:  # timm 1.0.9 cannot import huggingface_hub >= 1.0, so its save_for_hf refuses: same files, by parts
            folder.mkdir(parents=True, exist_ok=True)
            save_file(model.model.state_dict(), str(folder / WEIGHTS))
            _hub.save_config_for_hf(model.model, folder / CONFIG, model_config=kwargs["model_config"],
                                    model_args=kwargs["model_args"])
    finally:
        model.model.pretrained_cfg = saved


def load(name_or_repo_id: str, revision: str | None = None, *, device: str | torch.device = "cpu",
         token: str | None = None, cache_dir: str | Path | None = None, endpoint: str | None = None) -> nn.Module:
    """A robust model from the zoo (`las-awp-cifar10`), a Hub repo id, or a local run folder, in eval mode.

    An existing local path wins over a zoo name or repo id of the same spelling. Weights and config must
    match the sha256 of the card (the zoo's own card for zoo names, else the repo's README.md); only
    `model.safetensors` is read, nothing is ever unpickled."""
    device = str(device)
    if Path(name_or_repo_id).expanduser().exists():
        if revision:
            raise InvalidValueError(f"revision={revision!r} applies to zoo names and Hub repos, not the local "
                                    f"{name_or_repo_id}")
        return load_model(Path(name_or_repo_id).expanduser(), device)
    if name_or_repo_id.startswith((".", "/", "~")) or name_or_repo_id.count("/") > 1 or \
            name_or_repo_id.endswith(".safetensors"):
        raise CheckpointError(f"{name_or_repo_id} not found; expected a run folder, a checkpoint file, a zoo name "
                              f"(`robustzoo zoo list`) or a Hub repo id")
    pinned = None
    if is_repo_id(name_or_repo_id):
        repo_id = name_or_repo_id
    else:
        pinned = zoo_card(name_or_repo_id)
        if not (pinned.repo_id and pinned.weights_sha256):
            raise HubError(f"zoo model {pinned.name!r} has no published weights yet (its card lists the paper's "
                           f"targets only); train it with `robustzoo train {pinned.recipe}` and `robustzoo push`")
        repo_id, revision = pinned.repo_id, revision or pinned.revision
    fetch = dict(token=token, cache_dir=cache_dir, endpoint=endpoint)
    try:
        readme = _download(repo_id, CARD, revision, **fetch)
    except HubError as e:
        raise HubError(f"{e} (nor is {name_or_repo_id!r} a local path)" if pinned is None else str(e)) from None
    commit = readme.parent.name  # the cache's snapshots/<commit>/ folder: fetch the rest at that commit
    try:
        card = RobustnessCard.parse(readme.read_text(encoding="utf-8"), source=f"{repo_id}/{CARD}")
    except InvalidValueError as e:
        raise HubError(f"{e}; robustzoo loads models pushed with `robustzoo push`") from None
    trusted = pinned or card
    if not (trusted.weights_sha256 and trusted.config_sha256):
        raise IntegrityError(f"{repo_id}: its card records no sha256 of {WEIGHTS} and {CONFIG}; refusing "
                             f"unverifiable files")
    config_path = _verified(_download(repo_id, CONFIG, commit, **fetch), trusted.config_sha256, repo_id, commit)
    weights = _verified(_download(repo_id, WEIGHTS, commit, **fetch), trusted.weights_sha256, repo_id, commit)
    try:
        config = json.loads(config_path.read_text())
        record = model_record(config, repo_id)
        model = build_model(record)
    except (ValueError, KeyError, TypeError) as e:
        raise HubError(f"{repo_id}/{CONFIG} cannot rebuild the model: {_first_line(e)}") from None
    try:
        model.model.load_state_dict(load_file(weights))
    except (SafetensorError, RuntimeError) as e:
        raise CheckpointError(f"{repo_id}: {WEIGHTS} does not fit {CONFIG}: {_first_line(e)}") from None
    record = config.get("robustzoo", {})
    model.card = trusted
    model.run_info = {"model": model.config, "dataset": record.get("dataset", {"name": card.dataset}),
                      "threat_model": record.get("threat_model", card.threat_model),
                      "source": {"repo_id": repo_id, "revision": commit}}
    return model.to(resolve_device(device)).eval()


def _verified(path: Path, expected: str, repo_id: str, commit: str) -> Path:
    """`path`, if its sha256 is the one the card records."""
    actual = sha256_file(path)
    if actual != expected:
        raise IntegrityError(f"{repo_id}@{commit[:12]}: {path.name} has sha256 {actual}, the card expects {expected}; "
                             f"refusing to load a tampered or corrupt file")
    return path


def _is_transport_error(e: BaseException) -> bool:
    """A connection/timeout error of the Hub client's HTTP library (httpx, httpx2 or requests)."""
    return type(e).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "requests", "urllib3")


def model_record(config: dict[str, Any], repo_id: str) -> dict[str, Any]:
    """robustzoo's model record from a config.json (its own block, else timm's fields)."""
    if "robustzoo" in config:
        return config["robustzoo"]["model"]
    try:
        cfg = config["pretrained_cfg"]
        args = dict(config.get("model_args", {}))
        return {"architecture": config["architecture"], "num_classes": config["num_classes"],
                "in_chans": args.pop("in_chans", cfg.get("input_size", (3,))[0]), "img_size": args.pop("img_size", None),
                "mean": cfg["mean"], "std": cfg["std"], "model_kwargs": args}
    except KeyError as e:
        raise HubError(f"{repo_id}/{CONFIG} lacks {e}; expected timm's config format") from None


def _download(repo_id: str, filename: str, revision: str | None, **kwargs: Any) -> Path:
    """`hf_hub_download`, with the Hub's failures turned into one line each."""
    endpoint = kwargs.get("endpoint") or constants.ENDPOINT
    at = f"@{revision}" if revision else ""
    try:
        return Path(hf_hub_download(repo_id, filename, revision=revision, **kwargs))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        where = "offline mode (HF_HUB_OFFLINE) is on" if constants.HF_HUB_OFFLINE else f"the Hub at {endpoint} is unreachable"
        raise HubError(f"{where} and {repo_id}{at}/{filename} is not in the cache "
                       f"({kwargs.get('cache_dir') or constants.HF_HUB_CACHE})") from None
    except GatedRepoError:
        raise HubError(f"{repo_id} is gated: accept its conditions on the Hub and pass a token") from None
    except RepositoryNotFoundError:
        raise HubError(f"no model repo {repo_id!r} on {endpoint} (a private repo needs a token)") from None
    except RevisionNotFoundError:
        raise HubError(f"{repo_id} has no revision {revision!r}") from None
    except RemoteEntryNotFoundError:
        if filename == WEIGHTS:
            raise HubError(f"{repo_id}{at} has no {WEIGHTS}; robustzoo loads safetensors only and never "
                           f"unpickles .bin/.pt weights") from None
        raise HubError(f"{repo_id}{at} has no {filename}: not a model pushed by robustzoo") from None
    except HfHubHTTPError as e:
        raise HubError(f"downloading {repo_id}{at}/{filename} failed: {_first_line(e)}") from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
