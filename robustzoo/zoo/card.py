"""The robustness card: one record, rendered as a Hub model card (README.md with YAML) and parsed back.

The YAML holds the standard Hub fields (license, tags, datasets, `library_name`, `model-index` with the
*measured* accuracies) plus a `robustzoo:` block with the whole record, so a card read from the Hub or
from `zoo_cards/` rebuilds the same `RobustnessCard`. Paper numbers are targets and never enter
`model-index`: only numbers a run measured do.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..checkpoint import atomic_write
from ..errors import InvalidValueError

CARD_FORMAT = 1
NOTES = "## Recipe notes"  # the body's last section: the free-text description, read back by `parse`
# columns of the card's tables, in order, with their display names; other attacks are kept too
MAIN_ATTACKS = {"clean": "clean", "pgd20": "PGD-20", "cw": "CW-30", "aa": "AutoAttack"}
DATASET_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "svhn": "SVHN", "tiny_imagenet": "Tiny ImageNet",
                 "digits": "digits (scikit-learn)"}
HUB_DATASETS = ("cifar10", "cifar100", "svhn")  # dataset ids the Hub knows (its `datasets:` field)


def attack_title(name: str) -> str:
    """`pgd20` → `PGD-20`: an attack's name in tables."""
    return MAIN_ATTACKS.get(name) or (f"PGD-{name[3:]}" if name.startswith("pgd") else name.upper())


