"""The Hub-compatible test server (tests/hub_server.py) against the real huggingface_hub client and timm."""
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors.torch import load_file, save_file

from hub_server import HubServer, patch_hub_client, timm_can_use_hub

TIMM_HUB = pytest.mark.skipif(not timm_can_use_hub(), reason="this timm cannot import this huggingface_hub "
                              "(timm 1.0.9, robustbench's pin): timm's hf-hub: loading is off")

TOKEN = "hf_test_write_token"
TIMM_ARCH = "test_efficientnet"
README = "---\nlicense: apache-2.0\nlibrary_name: timm\n---\n# tiny\n"


@pytest.fixture
def hub(tmp_path):
    with HubServer(tmp_path / "hub", token=TOKEN) as server:
        yield server


@pytest.fixture
def isolated_client(monkeypatch, tmp_path):
    """No implicit token, no telemetry (no agent-harnesses fetch) and no offline mode.

    ENDPOINT is left at huggingface.co: calls only reach the test server through explicit
    ``endpoint=`` arguments (and there is no internet, so a leak would fail the test).
    """
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(tmp_path / "no_token"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "default_cache"))
    for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    # upload_folder creates an hf_xet session (even with no Xet upload), which writes its logs under
    # HF_XET_CACHE / HF_HOME read from the environment when the session is created.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / "hf_home" / "xet"))


def _write_folder(path, scale=1.0, config=None):
    path.mkdir(parents=True, exist_ok=True)
    tensors = {"a.weight": torch.arange(12.0).reshape(3, 4) * scale, "b.bias": torch.full((5,), scale)}
    save_file(tensors, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(config or {"architecture": "x", "scale": scale}))
    (path / "README.md").write_text(README)
    return {name: (path / name).read_bytes() for name in ("config.json", "model.safetensors", "README.md")}


def _download(hub, repo_id, filename, cache_dir, **kwargs):
    with open(hf_hub_download(repo_id, filename, endpoint=hub.url, cache_dir=cache_dir, **kwargs), "rb") as f:
        return f.read()


def test_upload_folder_is_one_commit_with_identical_files(hub, isolated_client, tmp_path):
    api = HfApi(endpoint=hub.url, token=TOKEN)
    url = api.create_repo("user/tiny", private=False, exist_ok=True)
    assert url.repo_id == "user/tiny" and str(url) == f"{hub.url}/user/tiny"
    api.create_repo("user/tiny", exist_ok=True)  # 409 swallowed
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo("user/tiny", exist_ok=False)
    assert err.value.response.status_code == 409

    before = hub.commits("user/tiny")
    assert len(before) == 1  # the Hub's "initial commit" with .gitattributes
    sent = _write_folder(tmp_path / "v1")
    info = api.upload_folder(repo_id="user/tiny", folder_path=tmp_path / "v1", commit_message="v1")

    after = hub.commits("user/tiny")
    assert after[:-1] == before and len(after) == 2 and info.oid == after[-1]
    files = hub.repo_files("user/tiny")
    assert set(files) == {".gitattributes", *sent}
    assert all(files[name] == data for name, data in sent.items())
    assert hub.repo_files("user/tiny", after[-1]) == files
    assert ("POST", "/api/models/user/tiny/preupload/main") in hub.requests
    assert ("POST", "/api/models/user/tiny/commit/main") in hub.requests
    assert TOKEN in hub.tokens_seen and not hub.unhandled

    # Unchanged files: the client compares the preupload oids (git-sha1) and makes no commit.
    api.upload_folder(repo_id="user/tiny", folder_path=tmp_path / "v1", commit_message="again")
    assert hub.commits("user/tiny") == after
    assert api.list_repo_files("user/tiny") == sorted(files)
    assert api.file_exists("user/tiny", "config.json") and not api.file_exists("user/tiny", "nope.bin")
    info = api.model_info("user/tiny")
    assert info.sha == after[-1] and info.private is False
    assert sorted(s.rfilename for s in info.siblings) == sorted(files)


