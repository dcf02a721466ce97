"""Evaluation you can trust: guards before, checks after, per-image results, masking flags, resume, reproduce."""
import json
import os
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import robustzoo.evaluation.robustness as robustness
from robustzoo import PGDAT, Fixed, Normalize, Piecewise, Recipe, Trainer, evaluate
from robustzoo.cli import main
from robustzoo.errors import EvaluationError, InvalidValueError

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


class DropoutBNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5),
                                 nn.Flatten(), nn.Linear(8 * 8 * 8, 10))

    def forward(self, x):
        return self.net(x)


@pytest.fixture
def trained_bn_net(digits_linear):
    _, data = digits_linear
    torch.manual_seed(0)
    model = DropoutBNNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = data.train.x.float() / 255, data.train.y
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model, data


def test_a_model_left_in_train_mode_is_evaluated_in_eval_mode_and_put_back(trained_bn_net):
    model, data = trained_bn_net
    model.eval()
    reference = evaluate(model, data.test, attacks=("clean", "pgd10"), eps=16 / 255, n=100)
    assert not reference.notes
    model.train()
    result = evaluate(model, data.test, attacks=("clean", "pgd10"), eps=16 / 255, n=100)
    assert model.training and all(m.training for m in model.modules())  # put back as it was
    assert result.accuracy == reference.accuracy and result.outcomes == reference.outcomes
    assert any("train mode" in note for note in result.notes)


def test_inputs_normalized_outside_the_model_are_refused_with_the_fix(digits_linear):
    model, data = digits_linear
    x = (data.test.x.float() / 255 - 0.3) / 0.37
    with pytest.raises(InvalidValueError, match=r"normalization belongs inside the model.*robustzoo.Normalize"):
        evaluate(model, (x, data.test.y), attacks=("clean",), eps=8 / 255)
    wrapped = Normalize(nn.Identity(), (0.0,), (1.0,))  # the wrapper named in the message exists
    assert torch.equal(wrapped(torch.ones(1, 1, 2, 2)), torch.ones(1, 1, 2, 2))


class Noisy(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x + 0.05 * torch.randn_like(x))


def test_a_randomized_model_is_refused_unless_declared(digits_linear):
    model, data = digits_linear
    with pytest.raises(InvalidValueError, match="randomized defense.*randomized=True"):
        evaluate(Noisy(model), data.test, attacks=("clean", "pgd10"), eps=8 / 255, n=20)
    result = evaluate(Noisy(model), data.test, attacks=("clean", "aa"), eps=8 / 255, n=20, randomized=True,
                      sanity=False)
    assert any("rand version" in note for note in result.notes)
    assert result.results[1].settings["version"] == "rand"
    assert result.record["aa_version"] == "rand"


class Counted(nn.Module):
    """Counts the model's passes by whether gradients are on: (calls, images)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.passes = model, {True: [0, 0], False: [0, 0]}

    def forward(self, x):
        self.passes[torch.is_grad_enabled()][0] += 1
        self.passes[torch.is_grad_enabled()][1] += len(x)
        return self.model(x)


def test_evaluate_adds_one_probe_pair_and_one_rescoring_pass_to_the_attacks(digits_linear):
    model, data = digits_linear
    counted = Counted(model)
    evaluate(counted, data.test, attacks=("clean", "pgd10"), eps=8 / 255, n=50, batch_size=25, sanity=False)
    # guards: one probe of 32 images (class count + first logits of the determinism check) and its repeat;
    # per attack, re-scoring x_adv batch by batch (2 batches); PGD-10: 10 gradient passes per batch
    assert counted.passes[False] == [2 + 2 * 2, 2 * 32 + 2 * 50]
    assert counted.passes[True] == [2 * 10, 10 * 50]


class Quantize(nn.Module):
    """A hard quantizer in front of the net: zero input gradient almost everywhere."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 4) / 4)


def test_zero_input_gradients_raise_a_masking_flag_and_the_plain_net_none(digits_linear):
    model, data = digits_linear
    plain = evaluate(model, data.test, attacks=("clean", "pgd20"), eps=16 / 255, n=100, sanity=True, sanity_n=100)
    assert plain.flags == [] and plain.sanity["zero_gradient_share"] == 0
    masked = evaluate(Quantize(model), data.test, attacks=("clean", "pgd20"), eps=16 / 255, n=100, sanity=True,
                      sanity_n=100)
    names = {f["name"] for f in masked.flags}
    assert "zero-gradients" in names
    flag = next(f for f in masked.flags if f["name"] == "zero-gradients")
    assert flag["evidence"]["share"] > 0.9 and flag["evidence"]["n"] == 100


