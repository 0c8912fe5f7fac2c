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


if __name__ == "__main__":  # pragma: no cover
    main()
