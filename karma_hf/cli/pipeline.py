"""`karma run PIPELINE.yaml`: the whole method from one file (karma_hf.pipeline)."""

from __future__ import annotations

import click

from karma_hf.cli.common import CONTEXT_SETTINGS

_STAGES = "evaluate, generate, kinship, build, push, train, evaluate-students, compare"


@click.command("run", context_settings=CONTEXT_SETTINGS)
@click.argument("pipeline", metavar="PIPELINE.yaml")
@click.option("--dry-run", "--dry_run", "dry_run", is_flag=True, help="Print the plan; run nothing, create nothing.")
@click.option(
    "--force",
    "force",
    multiple=True,
    metavar="STAGE",
    help=f"Run this stage (and everything downstream) even when up to date; repeatable, or 'all'. Stages: {_STAGES}.",
)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def run_cmd(pipeline: str, dry_run: bool, force: tuple[str, ...], quiet: bool) -> None:
    """Run the KARMA pipeline a YAML file describes: evaluate -> generate -> kinship -> build
    -> (push) -> (train -> evaluate-students -> compare).

    \b
    karma run pipeline.yaml --dry-run       # the plan: stages to run or skip and why, items, tokens
    karma run pipeline.yaml                 # a rerun skips stages whose configuration is unchanged
    karma run pipeline.yaml --force kinship
    karma run tiny-cpu.yaml                 # a shipped example (recipes/pipelines/), see docs/pipeline.md
    """
    from rich.console import Console

    from karma_hf.pipeline.run import plan_pipeline, run_pipeline

    def echo(line: str) -> None:
        click.echo(line, err=True)

    plan = plan_pipeline(pipeline, force=force, progress=not quiet, echo=echo)
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: wide enough for one row per stage
        console.width = max(console.width, 140)
    if dry_run:
        console.print(_plan_table(plan))
        return
    result = run_pipeline(plan.config, plan=plan, echo=echo, on_stage=lambda sp: echo(sp.line()))
    console.print(_summary_table(result))
    click.echo(f"output: {result.output}/")


def _plan_table(plan):
    from rich.table import Table

    table = Table(title=f"karma run {plan.config.path.name} -> {plan.output}/ (dry run)", title_justify="left")
    for name, justify in (
        ("#", "right"),
        ("stage", "left"),
        ("action", "left"),
        ("why", "left"),
        ("models", "right"),
        ("items", "left"),
        ("est. generated tokens", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for sp in plan.stages:
        d = sp.describe
        models = d.models
        if sp.stage.itemized and sp.run and len(sp.todo) < len(sp.items):
            models = f"{len(sp.todo)} of {len(sp.items)}"  # only these are (re)done
        table.add_row(
            str(sp.index),
            sp.name,
            "[bold]run[/]" if sp.run else "[dim]skip[/]",
            sp.reason,
            models,
            d.work,
            f"{d.tokens:,}" if d.tokens is not None else "",
        )
    return table


def _summary_table(result):
    from rich.table import Table

    table = Table(title="karma run", title_justify="left")
    for name in ("stage", "action", "why", "seconds", "result"):
        table.add_column(name, justify="right" if name == "seconds" else "left")
    for o in result.outcomes:
        table.add_row(o.name, "ran" if o.ran else "skipped", o.reason, f"{o.seconds:.1f}" if o.ran else "", o.summary)
    return table
