"""``karma report``: is a preference set what KARMA claims? Measure it, mode by mode.

For each mode of a built dataset (``score``, ``sim``, ``score_sim``, ...) side by side with the
``rlaif`` baseline, from the pair columns the builder writes:

* **Response Quality Gap** (KARMA paper, §1): ``|score_chosen - score_rejected|`` on the source's
  own per-instance ratings (mean, median, distribution), and the share of pairs where those
  ratings *agree* with the pair's label (chosen rated higher), *disagree* (chosen rated lower)
  or *tie*. The ``rlaif`` baseline picks chosen by these very ratings, so it agrees by
  construction; for kinship modes agreement is an independent check of the S_pref label.
* **Kinship** of the pairs (cosine; mean, histogram) and the **S_pref gap** (chosen - rejected).
* **Factors** (PROFILE-style, :mod:`karma_hf.factors`): chosen-vs-rejected differences in length,
  list items, headers, code blocks, bold spans, refusal and hedging phrases, and for each factor
  the share of pairs where chosen has more of it, so a user sees whether a set teaches
  "longer wins" rather than "better wins".
* **Model pairs**: how often each (chosen model, rejected model) pair is used, as a heatmap.

Output: ``report.md`` (Markdown with embedded PNG charts under ``figures/``), ``report.json``
(every number, deterministic) and a rich terminal summary (:func:`summary_table`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from karma_hf import __version__
from karma_hf.errors import KarmaError
from karma_hf.factors import FACTOR_LABELS, FACTORS, compare, factor_arrays, last_assistant_text

BASELINE = "rlaif"
MODE_ORDER: tuple[str, ...] = ("score", "sim", "score_sim", "rlaif")
PAIR_SPLITS: tuple[str, ...] = ("train", "test")
REQUIRED_COLUMNS: tuple[str, ...] = (
    "chosen", "rejected", "chosen_model", "rejected_model", "kinship",
    "s_pref_chosen", "s_pref_rejected", "score_chosen", "score_rejected",
)
TIE_EPS = 1e-9
MODE_COLORS = {"score": "#1f77b4", "sim": "#2ca02c", "score_sim": "#9467bd", "rlaif": "#d62728"}
_EXTRA_COLORS = ["#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]


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
            raise KarmaError(f"mode {mode!r}: missing column(s) {', '.join(missing)} "
                             f"(expected the karma-hf pair columns: {', '.join(REQUIRED_COLUMNS)})")

        def num(name: str) -> np.ndarray:
            return np.array([np.nan if v is None else float(v) for v in cols[name]], dtype=np.float64)

        return cls(
            mode=mode,
            chosen_text=[last_assistant_text(m) for m in cols["chosen"]],
            rejected_text=[last_assistant_text(m) for m in cols["rejected"]],
            chosen_model=[str(v) for v in cols["chosen_model"]],
            rejected_model=[str(v) for v in cols["rejected_model"]],
            kinship=num("kinship"), s_pref_chosen=num("s_pref_chosen"), s_pref_rejected=num("s_pref_rejected"),
            score_chosen=num("score_chosen"), score_rejected=num("score_rejected"),
            splits=dict(splits or {"all": len(cols["chosen"])}),
        )


@dataclass
class ReportResult:
    """What :func:`run_report` wrote: the Markdown, the JSON, the figures, and the numbers."""

    out_dir: Path
    markdown: Path
    json: Path
    figures: list[Path]
    report: dict[str, Any]


# --------------------------------------------------------------------------- loading
def _order_modes(modes: Sequence[str]) -> list[str]:
    known = [m for m in MODE_ORDER if m in modes]
    return known + sorted(m for m in modes if m not in MODE_ORDER)


def local_modes(folder: Path) -> list[str]:
    """Modes present in a dataset folder of the builder's layout (``DIR/<mode>/<split>-*.parquet``)."""
    found = [p.name for p in folder.iterdir()
             if p.is_dir() and any(next(p.glob(f"{s}-*.parquet"), None) for s in PAIR_SPLITS)]
    return _order_modes(found)


