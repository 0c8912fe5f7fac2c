"""ScoreTable: origin models × benchmarks, with where every number came from.

Readers (all through :func:`load_scores`):

- **lm-eval results**: a folder (searched recursively for ``results*.json``), one results file,
  or a list of them. One model per file, named by ``model_name`` or ``config.model_args``'
  ``pretrained`` (dict in lm-eval 0.4.13, ``"k=v,..."`` string in older 0.4.x), or explicitly
  with ``NAME=PATH``. By default the six karma tasks are read with these metric keys
  (:data:`KARMA_TASKS`):

  ===================== ================================
  task                  metric key
  ===================== ================================
  karma_ifeval          ``inst_level_loose_acc,none``
  karma_mmlu_stem       ``exact_match,robust-extract``
  karma_mmlu_pro        ``exact_match,robust-extract``
  karma_hellaswag       ``exact_match,robust-extract``
  karma_arc_easy        ``exact_match,robust-extract``
  karma_arc_challenge   ``exact_match,robust-extract``
  ===================== ================================

  (``robust-extract`` reads the answer letter wherever the model wrote it; the strict
  ``exact_match,strict-match`` is in every results file too, as ``karma_arc_easy:exact_match,strict-match``.)

  ``benchmarks={"leaderboard_ifeval": None, "mmlu_stem": "acc,none", ...}`` reads any other
  lm-eval tasks or groups instead (``None`` = the task's usual metric, see
  :data:`KNOWN_METRICS`). When a model has several results files, the newest file per task
  wins and a note says so. Results for tasks that were not asked for are ignored with a note.
- **CSV**: ``model,<benchmark>,...`` with one row per model.
- **Presets** shipped in the package: ``ultrafeedback-paper`` (Table 3 of the KARMA paper, the
  16 scored UltraFeedback models, ids mapped to UltraFeedback's ``model`` strings).

Only the standard library and numpy are imported here, so ``karma kinship`` starts fast.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from karma_hf.errors import KarmaError
from karma_hf.resources import presets_dir
from karma_hf.results import read_lm_eval_results, split_named
from karma_hf.score_table import CAPABILITIES, KARMA_TASKS, KNOWN_METRICS, Provenance, ScoreTable

__all__ = [
    "CAPABILITIES",
    "KARMA_TASKS",
    "KNOWN_METRICS",
    "PRESETS",
    "Provenance",
    "ScoreTable",
    "apply_aliases",
    "load_preset",
    "load_scores",
    "read_csv",
    "read_lm_eval_results",
    "split_named",
]

PRESETS: dict[str, str] = {
    "ultrafeedback-paper": "Table 3 of the KARMA paper: 16 UltraFeedback origin models",
}


def load_scores(
    spec: str | Path | Sequence[str | Path],
    *,
    benchmarks: Mapping[str, str | None] | Sequence[str] | None = None,
    allow_missing: bool = False,
    aliases: Mapping[str, str] | str | Path | None = None,
) -> ScoreTable:
    """Read a :class:`ScoreTable` from a preset name, a CSV, lm-eval results, or a list of those.

    ``spec`` entries may be ``NAME=PATH`` to name the model of a results file / folder
    explicitly. ``benchmarks`` maps lm-eval task → metric key (``None`` = usual metric); strings
    ``"TASK:METRIC"`` are accepted too. ``aliases`` maps table names to the names used in the
    response dataset (a mapping or a JSON file); a name mapped twice is an error.
    """
    specs = [spec] if isinstance(spec, (str, Path)) else list(spec)
    if not specs:
        raise KarmaError("no --scores given")
    wanted = _parse_benchmarks(benchmarks)
    results_specs: list[tuple[str | None, Path]] = []
    tables: list[ScoreTable] = []
    for item in specs:
        text = str(item)
        name, path = split_named(text)
        if name is None and text in PRESETS:
            tables.append(load_preset(text))
            continue
        if not path.exists():
            if name is None and "/" not in text and not path.suffix:
                raise KarmaError(f"unknown preset or missing path {text!r}; presets: {', '.join(PRESETS)}")
            raise KarmaError(f"scores path does not exist: {path}")
        if path.is_file() and path.suffix.lower() == ".csv":
            tables.append(read_csv(path))
        else:
            results_specs.append((name, path))
    if results_specs:
        tables.append(read_lm_eval_results(results_specs, benchmarks=wanted, allow_missing=allow_missing))
    table = tables[0] if len(tables) == 1 else _concat(tables)
    if aliases is not None:
        table = apply_aliases(table, aliases)
    return table


def _parse_benchmarks(
    spec: Mapping[str, str | None] | Sequence[str] | None,
) -> dict[str, tuple[str, str | None]]:
    """Column name -> (lm-eval task, metric key or None). A task given with several metrics
    (``--benchmark T:m1 --benchmark T:m2``) becomes one column per metric, named ``T:m1``, ``T:m2``."""
    if spec is None:
        return {t: (t, m) for t, m in KARMA_TASKS.items()}
    pairs: list[tuple[str, str | None]]
    if isinstance(spec, Mapping):
        pairs = [(str(t), m) for t, m in spec.items()]
    else:
        pairs = []
        for s in spec:
            task, _, metric = str(s).partition(":")
            if not task:
                raise KarmaError(f"bad --benchmark value {s!r}; expected TASK[:METRIC]")
            pairs.append((task, metric or None))
    pairs = list(dict.fromkeys(pairs))
    if not pairs:
        raise KarmaError("no benchmarks selected")
    count: dict[str, int] = {}
    for task, _ in pairs:
        count[task] = count.get(task, 0) + 1
    out: dict[str, tuple[str, str | None]] = {}
    for task, want in pairs:
        if count[task] > 1 and want is None:
            raise KarmaError(
                f"--benchmark {task} is given several times: name the metric of each "
                f"(e.g. --benchmark {task}:acc,none)"
            )
        out[f"{task}:{want}" if count[task] > 1 else task] = (task, want)
    return out


def _concat(tables: list[ScoreTable]) -> ScoreTable:
    benches = tables[0].benchmarks
    for t in tables[1:]:
        if t.benchmarks != benches:
            raise KarmaError(
                f"cannot combine score sources with different benchmarks: {benches} vs {t.benchmarks} ({t.source})"
            )
    units = {b: {t.units.get(b, "raw") for t in tables} for b in benches}
    mixed = [b for b, us in units.items() if len(us) > 1]
    if mixed:  # one scale before kinship: every source on fractions
        for b in mixed:
            raw = next((t for t in tables if t.units.get(b, "raw") == "raw"), None)
            if raw is not None:
                j = raw.benchmarks.index(b)
                raise KarmaError(
                    f"cannot put {b} of {raw.source} on one scale with the other score sources: its unit is not "
                    f"known (e.g. model {raw.models[0]!r} = {raw.values[0, j]:g}); give the CSV a 'unit' row "
                    "(fraction or percent)"
                )
        tables = [t.to_fractions() for t in tables]
    models = [m for t in tables for m in t.models]
    values = np.vstack([t.values for t in tables])
    display = {k: v for t in tables for k, v in t.display_names.items()}
    prov = {k: v for t in tables for k, v in t.provenance.items()}
    unscored = tuple(dict.fromkeys(u for t in tables for u in t.known_unscored))
    return ScoreTable(
        models,
        list(benches),
        values,
        display,
        prov,
        " + ".join(t.source for t in tables),
        unscored,
        [n for t in tables for n in t.notes],
        dict(tables[0].units),
    )


def apply_aliases(table: ScoreTable, aliases: Mapping[str, str] | str | Path) -> ScoreTable:
    """Rename models (table name → response-dataset name); the old name stays the display name."""
    if not isinstance(aliases, Mapping):
        aliases = _read_alias_file(Path(aliases))
    seen: dict[str, str] = {}
    for src, dst in aliases.items():
        if dst in seen:
            raise KarmaError(f"alias map names model {dst!r} twice (from {seen[dst]!r} and {src!r})")
        seen[dst] = src
    unknown = [s for s in aliases if s not in table.models]
    if unknown:
        raise KarmaError(f"alias map names model(s) not in the score table: {', '.join(unknown)}")
    new = [aliases.get(m, m) for m in table.models]
    display = {aliases.get(m, m): table.display(m) for m in table.models}
    prov = {(aliases.get(m, m), b): p for (m, b), p in table.provenance.items()}
    return ScoreTable(
        new,
        list(table.benchmarks),
        table.values,
        display,
        prov,
        table.source,
        table.known_unscored,
        list(table.notes),
        dict(table.units),
    )


def _read_alias_file(path: Path) -> dict[str, str]:
    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise KarmaError(f"{path}: alias map names model {k!r} twice")
            out[k] = v
        return out

    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=pairs_hook)
    except FileNotFoundError as exc:
        raise KarmaError(f"alias file does not exist: {path}") from exc
    except UnicodeDecodeError as exc:
        raise KarmaError(f"{path}: not valid UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise KarmaError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise KarmaError(f"{path}: alias file must be a JSON object of name -> name")
    return data


# ====================================================================== presets & CSV
def load_preset(name: str) -> ScoreTable:
    """A preset shipped with the package, ids mapped to the response dataset's model names."""
    if name not in PRESETS:
        raise KarmaError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    base = presets_dir()
    table = read_csv(base / f"{name}.csv")
    meta = json.loads((base / f"{name}.json").read_text(encoding="utf-8"))
    table = apply_aliases(table, meta.get("aliases", {}))
    return ScoreTable(
        table.models,
        table.benchmarks,
        table.values,
        table.display_names,
        table.provenance,
        f"preset:{name}",
        tuple(meta.get("known_unscored", ())),
        [],
        dict(meta.get("units") or table.units),
    )


