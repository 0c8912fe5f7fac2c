"""Reading a KARMA set, local folder or Hub dataset repo: its card, build report and data files.

Shared by ``karma train`` (which loads only the data files the card declares for a mode) and
:class:`karma_hf.callback.KarmaCallback` (which records the set's provenance). Only the standard
library, PyYAML and (for Hub sets) huggingface_hub are imported, never transformers.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def card_metadata(text: str) -> dict[str, Any]:
    import yaml

    if not text.startswith("---"):
        return {}
    head = text.split("---", 2)
    try:
        data = yaml.safe_load(head[1]) if len(head) > 2 else {}
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


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


def is_local(name: str) -> bool:
    return Path(name).expanduser().is_dir()


def config_files(card_meta: Mapping[str, Any], config: str | None) -> dict[str, list[str]]:
    """Split -> data files of one config declared in a dataset card's YAML ``configs``.

    Accepts the forms the Hub accepts: a path or list of paths (all ``train``), a list of
    ``{split, path}`` entries, or a ``{split: path(s)}`` mapping.
    """
    def as_list(paths: Any) -> list[str]:
        return [paths] if isinstance(paths, str) else [str(p) for p in paths or []]

    for cfg in card_meta.get("configs") or []:
        if not (isinstance(cfg, Mapping) and cfg.get("config_name") == config):
            continue
        files = cfg.get("data_files") or []
        if isinstance(files, Mapping):
            return {str(split): as_list(paths) for split, paths in files.items()}
        if isinstance(files, str) or all(isinstance(f, str) for f in files):
            return {"train": as_list(files)}
        return {str(e.get("split", "train")): as_list(e.get("path")) for e in files if isinstance(e, Mapping)}
    return {}


def read_dataset_files(name: str, revision: str | None = None) -> dict[str, Any]:
    """Card text/metadata and build report of a KARMA set (local folder or Hub dataset repo).

    Returns ``{"card_text", "card_metadata", "build_report", "resolved_revision", "local_path",
    "notes"}``; what cannot be read is ``None`` with a note saying why.
    """
    notes: list[str] = []
    texts: dict[str, str | None] = {"README.md": None, "build_report.json": None}
    resolved = None
    local = None
    if is_local(name):
        local = str(Path(name).expanduser().resolve())
        for fname in texts:
            p = Path(local) / fname
            texts[fname] = p.read_text(encoding="utf-8") if p.is_file() else None
    else:
        from huggingface_hub import HfApi, hf_hub_download

        try:
            resolved = HfApi().dataset_info(name, revision=revision).sha
        except Exception as exc:  # offline, private without token, not found
            notes.append(f"could not resolve the revision of {name}: {type(exc).__name__}")
        for fname in texts:
            try:
                path = hf_hub_download(name, fname, repo_type="dataset", revision=resolved or revision)
                texts[fname] = Path(path).read_text(encoding="utf-8")
            except Exception as exc:
                notes.append(f"could not read {fname} of {name}: {type(exc).__name__}")
    for fname, text in texts.items():
        if text is None and not any(fname in n for n in notes):
            notes.append(f"{fname} not found in {name}")
    report = None
    if texts["build_report.json"]:
        try:
            report = json.loads(texts["build_report.json"])
        except json.JSONDecodeError as exc:
            notes.append(f"build_report.json of {name} is not valid JSON ({exc.msg})")
    card_text = texts["README.md"]
    return {"card_text": card_text, "card_metadata": card_metadata(card_text or ""),
            "build_report": report, "resolved_revision": resolved, "local_path": local, "notes": notes}


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


def dataset_provenance(name: str, config: str | None, revision: str | None = None,
                       train_dataset: Any = None) -> dict[str, Any]:
    """The dataset facts of ``karma_provenance.json`` (see the module docstring)."""
    info = read_dataset_files(name, revision)
    meta, report = info["card_metadata"], info["build_report"] or {}
    files = config_files(meta, config)
    tau = _find(report, ("tau",), (int, float))
    if tau is None:
        tau = _find(meta, ("tau",), (int, float))
    scores = _find(report, ("score_table", "scores"), dict)
    if scores is None:
        scores = _find(meta, ("score_table", "scores"), dict)
    kinship = report.get("kinship") if isinstance(report.get("kinship"), Mapping) else None
    modes = report.get("modes") if isinstance(report.get("modes"), Mapping) else {}
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
        "num_train_rows": len(train_dataset) if train_dataset is not None and hasattr(train_dataset, "__len__") else None,
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
        return {str(m): float(v) for m, v in zip(models, values)}
    return None


def _normalized(kinship: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Min-max normalised scores per model (what S_pref and the cosines were computed from)."""
    if not kinship or not isinstance(kinship.get("normalized"), Mapping):
        return None
    return {"benchmarks": list(kinship.get("benchmarks") or []),
            "scores": {str(m): list(v) for m, v in kinship["normalized"].items()}}