def test_an_attack_returning_out_of_bounds_images_is_refused(digits_linear, monkeypatch):
    model, data = digits_linear
    original = robustness.white_box

    def too_far(model, x, y, attack, eps, generator=None, norm="Linf"):
        x_adv, settings = original(model, x, y, attack, eps, generator, norm)
        return (x_adv + 2 * eps).clamp(0, 1) if attack != "clean" else x_adv, settings

    monkeypatch.setattr(robustness, "white_box", too_far)
    with pytest.raises(EvaluationError, match=r"attack 'pgd10' returned invalid images: max \|x_adv - x\|"):
        evaluate(model, data.test, attacks=("clean", "pgd10"), eps=8 / 255, n=20)


def test_worst_case_is_the_per_image_and_over_attacks(digits_linear, tmp_path):
    model, data = digits_linear
    result = evaluate(model, data.test, attacks=("clean", "fgsm", "pgd20", "cw"), eps=12 / 255, n=200)
    flags = torch.tensor([result.outcomes[a] for a in ("clean", "fgsm", "pgd20", "cw")])
    assert flags.shape == (4, 200)
    assert result.worst_case == pytest.approx(flags.all(0).float().mean().item())
    for r in result.results:
        assert result.worst_case <= r.accuracy
        assert r.accuracy == pytest.approx(sum(result.outcomes[r.attack]) / 200)
    assert result.worst_case < min(r.accuracy for r in result.results)  # the attacks fool different images
    again = robustness.RobustnessResult.load(result.save(tmp_path / "r.json"))
    assert again.outcomes == result.outcomes and again.accuracy == result.accuracy


@pytest.fixture
def digits_run(tmp_path, digits_small):
    """A small CNN that is right on ~80% of the digits test images and robust on some at 16/255."""
    recipe = Recipe(name="e", model="cifar_small_cnn", model_kwargs={"width": 8}, dataset="digits", val_size=64,
                    policy=Fixed(eps=8 / 255, step_size=4 / 255, steps=1), defense=PGDAT(), eps=16 / 255,
                    epochs=10, batch_size=32, lr=0.05, schedule=Piecewise((0.5,)), val_steps=1)
    Trainer(recipe, tmp_path / "run", data=digits_small, device="cpu", progress=False).fit()
    return tmp_path / "run"


KILLER = """
import os, signal, sys
import robustzoo.evaluation.robustness as r
calls = 0
write = r.write_json
def killing(path, obj):
    global calls
    calls += 1
    if calls == 3:  # the third chunk is done but its state never reaches the disk
        os.kill(os.getpid(), signal.SIGKILL)
    write(path, obj)
r.write_json = killing
from robustzoo.cli import main
main(sys.argv[1:])
"""


