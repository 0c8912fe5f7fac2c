"""The build report (``build_report.json``): what was read, kept and dropped, per mode."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from karma_hf import __version__
from karma_hf.layout import DROP_REASON_HELP, DROP_REASONS, RLAIF_RECIPES, mode_help
from karma_hf.pairs.config import BuildConfig, public_name
from karma_hf.pairs.decide import KEPT, STATUS, Decision, Rows
from karma_hf.pairs.exclusions import EXCLUDED_LABELS

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from karma_hf.kinship import Kinship
    from karma_hf.pairs.writer import Items
    from karma_hf.scores import ScoreTable


def build_report(
    config: BuildConfig,
    *,
    source_id: str,
    source_format: str,
    revision: str | None,
    rows: Rows,
    parsed: pa.Table,
    decisions: dict[str, Decision],
    items: dict[str, Items] | None = None,
    is_test: np.ndarray,
    kin: Kinship,
    table: ScoreTable,
    unknown: dict[str, int],
    command: str | None,
    truthfulqa_questions: int | None = None,
) -> dict[str, Any]:
    """Every count of a build, per mode (the card is rendered from this dict alone)."""
    malformed_rows = np.flatnonzero(rows.malformed)
    modes: dict[str, Any] = {}
    for mode, dec in decisions.items():
        kept = dec.status == KEPT
        dropped = {reason: int((dec.status == STATUS[reason]).sum()) for reason in DROP_REASONS}
        pair_counts: dict[tuple[str, str], int] = {}
        kept_rows = np.flatnonzero(kept)
        if kept_rows.size:
            c = rows.code[rows.offsets[kept_rows] + dec.chosen_pos[kept_rows]]
            r = rows.code[rows.offsets[kept_rows] + dec.rejected_pos[kept_rows]]
            width = np.int64(len(rows.vocab))
            keys, counts = np.unique(c * width + r, return_counts=True)  # one 1-D key per (chosen, rejected)
            pair_counts = {
                (rows.vocab[int(key // width)], rows.vocab[int(key % width)]): int(n)
                for key, n in zip(keys, counts, strict=True)
            }
        top = sorted(pair_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        modes[mode] = {
            "description": _description(mode, config),
            "rows": int(rows.n),
            "kept": int(kept.sum()),
            "dropped": dropped,
            "splits": {
                "train": int((kept & ~is_test).sum()),
                "test": int((kept & is_test).sum()),
                "train_sft": int((kept & ~is_test).sum()),
            },
            "distinct_pairs": len(pair_counts),
            "top_pairs": [{"chosen": a, "rejected": b, "count": n} for (a, b), n in top],
        }
    return {
        "karma_hf_version": __version__,
        "source": {
            "id": public_name(source_id),
            "format": source_format,
            "description": _source_description(source_format),
            "revision": revision,
            "split": config.split,
            "rows": int(rows.n),
        },
        "rating": config.rating,
        "rlaif": _rlaif_record(config, truthfulqa_questions) if "rlaif" in config.modes else None,
        "excluded_models": list(config.excluded_models),
        "tau": float(config.tau),
        "seed": int(config.seed),
        "test_size": config.test_size,
        "test_prompts": _distinct(parsed.column("prompt_id"), is_test),
        "ignore_unknown_models": bool(config.ignore_unknown_models),
        "skipped_completions": {
            "unknown_model": unknown if config.ignore_unknown_models else {},
            "excluded_model": rows.excluded_counts(),
        },
        "empty_completions": int((rows.empty & ~rows.malformed[rows.parent]).sum()),
        "malformed_examples": [
            {"row": int(i), "reason": rows.malformed_reason(parsed, int(i))} for i in malformed_rows[:20]
        ],
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
            name: _config_record(mode, form, (items or {}).get(name), is_test) for name, mode, form in config.configs()
        },
        "command": command or config.to_command(),
    }


def _distinct(prompt_ids: pa.ChunkedArray, mask: np.ndarray) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not mask.any():
        return 0
    return int(pc.count_distinct(prompt_ids.filter(pa.array(mask))).as_py())


def _config_record(mode: str, form: str, items: Items | None, is_test: np.ndarray) -> dict[str, Any]:
    """One config (a mode in a form): its rows per split and the source rows they come from."""
    from karma_hf.layout import FORMS

    rows = items.row if items is not None else np.zeros(0, dtype=np.int64)
    test = is_test[rows]
    train, n_test = int((~test).sum()), int(test.sum())
    counts = {"train": train, "test": n_test, "train_sft": train}
    return {
        "mode": mode,
        "form": form,
        "description": FORMS[form].help,
        "rows": int(rows.size),
        "source_rows": int(np.unique(rows).size),
        "splits": {split: counts[split] for split in FORMS[form].splits},
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
