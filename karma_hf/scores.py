"""ScoreTable: origin models × benchmarks, with where every number came from.

Readers (all through :func:`load_scores`):

- **lm-eval results**: a folder (searched recursively for ``results*.json``), one results file,
  or a list of them. One model per file, named by ``model_name`` or ``config.model_args``'
  ``pretrained`` (dict in lm-eval 0.4.13, ``"k=v,..."`` string in older 0.4.x), or explicitly
  with ``NAME=PATH``. By default the six karma tasks are read with these metric keys
  (:data:`KARMA_TASKS`):

  ===================== ===============================
  task                  metric key
  ===================== ===============================
  karma_ifeval          ``prompt_level_strict_acc,none``
  karma_mmlu_stem       ``exact_match,strict-match``
  karma_mmlu_pro        ``exact_match,strict-match``
  karma_hellaswag       ``exact_match,strict-match``
  karma_arc_easy        ``exact_match,strict-match``
  karma_arc_challenge   ``exact_match,strict-match``
  ===================== ===============================

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
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from karma_hf.errors import KarmaError
from karma_hf.resources import presets_dir

KARMA_TASKS: dict[str, str] = {
    "karma_ifeval": "prompt_level_strict_acc,none",
    "karma_mmlu_stem": "exact_match,strict-match",
    "karma_mmlu_pro": "exact_match,strict-match",
    "karma_hellaswag": "exact_match,strict-match",
    "karma_arc_easy": "exact_match,strict-match",
    "karma_arc_challenge": "exact_match,strict-match",
}

#: Capability groups of the paper's Table 1 (used by plots and reports).
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "knowledge": ("karma_mmlu_stem", "karma_mmlu_pro"),
    "reasoning": ("karma_arc_easy", "karma_arc_challenge", "karma_hellaswag"),
    "instruction-following": ("karma_ifeval",),
}

#: Usual metric of well-known lm-eval tasks, used when ``--benchmark TASK`` names no metric.
KNOWN_METRICS: dict[str, str] = {
    **KARMA_TASKS,
    "ifeval": "prompt_level_strict_acc,none",
    "leaderboard_ifeval": "prompt_level_strict_acc,none",
    "leaderboard_mmlu_pro": "acc,none",
    "mmlu_pro": "exact_match,custom-extract",
    "mmlu": "acc,none",
    "mmlu_stem": "acc,none",
    "hellaswag": "acc_norm,none",
    "arc_easy": "acc_norm,none",
    "arc_challenge": "acc_norm,none",
    "leaderboard_arc_challenge": "acc_norm,none",
}

PRESETS: dict[str, str] = {
    "ultrafeedback-paper": "Table 3 of the KARMA paper: 16 UltraFeedback origin models",
}

_SKIP_KEYS = {"alias", "name", "sample_len", "sample_count", " "}


@dataclass(frozen=True)
class Provenance:
    """Where one cell came from."""

    file: str | None = None
    task: str | None = None
    metric: str | None = None
    lm_eval_version: str | None = None
    limit: float | int | None = None
    date: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class ScoreTable:
    """Models × benchmarks, floats in each benchmark's own unit."""

    models: list[str]
    benchmarks: list[str]
    values: np.ndarray
    display_names: dict[str, str] = field(default_factory=dict)
    provenance: dict[tuple[str, str], Provenance] = field(default_factory=dict)
    source: str = ""
    known_unscored: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64).reshape(len(self.models), len(self.benchmarks))
        _check_unique(self.models, "model", self.source)
        _check_unique(self.benchmarks, "benchmark", self.source)
        bad = np.argwhere(~np.isfinite(self.values))
        if bad.size:
            i, j = bad[0]
            raise KarmaError(f"{self.source or 'score table'}: score of model {self.models[i]!r} on "
                             f"{self.benchmarks[j]!r} is not a finite number")

    # -------------------------------------------------------------- accessors
    def display(self, model: str) -> str:
        return self.display_names.get(model, model)

    def score(self, model: str, benchmark: str) -> float:
        return float(self.values[self.models.index(model), self.benchmarks.index(benchmark)])

    def subset(self, models: Sequence[str]) -> ScoreTable:
        idx = [self.models.index(m) for m in models]
        return ScoreTable(list(models), list(self.benchmarks), self.values[idx],
                          {m: self.display(m) for m in models},
                          {k: v for k, v in self.provenance.items() if k[0] in models},
                          self.source, self.known_unscored, list(self.notes))

    def drop_benchmarks(self, drop: Sequence[str]) -> ScoreTable:
        keep = [j for j, b in enumerate(self.benchmarks) if b not in set(drop)]
        benches = [self.benchmarks[j] for j in keep]
        return ScoreTable(list(self.models), benches, self.values[:, keep], dict(self.display_names),
                          {k: v for k, v in self.provenance.items() if k[1] in benches},
                          self.source, self.known_unscored, list(self.notes))

    # -------------------------------------------------------------- export
    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "benchmarks": list(self.benchmarks),
            "models": list(self.models),
            "display_names": {m: self.display(m) for m in self.models},
            "known_unscored": list(self.known_unscored),
            "scores": {m: {b: float(self.values[i, j]) for j, b in enumerate(self.benchmarks)}
                       for i, m in enumerate(self.models)},
            "provenance": {f"{m}|{b}": p.to_dict() for (m, b), p in sorted(self.provenance.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreTable:
        try:
            models = list(data["models"])
            benchmarks = list(data["benchmarks"])
            values = [[float(data["scores"][m][b]) for b in benchmarks] for m in models]
        except (KeyError, TypeError, ValueError) as exc:
            raise KarmaError(f"score table dict is malformed: missing or bad field {exc}") from None
        prov = {}
        for key, p in (data.get("provenance") or {}).items():
            m, _, b = key.partition("|")
            prov[(m, b)] = Provenance(**p)
        return cls(models, benchmarks, np.array(values, dtype=np.float64),
                   dict(data.get("display_names") or {}), prov, str(data.get("source", "")),
                   tuple(data.get("known_unscored") or ()))

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["model", *self.benchmarks])
        for i, m in enumerate(self.models):
            w.writerow([m, *(_fmt(v) for v in self.values[i])])
        return buf.getvalue()

    def to_markdown(self) -> str:
        head = "| model | " + " | ".join(self.benchmarks) + " |"
        sep = "| --- |" + " ---: |" * len(self.benchmarks)
        rows = [f"| {self.display(m)} | " + " | ".join(_fmt(v) for v in self.values[i]) + " |"
                for i, m in enumerate(self.models)]
        return "\n".join([head, sep, *rows])


def _fmt(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1 else f"{v:.2f}"


def _check_unique(items: Sequence[str], what: str, where: str) -> None:
    seen: set[str] = set()
    for it in items:
        if it in seen:
            raise KarmaError(f"{where or 'score table'}: duplicate {what} name {it!r}")
        seen.add(it)


# ====================================================================== entry point
def load_scores(spec: str | Path | Sequence[str | Path], *,
                benchmarks: Mapping[str, str | None] | Sequence[str] | None = None,
                allow_missing: bool = False,
                aliases: Mapping[str, str] | str | Path | None = None) -> ScoreTable:
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
        name, path = _split_named(text)
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


def _split_named(text: str) -> tuple[str | None, Path]:
    if "=" in text and not Path(text).exists():
        name, _, path = text.partition("=")
        if not name.strip():
            raise KarmaError(f"empty model name in {text!r} (expected NAME=PATH)")
        return name.strip(), Path(path).expanduser()
    return None, Path(text).expanduser()


def _parse_benchmarks(spec: Mapping[str, str | None] | Sequence[str] | None) -> dict[str, str | None]:
    if spec is None:
        return dict(KARMA_TASKS)
    if isinstance(spec, Mapping):
        out = dict(spec)
    else:
        out = {}
        for s in spec:
            task, _, metric = str(s).partition(":")
            if not task:
                raise KarmaError(f"bad --benchmark value {s!r}; expected TASK[:METRIC]")
            out[task] = metric or None
    if not out:
        raise KarmaError("no benchmarks selected")
    return out


def _concat(tables: list[ScoreTable]) -> ScoreTable:
    benches = tables[0].benchmarks
    for t in tables[1:]:
        if t.benchmarks != benches:
            raise KarmaError(f"cannot combine score sources with different benchmarks: "
                             f"{benches} vs {t.benchmarks} ({t.source})")
    models = [m for t in tables for m in t.models]
    values = np.vstack([t.values for t in tables])
    display = {k: v for t in tables for k, v in t.display_names.items()}
    prov = {k: v for t in tables for k, v in t.provenance.items()}
    unscored = tuple(dict.fromkeys(u for t in tables for u in t.known_unscored))
    out = ScoreTable(models, list(benches), values, display, prov, " + ".join(t.source for t in tables),
                     unscored)
    out.notes = [n for t in tables for n in t.notes]
    return out


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
    out = ScoreTable(new, list(table.benchmarks), table.values, display, prov, table.source,
                     table.known_unscored)
    out.notes = list(table.notes)
    return out


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
    except FileNotFoundError:
        raise KarmaError(f"alias file does not exist: {path}") from None
    except json.JSONDecodeError as exc:
        raise KarmaError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
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
    table.source = f"preset:{name}"
    table.known_unscored = tuple(meta.get("known_unscored", ()))
    return table


def read_csv(path: str | Path) -> ScoreTable:
    """Read ``model,<benchmark>,...``; every cell must be a finite number."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise KarmaError(f"scores file does not exist: {path}") from None
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
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise KarmaError(f"{path}:{line_no}: expected {len(header)} fields, got {len(row)}")
        model = row[0].strip()
        if not model:
            raise KarmaError(f"{path}:{line_no}: empty model name")
        if model in models:
            raise KarmaError(f"{path}:{line_no}: duplicate model name {model!r}")
        vals = []
        for bench, cell in zip(benches, row[1:]):
            try:
                v = float(cell)
            except ValueError:
                raise KarmaError(f"{path}:{line_no}: {bench} of {model!r} is not a number: {cell!r}") from None
            if not math.isfinite(v):
                raise KarmaError(f"{path}:{line_no}: {bench} of {model!r} is not finite: {cell!r}")
            vals.append(v)
        models.append(model)
        values.append(vals)
    if not models:
        raise KarmaError(f"{path}: no model rows")
    prov = {(m, b): Provenance(file=str(path), task=b) for m in models for b in benches}
    return ScoreTable(models, benches, np.array(values), {}, prov, str(path))


# ====================================================================== lm-eval results
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
        raise KarmaError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise KarmaError(f"{path}: not a text JSON file") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict) or not (
            "config" in data or "configs" in data or "versions" in data):
        raise KarmaError(f"{path}: not an lm-eval results file (no 'results' and 'config'/'versions' keys)")
    config = data.get("config") or {}
    model = name or data.get("model_name") or _model_from_args(config.get("model_args"))
    if not model:
        raise KarmaError(f"{path}: cannot tell which model this is (no model_name or pretrained=); "
                         f"pass it as NAME={path}")
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
    return _ResultsFile(path, str(model), results, data.get("lm_eval_version"), config.get("limit"),
                        float(date))


def _metric_value(rf: _ResultsFile, task: str, metric: str | None) -> tuple[float, str]:
    row = rf.results[task]
    metrics = {k: v for k, v in row.items() if k not in _SKIP_KEYS and "_stderr" not in k}
    if metric is None:
        metric = KNOWN_METRICS.get(task)
        if metric is None:
            if len(metrics) == 1:
                metric = next(iter(metrics))
            else:
                raise KarmaError(f"{rf.path}: task {task!r} has several metrics "
                                 f"({', '.join(sorted(metrics))}); choose one with --benchmark {task}:METRIC")
    if metric not in row:
        plain = [k for k in metrics if k.split(",")[0] == metric]
        if len(plain) == 1:
            metric = plain[0]
        else:
            raise KarmaError(f"{rf.path}: task {task!r} has no metric {metric!r}; available: "
                             f"{', '.join(sorted(metrics)) or 'none'}")
    value = row[metric]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise KarmaError(f"{rf.path}: {task} {metric} of model {rf.model!r} is not a finite number: {value!r}")
    return float(value), metric


def read_lm_eval_results(specs: Sequence[tuple[str | None, Path]] | Sequence[str | Path], *,
                         benchmarks: Mapping[str, str | None] | None = None,
                         allow_missing: bool = False) -> ScoreTable:
    """Read lm-eval results files into a ScoreTable (see the module docstring)."""
    wanted = dict(benchmarks) if benchmarks is not None else dict(KARMA_TASKS)
    pairs: list[tuple[str | None, Path]] = []
    for s in specs:
        if isinstance(s, tuple):
            pairs.append(s)
        else:
            pairs.append(_split_named(str(s)))
    files: list[_ResultsFile] = []
    for name, path in pairs:
        if not path.exists():
            raise KarmaError(f"scores path does not exist: {path}")
        for f in _find_results(path):
            files.append(_parse_results_file(f, name))
    notes: list[str] = []
    models: list[str] = list(dict.fromkeys(f.model for f in files))
    cells: dict[tuple[str, str], tuple[float, Provenance]] = {}
    ignored: set[str] = set()
    for model in models:
        mine = sorted((f for f in files if f.model == model), key=lambda f: (f.date, str(f.path)))
        for task in wanted:
            having = [f for f in mine if task in f.results]
            if not having:
                continue
            newest = having[-1]
            if len(having) > 1:
                notes.append(f"model {model!r}: {task} found in {len(having)} results files; "
                             f"using the newest, {newest.path}")
            value, metric = _metric_value(newest, task, wanted[task])
            cells[(model, task)] = (value, Provenance(str(newest.path), task, metric,
                                                      newest.lm_eval_version, newest.limit, newest.date))
        for f in mine:
            ignored.update(t for t in f.results if t not in wanted)
    if ignored:
        notes.append(f"ignored results for tasks not selected: {', '.join(sorted(ignored))}")
    missing = {m: [t for t in wanted if (m, t) not in cells] for m in models}
    missing = {m: ts for m, ts in missing.items() if ts}
    benches = list(wanted)
    if missing:
        if not allow_missing:
            detail = "; ".join(f"{m}: {', '.join(ts)}" for m, ts in missing.items())
            raise KarmaError(f"missing benchmark results ({detail}); run them, or pass --allow-missing "
                             "to drop those benchmarks for all models")
        drop = sorted({t for ts in missing.values() for t in ts}, key=benches.index)
        notes.append(f"warning: dropped benchmark(s) missing for some models: {', '.join(drop)}")
        benches = [b for b in benches if b not in drop]
        if not benches:
            raise KarmaError("no benchmark has results for every model")
    values = np.array([[cells[(m, b)][0] for b in benches] for m in models], dtype=np.float64)
    prov = {(m, b): cells[(m, b)][1] for m in models for b in benches}
    source = ", ".join(str(p) for _, p in pairs)
    table = ScoreTable(models, benches, values, {}, prov, source)
    table.notes = notes
    return table
