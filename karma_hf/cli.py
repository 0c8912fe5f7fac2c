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


# --- report + quickstart ---
def _csv_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@cli.command("report")
@click.argument("dataset", metavar="DATASET_DIR_OR_HUB_ID")
@click.option("--modes", default=None, metavar="M1,M2",
              help="Modes to analyse (default: every mode in the dataset). The baseline is always added when present.")
@click.option("--baseline", default="rlaif", show_default=True, help="Mode shown side by side as the baseline.")
@click.option("--splits", default="train,test", show_default=True, help="Pair splits to pool.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Output folder (default: DATASET_DIR/report, or ./karma-report-<user>--<name> for a Hub id).")
@click.option("--revision", default=None, help="Hub revision (Hub ids only).")
def report_cmd(dataset: str, modes: str | None, baseline: str, splits: str, out: Path | None,
               revision: str | None) -> None:
    """Response Quality Gap, rating agreement, kinship and factor differences per mode vs the baseline.

    \b
    Writes report.md (with PNG charts in figures/) and report.json, and prints a summary.
    Example:  karma report karma-quickstart/dataset --modes sim,score
    """
    from rich.console import Console

    from karma_hf.report import run_report, summary_table

    console = Console()
    with console.status(f"analysing {dataset} ..."):
        res = run_report(dataset, modes=_csv_list(modes), out=out, baseline=baseline,
                         splits=_csv_list(splits) or ("train", "test"), revision=revision)
    console.print(summary_table(res.report))
    console.print(f"report:  {res.markdown}\njson:    {res.json}\nfigures: {res.figures[0].parent}/")


@cli.command("quickstart")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("karma-quickstart"),
              show_default=True, help="Folder for the dataset, card, plots and report.")
def quickstart_cmd(out: Path) -> None:
    """Run the whole method offline on the embedded (synthetic) UltraFeedback sample.

    \b
    Kinship on the paper's scores -> all four preference sets (score, sim, score_sim, rlaif)
    -> dataset folder + card -> kinship plots -> report. No network, no GPU, < 1 minute.
    """
    from karma_hf.quickstart import run_quickstart

    run_quickstart(out)


# --- train + compare ---
_TRAIN_HELP_TAIL = """
    \b
    Every field of TRL's ScriptArguments (dataset_name, dataset_config = the KARMA mode,
    dataset_train_split, dataset_test_split), {cfg} (and transformers' TrainingArguments)
    and ModelConfig (model_name_or_path, dtype, use_peft, lora_r, load_in_4bit, ...) is
    accepted from the YAML and as --flag value (flags win), plus karma's own options
    (karma_eval_tasks, karma_eval_limit, karma_eval_on_save, dataset_revision, ...).
    `--list-fields` prints them all. An unknown or removed key is an error naming it.
    \b
    Multi-GPU / DeepSpeed / FSDP, no code change:
      accelerate launch --config_file recipes/accelerate/zero3.yaml -m karma_hf.cli \\
          train {stage} --config recipes/qwen2.5-7b-instruct/{stage}.yaml
"""


def _train_command(stage: str, cfg: str, summary: str):
    @click.command(stage, context_settings={**CONTEXT_SETTINGS, "ignore_unknown_options": True,
                                            "allow_extra_args": True},
                   help=summary + "\n" + _TRAIN_HELP_TAIL.format(cfg=cfg, stage=stage))
    @click.option("--list-fields", is_flag=True, help="Print every accepted field (TRL's parser help) and exit.")
    @click.pass_context
    def command(ctx: click.Context, list_fields: bool) -> None:
        import os

        from karma_hf.train import make_parser, train

        if list_fields:
            click.echo(make_parser(stage).format_help())
            return
        result = train(stage, list(ctx.args))
        if os.environ.get("RANK", "0") != "0":
            return
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"karma train {stage}", show_header=False)
        table.add_row("output_dir", str(result.output_dir))
        table.add_row("steps", str(result.global_step))
        if "train_loss" in result.metrics:
            table.add_row("train loss", f"{result.metrics['train_loss']:.4f}")
        table.add_row("train time", f"{result.train_seconds:.1f} s")
        table.add_row("provenance", str(result.output_dir / "karma_provenance.json"))
        for f in result.eval_files:
            table.add_row("karma eval", str(f))
        Console().print(table)

    return command


@cli.group("train", context_settings=CONTEXT_SETTINGS)
def train_group() -> None:
    """Align a student on a KARMA set with TRL: `karma train sft|dpo --config RECIPE.yaml`.

    \b
    Recipes: recipes/<model>/{sft,dpo}.yaml (paper Appendix A settings), recipes/tiny/ (CPU).
    Each run writes karma_provenance.json and a model-card section tying it to its data;
    with --karma_eval_tasks karma it is scored on the karma tasks (RUN_DIR/karma_eval/).
    """


train_group.add_command(_train_command(
    "sft", "SFTConfig", "Supervised fine-tuning on the chosen responses (prompt/completion, completion-only loss)."))
train_group.add_command(_train_command(
    "dpo", "DPOConfig", "DPO on the KARMA pairs (prompt/chosen/rejected)."))


@cli.command("compare")
@click.argument("run_dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--baseline", type=click.Path(path_type=Path), default=None,
              help="Run to mark as baseline (e.g. the RLAIF-trained run); deltas are against it.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the bar chart (PNG/SVG/PDF by suffix).")
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json"]), default="table",
              show_default=True)
def compare(run_dirs: tuple[Path, ...], baseline: Path | None, plot_path: Path | None, fmt: str) -> None:
    """Karma-task scores of trained runs side by side, grouped by KARMA mode (paper Fig. 5/6).

    \b
    Reads RUN_DIR/karma_eval/ (lm-eval results) and RUN_DIR/karma_provenance.json.
    Example:  karma compare runs/dpo-score runs/dpo-sim --baseline runs/dpo-rlaif --plot cmp.png
    """
    import json

    from karma_hf.compare import compare_runs, plot_comparison

    cmp = compare_runs(list(run_dirs), baseline=baseline)
    if fmt == "json":
        click.echo(json.dumps(cmp.to_dict(), indent=2))
    elif fmt == "markdown":
        click.echo(cmp.to_markdown())
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="karma compare" + (" (delta vs baseline)" if cmp.baseline else ""))
        for col in ("run", "mode", "stage", *[c.removeprefix("karma_") for c in cmp.columns]):
            table.add_column(col, justify="left" if col in ("run", "mode", "stage") else "right")
        for r in cmp.runs:
            cells = []
            for c in cmp.columns:
                d = cmp.delta(r, c)
                tail = "" if d is None else (f" [green]({d:+.3f})[/]" if d >= 0 else f" [red]({d:+.3f})[/]")
                cells.append(f"{cmp.value(r, c):.3f}{tail}")
            name = f"[bold]{r.label}[/] (baseline)" if r.is_baseline else r.label
            table.add_row(name, r.mode or "?", r.stage or "?", *cells)
        Console().print(table)
    for note in cmp.notes:
        click.echo(f"note: {note}", err=True)
    if plot_path is not None:
        click.echo(f"wrote {plot_comparison(cmp, plot_path)}")


if __name__ == "__main__":  # pragma: no cover
    main()
