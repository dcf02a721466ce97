"""Push and load through the real huggingface_hub client, against a Hub-compatible server on 127.0.0.1."""
import hashlib
import json
import pickle
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
from click.testing import CliRunner

from hub_server import HubServer, patch_hub_client, timm_can_use_hub
from robustzoo import Fixed, PGDAT, Recipe, RobustnessCard, Trainer, load, load_model, push
from robustzoo.cli import main
from robustzoo.errors import HubError, IntegrityError

TIMM_HUB = pytest.mark.skipif(not timm_can_use_hub(), reason="this timm cannot import this huggingface_hub "
                              "(timm 1.0.9, robustbench's pin): timm's hf-hub: loading is off")

TOKEN = "hf_test_write_token_0123456789"


def _train(out, model="cifar_small_cnn", seed=0, **kwargs):
    recipe = Recipe(name="hub-toy", model=model, model_kwargs=kwargs, dataset="digits", val_size=64,
                    train_subset=128, policy=Fixed(eps=32 / 255, step_size=8 / 255, steps=2), defense=PGDAT(),
                    eps=32 / 255, epochs=1, batch_size=32, lr=0.05, val_steps=2, seed=seed)
    Trainer(recipe, out, device="cpu", progress=False, recipe_sha256="0" * 64, recipe_path="recipes/toy.py").fit()
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("hub") / "run", width=8)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with HubServer(tmp_path_factory.mktemp("hub-server"), token=TOKEN) as hub:
        yield hub


@pytest.fixture
def hub(server, tmp_path, monkeypatch):
    """The server, with huggingface_hub (and timm) pointed at it and an empty cache."""
    patch_hub_client(monkeypatch, server.url, tmp_path / "cache")
    return server


@pytest.fixture(scope="module")
def pushed(server, run, tmp_path_factory):
    """`run` pushed once to alice/toy (module-wide: the repos live as long as the server)."""
    with pytest.MonkeyPatch.context() as mp:
        patch_hub_client(mp, server.url, tmp_path_factory.mktemp("cache"))
        result = push(run, "alice/toy", token=TOKEN)
    return result


def _batch():
    torch.manual_seed(1)
    return torch.rand(16, 1, 8, 8)  # digits: 1 channel, 8×8


def test_push_then_load_gives_the_same_bits_and_predictions(hub, run, pushed, tmp_path):
    files = hub.repo_files("alice/toy")
    assert {"README.md", "config.json", "model.safetensors"} <= set(files)
    assert len(hub.commits("alice/toy")) == 2  # the repo's initial commit + one commit for the push
    assert TOKEN in hub.tokens_seen
    trained = load_model(run)
    pushed_weights = safetensors.torch.load(files["model.safetensors"])
    assert pushed_weights.keys() == trained.model.state_dict().keys()  # timm-native keys
    assert all(torch.equal(pushed_weights[k], v) for k, v in trained.model.state_dict().items())
    card = RobustnessCard.parse(files["README.md"].decode())
    assert card.weights_sha256 == hashlib.sha256(files["model.safetensors"]).hexdigest() == pushed.card.weights_sha256
    assert card.repo_id == "alice/toy" and card.name == "toy" and card.recipe_sha256 == "0" * 64 and card.epochs == 1
    assert card.config_sha256 == hashlib.sha256(files["config.json"]).hexdigest()
    assert RobustnessCard.load(run / "card.md").revision == pushed.commit == hub.commits("alice/toy")[-1]

    model = load("alice/toy", cache_dir=tmp_path / "c")
    assert not model.training
    x = _batch()
    with torch.no_grad():
        assert torch.equal(model(x), trained(x))
    assert model.run_info["dataset"]["name"] == "digits" and model.card.name == "toy"
    assert model.run_info["threat_model"]["eps"] == pytest.approx(32 / 255)


@TIMM_HUB
def test_timm_loads_the_pushed_repo_with_its_own_hub_convention(hub, run, pushed):
    trained = load_model(run)
    net = timm.create_model("hf-hub:alice/toy", pretrained=True).eval()
    assert all(torch.equal(net.state_dict()[k], v) for k, v in trained.model.state_dict().items())
    cfg = net.pretrained_cfg
    mean, std = torch.tensor(cfg["mean"]).view(1, -1, 1, 1), torch.tensor(cfg["std"]).view(1, -1, 1, 1)
    x = _batch()
    with torch.no_grad():
        assert torch.allclose(net((x - mean) / std), trained(x), atol=1e-6)


