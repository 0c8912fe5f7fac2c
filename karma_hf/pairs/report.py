"""The build report (``build_report.json``): what was read, kept and dropped, per mode."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from karma_hf import __version__
from karma_hf.layout import DROP_REASON_HELP, DROP_REASONS, RLAIF_RECIPES, mode_help
from karma_hf.pairs.config import BuildConfig, public_name
from karma_hf.pairs.decide import KEPT, STATUS, Decision, Rows
from karma_hf.pairs.exclusions import EXCLUDED_LABELS

if TYPE_CHECKING:  # pragma: no cover
    from karma_hf.kinship import Kinship
    from karma_hf.pairs.writer import Items
    from karma_hf.scores import ScoreTable


@dataclass
class BuildStats:
    """What the build report counts, gathered batch by batch (per-row state: one int8 status per
    mode and row; everything else is a count)."""

    n: int
    modes: tuple[str, ...]
    configs: tuple[tuple[str, str, str], ...]  # (name, mode, form)
    statuses: dict[str, np.ndarray] = field(default_factory=dict)
    pair_counts: dict[str, dict[tuple[int, int], int]] = field(default_factory=dict)
    config_rows: dict[str, dict[str, int]] = field(default_factory=dict)
    malformed: int = 0
    malformed_examples: list[tuple[int, str]] = field(default_factory=list)
    unknown: dict[str, int] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    empty_completions: int = 0
    test_prompts: int = 0

    def __post_init__(self) -> None:
        for mode in self.modes:
            self.statuses[mode] = np.zeros(self.n, dtype=np.int8)
            self.pair_counts[mode] = {}
        for name, _, _ in self.configs:
            self.config_rows[name] = {"rows": 0, "test": 0, "source_rows": 0}

    def add_scan(self, rows: Rows, reasons: list[tuple[int, str]]) -> None:
        """The parsed rows of one batch (``reasons``: its malformed rows, source index and reason)."""
        self.malformed += len(reasons)
        self.malformed_examples.extend(reasons[: max(0, 20 - len(self.malformed_examples))])
        for name, count in rows.unknown_counts().items():
            self.unknown[name] = self.unknown.get(name, 0) + count
        for name, count in rows.excluded_counts().items():
            self.excluded[name] = self.excluded.get(name, 0) + count
        self.empty_completions += int((rows.empty & ~rows.malformed[rows.parent]).sum())

    def unknown_counts(self) -> dict[str, int]:
        """As :meth:`Rows.unknown_counts`: most completions first, then by name."""
        return dict(sorted(self.unknown.items(), key=lambda kv: (-kv[1], kv[0])))

    def add_decisions(self, rows: Rows, decisions: dict[str, Decision]) -> None:
        """One batch's decisions (rows ``rows.start`` on)."""
        width = np.int64(len(rows.vocab))
        for mode, dec in decisions.items():
            self.statuses[mode][rows.start : rows.start + rows.n] = dec.status
            kept_rows = np.flatnonzero(dec.status == KEPT)
            if not kept_rows.size:
                continue
            c = rows.code[rows.offsets[kept_rows] + dec.chosen_pos[kept_rows]]
            r = rows.code[rows.offsets[kept_rows] + dec.rejected_pos[kept_rows]]
            keys, counts = np.unique(c * width + r, return_counts=True)  # one 1-D key per (chosen, rejected)
            pairs = self.pair_counts[mode]
            for key, n in zip(keys.tolist(), counts.tolist(), strict=True):
                pair = (key // int(width), key % int(width))
                pairs[pair] = pairs.get(pair, 0) + n

    def add_items(self, items: dict[str, Items], is_test: np.ndarray) -> None:
        """One batch's rows of every config (``is_test``: per batch row)."""
        for name, it in items.items():
            counts = self.config_rows[name]
            counts["rows"] += len(it)
            counts["test"] += int(is_test[it.row].sum())
            counts["source_rows"] += int(np.unique(it.row).size)


def build_report(
    config: BuildConfig,
    *,
    source_id: str,
    source_format: str,
    revision: str | None,
    stats: BuildStats,
    vocab: tuple[str, ...],
    is_test: np.ndarray,
    kin: Kinship,
    table: ScoreTable,
    command: str | None,
    truthfulqa_questions: int | None = None,
) -> dict[str, Any]:
    """Every count of a build, per mode (the card is rendered from this dict alone)."""
    modes: dict[str, Any] = {}
    for mode in stats.modes:
        status = stats.statuses[mode]
        kept = status == KEPT
        by_code = np.bincount(status, minlength=len(DROP_REASONS) + 1)
        dropped = {reason: int(by_code[STATUS[reason]]) for reason in DROP_REASONS}
        pair_counts = {(vocab[a], vocab[b]): n for (a, b), n in stats.pair_counts[mode].items()}
        top = sorted(pair_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        train = int((kept & ~is_test).sum())
        modes[mode] = {
            "description": _description(mode, config),
            "rows": int(stats.n),
            "kept": int(kept.sum()),
            "dropped": dropped,
            "splits": {"train": train, "test": int((kept & is_test).sum()), "train_sft": train},
            "distinct_pairs": len(pair_counts),
            "top_pairs": [{"chosen": a, "rejected": b, "count": n} for (a, b), n in top],
        }
    unknown = stats.unknown_counts()
    return {
        "karma_hf_version": __version__,
        "source": {
            "id": public_name(source_id),
            "format": source_format,
            "description": _source_description(source_format),
            "revision": revision,
            "split": config.split,
            "rows": int(stats.n),
        },
        "rating": config.rating,
        "rlaif": _rlaif_record(config, truthfulqa_questions) if "rlaif" in config.modes else None,
        "excluded_models": list(config.excluded_models),
        "tau": float(config.tau),
        "seed": int(config.seed),
        "test_size": config.test_size,
        "test_prompts": stats.test_prompts,
        "ignore_unknown_models": bool(config.ignore_unknown_models),
        "skipped_completions": {
            "unknown_model": unknown if config.ignore_unknown_models else {},
            "excluded_model": {name: stats.excluded.get(name, 0) for name in config.excluded_models},
        },
        "empty_completions": stats.empty_completions,
        "malformed_examples": [{"row": int(i), "reason": reason} for i, reason in stats.malformed_examples],
        "drop_reasons": DROP_REASON_HELP,
        "scores": {
            "source": ", ".join(public_name(p) for p in table.source.split(", ")),
            "models": list(table.models),
            "benchmarks": list(table.benchmarks),
            "known_unscored": list(table.known_unscored),
        },
        "kinship": kin.to_dict(),
        "modes": modes,
        "forms": list(config.forms),
        "max_pairs_per_prompt": config.max_pairs_per_prompt,
        "configs": {
            name: _config_record(mode, form, stats.config_rows[name]) for name, mode, form in config.configs()
        },
        "command": command or config.to_command(),
    }


def _config_record(mode: str, form: str, counts: dict[str, int]) -> dict[str, Any]:
    """One config (a mode in a form): its rows per split and the source rows they come from."""
    from karma_hf.layout import FORMS

    train, n_test = counts["rows"] - counts["test"], counts["test"]
    split_rows = {"train": train, "test": n_test, "train_sft": train}
    return {
        "mode": mode,
        "form": form,
        "description": FORMS[form].help,
        "rows": int(counts["rows"]),
        "source_rows": int(counts["source_rows"]),
        "splits": {split: split_rows[split] for split in FORMS[form].splits},
    }


def _source_description(source_format: str) -> str | None:
    """The registered schema's one-line description (what the card says the source is)."""
    from karma_hf.sources.registry import get_source

    try:
        return get_source(source_format).description
    except Exception:  # noqa: BLE001 - an in-memory or unregistered schema has none
        return None


def _description(mode: str, config: BuildConfig) -> str:
    if mode == "rlaif":
        return f"baseline: instance-wise binarization by AI ratings, {config.rlaif_recipe} recipe"
    return mode_help(mode)


def _rlaif_record(config: BuildConfig, truthfulqa_questions: int | None) -> dict[str, Any]:
    """How the ``rlaif`` baseline was made: recipe, the score it ranks by, TruthfulQA filter."""
    h4 = config.rlaif_recipe == "h4"
    return {
        "recipe": config.rlaif_recipe,
        "description": RLAIF_RECIPES[config.rlaif_recipe],
        "ranked_by": "overall_score" if h4 else config.rating,
        "ties": "kept" if h4 else "dropped",
        "excluded_sources": list(EXCLUDED_LABELS) if h4 else [],
        "truthfulqa_questions": (
            {"file": public_name(config.truthfulqa_questions), "questions": truthfulqa_questions}
            if h4 and config.truthfulqa_questions
            else None
        ),
    }
