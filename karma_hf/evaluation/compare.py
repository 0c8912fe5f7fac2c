"""``karma compare``: karma-task scores of several trained runs side by side (paper Fig. 5/6, Tab. 2/4).

Each run is an ``output_dir`` of ``karma train`` (or any run with ``KarmaCallback``): its scores
are read from the standard lm-eval results under ``RUN_DIR/karma_eval/`` with
:func:`karma_hf.scores.load_scores`, and its KARMA mode, stage and base model from
``RUN_DIR/karma_provenance.json``. Runs are grouped by mode, then stage (``sft``, ``dpo``, ``kto``,
``orpo``... compare side by side); the baseline run (typically the
instance-wise ``rlaif`` set) is marked, and every other run gets its difference to it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from karma_hf.errors import KarmaError
from karma_hf.layout import BASELINE_MODE, modes
from karma_hf.markdown import markdown_table

MODE_LABELS = {"rlaif": "RLAIF (instance-wise)", "score": "K_score", "sim": "K_sim", "score_sim": "K_(score,sim)"}
AVERAGE = "average"


@dataclass
class RunScores:
    """One run's karma-task scores and what it was trained on."""

    run_dir: Path
    label: str
    mode: str | None
    stage: str | None
    base_model: str | None
    scores: dict[str, float]
    is_baseline: bool = False


@dataclass
class Comparison:
    """Runs × benchmarks (common benchmarks only, plus their mean in ``average``)."""

    runs: list[RunScores]
    benchmarks: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> RunScores | None:
        return next((r for r in self.runs if r.is_baseline), None)

    def value(self, run: RunScores, bench: str) -> float:
        if bench == AVERAGE:
            return float(np.mean([run.scores[b] for b in self.benchmarks]))
        return run.scores[bench]

    @property
    def columns(self) -> list[str]:
        return [*self.benchmarks, AVERAGE]

    def delta(self, run: RunScores, bench: str) -> float | None:
        base = self.baseline
        if base is None or run is base:
            return None
        return self.value(run, bench) - self.value(base, bench)

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmarks": self.benchmarks,
            "notes": self.notes,
            "runs": [
                {
                    "run_dir": str(r.run_dir),
                    "label": r.label,
                    "mode": r.mode,
                    "stage": r.stage,
                    "base_model": r.base_model,
                    "baseline": r.is_baseline,
                    "scores": {c: self.value(r, c) for c in self.columns},
                    "delta_vs_baseline": {c: self.delta(r, c) for c in self.columns}
                    if self.baseline is not None and not r.is_baseline
                    else None,
                }
                for r in self.runs
            ],
        }

    def to_markdown(self) -> str:
        rows = []
        for r in self.runs:
            cells = []
            for c in self.columns:
                d = self.delta(r, c)
                cells.append(f"{self.value(r, c):.4f}" + (f" ({d:+.4f})" if d is not None else ""))
            name = f"{r.label} (baseline)" if r.is_baseline else r.label
            rows.append([name, r.mode or "?", r.stage or "?", *cells])
        return markdown_table(["run", "mode", "stage", *self.columns], rows, align="lll" + "r" * len(self.columns))


