"""Stage-state files of ``karma run``: what made a stage's outputs, written atomically when it completes.

``OUTPUT/state/<stage>.json`` records the stage's configuration (the part of the pipeline file it
reads), the hashes of the upstream stages it consumed, per-item hashes (one per model or student,
so that one changed model reruns alone), the outputs it wrote (paths relative to OUTPUT), when it
finished and a short summary. The stage hash is :func:`digest` of configuration, upstream hashes
and items; a rerun skips a stage whose recorded hash matches and whose outputs exist.

A stage of several items (evaluation of each model, training of each student) writes its state
after every item with ``complete: false``, so an interrupted stage redoes only the items it had
not finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from karma_hf.errors import KarmaError

STATE_DIR = "state"


def digest(data: Any) -> str:
    """SHA-256 of ``data`` as canonical JSON (sorted keys; non-JSON values by ``str``)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def path_digest(path: str | Path) -> str | None:
    """SHA-256 of a file's bytes, or of a folder's files (relative names and bytes); None if absent."""
    p = Path(path).expanduser()
    h = hashlib.sha256()
    if p.is_file():
        files = [p]
        root = p.parent
    elif p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        root = p
    else:
        return None
    for f in files:
        h.update(str(f.relative_to(root)).encode("utf-8") + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


@dataclass
class StageState:
    """One stage's record (see the module docstring)."""

    stage: str
    hash: str
    config: dict[str, Any]
    upstream: dict[str, str] = field(default_factory=dict)
    items: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    item_outputs: dict[str, list[str]] = field(default_factory=dict)
    complete: bool = True
    summary: str = ""
    seconds: float = 0.0
    finished: str = ""
    karma_hf: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def state_path(output: Path, stage: str) -> Path:
    return output / STATE_DIR / f"{stage}.json"


def read_state(output: Path, stage: str) -> StageState | None:
    """The recorded state of ``stage``, or None (never run, or an unreadable file: the stage reruns)."""
    path = state_path(output, stage)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return StageState(**{k: v for k, v in data.items() if k in StageState.__dataclass_fields__})
    except (OSError, ValueError, TypeError):
        return None


def write_state(output: Path, state: StageState) -> Path:
    """Write ``state`` atomically (a temporary sibling, then ``os.replace``)."""
    from karma_hf import __version__

    state.finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    state.karma_hf = __version__
    path = state_path(output, state.stage)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(state.to_dict(), indent=2, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise KarmaError(f"cannot write the stage state {path}: {exc.strerror or exc}") from exc
    return path


def changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two configuration dicts (the leaf names only)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            out += changed_keys(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else str(key))
        return out
    if json.dumps(old, sort_keys=True, default=str) != json.dumps(new, sort_keys=True, default=str):
        return [prefix or "config"]
    return []
