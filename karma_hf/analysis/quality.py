"""Numbers of ``karma report``: is a preference set what KARMA claims? Measured mode by mode.

For each mode of a built set side by side with the ``rlaif`` baseline, from the pair columns
the builder writes (:data:`karma_hf.layout.PAIR_COLUMNS`):

* **Response Quality Gap** (KARMA paper, §1): ``|score_chosen - score_rejected|`` on the source's
  own per-instance ratings (mean, median, distribution), and the share of pairs where those
  ratings *agree* with the pair's label (chosen rated higher), *disagree* (chosen rated lower)
  or *tie*. The ``rlaif`` baseline picks chosen by these very ratings, so it agrees by
  construction; for kinship modes agreement is an independent check of the S_pref label.
* **Kinship** of the pairs (cosine; mean, histogram) and the **S_pref gap** (chosen - rejected).
* **Factors** (PROFILE-style, :mod:`karma_hf.analysis.factors`): chosen-vs-rejected differences
  in length, list items, headers, code blocks, bold spans, refusal and hedging phrases.
* **Model pairs**: how often each (chosen model, rejected model) pair is used.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from karma_hf import __version__
from karma_hf.analysis.factors import FACTOR_LABELS, FACTORS, compare, factor_arrays, last_assistant_text
from karma_hf.errors import KarmaError
from karma_hf.karma_set import KarmaSet
from karma_hf.layout import BASELINE_MODE, PAIR_COLUMNS, PAIR_SPLITS, order_modes

BASELINE = BASELINE_MODE
REQUIRED_COLUMNS = PAIR_COLUMNS
TIE_EPS = 1e-9


@dataclass
class ModePairs:
    """The columns of one mode's pairs that the report needs (splits concatenated)."""

    mode: str
    chosen_text: list[str]
    rejected_text: list[str]
    chosen_model: list[str]
    rejected_model: list[str]
    kinship: np.ndarray
    s_pref_chosen: np.ndarray
    s_pref_rejected: np.ndarray
    score_chosen: np.ndarray
    score_rejected: np.ndarray
    splits: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.chosen_text)

    @classmethod
    def from_columns(cls, mode: str, cols: dict[str, list], splits: dict[str, int] | None = None) -> ModePairs:
        """Build from plain column lists (``chosen``/``rejected`` as message lists or strings)."""
        missing = [c for c in REQUIRED_COLUMNS if c not in cols]
        if missing:
            raise KarmaError(
                f"mode {mode!r}: missing column(s) {', '.join(missing)} "
                f"(expected the karma-hf pair columns: {', '.join(REQUIRED_COLUMNS)})"
            )

        def num(name: str) -> np.ndarray:
            return np.array([np.nan if v is None else float(v) for v in cols[name]], dtype=np.float64)

        return cls(
            mode=mode,
            chosen_text=[last_assistant_text(m) for m in cols["chosen"]],
            rejected_text=[last_assistant_text(m) for m in cols["rejected"]],
            chosen_model=[str(v) for v in cols["chosen_model"]],
            rejected_model=[str(v) for v in cols["rejected_model"]],
            kinship=num("kinship"),
            s_pref_chosen=num("s_pref_chosen"),
            s_pref_rejected=num("s_pref_rejected"),
            score_chosen=num("score_chosen"),
            score_rejected=num("score_rejected"),
            splits=dict(splits or {"all": len(cols["chosen"])}),
        )


