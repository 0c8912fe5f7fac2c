"""``berkeley-nest/Nectar``: 7 ranked answers per prompt.

One row: ``prompt`` (an Anthropic-style transcript ``"\\n\\nHuman: ...\\n\\nAssistant:"``, several
turns when ``turns`` > 1), ``answers: [{answer, model, rank}]`` (7 per prompt; ``rank`` is a
float64, 1 = best, ranked by GPT-4), ``turns``, ``num_responses``, ``source`` (a list of labels,
e.g. ``["sharegpt"]``) and ``good_natured``.

Mapping:

- prompt: the transcript parsed into messages (``Human`` -> ``user``, ``Assistant`` ->
  ``assistant``; the final empty ``Assistant:`` is the turn the answers write), so multi-turn
  prompts keep their earlier turns; ``prompt_id`` = :func:`~karma_hf.sources.messages.prompt_id_of`;
- completions: ``answers`` in order, matched by ``model``;
- per-instance rating (``--rating rank``, the only one): ``-rank`` (higher is better, so the
  best answer has -1 and the ``rlaif`` baseline's argilla recipe picks it as ``chosen``); a null
  rank = not rated;
- label (the ``source`` column of the pairs): the ``source`` labels joined with ``,``;
- malformed: a prompt that is not such a transcript, ``answers`` missing or not a list, an
  answer without a ``model`` string, a non-string ``answer``, the same model twice, or a rank that
  is not a whole number >= 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from karma_hf.errors import KarmaError
from karma_hf.sources.messages import (
    blank,
    check_columns,
    concat_parsed,
    last_user_text,
    messages_array,
    number_problem,
    parse_transcript,
    parsed_rows,
    prompt_id_of,
    row_batches,
)
from karma_hf.sources.registry import SourceSchema, SourceTexts, register_source

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

HUB_ID = "berkeley-nest/Nectar"
RATING_METHODS: tuple[str, ...] = ("rank",)


def matches(schema: pa.Schema) -> bool:
    """Nectar: a ``prompt`` and an ``answers`` column."""
    return "prompt" in schema.names and "answers" in schema.names


def check_schema(schema: pa.Schema, rating: str = "rank") -> None:
    import pyarrow as pa

    if rating not in RATING_METHODS:
        raise KarmaError(f"--rating must be one of {', '.join(RATING_METHODS)} for nectar sources, got {rating!r}")
    check_columns(schema, {"prompt": "string", "answers": "list"}, HUB_ID)
    answers = schema.field("answers").type
    if pa.types.is_null(answers) or not pa.types.is_struct(answers.value_type):
        raise KarmaError(f"source column 'answers' has type {answers}, expected a list of {{answer, model, rank}}")
    fields = {f.name for f in answers.value_type}
    for name in ("answer", "model"):
        if name not in fields:
            raise KarmaError(f"source column 'answers' has no {name!r} field (fields: {', '.join(sorted(fields))})")


def _prompt(text: Any) -> tuple[list[dict[str, str]] | None, str | None]:
    """(messages, None) or (None, problem)."""
    if text is None:
        return None, "prompt is missing"
    if not isinstance(text, str):
        return None, f"prompt is {type(text).__name__}, expected a string"
    try:
        messages = parse_transcript(text)
    except ValueError as exc:
        return None, f"prompt {exc}"
    if not messages[-1]["content"]:
        return None, "prompt has an empty last Human turn"
    return messages, None


def _parse_one(prompt: Any, answers: Any) -> tuple[str | None, str | None, list[str], list[float | None]]:
    """(prompt_id, problem, models, ratings) of one row."""
    messages, problem = _prompt(prompt)
    if problem is not None:
        return None, problem, [], []
    if answers is None:
        return None, "answers is missing", [], []
    models: list[str] = []
    ratings: list[float | None] = []
    seen: dict[str, int] = {}
    for i, answer in enumerate(answers):
        where = f"answers[{i}]"
        if answer is None:
            return None, f"{where} is null", [], []
        model = answer.get("model")
        if not isinstance(model, str):
            return None, f"{where}.model is {'missing' if model is None else type(model).__name__}", [], []
        if model in seen:
            return None, f"{where}.model = {model!r} repeats answers[{seen[model]}].model", [], []
        seen[model] = i
        if answer.get("answer") is not None and not isinstance(answer.get("answer"), str):
            return None, f"{where}.answer is not a string", [], []
        rank = answer.get("rank")
        if rank is not None:
            bad = number_problem(rank, minimum=1)
            if bad:
                return None, f"{where}.rank {bad}", [], []
        models.append(model)
        ratings.append(None if rank is None else 0.0 - float(rank))
    assert messages is not None
    return prompt_id_of(messages), None, models, ratings


def parse_batch(batch: Any, rating: str = "rank") -> pa.Table:
    """One parsed row per Nectar row (see the module docstring for the rules)."""
    import pyarrow.compute as pc

    check_schema(batch.schema, rating)
    parts = []
    for rb in row_batches(batch):
        answers = rb.column("answers")
        light = pc.list_flatten(answers)
        keep = [f.name for f in light.type if f.name in ("model", "rank")]
        models_flat = pc.struct_field(light, "model").to_pylist()
        ranks_flat = pc.struct_field(light, "rank").to_pylist() if "rank" in keep else [None] * len(light)
        lengths = pc.list_value_length(answers).to_pylist()
        empty_flat = blank(pc.struct_field(light, "answer"))
        bad_answer = _non_string(pc.struct_field(light, "answer"))
        out: tuple[list, list, list, list, list] = ([], [], [], [], [])
        pos = 0
        for i, prompt in enumerate(rb.column("prompt").to_pylist()):
            n = lengths[i]
            row_answers = None
            if n is not None:  # the answer text stays in Arrow: only "is it a string" is passed on
                row_answers = [
                    {"model": models_flat[j], "rank": ranks_flat[j], "answer": 0 if bad_answer[j] else None}
                    for j in range(pos, pos + n)
                ]
            pid, problem, models, ratings = _parse_one(prompt, row_answers)
            out[0].append(pid)
            out[1].append(problem)
            out[2].append(models)
            out[3].append([bool(e) for e in empty_flat[pos : pos + n]] if problem is None and n else [])
            out[4].append(ratings)
            pos += n or 0
        parts.append(parsed_rows(*out))
    return concat_parsed(parts)


def _non_string(values: pa.Array) -> np.ndarray:
    """True where a value is present but not a string (only possible for non-string columns)."""
    import pyarrow as pa

    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type) or pa.types.is_null(values.type):
        return np.zeros(len(values), dtype=bool)
    return ~np.asarray(values.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def texts(batch: pa.RecordBatch) -> SourceTexts:
    """Prompt = the parsed transcript (its last Human turn as text); responses = ``answers[].answer``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    answers = batch.column("answers")
    lengths = pc.list_value_length(answers).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    messages = []
    for text in batch.column("prompt").to_pylist():
        msgs, _ = _prompt(text)
        messages.append(msgs)
    label = None
    if "source" in batch.schema.names:
        raw = batch.column("source").to_pylist()
        label = pa.array(
            [",".join(map(str, v)) if isinstance(v, list) else (v if isinstance(v, str) else None) for v in raw],
            type=pa.string(),
        )
    return SourceTexts(
        prompt=pa.array([last_user_text(m) for m in messages], type=pa.string()),
        responses=pc.struct_field(pc.list_flatten(answers), "answer"),
        offsets=offsets,
        label=label,
        prompt_messages=messages_array(messages),
    )


SOURCE = register_source(
    SourceSchema(
        name="nectar",
        description="berkeley-nest/Nectar: prompt ('Human: ... Assistant:' transcript), answers[{answer, model, "
        "rank}] (7 per prompt, GPT-4 rank 1 = best); rating = -rank",
        matches=matches,
        check_schema=check_schema,
        parse_batch=parse_batch,
        texts=texts,
        text_columns=("prompt", "answers", "source"),
        rating_methods=RATING_METHODS,
        rating_help={"rank": "minus the GPT-4 rank (rank 1 = best -> -1)"},
        licenses={HUB_ID: "apache-2.0"},
    )
)
