"""The provenance of a KARMA set a model was trained on (``karma_provenance.json``'s ``dataset``).

Read through :func:`karma_hf.karma_set.read_dataset_files`: where the set came from, its
requested and resolved revision, the sha256 of its data files, τ, the origin-model score table,
S_pref and the normalised scores (from the builder's ``build_report.json``), and the build facts.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from karma_hf.karma_set import config_files, read_dataset_files


def _find(obj: Any, keys: Sequence[str], want: type | tuple[type, ...]) -> Any:
    """First value of one of ``keys`` (searched breadth-first) that is an instance of ``want``."""
    queue = deque([obj])
    while queue:
        cur = queue.popleft()
        if isinstance(cur, Mapping):
            for k in keys:
                if k in cur and isinstance(cur[k], want) and not isinstance(cur[k], bool):
                    return cur[k]
            queue.extend(cur.values())
        elif isinstance(cur, list):
            queue.extend(cur)
    return None


def local_fingerprint(local: str, files: Mapping[str, list[str]]) -> str | None:
    """sha256 over the bytes of a config's data files (sorted by split and name)."""
    h = hashlib.sha256()
    found = False
    for split in sorted(files):
        for rel in sorted(files[split]):
            for p in sorted(Path(local).glob(rel)):
                found = True
                h.update(f"{split}:{p.relative_to(local)}\n".encode())
                h.update(p.read_bytes())
    return h.hexdigest() if found else None


def dataset_provenance(
    name: str,
    config: str | None,
    revision: str | None = None,
    train_dataset: Any = None,
    *,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The dataset facts of ``karma_provenance.json``: where the set came from, its revision and
    content hash, τ, the score table, S_pref and the normalised scores, and the build facts."""
    info = info or read_dataset_files(name, revision)
    meta, report = info["card_metadata"], info["build_report"] or {}
    files = config_files(meta, config)
    tau = _find(report, ("tau",), (int, float))
    if tau is None:
        tau = _find(meta, ("tau",), (int, float))
    scores = _find(report, ("score_table", "scores"), dict)
    if scores is None:
        scores = _find(meta, ("score_table", "scores"), dict)
    report = report if isinstance(report, dict) else {}
    kinship = report.get("kinship") if isinstance(report.get("kinship"), Mapping) else None
    modes: Mapping[str, Any] = report["modes"] if isinstance(report.get("modes"), Mapping) else {}
    mode_report = modes.get(config) if config is not None else None
    build = {k: report[k] for k in ("karma_hf_version", "source", "seed", "rating", "command") if k in report}
    return {
        "name": name,
        "config": config,
        "mode": config,
        "revision": revision,
        "resolved_revision": info["resolved_revision"],
        "local_path": info["local_path"],
        "content_sha256": local_fingerprint(info["local_path"], files) if info["local_path"] else None,
        "fingerprint": getattr(train_dataset, "_fingerprint", None),
        "num_train_rows": len(train_dataset)
        if train_dataset is not None and hasattr(train_dataset, "__len__")
        else None,
        "data_files": files or None,
        "tau": tau,
        "score_table": scores,
        "s_pref": _s_pref(kinship),
        "normalized_scores": _normalized(kinship),
        "build": build or None,
        "build_report_mode": mode_report,
        "card_tags": meta.get("tags"),
        "notes": info["notes"],
    }


def _s_pref(kinship: Mapping[str, Any] | None) -> dict[str, float] | None:
    """``{model: S_pref}`` from a ``Kinship.to_dict()`` (the builder's report), if present."""
    if not kinship:
        return None
    values, models = kinship.get("s_pref"), kinship.get("models")
    if isinstance(values, Mapping):
        return {str(m): float(v) for m, v in values.items()}
    if isinstance(values, list) and isinstance(models, list) and len(values) == len(models):
        return {str(m): float(v) for m, v in zip(models, values, strict=False)}
    return None


def _normalized(kinship: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Min-max normalised scores per model (what S_pref and the cosines were computed from)."""
    if not kinship or not isinstance(kinship.get("normalized"), Mapping):
        return None
    return {
        "benchmarks": list(kinship.get("benchmarks") or []),
        "scores": {str(m): list(v) for m, v in kinship["normalized"].items()},
    }
