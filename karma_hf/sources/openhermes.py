"""``argilla/OpenHermesPreferences``: three policies' answers per prompt, ranked by PairRM.

One row: ``source``, ``category``, ``prompt`` (string), ``candidates_completions`` (list of
strings), ``candidate_policies`` (the model of each completion, same order), ``ranks`` (int64
per candidate, the lowest = best: ``chosen_policy`` has the lowest rank), ``rank_str``,
``chosen_policy``, ``chosen`` / ``rejected`` (``[{content, role}]`` conversations),
``rejected_policy``.

Mapping:

- completions: ``candidates_completions[i]`` by ``candidate_policies[i]``;
- prompt: ``chosen`` less its last (assistant) message when that ends with the ``prompt`` as a
  user turn (so a system message in front is kept), otherwise the ``prompt`` as one user
  message; ``prompt_id`` = :func:`~karma_hf.sources.messages.prompt_id_of` of the prompt;
- per-instance rating (``--rating rank``, the only one): ``-rank`` (higher is better), so the
  ``rlaif`` baseline's argilla recipe chooses the best-ranked candidate; null ``ranks`` = not rated;
- label (the pairs' ``source``): the ``source`` column (e.g. ``airoboros2.2``);
- malformed: a missing or blank ``prompt``, ``candidates_completions`` / ``candidate_policies``
  missing or of different lengths, ``ranks`` of another length, a policy that is not a string,
  the same policy twice, or a rank that is not a whole number >= 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from karma_hf.errors import KarmaError
from karma_hf.sources.messages import (
    blank,
    check_columns,
    concat_parsed,
    messages_array,
    number_problem,
    parsed_rows,
    prompt_id_of,
    prompt_problem,
    row_batches,
)
from karma_hf.sources.registry import SourceSchema, SourceTexts, register_source

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

HUB_ID = "argilla/OpenHermesPreferences"
RATING_METHODS: tuple[str, ...] = ("rank",)
_COLUMNS = {"prompt": "string", "candidates_completions": "list", "candidate_policies": "list"}


def matches(schema: pa.Schema) -> bool:
    """OpenHermesPreferences: ``candidates_completions`` and ``candidate_policies`` columns."""
    return {"candidates_completions", "candidate_policies"} <= set(schema.names)


def check_schema(schema: pa.Schema, rating: str = "rank") -> None:
    if rating not in RATING_METHODS:
        raise KarmaError(f"--rating must be one of {', '.join(RATING_METHODS)} for openhermes sources, got {rating!r}")
    check_columns(schema, _COLUMNS, HUB_ID)


def prompt_messages(prompt: Any, chosen: Any) -> list[dict[str, str]] | None:
    """The prompt as messages (see the module docstring); None when ``prompt`` is unusable."""
    if not isinstance(prompt, str) or not prompt.strip():
        return None
    if isinstance(chosen, list) and len(chosen) >= 2 and isinstance(chosen[-1], dict):
        head = chosen[:-1]
        if (
            chosen[-1].get("role") == "assistant"
            and prompt_problem(head) is None
            and head[-1]["content"].strip() == prompt.strip()
        ):
            return [{"role": m["role"], "content": m["content"]} for m in head]
    return [{"role": "user", "content": prompt}]


def parse_row(row: dict[str, Any], empty: list[bool]) -> tuple[str | None, str | None, list, list, list]:
    """(prompt_id, problem, models, empty, ratings) of one row; ``empty`` per completion."""
    messages = prompt_messages(row.get("prompt"), row.get("chosen"))
    if messages is None:
        prompt = row.get("prompt")
        return None, "prompt is " + ("missing" if prompt is None else "empty or not a string"), [], [], []
    completions, policies, ranks = row.get("candidates_completions"), row.get("candidate_policies"), row.get("ranks")
    if completions is None:
        return None, "candidates_completions is missing", [], [], []
    if policies is None:
        return None, "candidate_policies is missing", [], [], []
    if len(policies) != len(completions):
        return None, f"candidate_policies has {len(policies)} entries, candidates_completions {len(completions)}", \
            [], [], []  # fmt: skip
    if ranks is not None and len(ranks) != len(policies):
        return None, f"ranks has {len(ranks)} entries for {len(policies)} candidates", [], [], []
    seen: dict[str, int] = {}
    ratings: list[float | None] = []
    for i, policy in enumerate(policies):
        if not isinstance(policy, str) or not policy.strip():
            return None, f"candidate_policies[{i}] is {'missing' if policy is None else repr(policy)}", [], [], []
        if policy in seen:
            return None, f"candidate_policies[{i}] = {policy!r} repeats candidate_policies[{seen[policy]}]", \
                [], [], []  # fmt: skip
        seen[policy] = i
        rank = None if ranks is None else ranks[i]
        if rank is not None:
            bad = number_problem(rank, minimum=0)
            if bad:
                return None, f"ranks[{i}] {bad}", [], [], []
        ratings.append(None if rank is None else 0.0 - float(rank))
    return prompt_id_of(messages), None, list(policies), empty, ratings


def parse_batch(batch: Any, rating: str = "rank") -> pa.Table:
    import pyarrow.compute as pc

    check_schema(batch.schema, rating)
    parts = []
    for rb in row_batches(batch):
        comps = rb.column("candidates_completions")
        empty_flat = blank(pc.list_flatten(comps))
        lengths = pc.list_value_length(comps).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)])
        missing = np.asarray(comps.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        light = [c for c in ("prompt", "candidate_policies", "ranks", "chosen") if c in rb.schema.names]
        out: tuple[list, list, list, list, list] = ([], [], [], [], [])
        for i, row in enumerate(rb.select(light).to_pylist()):
            row["candidates_completions"] = None if missing[i] else [None] * int(lengths[i])
            empty = [bool(e) for e in empty_flat[starts[i] : starts[i + 1]]]
            result = parse_row(row, empty)
            if result[1] is not None:
                result = (None, result[1], [], [], [])
            for column, value in zip(out, result, strict=True):
                column.append(value)
        parts.append(parsed_rows(*out))
    return concat_parsed(parts)


def texts(batch: pa.RecordBatch) -> SourceTexts:
    """Prompt = ``prompt`` (messages as in the module docstring); responses = ``candidates_completions``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    comps = batch.column("candidates_completions")
    lengths = pc.list_value_length(comps).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    chosen = batch.column("chosen").to_pylist() if "chosen" in batch.schema.names else [None] * batch.num_rows
    prompts = batch.column("prompt").to_pylist()
    label = batch.column("source") if "source" in batch.schema.names else None
    if label is not None and not pa.types.is_string(label.type):
        label = None
    return SourceTexts(
        prompt=batch.column("prompt"),
        responses=pc.list_flatten(comps),
        offsets=offsets,
        label=label,
        prompt_messages=messages_array([prompt_messages(p, c) for p, c in zip(prompts, chosen, strict=True)]),
    )


SOURCE = register_source(
    SourceSchema(
        name="openhermes",
        description="argilla/OpenHermesPreferences: prompt, candidates_completions by candidate_policies, PairRM "
        "ranks (lowest = best); rating = -rank",
        matches=matches,
        check_schema=check_schema,
        parse_batch=parse_batch,
        texts=texts,
        text_columns=("prompt", "candidates_completions", "chosen", "source"),
        rating_methods=RATING_METHODS,
        rating_help={"rank": "minus the PairRM rank (the best candidate has the highest rating)"},
    )
)
