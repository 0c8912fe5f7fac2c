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


# --- hub ---
@cli.command("push", context_settings=CONTEXT_SETTINGS)
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--repo", "repo_id", required=True, metavar="USER/NAME",
              help="Dataset repo to publish to (created if missing).")
@click.option("--private", is_flag=True, help="Create the repo as private (ignored if it already exists).")
@click.option("--revision", default=None, metavar="BRANCH", help="Branch to commit to (created from main if missing).")
@click.option("--message", "-m", "commit_message", default=None, help="Commit message.")
def push(folder: Path, repo_id: str, private: bool, revision: str | None, commit_message: str | None) -> None:
    """Publish a `karma build` output folder to the Hub as ONE commit (all configs + card).

    \b
    Token: HF_TOKEN or `hf auth login`. A failed push leaves the repo unchanged.
    Example:  karma push out/karma-uf --repo me/karma-ultrafeedback
    """
    from karma_hf.hub import push_folder, scan_folder

    plan = scan_folder(folder)
    result = push_folder(folder, repo_id, private=private, revision=revision, token=None,
                         commit_message=commit_message)
    where = f"datasets/{result.repo_id}@{result.revision}"
    configs = f"{len(plan.configs)} configs: {', '.join(plan.configs)}"
    if result.changed:
        click.echo(f"pushed {len(result.files)} files ({configs}) to {where} in one commit")
    else:
        click.echo(f"unchanged: {where} already holds these {len(result.files)} files ({configs}); no commit made")
    click.echo(f"commit: {result}")
    click.echo(f'load:   datasets.load_dataset("{result.repo_id}", "{plan.configs[0]}"'
               + (f', revision="{revision}")' if revision else ")"))
    if plan.skipped:
        click.echo(f"not pushed (outside the karma layout): {', '.join(plan.skipped)}")


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
        table.add_column("what", style="bold")
        table.add_column("value", overflow="fold")
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
        table.add_column("benchmark")
        for r in cmp.runs:
            head = f"{r.label}\n{r.mode or '?'} {r.stage or ''}".rstrip()
            table.add_column(head + ("\n(baseline)" if r.is_baseline else ""), justify="right")
        for c in cmp.columns:
            cells = []
            for r in cmp.runs:
                d = cmp.delta(r, c)
                tail = "" if d is None else (f" [green]{d:+.3f}[/]" if d >= 0 else f" [red]{d:+.3f}[/]")
                cells.append(f"{cmp.value(r, c):.3f}{tail}")
            table.add_row(c.removeprefix("karma_"), *cells, end_section=c == cmp.benchmarks[-1])
        Console().print(table)
    for note in cmp.notes:
        click.echo(f"note: {note}", err=True)
    if plot_path is not None:
        click.echo(f"wrote {plot_comparison(cmp, plot_path)}")


# --- build ---
@cli.command("build", context_settings=CONTEXT_SETTINGS)
@click.option("--source", default="openbmb/UltraFeedback", show_default=True, metavar="HUB_ID|PATH",
              help="Response dataset: Hub id, or a local .parquet/.jsonl/.arrow file or save_to_disk folder.")
@click.option("--revision", default=None, metavar="REV",
              help="Hub revision (default for openbmb/UltraFeedback: the pinned overall_score-fix revision).")
@click.option("--split", "source_split", default="train", show_default=True, help="Split of the source to read.")
@_score_options
@click.option("--modes", default="score,sim,score_sim,rlaif", show_default=True,
              help="Comma-separated: score, sim, score_sim (KARMA) and rlaif (instance-rating baseline).")
@click.option("--tau", type=click.FloatRange(0.0, 1.0), default=0.1, show_default=True,
              help="Kinship threshold: pairs with cosine below it are never paired.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the test split and rlaif draws.")
@click.option("--test-size", default="2000", show_default=True, metavar="N|FRACTION",
              help="Distinct prompts held out as the test split of every mode (or a fraction in (0, 1)).")
@click.option("--rating", type=click.Choice(["aspects", "overall_score"]), default="aspects", show_default=True,
              help="Per-instance rating (rlaif, score_* columns): mean of the 4 aspect ratings, or overall_score.")
