"""Options and helpers shared by the command modules (nothing here prints tables)."""

from __future__ import annotations

from typing import Any

import click

CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def parse_test_size(text: str) -> int | float:
    """``--test-size`` text: an integer is a count of prompts, anything else a fraction in (0, 1)."""
    from karma_hf.errors import KarmaError
    from karma_hf.pairs.config import check_test_size

    value: int | float
    try:
        value = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError as exc:
            raise click.BadParameter(
                f"{text!r} is neither a count of prompts nor a fraction in (0, 1)", param_hint="--test-size"
            ) from exc
    try:
        return check_test_size(value)
    except KarmaError as exc:
        raise click.BadParameter(str(exc).removeprefix("--test-size "), param_hint="--test-size") from exc


def csv_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def score_options(f):
    """Options shared by every command that reads a score table."""
    f = click.option(
        "--aliases",
        "aliases",
        type=click.Path(dir_okay=False),
        help="JSON object mapping score-table model names to the dataset's model names.",
    )(f)
    f = click.option(
        "--allow-missing",
        "--allow_missing",
        "allow_missing",
        is_flag=True,
        help="Drop a benchmark (for all models, with a warning) when some model lacks it.",
    )(f)
    f = click.option(
        "--benchmark",
        "benchmarks",
        multiple=True,
        metavar="TASK[:METRIC]",
        help="lm-eval task (and metric key) to read instead of the six karma tasks; repeatable.",
    )(f)
    f = click.option(
        "--scores",
        "scores",
        multiple=True,
        required=True,
        metavar="SPEC",
        help="Preset name (ultrafeedback-paper), CSV file, lm-eval results folder or file, or NAME=PATH; repeatable.",
    )(f)
    return f


def load_table(scores, benchmarks, allow_missing, aliases):
    from karma_hf.scores import load_scores

    table = load_scores(
        list(scores), benchmarks=list(benchmarks) or None, allow_missing=allow_missing, aliases=aliases
    )
    for note in table.notes:
        click.echo(note if note.startswith("warning:") else f"note: {note}", err=True)
    return table


def kinship_of(table, tau):
    import warnings

    from karma_hf.kinship import Kinship

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kin = Kinship.from_table(table, tau=tau)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    return kin
