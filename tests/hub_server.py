"""A small Hugging Face Hub-compatible HTTP server for tests (stdlib only).

Which requests the real client makes (read from huggingface_hub 2.4.0 and timm 1.0.31 in .venv)
-----------------------------------------------------------------------------------------------
* ``HfApi.create_repo``: ``POST /api/repos/create`` with JSON ``{"name", "organization", "type",
  "visibility": "private"|"public"}`` -> ``{"url": ...}``; ``409`` when the repo exists (the client
  swallows it when ``exist_ok=True``).
* ``HfApi.upload_folder``: because ``hf_xet`` is installed, it goes through the streamed pipeline
  (``huggingface_hub/_upload_pipeline.py``), not ``create_commit``:
  ``POST /api/models/{repo}/preupload/{rev}`` (JSON ``files: [{path, sample, size}]``) ->
  ``{"files": [{path, uploadMode, shouldIgnore, oid}]}``; then ``POST /api/models/{repo}/commit/{rev}``
  with an ``application/x-ndjson`` body (``header`` / ``file`` (base64) / ``lfsFile`` / ``deletedFile``
  / ``deletedFolder`` lines) -> ``{"commitOid", "commitUrl"}``.  This server answers
  ``uploadMode: "regular"`` for every file, so the content arrives base64-inline in the commit and
  neither the Xet (``hf_xet`` CAS, not implementable here) nor the LFS batch path is ever used; the
  client accepts that (it only forces "regular" for empty files, it never insists on LFS).  With
  ``HF_HUB_DISABLE_XET`` the legacy ``create_commit`` path is used instead: same two calls plus
  ``POST /api/validate-yaml`` when a README.md is committed.  The ``oid`` in the preupload answer is the
  git-sha1 of the current content: the client drops unchanged files from the commit, and when *nothing*
  changed it makes no commit and calls ``GET /api/models/{repo}/revision/{rev}`` instead.
* ``hf_hub_download``: ``HEAD /{repo}/resolve/{rev}/{path}`` (redirects not followed off-host; needs
  ``X-Repo-Commit``, ``ETag`` (git-sha1 here, the cache blob name) and ``Content-Length``; no
  ``X-Xet-Hash``, so the download is a plain HTTP ``GET`` of the same URL).  Errors are mapped from
  ``X-Error-Code``: ``EntryNotFound`` -> ``RemoteEntryNotFoundError`` (a subclass of
  ``EntryNotFoundError``), ``RevisionNotFound`` -> ``RevisionNotFoundError``, ``RepoNotFound`` ->
  ``RepositoryNotFoundError``.  A 401 without an error code is NOT mapped for an ``http://``
  endpoint (the client's ``REPO_API_REGEX`` requires ``https``), so private repos answer
  ``401 + X-Error-Code: RepoNotFound`` like the Hub; an invalid token gets ``401`` with
  ``X-Error-Message: Invalid credentials in Authorization header`` -> plain ``HfHubHTTPError`` (401).
* ``timm.create_model("hf-hub:OWNER/NAME", pretrained=True)``: ``hf_hub_download(config.json)`` then
  ``hf_hub_download(model.safetensors)`` (or ``pretrained_cfg["hf_hub_filename"]``; for a ``.bin``
  name it first tries the ``.safetensors`` alternative and falls back on ``EntryNotFoundError``).
  timm passes no ``endpoint`` and no ``cache_dir``: it relies on the client's global constants.
* Also served: ``GET /api/models/{repo}[/revision/{rev}]`` (model_info / repo_info / repo_exists /
  revision_exists), ``GET /api/models/{repo}/tree/{rev}[/{path}]`` (list_repo_tree / list_repo_files),
  ``GET /api/models/{repo}/refs``, ``GET /api/models/{repo}/commits/{rev}``, ``GET /api/whoami-v2``,
  ``DELETE /api/repos/delete``, ``GET /api/agent-harnesses`` (see below).  ``file_exists`` is a HEAD
  on the resolve URL.

How a test must point the client at the server
----------------------------------------------
``huggingface_hub.constants`` reads ``HF_ENDPOINT``, ``HF_HUB_CACHE``/``HF_HOME``, ``HF_HUB_OFFLINE``,
``HF_HUB_DISABLE_TELEMETRY``, ``HF_HUB_DISABLE_XET``... once, at import time; in a pytest session
huggingface_hub is already imported (timm imports it), so setting env vars in a test is too late.
* ``HfApi(endpoint=server.url, token=...)`` and ``hf_hub_download(..., endpoint=server.url,
  cache_dir=tmp)`` are enough on their own (the URL template is built from ``constants.ENDPOINT`` and
  then its prefix is swapped for ``endpoint``).
* timm (and module-level helpers such as ``huggingface_hub.model_info``, bound to an ``HfApi()``
  created at import time) need the globals: either run it in a subprocess whose environment has
  ``HF_ENDPOINT`` etc. (``server.client_env(...)``), or in-process call
  ``patch_hub_client(monkeypatch, server.url, cache_dir)``, which patches ``constants.ENDPOINT``
  *and* ``constants.HUGGINGFACE_CO_URL_TEMPLATE`` (patching ENDPOINT alone silently keeps
  huggingface.co in download URLs), ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, the token file path, and
  ``huggingface_hub.hf_api.api.endpoint``.
* Quirk: with telemetry enabled, the first request of a process first fetches
  ``{constants.ENDPOINT}/api/agent-harnesses`` (user-agent "agent" detection) and caches it under
  HF_HOME; ``HF_HUB_DISABLE_TELEMETRY=1`` (or the patch above) turns that off.
* Quirk: ``upload_folder`` (hf_xet installed) creates a process-global ``hf_xet.XetSession`` even when
  no file goes through Xet; it writes logs under ``$HF_XET_CACHE`` (else ``$HF_HOME/xet``, else
  ``~/.cache/huggingface/xet``) read from the *environment* when the session is first created, so
  set ``HF_XET_CACHE`` before the first upload of the process.
* The token is taken from ``token=`` or else ``HF_TOKEN`` (read at call time) or else the token file
  (``constants.HF_TOKEN_PATH``, fixed at import).

Storage: blobs (content-addressed by git-sha1) and one JSON file per repo under ``root``.  Every
commit is a full snapshot (path -> blob); ``main`` points to the latest one, older commits stay
resolvable by (a unique prefix of) their id.  Like the Hub, a new repo starts with one "initial
commit" holding ``.gitattributes``.  ``requests`` logs ``(method, percent-decoded path without the
query)``; ``tokens_seen`` the bearer tokens received (without the ``Bearer`` prefix); ``unhandled``
the requests that matched no route (answered 404).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pathlib
import socket
import threading
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

INITIAL_GITATTRIBUTES = b"".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n".encode()
    for pattern in (
        "*.7z", "*.bin", "*.ckpt", "*.gz", "*.h5", "*.npy", "*.npz", "*.onnx", "*.pt", "*.pth",
        "*.pkl", "*.pickle", "*.safetensors", "*.tar", "*.zip", "*.zst", "*tfevents*",
    )
)

_AGENT_REGISTRY = {"standardEnvVars": [], "harnesses": {}}
_INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob, as the Hub reports for regular files (ETag, tree oid)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class _HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None,
                 extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}
        self.extra = extra or {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive like the Hub; every response carries Content-Length
    timeout = 30  # idle keep-alive connections of a stopped server do not linger forever
    server_version = "TestHub/1.0"

    def log_message(self, format, *args):  # noqa: A002 - silence the default stderr access log
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.hub._lock:  # type: ignore[attr-defined]
            self.server.hub._connections.add(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        with self.server.hub._lock:  # type: ignore[attr-defined]
            self.server.hub._connections.discard(self.connection)  # type: ignore[attr-defined]
        try:
            super().finish()
        except OSError:  # connection already dropped by stop()
            pass

    def _handle(self) -> None:
        self.server.hub._dispatch(self)  # type: ignore[attr-defined]

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # quiet about clients that hang up
        import sys

        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class HubServer:
    """An in-process, Hub-compatible server for model repos. See the module docstring."""

    def __init__(self, root: pathlib.Path, token: str | None = None):
        self.root = pathlib.Path(root)
        self.token = token
        self.url = ""
        self.requests: list[tuple[str, str]] = []
        self.tokens_seen: list[str] = []
        self.unhandled: list[tuple[str, str]] = []
        self._lock = threading.RLock()
        self._repos: dict[str, dict] = {}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set = set()
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "repos").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "HubServer":
        if self._httpd is not None:
            return self
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.hub = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="test-hub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        # Also drop the keep-alive connections the client pools: a later server on the same port
        # must never be reached through a connection still served by this one.
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ test helpers

    def repo_files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """Snapshot contents of ``repo_id`` at ``revision`` (branch, commit id or unique prefix)."""
        with self._lock:
            repo = self._repo_or_raise(repo_id)
            commit = repo["commits"][self._resolve(repo, revision)]
            return {path: self._read_blob(oid) for path, oid in commit["files"].items()}

    def commits(self, repo_id: str) -> list[str]:
        """Commit ids of ``repo_id``, oldest first."""
        with self._lock:
            return list(self._repo_or_raise(repo_id)["order"])

    def put_file(self, repo_id: str, path: str, data: bytes) -> str:
        """Backdoor: commit one added/changed file on ``main`` (creates a public repo if missing)."""
        with self._lock:
            if repo_id not in self._repos:
                self._create_repo(repo_id, private=False)
            repo = self._repos[repo_id]
            files = dict(repo["commits"][repo["refs"]["main"]]["files"])
            files[path] = self._write_blob(data)
            return self._commit(repo_id, "main", files, f"Update {path}", "")

    def set_private(self, repo_id: str, private: bool = True) -> None:
        with self._lock:
            self._repo_or_raise(repo_id)["private"] = private
            self._save(repo_id)

    def client_env(self, cache_dir: os.PathLike | str, token: str | None = None, base: dict | None = None) -> dict:
        """Environment for a subprocess that must talk to this server (timm, CLI, ...)."""
        env = dict(os.environ if base is None else base)
        for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
                    "HUGGINGFACE_HUB_CACHE", "HF_TOKEN_PATH", "HUGGINGFACE_CO_STAGING", "HF_OIDC_RESOURCE"):
            env.pop(key, None)
        cache_dir = pathlib.Path(cache_dir)
        env.update(
            HF_ENDPOINT=self.url,
            HF_HOME=str(cache_dir / "hf_home"),
            HF_XET_CACHE=str(cache_dir / "hf_home" / "xet"),
            HF_HUB_CACHE=str(cache_dir),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
        )
        if token is not None:
            env["HF_TOKEN"] = token
        return env

    # ------------------------------------------------------------------ storage

    def _repo_file(self, repo_id: str) -> pathlib.Path:
        return self.root / "repos" / f"{repo_id.replace('/', '--')}.json"

    def _save(self, repo_id: str) -> None:
        path = self._repo_file(repo_id)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._repos[repo_id], indent=1))
        os.replace(tmp, path)

    def _write_blob(self, data: bytes) -> str:
        oid = git_blob_sha1(data)
        path = self.root / "blobs" / oid
        if not path.exists():
            tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
        return oid

    def _read_blob(self, oid: str) -> bytes:
        return (self.root / "blobs" / oid).read_bytes()

    def _repo_or_raise(self, repo_id: str) -> dict:
        repo = self._repos.get(repo_id)
        if repo is None:
            raise KeyError(f"no repo {repo_id!r} on the test hub")
        return repo

    def _create_repo(self, repo_id: str, private: bool) -> dict:
        self._repos[repo_id] = {
            "id": repo_id, "private": bool(private), "created_at": _now(),
            "refs": {}, "commits": {}, "order": [],
        }
        self._commit(repo_id, "main", {".gitattributes": self._write_blob(INITIAL_GITATTRIBUTES)}, "initial commit", "")
        return self._repos[repo_id]

    def _commit(self, repo_id: str, branch: str, files: dict, summary: str, description: str) -> str:
        repo = self._repos[repo_id]
        parent = repo["refs"].get(branch)
        seed = json.dumps([parent, summary, description, sorted(files.items()), uuid.uuid4().hex])
        oid = hashlib.sha1(seed.encode()).hexdigest()
        repo["commits"][oid] = {
            "parent": parent, "title": summary, "message": description, "date": _now(), "files": dict(files),
        }
        repo["order"].append(oid)
        repo["refs"][branch] = oid
        self._save(repo_id)
        return oid

    def _resolve(self, repo: dict, revision: str) -> str:
        if revision in repo["refs"]:
            return repo["refs"][revision]
        if revision.startswith("refs/heads/") and revision[len("refs/heads/"):] in repo["refs"]:
            return repo["refs"][revision[len("refs/heads/"):]]
        if 5 <= len(revision) <= 40 and all(c in "0123456789abcdef" for c in revision.lower()):
            matches = [oid for oid in repo["commits"] if oid.startswith(revision.lower())]
            if len(matches) == 1:
                return matches[0]
        raise _HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    # ------------------------------------------------------------------ HTTP plumbing

    @staticmethod
    def _read_body(h: BaseHTTPRequestHandler) -> bytes:
        if h.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(h.rfile.read(size))
                h.rfile.readline()
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length else b""

    @staticmethod
    def _send(h, status: int, body: bytes = b"", headers: dict | None = None, content_length: int | None = None):
        h.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Type", "application/json")
        for key, value in headers.items():
            h.send_header(key, str(value))
        h.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        h.end_headers()
        if h.command != "HEAD" and body:
            h.wfile.write(body)

    def _json(self, h, status: int, obj, headers: dict | None = None):
        self._send(h, status, json.dumps(obj).encode(), headers)

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        split = urlsplit(h.path)
        raw_segments = split.path.split("/")[1:]
        segments = [unquote(s) for s in raw_segments]
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        method = h.command
        token = self._token_of(h)
        with self._lock:
            self.requests.append((method, unquote(split.path)))
            if token is not None:
                self.tokens_seen.append(token)
        body = self._read_body(h) if method in ("POST", "PUT", "PATCH", "DELETE") else b""
        try:
            if token is not None and not self._token_ok(token) and segments[:2] != ["api", "agent-harnesses"]:
                raise _HubError(401, _INVALID_CREDENTIALS)
            self._route(h, method, segments, query, body, token)
        except _HubError as e:
            headers = dict(e.headers)
            headers["X-Error-Message"] = e.message
            if e.code:
                headers["X-Error-Code"] = e.code
            self._json(h, e.status, {"error": e.message, **e.extra}, headers)
        except (ConnectionError, TimeoutError):  # the client went away mid-response
            h.close_connection = True
        except Exception as e:  # a bug in the test server: make it visible to the client as a 500
            with self._lock:
                self.unhandled.append((method, f"{unquote(split.path)} -> {e!r}"))
            self._json(h, 500, {"error": f"test hub crashed: {e!r}"})

    @staticmethod
    def _token_of(h) -> str | None:
        value = h.headers.get("Authorization")
        if not value:
            return None
        return value[7:].strip() if value.lower().startswith("bearer ") else value.strip()

    def _token_ok(self, token: str | None) -> bool:
        return token is not None and (self.token is None or token == self.token)

    def _unhandled(self, method: str, segments: list[str]):
        with self._lock:
            self.unhandled.append((method, "/" + "/".join(segments)))
        raise _HubError(404, f"Sorry, we can't find the page you are looking for ({method} {'/'.join(segments)}).")

    def _require_write(self, token: str | None) -> None:
        if token is None:
            raise _HubError(401, "Invalid username or password.")

    def _readable_repo(self, repo_id: str, token: str | None) -> dict:
        repo = self._repos.get(repo_id)
        if repo is None:
            raise _HubError(404, "Repository not found", "RepoNotFound")
        if repo["private"] and not self._token_ok(token):
            raise _HubError(401, "Repository not found", "RepoNotFound")
        return repo

    # ------------------------------------------------------------------ routes

    def _route(self, h, method, segments, query, body, token) -> None:
        if segments[:1] == ["api"]:
            return self._route_api(h, method, segments[1:], query, body, token)
        # /{owner}/{name}/resolve/{revision}/{path...}
        if len(segments) >= 5 and segments[2] == "resolve" and method in ("GET", "HEAD"):
            repo_id = f"{segments[0]}/{segments[1]}"
            return self._resolve_file(h, repo_id, segments[3], "/".join(segments[4:]), token)
        return self._unhandled(method, segments)

    def _route_api(self, h, method, seg, query, body, token) -> None:
        if seg == ["agent-harnesses"] and method == "GET":
            return self._json(h, 200, _AGENT_REGISTRY)
        if seg == ["whoami-v2"] and method == "GET":
            if not self._token_ok(token):
                raise _HubError(401, _INVALID_CREDENTIALS)
            return self._json(h, 200, {
                "type": "user", "id": "0" * 24, "name": "user", "fullname": "Test User", "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
            })
        if seg == ["validate-yaml"] and method == "POST":
            return self._json(h, 200, {"errors": [], "warnings": []})
        if seg == ["repos", "create"] and method == "POST":
            return self._api_create(h, json.loads(body or b"{}"), token)
        if seg == ["repos", "delete"] and method == "DELETE":
            self._require_write(token)
            payload = json.loads(body or b"{}")
            repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}"
            with self._lock:
                if self._repos.pop(repo_id, None) is None:
                    raise _HubError(404, "Repository not found", "RepoNotFound")
                self._repo_file(repo_id).unlink(missing_ok=True)
            return self._send(h, 200, b"")
        if len(seg) >= 3 and seg[0] == "models":
            repo_id, rest = f"{seg[1]}/{seg[2]}", seg[3:]
            with self._lock:
                repo = self._readable_repo(repo_id, token)
                if method == "GET" and not rest:
                    return self._json(h, 200, self._model_info(repo, "main", query))
                if method == "GET" and rest[:1] == ["revision"] and len(rest) == 2:
                    return self._json(h, 200, self._model_info(repo, rest[1], query))
                if method == "GET" and rest[:1] == ["tree"] and len(rest) >= 2:
                    return self._json(h, 200, self._tree(repo, rest[1], "/".join(rest[2:]), query))
                if method == "GET" and rest == ["refs"]:
                    return self._json(h, 200, self._refs(repo))
                if method == "GET" and rest[:1] == ["commits"] and len(rest) == 2:
                    return self._json(h, 200, self._commit_list(repo, rest[1]))
                if method == "POST" and rest[:1] == ["preupload"] and len(rest) == 2:
                    self._require_write(token)
                    return self._json(h, 200, self._preupload(repo, rest[1], json.loads(body or b"{}")))
                if method == "POST" and rest[:1] == ["commit"] and len(rest) == 2:
                    self._require_write(token)
                    if query.get("create_pr") in ("1", "true", "True"):
                        raise _HubError(400, "create_pr is not supported by the test hub")
                    return self._json(h, 200, self._api_commit(repo_id, repo, rest[1], body))
        if len(seg) >= 1 and seg[0] in ("datasets", "spaces", "kernels"):
            raise _HubError(404, "Repository not found (the test hub only serves model repos)", "RepoNotFound")
        return self._unhandled(method, ["api", *seg])

    def _api_create(self, h, payload: dict, token) -> None:
        self._require_write(token)
        if payload.get("type") not in (None, "model"):
            raise _HubError(400, "the test hub only serves model repos")
        repo_id = f"{payload.get('organization') or 'user'}/{payload['name']}"
        url = f"{self.url}/{repo_id}"
        with self._lock:
            if repo_id in self._repos:
                # the Hub puts the url in the 409 body: create_repo(exist_ok=True) returns it
                raise _HubError(409, "You already created this model repo", extra={"url": url})
            self._create_repo(repo_id, private=payload.get("visibility") == "private" or payload.get("private") is True)
        return self._json(h, 200, {"url": url, "name": repo_id, "id": uuid.uuid4().hex[:24]})

    def _model_info(self, repo: dict, revision: str, query: dict) -> dict:
        sha = self._resolve(repo, revision)
        commit = repo["commits"][sha]
        siblings = []
        for path, oid in sorted(commit["files"].items()):
            sibling = {"rfilename": path}
            if query.get("blobs") in ("1", "true", "True"):
                sibling.update(size=(self.root / "blobs" / oid).stat().st_size, blobId=oid)
            siblings.append(sibling)
        return {
            "_id": hashlib.sha1(repo["id"].encode()).hexdigest()[:24], "id": repo["id"], "modelId": repo["id"],
            "author": repo["id"].split("/")[0], "sha": sha, "lastModified": commit["date"],
            "createdAt": repo["created_at"], "private": repo["private"], "gated": False, "disabled": False,
            "downloads": 0, "likes": 0, "tags": [], "library_name": None, "siblings": siblings,
        }

    def _tree(self, repo: dict, revision: str, prefix: str, query: dict) -> list:
        files = repo["commits"][self._resolve(repo, revision)]["files"]
        recursive = query.get("recursive", "").lower() in ("1", "true")
        base = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if base and not any(p.startswith(base) for p in files):
            raise _HubError(404, f"Path {prefix} not found", "EntryNotFound")
        entries, folders = [], set()
        for path, oid in sorted(files.items()):
            if not path.startswith(base):
                continue
            parts = path[len(base):].split("/")
            for depth in range(1, len(parts)):
                folder = base + "/".join(parts[:depth])
                if (recursive or depth == 1) and folder not in folders:
                    folders.add(folder)
                    tree_oid = hashlib.sha1(folder.encode()).hexdigest()
                    entries.append({"type": "directory", "path": folder, "oid": tree_oid})
            if recursive or len(parts) == 1:
                size = (self.root / "blobs" / oid).stat().st_size
                entries.append({"type": "file", "path": path, "size": size, "oid": oid})
        return entries

    def _refs(self, repo: dict) -> dict:
        branches = [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": c} for n, c in repo["refs"].items()]
        return {"branches": branches, "converts": [], "tags": [], "pullRequests": []}

    def _commit_list(self, repo: dict, revision: str) -> list:
        out, oid = [], self._resolve(repo, revision)
        while oid is not None:
            c = repo["commits"][oid]
            out.append({"id": oid, "title": c["title"], "message": c["message"], "date": c["date"],
                        "authors": [{"user": "user"}]})
            oid = c["parent"]
        return out

    def _branch_head(self, repo: dict, revision: str) -> str:
        if revision not in repo["refs"]:
            raise _HubError(404, f"Invalid rev id: {revision} (commits need an existing branch)", "RevisionNotFound")
        return repo["refs"][revision]

    def _preupload(self, repo: dict, revision: str, payload: dict) -> dict:
        head = self._branch_head(repo, revision)
        current = repo["commits"][head]["files"]
        files = []
        for f in payload.get("files", []):
            entry = {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
            if f["path"] in current:
                entry["oid"] = current[f["path"]]
            files.append(entry)
        return {"files": files, "commitOid": head}

    def _api_commit(self, repo_id: str, repo: dict, revision: str, body: bytes) -> dict:
        head = self._branch_head(repo, revision)
        files = dict(repo["commits"][head]["files"])
        summary, description = "", ""
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                summary, description = value.get("summary", ""), value.get("description", "")
                parent = value.get("parentCommit")
                if parent and not head.startswith(parent):
                    raise _HubError(412, f"Parent commit {parent} is not the head of {revision} ({head})")
            elif key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise _HubError(400, f"unsupported encoding {value.get('encoding')!r}")
                files[value["path"]] = self._write_blob(base64.b64decode(value["content"]))
            elif key == "lfsFile":
                raise _HubError(400, "LFS files are not supported by the test hub (it always answers 'regular')")
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise _HubError(404, "A file with this name doesn't exist", "EntryNotFound")
                del files[value["path"]]
            elif key == "deletedFolder":
                folder = value["path"].rstrip("/") + "/"
                doomed = [p for p in files if p.startswith(folder)]
                if not doomed:
                    raise _HubError(404, "A folder with this name doesn't exist", "EntryNotFound")
                for p in doomed:
                    del files[p]
            else:
                raise _HubError(400, f"unknown commit operation {key!r}")
        if not summary:
            raise _HubError(400, "commit summary is required")
        oid = self._commit(repo_id, revision, files, summary, description)
        return {
            "success": True, "commitOid": oid, "commitUrl": f"{self.url}/{repo_id}/commit/{oid}",
            "commitMessage": summary, "hookOutput": "", "pullRequestUrl": None,
        }

    def _resolve_file(self, h, repo_id: str, revision: str, path: str, token) -> None:
        with self._lock:
            repo = self._readable_repo(repo_id, token)
            sha = self._resolve(repo, revision)
            oid = repo["commits"][sha]["files"].get(path)
            if oid is None:
                raise _HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": sha})
            data = self._read_blob(oid)
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": sha,
            "ETag": f'"{oid}"',
            "Accept-Ranges": "bytes",
            "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.split('/')[-1])}",
        }
        rng = h.headers.get("Range")
        if rng and rng.startswith("bytes=") and h.command == "GET":
            start_s, _, end_s = rng[len("bytes="):].split(",")[0].partition("-")
            start = int(start_s) if start_s else max(len(data) - int(end_s), 0)
            end = int(end_s) if (start_s and end_s) else len(data) - 1
            end = min(end, len(data) - 1)
            if start >= len(data):
                return self._send(h, 416, b"", {"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self._send(h, 206, data[start:end + 1], headers)
        return self._send(h, 200, data, headers)


def patch_hub_client(monkeypatch, url: str, cache_dir: os.PathLike | str, token: str | None = None) -> None:
    """Point the already-imported huggingface_hub (and so timm) at ``url`` for one test.

    Patches the import-time constants that calls without an explicit ``endpoint``/``cache_dir`` use,
    the module-level ``HfApi`` instance, and the env vars read at call time (``HF_TOKEN``).
    """
    import huggingface_hub
    import huggingface_hub.file_download  # noqa: F401 - import before patching: they read constants
    import huggingface_hub.hf_api as hf_api
    from huggingface_hub import constants

    cache_dir = pathlib.Path(cache_dir)
    home = cache_dir / "hf_home"
    url = url.rstrip("/")
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache_dir))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(home / ".agent_harnesses.json"))
    monkeypatch.setattr(constants, "HF_XET_CACHE", str(home / "xet"))
    monkeypatch.setattr(hf_api.api, "endpoint", url)
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_XET_CACHE", str(home / "xet"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache_dir))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    if token is None:
        monkeypatch.delenv("HF_TOKEN", raising=False)
    else:
        monkeypatch.setenv("HF_TOKEN", token)
    del huggingface_hub


def timm_can_use_hub() -> bool:
    """Whether timm's own Hub functions work: timm 1.0.9 (robustbench's pin) cannot import huggingface_hub >= 1.0."""
    from timm.models import _hub

    return bool(getattr(_hub, "_has_hf_hub", True))