def test_a_killed_evaluation_continues_and_ends_identical(tmp_path, digits_run):
    args = ["evaluate", str(digits_run), "--attack", "clean,pgd20,cw", "--n", "160", "--batch-size", "8",
            "--chunk-size", "16", "--device", "cpu"]
    full = subprocess.run([sys.executable, "-m", "robustzoo", *args, "--out", str(tmp_path / "full.json")],
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert full.returncode == 0, full.stderr
    killed = subprocess.run([sys.executable, "-c", KILLER, *args, "--out", str(tmp_path / "run.json")],
                            capture_output=True, text=True, env=ENV, timeout=600)
    assert killed.returncode == -9 and not (tmp_path / "run.json").exists()
    state = json.loads((tmp_path / "run.state.json").read_text())
    assert sorted(state["chunks"]) == ["0", "1"]  # two of ten chunks were saved before the kill
    resumed = subprocess.run([sys.executable, "-m", "robustzoo", *args, "--out", str(tmp_path / "run.json")],
                             capture_output=True, text=True, env=ENV, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("full.json", "run.json"))
    assert a["accuracy"] == b["accuracy"] and a["outcomes"] == b["outcomes"] and a["indices"] == b["indices"]
    assert 0 < a["accuracy"]["pgd20"] < a["accuracy"]["clean"]  # not a trivial model: the outcomes vary
    assert not (tmp_path / "run.state.json").exists()  # removed once the result is written


def test_reproduce_and_compare_result_files(tmp_path, digits_run):
    runner = CliRunner()
    common = ["--attack", "clean,pgd10", "--n", "60", "--device", "cpu", "--seed", "1"]
    first = runner.invoke(main, ["evaluate", str(digits_run), *common, "--eps", "2/255",
                                 "--out", str(tmp_path / "a.json")])
    assert first.exit_code == 0, first.output
    record = json.loads((tmp_path / "a.json").read_text())["record"]
    assert record["attacks"] == ["clean", "pgd10"] and record["seed"] == 1 and len(record["weights_sha256"]) == 64
    assert set(record["versions"]) == {"torch", "timm", "pyautoattack", "robustzoo"}
    again = runner.invoke(main, ["evaluate", "--reproduce", str(tmp_path / "a.json")], terminal_width=200)
    assert again.exit_code == 0 and "reproduced: identical" in again.output
    other = runner.invoke(main, ["evaluate", str(digits_run), *common[:-1], "2", "--eps", "48/255",
                                 "--out", str(tmp_path / "b.json")])
    assert other.exit_code == 0, other.output
    shown = runner.invoke(main, ["evaluate", "--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")],
                          terminal_width=200)
    assert shown.exit_code == 0 and "robust in A only" in shown.output and "60 images in both" in shown.output
    diff = robustness.compare(*(robustness.RobustnessResult.load(tmp_path / f) for f in ("a.json", "b.json")))
    assert diff["clean"]["lost"] == diff["clean"]["gained"] == []  # clean does not depend on eps
    assert len(diff["pgd10"]["lost"]) > 0 and diff["pgd10"]["a"] > diff["pgd10"]["b"]  # 48/255 breaks more
    with_amp = runner.invoke(main, ["evaluate", str(digits_run), *common, "--eps", "2/255", "--amp", "bf16",
                                    "--out", str(tmp_path / "amp.json")])
    assert with_amp.exit_code == 0, with_amp.output
    assert json.loads((tmp_path / "amp.json").read_text())["record"]["amp"] == "bf16"
    again = runner.invoke(main, ["evaluate", "--reproduce", str(tmp_path / "amp.json")], terminal_width=200)
    assert again.exit_code == 0 and "reproduced: identical" in again.output  # --reproduce re-runs it under bf16
    tampered = json.loads((tmp_path / "a.json").read_text())
    tampered["outcomes"]["pgd10"][0] = 1 - tampered["outcomes"]["pgd10"][0]
    (tmp_path / "t.json").write_text(json.dumps(tampered))
    assert runner.invoke(main, ["evaluate", "--reproduce", str(tmp_path / "t.json")]).exit_code == 1


def _class_tree(root, classes: int, per_class: int = 12):
    from PIL import Image

    g = torch.Generator().manual_seed(classes)
    for split in ("train", "test"):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                base = torch.full((8, 8, 3), 40 + 80 * c, dtype=torch.int32)
                pixels = (base + torch.randint(-30, 30, (8, 8, 3), generator=g)).clamp(0, 255).to(torch.uint8)
                Image.fromarray(pixels.numpy()).save(folder / f"{i}.png")


@pytest.mark.parametrize("classes", [2, 3])
def test_autoattack_on_few_class_image_folders_finishes_and_says_what_it_changed(tmp_path, classes):
    _class_tree(tmp_path / "data", classes)
    recipe = Recipe(name="few", model="cifar_small_cnn", model_kwargs={"width": 4}, dataset="imagefolder",
                    data_dir=str(tmp_path / "data"), val_size=4, policy=Fixed(eps=8 / 255, step_size=2 / 255,
                    steps=2), defense=PGDAT(), eps=8 / 255, epochs=3, batch_size=8, lr=0.05, val_steps=1)
    Trainer(recipe, tmp_path / "run", device="cpu", progress=False).fit()
    result = CliRunner().invoke(main, ["evaluate", str(tmp_path / "run"), "--attack", "clean,aa", "--device", "cpu",
                                       "--no-sanity"], terminal_width=250)
    assert result.exit_code == 0, result.output
    assert f"AutoAttack adapted to {classes} classes" in result.output
    record = json.loads((tmp_path / "run" / "eval.json").read_text())
    aa = record["results"][1]["settings"]
    assert aa["target_classes"]["fab-t"] == classes - 1
    assert "apgd-t" not in aa["attacks"] and "apgd-ce" in aa["attacks"] and "fab-t" in aa["attacks"]
    assert any("apgd-t skipped: its DLR loss needs at least 4 classes" in c for c in aa["changes"])
    assert record["record"]["num_classes"] == classes
