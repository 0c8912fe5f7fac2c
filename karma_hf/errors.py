"""Errors a user can cause. The CLI prints them as one ``error: ...`` line and exits 2."""

from __future__ import annotations


class KarmaError(Exception):
    """A user error: bad path, unknown model, malformed input, bad option value.

    The message must name the file / field / value at fault; it is printed verbatim.
    """

    exit_code = 2


def os_error_message(exc: OSError) -> str:
    """``<path>: <reason>`` for an ``OSError`` on a user's path (the CLI prints it after ``error:``).

    A regular file where a folder must be (``out.txt/dir``, or ``mkdir`` of an existing file) is
    named as such instead of the bare "File exists" / "Not a directory" of the system call.
    """
    import os
    from pathlib import Path

    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return reason
    path = Path(os.fsdecode(exc.filename))
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        for candidate in (path, *path.parents):
            if candidate.exists():
                if not candidate.is_dir():
                    where = "is a file" if candidate == path else f"{candidate} is a file"
                    return f"{path}: {where}, not a folder"
                break
    return f"{path}: {reason}"
