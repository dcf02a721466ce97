"""RobustBench in and out: checkpoints written in RobustBench's own format and place (its `model_dir` layout,
random weights from its own architecture classes), imported through its `load_model`; model_info export."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import robustzoo
from robustzoo.cli import main
from robustzoo.errors import CheckpointError, InvalidValueError, UnknownNameError
from robustzoo.models.robustbench import entry, robustbench
from robustzoo.zoo.card import RobustnessCard
from robustzoo.zoo.robustbench import UnsafeCheckpointError, import_robustbench, model_info, read_model_info

pytest.importorskip("pyautoattack")
try:
    robustbench()
except Exception as e:  # pragma: no cover - the test extra installs it
    pytest.skip(f"robustbench is not importable ({e}); pip install -e '.[test]'", allow_module_level=True)

# as committed in RobustBench's repository (model_info/cifar10/Linf/Jia2022LAS-AT_34_10.json): not strict JSON
LAS_INFO = """{
  "link": https://arxiv.org/abs/2203.06616,
  "name": "LAS-AT: Adversarial Training with Learnable Attack Strategy",
  "authors": "Xiaojun Jia, Yong Zhang, Baoyuan Wu, Ke Ma, Jue Wang, Xiaochun Cao",
  "additional_data": false,
  "number_forward_passes": 1,
  "dataset": "cifar10",
  "venue": "arXiv, Mar 2022",
  "architecture": "WideResNet-34-10",
  "eps": "8/255",
  "clean_acc": "84.98",
  "reported": "56.26",
  "autoattack_acc": "56.26",
  "footnote": "",
  "unreliable": false
}"""


def _randomize_batchnorm(net: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics and affine terms, so a mis-mapped BN buffer changes the logits."""
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.bias.shape, generator=g) * 0.2 - 0.1)
    return net.eval()


def _write_robustbench_checkpoint(model_dir: Path, name: str, threat_model: str = "Linf") -> torch.nn.Module:
    """RobustBench's entry `name` with random weights, saved where and as its `load_model` reads it."""
    torch.manual_seed(0)
    net = _randomize_batchnorm(entry(name, "cifar10", threat_model)["model"]())
    path = model_dir / "cifar10" / threat_model / f"{name}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)  # DataParallel keys
    return net


