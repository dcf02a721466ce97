"""The CLI end to end on the digits data, and one clear line for each kind of bad input."""
import json
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from robustzoo.cli import main

RECIPE = textwrap.dedent('''
    from robustzoo import Fixed, PGDAT, Recipe

    def recipe():
        return Recipe(name="cli", model="cifar_small_cnn", model_kwargs={"width": 8}, dataset="digits",
                      val_size=100, policy=Fixed(eps=32 / 255, step_size=8 / 255, steps=3), defense=PGDAT(),
                      eps=32 / 255, epochs=5, batch_size=32, lr=0.05, val_steps=3)
''')


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "recipe.py").write_text(RECIPE)
    result = CliRunner().invoke(main, ["train", str(tmp / "recipe.py"), "--epochs", "2", "--out",
                                       str(tmp / "run"), "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp


def test_train_then_evaluate_pgd10_and_autoattack(trained_run):
    run = trained_run / "run"
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # --epochs overrode the recipe's 5
    out = trained_run / "eval.json"
    result = CliRunner().invoke(main, ["evaluate", str(run), "--attack", "clean,pgd10", "--attack", "aa",
                                       "--n", "32", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "pgd10" in result.output and "aa" in result.output
    report = json.loads(out.read_text())
    acc = {r["attack"]: r["accuracy"] for r in report["results"]}
    assert report["n"] == 32 and report["threat_model"]["eps"] == pytest.approx(32 / 255)
    assert acc["aa"] <= acc["clean"] and acc["pgd10"] <= acc["clean"]
    assert acc["clean"] > 0.3


def test_resume_continues_a_cli_run(trained_run):
    result = CliRunner().invoke(main, ["train", str(trained_run / "recipe.py"), "--epochs", "3", "--resume",
                                       "--out", str(trained_run / "run"), "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    epochs = [json.loads(ln)["epoch"] for ln in (trained_run / "run" / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]


def _fails(args, match, tmp_path=None):
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    message = lines[0]
    assert match in message, result.output
    assert "Traceback" not in result.output
    return message


def test_bad_recipes(tmp_path):
    _fails(["train", str(tmp_path / "nope.py")], "not found")
    (tmp_path / "raises.py").write_text("def recipe():\n    raise RuntimeError('boom')\n")
    _fails(["train", str(tmp_path / "raises.py"), "--out", str(tmp_path / "r1")], "raised RuntimeError: boom")
    (tmp_path / "policy.py").write_text("from robustzoo import create_policy\n"
                                        "def recipe():\n    return create_policy('Fixd')\n")
    _fails(["train", str(tmp_path / "policy.py")], "unknown policy 'Fixd'")
    (tmp_path / "model.py").write_text(RECIPE.replace("cifar_small_cnn", "resnet181"))
    _fails(["train", str(tmp_path / "model.py"), "--out", str(tmp_path / "r2"), "--quiet"],
           "unknown model 'resnet181'")
    (tmp_path / "eps.py").write_text(RECIPE.replace("eps=32 / 255, epochs", "eps=2.0, epochs"))
    _fails(["train", str(tmp_path / "eps.py")], "eps=2.0 is out of range")
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()  # nothing half-written


def test_bad_evaluate_inputs(trained_run, tmp_path):
    run = str(trained_run / "run")
    _fails(["evaluate", run, "--attack", "pgd"], "unknown attack 'pgd'")
    _fails(["evaluate", run, "--eps", "0"], "eps=0.0 is out of range")
    _fails(["evaluate", run, "--eps", "300/255"], "out of range")
    (tmp_path / "w.safetensors").write_bytes(b"\x80\x04this is a pickle")
    _fails(["evaluate", str(tmp_path / "w.safetensors")], "not a valid safetensors checkpoint")
    _fails(["evaluate", str(tmp_path / "none")], "not found")
    assert not (tmp_path / "eval.json").exists()


def test_console_script_exit_code_and_listings():
    proc = subprocess.run([sys.executable, "-m", "robustzoo", "train", "missing_recipe.py"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: recipe file 'missing_recipe.py' not found; expected a Python file "
                                   "such as recipes/quickstart.py")
    runner = CliRunner()
    assert "Fixed" in runner.invoke(main, ["policies"]).output
    listing = runner.invoke(main, ["models"]).output
    assert "cifar_wrn_34_10" in listing and "cifar_preact_resnet18" in listing
    assert "vit_tiny_patch16_224" in runner.invoke(main, ["models", "vit_tiny*"]).output


def _cifar_like_tree(root, per_class=(26, 4)):
    """A 10-class 32×32 PNG tree in the image-folder layout (what the CIFAR-10 JPEG archive unpacks to)."""
    import torch
    from torchvision.io import encode_png

    g = torch.Generator().manual_seed(0)
    for split, n in zip(("train", "test"), per_class):
        for c in range(10):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                img = (torch.rand(3, 32, 32, generator=g) * 60 + 20 * c).to(torch.uint8)
                (folder / f"{i:04d}.png").write_bytes(encode_png(img).numpy().tobytes())
    return root


def test_awp_recipe_from_the_cli(tmp_path):
    """`robustzoo train recipes/awp_*.py --epochs 1` with a small-data override, on a CIFAR-10-shaped tree."""
    from pathlib import Path

    cifar10_tree = _cifar_like_tree(tmp_path / "cifar10")
    recipe = Path(__file__).parents[1] / "recipes" / "awp_prn18_cifar10.py"
    result = CliRunner().invoke(main, ["train", str(recipe), "--epochs", "1", "--data-dir", str(cifar10_tree),
                                       "--model", "cifar_small_cnn", "--train-subset", "128", "--val-size", "64",
                                       "--batch-size", "64", "--out", str(tmp_path / "run"), "--device", "cpu",
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    assert "AWP" in result.output and "cifar_small_cnn" in result.output
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert record["step"] == 2 and record["mean_steps"] == 10
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["recipe"]["defense_config"] == {
        "defense": "PGDAT", "defense_config": {"label_smoothing": 0.0, "random_start": True, "true_prob": None},
        "gamma": 0.01,
        "warmup": 0}


def test_bad_autoattack_options_fail_before_any_attack(trained_run):
    run = str(trained_run / "run")
    _fails(["evaluate", run, "--attack", "clean,aa", "--aa-attacks", "apgd-xx"], "unknown AutoAttack attack 'apgd-xx'")
    _fails(["evaluate", run, "--attack", "pgd10", "--aa-attacks", "apgd-ce"], "'aa' is not among the attacks")


def test_cifar10_tree_with_the_wrong_class_count(tmp_path):
    from robustzoo import load_data
    from robustzoo.errors import InvalidValueError

    tree = _cifar_like_tree(tmp_path / "t", per_class=(1, 1))
    import shutil
    shutil.rmtree(tree / "train" / "class9")
    with pytest.raises(InvalidValueError, match="has 9 class folders; CIFAR-10 has 10"):
        load_data("cifar10", tree)


def test_a_recipe_pointing_at_the_real_cifar10_tree_trains_from_the_cli(cifar10_tree, tmp_path):
    """The shared JPEG CIFAR-10, unpacked: a recipe names the tree in `data_dir`; train and evaluate run."""
    (tmp_path / "recipe.py").write_text(textwrap.dedent(f'''
        from robustzoo import Fixed, PGDAT, Recipe

        def recipe():
            return Recipe(name="real-cifar10", model="cifar_small_cnn", model_kwargs={{"width": 8}},
                          dataset="cifar10", data_dir={str(cifar10_tree)!r}, train_subset=256, val_size=64,
                          policy=Fixed(steps=2), defense=PGDAT(), epochs=1, batch_size=64, val_steps=2)
    '''))
    run = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", str(tmp_path / "recipe.py"), "--out", str(run), "--device", "cpu",
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["dataset"]["classes"][:2] == ["airplane", "automobile"] and config["dataset"]["input_size"] == [3, 32, 32]
    result = CliRunner().invoke(main, ["evaluate", str(run), "--attack", "clean", "--n", "50", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads((run / "eval.json").read_text())
    assert report["n"] == 50 and len(set(i // 1000 for i in report["indices"])) == 10  # 5 of each class