def _load_local(folder: Path, mode: str, splits: Sequence[str]) -> ModePairs:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables, counts = [], {}
    for split in splits:
        for path in sorted((folder / mode).glob(f"{split}-*.parquet")):
            try:
                schema = pq.read_schema(path)
            except Exception as exc:  # noqa: BLE001 - a corrupt file is a user error
                raise KarmaError(f"{path}: not a readable parquet file ({exc})") from None
            missing = [c for c in REQUIRED_COLUMNS if c not in schema.names]
            if missing:
                raise KarmaError(f"{path}: missing column(s) {', '.join(missing)}")
            t = pq.read_table(path, columns=list(REQUIRED_COLUMNS))
            tables.append(t)
            counts[split] = counts.get(split, 0) + t.num_rows
    if not tables:
        raise KarmaError(f"{folder / mode}: no {'/'.join(splits)} parquet files for mode {mode!r}")
    table = pa.concat_tables(tables)
    return ModePairs.from_columns(mode, {c: table.column(c).to_pylist() for c in REQUIRED_COLUMNS}, counts)


def _load_hub(repo_id: str, mode: str, splits: Sequence[str], revision: str | None) -> ModePairs:
    import datasets

    try:
        dsd = datasets.load_dataset(repo_id, mode, revision=revision)
    except Exception as exc:  # noqa: BLE001 - surfaced as one line
        raise KarmaError(f"{repo_id}: cannot load config {mode!r} ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    present = [s for s in splits if s in dsd]
    if not present:
        raise KarmaError(f"{repo_id} config {mode!r}: none of the splits {', '.join(splits)} (has {', '.join(dsd)})")
    cols: dict[str, list] = {c: [] for c in REQUIRED_COLUMNS}
    counts = {}
    for s in present:
        ds = dsd[s]
        missing = [c for c in REQUIRED_COLUMNS if c not in ds.column_names]
        if missing:
            raise KarmaError(f"{repo_id} config {mode!r} split {s!r}: missing column(s) {', '.join(missing)}")
        for c in REQUIRED_COLUMNS:
            cols[c].extend(ds[c])
        counts[s] = len(ds)
    return ModePairs.from_columns(mode, cols, counts)


def load_pairs(dataset: str | Path, modes: Sequence[str] | None = None, *, baseline: str | None = BASELINE,
               splits: Sequence[str] = PAIR_SPLITS, revision: str | None = None) -> dict[str, ModePairs]:
    """Load the pair splits of each mode from a local dataset folder or a Hub dataset id.

    ``modes=None`` means every mode present. The ``baseline`` mode is added when present.
    """
    path = Path(dataset)
    if path.exists():
        if not path.is_dir():
            raise KarmaError(f"{path}: not a dataset folder (expected DIR/<mode>/<split>-*.parquet)")
        available = local_modes(path)
        if not available:
            raise KarmaError(f"{path}: no mode folders with {'/'.join(splits)} parquet files (expected DIR/<mode>/<split>-*.parquet)")
        loader = lambda m: _load_local(path, m, splits)  # noqa: E731
    else:
        if "/" not in str(dataset) or str(dataset).count("/") > 1 or str(dataset).startswith((".", "/")):
            raise KarmaError(f"{dataset}: no such folder, and not a Hub dataset id (user/name)")
        from datasets import get_dataset_config_names

        try:
            available = _order_modes(get_dataset_config_names(str(dataset), revision=revision))
        except Exception as exc:  # noqa: BLE001
            raise KarmaError(f"{dataset}: cannot read the Hub dataset's configs ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        loader = lambda m: _load_hub(str(dataset), m, splits, revision)  # noqa: E731
    wanted = list(available) if not modes else list(dict.fromkeys(modes))
    unknown = [m for m in wanted if m not in available]
    if unknown:
        raise KarmaError(f"{dataset}: mode(s) {', '.join(unknown)} not found (available: {', '.join(available)})")
    if baseline and baseline in available and baseline not in wanted:
        wanted.append(baseline)
    return {m: loader(m) for m in _order_modes(wanted)}


# --------------------------------------------------------------------------- numbers
def _stats(x: np.ndarray) -> dict[str, float | None]:
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {"n": 0, "mean": None, "median": None, "std": None, "p10": None, "p90": None, "min": None, "max": None}
    return {"n": int(x.size), "mean": float(x.mean()), "median": float(np.median(x)), "std": float(x.std()),
            "p10": float(np.percentile(x, 10)), "p90": float(np.percentile(x, 90)),
            "min": float(x.min()), "max": float(x.max())}


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
    kedges = KINSHIP_EDGES[KINSHIP_EDGES >= kmin - 1e-9]
    pair_counts = Counter(zip(p.chosen_model, p.rejected_model))
    models = sorted(set(p.chosen_model) | set(p.rejected_model))
    factors = compare(factor_arrays(p.chosen_text), factor_arrays(p.rejected_text))
    return {
        "pairs": n,
        "splits": p.splits,
        "rated_pairs": int(diff.size),
        "rating_gap": {**_stats(gap), "share_at_least_1": float((gap >= 1 - TIE_EPS).mean()) if gap.size else None,
                       "share_at_least_2": float((gap >= 2 - TIE_EPS).mean()) if gap.size else None,
                       "histogram": {"edges": [float(e) for e in gap_bins], "counts": _hist(gap, gap_bins)}},
        "signed_rating_diff": _stats(diff),
        "agreement": {"agree": agree, "tie": tie, "disagree": disagree,
                      "share_agree": agree / nr if diff.size else None, "share_tie": tie / nr if diff.size else None,
                      "share_disagree": disagree / nr if diff.size else None},
        "kinship": {**_stats(kin), "missing": int((~np.isfinite(kin)).sum()),
                    "histogram": {"edges": [float(e) for e in kedges], "counts": _hist(kin, kedges)}},
        "s_pref_gap": {**_stats(s_gap), "missing": int((~np.isfinite(s_gap)).sum())},
        "factors": factors,
        "model_pairs": {
            "distinct": len(pair_counts),
            "models": models,
            "top": [{"chosen": c, "rejected": r, "count": k, "share": k / max(1, n)}
                    for (c, r), k in sorted(pair_counts.items(), key=lambda kv: (-kv[1], kv[0]))],
        },
    }


def build_report(pairs: dict[str, ModePairs], *, dataset: str = "", baseline: str | None = BASELINE) -> dict[str, Any]:
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
                "mean_gap": g, "baseline_mean_gap": b,
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
            "share_chosen_more": "share of pairs where the chosen response has more of the factor than the rejected one",
        },
    }