@dataclass
class RobustnessCard:
    """What a robust model is, how it was trained and evaluated, what it scored and what it targets."""

    name: str
    architecture: str
    dataset: str
    num_classes: int
    threat_model: dict[str, Any] = field(default_factory=lambda: {"norm": "Linf", "eps": 8 / 255})
    policy: str = "Fixed"
    policy_config: dict[str, Any] = field(default_factory=dict)
    defense: str = "PGDAT"
    defense_config: dict[str, Any] = field(default_factory=dict)
    recipe: str | None = None  # the recipe file, as the run was started with it
    recipe_sha256: str | None = None
    epochs: int | None = None  # epochs trained (None: not trained yet)
    train_seconds: float | None = None
    mean_attack_steps: float | None = None  # attack steps per training sample over the run (what it cost)
    weight_averaging: dict[str, Any] | None = None  # the EMA the weights are (`robustzoo.EMA` config), or None
    repo_id: str | None = None  # where the weights are published (None: not yet)
    revision: str | None = None  # the Hub commit the weights were pushed in
    weights_sha256: str | None = None  # sha256 of model.safetensors
    config_sha256: str | None = None  # sha256 of config.json (architecture and normalization)
    results: dict[str, float] = field(default_factory=dict)  # measured accuracy, %, per attack
    evaluation: dict[str, Any] = field(default_factory=dict)  # the protocol the results came from
    paper: dict[str, Any] = field(default_factory=dict)  # {"source": ..., "clean": ..., "aa": ...} (targets, %)
    provenance: dict[str, Any] = field(default_factory=dict)  # where an imported model came from (RobustBench...)
    license: str = "apache-2.0"
    description: str = ""

    @property
    def defense_label(self) -> str:
        """`AWP(TRADES)` for a wrapping defense, else the defense's name."""
        inner = self.defense_config.get("defense")
        return f"{self.defense}({inner})" if isinstance(inner, str) else self.defense

    # -- YAML / markdown ---------------------------------------------------------------------------
    def card_data(self) -> ModelCardData:
        """The Hub metadata: standard fields, `model-index` of measured results, and the `robustzoo` record."""
        eps = self.threat_model.get("eps")
        eval_results = [
            EvalResult(task_type="image-classification", task_name="Image Classification",
                       dataset_type=self.dataset, dataset_name=DATASET_NAMES.get(self.dataset, self.dataset),
                       dataset_split=self.evaluation.get("split", "test"), metric_type="accuracy",
                       metric_name=f"{attack_title(attack)} accuracy" if attack == "clean" else
                       f"{attack_title(attack)} robust accuracy ({self.threat_model.get('norm')}, eps={eps_str(eps)})",
                       metric_value=value, metric_config=attack,
                       metric_args={"norm": self.threat_model.get("norm"), "eps": eps,
                                    "n": self.evaluation.get("n")})
            for attack, value in self.results.items()]
        tags = ["robustzoo", "adversarial-robustness", "adversarial-training", "image-classification", "timm",
                *([self.provenance.get("source", "imported")] if self.provenance else [self.policy, self.defense])]
        return ModelCardData(license=self.license, library_name="robustzoo", tags=tags,
                             datasets=[self.dataset] if self.dataset in HUB_DATASETS else None,
                             pipeline_tag="image-classification", model_name=self.name,
                             eval_results=eval_results or None,
                             robustzoo={"format": CARD_FORMAT, **to_jsonable(self._record())})

    def _record(self) -> dict[str, Any]:
        """The YAML record: every field but the free-text description, which lives in the body."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "description"}

    def render(self) -> str:
        """The card as README.md text: YAML front matter, then a readable summary."""
        text = f"---\n{self.card_data().to_yaml()}\n---\n\n{self._body()}"
        ModelCard(text)  # parses back, or raises: never write a card the Hub client cannot read
        return text

    def save(self, path: str | os.PathLike) -> Path:
        """Write the card atomically; returns its path."""
        text = self.render()
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        return Path(path)

    @classmethod
    def parse(cls, text: str, source: str = "card") -> "RobustnessCard":
        """Rebuild a card from README.md text written by `render` (its `robustzoo:` YAML block)."""
        try:
            data = ModelCard(text, ignore_metadata_errors=False).data.to_dict()
        except Exception as e:  # the Hub client raises ValueError / yaml errors on broken front matter
            raise InvalidValueError(f"{source}: not a valid model card ({str(e).splitlines()[0]})") from None
        record = data.get("robustzoo")
        if not isinstance(record, dict):
            raise InvalidValueError(f"{source}: not a robustzoo robustness card (no `robustzoo:` block in its YAML)")
        record = dict(record)
        fmt = record.pop("format", None)
        if fmt != CARD_FORMAT:
            raise InvalidValueError(f"{source}: card format {fmt!r}; this robustzoo reads format {CARD_FORMAT}")
        known = {f.name for f in dataclasses.fields(cls)} - {"description"}
        _, _, notes = text.partition(f"\n{NOTES}\n\n")
        try:
            return cls(**{k: v for k, v in record.items() if k in known}, description=notes.strip())
        except TypeError as e:
            raise InvalidValueError(f"{source}: incomplete robustness card ({e})") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RobustnessCard":
        """Read a card file written by `save`."""
        path = Path(path)
        if not path.is_file():
            raise InvalidValueError(f"card {path} not found")
        return cls.parse(path.read_text(encoding="utf-8"), source=str(path))

    def replace(self, **changes: Any) -> "RobustnessCard":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    # -- filling in --------------------------------------------------------------------------------
    def with_results(self, results: list[Any], evaluation: dict[str, Any]) -> "RobustnessCard":
        """A copy holding the accuracies (fractions, as `run_attacks` returns them) of one evaluation.

        Results of an earlier evaluation under another protocol (threat model, split, n) are dropped:
        a card never mixes numbers measured under different protocols."""
        same = all(self.evaluation.get(k) == evaluation.get(k)
                   for k in ("split", "n", "eps", "norm", "order", "seed", "checkpoint_sha256"))
        kept = dict(self.results) if same else {}
        attacks = dict(self.evaluation.get("attacks", {})) if same else {}
        for r in results:
            kept[r.attack] = round(100 * r.accuracy, 2)
            attacks[r.attack] = to_jsonable(r.settings)  # as the YAML will hold them (tuples → lists)
        order = [*MAIN_ATTACKS, *sorted(set(kept) - set(MAIN_ATTACKS))]
        return self.replace(results={a: kept[a] for a in order if a in kept},
                            evaluation={**evaluation, "attacks": attacks})

    # -- the readable part -------------------------------------------------------------------------
    def _body(self) -> str:
        eps = self.threat_model.get("eps")
        threat = f"{self.threat_model.get('norm', 'Linf').replace('Linf', 'L∞')}, ε = {eps_str(eps)}"
        data_name = DATASET_NAMES.get(self.dataset, self.dataset)
        if self.provenance:
            origin = (f"imported from {self.provenance.get('source', '?')} entry `{self.provenance.get('entry')}`, "
                      f"not trained by robustzoo")
        else:
            origin = f"attack policy `{self.policy}` × defense `{self.defense_label}`, trained with robustzoo"
        lines = [f"# {self.name}", "",
                 f"An adversarially trained `{self.architecture}` for {data_name} ({self.num_classes} classes), "
                 f"threat model {threat}: {origin}.", ""]
        cols = list(MAIN_ATTACKS) + [a for a in dict.fromkeys([*self.results, *self.paper])
                                     if a not in MAIN_ATTACKS and a != "source"]
        lines += ["## Robustness", "", f"Test accuracy (%) under {threat}.", "",
                  "| | " + " | ".join(attack_title(a) for a in cols) + " |",
                  "|---|" + "---|" * len(cols)]
        n = self.evaluation.get("n")
        measured = "measured" + (f" (first {n} test images)" if n else "")
        lines.append(f"| {measured} | " + " | ".join(_pct(self.results.get(a)) for a in cols) + " |")
        if self.paper:
            lines.append(f"| target: {self.paper.get('source', 'paper')} | "
                         + " | ".join(_pct(self.paper.get(a)) for a in cols) + " |")
        if self.paper and self.results:  # the reproduction check: measured − target, in points
            lines.append("| Δ (measured − target) | " + " | ".join(
                f"{self.results[a] - self.paper[a]:+.2f}" if a in self.results and a in self.paper else "—"
                for a in cols) + " |")
        if not self.results:
            lines += ["", "No result is measured yet: `robustzoo evaluate RUN --attack clean,pgd20,cw,aa --card` "
                          "fills this card from a real evaluation."]
        lines += ["", "## Use", ""]
        if self.repo_id and self.weights_sha256:
            lines += ["```python", "import robustzoo", "",
                      f"model = robustzoo.load({self.repo_id!r})  # eval mode, takes [0,1] images "
                      "(normalization inside)", "```", "",
                      "Through timm alone (normalize inputs with the config's `mean`/`std`"
                      + ("; the `cifar_*` architectures are registered in timm by `import robustzoo`):"
                         if self.architecture.startswith("cifar_") else "):"), "",
                      "```python", "import timm", "",
                      f"model = timm.create_model('hf-hub:{self.repo_id}', pretrained=True).eval()", "```"]
        else:
            lines.append("Not published yet: no weights are attached to this card"
                         + (f" (they will go to `{self.repo_id}`)." if self.repo_id else "."))
        if self.provenance:
            lines += ["", "## Provenance", ""] + [f"- {k.replace('_', ' ')}: {v}" for k, v in self.provenance.items()
                                                  if v not in (None, "", [])]
        else:
            lines += self._training()
        lines += ["", "## Evaluation protocol", ""]
        if self.evaluation:
            ev = self.evaluation
            lines += [f"- split `{ev.get('split', 'test')}`, first {ev.get('n')} images "
                      f"({'in file order' if ev.get('order') == 'first' else 'class-balanced'}), batch size "
                      f"{ev.get('batch_size')}, seed {ev.get('seed')}, model in eval mode",
                      f"- software: {', '.join(f'{k} {v}' for k, v in ev.get('versions', {}).items())}"]
            lines += [f"- {attack_title(a)}: {json.dumps(s, sort_keys=True)}" for a, s in ev.get("attacks", {}).items()]
        else:
            lines.append("- not evaluated yet")
        lines += ["", "## Files", "",
                  f"- `model.safetensors` sha256 `{self.weights_sha256 or '—'}`"
                  + (f", pushed in commit `{self.revision}`" if self.revision else ""),
                  f"- `config.json` sha256 `{self.config_sha256 or '—'}`: timm's config (architecture, "
                  "num_classes, input size, mean/std) plus robustzoo's rebuild record", ""]
        if self.description:
            lines += [NOTES, "", self.description.strip(), ""]  # last: `parse` reads it back from here
        return "\n".join(lines)

    def _training(self) -> list[str]:
        """The card's Training section: architecture, policy, defense, recipe, epochs, weight averaging."""
        lines = ["", "## Training", "",
                  f"- architecture: `{self.architecture}` (timm name; robustzoo registers the CIFAR ones)",
                  f"- policy: `{self.policy}` {json.dumps(self.policy_config, sort_keys=True)}",
                  f"- defense: `{self.defense}` {json.dumps(self.defense_config, sort_keys=True)}",
                  f"- recipe: `{self.recipe or '—'}` (sha256 `{self.recipe_sha256 or '—'}`)",
                  f"- epochs trained: {self.epochs if self.epochs is not None else '—'}"
                  + (f", {_duration(self.train_seconds)} of training" if self.train_seconds else "")
                  + (f", {self.mean_attack_steps:.2f} attack steps per training sample on average"
                     if self.mean_attack_steps is not None else "")]
        if self.weight_averaging:
            lines.append(f"- weight averaging: EMA, decay {self.weight_averaging.get('decay')} (timm `ModelEmaV3` "
                         f"{json.dumps(self.weight_averaging, sort_keys=True)}); the weights are the average")
        return lines


def eps_str(eps: float | None) -> str:
    """A budget as `8/255` when it is one, else as a number."""
    if eps is None:
        return "—"
    k = eps * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-6 else f"{eps:.4g}"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def to_jsonable(obj: Any) -> Any:
    """Tuples to lists, numbers and strings as they are (what YAML and JSON both keep exactly)."""
    return json.loads(json.dumps(obj))
