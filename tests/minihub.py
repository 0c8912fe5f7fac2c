"""minihub: a loopback-only Hugging Face Hub protocol server for the test suite.

It speaks the subset of the Hub HTTP API that the real clients (``huggingface_hub.HfApi``,
``datasets.load_dataset``, ``DatasetCard.load``) use for a push + load round trip, so tests
exercise the real client code paths with no network. Everything lives in memory; nothing is
written to disk. Only ``127.0.0.1`` is ever bound.

Clients need ``HF_ENDPOINT=<url>`` (read at import time by huggingface_hub and datasets) and
``HF_HUB_DISABLE_XET=1`` (minihub implements the LFS basic transfer, not Xet).

Routes (``{t}`` is ``models`` | ``datasets`` | ``spaces``; ``{p}`` the URL prefix ``""`` |
``datasets/`` | ``spaces/``; ``{id}`` is ``namespace/name``)::

    GET  /api/whoami-v2
    POST /api/repos/create            DELETE /api/repos/delete           POST /api/validate-yaml
    GET  /api/{t}/{id}[/revision/{rev}]
    POST /api/{t}/{id}/preupload/{rev}
    POST /{p}{id}.git/info/lfs/objects/batch   PUT /lfs/{upload_id}   POST /lfs/verify/{upload_id}
    POST /api/{t}/{id}/commit/{rev}             (NDJSON; parentCommit checked -> 412)
    GET  /api/{t}/{id}/tree/{rev}[/{path}]      POST /api/{t}/{id}/paths-info/{rev}
    GET  /api/{t}/{id}/refs   GET /api/{t}/{id}/commits/{rev}
    POST|DELETE /api/{t}/{id}/branch/{name}
    GET|HEAD /{p}{id}/resolve/{rev}/{path}      (X-Repo-Commit, ETag, X-Linked-*, Range)

Auth: with ``token`` set, every write needs ``Authorization: Bearer <token>`` (else 401 with the
Hub's "Invalid credentials" message); tokens in ``read_tokens`` authenticate but get 403 on
writes; private repos are only readable with a valid token. Without ``token`` nothing is checked.

Failure injection for tests: ``server.hub.fail(kind, times=1, mode=...)`` makes the next
``times`` requests of ``kind`` (see :data:`KINDS`) fail with ``mode``: an HTTP status code (int),
``"drop"`` (close the connection without an answer) or ``"truncate"`` (LFS PUT only: keep only
half the body, as if the upload had been cut; the checksum check then rejects it).

Usage::

    server, url = serve_in_thread(token="secret")
    ...
    server.shutdown(); server.server_close()      # or: stop(server)

``python tests/minihub.py --port 0 [--token T] [-v]`` runs it standalone.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import yaml

REPO_TYPES = ("model", "dataset", "space")
_PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
KINDS = (
    "whoami",
    "create",
    "delete",
    "validate",
    "info",
    "preupload",
    "lfs_batch",
    "lfs_put",
    "lfs_verify",
    "commit",
    "tree",
    "paths_info",
    "refs",
    "commits",
    "branch",
    "resolve",
)
#: Files stored through LFS (besides anything binary or larger than LFS_THRESHOLD).
LFS_SUFFIXES = (".parquet", ".arrow", ".bin", ".safetensors", ".pt", ".pth", ".zip", ".gz", ".npy")
LFS_THRESHOLD = 10 * 1024 * 1024
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


def git_blob_oid(data: bytes) -> str:
    """The git object id (SHA-1 of ``blob <len>\\0<data>``) of a file's bytes."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class Blob:
    """One file in a commit: its bytes plus the ids the Hub reports for it."""

    data: bytes
    lfs: bool

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def oid(self) -> str:
        """Git blob id: of the content for regular files, of the LFS pointer for LFS files."""
        return git_blob_oid(lfs_pointer(self.sha256, self.size) if self.lfs else self.data)

    def entry(self, path: str) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "file", "oid": self.oid, "size": self.size, "path": path}
        if self.lfs:
            pointer = lfs_pointer(self.sha256, self.size)
            out["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": len(pointer)}
        return out