# --------------------------------------------------------------------------- figures
def _mpl():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "karma", "font.size": 9})
    return plt


def _colors(modes: Sequence[str]) -> dict[str, str]:
    extra = iter(_EXTRA_COLORS * 4)
    return {m: MODE_COLORS.get(m) or next(extra) for m in modes}


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def fig_rating_gap(report: dict[str, Any]):
    plt = _mpl()
    modes = report["modes"]
    colors = _colors(list(modes))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    k = len(modes)
    edges = np.array(next(iter(modes.values()))["rating_gap"]["histogram"]["edges"])
    width = (edges[1] - edges[0]) / (k + 1)
    for i, (m, r) in enumerate(modes.items()):
        counts = np.array(r["rating_gap"]["histogram"]["counts"], dtype=float)
        share = counts / max(1.0, counts.sum())
        ax.bar(edges[:-1] + width * (i + 0.5), share * 100, width=width, color=colors[m], align="edge",
               label=f"{m} (mean {_fmt(r['rating_gap']['mean'])}, n={r['rated_pairs']})")
        if r["rating_gap"]["mean"] is not None:
            ax.axvline(r["rating_gap"]["mean"], color=colors[m], ls="--", lw=1.2)
    ax.set_xlabel("|score_chosen − score_rejected|  (source's per-instance rating; dashed line = mean)")
    ax.set_ylabel("share of pairs (%)")
    ax.set_title("Response Quality Gap per mode")
    ax.legend(title="mode", fontsize=8)
    ax.set_xlim(edges[0], edges[-1])
    fig.tight_layout()
    return fig