def test_upload_folder_without_xet_takes_the_create_commit_path(hub, isolated_client, monkeypatch, tmp_path):
    monkeypatch.setattr(hf_constants, "HF_HUB_DISABLE_XET", True)  # as if hf_xet were not installed
    api = HfApi(endpoint=hub.url, token=TOKEN)
    api.create_repo("user/legacy")
    sent = _write_folder(tmp_path / "v1")
    info = api.upload_folder(repo_id="user/legacy", folder_path=tmp_path / "v1", commit_message="v1")
    assert len(hub.commits("user/legacy")) == 2 and info.oid == hub.commits("user/legacy")[-1]
    files = hub.repo_files("user/legacy")
    assert all(files[name] == data for name, data in sent.items())
    assert ("POST", "/api/validate-yaml") in hub.requests  # README.md metadata check of create_commit
    assert ("POST", "/api/models/user/legacy/commit/main") in hub.requests and not hub.unhandled


def test_download_roundtrip_and_old_revisions(hub, isolated_client, tmp_path):
    api = HfApi(endpoint=hub.url, token=TOKEN)
    api.create_repo("user/tiny")
    v1 = _write_folder(tmp_path / "v1", scale=1.0)
    first = api.upload_folder(repo_id="user/tiny", folder_path=tmp_path / "v1", commit_message="v1").oid
    cache = tmp_path / "cache"
    for name, data in v1.items():
        assert _download(hub, "user/tiny", name, cache) == data
    assert ("HEAD", "/user/tiny/resolve/main/model.safetensors") in hub.requests
    assert ("GET", "/user/tiny/resolve/main/model.safetensors") in hub.requests
    assert (cache / "models--user--tiny" / "refs" / "main").read_text() == first

    v2 = _write_folder(tmp_path / "v2", scale=2.0)
    second = api.upload_folder(repo_id="user/tiny", folder_path=tmp_path / "v2", commit_message="v2").oid
    assert second != first and hub.commits("user/tiny")[-2:] == [first, second]
    assert v1["model.safetensors"] != v2["model.safetensors"]
    assert _download(hub, "user/tiny", "model.safetensors", cache) == v2["model.safetensors"]
    fresh = tmp_path / "fresh_cache"  # not served from the local snapshot of `first`
    assert _download(hub, "user/tiny", "model.safetensors", fresh, revision=first) == v1["model.safetensors"]
    assert _download(hub, "user/tiny", "config.json", fresh, revision=first[:10]) == v1["config.json"]
    assert hub.repo_files("user/tiny", first)["config.json"] == v1["config.json"]
    assert load_file(hf_hub_download("user/tiny", "model.safetensors", endpoint=hub.url, cache_dir=fresh,
                                     revision=second))["b.bias"].tolist() == [2.0] * 5

    # The test backdoor: a tampered file is a new commit on main, old commits are untouched.
    tampered = hub.put_file("user/tiny", "model.safetensors", b"not safetensors")
    assert hub.commits("user/tiny")[-1] == tampered
    assert _download(hub, "user/tiny", "model.safetensors", cache) == b"not safetensors"
    assert _download(hub, "user/tiny", "model.safetensors", cache, revision=second) == v2["model.safetensors"]


def test_missing_file_repo_and_revision_raise_the_client_errors(hub, isolated_client, tmp_path):
    api = HfApi(endpoint=hub.url, token=TOKEN)
    api.create_repo("user/tiny")
    cache = tmp_path / "cache"
    # EntryNotFoundError is what timm catches; it is also the base of LocalEntryNotFoundError (the
    # "could not reach the server" fallback), so check that it really is the remote 404.
    with pytest.raises(EntryNotFoundError) as err:
        hf_hub_download("user/tiny", "model.safetensors", endpoint=hub.url, cache_dir=cache)
    assert isinstance(err.value, RemoteEntryNotFoundError) and err.value.response.status_code == 404
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("user/nothing", "config.json", endpoint=hub.url, cache_dir=cache)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("user/tiny", ".gitattributes", endpoint=hub.url, cache_dir=cache, revision="v9")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("user/nothing")
    assert not api.repo_exists("user/nothing") and api.repo_exists("user/tiny")


