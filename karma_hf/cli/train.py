"""`karma train <stage>` (one subcommand per registered stage) and `karma compare`."""

from __future__ import annotations

from pathlib import Path

import click

from karma_hf.cli.common import CONTEXT_SETTINGS

_TRAIN_HELP_TAIL = """
    \b
    Every field of TRL's ScriptArguments (dataset_name, dataset_config = the KARMA mode,
    dataset_train_split, dataset_test_split), the stage's TRL config (and transformers'
    TrainingArguments) and ModelConfig (model_name_or_path, dtype, use_peft, lora_r,
    load_in_4bit, ...) is accepted from the YAML and as --flag value (flags win; -o/--out is
    --output_dir), plus karma's
    own options (karma_eval_tasks, karma_eval_limit, karma_eval_on_save, dataset_revision, ...).
    `--list-fields` prints them all. An unknown or removed key is an error naming it.
    \b
    Multi-GPU / DeepSpeed / FSDP, no code change:
      accelerate launch --config_file recipes/accelerate/zero3.yaml -m karma_hf.cli \\
          train {stage} --config recipes/qwen2.5-7b-instruct/{stage}.yaml
"""


#: Spellings of ``--output_dir`` that every other karma command uses for its output folder.
OUTPUT_ALIASES = ("-o", "--out", "--output")


def output_aliases(argv: list[str]) -> list[str]:
    """``-o DIR`` / ``--out DIR`` / ``--out=DIR`` become TRL's ``--output_dir DIR``."""
    out = []
    for arg in argv:
        flag, eq, value = arg.partition("=")
        if flag in OUTPUT_ALIASES:
            out += ["--output_dir", value] if eq else ["--output_dir"]
        else:
            out.append(arg)
    return out


def _train_command(stage: str, summary: str) -> click.Command:
    @click.command(
        stage,
        context_settings={**CONTEXT_SETTINGS, "ignore_unknown_options": True, "allow_extra_args": True},
        help=summary + "\n" + _TRAIN_HELP_TAIL.format(stage=stage),
        short_help=summary,
    )
    @click.option(
        "--list-fields",
        "--list_fields",
        "list_fields",
        is_flag=True,
        help="Print every accepted field (TRL's parser help) and exit.",
    )
    @click.pass_context
    def command(ctx: click.Context, list_fields: bool) -> None:
        import os

        from karma_hf.train import train
        from karma_hf.train.args import make_parser

        if list_fields:
            click.echo(make_parser(stage).format_help())
            return
        result = train(stage, output_aliases(list(ctx.args)))
        if os.environ.get("RANK", "0") != "0":
            return
        from rich.console import Console

        from karma_hf.cli.render import train_result_table

        Console().print(train_result_table(stage, result))

    return command


class _StageGroup(click.Group):
    """One subcommand per stage registered in :mod:`karma_hf.train.stages` (looked up when run)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from karma_hf.train.stages import stage_names

        return list(stage_names())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from karma_hf.train.stages import stage_names

        if cmd_name not in stage_names():
            return None
        from karma_hf.train.stages import get_stage

        return _train_command(cmd_name, get_stage(cmd_name).help)


@click.group("train", cls=_StageGroup, context_settings=CONTEXT_SETTINGS)
def train_group() -> None:
    """Align a student on a KARMA set with TRL: `karma train <stage> --config RECIPE.yaml`.

    \b
    Recipes: recipes/<model>/{sft,dpo}.yaml (paper Appendix A settings), recipes/tiny/ (CPU).
    Each run writes karma_provenance.json and a model-card section tying it to its data;
    with --karma_eval_tasks karma it is scored on the karma tasks (RUN_DIR/karma_eval/).
    """


@click.command("compare")
@click.argument("run_dirs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--baseline",
    type=click.Path(path_type=Path),
    default=None,
    help="Run to mark as baseline (e.g. the RLAIF-trained run); deltas are against it.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the bar chart (PNG/SVG/PDF by suffix).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "markdown", "json"]),
    default="table",
    show_default=True,
    help="table: a rich table; markdown: a Markdown table (for a README); json: every score and delta.",
)
def compare(run_dirs: tuple[Path, ...], baseline: Path | None, plot_path: Path | None, fmt: str) -> None:
    """Karma-task scores of trained runs side by side, grouped by KARMA mode (paper Fig. 5/6).

    \b
    Reads RUN_DIR/karma_eval/ (lm-eval results) and RUN_DIR/karma_provenance.json.
    Example:  karma compare runs/dpo-score runs/dpo-sim --baseline runs/dpo-rlaif --plot cmp.png
    """
    import json

    from karma_hf.evaluation.compare import compare_runs, plot_comparison

    cmp = compare_runs(list(run_dirs), baseline=baseline)
    if fmt == "json":
        click.echo(json.dumps(cmp.to_dict(), indent=2))
    elif fmt == "markdown":
        click.echo(cmp.to_markdown())
    else:
        from rich.console import Console

        from karma_hf.cli.render import compare_table

        Console().print(compare_table(cmp))
    for note in cmp.notes:
        click.echo(f"note: {note}", err=True)
    if plot_path is not None:
        click.echo(f"wrote {plot_comparison(cmp, plot_path)}")