def fig_agreement(report: dict[str, Any]):
    plt = _mpl()
    modes = list(report["modes"])
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(modes) + 1.6))
    parts = [("share_agree", "agree (chosen rated higher)", "#2ca02c"),
             ("share_tie", "tie (same rating)", "#bbbbbb"),
             ("share_disagree", "disagree (chosen rated lower)", "#d62728")]
    y = np.arange(len(modes))[::-1]
    left = np.zeros(len(modes))
    for key, label, color in parts:
        vals = np.array([(report["modes"][m]["agreement"][key] or 0.0) * 100 for m in modes])
        ax.barh(y, vals, left=left, color=color, label=label, height=0.6)
        for yi, l, v in zip(y, left, vals):
            if v >= 6:
                ax.text(l + v / 2, yi, f"{v:.0f}%", ha="center", va="center", fontsize=8, color="black")
        left += vals
    ax.set_yticks(y, [f"{m} (n={report['modes'][m]['rated_pairs']})" for m in modes])
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of pairs (%)")
    ax.set_title("Do the per-instance ratings agree with the pair's label?")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def fig_kinship(report: dict[str, Any], pairs: dict[str, ModePairs]):
    plt = _mpl()
    modes = list(report["modes"])
    colors = _colors(modes)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    for m in modes:
        h = report["modes"][m]["kinship"]["histogram"]
        edges, counts = np.array(h["edges"]), np.array(h["counts"], dtype=float)
        if counts.sum() == 0:
            continue
        ax1.stairs(counts / counts.sum() * 100, edges, color=colors[m], lw=1.8,
                   label=f"{m} (mean {_fmt(report['modes'][m]['kinship']['mean'])})")
    lo = min((report["modes"][m]["kinship"]["histogram"]["edges"][0] for m in modes), default=0.0)
    ax1.set_xlim(max(lo, -1.0), 1.0)
    ax1.set_xlabel("kinship of the pair (cosine of normalised benchmark vectors)")
    ax1.set_ylabel("share of pairs (%)")
    ax1.set_title("Kinship of the paired models")
    ax1.legend(title="mode", fontsize=8)
    data, labels = [], []
    for m in modes:
        p = pairs[m]
        g = (p.s_pref_chosen - p.s_pref_rejected)
        g = g[np.isfinite(g)]
        data.append(g if g.size else np.array([np.nan]))
        labels.append(m)
    bp = ax2.boxplot(data, vert=True, patch_artist=True, widths=0.6)
    ax2.set_xticks(range(1, len(labels) + 1), labels)
    for patch, m in zip(bp["boxes"], modes):
        patch.set_facecolor(colors[m])
        patch.set_alpha(0.6)
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set_xlabel("mode")
    ax2.set_ylabel("S_pref(chosen) − S_pref(rejected)")
    ax2.set_title("S_pref gap of the pairs")
    fig.tight_layout()
    return fig


def fig_factors(report: dict[str, Any]):
    plt = _mpl()
    modes = list(report["modes"])
    colors = _colors(modes)
    k = len(modes)
    fig, ax = plt.subplots(figsize=(9, 0.42 * k * len(FACTORS) / 2 + 2.2))
    h = 0.8 / k
    base_y = np.arange(len(FACTORS))[::-1].astype(float)
    for i, m in enumerate(modes):
        f = report["modes"][m]["factors"]
        more = np.array([(f[x]["share_chosen_more"] or 0.0) * 100 for x in FACTORS])
        less = np.array([(f[x]["share_chosen_less"] or 0.0) * 100 for x in FACTORS])
        y = base_y + 0.4 - h * (i + 0.5)
        ax.barh(y, more, height=h, color=colors[m], label=m)
        ax.barh(y, -less, height=h, color=colors[m], alpha=0.35)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(base_y, [FACTOR_LABELS[x] for x in FACTORS])
    ax.set_xlim(-100, 100)
    ticks = np.arange(-100, 101, 25)
    ax.set_xticks(ticks, [f"{abs(t)}%" for t in ticks])
    ax.set_xlabel("← share of pairs where chosen has LESS (light)      share where chosen has MORE (solid) →")
    ax.set_title("What does chosen have more of? Factor-level chosen vs rejected")
    ax.legend(title="mode", fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def fig_model_pairs(report: dict[str, Any], pairs: dict[str, ModePairs]):
    plt = _mpl()
    modes = list(report["modes"])
    # order models by S_pref (as seen in the data), unknown S_pref last
    s_of: dict[str, float] = {}
    for p in pairs.values():
        for name, s in zip(p.chosen_model + p.rejected_model, np.concatenate([p.s_pref_chosen, p.s_pref_rejected])):
            if np.isfinite(s):
                s_of[name] = float(s)
    models = sorted({x for m in modes for x in report["modes"][m]["model_pairs"]["models"]},
                    key=lambda x: (-s_of.get(x, -np.inf), x))
    idx = {x: i for i, x in enumerate(models)}
    ncols = 2 if len(modes) > 1 else 1
    nrows = math.ceil(len(modes) / ncols)
    size = max(4.5, 0.32 * len(models) + 2.5)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 0.92), squeeze=False)
    for ax in axes.flat[len(modes):]:
        ax.axis("off")
    for ax, m in zip(axes.flat, modes):
        mat = np.zeros((len(models), len(models)))
        for e in report["modes"][m]["model_pairs"]["top"]:
            mat[idx[e["chosen"]], idx[e["rejected"]]] = e["count"]
        masked = np.ma.masked_equal(mat, 0)
        im = ax.imshow(masked, cmap="viridis", aspect="equal")
        ax.set_xticks(range(len(models)), models, rotation=90, fontsize=7)
        ax.set_yticks(range(len(models)), models, fontsize=7)
        ax.set_xlabel("rejected model")
        ax.set_ylabel("chosen model")
        ax.set_title(f"{m}: {report['modes'][m]['pairs']} pairs, {report['modes'][m]['model_pairs']['distinct']} distinct")
        if len(models) <= 20:
            for (i, j), v in np.ndenumerate(mat):
                if v:
                    ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=6,
                            color="white" if v < 0.6 * mat.max() else "black")
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cb.set_label("pairs")
    fig.suptitle("How often each (chosen, rejected) model pair is used  (models ordered by S_pref)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


FIGURES = ("rating_gap", "agreement", "kinship", "factors", "model_pairs")


def write_figures(report: dict[str, Any], pairs: dict[str, ModePairs], out_dir: Path) -> list[Path]:
    """Write the five PNG charts under ``out_dir``; return their paths (in :data:`FIGURES` order)."""
    plt = _mpl()
    out_dir.mkdir(parents=True, exist_ok=True)
    makers = {"rating_gap": lambda: fig_rating_gap(report), "agreement": lambda: fig_agreement(report),
              "kinship": lambda: fig_kinship(report, pairs), "factors": lambda: fig_factors(report),
              "model_pairs": lambda: fig_model_pairs(report, pairs)}
    paths = []
    for name in FIGURES:
        fig = makers[name]()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=120, metadata={"Software": None})
        plt.close(fig)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- text
