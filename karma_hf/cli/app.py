"""The ``karma`` command line: a thin click layer over the library.

Every command parses options, calls one library function, and prints. User errors
(:class:`karma_hf.errors.KarmaError`, bad click options) print one ``error: ...`` line and
exit 2; ``karma --verbose ...`` shows the traceback too. Nothing in ``karma_hf`` imports
this module.
"""

from __future__ import annotations

import sys
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path

import click

from karma_hf import __version__
from karma_hf.cli import build, eval, generate, hub, kinship, pipeline, report, train
from karma_hf.cli.common import CONTEXT_SETTINGS
from karma_hf.errors import KarmaError, os_error_message


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="karma")
@click.option("--verbose", is_flag=True, help="Show tracebacks and debug logs on errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """KARMA: kinship-aware preference mapping for the Hugging Face alignment stack.

    \b
    Pipeline:  karma eval  -> karma kinship / plot -> karma build -> karma push
               -> karma train <stage> -> karma compare
    Start with:  karma quickstart
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose


def _echo_err(message: str) -> None:
    click.echo(f"error: {message}", err=True)


_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


@contextmanager
def _karma_warnings():
    """Warnings raised from karma-hf's own code print as one ``warning: ...`` line each."""
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if str(filename).startswith(_PACKAGE_DIR) and issubclass(category, UserWarning):
            click.echo(f"warning: {message}", err=True)
        else:
            original(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = original


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point with the common error path."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args
    try:
        with _karma_warnings():
            rv = cli.main(args=args, prog_name="karma", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:  # click's form of KeyboardInterrupt (Ctrl-C)
        _echo_err("interrupted")
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
    except OSError as exc:  # an output path whose parent is a file, a read-only folder, a full disk...
        if verbose:
            traceback.print_exc()
        _echo_err(os_error_message(exc))
        sys.exit(2)
    sys.exit(rv if isinstance(rv, int) else 0)


for _command in (
    kinship.kinship,
    kinship.plot,
    build.build_cmd,
    hub.push,
    report.report_cmd,
    report.quickstart_cmd,
    train.train_group,
    train.compare,
    eval.eval_cmd,
    eval.tasks_path_cmd,
    eval.data_group,
    generate.generate_cmd,
    pipeline.run_cmd,
):
    cli.add_command(_command)
