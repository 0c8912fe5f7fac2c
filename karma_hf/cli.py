"""The ``karma`` command line: a thin click layer over the library.

Every command parses options, calls one library function, and prints. User errors
(:class:`karma_hf.errors.KarmaError`, bad click options) print one ``error: ...`` line and
exit 2; ``karma --verbose ...`` shows the traceback too. Nothing in ``karma_hf`` imports
this module.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from karma_hf import __version__
from karma_hf.errors import KarmaError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="karma")
@click.option("--verbose", is_flag=True, help="Show tracebacks and debug logs on errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """KARMA: kinship-aware preference mapping for the Hugging Face alignment stack.

    \b
    Pipeline:  karma eval  -> karma kinship / plot -> karma build -> karma push
               -> karma train sft|dpo -> karma compare
    Start with:  karma quickstart
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


def _echo_err(message: str) -> None:
    click.echo(f"error: {message}", err=True)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point with the common error path."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args
    try:
        rv = cli.main(args=args, prog_name="karma", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _echo_err("aborted")
        sys.exit(130)
    except click.ClickException as exc:  # bad option value, missing argument, no such command
        if verbose:
            traceback.print_exc()
        _echo_err(exc.format_message().replace("\n", " "))
        sys.exit(2)
    except KarmaError as exc:
        if verbose:
            traceback.print_exc()
        _echo_err(str(exc).replace("\n", " "))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _echo_err("interrupted")
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


# ---------------------------------------------------------------------------------------
# Commands are added below, one section per stage. Keep each a thin wrapper.
# ---------------------------------------------------------------------------------------


# --- kinship (scores -> S_pref -> kinship -> pairs) ---
def _score_options(f):
    """Options shared by every command that reads a score table."""
    f = click.option("--aliases", "aliases", type=click.Path(dir_okay=False),
                     help="JSON object mapping score-table model names to the dataset's model names.")(f)
    f = click.option("--allow-missing", is_flag=True,
                     help="Drop a benchmark (for all models, with a warning) when some model lacks it.")(f)
    f = click.option("--benchmark", "benchmarks", multiple=True, metavar="TASK[:METRIC]",
                     help="lm-eval task (and metric key) to read instead of the six karma tasks; repeatable.")(f)
    f = click.option("--scores", "scores", multiple=True, required=True, metavar="SPEC",
                     help="Preset name (ultrafeedback-paper), CSV file, lm-eval results folder or file, "
                          "or NAME=PATH; repeatable.")(f)
    return f


def _load_table(scores, benchmarks, allow_missing, aliases):
    from karma_hf.scores import load_scores

    table = load_scores(list(scores), benchmarks=list(benchmarks) or None, allow_missing=allow_missing,
                        aliases=aliases)
    for note in table.notes:
        click.echo(note if note.startswith("warning:") else f"note: {note}", err=True)
    return table


def _kinship(table, tau):
    import warnings

    from karma_hf.kinship import Kinship

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kin = Kinship.from_table(table, tau=tau)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    return kin


@cli.command()
@_score_options
@click.option("--tau", type=click.FloatRange(0.0, 1.0), default=0.1, show_default=True,
              help="Kinship threshold: pairs with cosine below it are never paired.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, writable=True), help="Write to this file.")
def kinship(scores, benchmarks, allow_missing, aliases, tau, fmt, output):
    """Score table -> S_pref ranking, cosine kinship matrix, and the pair each mode picks.

    \b
    karma kinship --scores ultrafeedback-paper
    karma kinship --scores results/ --format json --output kinship.json
    karma kinship --scores results/ --benchmark leaderboard_ifeval --benchmark hellaswag:acc_norm,none
    """
    from karma_hf import views

    table = _load_table(scores, benchmarks, allow_missing, aliases)
    kin = _kinship(table, tau)
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


@cli.command()
@_score_options
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--tau", type=click.FloatRange(0.0, 1.0), default=0.1, show_default=True)
@click.option("--cut", type=click.FloatRange(0.0, 2.0), default=0.4, show_default=True,
              help="Dendrogram distance at which clusters are cut and coloured.")
@click.option("--formats", default="png,svg", show_default=True, help="Comma-separated: png, svg, pdf.")
def plot(scores, benchmarks, allow_missing, aliases, out, tau, cut, formats):
    """PCA map, kinship dendrograms per capability (cut at 0.4), and the kinship heatmap."""
    fmts = tuple(f.strip() for f in formats.split(",") if f.strip())
    bad = [f for f in fmts if f not in ("png", "svg", "pdf")]
    if bad or not fmts:
        raise click.BadParameter(f"unsupported format(s) {', '.join(bad) or formats!r}; use png, svg, pdf",
                                 param_hint="--formats")
    table = _load_table(scores, benchmarks, allow_missing, aliases)
    kin = _kinship(table, tau)
    from karma_hf.plots import write_plots

    for path in write_plots(kin, out, cut=cut, formats=fmts):
        click.echo(str(path))


if __name__ == "__main__":  # pragma: no cover
    main()
