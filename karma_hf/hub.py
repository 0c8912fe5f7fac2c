"""Publish a built KARMA dataset folder to the Hugging Face Hub in one atomic commit.

A karma dataset folder (written by ``karma build --output DIR``) holds::

    DIR/README.md                                   dataset card; its YAML ``configs`` list one
                                                    config per mode and form with data_files per
                                                    split (train_sft declared on train's file)
    DIR/build_report.json                           kept / dropped counts
    DIR/<config>/<split>-NNNNN-of-NNNNN.parquet     config = mode (score, sim, score_sim, rlaif) in
                                                    the best form, or <mode>-<form>; split in
                                                    train, test

:func:`push_folder` checks that layout, creates the dataset repo if needed (and the branch for
``revision``), and uploads every shard plus the card and report in a single
``HfApi.create_commit``; the same commit deletes the repo's KARMA shards that the folder no longer
has (a mode or split the new build dropped), so the repo's data files become exactly the build's.
The Hub applies a commit all at once, so a push that fails at any point (upload cut, commit
refused, network down) leaves the repo exactly as it was.

The token comes from the ``token`` argument, ``HF_TOKEN`` or the ``hf auth login`` cache. It is
handed to huggingface_hub only: never printed, logged, or written anywhere, and scrubbed from
error messages.

Transient failures (connection errors, timeouts, HTTP 408/429/5xx) are retried with exponential
backoff: ``KARMA_HUB_RETRIES`` retries (default 3) after ``KARMA_HUB_BACKOFF`` seconds (default
2), doubling each time. Retrying is safe: a commit whose files are already on the Hub is a no-op.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from karma_hf.errors import KarmaError
from karma_hf.karma_set import scan_folder
from karma_hf.layout import SHARD_RE

logger = logging.getLogger(__name__)

_REPO_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*")
_TRANSIENT_STATUS = (408, 429, 500, 502, 503, 504)
_NETWORK_ERROR_NAMES = {  # httpx / httpx2 / requests / urllib3 exception class names
    "ConnectError",
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "PoolTimeout",
    "TimeoutException",
    "NetworkError",
    "ReadError",
    "WriteError",
    "RemoteProtocolError",
    "ConnectionError",
    "Timeout",
    "ProtocolError",
    "NewConnectionError",
    "MaxRetryError",
}

T = TypeVar("T")


class PushResult(str):
    """The commit URL (a ``str``), plus what happened: ``oid``, ``changed`` (False when the repo
    already held exactly these files and no commit was made), ``repo_id``, ``revision``, ``files``
    (uploaded) and ``deleted`` (stale shards the commit removed)."""

    oid: str
    changed: bool
    repo_id: str
    revision: str
    files: tuple[str, ...]
    deleted: tuple[str, ...]

    def __new__(
        cls,
        url: str,
        *,
        oid: str,
        changed: bool,
        repo_id: str,
        revision: str,
        files: tuple[str, ...],
        deleted: tuple[str, ...] = (),
    ) -> PushResult:
        obj = super().__new__(cls, url)
        obj.oid, obj.changed, obj.repo_id, obj.revision, obj.files = oid, changed, repo_id, revision, files
        obj.deleted = deleted
        return obj


def normalize_repo_id(repo: str) -> str:
    """``user/name`` from ``user/name``, ``datasets/user/name`` or a Hub dataset URL.

    A model or space id/URL (``models/...``, ``spaces/...``, ``https://huggingface.co/user/name``)
    is a :class:`KarmaError`: karma publishes dataset repos.
    """
    from huggingface_hub import constants

    text = repo.strip().rstrip("/")
    for base in {constants.ENDPOINT.rstrip("/"), "https://huggingface.co", "https://hf.co"}:
        if text.startswith(base + "/"):
            text = text[len(base) + 1 :]
            if not text.startswith(("datasets/", "spaces/", "models/")):
                text = "models/" + text  # a bare Hub URL names a model
            break
    for prefix, kind in (("models/", "model"), ("spaces/", "space")):
        if text.startswith(prefix):
            raise KarmaError(
                f"--repo {repo}: that is a {kind} repo; karma pushes dataset repos "
                f"(pass user/name or datasets/user/name)"
            )
    text = text.removeprefix("datasets/")
    if not _REPO_ID_RE.fullmatch(text) or ".." in text or text.endswith((".git", ".")):
        raise KarmaError(f"--repo {repo}: expected a dataset repo id like user/name")
    return text


def _names_dataset_explicitly(repo: str) -> bool:
    """``datasets/user/name`` or a dataset URL: the user asked for a dataset repo by type."""
    text = repo.strip()
    return text.startswith("datasets/") or "://" in text and "/datasets/" in text


def resolve_token(token: str | None = None) -> str:
    """The token to push with: ``token``, else ``HF_TOKEN``, else the ``hf auth login`` cache."""
    if token:
        return token
    from huggingface_hub import get_token

    try:
        found = get_token()
    except Exception as exc:  # e.g. a failed OIDC exchange when HF_OIDC_RESOURCE is set
        raise KarmaError(f"could not get a Hugging Face token ({type(exc).__name__}); set HF_TOKEN") from exc
    if not found:
        raise KarmaError("no Hugging Face token: set HF_TOKEN or run `hf auth login` with a write token")
    return found


def _check_online() -> None:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise KarmaError("HF_HUB_OFFLINE is set: unset it (or set HF_HUB_OFFLINE=0) to push")


def check_push_target(repo_id: str, token: str | None = None) -> str:
    """What a push needs before any work starts (``karma build --push-to`` runs it before reading the
    source): ``repo_id`` is a dataset repo id, a token is at hand, and the Hub is not switched off
    (``HF_HUB_OFFLINE``). Returns the normalised repo id; raises :class:`KarmaError` otherwise."""
    repo = normalize_repo_id(repo_id)
    resolve_token(token)
    _check_online()
    return repo


def _retry_settings() -> tuple[int, float]:
    try:
        retries = int(os.environ.get("KARMA_HUB_RETRIES", "3"))
        backoff = float(os.environ.get("KARMA_HUB_BACKOFF", "2"))
    except ValueError as exc:
        raise KarmaError("KARMA_HUB_RETRIES must be an integer and KARMA_HUB_BACKOFF a number of seconds") from exc
    return max(retries, 0), max(backoff, 0.0)


def _causes(exc: BaseException | None):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _is_transient(exc: BaseException) -> bool:
    from huggingface_hub.errors import OfflineModeIsEnabled

    for err in _causes(exc):
        if isinstance(err, OfflineModeIsEnabled):
            return False
        status = _status(err)
        if status is not None:
            return status in _TRANSIENT_STATUS
        if isinstance(err, (ConnectionError, TimeoutError)) or any(
            cls.__name__ in _NETWORK_ERROR_NAMES for cls in type(err).__mro__
        ):
            return True
    return False


def _short_reason(exc: BaseException) -> str:
    for err in _causes(exc):
        status = _status(err)
        if status is not None:
            return f"HTTP {status}"
    return type(exc).__name__


def _server_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    try:
        message = response.json().get("error") if response is not None else None
    except Exception:
        message = None
    if not message:
        message = (getattr(exc, "server_message", None) or str(exc)).strip().splitlines()
        message = message[0] if message else type(exc).__name__
    return str(message)


def _explain(exc: BaseException, repo_id: str, endpoint: str, attempts: int) -> str:
    """One line for the user; the token never appears (callers scrub it again anyway)."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    where = f"dataset repo {repo_id} on {endpoint}"
    for err in _causes(exc):
        if isinstance(err, OfflineModeIsEnabled):
            return "HF_HUB_OFFLINE is set: unset it (or set HF_HUB_OFFLINE=0) to push"
        status = _status(err)
        if status == 401:
            return f"the Hub rejected the token (401 Unauthorized) for {where}: check HF_TOKEN or `hf auth login`"
        if status == 403:
            return (
                f"no write access to {where} (403 Forbidden: {_server_message(err)}); use a token with "
                "write permission for that namespace"
            )
        if status is not None and status in _TRANSIENT_STATUS:
            return (
                f"the Hub kept failing ({status}: {_server_message(err)}) after {attempts} attempt(s) "
                f"pushing to {where}; nothing was committed"
            )
        if status is not None:
            return f"the Hub refused the push to {where} ({status}: {_server_message(err)}); nothing was committed"
        if isinstance(err, ValueError) and "Invalid metadata in README.md" in str(err):
            detail = " ".join(str(err).split())
            return f"the Hub rejected the dataset card: {detail}"
    if _is_transient(exc):
        return (
            f"network failure: could not reach {endpoint} ({type(exc).__name__}) after {attempts} "
            f"attempt(s); nothing was committed"
        )
    return f"push to {where} failed: {type(exc).__name__}: {' '.join(str(exc).split())}"


def _with_retries(
    fn: Callable[[], T], *, describe: Callable[[BaseException, int], str], sleep: Callable[[float], None] = time.sleep
) -> T:
    retries, backoff = _retry_settings()
    for attempt in range(retries + 1):
        try:
            return fn()
        except KarmaError:
            raise
        except Exception as exc:
            if not _is_transient(exc) or attempt == retries:
                raise KarmaError(describe(exc, attempt + 1)) from exc
            wait = backoff * (2**attempt)
            logger.warning(
                "Hub request failed (%s); retry %d/%d in %.1f s", _short_reason(exc), attempt + 1, retries, wait
            )
            sleep(wait)
    raise AssertionError("unreachable")


def stale_files(repo_files: Sequence[str], pushed: Sequence[str]) -> list[str]:
    """Files of the repo a push deletes: KARMA shards (``<mode>/<split>-NNNNN-of-NNNNN.parquet``) that
    the pushed folder does not have, e.g. a mode or split the new build no longer makes. Anything
    else in the repo (``.gitattributes``, a file uploaded by hand) is left alone."""
    keep = set(pushed)
    out = []
    for rel in repo_files:
        parts = rel.split("/")
        if rel not in keep and len(parts) == 2 and SHARD_RE.fullmatch(parts[1]) and not parts[0].startswith("."):
            out.append(rel)
    return sorted(out)


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str | None = None,
) -> PushResult:
    """Publish a karma dataset folder to the dataset repo ``repo_id`` as ONE commit; return its URL.

    Creates the repo (``private`` applies only then) and the branch ``revision`` when missing,
    then commits the card, the build report and every parquet shard together, deleting the
    repo's shards that the folder does not have (:func:`stale_files`) in the same commit, so
    ``load_dataset(repo_id, "<mode>")`` sees either the old or the new version, never a mix.
    Pushing an unchanged folder makes no commit and returns the head commit's URL. The returned
    :class:`PushResult` is that URL as a ``str`` with ``.oid`` and ``.changed`` on it.

    Raises :class:`KarmaError` (one line, no token in it) for: a folder that is not a karma
    dataset folder, no token, a rejected token (401), no write access (403), a model/space repo id
    (``models/...``, ``spaces/...``, or a plain ``user/name`` that exists only as a model or space:
    pass ``datasets/user/name`` to create a dataset beside it), and a network failure that
    outlasts the retries.
    """
    plan = scan_folder(folder)
    explicit_dataset = _names_dataset_explicitly(repo_id)
    repo_id = normalize_repo_id(repo_id)
    secret = resolve_token(token)
    _check_online()

    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    from karma_hf import __version__

    api = HfApi(token=secret, library_name="karma-hf", library_version=__version__)
    branch = revision or "main"
    message = commit_message or f"Upload KARMA preference dataset ({', '.join(plan.configs)})"
    if plan.skipped:
        logger.warning("not pushed (outside the karma layout): %s", ", ".join(plan.skipped))

    def attempt() -> PushResult:
        if not explicit_dataset and not api.repo_exists(repo_id, repo_type="dataset"):
            for other in ("model", "space"):
                if api.repo_exists(repo_id, repo_type=other):
                    raise KarmaError(
                        f"--repo {repo_id}: exists on the Hub as a {other} repo and there is no dataset "
                        f"repo of that name; pick another name, or pass datasets/{repo_id} to create "
                        "a dataset repo beside it"
                    )
        api.create_repo(repo_id, repo_type="dataset", private=private or None, exist_ok=True)
        if branch != "main":
            api.create_branch(repo_id, repo_type="dataset", branch=branch, exist_ok=True)
        head = api.repo_info(repo_id, repo_type="dataset", revision=branch).sha
        operations: list[CommitOperationAdd | CommitOperationDelete] = [
            CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(plan.folder / rel)) for rel in plan.files
        ]
        stale = stale_files(api.list_repo_files(repo_id, repo_type="dataset", revision=head), plan.files)
        operations += [CommitOperationDelete(path_in_repo=rel) for rel in stale]
        info = api.create_commit(repo_id, operations, commit_message=message, repo_type="dataset", revision=branch)
        return PushResult(
            str(info.commit_url),
            oid=str(info.oid),
            changed=info.oid != head,
            repo_id=repo_id,
            revision=branch,
            files=plan.files,
            deleted=tuple(stale) if info.oid != head else (),
        )

    def describe(exc: BaseException, attempts: int) -> str:
        return _explain(exc, repo_id, api.endpoint, attempts).replace(secret, "***")

    return _with_retries(attempt, describe=describe)
