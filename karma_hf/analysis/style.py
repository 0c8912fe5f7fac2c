"""One plot style for every figure karma-hf draws (kinship plots, report charts, comparisons).

Figures are written with the Agg backend, fixed fonts and SVG hash salt, and without the
matplotlib version in PNG metadata, so the same data gives byte-identical files.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: Colours of the built-in modes (KARMA modes in blue/green/purple, the baseline in red).
MODE_COLORS = {"score": "#1f77b4", "sim": "#2ca02c", "score_sim": "#9467bd", "rlaif": "#d62728"}
_EXTRA_COLORS = ["#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend with karma-hf's rc settings."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "karma", "font.size": 9})
    return plt


def mode_colors(modes: Sequence[str]) -> dict[str, str]:
    """A colour per mode: the fixed one of a built-in mode, else the next of a spare palette."""
    extra = iter(_EXTRA_COLORS * 4)
    return {m: MODE_COLORS.get(m) or next(extra) for m in modes}


def png_metadata() -> dict[str, Any]:
    return {"Software": None}


def save(fig: Any, path: Any, *, dpi: int, fmt: str = "png", **kwargs: Any) -> None:
    """Save deterministically (no software/date metadata), then close the figure."""
    meta = png_metadata() if fmt == "png" else {"Date": None, "Creator": None}
    fig.savefig(path, dpi=dpi, format=fmt, metadata=meta, **kwargs)
    pyplot().close(fig)