def _provenance(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "karma_provenance.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise KarmaError(f"{path}: not valid JSON ({exc.msg})") from exc
    except UnicodeDecodeError as exc:
        raise KarmaError(f"{path}: not valid UTF-8 text (byte {exc.start})") from exc
    if not isinstance(data, dict):
        raise KarmaError(f"{path}: expected a JSON object (as `karma train` writes), got {type(data).__name__}")
    for key, kind in (("dataset", dict), ("run_config", dict), ("stage", str)):
        if data.get(key) is not None and not isinstance(data[key], kind):
            raise KarmaError(f"{path}: field {key!r} is {type(data[key]).__name__}, expected {kind.__name__}")
    return data


def load_run(run_dir: str | Path, *, is_baseline: bool = False) -> RunScores:
    """Read one run directory (``karma_eval/`` results + ``karma_provenance.json``)."""
    from karma_hf.scores import load_scores

    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise KarmaError(f"run directory not found: {run_dir}")
    eval_dir = run_dir / "karma_eval"
    if not eval_dir.is_dir():
        raise KarmaError(
            f"{run_dir}: no karma_eval/ folder; train with --karma_eval_tasks karma "
            "(or run `lm_eval ... --output_path RUN_DIR/karma_eval`)"
        )
    table = load_scores(str(eval_dir), allow_missing=True)
    if len(table.models) != 1:
        raise KarmaError(
            f"{eval_dir}: results of {len(table.models)} models ({', '.join(table.models)}); "
            "expected the one trained model"
        )
    prov = _provenance(run_dir)
    dataset = prov.get("dataset") or {}
    model_config = (prov.get("run_config") or {}).get("model")
    model = model_config.get("model_name_or_path") if isinstance(model_config, dict) else None
    scores = {b: float(table.values[0, j]) for j, b in enumerate(table.benchmarks)}
    mode = dataset.get("config") if isinstance(dataset.get("config"), str) else None
    return RunScores(run_dir, run_dir.name, mode, prov.get("stage"), model, scores, is_baseline)


def compare_runs(run_dirs: Sequence[str | Path], *, baseline: str | Path | None = None) -> Comparison:
    """Load the runs (the baseline is added when not among them) and align their benchmarks."""
    from karma_hf.scores import KARMA_TASKS

    if not run_dirs and baseline is None:
        raise KarmaError("no run directories given")
    base_path = Path(baseline).expanduser().resolve() if baseline is not None else None
    runs: list[RunScores] = []
    seen: set[Path] = set()
    for d in ([baseline] if baseline is not None else []) + list(run_dirs):
        key = Path(d).expanduser().resolve()
        if key in seen:
            continue
        seen.add(key)
        runs.append(load_run(d, is_baseline=key == base_path))
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):  # same folder name in different parents: use parent/name
        for r in runs:
            r.label = f"{r.run_dir.parent.name}/{r.run_dir.name}"
    notes: list[str] = []
    order = [b for b in KARMA_TASKS if all(b in r.scores for r in runs)]
    extra = sorted({b for r in runs for b in r.scores} - set(order) - set(KARMA_TASKS))
    common = order + [b for b in extra if all(b in r.scores for r in runs)]
    for r in runs:
        dropped = sorted(set(r.scores) - set(common))
        if dropped:
            notes.append(f"{r.label}: not compared (missing in other runs): {', '.join(dropped)}")
    if not common:
        raise KarmaError("the runs share no evaluated benchmark")
    order = [BASELINE_MODE, *(m for m in modes() if m != BASELINE_MODE)]  # the baseline first, as in Fig. 5/6
    rank = {m: i for i, m in enumerate(order)}
    runs.sort(
        key=lambda r: (not r.is_baseline, rank.get(r.mode or "", len(rank)), r.mode or "", r.stage or "", r.label)
    )
    return Comparison(runs, common, notes)


def _mode_stage(run: RunScores) -> str:
    """``K_sim`` or ``K_sim, kto``: the mode's label, and the stage when the provenance names it."""
    mode = MODE_LABELS.get(run.mode or "", run.mode or "?")
    return f"{mode}, {run.stage}" if run.stage else mode


def comparison_figure(cmp: Comparison, *, title: str | None = None) -> Any:
    """Grouped bar chart (benchmarks on x, one bar per run): baseline red, KARMA runs in blues."""
    from karma_hf.analysis.style import pyplot

    plt = pyplot()
    cols = cmp.columns
    n = len(cmp.runs)
    width = 0.8 / max(n, 1)
    blues = plt.get_cmap("Blues")
    others = [r for r in cmp.runs if not r.is_baseline]
    fig, ax = plt.subplots(figsize=(max(7.0, 1.3 * len(cols) + 0.25 * n), 4.6))
    x = np.arange(len(cols))
    k = 0
    for i, r in enumerate(cmp.runs):
        vals = [cmp.value(r, c) for c in cols]
        if r.is_baseline:
            color, hatch = "#d62728", "//"
            label = f"{r.label} — {_mode_stage(r)} (baseline)"
        else:
            color = blues(0.45 + 0.5 * (k / max(len(others) - 1, 1)))
            hatch, k = None, k + 1
            label = f"{r.label} — {_mode_stage(r)}"
        ax.bar(
            x - 0.4 + width * (i + 0.5),
            vals,
            width,
            color=color,
            hatch=hatch,
            edgecolor="white" if not r.is_baseline else "#7f1d1d",
            linewidth=0.6,
            label=label,
        )
    ax.set_xticks(x, [c.removeprefix("karma_") for c in cols], rotation=20, ha="right")
    ax.set_ylabel("score (task metric)")
    ax.set_xlabel("karma benchmark")
    top = max(cmp.value(r, c) for r in cmp.runs for c in cols)
    ax.set_ylim(0, max(1.0, top * 1.1) if top > 0 else 1.0)
    ax.set_title(title or "KARMA-task scores of trained runs (baseline hatched red)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=min(2, n), frameon=False)
    fig.tight_layout()
    return fig


def plot_comparison(cmp: Comparison, path: str | Path, *, title: str | None = None) -> Path:
    """Write :func:`comparison_figure` to ``path`` (PNG, SVG or PDF by suffix)."""
    from karma_hf.analysis.style import save

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in ("png", "svg", "pdf"):
        raise KarmaError(f"--plot {path}: unknown image type {path.suffix or '(none)'!r}; use .png, .svg or .pdf")
    path.parent.mkdir(parents=True, exist_ok=True)
    save(comparison_figure(cmp, title=title), path, dpi=150, fmt=fmt, bbox_inches="tight")
    return path