def read_csv(path: str | Path) -> ScoreTable:
    """Read ``model,<benchmark>,...``; every cell must be a finite number."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise KarmaError(f"scores file does not exist: {path}") from exc
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise KarmaError(f"{path}:{line}: not valid UTF-8 text (byte {exc.start}); save the CSV as UTF-8") from exc
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise KarmaError(f"{path}: empty CSV")
    header = [h.strip() for h in rows[0]]
    if len(header) < 2 or header[0].lower() != "model":
        raise KarmaError(f"{path}: first header must be 'model' followed by benchmark names, got {header!r}")
    benches = header[1:]
    models: list[str] = []
    values: list[list[float]] = []
    units: dict[str, str] = {}
    body = list(enumerate(rows[1:], start=2))
    if body and body[0][1] and body[0][1][0].strip().lower() == "unit":
        line_no, row = body.pop(0)
        units = {b: c.strip().lower() for b, c in zip(benches, row[1:], strict=False)}
    for line_no, row in body:
        if len(row) != len(header):
            raise KarmaError(f"{path}:{line_no}: expected {len(header)} fields, got {len(row)}")
        model = row[0].strip()
        if not model:
            raise KarmaError(f"{path}:{line_no}: empty model name")
        if model in models:
            raise KarmaError(f"{path}:{line_no}: duplicate model name {model!r}")
        vals = []
        for bench, cell in zip(benches, row[1:], strict=False):
            try:
                v = float(cell)
            except ValueError as exc:
                raise KarmaError(f"{path}:{line_no}: {bench} of {model!r} is not a number: {cell!r}") from exc
            if not math.isfinite(v):
                raise KarmaError(f"{path}:{line_no}: {bench} of {model!r} is not finite: {cell!r}")
            vals.append(v)
        models.append(model)
        values.append(vals)
    if not models:
        raise KarmaError(f"{path}: no model rows")
    prov = {(m, b): Provenance(file=str(path), task=b) for m in models for b in benches}
    array = np.array(values)
    for j, b in enumerate(benches):  # without a 'unit' row: fractions if every value lies in [0, 1]
        units.setdefault(b, "fraction" if ((array[:, j] >= 0) & (array[:, j] <= 1)).all() else "raw")
    return ScoreTable(models, benches, array, {}, prov, str(path), (), [], units)


# ====================================================================== lm-eval results
