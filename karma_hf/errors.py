"""Errors a user can cause. The CLI prints them as one ``error: ...`` line and exits 2."""

from __future__ import annotations


class KarmaError(Exception):
    """A user error: bad path, unknown model, malformed input, bad option value.

    The message must name the file / field / value at fault; it is printed verbatim.
    """

    exit_code = 2
