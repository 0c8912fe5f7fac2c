"""Digest of what `karma quickstart` writes: sha256 of every parquet file and PNG, one per line.

Used to check that a refactor changes no data and no figure: run it before and after, and diff.

    python scripts/quickstart_digest.py > before.txt   # on the old commit
    python scripts/quickstart_digest.py > after.txt    # on the new one
    diff before.txt after.txt && echo identical
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path


def digest(out: Path) -> list[str]:
    files = sorted(p for p in out.rglob("*") if p.suffix in (".parquet", ".png"))
    return [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(out)}" for p in files]


def main() -> int:
    from karma_hf.quickstart import run_quickstart

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "qs"
        run_quickstart(out, quiet=True)
        lines = digest(out)
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
