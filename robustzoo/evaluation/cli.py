"""What `robustzoo evaluate` does: run and record an evaluation, compare two results, reproduce one."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..errors import InvalidValueError

console = Console()


def run(source: str, options: dict[str, Any], *, data_dir: Path | None, device: str, revision: str | None,
        fill_card: bool, out: Path | None, main_rank: bool,
        robustbench_json: Path | None = None) -> dict[str, Any] | None:
    """Evaluate SOURCE with `options` (evaluate()'s keywords); rank 0 prints, writes the JSON (and card).

    Each finished chunk of images goes to `<out>.state.json` first, so a killed evaluation continues where it
    stopped; the state file is removed once the result is written. Returns the written record."""
    from ..checkpoint import sha256_file, write_json
    from ..data import Stream, load_data
    from ..strategy import check_budget, check_norm
    from ..trainer import resolve_checkpoint
    from ..zoo import load
    from .robustness import evaluate

    model = load(source, revision, device=device)  # a local run, a zoo name or a Hub repo
    run_info = model.run_info
    local = "source" not in run_info  # only models from the Hub record where they came from
    options = dict(options)
    threat = run_info.get("threat_model", {})
    own_norm = threat.get("norm", "Linf")
    options["norm"] = check_norm(options.get("norm") or own_norm)
    if options.get("eps") is None and options["norm"] != own_norm:
        raise InvalidValueError(f"--norm {options['norm']} differs from the model's threat model ({own_norm}, eps "
                                f"{threat.get('eps')}); expected an --eps for {options['norm']} (e.g. 0.5)")
    options["eps"] = check_budget(options["eps"] if options.get("eps") is not None else threat.get("eps", 8 / 255),
                                  options["norm"])
    ds = run_info.get("dataset", {})
    if not ds.get("name"):
        raise InvalidValueError(f"{source} does not record its dataset; expected a robustzoo model")
    stream = Stream.from_config(ds["stream"]) if ds.get("stream") else None  # its eval resize and crop
    data = load_data(ds["name"], data_dir or ds.get("data_dir"), val_size=ds.get("val_size", 0),
                     seed=ds.get("seed", 0), stream=stream)
    path = Path(source).expanduser()
    folder = (path if path.is_dir() else path.parent) if local else Path(".")
    stem = "" if local else run_info["source"]["repo_id"].replace("/", "--") + "."
    out = out or folder / f"{stem}eval.json"
    state = out.with_name(out.stem + ".state.json")
    result = evaluate(model, data.test, state_path=state, **options)
    if not main_rank:
        return None
    weights = sha256_file(resolve_checkpoint(path)) if local else getattr(model.card, "weights_sha256", None)
    result.record.update({"source": source, "revision": None if local else run_info["source"]["revision"],
                          "weights_sha256": weights, "dataset": ds["name"], "split": "test",
                          "sanity_n": options.get("sanity_n", 200), "sanity_requested": options.get("sanity")})
    budget = (f"L∞ eps={options['eps'] * 255:.2f}/255" if options["norm"] == "Linf"
              else f"{options['norm']} eps={options['eps']:g}")
    console.print(result.table(f"{source} — {ds['name']} test, n={result.n}, {budget}"))
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    for flag in result.flags:
        console.print(f"[yellow]masking flag {flag['name']}: {flag['message']}[/]", highlight=False)
    if result.sanity and not result.flags:
        console.print(f"sanity checks on {result.sanity['n']} images: no gradient-masking flag", highlight=False)
    record = {"source": source, "dataset": ds["name"], "split": "test", **result.to_dict()}
    write_json(out, record)
    for rank_state in [state, *state.parent.glob(f"{state.stem}.rank*{state.suffix}")]:
        rank_state.unlink(missing_ok=True)
    console.print(f"results written to {out}")
    card_path = folder / "card.md" if local else out.parent / f"{stem}card.md"  # push reads RUN/card.md
    if fill_card:
        from .card import fill_card as fill

        fill(model, source, card_path, result.results, eps=options["eps"], n=result.n,
             batch_size=options["batch_size"], seed=options["seed"], norm=options["norm"],
             order=options.get("order", "balanced"))
        console.print(f"card updated: {card_path}")
    if robustbench_json:
        from ..checkpoint import write_json as write
        from ..zoo.card import RobustnessCard
        from ..zoo.robustbench import model_info

        card = RobustnessCard.load(card_path) if card_path.is_file() else getattr(model, "card", None)
        write(robustbench_json, model_info(record, card))
        console.print(f"RobustBench model_info written to {robustbench_json} (fill in what is None before "
                      f"submitting)")
    return record


def print_comparison(a_path: Path, b_path: Path) -> None:
    """Which images changed outcome between two result files, per attack and for the worst case."""
    from .robustness import compare

    a, b = (_load_result(p) for p in (a_path, b_path))
    table = Table(title=f"A = {a_path}  vs  B = {b_path}")
    for col in ("attack", "A", "B", "robust in A only", "robust in B only"):
        table.add_column(col, justify="left" if col == "attack" else "right")
    diff = compare(a, b)
    for attack, d in diff.items():
        table.add_row(attack, _pct(d["a"]), _pct(d["b"]), _few(d["lost"]), _few(d["gained"]))
    console.print(table)
    common = next(iter(diff.values()))["common"] if diff else 0
    console.print(f"{common} images in both results (compared by their index in the dataset)")


def reproduce(path: Path, *, data_dir: Path | None, device: str) -> bool:
    """Re-run the evaluation a result file records and say whether it got the same numbers."""
    import json
    import tempfile

    recorded = json.loads(path.read_text())
    record = recorded.get("record", {})
    if not record.get("source") or "attacks" not in record:
        raise InvalidValueError(f"{path} has no reproducibility record; expected a result written by "
                                f"`robustzoo evaluate` of this version")
    options = {k: record[k] for k in ("attacks", "eps", "batch_size", "seed", "aa_version", "aa_attacks",
                                      "randomized", "chunk_size")}
    options["amp"] = record.get("amp")
    options["norm"] = record.get("norm", "Linf")
    options["order"] = record.get("order", "balanced")
    options.update(n=record["n"], sanity=record.get("sanity_requested"), sanity_n=record.get("sanity_n", 200))
    with tempfile.TemporaryDirectory() as tmp:
        again = run(record["source"], options, data_dir=data_dir, device=device, revision=record.get("revision"),
                    fill_card=False, out=Path(tmp) / "eval.json", main_rank=True)
    assert again is not None
    same = (again["accuracy"] == recorded["accuracy"] and again["outcomes"] == recorded["outcomes"]
            and again["indices"] == recorded["indices"])
    if record.get("weights_sha256") and again["record"].get("weights_sha256") != record["weights_sha256"]:
        console.print("[yellow]the weights differ from the recorded ones (sha256)[/]")
        same = False
    changed = [k for k in recorded["record"].get("versions", {})
               if recorded["record"]["versions"][k] != again["record"]["versions"].get(k)]
    if changed:
        console.print(f"[yellow]package versions differ: {', '.join(changed)}[/]", highlight=False)
    console.print(f"[bold]{'reproduced: identical accuracy and per-image outcomes' if same else 'NOT reproduced'}[/]"
                  f" ({path})")
    return same


def _load_result(path: Path) -> Any:
    from .robustness import RobustnessResult

    if not Path(path).is_file():
        raise InvalidValueError(f"result file {str(path)!r} not found; expected a JSON written by robustzoo evaluate")
    return RobustnessResult.load(path)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


def _few(indices: list[int], shown: int = 8) -> str:
    head = ", ".join(map(str, indices[:shown]))
    return f"{len(indices)}" + (f": {head}{', …' if len(indices) > shown else ''}" if indices else "")