@click.option("--ignore-unknown-models", is_flag=True,
              help="Skip (and count) completions of models missing from the score table instead of failing.")
@click.option("--strict", is_flag=True, help="Fail on the first malformed row instead of counting it.")
@click.option("--num-proc", type=click.IntRange(1, None), default=None, help="Processes for parsing.")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: <mode>/<split>-00000-of-00001.parquet, README.md, build_report.json.")
@click.option("--overwrite", is_flag=True, help="Replace a previous build in --output.")
@click.option("--push-to", default=None, metavar="USER/NAME", help="Publish the folder to this Hub dataset repo.")
@click.option("--private", is_flag=True, help="With --push-to: create the repo as private.")
def build_cmd(source, revision, source_split, scores, benchmarks, allow_missing, aliases, modes, tau, seed,
              test_size, rating, ignore_unknown_models, strict, num_proc, output, overwrite, push_to, private):
    """UltraFeedback-format responses -> kin-pair preference sets (one config per mode) + card.

    \b
    karma build --scores ultrafeedback-paper --output out/karma-uf
    karma build --source data.jsonl --scores results/ --modes sim,rlaif --test-size 500 -o out/sim
    karma build --scores ultrafeedback-paper -o out/karma-uf --push-to me/karma-ultrafeedback
    """
    import shlex

    from rich.console import Console

    from karma_hf.binarize import build, summary_renderables

    if private and not push_to:
        raise click.BadParameter("--private needs --push-to", param_hint="--private")
    try:
        size: int | float = float(test_size) if any(c in test_size for c in ".eE") else int(test_size)
    except ValueError:
        raise click.BadParameter(f"{test_size!r} is neither a count nor a fraction", param_hint="--test-size")
    if push_to:
        from karma_hf.hub import normalize_repo_id

        push_to = normalize_repo_id(push_to)
    table = _load_table(scores, benchmarks, allow_missing, aliases)
    parts = ["karma", "build", "--source", str(source)] + (["--revision", revision] if revision else [])
    parts += [x for s in scores for x in ("--scores", str(s))]
    parts += ["--modes", modes, "--tau", str(tau), "--seed", str(seed), "--test-size", test_size,
              "--rating", rating] + (["--ignore-unknown-models"] if ignore_unknown_models else [])
    parts += ["--output", str(output)] + (["--push-to", push_to] if push_to else [])
    result = build(source, scores=table, modes=modes, tau=tau, seed=seed, test_size=size, revision=revision,
                   output=output, split=source_split, rating=rating, ignore_unknown_models=ignore_unknown_models,
                   strict=strict, num_proc=num_proc, overwrite=overwrite, progress=True,
                   command=shlex.join(parts), repo_id=push_to)
    console = Console(stderr=False)
    for renderable in summary_renderables(result.report):
        console.print(renderable)
    malformed = result.report["malformed_examples"]
    if malformed:
        first = malformed[0]
        count = next(iter(result.report["modes"].values()))["dropped"]["malformed"]
        click.echo(f"note: {count} malformed row(s) dropped, e.g. row {first['row']}: {first['reason']} "
                   "(all in build_report.json; --strict makes them an error)", err=True)
    skipped = result.report["skipped_completions"]["unknown_model"]
    if skipped:
        click.echo("note: skipped completions of unknown models: "
                   + ", ".join(f"{k} ({v})" for k, v in skipped.items()), err=True)
    click.echo(f"wrote {output}/ ({', '.join(result.modes)}; README.md, build_report.json)")
    if push_to:
        from karma_hf.hub import push_folder

        url = push_folder(output, push_to, private=private)
        click.echo(f"pushed to datasets/{push_to}: {url}")
        click.echo(f'load:   datasets.load_dataset("{push_to}", "{result.modes[0]}")')


# --- eval (lm-eval tasks, karma eval, tasks-path, data download) ---
@cli.command("tasks-path")
def tasks_path_cmd() -> None:
    """Print the installed karma tasks folder, for lm-eval's --include_path.

    \b
    lm_eval run --include_path "$(karma tasks-path)" --tasks 'karma_*' --model hf --model_args pretrained=...
    """
    from karma_hf.resources import tasks_dir

    click.echo(str(tasks_dir()))


