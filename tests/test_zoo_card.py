"""Robustness cards: Hub-valid YAML, exact round trip, measured vs target numbers, and the zoo's entries."""
import hashlib
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, ModelCardData

from robustzoo import RobustnessCard, list_zoo, load_recipe
from robustzoo.evaluation import AttackResult
from robustzoo.errors import HubError, InvalidValueError, UnknownNameError
from robustzoo.zoo import card_from_recipe, load, zoo_card
from robustzoo.zoo.catalog import zoo_dir

ROOT = Path(__file__).resolve().parents[1]


def _card(**changes):
    card = RobustnessCard(name="toy", architecture="cifar_small_cnn", dataset="digits", num_classes=10,
                          threat_model={"norm": "Linf", "eps": 32 / 255}, policy="Fixed",
                          policy_config={"eps": 32 / 255, "steps": 10}, defense="PGDAT", recipe="recipes/quickstart.py",
                          recipe_sha256="ab" * 32, paper={"source": "nowhere", "clean": 99.0, "aa": 80.0})
    return card.replace(**changes)


def _results(**acc):
    return [AttackResult(k, v, 200, 1.0, {"steps": 20, "sizes": (1, 2)} if k.startswith("pgd") else {})
            for k, v in acc.items()]


PROTOCOL = {"split": "test", "n": 200, "eps": 32 / 255, "batch_size": 256, "seed": 0, "checkpoint_sha256": "c" * 64}


def test_card_round_trips_through_the_hub_model_card_format(tmp_path):
    card = _card(config_sha256="e" * 64).with_results(_results(clean=0.975, pgd20=0.79, cw=0.8, aa=0.765),
                                                      PROTOCOL)
    text = card.render()
    assert text.startswith("---\n")
    parsed = ModelCard(text)  # huggingface_hub's own parser
    data = parsed.data
    assert isinstance(data, ModelCardData)
    assert data.license == "apache-2.0" and data.library_name == "robustzoo" and "adversarial-robustness" in data.tags
    values = {r.metric_config: r.metric_value for r in data.eval_results}
    assert values == {"clean": 97.5, "pgd20": 79.0, "cw": 80.0, "aa": 76.5}
    assert {r.dataset_type for r in data.eval_results} == {"digits"}
    assert all(r.metric_args["eps"] == pytest.approx(32 / 255) for r in data.eval_results)
    assert RobustnessCard.parse(text) == card
    card.save(tmp_path / "card.md")
    assert RobustnessCard.load(tmp_path / "card.md") == card
    assert "| measured (first 200 test images) | 97.50 | 79.00 | 80.00 | 76.50 |" in text
    assert "| target: nowhere | 99.00 | — | — | 80.00 |" in text


def test_paper_targets_never_enter_model_index():
    text = _card().render()
    data = ModelCard(text).data
    assert data.eval_results is None and "model-index" not in text  # nothing measured, nothing claimed
    assert "No result is measured yet" in text


def test_results_of_another_protocol_or_other_weights_are_dropped():
    card = _card().with_results(_results(clean=0.9, aa=0.5), PROTOCOL)
    more = card.with_results(_results(pgd20=0.6), PROTOCOL)
    assert more.results == {"clean": 90.0, "pgd20": 60.0, "aa": 50.0}  # same protocol: merged, in table order
    other_n = card.with_results(_results(pgd20=0.6), {**PROTOCOL, "n": 1000})
    assert other_n.results == {"pgd20": 60.0} and other_n.evaluation["n"] == 1000
    other_weights = card.with_results(_results(pgd20=0.6), {**PROTOCOL, "checkpoint_sha256": "d" * 64})
    assert other_weights.results == {"pgd20": 60.0}


def test_broken_cards_are_refused_in_one_line(tmp_path):
    with pytest.raises(InvalidValueError, match="not a robustzoo robustness card"):
        RobustnessCard.parse("---\nlicense: mit\n---\n# a plain model card\n")
    with pytest.raises(InvalidValueError, match="card format 99"):
        RobustnessCard.parse(_card().render().replace("format: 1", "format: 99"))
    with pytest.raises(InvalidValueError, match="not found"):
        RobustnessCard.load(tmp_path / "missing.md")


