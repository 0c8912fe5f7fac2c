"""Reading lm-eval results files (``results_<date>.json``) into a :class:`~karma_hf.scores.ScoreTable`.

One model per file, named by ``model_name`` or ``config.model_args``' ``pretrained`` (dict in
lm-eval 0.4.13, ``"k=v,..."`` string in older 0.4.x), or explicitly with ``NAME=PATH``. When a
model has several results files, the newest file per task wins and a note says so. Results for
tasks that were not asked for are ignored with a note. Only the standard library is imported.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from karma_hf.errors import KarmaError
from karma_hf.score_table import KARMA_TASKS, KNOWN_METRICS, Provenance, ScoreTable


def split_named(text: str) -> tuple[str | None, Path]:
    if "=" in text and not Path(text).exists():
        name, _, path = text.partition("=")
        if not name.strip():
            raise KarmaError(f"empty model name in {text!r} (expected NAME=PATH)")
        return name.strip(), Path(path).expanduser()
    return None, Path(text).expanduser()


_SKIP_KEYS = {"alias", "name", "sample_len", "sample_count", " "}


@dataclass
class _ResultsFile:
    path: Path
    model: str
    results: dict[str, dict[str, Any]]
    lm_eval_version: str | None
    limit: Any
    date: float


def _is_results_name(p: Path) -> bool:
    return p.suffix == ".json" and p.name.startswith("results")


def _find_results(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*.json") if _is_results_name(p))
    if not files:
        raise KarmaError(f"no lm-eval results files (results*.json) under {path}")
    return files


def _model_from_args(args: Any) -> str | None:
    if isinstance(args, dict):
        val = args.get("pretrained") or args.get("model") or args.get("path")
        return str(val) if val else None
    if isinstance(args, str):
        for part in args.split(","):
            k, _, v = part.partition("=")
            if k.strip() in ("pretrained", "model", "path") and v.strip():
                return v.strip()
    return None


_DATE_RE = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?)")


def _parse_results_file(path: Path, name: str | None) -> _ResultsFile:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise KarmaError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    except UnicodeDecodeError as exc:
        raise KarmaError(f"{path}: not a text JSON file") from exc
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("results"), dict)
        or not ("config" in data or "configs" in data or "versions" in data)
    ):
        raise KarmaError(f"{path}: not an lm-eval results file (no 'results' and 'config'/'versions' keys)")
    config = data.get("config") or {}
    model = name or data.get("model_name") or _model_from_args(config.get("model_args"))
    if not model:
        raise KarmaError(
            f"{path}: cannot tell which model this is (no model_name or pretrained=); pass it as NAME={path}"
        )
    results: dict[str, dict[str, Any]] = {}
    for key, row in {**(data.get("groups") or {}), **data["results"]}.items():
        if not isinstance(row, dict):
            continue
        clean = key.strip()
        clean = clean[2:].strip() if clean.startswith("- ") else clean
        results[clean] = row
        alias = str(row.get("alias", "")).strip()
        alias = alias[2:].strip() if alias.startswith("- ") else alias
        if alias and alias not in results:
            results[alias] = row
    date = data.get("date")
    if not isinstance(date, (int, float)):
        m = _DATE_RE.search(path.name)
        date = 0.0
        if m:
            from datetime import datetime

            try:
                date = datetime.strptime(m.group(1).split(".")[0], "%Y-%m-%dT%H-%M-%S").timestamp()
            except ValueError:
                date = 0.0
    return _ResultsFile(path, str(model), results, data.get("lm_eval_version"), config.get("limit"), float(date))


def _metric_value(rf: _ResultsFile, task: str, metric: str | None) -> tuple[float, str]:
    row = rf.results[task]
    metrics = {k: v for k, v in row.items() if k not in _SKIP_KEYS and "_stderr" not in k}
    if metric is None:
        metric = KNOWN_METRICS.get(task)
        if metric is None:
            if len(metrics) == 1:
                metric = next(iter(metrics))
            else:
                raise KarmaError(
                    f"{rf.path}: task {task!r} has several metrics "
                    f"({', '.join(sorted(metrics))}); choose one with --benchmark {task}:METRIC"
                )
    if metric not in row:
        plain = [k for k in metrics if k.split(",")[0] == metric]
        if len(plain) == 1:
            metric = plain[0]
        else:
            raise KarmaError(
                f"{rf.path}: task {task!r} has no metric {metric!r}; available: {', '.join(sorted(metrics)) or 'none'}"
            )
    value = row[metric]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise KarmaError(f"{rf.path}: {task} {metric} of model {rf.model!r} is not a finite number: {value!r}")
    return float(value), metric


def read_lm_eval_results(
    specs: Sequence[tuple[str | None, Path]] | Sequence[str | Path],
    *,
    benchmarks: Mapping[str, str | None] | Mapping[str, tuple[str, str | None]] | None = None,
    allow_missing: bool = False,
) -> ScoreTable:
    """Read lm-eval results files into a ScoreTable (see the module docstring).

    ``benchmarks``: task -> metric key (``None`` = the task's usual metric), or column ->
    ``(task, metric)`` for several metrics of one task. Every value read is a fraction (lm-eval's
    accuracy-style metrics); a column with values outside [0, 1] is recorded as ``raw``.
    """
    spec = benchmarks if benchmarks is not None else KARMA_TASKS
    wanted: dict[str, tuple[str, str | None]] = {
        col: (v if isinstance(v, tuple) else (col, v)) for col, v in spec.items()
    }
    pairs: list[tuple[str | None, Path]] = []
    for s in specs:
        if isinstance(s, tuple):
            pairs.append(s)
        else:
            pairs.append(split_named(str(s)))
    files: list[_ResultsFile] = []
    for name, path in pairs:
        if not path.exists():
            raise KarmaError(f"scores path does not exist: {path}")
        for found in _find_results(path):
            files.append(_parse_results_file(found, name))
    notes: list[str] = []
    models: list[str] = list(dict.fromkeys(f.model for f in files))
    cells: dict[tuple[str, str], tuple[float, Provenance]] = {}
    ignored: set[str] = set()
    for model in models:
        mine = sorted((f for f in files if f.model == model), key=lambda f: (f.date, str(f.path)))
        for col, (task, want_metric) in wanted.items():
            having = [f for f in mine if task in f.results]
            if not having:
                continue
            newest = having[-1]
            if len(having) > 1:
                notes.append(
                    f"model {model!r}: {task} found in {len(having)} results files; using the newest, {newest.path}"
                )
            value, metric = _metric_value(newest, task, want_metric)
            cells[(model, col)] = (
                value,
                Provenance(str(newest.path), task, metric, newest.lm_eval_version, newest.limit, newest.date),
            )
        tasks = {task for task, _ in wanted.values()}
        for f in mine:  # one name per unselected result (not the aliases results[] also holds)
            named = {id(row) for t, row in f.results.items() if t in tasks}
            for t, row in f.results.items():
                if id(row) not in named:
                    named.add(id(row))
                    ignored.add(t)
    if ignored:
        notes.append(f"ignored results for tasks not selected: {', '.join(sorted(ignored))}")
    missing = {m: [t for t in wanted if (m, t) not in cells] for m in models}
    missing = {m: ts for m, ts in missing.items() if ts}
    benches = list(wanted)
    if missing:
        if not allow_missing:
            detail = "; ".join(f"{m}: {', '.join(ts)}" for m, ts in missing.items())
            raise KarmaError(
                f"missing benchmark results ({detail}); run them, or pass --allow-missing "
                "to drop those benchmarks for all models"
            )
        drop = sorted({t for ts in missing.values() for t in ts}, key=benches.index)
        notes.append(f"warning: dropped benchmark(s) missing for some models: {', '.join(drop)}")
        benches = [b for b in benches if b not in drop]
        if not benches:
            raise KarmaError("no benchmark has results for every model")
    values = np.array([[cells[(m, b)][0] for b in benches] for m in models], dtype=np.float64)
    prov = {(m, b): cells[(m, b)][1] for m in models for b in benches}
    source = ", ".join(str(p) for _, p in pairs)
    limited = sorted({(m, p.limit) for (m, _), p in prov.items() if p.limit is not None}, key=str)
    for model, limit in limited:
        notes.append(
            f"warning: results of model {model!r} were made with --limit {limit:g}: a sample of each "
            "benchmark, not the whole of it (scores are noisier; compare models at the same limit)"
        )
    units = {
        b: "fraction" if ((values[:, j] >= 0) & (values[:, j] <= 1)).all() else "raw" for j, b in enumerate(benches)
    }
    return ScoreTable(models, benches, values, {}, prov, source, (), notes, units)
