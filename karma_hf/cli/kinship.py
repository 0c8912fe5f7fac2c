"""`karma kinship` and `karma plot`: scores -> S_pref, cosine kinship, pairs, plots."""

from __future__ import annotations

from pathlib import Path

import click

from karma_hf.cli.common import kinship_of, load_table, score_options


@click.command()
@score_options
@click.option(
    "--tau",
    type=click.FloatRange(0.0, 1.0),
    default=0.1,
    show_default=True,
    help="Kinship threshold: pairs with cosine below it are never paired.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="table: S_pref ranking, kinship matrix and pairs; json: all of it; csv: the cosine matrix.",
)
@click.option(
    "--output",
    "--out",
    "-o",
    "output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file instead of the terminal.",
)
def kinship(scores, benchmarks, allow_missing, aliases, tau, fmt, output):
    """Score table -> S_pref ranking, cosine kinship matrix, and the pair each mode picks.

    \b
    karma kinship --scores ultrafeedback-paper
    karma kinship --scores results/ --format json --output kinship.json
    karma kinship --scores results/ --benchmark leaderboard_ifeval --benchmark hellaswag:acc_norm,none
    """
    from karma_hf.cli import render as views

    table = load_table(scores, benchmarks, allow_missing, aliases)
    kin = kinship_of(table, tau)
    if fmt == "json":
        text = views.kinship_json(table, kin)
    elif fmt == "csv":
        text = views.kinship_csv(kin)
    else:
        from rich.console import Console

        console = Console(record=output is not None)
        if output is not None or not console.is_terminal:
            console.width = max(console.width, 120)
        for r in views.kinship_renderables(table, kin):
            console.print(r)
        if output:
            Path(output).write_text(console.export_text(), encoding="utf-8")
        return
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@click.command()
@score_options
@click.option("--out", "--output", "-o", "out", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option(
    "--tau",
    type=click.FloatRange(0.0, 1.0),
    default=0.1,
    show_default=True,
    help="Kinship threshold drawn on the plots (pairs below it are not kin).",
)
@click.option(
    "--cut",
    type=click.FloatRange(0.0, 2.0),
    default=0.4,
    show_default=True,
    help="Dendrogram distance at which clusters are cut and coloured.",
)
@click.option(
    "--distance",
    type=click.Choice(["cosine", "euclidean"]),
    default="cosine",
    show_default=True,
    help="Dendrogram distance between normalised score vectors: 1 - cosine (kinship) or Euclidean.",
)
@click.option(
    "--linkage",
    type=click.Choice(["average", "complete", "ward"]),
    default="average",
    show_default=True,
    help="Dendrogram linkage (the paper names none; ward is defined for Euclidean distances).",
)
@click.option("--formats", default="png,svg", show_default=True, help="Comma-separated: png, svg, pdf.")
def plot(scores, benchmarks, allow_missing, aliases, out, tau, cut, distance, linkage, formats):
    """PCA map, kinship dendrograms per capability (cut at 0.4), and the kinship heatmap."""
    fmts = tuple(f.strip() for f in formats.split(",") if f.strip())
    bad = [f for f in fmts if f not in ("png", "svg", "pdf")]
    if bad or not fmts:
        raise click.BadParameter(
            f"unsupported format(s) {', '.join(bad) or formats!r}; use png, svg, pdf", param_hint="--formats"
        )
    table = load_table(scores, benchmarks, allow_missing, aliases)
    kin = kinship_of(table, tau)
    from karma_hf.analysis.kinship_plots import write_plots

    for path in write_plots(kin, out, cut=cut, formats=fmts, distance=distance, linkage=linkage):
        click.echo(str(path))