@TIMM_HUB
def test_a_native_timm_model_loads_in_a_process_without_robustzoo(server, tmp_path):
    with pytest.MonkeyPatch.context() as mp:
        patch_hub_client(mp, server.url, tmp_path / "cache")
        run = _train(tmp_path / "native", model="test_resnet")
        push(run, "alice/native", token=TOKEN)
    script = textwrap.dedent("""
        import sys, timm, torch, safetensors.torch
        net = timm.create_model("hf-hub:alice/native", pretrained=True)
        assert "robustzoo" not in sys.modules
        safetensors.torch.save_file(net.state_dict(), sys.argv[1])
    """)
    out = tmp_path / "timm.safetensors"
    proc = subprocess.run([sys.executable, "-c", script, str(out)], env=server.client_env(tmp_path / "c2"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded, trained = safetensors.torch.load_file(out), load_model(run).model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in trained.items())


def test_tampered_weights_are_refused(hub, run, tmp_path):
    push(run, "alice/tamper", token=TOKEN)
    data = bytearray(hub.repo_files("alice/tamper")["model.safetensors"])
    data[-1] ^= 1  # one bit of the last tensor
    hub.put_file("alice/tamper", "model.safetensors", bytes(data))
    with pytest.raises(IntegrityError, match=r"model.safetensors has sha256 [0-9a-f]{64}, the card expects"):
        load("alice/tamper", cache_dir=tmp_path / "c")


def test_a_zoo_card_pins_the_weights_even_against_a_rewritten_repo(hub, run, tmp_path, monkeypatch):
    result = push(run, "alice/pinned", token=TOKEN)
    monkeypatch.setenv("ROBUSTZOO_ZOO_DIR", str(tmp_path / "zoo"))
    result.card.replace(name="toy-zoo", revision=None).save(tmp_path / "zoo" / "toy-zoo.md")
    model = load("toy-zoo", cache_dir=tmp_path / "c1")
    assert model.run_info["source"]["repo_id"] == "alice/pinned"
    # whoever controls the repo swaps in other weights *and* a card that vouches for them
    other = safetensors.torch.save({k: torch.zeros_like(v) for k, v in load_model(run).model.state_dict().items()})
    hub.put_file("alice/pinned", "model.safetensors", other)
    card = RobustnessCard.parse(hub.repo_files("alice/pinned")["README.md"].decode())
    hub.put_file("alice/pinned", "README.md", card.replace(weights_sha256=hashlib.sha256(other).hexdigest()).render().encode())
    load("alice/pinned", cache_dir=tmp_path / "c2")  # the repo's own card agrees with itself...
    with pytest.raises(IntegrityError, match="the card expects"):
        load("toy-zoo", cache_dir=tmp_path / "c3")  # ...but the zoo's card does not


class _Bomb:
    """Unpickling this creates a marker file: proof that someone unpickled it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_pickles_in_a_repo_are_never_unpickled(hub, run, pushed, tmp_path):
    from huggingface_hub import HfApi

    marker = tmp_path / "unpickled"
    push(run, "alice/pickle", token=TOKEN)
    hub.put_file("alice/pickle", "pytorch_model.bin", pickle.dumps(_Bomb(marker)))
    load("alice/pickle", cache_dir=tmp_path / "c1")
    # a repo whose weights are only a pickle (card and config valid): refused, still not unpickled
    folder = tmp_path / "bin-repo"
    folder.mkdir()
    for name in ("README.md", "config.json"):
        (folder / name).write_bytes(hub.repo_files("alice/toy")[name])
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Bomb(marker)))
    api = HfApi(endpoint=hub.url, token=TOKEN)
    api.create_repo("alice/only-pickle")
    api.upload_folder(repo_id="alice/only-pickle", folder_path=folder)
    with pytest.raises(HubError, match="has no model.safetensors; robustzoo loads safetensors only and never unpickles"):
        load("alice/only-pickle", cache_dir=tmp_path / "c2")
    assert not marker.exists()
    assert not any(path.endswith("pytorch_model.bin") for method, path in hub.requests if method == "GET")


def test_a_repo_without_safetensors_is_refused_in_one_line(hub, tmp_path):
    hub.put_file("alice/bin-only", "pytorch_model.bin", pickle.dumps({"w": 1}))
    with pytest.raises(HubError, match="no README.md: not a model pushed by robustzoo"):
        load("alice/bin-only", cache_dir=tmp_path / "c")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_hub_with_nothing_cached_is_one_line(server, tmp_path):
    env = server.client_env(tmp_path / "cache")
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    proc = subprocess.run([sys.executable, "-m", "robustzoo", "evaluate", "alice/toy"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr  # (after the client's retries)
    assert proc.stderr.startswith("error: the Hub at http://127.0.0.1:") and "is unreachable" in proc.stderr
    assert "alice/toy/README.md is not in the cache" in proc.stderr


def test_offline_mode_uses_the_cache(server, pushed, tmp_path):
    cache = tmp_path / "cache"
    script = "import sys, robustzoo; m = robustzoo.load(sys.argv[1]); print(m.card.weights_sha256)"
    env = server.client_env(cache)
    proc = subprocess.run([sys.executable, "-c", script, "alice/toy"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    before = len(server.requests)
    env["HF_HUB_OFFLINE"] = "1"
    proc = subprocess.run([sys.executable, "-c", script, "alice/toy"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == pushed.card.weights_sha256
    assert len(server.requests) == before  # offline: not a single request
    proc = subprocess.run([sys.executable, "-m", "robustzoo", "evaluate", "alice/never-cached"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: offline mode (HF_HUB_OFFLINE) is on"), proc.stderr


def test_cli_push_private_repo_never_prints_the_token(hub, run, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["push", str(run), "alice/private", "--private", "--token", TOKEN])
    assert result.exit_code == 0, result.output
    assert "pushed" in result.output and TOKEN not in result.output
    bad = runner.invoke(main, ["push", str(run), "alice/private2", "--token", "hf_wrong_token_987"])
    assert bad.exit_code == 2 and "hf_wrong_token_987" not in bad.output
    assert bad.output.startswith("error: push to alice/private2") and bad.output.count("\n") == 1, bad.output
    with pytest.raises(HubError, match="no model repo 'alice/private'.*needs a token"):
        load("alice/private", cache_dir=tmp_path / "c1")
    assert load("alice/private", token=TOKEN, cache_dir=tmp_path / "c2") is not None
    env_token = runner.invoke(main, ["push", str(run), "alice/private"], env={"HF_TOKEN": TOKEN})
    assert env_token.exit_code == 0 and TOKEN not in env_token.output


def test_evaluate_card_then_push_publishes_the_measured_numbers(hub, tmp_path):
    run = _train(tmp_path / "run", width=8)
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", str(run), "--attack", "clean,pgd10", "--n", "48", "--card",
                                  "--device", "cpu"])
    assert result.exit_code == 0, result.output
    card = RobustnessCard.load(run / "card.md")
    report = json.loads((run / "eval.json").read_text())
    assert card.results == {a["attack"]: round(100 * a["accuracy"], 2) for a in report["results"]}
    assert card.evaluation["n"] == 48 and card.evaluation["checkpoint"] == "best.safetensors"
    assert runner.invoke(main, ["push", str(run), "alice/measured", "--token", TOKEN]).exit_code == 0
    pushed_card = RobustnessCard.parse(hub.repo_files("alice/measured")["README.md"].decode())
    assert pushed_card.results == card.results
    # evaluating the Hub copy gives the same numbers (same seed, same images, same bits)
    result = runner.invoke(main, ["evaluate", "alice/measured", "--attack", "clean,pgd10", "--n", "48",
                                  "--card", "--out", str(tmp_path / "hub" / "eval.json"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "hub" / "eval.json").read_text())["results"][1]["accuracy"] == \
        report["results"][1]["accuracy"]
    hub_card = RobustnessCard.load(tmp_path / "hub" / "alice--measured.card.md")  # beside --out
    assert hub_card.results == card.results and hub_card.evaluation["checkpoint_sha256"] == pushed_card.weights_sha256
    # a card whose numbers belong to other weights is not pushed
    (run / "card.md").write_text(card.replace(evaluation={**card.evaluation, "checkpoint_sha256": "f" * 64}).render())
    stale = runner.invoke(main, ["push", str(run), "alice/measured"])
    assert stale.exit_code == 2 and "measured on other weights" in stale.output


def test_zoo_list_and_show(monkeypatch):
    from robustzoo import cli

    monkeypatch.setattr(cli.console, "width", 250)
    runner = CliRunner()
    listed = runner.invoke(main, ["zoo", "list"], terminal_width=250)
    assert listed.exit_code == 0 and "las-awp-cifar10" in listed.output and "(55.52)" in listed.output
    assert "not published" in listed.output
    shown = runner.invoke(main, ["zoo", "show", "las-awp-cifar10"], terminal_width=250)
    assert shown.exit_code == 0 and "LAS-AT paper, Table 2" in shown.output and "87.74" in shown.output
    unknown = runner.invoke(main, ["zoo", "show", "las-awp"])
    assert unknown.exit_code == 2 and "unknown zoo model 'las-awp'" in unknown.output


def test_revisions_pin_what_is_loaded(hub, tmp_path, monkeypatch):
    first, second = _train(tmp_path / "a", width=8, seed=1), _train(tmp_path / "b", width=8, seed=2)
    commit1 = push(first, "alice/moving", token=TOKEN).commit
    pinned_card = RobustnessCard.load(first / "card.md")
    push(second, "alice/moving", token=TOKEN)
    x = _batch()
    expect1, expect2 = load_model(first)(x), load_model(second)(x)
    assert not torch.equal(expect1, expect2)
    with torch.no_grad():
        assert torch.equal(load("alice/moving", cache_dir=tmp_path / "c")(x), expect2)
        assert torch.equal(load("alice/moving", revision=commit1, cache_dir=tmp_path / "c")(x), expect1)
        monkeypatch.setenv("ROBUSTZOO_ZOO_DIR", str(tmp_path / "zoo"))
        pinned_card.replace(name="moving").save(tmp_path / "zoo" / "moving.md")  # a zoo card pins commit1
        assert torch.equal(load("moving", cache_dir=tmp_path / "c")(x), expect1)
    # the example: evaluate a zoo name under AutoAttack, and a repo at a revision
    result = CliRunner().invoke(main, ["evaluate", "moving", "--attack", "aa", "--n", "16", "--device", "cpu",
                                       "--out", str(tmp_path / "aa.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "aa.json").read_text())
    assert report["results"][0]["attack"] == "aa" and report["n"] == 16
    result = CliRunner().invoke(main, ["evaluate", "alice/moving", "--revision", commit1, "--attack", "clean",
                                       "--n", "16", "--device", "cpu", "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    with pytest.raises(HubError, match="has no revision 'nope'"):
        load("alice/moving", revision="nope", cache_dir=tmp_path / "c")


def test_a_tampered_config_is_refused(hub, run, tmp_path):
    push(run, "alice/config", token=TOKEN)
    config = json.loads(hub.repo_files("alice/config")["config.json"])
    config["robustzoo"]["model"]["std"] = [100.0]  # same weights, other normalization: silently other model
    hub.put_file("alice/config", "config.json", json.dumps(config).encode())
    with pytest.raises(IntegrityError, match="config.json has sha256 [0-9a-f]{64}, the card expects"):
        load("alice/config", cache_dir=tmp_path / "c")


def test_failed_pushes_are_one_line_and_never_show_the_token(hub, run, tmp_path, monkeypatch):
    push(run, "alice/public", token=TOKEN)
    with pytest.raises(HubError, match="alice/public already exists and is public"):
        push(run, "alice/public", token=TOKEN, private=True)
    with pytest.raises(HubError) as wrong:
        push(run, "alice/wrong", token="hf_wrong_token_987")
    assert "hf_wrong_token_987" not in str(wrong.value) and "\n" not in str(wrong.value)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    result = CliRunner().invoke(main, ["push", str(run), "alice/down", "--token", TOKEN])
    assert result.exit_code == 2 and result.output.startswith("error: push to alice/down on http://127.0.0.1:")
    assert result.output.count("\n") == 1 and TOKEN not in result.output, result.output