def _without_robustbench(code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter where `import robustbench` fails."""
    return subprocess.run([sys.executable, "-c", "import sys; sys.modules['robustbench'] = None\n" + code],
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def las_import(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rb-las")
    net = _write_robustbench_checkpoint(tmp / "models", "Jia2022LAS-AT_34_10")
    (tmp / "info.json").write_text(LAS_INFO)
    run = import_robustbench("Jia2022LAS-AT_34_10", tmp / "run", model_dir=tmp / "models",
                             model_info=tmp / "info.json")
    return net, run


def test_a_robustbench_wrn_34_10_imports_to_our_cifar_wrn_34_10_with_equal_logits(las_import):
    theirs, run = las_import
    assert sorted(p.name for p in run.iterdir()) == ["card.md", "config.json", "model.safetensors"]
    ours = robustzoo.load(str(run))
    assert ours.config["architecture"] == "cifar_wrn_34_10"
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        a, b = theirs(x), ours(x)
    diff = (a - b).abs().max().item()
    print(f"max |logit difference| RobustBench WideResNet vs cifar_wrn_34_10: {diff:.2e} (|logits| <= "
          f"{a.abs().max():.1f})")
    assert diff < 1e-4 * max(1.0, a.abs().max().item())
    assert a.std() > 0  # a non-constant network
    record = json.loads((run / "config.json").read_text())
    imported = record["imported"]
    assert imported["converted_to"] == "cifar_wrn_34_10" and imported["max_logit_difference"] < 1e-4
    assert imported["link"] == "https://arxiv.org/abs/2203.06616" and imported["reported_autoattack"] == 56.26
    card = RobustnessCard.load(run / "card.md")
    assert card.provenance["entry"] == "Jia2022LAS-AT_34_10" and card.paper["aa"] == 56.26
    assert card.paper["clean"] == 84.98 and "not trained by robustzoo" in (run / "card.md").read_text()
    assert card.threat_model == {"norm": "Linf", "eps": 8 / 255}


def test_a_native_import_loads_without_robustbench(las_import):
    theirs, run = las_import
    code = (f"import torch, robustzoo\nm = robustzoo.load({str(run)!r})\n"
            f"x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))\n"
            f"print(m.config['architecture'], m(x).detach().flatten()[:3].tolist())")
    done = _without_robustbench(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "cifar_wrn_34_10"
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = theirs(x).flatten()[:3]
    got = torch.tensor(json.loads(done.stdout.split(" ", 1)[1]))
    assert torch.allclose(got, expected, atol=1e-4)


def test_a_non_native_architecture_is_kept_and_loads_through_robustbench(tmp_path):
    theirs = _write_robustbench_checkpoint(tmp_path / "models", "Wong2020Fast")  # PreActResNet-18 + (x-mu)/sigma
    result = CliRunner().invoke(main, ["import", "robustbench:Wong2020Fast", "--model-dir", str(tmp_path / "models"),
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "kept as RobustBench's module robustbench:cifar10/Linf/Wong2020Fast" in " ".join(result.output.split())
    ours = robustzoo.load(str(tmp_path / "run"))
    assert ours.config["architecture"] == "robustbench:cifar10/Linf/Wong2020Fast"
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
    assert "robustzoo[robustbench]" in (tmp_path / "run" / "card.md").read_text()
    done = _without_robustbench(f"import robustzoo\nrobustzoo.load({str(tmp_path / 'run')!r})")
    assert done.returncode != 0 and 'pip install "robustzoo[robustbench]"' in done.stderr
    again = CliRunner().invoke(main, ["import", "robustbench:Wong2020Fast", "--model-dir", str(tmp_path / "models"),
                                      "--out", str(tmp_path / "run")])
    assert again.exit_code == 2 and "already holds a run" in " ".join(again.output.split())  # no silent overwrite


class _RunsCode:
    """Unpickling this calls os.mkdir(marker): what a malicious checkpoint would do."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_import_refuses_a_pickle_that_would_run_code_and_names_html_pages(tmp_path):
    path = tmp_path / "models" / "cifar10" / "Linf" / "Wong2020Fast.pt"
    path.parent.mkdir(parents=True)
    marker = tmp_path / "code-ran"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "payload": _RunsCode(str(marker))}, path)
    with pytest.raises(UnsafeCheckpointError, match="weights_only=True.*refusing"):
        import_robustbench("Wong2020Fast", tmp_path / "run", model_dir=tmp_path / "models")
    assert not marker.exists() and not (tmp_path / "run" / "model.safetensors").exists()
    result = CliRunner().invoke(main, ["import", "robustbench:Wong2020Fast", "--model-dir", str(tmp_path / "models"),
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and not marker.exists()
    path.write_text("<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head></html>")
    with pytest.raises(CheckpointError, match="HTML page"):
        import_robustbench("Wong2020Fast", tmp_path / "run", model_dir=tmp_path / "models")
    with pytest.raises(UnknownNameError, match="Jia2022LAS-AT_34_10"):
        import_robustbench("Jia2022LAS-AT_34_1", tmp_path / "run", model_dir=tmp_path / "models")
    bad = CliRunner().invoke(main, ["import", "timm:resnet50", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "expected robustbench:MODEL_NAME" in " ".join(bad.output.split())


def test_a_failed_download_is_one_line_naming_where_the_file_goes(tmp_path, monkeypatch):
    import robustbench.utils

    def offline(gdrive_id, path):
        raise ConnectionError("Max retries exceeded with url: /uc?id=" + gdrive_id)

    monkeypatch.setattr(robustbench.utils, "download_gdrive_new", offline)
    with pytest.raises(CheckpointError, match=r"Wong2020Fast.pt not found and RobustBench's download failed "
                                              r"\(ConnectionError: Max retries.*by hand"):
        import_robustbench("Wong2020Fast", tmp_path / "run", model_dir=tmp_path / "models")


def test_model_info_export_loads_with_robustbench_model_info(las_import, digits_linear):
    from robustbench.utils import ModelInfo

    _, run = las_import
    model, data = digits_linear
    result = robustzoo.evaluate(model, data.test, ("clean", "aa"), eps=8 / 255, n=40, batch_size=40, sanity=False)
    record = {**result.to_dict(), "record": {**result.record, "dataset": "cifar10"}}
    info = json.loads(json.dumps(model_info(record, RobustnessCard.load(run / "card.md"))))
    parsed = ModelInfo(**info)
    assert parsed.autoattack_acc == f"{100 * result.accuracy['aa']:.2f}"
    assert parsed.clean_acc == f"{100 * result.accuracy['clean']:.2f}"
    assert parsed.eps == "8/255" and parsed.reported == "56.26" and parsed.architecture == "WideResNet-34-10"
    assert parsed.name.startswith("LAS-AT") and "40 test images" in parsed.footnote
    with pytest.raises(InvalidValueError, match="AutoAttack"):
        model_info({"accuracy": {"clean": 0.5}})
    assert read_model_info(run.parent / "info.json", "x", "cifar10", "Linf")["venue"] == "arXiv, Mar 2022"


def test_order_first_takes_the_first_n_in_file_order(digits_linear):
    model, data = digits_linear
    first = robustzoo.evaluate(model, data.test, ("clean",), n=7, order="first")
    assert first.indices == list(range(7)) and first.record["order"] == "first"
    balanced = robustzoo.evaluate(model, data.test, ("clean",), n=7)
    assert balanced.indices != first.indices and "order" not in balanced.record
    n = len(data.test.y)
    assert sorted(robustzoo.evaluate(model, data.test, ("clean",), order="first").indices) == \
        sorted(robustzoo.evaluate(model, data.test, ("clean",)).indices) == list(range(n))
    with pytest.raises(InvalidValueError, match="order='random'"):
        robustzoo.evaluate(model, data.test, ("clean",), n=7, order="random")


def test_imports_push_and_load_from_the_hub_like_any_run(las_import, tmp_path, monkeypatch):
    from hub_server import HubServer, patch_hub_client

    theirs, run = las_import
    wong = _write_robustbench_checkpoint(tmp_path / "models", "Wong2020Fast")
    wong_run = import_robustbench("Wong2020Fast", tmp_path / "wong", model_dir=tmp_path / "models")
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with HubServer(tmp_path / "server", token="hf_t") as server:
        patch_hub_client(monkeypatch, server.url, tmp_path / "cache")
        for folder, repo, reference, name in ((run, "alice/las-at-rb", theirs, "Jia2022LAS-AT_34_10"),
                                              (wong_run, "alice/wong-rb", wong, "Wong2020Fast")):
            pushed = robustzoo.push(folder, repo, token="hf_t")
            assert pushed.card.provenance["source"] == "robustbench"
            model = robustzoo.load(repo, cache_dir=tmp_path / "c")
            with torch.no_grad():
                assert torch.allclose(model(x), reference(x), atol=1e-4)
            assert model.card.provenance["entry"] == name and model.config["architecture"] == (
                "cifar_wrn_34_10" if name.startswith("Jia") else "robustbench:cifar10/Linf/Wong2020Fast")
