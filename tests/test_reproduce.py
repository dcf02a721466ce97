"""`robustzoo reproduce`: reported beside measured with Δ, the card's Δ row, and a resume that redoes nothing."""
import json
import textwrap

import pytest
from click.testing import CliRunner

from robustzoo import Recipe, Reported
from robustzoo.cli import main
from robustzoo.reproduce import Comparison, compare, setting_differences, training_summary

RECIPE = textwrap.dedent('''
    from robustzoo import Fixed, PGDAT, Recipe, Reported

    def recipe():
        return Recipe(name="repro", model="cifar_small_cnn", model_kwargs={"width": 8}, dataset="digits",
                      val_size=100, policy=Fixed(eps=32 / 255, step_size=8 / 255, steps=3), defense=PGDAT(),
                      eps=32 / 255, epochs=2, batch_size=32, lr=0.05, val_steps=3,
                      reported=Reported("a made-up row", clean=90.0, pgd20=50.0))
''')


def test_delta_table_and_summary_on_a_hand_computed_case():
    c = Comparison("r", "Table 9", {"clean": 86.23, "pgd20": 56.49, "aa": 53.58}, {"clean": 85.0, "pgd20": 57.0,
                   "cw": 55.1}, n=1000, epochs=3, train_seconds=90.0, mean_steps=7.5)
    assert c.delta == {"clean": -1.23, "pgd20": 0.51}  # only where both exist; measured − reported
    assert c.to_dict()["delta"] == c.delta
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(c.table())
    text = console.export_text()
    assert "-1.23" in text and "+0.51" in text and "Table 9" in text and "53.58" in text
    assert "3 epochs in 1.5 min" in c.summary() and "7.50 attack steps" in c.summary()
    assert "not the recipe's setting" not in c.summary()
    shortened = Comparison(**{**c.__dict__, "differs": ["epochs 1 (recipe: 110)"]})
    assert "not the recipe's setting (epochs 1 (recipe: 110))" in shortened.summary()


def test_training_summary_weights_steps_by_samples(tmp_path):
    rows = [{"epoch": 1, "seconds": 10.0, "mean_steps": 10.0, "strategy": {"n": 100}},
            {"epoch": 2, "seconds": 20.5, "mean_steps": 6.0, "strategy": {"n": 300}}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert training_summary(tmp_path) == (2, 30.5, 7.0)  # (10·100 + 6·300) / 400
    assert training_summary(tmp_path / "none") == (0, 0.0, None)


def test_setting_differences_and_compare(tmp_path):
    base = Recipe(name="x", model="cifar_preact_resnet18", dataset="cifar10", reported=Reported("T", clean=80.0, aa=40.0))
    changed = base.replace(epochs=1, model="cifar_small_cnn", train_subset=500)
    assert setting_differences(changed, base) == ["epochs 1 (recipe: 200)",
                                                  "model 'cifar_small_cnn' (recipe: 'cifar_preact_resnet18')",
                                                  "train_subset 500 (recipe: None)"]
    c = compare(changed, tmp_path, {"clean": 0.8125, "aa": 0.375, "worst_case": 0.375}, 16, base)
    assert c.measured == {"clean": 81.25, "aa": 37.5} and c.delta == {"clean": 1.25, "aa": -2.5}
    assert c.source == "T" and c.epochs == 0 and len(c.differs) == 3


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("repro")
    (tmp / "recipe.py").write_text(RECIPE)
    args = ["reproduce", str(tmp / "recipe.py"), "--out", str(tmp / "run"), "--device", "cpu", "--quiet",
            "--n", "32", "--attack", "clean,pgd10"]
    result = CliRunner().invoke(main, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    return tmp, args, result.output


def test_reproduce_trains_evaluates_and_compares(reproduced):
    tmp, _, output = reproduced
    run = tmp / "run"
    saved = json.loads((run / "reproduce.json").read_text())
    comparison, record = saved["comparison"], json.loads((run / "eval.json").read_text())
    # the reported columns are measured too (pgd20 was not asked for), on the n images asked for
    assert [r["attack"] for r in record["results"]] == ["clean", "pgd10", "pgd20"] and record["n"] == 32
    for attack, fraction in record["accuracy"].items():
        if attack != "worst_case":
            assert comparison["measured"][attack] == round(100 * fraction, 2)
    assert comparison["delta"] == {a: round(comparison["measured"][a] - r, 2)
                                   for a, r in (("clean", 90.0), ("pgd20", 50.0))}
    assert comparison["epochs"] == 2 and comparison["mean_steps"] == 3.0 and comparison["differs"] == []
    assert "a made-up row" in output and "Δ (measured − reported)" in output and f"{comparison['delta']['clean']:+.2f}" in output
    card = (run / "card.md").read_text()
    assert "| Δ (measured − target) |" in card and f"{comparison['delta']['pgd20']:+.2f}" in card
    assert "3.00 attack steps per training sample" in card
    assert not (run / "reproduce.pending.json").exists() and not (run / "eval.state.json").exists()


def test_resumed_reproduce_redoes_nothing_finished(reproduced):
    tmp, args, _ = reproduced
    run = tmp / "run"
    metrics, result_before = (run / "metrics.jsonl").read_text(), (run / "eval.json").read_text()
    again = CliRunner().invoke(main, [*args, "--resume"], terminal_width=200)
    assert again.exit_code == 0, again.output
    assert "finished its 2 epochs" in again.output and "not run again" in again.output
    assert (run / "metrics.jsonl").read_text() == metrics and (run / "eval.json").read_text() == result_before


def test_an_evaluation_left_for_other_weights_starts_again(reproduced):
    tmp, args, _ = reproduced
    run = tmp / "run"
    before = json.loads((run / "reproduce.json").read_text())["comparison"]
    (run / "reproduce.json").unlink()  # as if the evaluation had been killed, for weights training replaced since
    (run / "reproduce.pending.json").write_text(json.dumps({"weights_sha256": "0" * 64}))
    (run / "eval.state.json").write_text(json.dumps({"options": "of another evaluation"}))
    again = CliRunner().invoke(main, [*args, "--resume"], terminal_width=200)
    assert again.exit_code == 0, again.output
    assert "starting it again" in again.output
    assert json.loads((run / "reproduce.json").read_text())["comparison"] == before  # same weights, same seed


def test_reproduce_refuses_an_existing_run_and_bad_attacks(reproduced):
    tmp, args, _ = reproduced
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "--resume" in result.output and "Traceback" not in result.output
    bad = CliRunner().invoke(main, ["reproduce", str(tmp / "recipe.py"), "--attack", "pgd", "--out", str(tmp / "x")])
    assert bad.exit_code == 2 and "pgd" in bad.output and not (tmp / "x").exists()