def test_private_repo_needs_the_right_token(hub, isolated_client, tmp_path):
    api = HfApi(endpoint=hub.url, token=TOKEN)
    api.create_repo("user/secret", private=True)
    sent = _write_folder(tmp_path / "v1")
    api.upload_folder(repo_id="user/secret", folder_path=tmp_path / "v1", commit_message="v1")
    assert hub.repo_files("user/secret")["config.json"] == sent["config.json"]
    assert api.model_info("user/secret").private is True

    cache = tmp_path / "cache"
    with pytest.raises(RepositoryNotFoundError) as err:  # no token: 401 + RepoNotFound, like the Hub
        hf_hub_download("user/secret", "config.json", endpoint=hub.url, cache_dir=cache)
    assert err.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as err:  # wrong token: 401 "Invalid credentials"
        hf_hub_download("user/secret", "config.json", endpoint=hub.url, cache_dir=cache, token="hf_wrong")
    assert err.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub.url).model_info("user/secret")
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(endpoint=hub.url, token="hf_wrong").upload_folder(
            repo_id="user/secret", folder_path=tmp_path / "v1", commit_message="nope")
    assert err.value.response.status_code == 401
    assert "hf_wrong" in hub.tokens_seen and len(hub.commits("user/secret")) == 2

    assert _download(hub, "user/secret", "config.json", cache, token=TOKEN) == sent["config.json"]


def _push_timm_model(hub, repo_id, folder, private=False):
    import timm

    torch.manual_seed(0)
    model = timm.create_model(TIMM_ARCH, num_classes=5)
    with torch.no_grad():  # make every tensor (buffers included) differ from any fresh init
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn_like(t) * 0.1 + 0.5)
    state = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    folder.mkdir(parents=True)
    save_file(state, str(folder / "model.safetensors"))
    pretrained_cfg = {k: v for k, v in model.pretrained_cfg.items() if k not in ("hf_hub_id", "url", "file", "source")}
    config = {"architecture": TIMM_ARCH, "num_classes": 5, "num_features": model.num_features,
              "pretrained_cfg": pretrained_cfg}
    (folder / "config.json").write_text(json.dumps(config, default=list))
    api = HfApi(endpoint=hub.url, token=TOKEN)
    api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message="timm weights")
    return state


@TIMM_HUB
def test_timm_create_model_from_the_server_in_process(hub, isolated_client, monkeypatch, tmp_path):
    """timm uses the client's import-time globals: patch them (patch_hub_client), HF_TOKEN for auth."""
    import timm

    state = _push_timm_model(hub, "user/tiny-timm", tmp_path / "push", private=True)
    cache = tmp_path / "cache"
    patch_hub_client(monkeypatch, hub.url, cache)  # no token
    with pytest.raises(RepositoryNotFoundError):
        timm.create_model("hf-hub:user/tiny-timm", pretrained=True)

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    model = timm.create_model("hf-hub:user/tiny-timm", pretrained=True)
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert model.pretrained_cfg["hf_hub_id"] == "user/tiny-timm" and model.num_classes == 5
    assert ("GET", "/user/tiny-timm/resolve/main/config.json") in hub.requests
    assert ("GET", "/user/tiny-timm/resolve/main/model.safetensors") in hub.requests
    assert (cache / "models--user--tiny-timm" / "refs" / "main").is_file()
    assert not hub.unhandled


@TIMM_HUB
def test_timm_create_model_from_the_server_in_a_subprocess(hub, isolated_client, tmp_path):
    """The plain-user way: HF_ENDPOINT (and HF_HUB_CACHE, HF_TOKEN) in the environment of a fresh process."""
    state = _push_timm_model(hub, "user/tiny-timm", tmp_path / "push")
    save_file(state, str(tmp_path / "expected.safetensors"))
    script = textwrap.dedent(f"""
        import timm, torch
        from safetensors.torch import load_file
        model = timm.create_model("hf-hub:user/tiny-timm", pretrained=True)
        expected = load_file({str(tmp_path / "expected.safetensors")!r})
        sd = model.state_dict()
        assert set(sd) == set(expected)
        assert all(torch.equal(sd[k], expected[k]) for k in expected)
        print("LOADED-OK")
    """)
    cache = tmp_path / "cache"
    proc = subprocess.run([sys.executable, "-c", script], env=hub.client_env(cache, token=TOKEN),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "LOADED-OK" in proc.stdout, proc.stderr[-3000:]
    assert ("GET", "/user/tiny-timm/resolve/main/model.safetensors") in hub.requests
    assert (cache / "models--user--tiny-timm").is_dir() and TOKEN in hub.tokens_seen
