"""``ScoreTable``: origin models × benchmarks, with where every number came from.

The readers (:func:`karma_hf.scores.load_scores`: lm-eval results, CSV, presets) all produce
this table; kinship, plots, cards and reports consume it. Only the standard library and numpy.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from karma_hf.errors import KarmaError
from karma_hf.markdown import markdown_table

#: The value range of each unit a score table knows.
UNIT_RANGES: dict[str, tuple[float, float]] = {
    "fraction": (0.0, 1.0),
    "percent": (0.0, 100.0),
    "raw": (-math.inf, math.inf),
}

#: Default metric of each karma task. IFEval: instruction-level loose accuracy, the metric the
#: paper's Table 3 IFEval column was measured with (its GPT-4 value, 85.37, is GPT-4's published
#: inst-level loose score), so our own runs and the ``ultrafeedback-paper`` preset measure the same
#: thing. Multiple choice: the robust extractor (``robust-extract``, see tasks/utils.py), so a model
#: is scored on its answer, not on writing "The answer is (X)" verbatim; ``strict-match`` is kept
#: in every results file as the strict secondary (``--benchmark karma_arc_easy:exact_match,strict-match``).
KARMA_TASKS: dict[str, str] = {
    "karma_ifeval": "inst_level_loose_acc,none",
    "karma_mmlu_stem": "exact_match,robust-extract",
    "karma_mmlu_pro": "exact_match,robust-extract",
    "karma_hellaswag": "exact_match,robust-extract",
    "karma_arc_easy": "exact_match,robust-extract",
    "karma_arc_challenge": "exact_match,robust-extract",
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
    #: Unit of each benchmark: ``fraction`` (0..1, lm-eval's metrics), ``percent`` (0..100, most
    #: printed tables) or ``raw`` (any other scale). Missing = ``raw``.
    units: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64).reshape(len(self.models), len(self.benchmarks))
        _check_unique(self.models, "model", self.source)
        _check_unique(self.benchmarks, "benchmark", self.source)
        bad = np.argwhere(~np.isfinite(self.values))
        if bad.size:
            i, j = bad[0]
            raise KarmaError(
                f"{self.source or 'score table'}: score of model {self.models[i]!r} on "
                f"{self.benchmarks[j]!r} is not a finite number"
            )
        for j, bench in enumerate(self.benchmarks):
            unit = self.units.setdefault(bench, "raw")
            if unit not in UNIT_RANGES:
                raise KarmaError(
                    f"{self.source or 'score table'}: unknown unit {unit!r} of {bench!r}; "
                    f"use one of {', '.join(UNIT_RANGES)}"
                )
            lo, hi = UNIT_RANGES[unit]
            outside = np.flatnonzero((self.values[:, j] < lo) | (self.values[:, j] > hi))
            if outside.size:
                i = int(outside[0])
                raise KarmaError(
                    f"{self.source or 'score table'}: {bench} of model {self.models[i]!r} is "
                    f"{self.values[i, j]:g}, outside the {unit} range [{lo:g}, {hi:g}]"
                )

    # -------------------------------------------------------------- accessors
    def display(self, model: str) -> str:
        return self.display_names.get(model, model)

    def score(self, model: str, benchmark: str) -> float:
        return float(self.values[self.models.index(model), self.benchmarks.index(benchmark)])

    def subset(self, models: Sequence[str]) -> ScoreTable:
        idx = [self.models.index(m) for m in models]
        return ScoreTable(
            list(models),
            list(self.benchmarks),
            self.values[idx],
            {m: self.display(m) for m in models},
            {k: v for k, v in self.provenance.items() if k[0] in models},
            self.source,
            self.known_unscored,
            list(self.notes),
            dict(self.units),
        )

    def drop_benchmarks(self, drop: Sequence[str]) -> ScoreTable:
        keep = [j for j, b in enumerate(self.benchmarks) if b not in set(drop)]
        benches = [self.benchmarks[j] for j in keep]
        return ScoreTable(
            list(self.models),
            benches,
            self.values[:, keep],
            dict(self.display_names),
            {k: v for k, v in self.provenance.items() if k[1] in benches},
            self.source,
            self.known_unscored,
            list(self.notes),
            {b: u for b, u in self.units.items() if b in benches},
        )

    def to_fractions(self) -> ScoreTable:
        """The same table with every ``percent`` benchmark divided by 100 (a note says which).

        ``raw`` benchmarks cannot be placed on the 0..1 scale and stay as they are; combining
        them with another source is refused by :func:`karma_hf.scores.load_scores`.
        """
        scale = np.array([100.0 if self.units.get(b) == "percent" else 1.0 for b in self.benchmarks])
        if (scale == 1.0).all():
            return self
        converted = [b for b, s in zip(self.benchmarks, scale, strict=True) if s != 1.0]
        out = ScoreTable(
            list(self.models),
            list(self.benchmarks),
            self.values / scale,
            dict(self.display_names),
            dict(self.provenance),
            self.source,
            self.known_unscored,
            list(self.notes),
            {b: ("fraction" if b in converted else u) for b, u in self.units.items()},
        )
        out.notes.append(f"{self.source}: converted {', '.join(converted)} from percent to fraction (/100)")
        return out

    # -------------------------------------------------------------- export
    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "benchmarks": list(self.benchmarks),
            "models": list(self.models),
            "display_names": {m: self.display(m) for m in self.models},
            "known_unscored": list(self.known_unscored),
            "units": {b: self.units.get(b, "raw") for b in self.benchmarks},
            "scores": {
                m: {b: float(self.values[i, j]) for j, b in enumerate(self.benchmarks)}
                for i, m in enumerate(self.models)
            },
            "provenance": {f"{m}|{b}": p.to_dict() for (m, b), p in sorted(self.provenance.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreTable:
        try:
            models = list(data["models"])
            benchmarks = list(data["benchmarks"])
            values = [[float(data["scores"][m][b]) for b in benchmarks] for m in models]
        except (KeyError, TypeError, ValueError) as exc:
            raise KarmaError(f"score table dict is malformed: missing or bad field {exc}") from exc
        prov = {}
        for key, p in (data.get("provenance") or {}).items():
            m, _, b = key.partition("|")
            prov[(m, b)] = Provenance(**p)
        return cls(
            models,
            benchmarks,
            np.array(values, dtype=np.float64),
            dict(data.get("display_names") or {}),
            prov,
            str(data.get("source", "")),
            tuple(data.get("known_unscored") or ()),
            [],
            dict(data.get("units") or {}),
        )

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["model", *self.benchmarks])
        for i, m in enumerate(self.models):
            w.writerow([m, *(_fmt(v) for v in self.values[i])])
        return buf.getvalue()

    def to_markdown(self) -> str:
        rows = [[self.display(m), *(_fmt(v) for v in self.values[i])] for i, m in enumerate(self.models)]
        return markdown_table(["model", *self.benchmarks], rows, align="l" + "r" * len(self.benchmarks))


def _fmt(v: float) -> str:
    return f"{v:.4g}" if abs(v) < 1 else f"{v:.2f}"


def _check_unique(items: Sequence[str], what: str, where: str) -> None:
    seen: set[str] = set()
    for it in items:
        if it in seen:
            raise KarmaError(f"{where or 'score table'}: duplicate {what} name {it!r}")
        seen.add(it)


# ====================================================================== entry point
