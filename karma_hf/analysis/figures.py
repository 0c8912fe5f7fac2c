"""The five PNG charts of ``karma report`` (rating gap, agreement, kinship, factors, model pairs)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from karma_hf.analysis.factors import FACTOR_LABELS, FACTORS
from karma_hf.analysis.quality import ModePairs
from karma_hf.analysis.style import mode_colors, pyplot, save


def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def fig_rating_gap(report: dict[str, Any]):
    plt = pyplot()
    modes = report["modes"]
    colors = mode_colors(list(modes))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    k = len(modes)
    edges = np.array(next(iter(modes.values()))["rating_gap"]["histogram"]["edges"])
    width = (edges[1] - edges[0]) / (k + 1)
    for i, (m, r) in enumerate(modes.items()):
        counts = np.array(r["rating_gap"]["histogram"]["counts"], dtype=float)
        share = counts / max(1.0, counts.sum())
        ax.bar(
            edges[:-1] + width * (i + 0.5),
            share * 100,
            width=width,
            color=colors[m],
            align="edge",
            label=f"{m} (mean {_fmt(r['rating_gap']['mean'])}, n={r['rated_pairs']})",
        )
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
    plt = pyplot()
    modes = list(report["modes"])
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(modes) + 1.6))
    parts = [
        ("share_agree", "agree (chosen rated higher)", "#2ca02c"),
        ("share_tie", "tie (same rating)", "#bbbbbb"),
        ("share_disagree", "disagree (chosen rated lower)", "#d62728"),
    ]
    y = np.arange(len(modes))[::-1]
    left = np.zeros(len(modes))
    for key, label, color in parts:
        vals = np.array([(report["modes"][m]["agreement"][key] or 0.0) * 100 for m in modes])
        ax.barh(y, vals, left=left, color=color, label=label, height=0.6)
        for yi, start, v in zip(y, left, vals, strict=True):
            if v >= 6:
                ax.text(start + v / 2, yi, f"{v:.0f}%", ha="center", va="center", fontsize=8, color="black")
        left += vals
    ax.set_yticks(y, [f"{m} (n={report['modes'][m]['rated_pairs']})" for m in modes])
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of pairs (%)")
    ax.set_title("Do the per-instance ratings agree with the pair's label?")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def fig_kinship(report: dict[str, Any], pairs: dict[str, ModePairs]):
    plt = pyplot()
    modes = list(report["modes"])
    colors = mode_colors(modes)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    for m in modes:
        h = report["modes"][m]["kinship"]["histogram"]
        edges, counts = np.array(h["edges"]), np.array(h["counts"], dtype=float)
        if counts.sum() == 0:
            continue
        ax1.stairs(
            counts / counts.sum() * 100,
            edges,
            color=colors[m],
            lw=1.8,
            label=f"{m} (mean {_fmt(report['modes'][m]['kinship']['mean'])})",
        )
    lo = min((report["modes"][m]["kinship"]["histogram"]["edges"][0] for m in modes), default=0.0)
    ax1.set_xlim(max(lo, -1.0), 1.0)
    ax1.set_xlabel("kinship of the pair (cosine of normalised benchmark vectors)")
    ax1.set_ylabel("share of pairs (%)")
    ax1.set_title("Kinship of the paired models")
    ax1.legend(title="mode", fontsize=8)
    data, labels = [], []
    for m in modes:
        p = pairs[m]
        g = p.s_pref_chosen - p.s_pref_rejected
        g = g[np.isfinite(g)]
        data.append(g if g.size else np.array([np.nan]))
        labels.append(m)
    bp = ax2.boxplot(data, patch_artist=True, widths=0.6)  # vertical: the default
    ax2.set_xticks(range(1, len(labels) + 1), labels)
    for patch, m in zip(bp["boxes"], modes, strict=False):
        patch.set_facecolor(colors[m])
        patch.set_alpha(0.6)
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set_xlabel("mode")
    ax2.set_ylabel("S_pref(chosen) − S_pref(rejected)")
    ax2.set_title("S_pref gap of the pairs")
    fig.tight_layout()
    return fig


def fig_factors(report: dict[str, Any]):
    plt = pyplot()
    modes = list(report["modes"])
    colors = mode_colors(modes)
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
    plt = pyplot()
    modes = list(report["modes"])
    # order models by S_pref (as seen in the data), unknown S_pref last
    s_of: dict[str, float] = {}
    for p in pairs.values():
        for name, s in zip(
            p.chosen_model + p.rejected_model, np.concatenate([p.s_pref_chosen, p.s_pref_rejected]), strict=False
        ):
            if np.isfinite(s):
                s_of[name] = float(s)
    models = sorted(
        {x for m in modes for x in report["modes"][m]["model_pairs"]["models"]},
        key=lambda x: (-s_of.get(x, -np.inf), x),
    )
    idx = {x: i for i, x in enumerate(models)}
    ncols = 2 if len(modes) > 1 else 1
    nrows = math.ceil(len(modes) / ncols)
    size = max(4.5, 0.32 * len(models) + 2.5)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows * 0.92), squeeze=False)
    for ax in axes.flat[len(modes) :]:
        ax.axis("off")
    for ax, m in zip(axes.flat, modes, strict=False):
        mat = np.zeros((len(models), len(models)))
        for e in report["modes"][m]["model_pairs"]["top"]:
            mat[idx[e["chosen"]], idx[e["rejected"]]] = e["count"]
        masked = np.ma.masked_equal(mat, 0)
        im = ax.imshow(masked, cmap="viridis", aspect="equal")
        ax.set_xticks(range(len(models)), models, rotation=90, fontsize=7)
        ax.set_yticks(range(len(models)), models, fontsize=7)
        ax.set_xlabel("rejected model")
        ax.set_ylabel("chosen model")
        ax.set_title(
            f"{m}: {report['modes'][m]['pairs']} pairs, {report['modes'][m]['model_pairs']['distinct']} distinct"
        )
        if len(models) <= 20:
            for (i, j), v in np.ndenumerate(mat):
                if v:
                    ax.text(
                        j,
                        i,
                        f"{int(v)}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if v < 0.6 * mat.max() else "black",
                    )
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cb.set_label("pairs")
    fig.suptitle("How often each (chosen, rejected) model pair is used  (models ordered by S_pref)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


FIGURES = ("rating_gap", "agreement", "kinship", "factors", "model_pairs")


def write_figures(report: dict[str, Any], pairs: dict[str, ModePairs], out_dir: Path) -> list[Path]:
    """Write the five PNG charts under ``out_dir``; return their paths (in :data:`FIGURES` order)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    makers = {
        "rating_gap": lambda: fig_rating_gap(report),
        "agreement": lambda: fig_agreement(report),
        "kinship": lambda: fig_kinship(report, pairs),
        "factors": lambda: fig_factors(report),
        "model_pairs": lambda: fig_model_pairs(report, pairs),
    }
    paths = []
    for name in FIGURES:
        path = out_dir / f"{name}.png"
        save(makers[name](), path, dpi=120)
        paths.append(path)
    return paths