def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def summary_rows(report: dict[str, Any], *, top_pair: bool = True) -> list[tuple[str, list[str]]]:
    """(metric, one value per mode) rows shared by the terminal table and the Markdown."""
    modes = report["modes"]
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, fn) -> None:
        rows.append((label, [fn(r) for r in modes.values()]))

    add("pairs", lambda r: str(r["pairs"]))
    add("mean |rating gap|", lambda r: _fmt(r["rating_gap"]["mean"]))
    add("median |rating gap|", lambda r: _fmt(r["rating_gap"]["median"]))
    add("pairs with gap >= 1", lambda r: _pct(r["rating_gap"]["share_at_least_1"]))
    add("ratings agree with label", lambda r: _pct(r["agreement"]["share_agree"]))
    add("ratings tie", lambda r: _pct(r["agreement"]["share_tie"]))
    add("ratings disagree with label", lambda r: _pct(r["agreement"]["share_disagree"]))
    add("mean kinship", lambda r: _fmt(r["kinship"]["mean"], ".3f"))
    add("mean S_pref gap", lambda r: _fmt(r["s_pref_gap"]["mean"], ".3f"))
    add("chosen longer (words)", lambda r: _pct(r["factors"]["words"]["share_chosen_more"]))
    add("mean words chosen / rejected", lambda r: f"{_fmt(r['factors']['words']['mean_chosen'], '.0f')} / {_fmt(r['factors']['words']['mean_rejected'], '.0f')}")
    add("chosen more list items", lambda r: _pct(r["factors"]["list_items"]["share_chosen_more"]))
    add("chosen more refusal phrases", lambda r: _pct(r["factors"]["refusals"]["share_chosen_more"]))
    add("distinct model pairs", lambda r: str(r["model_pairs"]["distinct"]))
    if not top_pair:
        return rows
    add("top pair", lambda r: (f"{r['model_pairs']['top'][0]['chosen']} > {r['model_pairs']['top'][0]['rejected']} "
                               f"({_pct(r['model_pairs']['top'][0]['share'])})") if r["model_pairs"]["top"] else "-")
    return rows


def summary_table(report: dict[str, Any]):
    """A rich Table of the headline numbers, one column per mode."""
    from rich.table import Table

    base = report.get("baseline")
    t = Table(title="Response Quality Gap and preference factors", title_justify="left",
              caption=f"{base}* = baseline (chosen by the per-instance ratings)" if base else None,
              caption_justify="left")
    t.add_column("metric", style="bold", no_wrap=True)
    for m in report["modes"]:
        t.add_column(f"{m}*" if m == base else m, justify="right", no_wrap=True,
                     style="red" if m == base else None)
    for label, vals in summary_rows(report, top_pair=False):
        t.add_row(label, *vals)
    return t