@dataclass
class Commit:
    oid: str
    parents: list[str]
    title: str
    message: str
    date: str
    files: dict[str, Blob]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)

    def resolve(self, rev: str) -> Commit | None:
        """A branch name, a full commit id or a unique prefix of at least 7 characters."""
        if rev in self.branches:
            return self.commits[self.branches[rev]]
        if rev in self.commits:
            return self.commits[rev]
        if len(rev) >= 7 and re.fullmatch(r"[0-9a-f]+", rev):
            hits = [c for oid, c in self.commits.items() if oid.startswith(rev)]
            if len(hits) == 1:
                return hits[0]
        return None


class HubError(Exception):
    """An HTTP error answer: status, the Hub's X-Error-Code, and a message."""

    def __init__(self, status: int, message: str, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.extra = status, message, code, extra or {}


class Drop(Exception):
    """Close the connection without answering (injected network failure)."""


class HubState:
    """The in-memory Hub: repos, uploaded LFS objects, the request log and injected failures."""

    def __init__(self, token: str | None = None, read_tokens: tuple[str, ...] = (), user: str = "testuser"):
        self.token = token
        self.read_tokens = tuple(read_tokens)
        self.user = user
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> bytes (uploaded, maybe not committed)
        self.uploads: dict[str, tuple[str, int]] = {}  # upload id -> (sha256, size)
        self.failures: dict[str, list[Any]] = {}
        self.log: list[tuple[str, str, int]] = []  # (method, path without query, status)
        self.lock = threading.RLock()
        self._counter = 0

    # -- test helpers -------------------------------------------------------------------
    def fail(self, kind: str, times: int = 1, mode: int | str = 500) -> None:
        """Make the next ``times`` requests of ``kind`` fail with ``mode`` (status, "drop", "truncate")."""
        if kind not in KINDS:
            raise ValueError(f"unknown request kind {kind!r}; one of {KINDS}")
        with self.lock:
            self.failures.setdefault(kind, []).extend([mode] * times)

    def clear_failures(self) -> None:
        with self.lock:
            self.failures.clear()

    def take_failure(self, kind: str) -> Any:
        with self.lock:
            queue = self.failures.get(kind)
            return queue.pop(0) if queue else None

    def snapshot(self, repo_id: str, repo_type: str = "dataset") -> dict[str, Any] | None:
        """Branch heads, commit count and file hashes of a repo (``None`` if it does not exist)."""
        with self.lock:
            repo = self.repos.get((repo_type, repo_id))
            if repo is None:
                return None
            return {
                "branches": dict(repo.branches),
                "n_commits": len(repo.commits),
                "files": {
                    branch: {p: b.sha256 for p, b in repo.commits[oid].files.items()}
                    for branch, oid in repo.branches.items()
                },
            }

    def seed(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        repo_type: str = "dataset",
        message: str = "seed",
        private: bool = False,
    ) -> str:
        """Create (or update) a repo server-side with ``files`` in one commit; returns the commit id."""
        with self.lock:
            repo = self.repos.get((repo_type, repo_id)) or self._create(repo_type, repo_id, private)
            head = repo.commits[repo.branches["main"]]
            new_files = dict(head.files)
            for path, data in files.items():
                new_files[path] = Blob(bytes(data), _wants_lfs(path, data))
            return self._commit(repo, "main", head.oid, message, "", new_files).oid

    def seed_folder(self, repo_id: str, folder: Any, *, repo_type: str = "dataset", message: str = "seed") -> str:
        """Seed a repo with every file under ``folder`` (server-side, no client involved)."""
        from pathlib import Path

        root = Path(folder)
        files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        return self.seed(repo_id, files, repo_type=repo_type, message=message)

    # -- repo operations ------------------------------------------------------------------
    def _create(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        repo = Repo(repo_type, repo_id, private, _now())
        self.repos[(repo_type, repo_id)] = repo
        first = self._commit(repo, None, None, "initial commit", "", {".gitattributes": Blob(GITATTRIBUTES, False)})
        repo.branches["main"] = first.oid
        return repo

    def _commit(
        self, repo: Repo, branch: str | None, parent: str | None, title: str, message: str, files: dict[str, Blob]
    ) -> Commit:
        self._counter += 1
        oid = hashlib.sha1(f"{repo.repo_id}|{parent}|{title}|{self._counter}|{time.time_ns()}".encode()).hexdigest()
        commit = Commit(oid, [parent] if parent else [], title, message, _now(), files)
        repo.commits[oid] = commit
        if branch is not None:
            repo.branches[branch] = oid
        return commit


def _wants_lfs(path: str, data_or_sample: bytes, size: int | None = None) -> bool:
    if path.lower().endswith(LFS_SUFFIXES):
        return True
    if (size if size is not None else len(data_or_sample)) > LFS_THRESHOLD:
        return True
    return b"\x00" in data_or_sample[:512]


def _split_repo_path(rest: str) -> tuple[str, str] | None:
    """``ns/name/tail...`` -> (``ns/name``, ``tail``)."""
    parts = rest.split("/", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        return None
    return f"{parts[0]}/{parts[1]}", (parts[2] if len(parts) > 2 else "")


class Handler(BaseHTTPRequestHandler):
    """One request. Bodies are always read fully so keep-alive connections survive errors."""

    protocol_version = "HTTP/1.1"
    server_version = "minihub/1"
    server: MiniHub

    # -- plumbing -------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        if self.server.verbose:
            super().log_message(format, *args)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline().strip().split(b";", 1)[0]
                size = int(size_line or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
        head: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head and body:
            self.wfile.write(body)
        with self.server.hub.lock:
            self.server.hub.log.append((self.command, urlsplit(self.path).path, status))

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None, head: bool = False) -> None:
        self._send(status, json.dumps(obj).encode(), headers, head=head)

    def _drop(self) -> None:
        with self.server.hub.lock:
            self.server.hub.log.append((self.command, urlsplit(self.path).path, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(2)

    def _handle(self) -> None:
        body = self._read_body()
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        path = url.path
        try:
            kind, action = self._route(self.command, path)
            mode = self.server.hub.take_failure(kind)
            if mode == "drop":
                raise Drop()
            if isinstance(mode, int):
                raise HubError(mode, f"minihub: injected failure ({mode}) for {kind}")
            action(body, query, mode)
        except Drop:
            self._drop()
        except HubError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._json(err.status, {"error": err.message, **err.extra}, headers, head=self.command == "HEAD")
        except Exception as exc:  # a bug in minihub: answer 500 with the reason
            self._json(500, {"error": f"minihub internal error: {type(exc).__name__}: {exc}"})

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    # -- auth -----------------------------------------------------------------------------
    def _bearer(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    def _authenticated(self) -> bool:
        hub = self.server.hub
        if hub.token is None:
            return True
        return self._bearer() in (hub.token, *hub.read_tokens)

    def _require_write(self) -> None:
        hub = self.server.hub
        if hub.token is None:
            return
        given = self._bearer()
        if given == hub.token:
            return
        if given is not None and given in hub.read_tokens:
            raise HubError(403, "You don't have the rights to write to this repository (read-only token)")
        raise HubError(401, INVALID_CREDENTIALS)

    def _repo(self, repo_type: str, repo_id: str, *, write: bool = False) -> Repo:
        if write:
            self._require_write()
        elif self.server.hub.token is not None and self._bearer() is not None and not self._authenticated():
            raise HubError(401, INVALID_CREDENTIALS)
        hub = self.server.hub
        repo = hub.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, "Repository not found", "RepoNotFound")
        if repo.private and hub.token is not None and self._bearer() not in (hub.token, *hub.read_tokens):
            raise HubError(401, "Repository not found", "RepoNotFound")  # the Hub hides private repos
        return repo

    def _commit_of(self, repo: Repo, rev: str) -> Commit:
        commit = repo.resolve(unquote(rev))
        if commit is None:
            raise HubError(404, f"Invalid rev id: {unquote(rev)}", "RevisionNotFound")
        return commit

    # -- routing --------------------------------------------------------------------------
    def _route(self, method: str, path: str):
        p = path
        if p == "/api/whoami-v2" and method == "GET":
            return "whoami", self._whoami
        if p == "/api/repos/create" and method == "POST":
            return "create", self._create
        if p == "/api/repos/delete" and method == "DELETE":
            return "delete", self._delete
        if p == "/api/validate-yaml" and method == "POST":
            return "validate", self._validate_yaml
        if p.startswith("/lfs/verify/") and method == "POST":
            return "lfs_verify", lambda b, q, m: self._lfs_verify(p[len("/lfs/verify/") :], b)
        if p.startswith("/lfs/") and method == "PUT":
            return "lfs_put", lambda b, q, m: self._lfs_put(p[len("/lfs/") :], b, m)
        m = re.fullmatch(r"/api/(models|datasets|spaces)/(.+)", p)
        if m:
            split = _split_repo_path(m.group(2))
            if split:
                rtype, (repo_id, tail) = _PLURAL[m.group(1)], split
                return self._route_api(method, rtype, repo_id, tail)
        m = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch", p)
        if m and method == "POST":
            rtype = _PLURAL[m.group(1)] if m.group(1) else "model"
            return "lfs_batch", lambda b, q, mode: self._lfs_batch(rtype, m.group(2), b)
        m = re.fullmatch(r"/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", p)
        if m and method in ("GET", "HEAD"):
            rtype = _PLURAL[m.group(1)] if m.group(1) else "model"
            return "resolve", lambda b, q, mode: self._resolve(rtype, m.group(2), m.group(3), unquote(m.group(4)))
        raise HubError(404, f"minihub: unsupported route {method} {path}")

    def _route_api(self, method: str, rtype: str, repo_id: str, tail: str):
        head, _, rest = tail.partition("/")
        if tail == "" and method == "GET":
            return "info", lambda b, q, m: self._info(rtype, repo_id, None)
        if head == "revision" and method == "GET":
            return "info", lambda b, q, m: self._info(rtype, repo_id, rest)
        if head == "preupload" and method == "POST":
            return "preupload", lambda b, q, m: self._preupload(rtype, repo_id, rest, b)
        if head == "commit" and method == "POST":
            return "commit", lambda b, q, m: self._commit(rtype, repo_id, rest, b)
        if head == "tree" and method == "GET":
            rev, _, sub = rest.partition("/")
            return "tree", lambda b, q, m: self._tree(rtype, repo_id, rev, unquote(sub).strip("/"), q)
        if head == "paths-info" and method == "POST":
            return "paths_info", lambda b, q, m: self._paths_info(rtype, repo_id, rest, b)
        if head == "refs" and method == "GET":
            return "refs", lambda b, q, m: self._refs(rtype, repo_id)
        if head == "commits" and method == "GET":
            return "commits", lambda b, q, m: self._commits(rtype, repo_id, rest)
        if head == "branch" and method in ("POST", "DELETE"):
            return "branch", lambda b, q, m: self._branch(method, rtype, repo_id, unquote(rest), b)
        raise HubError(404, f"minihub: unsupported API route {method} /api/{rtype}s/{repo_id}/{tail}")

    # -- endpoints ------------------------------------------------------------------------
    def _whoami(self, body: bytes, query: dict, mode: Any) -> None:
        hub = self.server.hub
        given = self._bearer()
        if given is None or (hub.token is not None and given not in (hub.token, *hub.read_tokens)):
            raise HubError(401, INVALID_CREDENTIALS)
        role = "read" if given in hub.read_tokens else "write"
        self._json(
            200,
            {
                "type": "user",
                "name": hub.user,
                "fullname": hub.user,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "minihub", "role": role}},
            },
        )

    def _repo_url(self, repo_type: str, repo_id: str) -> str:
        return f"{self.server.url}/{_URL_PREFIX[repo_type]}{repo_id}"

    def _create(self, body: bytes, query: dict, mode: Any) -> None:
        self._require_write()
        payload = json.loads(body or b"{}")
        rtype = payload.get("type") or "model"
        if rtype not in REPO_TYPES:
            raise HubError(400, f"Invalid repo type {rtype!r}")
        name, org = payload.get("name"), payload.get("organization")
        if not name:
            raise HubError(400, "Missing repo name")
        repo_id = f"{org or self.server.hub.user}/{name}"
        private = bool(payload.get("private")) or payload.get("visibility") == "private"
        url = self._repo_url(rtype, repo_id)
        with self.server.hub.lock:
            if (rtype, repo_id) in self.server.hub.repos:
                raise HubError(409, f"You already created this {rtype} repo", extra={"url": url})
            self.server.hub._create(rtype, repo_id, private)
        self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _delete(self, body: bytes, query: dict, mode: Any) -> None:
        self._require_write()
        payload = json.loads(body or b"{}")
        rtype = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.server.hub.user}/{payload.get('name')}"
        with self.server.hub.lock:
            if self.server.hub.repos.pop((rtype, repo_id), None) is None:
                raise HubError(404, "Repository not found", "RepoNotFound")
        self._json(200, {})

    def _validate_yaml(self, body: bytes, query: dict, mode: Any) -> None:
        content = json.loads(body or b"{}").get("content", "")
        m = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
        if m:
            try:
                meta = yaml.safe_load(m.group(1))
            except yaml.YAMLError as exc:
                msg = f"Invalid YAML in README.md metadata: {str(exc).splitlines()[0]}"
                raise HubError(400, msg, extra={"errors": [{"message": msg}]}) from None
            if meta is not None and not isinstance(meta, dict):
                msg = "README.md metadata must be a YAML mapping"
                raise HubError(400, msg, extra={"errors": [{"message": msg}]})
        self._json(200, {"errors": [], "warnings": []})

    def _info(self, rtype: str, repo_id: str, rev: str | None) -> None:
        with self.server.hub.lock:
            repo = self._repo(rtype, repo_id)
            commit = self._commit_of(repo, rev or "main")
            siblings = []
            for path, blob in sorted(commit.files.items()):
                sib: dict[str, Any] = {"rfilename": path, "size": blob.size, "blobId": blob.oid}
                if blob.lfs:
                    sib["lfs"] = {
                        "sha256": blob.sha256,
                        "size": blob.size,
                        "pointerSize": len(lfs_pointer(blob.sha256, blob.size)),
                    }
                siblings.append(sib)
            card_data = None
            readme = commit.files.get("README.md")
            if readme is not None:
                m = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", readme.data.decode("utf-8", "replace"), re.S)
                if m:
                    try:
                        loaded = yaml.safe_load(m.group(1))
                        card_data = loaded if isinstance(loaded, dict) else None
                    except yaml.YAMLError:
                        card_data = None
        info = {
            "_id": hashlib.sha1(f"{rtype}/{repo_id}".encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0],
            "sha": commit.oid,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "createdAt": repo.created,
            "lastModified": commit.date,
            "siblings": siblings,
            "cardData": card_data,
        }
        self._json(200, info)

    def _preupload(self, rtype: str, repo_id: str, rev: str, body: bytes) -> None:
        with self.server.hub.lock:
            repo = self._repo(rtype, repo_id, write=True)
            commit = repo.resolve(unquote(rev))
        files = []
        for item in json.loads(body or b"{}").get("files", []):
            sample = base64.b64decode(item.get("sample", ""))
            lfs = _wants_lfs(item["path"], sample, int(item.get("size", 0)))
            existing = commit.files.get(item["path"]) if commit else None
            oid = None
            if existing is not None:
                oid = existing.sha256 if existing.lfs else git_blob_oid(existing.data)
            files.append(
                {"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        self._json(200, {"files": files, "commitOid": commit.oid if commit else None})

    def _lfs_batch(self, rtype: str, repo_id: str, body: bytes) -> None:
        hub = self.server.hub
        with hub.lock:
            self._repo(rtype, repo_id, write=True)
        payload = json.loads(body or b"{}")
        if payload.get("operation") != "upload":
            raise HubError(400, "minihub: only LFS uploads are supported")
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            with hub.lock:
                if oid not in hub.lfs_objects:
                    upload_id = secrets.token_hex(16)
                    hub.uploads[upload_id] = (oid, size)
                    entry["actions"] = {
                        "upload": {"href": f"{self.server.url}/lfs/{upload_id}", "header": {}},
                        "verify": {"href": f"{self.server.url}/lfs/verify/{upload_id}", "header": {}},
                    }
            objects.append(entry)
        body_out = json.dumps({"transfer": "basic", "objects": objects}).encode()
        self._send(200, body_out, content_type="application/vnd.git-lfs+json")

    def _lfs_put(self, upload_id: str, body: bytes, mode: Any) -> None:
        hub = self.server.hub
        with hub.lock:
            target = hub.uploads.get(upload_id)
        if target is None:
            raise HubError(404, "minihub: unknown or expired LFS upload URL")
        if mode == "truncate":
            body = body[: len(body) // 2]
        oid, size = target
        if len(body) != size or hashlib.sha256(body).hexdigest() != oid:
            raise HubError(
                400, f"LFS upload rejected: received {len(body)} of {size} bytes or sha256 mismatch", "IncompleteBody"
            )
        with hub.lock:
            hub.lfs_objects[oid] = body
        self._send(200, b"", content_type="text/plain")

    def _lfs_verify(self, upload_id: str, body: bytes) -> None:
        hub = self.server.hub
        with hub.lock:
            target = hub.uploads.get(upload_id)
            ok = target is not None and target[0] in hub.lfs_objects
        if not ok:
            raise HubError(404, "LFS object not found")
        self._json(200, {"success": True})

    def _commit(self, rtype: str, repo_id: str, rev: str, body: bytes) -> None:
        hub = self.server.hub
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "Commit payload must start with a header line")
        header = lines[0]["value"]
        with hub.lock:
            repo = self._repo(rtype, repo_id, write=True)
            branch = unquote(rev)
            if branch not in repo.branches:
                raise HubError(404, f"Invalid rev id: {branch} (commits go to a branch)", "RevisionNotFound")
            head = repo.commits[repo.branches[branch]]
            parent = header.get("parentCommit")
            if parent and not head.oid.startswith(parent):
                raise HubError(
                    412,
                    f"A commit has happened since. Please refresh and try again. (parent {parent} "
                    f"is not the head {head.oid} of {branch})",
                )
            files = dict(head.files)
            for line in lines[1:]:  # validate and apply on a copy: all or nothing
                key, value = line.get("key"), line.get("value", {})
                path = value.get("path", "")
                if key == "file":
                    if value.get("encoding", "base64") != "base64":
                        raise HubError(400, f"Unsupported encoding for {path}")
                    data = base64.b64decode(value["content"])
                    files[path] = Blob(data, False)
                elif key == "lfsFile":
                    data = hub.lfs_objects.get(value["oid"])
                    if data is None:
                        raise HubError(
                            422, f"LFS object {value['oid']} for {path} was never uploaded", "LfsObjectMissing"
                        )
                    files[path] = Blob(data, True)
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    gone = [p for p in files if p.startswith(prefix)]
                    if not gone:
                        raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
                    for p in gone:
                        del files[p]
                else:
                    raise HubError(400, f"Unknown commit operation {key!r}")
            commit = hub._commit(
                repo, branch, head.oid, header.get("summary", ""), header.get("description", ""), files
            )
        url = f"{self._repo_url(rtype, repo_id)}/commit/{commit.oid}"
        self._json(200, {"success": True, "commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None})

    def _entries(self, commit: Commit, folder: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = folder + "/" if folder else ""
        out: dict[str, dict[str, Any]] = {}
        for path, blob in commit.files.items():
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :]
            parts = rest.split("/")
            for depth in range(1, len(parts)):  # the folders on the way
                if not recursive and depth > 1:
                    break
                sub = prefix + "/".join(parts[:depth])
                out.setdefault(
                    sub, {"type": "directory", "oid": hashlib.sha1(sub.encode()).hexdigest(), "size": 0, "path": sub}
                )
            if recursive or len(parts) == 1:
                out[path] = blob.entry(path)
        return [out[k] for k in sorted(out)]

    def _tree(self, rtype: str, repo_id: str, rev: str, folder: str, query: dict) -> None:
        with self.server.hub.lock:
            repo = self._repo(rtype, repo_id)
            commit = self._commit_of(repo, rev)
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        if folder and not any(p.startswith(folder + "/") for p in commit.files):
            raise HubError(404, f"Entry not found: {folder}", "EntryNotFound")
        self._json(200, self._entries(commit, folder, recursive))

    def _paths_info(self, rtype: str, repo_id: str, rev: str, body: bytes) -> None:
        with self.server.hub.lock:
            repo = self._repo(rtype, repo_id)
            commit = self._commit_of(repo, rev)
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            paths = json.loads(body or b"{}").get("paths", [])
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        out = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                out.append(commit.files[path].entry(path))
            elif any(p.startswith(path + "/") for p in commit.files):
                out.append(
                    {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}
                )
        self._json(200, out)

    def _refs(self, rtype: str, repo_id: str) -> None:
        with self.server.hub.lock:
            repo = self._repo(rtype, repo_id)
            branches = [
                {"name": b, "ref": f"refs/heads/{b}", "targetCommit": oid} for b, oid in sorted(repo.branches.items())
            ]
        self._json(200, {"branches": branches, "tags": [], "converts": []})

    def _commits(self, rtype: str, repo_id: str, rev: str) -> None:
        with self.server.hub.lock:
            repo = self._repo(rtype, repo_id)
            commit: Commit | None = self._commit_of(repo, rev)
            history = []
            while commit is not None:
                history.append(
                    {
                        "id": commit.oid,
                        "title": commit.title,
                        "message": commit.message,
                        "authors": [{"user": self.server.hub.user}],
                        "date": commit.date,
                    }
                )
                commit = repo.commits[commit.parents[0]] if commit.parents else None
        self._json(200, history)

    def _branch(self, method: str, rtype: str, repo_id: str, name: str, body: bytes) -> None:
        with self.server.hub.lock:
            repo = self._repo(rtype, repo_id, write=True)
            if method == "DELETE":
                if name not in repo.branches or name == "main":
                    raise HubError(404 if name not in repo.branches else 403, f"Cannot delete branch {name}")
                del repo.branches[name]
            else:
                if name in repo.branches:
                    raise HubError(409, f"Reference already exists: refs/heads/{name}")
                start = json.loads(body or b"{}").get("startingPoint") or "main"
                repo.branches[name] = self._commit_of(repo, start).oid
        self._json(200, {})

    def _resolve(self, rtype: str, repo_id: str, rev: str, path: str) -> None:
        head = self.command == "HEAD"
        with self.server.hub.lock:
            repo = self._repo(rtype, repo_id)
            commit = self._commit_of(repo, rev)
            blob = commit.files.get(path)
        if blob is None:
            raise HubError(
                404,
                f"Entry not found: {path}",
                "EntryNotFound",
            )
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{blob.oid}"', "Accept-Ranges": "bytes"}
        if blob.lfs:
            headers["X-Linked-Etag"] = f'"{blob.sha256}"'
            headers["X-Linked-Size"] = str(blob.size)
        data = blob.data
        status = 200
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m or (not m.group(1) and not m.group(2)):
                raise HubError(416, f"Bad range {rng}")
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)), blob.size - 1) if m.group(2) else blob.size - 1
            else:
                start, end = max(blob.size - int(m.group(2)), 0), blob.size - 1
            if start >= blob.size or start > end:
                self._send(416, b"", {"Content-Range": f"bytes */{blob.size}", **headers}, head=head)
                return
            data = data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
            status = 206
        self._send(status, data, headers, content_type="application/octet-stream", head=head)


class MiniHub(ThreadingHTTPServer):
    """The server; ``.hub`` is its :class:`HubState`, ``.url`` its base URL."""

    daemon_threads = True
    allow_reuse_address = False

    def __init__(
        self, port: int = 0, token: str | None = None, read_tokens: tuple[str, ...] = (), verbose: bool = False
    ):
        super().__init__(("127.0.0.1", port), Handler)
        self.hub = HubState(token=token, read_tokens=read_tokens)
        self.verbose = verbose
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


def serve_in_thread(
    token: str | None = None, *, read_tokens: tuple[str, ...] = (), verbose: bool = False
) -> tuple[MiniHub, str]:
    """Start minihub on a free loopback port in a daemon thread; returns ``(server, url)``."""
    server = MiniHub(0, token=token, read_tokens=read_tokens, verbose=verbose)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="minihub", daemon=True)
    thread.start()
    server.thread = thread  # type: ignore[attr-defined]
    return server, server.url


def stop(server: MiniHub) -> None:
    """Shut a server from :func:`serve_in_thread` down and release its port."""
    server.shutdown()
    server.server_close()
    thread = getattr(server, "thread", None)
    if thread is not None:
        thread.join(timeout=5)


def client_env(url: str, hf_home: Any, token: str | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a subprocess whose huggingface_hub / datasets must talk to minihub at ``url``.

    Online mode against the loopback endpoint, Xet off, telemetry off, a private ``HF_HOME``
    (so the cache starts empty) and ``HF_TOKEN`` set only when ``token`` is given.
    """
    import os

    env = dict(os.environ if base is None else base)
    for key in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_HUB_CACHE",
        "HF_DATASETS_CACHE",
        "HF_TOKEN_PATH",
        "HUGGINGFACE_HUB_CACHE",
        "HF_XET_CACHE",
        "HF_HUB_DISABLE_IMPLICIT_TOKEN",
    ):
        env.pop(key, None)
    env.update(
        HF_ENDPOINT=url,
        HF_HUB_OFFLINE="0",
        HF_DATASETS_OFFLINE="0",
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HOME=str(hf_home),
        HF_HUB_ETAG_TIMEOUT="30",
        HF_HUB_DOWNLOAD_TIMEOUT="30",
    )
    if token is not None:
        env["HF_TOKEN"] = token
    return env


def repo_url(base: str, repo_id: str, repo_type: str = "dataset") -> str:
    """The web URL of a repo on a minihub at ``base``."""
    return f"{base}/{_URL_PREFIX[repo_type]}{quote(repo_id)}"


def main() -> None:
    parser = argparse.ArgumentParser(description="Loopback Hugging Face Hub protocol server for tests.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=None, help="require 'Bearer TOKEN' for writes")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args()
    server = MiniHub(args.port, token=args.token, verbose=args.verbose)
    print(f"minihub listening on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