@cli.command("eval", context_settings={**CONTEXT_SETTINGS, "ignore_unknown_options": True,
                                       "allow_extra_args": True})
@click.option("--model", default="hf", show_default=True, help="lm-eval model type.")
@click.option("--model_args", "--model-args", "model_args", multiple=True, metavar="ARGS",
              help="lm-eval model arguments, e.g. pretrained=org/name,dtype=bfloat16; repeat for several "
                   "models (one results file each).")
@click.option("--models-file", "--models_file", "models_file", type=click.Path(dir_okay=False),
              help="File with one model_args string (or model path / Hub id) per line.")
@click.option("--tasks", default="karma", show_default=True,
              help="karma tasks / groups (karma, karma-knowledge, karma-reasoning, karma-instruction, "
                   "karma_*), comma separated; lm-eval task names work too.")
@click.option("--output_path", "--output-path", "output_path", type=click.Path(file_okay=False),
              default="karma-results", show_default=True,
              help="Results folder (lm-eval layout: <model>/results_<date>.json).")
@click.pass_context
def eval_cmd(ctx: click.Context, model: str, model_args: tuple[str, ...], models_file: str | None,
             tasks: str, output_path: str) -> None:
    """Evaluate models on the karma_* benchmarks with lm-eval; other options go to `lm_eval run`.

    \b
    karma eval --model_args pretrained=meta-llama/Llama-3.1-8B-Instruct --apply_chat_template \\
               --batch_size auto --output_path results/
    karma eval --models-file models.txt --limit 100 --log_samples
    karma kinship --scores results/
    Offline: export KARMA_DATA_DIR=DIR (see `karma data download`).
    """
    from karma_hf.evaluate import evaluate_models, read_models_file

    models = list(model_args) + (read_models_file(models_file) if models_file else [])

    def announce(i: int, n: int, margs: str) -> None:
        click.echo(f"[karma eval] model {i + 1}/{n}: {model} {margs}", err=True)

    files = evaluate_models(models, model=model, tasks=tasks, output_path=output_path,
                            extra_args=list(ctx.args), on_model=announce)
    for path in files:
        click.echo(f"wrote {path}")
    click.echo(f"next:  karma kinship --scores {output_path}")


@cli.group("data", context_settings=CONTEXT_SETTINGS)
def data_group() -> None:
    """Local copies of the benchmark data (for KARMA_DATA_DIR)."""


@data_group.command("download")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write; then export KARMA_DATA_DIR=<this folder>.")
@click.option("--source", "sources", multiple=True,
              type=click.Choice(["ifeval", "mmlu", "mmlu_pro", "arc_easy", "arc_challenge", "hellaswag"]),
              # = karma_hf.data_download.SOURCES (kept literal so the CLI imports nothing extra)
              help="Only these sources (repeatable; default all six).")
@click.option("--revision", default=None, help="Hub revision of every source.")
def data_download_cmd(out: Path, sources: tuple[str, ...], revision: str | None) -> None:
    """Save the six benchmark sources from the Hub in the KARMA_DATA_DIR layout (needs network).

    \b
    karma data download --out /shared/karma-data      # on a machine with internet
    export KARMA_DATA_DIR=/shared/karma-data           # on the air-gapped cluster
    karma eval --model_args pretrained=/models/my-model
    """
    from rich.progress import Progress

    from karma_hf.data_download import SOURCES, download

    keys = list(sources) or list(SOURCES)
    total = sum(len(SOURCES[k].splits) for k in keys)
    with Progress(transient=False) as progress:
        bar = progress.add_task("downloading", total=total)

        def done(src, split, rows, path) -> None:
            progress.console.print(f"{src.describe()} {split}: {rows} rows -> {path}")
            progress.advance(bar)

        download(out, sources=keys, revision=revision, on_split=done)
    click.echo(f"export KARMA_DATA_DIR={out.resolve()}")


if __name__ == "__main__":  # pragma: no cover
    main()
