"""Plots of origin-model kinship: PCA map (paper Fig. 4), dendrograms (Fig. 7), heatmap.

**PCA (Fig. 4).** The min-max normalised benchmark vectors are centred and projected on their
first two principal components (SVD). A principal component has no intrinsic sign, and the paper
does not say which it drew, so the orientation is a stated rule (our choice, chosen so that the
paper's preset reproduces Fig. 4's description): **PC1 is oriented so that its loadings sum to a
negative value**, i.e. moving right along PC1 means lower normalised scores, hence lower S_pref
(the weakest models sit on the right, as Fig. 4 places the small models in the first quadrant);
**PC2 so that its largest-magnitude loading is positive** (on the paper's scores: IFEval points
up). A zero sum (a PC1 orthogonal to the all-ones direction) falls back to the PC2 rule. Both
rules depend only on the data, so the map is the same across BLAS builds.

**Dendrograms (Fig. 7).** Hierarchical clustering of the normalised vectors, for all benchmarks
and per capability group, cut at distance 0.4 as in the paper (a dotted line; clusters coloured).
The paper gives neither the distance nor the linkage, so both are options (:data:`DISTANCES`,
:data:`LINKAGES`; defaults ``cosine`` / ``average``, our choice: the paper's kinship is the cosine
of these vectors, Eq. 1):

- ``cosine``: the kinship distance ``1 - cos(n_i, n_j)``. A model whose normalised vector (in the
  group's benchmarks) is all zeros has no direction: distance 1 to everyone;
- ``euclidean``: ``||n_i - n_j||`` of the normalised vectors (no rescaling: with k benchmarks it
  ranges over [0, sqrt(k)], so the 0.4 cut is relatively finer for larger groups).

A group with a single benchmark (instruction following = IFEval alone) has no cosine geometry
(every non-zero 1-D vector points the same way); both distances are then ``|n_i - n_j|``.
``ward`` linkage is defined for Euclidean distances; with ``cosine`` scipy applies Ward's update
formula to ``1 - cos`` (offered because readers try it, not because it is a Ward criterion).
:func:`dendrogram_clusters` returns the flat clusters the dendrogram colours
(``scipy.cluster.hierarchy.fcluster(..., criterion="distance")``: merges at heights <= the cut).
``scripts/figure7_table.py`` tabulates every choice on the paper's preset (``docs/figure7.md``).

matplotlib and scipy are imported inside the functions (``karma kinship`` never pays for them).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from karma_hf.analysis.style import pyplot
from karma_hf.errors import KarmaError
from karma_hf.kinship import Kinship, cosine_matrix
from karma_hf.scores import CAPABILITIES

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

DEFAULT_CUT = 0.4
DISTANCES: tuple[str, ...] = ("cosine", "euclidean")
LINKAGES: tuple[str, ...] = ("average", "complete", "ward")
DEFAULT_DISTANCE = "cosine"
DEFAULT_LINKAGE = "average"
LINKAGE = DEFAULT_LINKAGE  # the default linkage (kept for callers of earlier versions)


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


def kinship_distance(kin: Kinship, columns: list[int] | None = None, distance: str = DEFAULT_DISTANCE) -> np.ndarray:
    """Square distance matrix of the normalised vectors (restricted to ``columns``): ``1 - cosine``
    or Euclidean (``|n_i - n_j|`` for a single benchmark, either way)."""
    _check_choice("distance", distance, DISTANCES)
    vecs = kin.normalized if columns is None else kin.normalized[:, columns]
    if vecs.shape[1] == 1:
        dist = np.abs(vecs - vecs.T)
    elif distance == "euclidean":
        diff = vecs[:, None, :] - vecs[None, :, :]
        dist = np.sqrt((diff**2).sum(axis=2))
    else:
        dist = 1.0 - cosine_matrix(vecs)
    dist = np.clip((dist + dist.T) / 2.0, 0.0, None)
    np.fill_diagonal(dist, 0.0)
    return dist


def _check_choice(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise KarmaError(f"--{what} must be one of {', '.join(choices)}, got {value!r}")


def linkage_matrix(dist: np.ndarray, method: str = DEFAULT_LINKAGE) -> np.ndarray:
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    _check_choice("linkage", method, LINKAGES)
    return linkage(squareform(dist, checks=False), method=method)


def dendrogram_clusters(dist: np.ndarray, cut: float = DEFAULT_CUT, method: str = DEFAULT_LINKAGE) -> np.ndarray:
    """Flat cluster labels at distance ``cut`` (the clusters the dendrogram colours)."""
    from scipy.cluster.hierarchy import fcluster

    return fcluster(linkage_matrix(dist, method), t=cut, criterion="distance")


def clusters_at(
    kin: Kinship,
    columns: list[int] | None = None,
    *,
    cut: float = DEFAULT_CUT,
    distance: str = DEFAULT_DISTANCE,
    linkage: str = DEFAULT_LINKAGE,
) -> list[list[str]]:
    """The flat clusters at ``cut`` as lists of model ids: largest first, then by first member."""
    labels = dendrogram_clusters(kinship_distance(kin, columns, distance), cut, linkage)
    groups: dict[int, list[str]] = {}
    for model, label in zip(kin.models, labels.tolist(), strict=True):
        groups.setdefault(int(label), []).append(model)
    return sorted(groups.values(), key=lambda g: (-len(g), kin.models.index(g[0])))


def pca_2d(kin: Kinship) -> tuple[np.ndarray, np.ndarray]:
    """Project the normalised vectors on their first two principal components (SVD).

    Returns ``(coords (n, 2), explained_variance_ratio (2,))``, oriented by the module's rule:
    PC1's loadings sum to a negative value (weaker models to the right), PC2's largest-magnitude
    loading is positive.
    """
    x = kin.normalized - kin.normalized.mean(axis=0)
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    k = min(2, vt.shape[0])
    signs = np.sign(vt[np.arange(k), np.abs(vt[:k]).argmax(axis=1)])
    if k >= 1:
        total = float(vt[0].sum())
        if abs(total) > 1e-12:
            signs[0] = -np.sign(total)
    signs[signs == 0] = 1.0
    coords = (u[:, :k] * s[:k]) * signs
    if k < 2:
        coords = np.hstack([coords, np.zeros((coords.shape[0], 2 - k))])
    var = s**2
    ratio = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    return coords, np.pad(ratio, (0, 2 - ratio.size))


def quadrants(kin: Kinship) -> dict[str, int]:
    """The PCA quadrant (1-4, counter-clockwise from upper right; 0 on an axis) of each model."""
    coords, _ = pca_2d(kin)
    out = {}
    for model, (x, y) in zip(kin.models, coords.tolist(), strict=True):
        out[model] = 0 if x == 0 or y == 0 else (1 if x > 0 and y > 0 else 2 if y > 0 else 3 if x < 0 else 4)
    return out


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
    ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of variance; oriented so that lower scores lie to the right)")
    ax.set_ylabel(f"PC2 ({ratio[1]:.0%} of variance)")
    ax.set_title(f"Origin models: PCA of min-max normalised scores ({len(kin.benchmarks)} benchmarks)")
    cbar = fig.colorbar(sc, ax=ax)
    cbar.set_label("S_pref (mean normalised score)")
    fig.tight_layout()
    return fig


def plot_dendrograms(
    kin: Kinship, cut: float = DEFAULT_CUT, distance: str = DEFAULT_DISTANCE, linkage: str = DEFAULT_LINKAGE
) -> Figure:
    from scipy.cluster.hierarchy import dendrogram

    plt = pyplot()
    groups = capability_groups(kin)
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 3.6 * len(groups)), squeeze=False)
    labels = _labels(kin)
    for ax, (name, cols) in zip(axes[:, 0], groups.items(), strict=False):
        dist = kinship_distance(kin, cols, distance)
        z = linkage_matrix(dist, linkage)
        dendrogram(
            z,
            labels=labels,
            color_threshold=cut,
            above_threshold_color="#888888",
            leaf_rotation=40,
            leaf_font_size=8,
            ax=ax,
        )
        n_clusters = len(set(dendrogram_clusters(dist, cut, linkage)))
        ax.axhline(cut, color="red", ls=":", lw=1.2, label=f"cut at {cut} ({n_clusters} clusters)")
        benches = ", ".join(kin.benchmarks[c].removeprefix("karma_") for c in cols)
        metric = "|n_i - n_j|" if len(cols) == 1 else ("1 - cosine" if distance == "cosine" else "Euclidean distance")
        ax.set_title(f"{name.capitalize()} ({benches}): {linkage} linkage on {metric}")
        ax.set_ylabel("distance")
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
    kin: Kinship,
    out_dir: str | Path,
    *,
    cut: float = DEFAULT_CUT,
    formats: tuple[str, ...] = ("png", "svg"),
    distance: str = DEFAULT_DISTANCE,
    linkage: str = DEFAULT_LINKAGE,
) -> list[Path]:
    """Write ``pca``, ``dendrograms`` and ``kinship_heatmap`` in each format; return the paths."""
    _check_choice("distance", distance, DISTANCES)
    _check_choice("linkage", linkage, LINKAGES)
    plt = pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    figures = {
        "pca": plot_pca(kin),
        "dendrograms": plot_dendrograms(kin, cut, distance, linkage),
        "kinship_heatmap": plot_heatmap(kin),
    }
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