def _findings(report: dict[str, Any]) -> list[str]:
    """Plain-language sentences about what the numbers show."""
    out = []
    base = report.get("baseline")
    for m, c in report["comparison_with_baseline"].items():
        if c["gap_ratio"] is None:
            continue
        word = "smaller" if c["smaller_gap_than_baseline"] else "not smaller"
        out.append(f"`{m}`: mean rating gap {c['mean_gap']:.2f} vs {c['baseline_mean_gap']:.2f} for `{base}` "
                   f"({word}, ratio {c['gap_ratio']:.2f}).")
    for m, r in report["modes"].items():
        w = r["factors"]["words"]
        if w["share_chosen_more"] is not None and not math.isnan(w["share_chosen_more"]):
            out.append(f"`{m}`: chosen is longer in {_pct(w['share_chosen_more'])} of pairs "
                       f"({w['mean_chosen']:.0f} vs {w['mean_rejected']:.0f} words on average)"
                       + ("; a strong length signal (\"longer wins\")." if w["share_chosen_more"] >= 0.7 else "."))
        a = r["agreement"]
        if m != base and a["share_disagree"] is not None:
            out.append(f"`{m}`: the instance ratings disagree with the S_pref label in {_pct(a['share_disagree'])} "
                       f"of pairs and tie in {_pct(a['share_tie'])}.")
    return out