ZOO = {  # zoo entry -> recipe: every recipe that reproduces a paper row
    "las-awp-cifar10": "las_awp_wrn34", "las-at-cifar10": "las_at_wrn34_cifar10",
    "las-trades-cifar10": "las_trades_wrn34_cifar10", "las-awp-cifar100": "las_awp_wrn34_cifar100",
    "las-awp-tinyimagenet": "las_awp_prn18_tinyimagenet", "ecas-awp-cifar10": "ecas_awp_wrn34_cifar10",
    "ecas-at-cifar10": "ecas_pgdat_wrn34_cifar10", "saat-prn18-cifar10": "saat_prn18_cifar10",
    "saat-awp-prn18-cifar10": "saat_awp_prn18_cifar10", "pgdat-prn18-cifar10": "pgdat_prn18_cifar10",
    "trades-prn18-cifar10": "trades_prn18_cifar10", "trades-wrn34-cifar10": "trades_wrn34_cifar10",
    "awp-prn18-cifar10": "awp_prn18_cifar10", "awp-wrn34-cifar10": "awp_wrn34_cifar10",
    "trades-awp-prn18-cifar10": "trades_awp_prn18_cifar10", "trades-awp-wrn34-cifar10": "trades_awp_wrn34_cifar10",
    "las-awp-wrn70-16-cifar10": "las_awp_wrn70_16_cifar10", "las-awp-wrn34-20-cifar100": "las_awp_wrn34_20_cifar100",
    "las-at-resnet18-cifar10": "las_at_resnet18_cifar10",
    **{f"las-at-resnet18-cifar10-{s.replace('_', '-')}": f"las_at_resnet18_cifar10_{s}"
       for s in ("l1", "l1_l2", "l1_l3", "k1", "k10", "k20", "k60")},
    "ecas-trades-cifar10": "ecas_trades_wrn34_cifar10", "ecas-at-cifar100": "ecas_pgdat_wrn34_cifar100",
    "ecas-trades-cifar100": "ecas_trades_wrn34_cifar100", "ecas-awp-cifar100": "ecas_awp_wrn34_cifar100",
    "ecas-at-resnet18-cifar10": "ecas_pgdat_resnet18_cifar10",
    "ecas-trades-resnet18-cifar10": "ecas_trades_resnet18_cifar10",
    "ecas-awp-resnet18-cifar10": "ecas_awp_resnet18_cifar10", "saat-down-prn18-cifar10": "saat_down_prn18_cifar10",
    "saat-wrn34-cifar10": "saat_wrn34_cifar10", "saat-prn18-cifar100": "saat_prn18_cifar100",
    "saat-trades-prn18-cifar10": "saat_trades_prn18_cifar10",
    "mart-wrn34-cifar10": "mart_wrn34_cifar10", "fgsm-rs-prn18-cifar10": "fgsm_rs_prn18_cifar10",
    "pgdat-l2-prn18-cifar10": "pgdat_l2_prn18_cifar10",
    "dm-trades-wrn28-cifar10-1m": "dm_trades_wrn28_cifar10_1m", "pgdat-resnet50-imagenet": "pgdat_resnet50_imagenet",
    "pgdat-vit-s-imagenet": "pgdat_vit_s_imagenet",
}
REFERENCE_RUNS = {"quickstart"}  # recipes whose `reported` is robustzoo's own reference run, not a paper row


def test_every_paper_recipe_has_a_zoo_card_in_sync_with_it():
    cards = {c.name: c for c in list_zoo()}
    assert set(cards) == set(ZOO)
    with_paper = {p.stem for p in (ROOT / "recipes").glob("*.py") if load_recipe(p)[0].reported} - REFERENCE_RUNS
    assert with_paper == set(ZOO.values())
    for name, stem in ZOO.items():
        path = ROOT / "recipes" / f"{stem}.py"
        recipe, sha = load_recipe(path)
        card = cards[name]
        assert card.recipe == f"recipes/{stem}.py"
        assert card.recipe_sha256 == hashlib.sha256(path.read_bytes()).hexdigest() == sha, \
            f"{name}: recipe changed; run `robustzoo zoo card recipes/{stem}.py {name}`"
        assert card.paper == recipe.reported.as_dict() and card.paper["source"]
        assert card.architecture == recipe.model and card.threat_model["eps"] == recipe.eps
        if card.weights_sha256 is None:  # not published: targets only, never a number no run measured
            assert card.results == {} and card.evaluation == {}
            assert card == card_from_recipe(recipe, f"recipes/{stem}.py", sha, name=name)
        else:  # published: the numbers come with the protocol and the weights they were measured on
            assert card.results and card.evaluation["checkpoint_sha256"] and card.revision and card.config_sha256
        # each number the recipe states is also in its docstring (the paper quote it came from)
        for key, value in recipe.reported.as_dict().items():
            if key != "source":
                assert f"{value:.2f}" in recipe.description or f"{value:.1f}" in recipe.description, (name, key)


def test_zoo_names_resolve_and_unknown_ones_list_close_names():
    card = zoo_card("las-awp-cifar10")
    assert card.repo_id == "robustzoo/las-awp-cifar10" and card.paper["aa"] == 55.52
    with pytest.raises(UnknownNameError, match=r"unknown zoo model 'las-awp-cifar1'.*Did you mean 'las-awp-cifar10'"):
        zoo_card("las-awp-cifar1")
    with pytest.raises(HubError, match="no published weights yet.*robustzoo train recipes/las_awp_wrn34.py"):
        load("las-awp-cifar10")
    with pytest.raises(UnknownNameError, match="unknown zoo model 'README'"):
        zoo_card("README")


def test_a_zoo_card_must_carry_its_file_name(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTZOO_ZOO_DIR", str(tmp_path))
    _card(name="other").save(tmp_path / "toy.md")
    with pytest.raises(InvalidValueError, match="holds the card of 'other'"):
        zoo_card("toy")


def test_zoo_dir_is_shipped_with_the_package():
    assert zoo_dir().resolve() == (ROOT / "zoo_cards").resolve()