# --------------------------------------------------------------------------- loading
def load_pairs(
    dataset: str | Path,
    modes: Sequence[str] | None = None,
    *,
    baseline: str | None = BASELINE,
    splits: Sequence[str] = PAIR_SPLITS,
    revision: str | None = None,
    require_baseline: bool = False,
) -> dict[str, ModePairs]:
    """Load the pair splits of each mode of a KARMA set (local folder or Hub id) through :class:`KarmaSet`.

    ``modes=None`` means every mode present. The ``baseline`` mode is added when present; with
    ``require_baseline`` (``karma report --baseline MODE``) a baseline the set lacks is an error.
    """
    path = Path(dataset)
    if path.exists() and not path.is_dir():
        raise KarmaError(f"{path}: not a dataset folder (expected DIR/<mode>/<split>-*.parquet)")
    if not path.exists() and (
        "/" not in str(dataset) or str(dataset).count("/") > 1 or str(dataset).startswith((".", "/"))
    ):
        raise KarmaError(f"{dataset}: no such folder, and not a Hub dataset id (user/name)")
    kset = KarmaSet(dataset, revision=revision)
    available = kset.configs()
    if not available and kset.local_path is None and kset.info["notes"]:
        raise KarmaError(f"{dataset}: no KARMA configs read from the Hub ({kset.info['notes'][0]})")
    if not available:
        raise KarmaError(
            f"{dataset}: no mode folders with {'/'.join(splits)} parquet files (expected DIR/<mode>/<split>-*.parquet)"
        )
    wanted = list(available) if not modes else list(dict.fromkeys(modes))
    unknown = [m for m in wanted if m not in available]
    if unknown:
        raise KarmaError(f"{dataset}: mode(s) {', '.join(unknown)} not found (available: {', '.join(available)})")
    if require_baseline and baseline and baseline not in available:
        raise KarmaError(f"--baseline {baseline}: {dataset} has no such mode (available: {', '.join(available)})")
    if baseline and baseline in available and baseline not in wanted:
        wanted.append(baseline)
    out: dict[str, ModePairs] = {}
    for mode in order_modes(wanted):
        tables = kset.read_columns(mode, splits, REQUIRED_COLUMNS)
        import pyarrow as pa

        table = pa.concat_tables(list(tables.values()))
        out[mode] = ModePairs.from_columns(
            mode,
            {c: table.column(c).to_pylist() for c in REQUIRED_COLUMNS},
            {s: t.num_rows for s, t in tables.items()},
        )
    return out


# --------------------------------------------------------------------------- numbers
def _stats(x: np.ndarray) -> dict[str, float | None]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"n": 0, "mean": None, "median": None, "std": None, "p10": None, "p90": None, "min": None, "max": None}
    return {
        "n": int(x.size),
        "mean": float(x.mean()),
        "median": float(np.median(x)),
        "std": float(x.std()),
        "p10": float(np.percentile(x, 10)),
        "p90": float(np.percentile(x, 90)),
        "min": float(x.min()),
        "max": float(x.max()),
    }


def _hist(x: np.ndarray, edges: np.ndarray) -> list[int]:
    x = x[np.isfinite(x)]
    x = np.clip(x, edges[0], edges[-1])
    return [int(v) for v in np.histogram(x, bins=edges)[0]]


def gap_edges(max_gap: float) -> np.ndarray:
    """Histogram edges for |rating gap|: 0.25 wide up to 4 (mean-of-aspects scale), 0.5 beyond."""
    top = max(1.0, math.ceil(max_gap + 1e-9))
    width = 0.25 if top <= 4 else 0.5
    return np.round(np.arange(0.0, top + width / 2, width), 6)


KINSHIP_EDGES = np.round(np.arange(-1.0, 1.0001, 0.05), 6)


