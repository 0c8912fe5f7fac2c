"""The common multi-model schema that ``karma generate`` writes (:mod:`karma_hf.generation`).

One row per prompt: ``prompt_id`` (string), ``prompt`` (``[{role, content}]``, the last message
the user turn that was answered), ``completions: [{model, response, generation_config}]``
(``generation_config`` a JSON string: backend, decoding settings, seed, whether the model's
chat template was applied) and ``source`` (the prompt set's label, may be null). Any dataset in
this schema works, not only ``karma generate`` output.

Mapping:

- prompt: ``prompt`` as is (multi-turn prompts keep their earlier turns); ``prompt_id`` as
  written (it must be a non-empty ASCII string; ``karma generate`` writes
  :func:`~karma_hf.sources.messages.prompt_id_of`);
- completions: ``completions`` in order, matched by ``model``;
- per-instance rating (``--rating none``, the only one): none. Generated responses carry no
  judgement, so the ``rlaif`` baseline has nothing to rank and drops every row as
  ``fewer_than_two_scored``: build the KARMA modes (``--modes score,sim,score_sim``);
- label: the ``source`` column;
- malformed: a missing / non-ASCII ``prompt_id``, a prompt that is not a list of
  ``{role, content}`` ending with a non-empty user turn, ``completions`` missing, a completion
  without a ``model`` string, a non-string response, or the same model twice.
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
    parsed_rows,
    prompt_problem,
    row_batches,
)
from karma_hf.sources.registry import SourceSchema, SourceTexts, register_source

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

RATING_METHODS: tuple[str, ...] = ("none",)
_COLUMNS = {"prompt_id": "string", "prompt": "list", "completions": "list"}


def matches(schema: pa.Schema) -> bool:
    """The common schema: ``prompt_id``, a list-typed ``prompt`` and ``completions``."""
    import pyarrow as pa

    if not {"prompt_id", "prompt", "completions"} <= set(schema.names):
        return False
    return pa.types.is_list(schema.field("prompt").type) or pa.types.is_large_list(schema.field("prompt").type)


def check_schema(schema: pa.Schema, rating: str = "none") -> None:
    import pyarrow as pa

    if rating not in RATING_METHODS:
        raise KarmaError(f"--rating must be one of {', '.join(RATING_METHODS)} for generated sources, got {rating!r}")
    check_columns(schema, _COLUMNS, "karma generate (prompt_id, prompt, completions[{model, response}])")
    comps = schema.field("completions").type
    if pa.types.is_null(comps) or not pa.types.is_struct(comps.value_type):
        raise KarmaError(f"source column 'completions' has type {comps}, expected a list of {{model, response}}")
    fields = {f.name for f in comps.value_type}
    for name in ("model", "response"):
        if name not in fields:
            raise KarmaError(
                f"source column 'completions' has no {name!r} field (fields: {', '.join(sorted(fields))})"
            )


def parse_row(row: dict[str, Any], empty: list[bool]) -> tuple[str | None, str | None, list, list, list]:
    """(prompt_id, problem, models, empty, ratings) of one row; ``empty`` per completion."""
    pid = row.get("prompt_id")
    if not isinstance(pid, str) or not pid.strip() or not pid.isascii():
        return None, f"prompt_id = {pid!r} is not a non-empty ASCII string", [], [], []
    problem = prompt_problem(row.get("prompt"))
    if problem is not None:
        return None, problem, [], [], []
    comps = row.get("completions")
    if comps is None:
        return None, "completions is missing", [], [], []
    models: list[str] = []
    seen: dict[str, int] = {}
    for i, comp in enumerate(comps):
        model = None if comp is None else comp.get("model")
        if not isinstance(model, str) or not model.strip():
            return None, f"completions[{i}].model is {'missing' if model is None else repr(model)}", [], [], []
        if model in seen:
            return None, f"completions[{i}].model = {model!r} repeats completions[{seen[model]}].model", [], [], []
        seen[model] = i
        if comp.get("bad_response"):
            return None, f"completions[{i}].response is not a string", [], [], []
        models.append(model)
    return pid, None, models, empty, [None] * len(models)


def parse_batch(batch: Any, rating: str = "none") -> pa.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    check_schema(batch.schema, rating)
    parts = []
    for rb in row_batches(batch):
        comps = rb.column("completions")
        flat = pc.list_flatten(comps)
        response = pc.struct_field(flat, "response")
        empty_flat = blank(response)
        string_type = pa.types.is_string(response.type) or pa.types.is_null(response.type)
        bad_flat = (
            np.zeros(len(flat), dtype=bool)
            if string_type
            else ~np.asarray(response.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        )
        models_flat = pc.struct_field(flat, "model").to_pylist()
        lengths = pc.list_value_length(comps).to_pylist()
        out: tuple[list, list, list, list, list] = ([], [], [], [], [])
        pos = 0
        for i, row in enumerate(rb.select(["prompt_id", "prompt"]).to_pylist()):
            n = lengths[i]
            if n is not None:  # responses stay in Arrow: only the model and "is it a string" are passed on
                row["completions"] = [
                    {"model": models_flat[j], "bad_response": bool(bad_flat[j])} for j in range(pos, pos + n)
                ]
            result = parse_row(row, [bool(e) for e in empty_flat[pos : pos + (n or 0)]])
            for column, value in zip(out, result, strict=True):
                column.append(value)
            pos += n or 0
        parts.append(parsed_rows(*out))
    return concat_parsed(parts)


def texts(batch: pa.RecordBatch) -> SourceTexts:
    """Prompt = ``prompt`` (messages); responses = ``completions[].response``; label = ``source``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    comps = batch.column("completions")
    lengths = pc.list_value_length(comps).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    prompts = batch.column("prompt")
    label = batch.column("source") if "source" in batch.schema.names else None
    if label is not None and not (pa.types.is_string(label.type) or pa.types.is_null(label.type)):
        label = None
    return SourceTexts(
        prompt=pa.array([last_user_text(p) for p in prompts.to_pylist()], type=pa.string()),
        responses=pc.struct_field(pc.list_flatten(comps), "response"),
        offsets=offsets,
        label=label,
        prompt_messages=prompts,
    )


SOURCE = register_source(
    SourceSchema(
        name="generated",
        description="karma generate's common schema: prompt_id, prompt [{role, content}], "
        "completions[{model, response, generation_config}] (no per-instance rating)",
        matches=matches,
        check_schema=check_schema,
        parse_batch=parse_batch,
        texts=texts,
        text_columns=("prompt", "completions", "source"),
        rating_methods=RATING_METHODS,
        rating_help={"none": "none: generated responses carry no per-instance judgement"},
    )
)
