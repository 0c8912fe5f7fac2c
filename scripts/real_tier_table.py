"""Accuracy table of the real-model tier, from its logged samples.

    KARMA_REAL_TIER_OUT=/tmp/real-tier python -m pytest -q tests/test_real_models.py
    python scripts/real_tier_table.py /tmp/real-tier            # every model folder under it
    python scripts/real_tier_table.py NAME=DIR [NAME=DIR ...]   # or name them

For each model and karma_* task: items scored (the --limit), exact_match under the default
filter (robust-extract) and under strict-match, the share of outputs each filter read an
answer from, and the chance level (uniform guessing over each item's own options).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from real_models import read_samples, summarise  # noqa: E402

TASKS = ["karma_mmlu_stem", "karma_mmlu_pro", "karma_hellaswag", "karma_arc_easy", "karma_arc_challenge"]


def _tasks_in(run: Path) -> list[str]:
    found = {p.name.removeprefix("samples_").rsplit("_", 1)[0] for p in run.glob("**/samples_*.jsonl")}
    return [t for t in TASKS if t in found] + sorted(found - set(TASKS))


def table(runs: dict[str, Path], tasks: list[str] | None = None) -> str:
    """Markdown: one row per (model, task)."""
    lines = [
        "| model | task | items | accuracy (robust-extract) | accuracy (strict-match) | answer read (robust) "
        "| answer read (strict) | chance |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, run in runs.items():
        for task in tasks or _tasks_in(run):
            s = summarise(read_samples(run, task))
            lines.append(
                f"| {name} | {task} | {s['items']} | {s['accuracy']:.3f} | {s['strict_accuracy']:.3f} "
                f"| {s['extraction_rate']:.0%} | {s['extracted:strict-match']:.0%} | {s['chance']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="DIR holding one folder per model, or NAME=DIR")
    ap.add_argument("--json", type=Path, help="also write the summaries here")
    args = ap.parse_args()
    runs: dict[str, Path] = {}
    for item in args.runs:
        name, sep, folder = item.partition("=")
        if sep:
            runs[name] = Path(folder)
        else:
            runs.update({p.name: p for p in sorted(Path(item).iterdir()) if p.is_dir()})
    print(table(runs), end="")
    if args.json:
        summaries = {name: {t: summarise(read_samples(run, t)) for t in _tasks_in(run)} for name, run in runs.items()}
        args.json.write_text(json.dumps(summaries, indent=1) + "\n")


if __name__ == "__main__":
    main()
