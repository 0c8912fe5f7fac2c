"""`karma report` and `karma quickstart`."""

from __future__ import annotations

from pathlib import Path

import click

from karma_hf.cli.common import csv_list


@click.command("report")
@click.argument("dataset", metavar="DATASET_DIR_OR_HUB_ID")
@click.option(
    "--modes",
    default=None,
    metavar="M1,M2",
    help="Modes to analyse (default: every mode in the dataset). The baseline is always added when present.",
)
@click.option(
    "--baseline",
    default=None,
    metavar="MODE",
    help="Mode shown side by side as the baseline (default: rlaif, when the set has it); must be a mode of the set.",
)
@click.option("--splits", default="train,test", show_default=True, help="Pair splits to pool.")
@click.option(
    "--out",
    "--output",
    "-o",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder (default: DATASET_DIR/report, or ./karma-report-<user>--<name> for a Hub id).",
)
@click.option("--revision", default=None, help="Hub revision (Hub ids only).")
def report_cmd(
    dataset: str, modes: str | None, baseline: str | None, splits: str, out: Path | None, revision: str | None
) -> None:
    """Response Quality Gap, rating agreement, kinship and factor differences per mode vs the baseline.

    \b
    Writes report.md (with PNG charts in figures/) and report.json, and prints a summary.
    Example:  karma report karma-quickstart/dataset --modes sim,score
    """
    from rich.console import Console

    from karma_hf.analysis.report import run_report
    from karma_hf.cli.render import report_summary
    from karma_hf.layout import BASELINE_MODE

    console = Console()
    with console.status(f"analysing {dataset} ..."):
        res = run_report(
            dataset,
            modes=csv_list(modes),
            out=out,
            baseline=baseline or BASELINE_MODE,
            splits=csv_list(splits) or ("train", "test"),
            revision=revision,
            require_baseline=baseline is not None,
        )
    console.print(report_summary(res.report))
    console.print(f"report:  {res.markdown}\njson:    {res.json}\nfigures: {res.figures[0].parent}/")


@click.command("quickstart")
@click.option(
    "--out",
    "--output",
    "-o",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("karma-quickstart"),
    show_default=True,
    help="Folder for the dataset, card, plots and report.",
)
def quickstart_cmd(out: Path) -> None:
    """Run the whole method offline on the embedded (synthetic) UltraFeedback sample.

    \b
    Kinship on the paper's scores -> all four preference sets (score, sim, score_sim, rlaif)
    -> dataset folder + card -> kinship plots -> report. No network, no GPU, < 1 minute.
    """
    from rich.console import Console

    from karma_hf.cli.render import print_quickstart
    from karma_hf.quickstart import run_quickstart

    console = Console()
    print_quickstart(run_quickstart(out, console=console), console)
