"""``karma quickstart``: the whole KARMA method, offline, on the embedded sample, in one command.

Steps (no network, no GPU; well under a minute on 2 CPU cores):

1. kinship of the 16 UltraFeedback models from the paper's benchmark scores (preset
   ``ultrafeedback-paper``: S_pref and cosine kinship, tau = 0.1);
2. build all four preference sets (``score``, ``sim``, ``score_sim`` and the ``rlaif``
   baseline) from the embedded **synthetic** UltraFeedback-format sample
   (``karma_hf/data/ultrafeedback_sample.parquet``, 300 instructions x ~4 completions,
   made by ``scripts/make_sample.py``) into ``OUT/dataset`` with its card and build report;
3. the kinship plots (PCA map, dendrograms, heatmap) into ``OUT/plots``;
4. the Response Quality Gap / factor report into ``OUT/report``.

Then it prints rows per mode, the top model pairs, where each file is, and what to run next.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from karma_hf.errors import KarmaError

SAMPLE_NAME = "ultrafeedback_sample.parquet"
SCORES = "ultrafeedback-paper"
TAU = 0.1
SEED = 42
TEST_PROMPTS = 30  # of ~300 distinct instructions
MARKER = "quickstart.json"


def sample_path() -> Path:
    """The embedded synthetic UltraFeedback-format sample shipped in the package."""
    path = Path(str(resources.files("karma_hf") / "data" / SAMPLE_NAME))
    if not path.is_file():
        raise KarmaError(
            f"embedded sample {path} is missing from the installation; reinstall karma-hf "
            "or regenerate it with `python scripts/make_sample.py`"
        )
    return path


@dataclass
class QuickstartResult:
    """Where everything went, and the numbers the summary prints."""

    out: Path
    dataset_dir: Path
    card: Path
    build_report: Path
    plots: list[Path]
    report_md: Path
    report_json: Path
    report_figures: list[Path]
    build: dict[str, Any] = field(repr=False, default_factory=dict)
    report: dict[str, Any] = field(repr=False, default_factory=dict)


def _prepare(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise KarmaError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise KarmaError(f"--out {out} is not empty and was not written by `karma quickstart`; choose another folder")
    out.mkdir(parents=True, exist_ok=True)


def run_quickstart(
    out: str | Path = "karma-quickstart", *, console: Any = None, quiet: bool = False
) -> QuickstartResult:
    """Run every step into ``out``, with a progress display on ``console`` (``quiet``: none)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from karma_hf.analysis.report import run_report
    from karma_hf.kinship import Kinship
    from karma_hf.layout import modes
    from karma_hf.pairs.builder import build
    from karma_hf.scores import load_scores

    out = Path(out)
    _prepare(out)
    console = console or Console(quiet=quiet)
    sample = sample_path()
    steps = [
        "kinship on the paper's scores",
        "build score / sim / score_sim / rlaif",
        "kinship plots",
        "report: Response Quality Gap and factors",
    ]
    with Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task(steps[0], total=len(steps))
        table = load_scores(SCORES)
        kin = Kinship.from_table(table, tau=TAU)
        progress.update(task, advance=1, description=steps[1])
        result = build(
            sample,
            scores=table,
            modes=modes(),
            tau=TAU,
            seed=SEED,
            test_size=TEST_PROMPTS,
            output=out / "dataset",
            overwrite=True,
            command=f"karma quickstart --out {out.name}",
            card_note=SYNTHETIC_NOTE,
        )
        progress.update(task, advance=1, description=steps[2])
        plots = _write_plots(kin, out / "plots")
        progress.update(task, advance=1, description=steps[3])
        rep = run_report(out / "dataset", out=out / "report")
        progress.update(task, advance=1, description="done")

    res = QuickstartResult(
        out=out,
        dataset_dir=out / "dataset",
        card=out / "dataset" / "README.md",
        build_report=out / "dataset" / "build_report.json",
        plots=plots,
        report_md=rep.markdown,
        report_json=rep.json,
        report_figures=rep.figures,
        build=result.report,
        report=rep.report,
    )
    (out / MARKER).write_text(json.dumps(_summary_json(res), indent=2) + "\n", encoding="utf-8")
    return res


SYNTHETIC_NOTE = (
    "> **Synthetic data.** Built by `karma quickstart` from the small synthetic UltraFeedback-format "
    "sample shipped with karma-hf (template-written instructions, responses and ratings; "
    "`scripts/make_sample.py`). It demonstrates the pipeline; do not train models on it."
)


def _write_plots(kin, folder: Path) -> list[Path]:
    from karma_hf.analysis.kinship_plots import write_plots

    return write_plots(kin, folder, formats=("png",))


def _summary_json(res: QuickstartResult) -> dict[str, Any]:
    rel = lambda p: str(Path(p).relative_to(res.out))  # noqa: E731
    return {
        "sample": SAMPLE_NAME,
        "scores": SCORES,
        "tau": TAU,
        "seed": SEED,
        "test_prompts": TEST_PROMPTS,
        "rows": {m: v["splits"] for m, v in res.build["modes"].items()},
        "dropped": {m: {k: n for k, n in v["dropped"].items() if n} for m, v in res.build["modes"].items()},
        "mean_rating_gap": {m: v["rating_gap"]["mean"] for m, v in res.report["modes"].items()},
        "files": {
            "dataset": rel(res.dataset_dir),
            "card": rel(res.card),
            "build_report": rel(res.build_report),
            "plots": [rel(p) for p in res.plots],
            "report": rel(res.report_md),
            "report_json": rel(res.report_json),
            "report_figures": [rel(p) for p in res.report_figures],
        },
    }