def render_markdown(report: dict[str, Any], figures: dict[str, str]) -> str:
    """The Markdown report; ``figures`` maps figure name -> relative path."""
    modes = list(report["modes"])
    base = report.get("baseline")
    L: list[str] = []
    L.append("# karma report: Response Quality Gap and preference factors\n")
    L.append(f"Dataset: `{report['dataset']}` · modes: {', '.join(f'`{m}`' for m in modes)}"
             + (f" · baseline: `{base}`" if base else " · no `rlaif` baseline in this dataset")
             + f" · karma-hf {report['karma_hf_version']}\n")
    L.append("Pairs are the `train` and `test` splits together. Ratings are the source's own per-instance "
             "ratings (`score_chosen`, `score_rejected`).\n")
    L.append("## Summary\n")
    L.append("| metric | " + " | ".join(f"{m}{' (baseline)' if m == base else ''}" for m in modes) + " |")
    L.append("|---|" + "---:|" * len(modes))
    for label, vals in summary_rows(report):
        L.append(f"| {label.replace('|', chr(92) + '|')} | " + " | ".join(v.replace("|", "\\|") for v in vals) + " |")
    L.append("")
    findings = _findings(report)
    if findings:
        L.append("**What this shows**\n")
        L.extend(f"- {s}" for s in findings)
        L.append("")
    L.append("## Response Quality Gap\n")
    L.append("The KARMA paper (§1) calls the disparity in quality between the two responses of a pair the "
             "*Response Quality Gap*: a large gap makes the preference trivial. Here it is measured as "
             "|score_chosen − score_rejected| on the source's own ratings.\n")
    L.append(f"![Response Quality Gap]({figures['rating_gap']})\n")
    L.append("| mode | pairs | mean | median | p90 | gap ≥ 1 | gap ≥ 2 |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    for m in modes:
        g = report["modes"][m]["rating_gap"]
        L.append(f"| {m} | {report['modes'][m]['rated_pairs']} | {_fmt(g['mean'])} | {_fmt(g['median'])} | "
                 f"{_fmt(g['p90'])} | {_pct(g['share_at_least_1'])} | {_pct(g['share_at_least_2'])} |")
    L.append("")
    L.append("### Agreement of instance ratings with the label\n")
    L.append("*Agree*: the chosen response was also rated higher by the source. For `rlaif` this holds by "
             "construction (chosen is picked by those ratings, ties dropped); for kinship modes the label "
             "comes from S_pref alone, so agreement is an independent check.\n")
    L.append(f"![Agreement]({figures['agreement']})\n")
    L.append("| mode | agree | tie | disagree |")
    L.append("|---|---:|---:|---:|")
    for m in modes:
        a = report["modes"][m]["agreement"]
        L.append(f"| {m} | {a['agree']} ({_pct(a['share_agree'])}) | {a['tie']} ({_pct(a['share_tie'])}) | "
                 f"{a['disagree']} ({_pct(a['share_disagree'])}) |")
    L.append("")
    L.append("## Kinship and S_pref gap\n")
    L.append(f"![Kinship and S_pref gap]({figures['kinship']})\n")
    L.append("| mode | mean kinship | min kinship | mean S_pref gap | median S_pref gap | pairs with an unscored model |")
    L.append("|---|---:|---:|---:|---:|---:|")
    for m in modes:
        k, s = report["modes"][m]["kinship"], report["modes"][m]["s_pref_gap"]
        L.append(f"| {m} | {_fmt(k['mean'], '.3f')} | {_fmt(k['min'], '.3f')} | {_fmt(s['mean'], '.3f')} | "
                 f"{_fmt(s['median'], '.3f')} | {max(k['missing'], s['missing'])} |")
    L.append("")
    L.append("A negative S_pref gap means the chosen model is the weaker one by benchmarks (possible only for `rlaif`, "
             "whose label comes from the per-instance rating). Pairs with a model that has no benchmark scores "
             "(e.g. `ultralm-65b`) have no kinship or S_pref and are left out of these statistics.")
    L.append("")
    L.append("## Factors: what does the chosen response have more of?\n")
    L.append("Surface factors in the spirit of PROFILE, counted with regular expressions (see "
             "`karma_hf/factors.py`). If chosen has more of a factor in most pairs, a model trained on the set "
             "can learn that factor (e.g. \"longer wins\") instead of quality.\n")
    L.append(f"![Factors]({figures['factors']})\n")
    L.append("Share of pairs where chosen has more of the factor (mean chosen − rejected in brackets):\n")
    L.append("| factor | " + " | ".join(modes) + " |")
    L.append("|---|" + "---:|" * len(modes))
    for f in FACTORS:
        cells = []
        for m in modes:
            x = report["modes"][m]["factors"][f]
            cells.append(f"{_pct(x['share_chosen_more'])} ({_fmt(x['mean_diff'], '+.2f')})")
        L.append(f"| {FACTOR_LABELS[f]} | " + " | ".join(cells) + " |")
    L.append("")
    L.append("## Model pairs\n")
    L.append(f"![Model pairs]({figures['model_pairs']})\n")
    for m in modes:
        top = report["modes"][m]["model_pairs"]["top"][:5]
        L.append(f"- **{m}**: " + ", ".join(f"{e['chosen']} > {e['rejected']} ({e['count']})" for e in top))
    L.append("")
    L.append("All numbers are in `report.json`.\n")
    return "\n".join(L)


def _json_safe(o: Any) -> Any:
    if isinstance(o, float):
        return None if math.isnan(o) or math.isinf(o) else o
    if isinstance(o, dict):
        return {k: _json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_safe(v) for v in o]
    return o


def write_report(report: dict[str, Any], pairs: dict[str, ModePairs], out_dir: str | Path) -> ReportResult:
    """Write ``report.md``, ``report.json`` and ``figures/*.png`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = write_figures(report, pairs, out / "figures")
    rel = {p.stem: f"figures/{p.name}" for p in figs}
    md = out / "report.md"
    md.write_text(render_markdown(report, rel), encoding="utf-8")
    js = out / "report.json"
    js.write_text(json.dumps(_json_safe(report), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return ReportResult(out_dir=out, markdown=md, json=js, figures=figs, report=report)


def default_out_dir(dataset: str | Path) -> Path:
    """``DIR/report`` for a local folder, ``./karma-report-<name>`` for a Hub id."""
    p = Path(dataset)
    return p / "report" if p.exists() else Path(f"karma-report-{str(dataset).replace('/', '--')}")


def run_report(dataset: str | Path, *, modes: Sequence[str] | None = None, out: str | Path | None = None,
               baseline: str | None = BASELINE, splits: Sequence[str] = PAIR_SPLITS,
               revision: str | None = None) -> ReportResult:
    """Load, analyse and write the report for a dataset folder or Hub id (the ``karma report`` API)."""
    pairs = load_pairs(dataset, modes, baseline=baseline, splits=splits, revision=revision)
    report = build_report(pairs, dataset=str(dataset), baseline=baseline)
    return write_report(report, pairs, out if out is not None else default_out_dir(dataset))
