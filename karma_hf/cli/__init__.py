"""The ``karma`` command line: one module per command group, all terminal rendering in :mod:`.render`.

Nothing in ``karma_hf`` imports this package.
"""

from karma_hf.cli.app import cli, main

__all__ = ["cli", "main"]