def analyze_mode(p: ModePairs, *, gap_bins: np.ndarray | None = None) -> dict[str, Any]:
    """Every number of one mode (see the module docstring)."""
    n = len(p)
    rated = np.isfinite(p.score_chosen) & np.isfinite(p.score_rejected)
    diff = (p.score_chosen - p.score_rejected)[rated]
    gap = np.abs(diff)
    agree = int((diff > TIE_EPS).sum())
    disagree = int((diff < -TIE_EPS).sum())
    tie = int(diff.size - agree - disagree)
    nr = max(1, int(diff.size))
    gap_bins = gap_edges(float(gap.max()) if gap.size else 0.0) if gap_bins is None else gap_bins
    s_gap = p.s_pref_chosen - p.s_pref_rejected
    kin = p.kinship
    kin_finite = kin[np.isfinite(kin)]
    kmin = min(0.0, math.floor(float(kin_finite.min()) * 20) / 20) if kin_finite.size else 0.0
    kedges = KINSHIP_EDGES[kmin - 1e-9 <= KINSHIP_EDGES]
    pair_counts = Counter(zip(p.chosen_model, p.rejected_model, strict=False))
    models = sorted(set(p.chosen_model) | set(p.rejected_model))
    factors = compare(factor_arrays(p.chosen_text), factor_arrays(p.rejected_text))
    return {
        "pairs": n,
        "splits": p.splits,
        "rated_pairs": int(diff.size),
        "rating_gap": {
            **_stats(gap),
            "share_at_least_1": float((gap >= 1 - TIE_EPS).mean()) if gap.size else None,
            "share_at_least_2": float((gap >= 2 - TIE_EPS).mean()) if gap.size else None,
            "histogram": {"edges": [float(e) for e in gap_bins], "counts": _hist(gap, gap_bins)},
        },
        "signed_rating_diff": _stats(diff),
        "agreement": {
            "agree": agree,
            "tie": tie,
            "disagree": disagree,
            "share_agree": agree / nr if diff.size else None,
            "share_tie": tie / nr if diff.size else None,
            "share_disagree": disagree / nr if diff.size else None,
        },
        "kinship": {
            **_stats(kin),
            "missing": int((~np.isfinite(kin)).sum()),
            "histogram": {"edges": [float(e) for e in kedges], "counts": _hist(kin, kedges)},
        },
        "s_pref_gap": {**_stats(s_gap), "missing": int((~np.isfinite(s_gap)).sum())},
        "factors": factors,
        "model_pairs": {
            "distinct": len(pair_counts),
            "models": models,
            "top": [
                {"chosen": c, "rejected": r, "count": k, "share": k / max(1, n)}
                for (c, r), k in sorted(pair_counts.items(), key=lambda kv: (-kv[1], kv[0]))
            ],
        },
    }


def quality_report(
    pairs: dict[str, ModePairs], *, dataset: str = "", baseline: str | None = BASELINE
) -> dict[str, Any]:
    """The full report dict (what ``report.json`` holds) for already loaded pairs."""
    if not pairs:
        raise KarmaError("report: no modes to analyse")
    all_gaps = [np.abs(p.score_chosen - p.score_rejected) for p in pairs.values()]
    max_gap = max((float(np.nanmax(g)) for g in all_gaps if np.isfinite(g).any()), default=0.0)
    edges = gap_edges(max_gap)  # one binning for every mode, so histograms compare
    modes = {m: analyze_mode(p, gap_bins=edges) for m, p in pairs.items()}
    base = baseline if baseline in modes else None
    comparison = {}
    if base:
        b = modes[base]["rating_gap"]["mean"]
        for m, r in modes.items():
            if m == base:
                continue
            g = r["rating_gap"]["mean"]
            comparison[m] = {
                "mean_gap": g,
                "baseline_mean_gap": b,
                "gap_difference": None if g is None or b is None else g - b,
                "gap_ratio": None if g is None or not b else g / b,
                "smaller_gap_than_baseline": None if g is None or b is None else bool(g < b),
            }
    return {
        "karma_hf_version": __version__,
        "dataset": dataset,
        "baseline": base,
        "modes": modes,
        "comparison_with_baseline": comparison,
        "factors": {f: FACTOR_LABELS[f] for f in FACTORS},
        "definitions": {
            "rating_gap": "|score_chosen - score_rejected| on the source's own per-instance ratings",
            "agree": "score_chosen > score_rejected (the instance ratings agree with the pair's label)",
            "disagree": "score_chosen < score_rejected",
            "tie": "score_chosen == score_rejected",
            "s_pref_gap": "s_pref_chosen - s_pref_rejected",
            "share_chosen_more": (
                "share of pairs where the chosen response has more of the factor than the rejected one"
            ),
        },
    }
