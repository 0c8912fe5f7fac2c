"""Plots of origin-model kinship: PCA map (paper Fig. 4), dendrograms (Fig. 7), heatmap.

Dendrograms use average linkage on the kinship distance ``1 - cosine`` of the normalised
benchmark vectors restricted to each capability group. A group with a single benchmark
(instruction following = IFEval alone) has no cosine geometry (every non-zero 1-D vector points
the same way), so its distance is the absolute difference of the normalised scores, which is
the same scale ([0, 1]). Clusters are cut at distance 0.4 as in the paper, drawn as a dotted
line, and coloured per cluster; :func:`dendrogram_clusters` returns the same labels as
``scipy.cluster.hierarchy.fcluster(..., criterion="distance")``.

matplotlib and scipy are imported inside the functions (``karma kinship`` never pays for them).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from karma_hf.analysis.style import pyplot
from karma_hf.kinship import Kinship, cosine_matrix
from karma_hf.scores import CAPABILITIES

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

DEFAULT_CUT = 0.4
LINKAGE = "average"


def _labels(kin: Kinship) -> list[str]:
    return [kin.display_names.get(m, m) for m in kin.models]


# ---------------------------------------------------------------------- distances
def capability_groups(kin: Kinship) -> dict[str, list[int]]:
    """``{"all": [...], "knowledge": [...], ...}``: benchmark columns of each group present in ``kin``."""
    groups = {"all benchmarks": list(range(len(kin.benchmarks)))}
    for name, members in CAPABILITIES.items():
        cols = [kin.benchmarks.index(b) for b in members if b in kin.benchmarks]
        if cols:
            groups[name] = cols
    return groups


def kinship_distance(kin: Kinship, columns: list[int] | None = None) -> np.ndarray:
    """Square distance matrix: ``1 - cosine`` (``|n_i - n_j|`` for a single benchmark)."""
    vecs = kin.normalized if columns is None else kin.normalized[:, columns]
    dist = np.abs(vecs - vecs.T) if vecs.shape[1] == 1 else 1.0 - cosine_matrix(vecs)
    dist = np.clip((dist + dist.T) / 2.0, 0.0, None)
    np.fill_diagonal(dist, 0.0)
    return dist


def linkage_matrix(dist: np.ndarray) -> np.ndarray:
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    return linkage(squareform(dist, checks=False), method=LINKAGE)


def dendrogram_clusters(dist: np.ndarray, cut: float = DEFAULT_CUT) -> np.ndarray:
    """Flat cluster labels at distance ``cut`` (the clusters the dendrogram colours)."""
    from scipy.cluster.hierarchy import fcluster

    return fcluster(linkage_matrix(dist), t=cut, criterion="distance")


def pca_2d(kin: Kinship) -> tuple[np.ndarray, np.ndarray]:
    """Project the normalised vectors on their first two principal components (SVD).

    Returns ``(coords (n, 2), explained_variance_ratio (2,))``. Signs are fixed so the largest
    loading of each component is positive (stable output across BLAS builds).
    """
    x = kin.normalized - kin.normalized.mean(axis=0)
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    k = min(2, vt.shape[0])
    signs = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(axis=1)])
    signs[signs == 0] = 1.0
    coords = (u[:, :k] * s[:k]) * signs
    if k < 2:
        coords = np.hstack([coords, np.zeros((coords.shape[0], 2 - k))])
    var = s**2
    ratio = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    return coords, np.pad(ratio, (0, 2 - ratio.size))


# ---------------------------------------------------------------------- figures
_OFFSETS = [
    (5, 4, "left"),
    (5, -11, "left"),
    (-5, 4, "right"),
    (-5, -11, "right"),
    (5, 15, "left"),
    (5, -22, "left"),
    (-5, 15, "right"),
    (-5, -22, "right"),
]


def _place_labels(fig, ax, coords: np.ndarray, labels: list[str], fontsize: float = 8) -> None:
    """Greedy label placement: the first candidate offset whose box overlaps no placed box."""
    fig.canvas.draw()
    to_px = ax.transData.transform
    pt = fig.dpi / 72.0
    placed: list[tuple[float, float, float, float]] = []
    for (x, y), label in sorted(zip(coords.tolist(), labels, strict=False), key=lambda t: (-t[0][1], t[0][0])):
        px, py = to_px((x, y))
        w, h = 0.6 * fontsize * len(label) * pt, 1.2 * fontsize * pt
        best = None
        for dx, dy, ha in _OFFSETS:
            x0 = px + dx * pt - (w if ha == "right" else 0)
            box = (x0, py + dy * pt, x0 + w, py + dy * pt + h)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                best = (dx, dy, ha, box)
                break
        if best is None:
            dx, dy, ha = _OFFSETS[0]
            x0 = px + dx * pt
            best = (dx, dy, ha, (x0, py + dy * pt, x0 + w, py + dy * pt + h))
        dx, dy, ha, box = best
        placed.append(box)
        ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize, ha=ha)


def plot_pca(kin: Kinship) -> Figure:
    plt = pyplot()
    coords, ratio = pca_2d(kin)
    fig, ax = plt.subplots(figsize=(8, 6.5))
    sc = ax.scatter(
        coords[:, 0], coords[:, 1], c=kin.s_pref, cmap="viridis", s=70, edgecolors="black", linewidths=0.5, zorder=3
    )
    ax.margins(0.12)
    _place_labels(fig, ax, coords, _labels(kin))
    ax.axhline(0, color="grey", lw=0.6, ls=":")
    ax.axvline(0, color="grey", lw=0.6, ls=":")
    ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({ratio[1]:.0%} of variance)")
    ax.set_title(f"Origin models: PCA of min-max normalised scores ({len(kin.benchmarks)} benchmarks)")
    cbar = fig.colorbar(sc, ax=ax)
    cbar.set_label("S_pref (mean normalised score)")
    fig.tight_layout()
    return fig


def plot_dendrograms(kin: Kinship, cut: float = DEFAULT_CUT) -> Figure:
    from scipy.cluster.hierarchy import dendrogram

    plt = pyplot()
    groups = capability_groups(kin)
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 3.6 * len(groups)), squeeze=False)
    labels = _labels(kin)
    for ax, (name, cols) in zip(axes[:, 0], groups.items(), strict=False):
        dist = kinship_distance(kin, cols)
        z = linkage_matrix(dist)
        dendrogram(
            z,
            labels=labels,
            color_threshold=cut,
            above_threshold_color="#888888",
            leaf_rotation=40,
            leaf_font_size=8,
            ax=ax,
        )
        n_clusters = len(set(dendrogram_clusters(dist, cut)))
        ax.axhline(cut, color="red", ls=":", lw=1.2, label=f"cut at {cut} ({n_clusters} clusters)")
        benches = ", ".join(kin.benchmarks[c].removeprefix("karma_") for c in cols)
        metric = "|n_i - n_j|" if len(cols) == 1 else "1 - cosine"
        ax.set_title(f"{name.capitalize()} ({benches}): average linkage on {metric}")
        ax.set_ylabel("kinship distance")
        ax.legend(loc="upper right", fontsize=8)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
    fig.suptitle("Kinship dendrograms of origin models by capability", fontsize=12)
    fig.tight_layout()
    return fig


def plot_heatmap(kin: Kinship) -> Figure:
    plt = pyplot()
    order = [kin.index[m] for m in kin.ranking()]
    mat = kin.cosine[np.ix_(order, order)]
    labels = [_labels(kin)[i] for i in order]
    n = len(order)
    size = max(6.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(mat, cmap="magma", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels, fontsize=8)
    if n <= 25:
        for i in range(n):
            for j in range(n):
                v = mat[i, j]
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v < 0.6 else "black")
    ax.set_xlabel("origin model (ranked by S_pref, best first)")
    ax.set_ylabel("origin model")
    ax.set_title(f"Cosine kinship between origin models (pairs below tau = {kin.tau} are never paired)")
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    cbar.set_label("cosine kinship S_ij")
    fig.tight_layout()
    return fig


def write_plots(
    kin: Kinship, out_dir: str | Path, *, cut: float = DEFAULT_CUT, formats: tuple[str, ...] = ("png", "svg")
) -> list[Path]:
    """Write ``pca``, ``dendrograms`` and ``kinship_heatmap`` in each format; return the paths."""
    plt = pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    figures = {"pca": plot_pca(kin), "dendrograms": plot_dendrograms(kin, cut), "kinship_heatmap": plot_heatmap(kin)}
    for name, fig in figures.items():
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            fig.savefig(
                path,
                dpi=130,
                format=fmt,
                metadata={"Software": None} if fmt == "png" else {"Date": None, "Creator": None},
            )
            written.append(path)
        plt.close(fig)
    return written
