"""`karma eval`, `karma tasks-path`, `karma data download`."""

from __future__ import annotations

from pathlib import Path

import click

from karma_hf.cli.common import CONTEXT_SETTINGS


# --- eval (lm-eval tasks, karma eval, tasks-path, data download) ---
@click.command("tasks-path")
def tasks_path_cmd() -> None:
    """Print the installed karma tasks folder, for lm-eval's --include_path.

    \b
    lm_eval run --include_path "$(karma tasks-path)" --tasks 'karma_*' --model hf --model_args pretrained=...
    """
    from karma_hf.resources import tasks_dir

    click.echo(str(tasks_dir()))


@click.command("eval", context_settings={**CONTEXT_SETTINGS, "ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--model", default="hf", show_default=True, help="lm-eval model type.")
@click.option(
    "--model_args",
    "--model-args",
    "model_args",
    multiple=True,
    metavar="ARGS",
    help="lm-eval model arguments, e.g. pretrained=org/name,dtype=bfloat16; repeat for several "
    "models (one results file each).",
)
@click.option(
    "--models-file",
    "--models_file",
    "models_file",
    type=click.Path(dir_okay=False),
    help="File with one model_args string (or model path / Hub id) per line.",
)
@click.option(
    "--tasks",
    default="karma",
    show_default=True,
    help="karma tasks / groups (karma, karma-knowledge, karma-reasoning, karma-instruction, "
    "karma_*), comma separated; lm-eval task names work too.",
)
@click.option(
    "--output_path",
    "--output-path",
    "--out",
    "-o",
    "output_path",
    type=click.Path(file_okay=False),
    default="karma-results",
    show_default=True,
    help="Results folder (lm-eval layout: <model>/results_<date>.json).",
)
@click.pass_context
def eval_cmd(
    ctx: click.Context, model: str, model_args: tuple[str, ...], models_file: str | None, tasks: str, output_path: str
) -> None:
    """Evaluate models on the karma_* benchmarks with lm-eval; other options go to `lm_eval run`.

    \b
    karma eval --model_args pretrained=meta-llama/Llama-3.1-8B-Instruct --apply_chat_template \\
               --batch_size auto --output_path results/
    karma eval --models-file models.txt --limit 100 --log_samples
    karma kinship --scores results/
    Offline: export KARMA_DATA_DIR=DIR (see `karma data download`).
    """
    from karma_hf.evaluation.run import evaluate_models, read_models_file

    models = list(model_args) + (read_models_file(models_file) if models_file else [])

    def announce(i: int, n: int, margs: str) -> None:
        click.echo(f"[karma eval] model {i + 1}/{n}: {model} {margs}", err=True)

    files = evaluate_models(
        models, model=model, tasks=tasks, output_path=output_path, extra_args=list(ctx.args), on_model=announce
    )
    for path in files:
        click.echo(f"wrote {path}")
    click.echo(f"next:  karma kinship --scores {output_path}")


@click.group("data", context_settings=CONTEXT_SETTINGS)
def data_group() -> None:
    """Local copies of the benchmark data (for KARMA_DATA_DIR)."""


@data_group.command("download")
@click.option(
    "--out",
    "--output",
    "-o",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write; then export KARMA_DATA_DIR=<this folder>.",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    type=click.Choice(["ifeval", "mmlu", "mmlu_pro", "arc_easy", "arc_challenge", "hellaswag"]),
    # = karma_hf.evaluation.data.SOURCES (kept literal so the CLI imports nothing extra)
    help="Only these sources (repeatable; default all six).",
)
@click.option("--revision", default=None, help="Hub revision of every source.")
def data_download_cmd(out: Path, sources: tuple[str, ...], revision: str | None) -> None:
    """Save the six benchmark sources from the Hub in the KARMA_DATA_DIR layout (needs network).

    \b
    karma data download --out /shared/karma-data      # on a machine with internet
    export KARMA_DATA_DIR=/shared/karma-data           # on the air-gapped cluster
    karma eval --model_args pretrained=/models/my-model
    """
    from rich.progress import Progress

    from karma_hf.evaluation.data import SOURCES, download

    keys = list(sources) or list(SOURCES)
    total = sum(len(SOURCES[k].splits) for k in keys)
    with Progress(transient=False) as progress:
        bar = progress.add_task("downloading", total=total)

        def done(src, split, rows, path) -> None:
            progress.console.print(f"{src.describe()} {split}: {rows} rows -> {path}")
            progress.advance(bar)

        download(out, sources=keys, revision=revision, on_split=done)
    click.echo(f"export KARMA_DATA_DIR={out.resolve()}")
