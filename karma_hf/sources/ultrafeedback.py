"""UltraFeedback-format response datasets: the schema, per-instance ratings, and loading.

One row of ``openbmb/UltraFeedback`` (pinned at :data:`DEFAULT_REVISION`, the revision with
the ``overall_score`` fix) holds an ``instruction``, a ``source`` label and a list of
``completions``; each completion has a ``model`` name, a ``response`` and GPT-4
``annotations`` with one ``{"Rating": str, ...}`` struct per aspect (``helpfulness``,
``honesty``, ``instruction_following``, ``truthfulness``) plus a critique ``overall_score``.

Rules used everywhere in karma-hf (documented here once):

- completions are matched by ``completion["model"]``, never by position (the ``models``
  column is not read: its order differs from the order of ``completions``);
- a response that is null, empty or only whitespace is *empty*;
- ``Rating`` is a string: ``"1"``..``"5"``; ``"N/A"`` (and a null / absent rating) means *not
  rated on that aspect* and is ignored; ``"0"`` occurs 3 times in the real data
  (instruction_following) and is kept as the value 0 — a rating below the rubric's worst, the
  same way OpenBMB's ``fine-grained_score`` counts it. Integer-valued numbers are accepted too;
- per-instance rating (``rating="aspects"``, default) = mean of the aspect ratings that are
  present, i.e. OpenBMB's ``fine-grained_score`` recomputed; ``None`` when no aspect is rated.
  ``rating="overall_score"`` uses the critique score (1–10) instead, ``None`` when null;
- a row is **malformed** when its ``instruction`` is missing, empty or not a string, its
  ``completions`` is missing or not a list, a completion has no ``model`` string, a response
  is not a string, the same model appears twice, or a rating is present but is neither
  ``"N/A"`` nor an integer 0–5 (``overall_score``: not a finite number). Malformed rows are
  counted, never fatal (unless ``strict``).

:func:`parse_row` is the reference parser for one row (used for precise error messages and in
tests); :func:`parse_batch` does the same on an Arrow batch, vectorised, for the builder.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from karma_hf.errors import KarmaError
from karma_hf.sources.registry import SourceSchema, SourceTexts, invalid_utf8, parsed_schema, register_source

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

DEFAULT_SOURCE = "openbmb/UltraFeedback"
DEFAULT_REVISION = "40b436560ca83a8dba36114c22ab3c66e43f6d5e"
ASPECTS: tuple[str, ...] = ("helpfulness", "honesty", "instruction_following", "truthfulness")
RATING_METHODS: tuple[str, ...] = ("aspects", "overall_score")
NA = "N/A"
_MIN_RATING, _MAX_RATING = 0, 5


class MalformedRow(ValueError):
    """A row that does not follow the UltraFeedback schema; ``field`` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field} {problem}")


@dataclass(frozen=True)
class Completion:
    """One parsed completion: model name, response text (``""`` if null), rating or None."""

    model: str
    response: str
    rating: float | None

    @property
    def empty(self) -> bool:
        return not self.response.strip()


@dataclass(frozen=True)
class ParsedRow:
    instruction: str
    prompt_id: str
    completions: tuple[Completion, ...]
    source: str | None


def prompt_id(instruction: str) -> str:
    """SHA-256 hex digest of the UTF-8 instruction (the ``prompt_id`` of H4's binarization)."""
    return hashlib.sha256(instruction.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------- ratings
def parse_rating(value: Any) -> float | None:
    """Parse one aspect ``Rating``: ``"N/A"``/None -> None, ``"0"``..``"5"`` -> float.

    Raises ``ValueError`` for anything else (``"seven"``, ``"6"``, ``"4.5"``, a list...).
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.upper() == NA:
            return None
        if not (text.isdigit() and text.isascii()):
            raise ValueError(f"= {value!r} is not an integer {_MIN_RATING}-{_MAX_RATING} or 'N/A'")
        number = int(text)
    elif isinstance(value, bool):
        raise ValueError(f"= {value!r} is not an integer {_MIN_RATING}-{_MAX_RATING} or 'N/A'")
    elif isinstance(value, (int, float)) and not (isinstance(value, float) and not value.is_integer()):
        number = int(value)
    else:
        raise ValueError(f"= {value!r} is not an integer {_MIN_RATING}-{_MAX_RATING} or 'N/A'")
    if not _MIN_RATING <= number <= _MAX_RATING:
        raise ValueError(f"= {value!r} is outside {_MIN_RATING}-{_MAX_RATING}")
    return float(number)


def parse_overall_score(value: Any) -> float | None:
    """Parse ``overall_score``: None -> None, a finite number (or numeric string) -> float."""
    if value is None:
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"= {value!r} is not a finite number")
    return number


def aspect_mean(ratings: list[float | None]) -> float | None:
    """Mean of the ratings that are not None; None when all are None."""
    present = [r for r in ratings if r is not None]
    return sum(present) / len(present) if present else None


def _completion_rating(comp: Mapping[str, Any], where: str, rating: str) -> float | None:
    if rating == "overall_score":
        try:
            return parse_overall_score(comp.get("overall_score"))
        except ValueError as exc:
            raise MalformedRow(f"{where}.overall_score", str(exc)) from exc
    annotations = comp.get("annotations")
    if annotations is None:
        return None
    if not isinstance(annotations, Mapping):
        raise MalformedRow(f"{where}.annotations", f"is {type(annotations).__name__}, expected an object")
    values: list[float | None] = []
    for aspect in ASPECTS:
        entry = annotations.get(aspect)
        if entry is None:
            values.append(None)
            continue
        if not isinstance(entry, Mapping):
            raise MalformedRow(
                f"{where}.annotations.{aspect}", f"is {type(entry).__name__}, expected an object with 'Rating'"
            )
        try:
            values.append(parse_rating(entry.get("Rating")))
        except ValueError as exc:
            raise MalformedRow(f"{where}.annotations.{aspect}.Rating", str(exc)) from exc
    return aspect_mean(values)


def parse_row(row: Mapping[str, Any], rating: str = "aspects") -> ParsedRow:
    """Parse one UltraFeedback row; raise :class:`MalformedRow` naming the faulty field."""
    if rating not in RATING_METHODS:
        raise KarmaError(f"--rating must be one of {', '.join(RATING_METHODS)}, got {rating!r}")
    instruction = row.get("instruction")
    if instruction is None:
        raise MalformedRow("instruction", "is missing")
    if not isinstance(instruction, str):
        raise MalformedRow("instruction", f"is {type(instruction).__name__}, expected a string")
    if not instruction.strip():
        raise MalformedRow("instruction", "is empty")
    comps = row.get("completions")
    if comps is None:
        raise MalformedRow("completions", "is missing")
    if not isinstance(comps, (list, tuple)):
        raise MalformedRow("completions", f"is {type(comps).__name__}, expected a list")
    parsed: list[Completion] = []
    seen: dict[str, int] = {}
    for i, comp in enumerate(comps):
        where = f"completions[{i}]"
        if not isinstance(comp, Mapping):
            raise MalformedRow(where, f"is {type(comp).__name__}, expected an object")
        model = comp.get("model")
        if model is None:
            raise MalformedRow(f"{where}.model", "is missing")
        if not isinstance(model, str):
            raise MalformedRow(f"{where}.model", f"is {type(model).__name__}, expected a string")
        if model in seen:
            raise MalformedRow(f"{where}.model", f"= {model!r} repeats completions[{seen[model]}].model")
        seen[model] = i
        response = comp.get("response")
        if response is not None and not isinstance(response, str):
            raise MalformedRow(f"{where}.response", f"is {type(response).__name__}, expected a string")
        parsed.append(Completion(model, response or "", _completion_rating(comp, where, rating)))
    source = row.get("source")
    return ParsedRow(instruction, prompt_id(instruction), tuple(parsed), source if isinstance(source, str) else None)


# ------------------------------------------------------------------------------- Arrow batches
def check_schema(schema: pa.Schema, rating: str = "aspects") -> None:
    """Raise a one-line :class:`KarmaError` when the *source* schema cannot be UltraFeedback.

    Per-row problems (nulls, bad rating strings) are not schema errors: they make single rows
    malformed. Column *types* that no row could satisfy are reported here, once.
    """
    import pyarrow as pa

    if rating not in RATING_METHODS:
        raise KarmaError(f"--rating must be one of {', '.join(RATING_METHODS)}, got {rating!r}")
    names = set(schema.names)
    for col in ("instruction", "completions"):
        if col not in names:
            raise KarmaError(
                f"source has no {col!r} column (columns: {', '.join(schema.names)}); "
                "expected the openbmb/UltraFeedback schema"
            )
    if not _is_string(schema.field("instruction").type):
        raise KarmaError(f"source column 'instruction' has type {schema.field('instruction').type}, expected string")
    comps = schema.field("completions").type
    if not (pa.types.is_list(comps) or pa.types.is_large_list(comps)) or not pa.types.is_struct(comps.value_type):
        raise KarmaError(f"source column 'completions' has type {comps}, expected a list of structs")
    struct = comps.value_type
    fields = {struct.field(i).name: struct.field(i).type for i in range(struct.num_fields)}
    for name in ("model", "response"):
        if name not in fields:
            raise KarmaError(f"source column 'completions' has no {name!r} field (fields: {', '.join(fields)})")
        if not _is_string(fields[name]) and not pa.types.is_null(fields[name]):
            raise KarmaError(f"source field completions.{name} has type {fields[name]}, expected string")


def _is_string(t: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)


def _child(struct_arr: pa.Array, path: tuple[str, ...]) -> pa.Array | None:
    """The nested field at ``path`` of a struct array, or None if the schema lacks it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = struct_arr
    for name in path:
        if not pa.types.is_struct(arr.type) or arr.type.get_field_index(name) < 0:
            return None
        arr = pc.struct_field(arr, name)
    return arr


def _parse_values(arr: pa.Array, parser) -> tuple[Any, Any]:
    """Apply ``parser`` to each distinct value; return (float64 values with NaN, invalid mask)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(arr)
    if pa.types.is_null(arr.type):
        return np.full(n, np.nan), np.zeros(n, dtype=bool)
    if pa.types.is_struct(arr.type) or pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        return np.full(n, np.nan), valid  # a nested value where a scalar belongs: invalid
    encoded = pc.dictionary_encode(arr)
    lookup = np.full(len(encoded.dictionary) + 1, np.nan)
    bad = np.zeros(len(encoded.dictionary) + 1, dtype=bool)
    not_text = invalid_utf8(encoded.dictionary)
    for i in range(len(encoded.dictionary)):
        if not_text[i]:  # bytes that are not UTF-8 text: invalid, never decoded
            bad[i] = True
            continue
        try:
            parsed = parser(encoded.dictionary[i].as_py())
        except ValueError:
            bad[i] = True
            continue
        lookup[i] = np.nan if parsed is None else parsed
    codes = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)
    return lookup[codes], bad[codes]


def _ratings(flat: pa.Array, rating: str) -> tuple[Any, Any]:
    """Per completion of the flattened ``completions``: the ``rating`` (float64, NaN = not rated)
    and whether its value breaks the schema (a nested value, text that is not a rating)."""
    import numpy as np
    import pyarrow as pa

    n = len(flat)
    bad = np.zeros(n, dtype=bool)
    if rating == "overall_score":
        child = _child(flat, ("overall_score",))
        if child is None:
            return np.full(n, np.nan), bad
        return _parse_values(child, parse_overall_score)
    per_aspect = []
    for aspect in ASPECTS:
        container = _child(flat, ("annotations", aspect))
        if container is not None and not pa.types.is_struct(container.type):
            bad |= ~np.asarray(container.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            continue
        child = _child(flat, ("annotations", aspect, "Rating"))
        if child is None:
            continue
        values, bad_values = _parse_values(child, parse_rating)
        per_aspect.append(values)
        bad |= bad_values
    if not per_aspect:
        return np.full(n, np.nan), bad
    stacked = np.vstack(per_aspect)
    count = (~np.isnan(stacked)).sum(axis=0)
    total = np.nansum(stacked, axis=0)
    return np.divide(total, count, out=np.full(n, np.nan), where=count > 0), bad


def ratings(batch: pa.RecordBatch, rating: str = "aspects") -> Any:
    """:func:`parse_batch`'s ``rating`` values alone, one per completion (rows concatenated):
    float64, NaN = not rated or not a rating (the row is malformed then)."""
    import pyarrow.compute as pc

    check_schema(batch.schema, rating)
    return _ratings(pc.list_flatten(batch.column("completions")), rating)[0]


def _hash_instructions(instr: pa.Array, rows: Any, out: list[str | None]) -> None:
    """``out[i] = prompt_id(instruction i)`` for each of ``rows``, hashing the UTF-8 bytes straight
    from the Arrow buffer (no Python string per row)."""
    import numpy as np
    import pyarrow as pa

    _, offsets_buffer, data_buffer = instr.buffers()
    width = np.int64 if pa.types.is_large_string(instr.type) else np.int32
    ends = np.frombuffer(offsets_buffer, dtype=width)[instr.offset : instr.offset + len(instr) + 1].astype(np.int64)
    data = memoryview(data_buffer if data_buffer is not None else b"")
    sha = hashlib.sha256
    for i, a, b in zip(rows.tolist(), ends[rows].tolist(), ends[rows + 1].tolist(), strict=True):
        out[i] = sha(data[a:b]).hexdigest()


def quick_scan(batch: pa.RecordBatch) -> tuple[pa.Array, pa.Array]:
    """Per row the :func:`prompt_id` of its instruction bytes (null where the instruction is null),
    and every completion's model name (nothing is validated: :func:`parse_batch` does that)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    instr = batch.column("instruction")
    ids: list[str | None] = [None] * batch.num_rows
    if not pa.types.is_null(instr.type):
        _hash_instructions(instr, np.flatnonzero(np.asarray(instr.is_valid().to_numpy(zero_copy_only=False))), ids)
    models = _child(pc.list_flatten(batch.column("completions")), ("model",))
    return pa.array(ids, type=pa.string()), models if models is not None else pa.nulls(0, pa.string())


def parse_batch(batch: pa.Table | pa.RecordBatch, rating: str = "aspects") -> pa.Table:
    """Parse an Arrow batch of UltraFeedback rows into compact per-row columns (vectorised).

    Output columns (:func:`parsed_schema`): ``prompt_id`` (null for malformed rows),
    ``malformed`` (null, or ``"<field> <problem>"`` as :func:`parse_row` words it), and per
    completion, in source order: ``models``, ``empty`` (null/blank response) and ``rating``
    (null = not rated). Heavy text (responses, critiques) is never copied into Python.
    """
    import pyarrow as pa

    check_schema(batch.schema, rating)
    if isinstance(batch, pa.RecordBatch):
        return _parse_record_batch(batch, rating)
    # record batches are zero-copy views; combine_chunks() would copy every nested buffer
    parts = [_parse_record_batch(rb, rating) for rb in batch.to_batches() if rb.num_rows]
    if not parts:
        return parsed_schema().empty_table()
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def _parse_record_batch(batch: pa.RecordBatch, rating: str) -> pa.Table:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    n = batch.num_rows
    instr = batch.column("instruction")
    comps = batch.column("completions")
    comps_null = np.asarray(comps.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    lengths = pc.list_value_length(comps).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(comps)
    parent = pc.list_parent_indices(comps).to_numpy(zero_copy_only=False).astype(np.int64)

    model = pc.struct_field(flat, "model")
    response = pc.struct_field(flat, "response")
    # text that is not valid UTF-8 makes its row malformed, and is never decoded or written
    bad_model_text, bad_response_text = invalid_utf8(model), invalid_utf8(response)
    bad_instr_text = invalid_utf8(instr)
    label = batch.column("source") if "source" in batch.schema.names else None
    bad_label_text = invalid_utf8(label) if label is not None else np.zeros(n, dtype=bool)
    model = _nulled(model, bad_model_text)
    response = _nulled(response, bad_response_text)
    instr = _nulled(instr, bad_instr_text)
    bad_comp = np.asarray(pc.is_null(model).to_numpy(zero_copy_only=False), dtype=bool)
    bad_comp |= bad_response_text
    if pa.types.is_null(response.type):
        empty = np.ones(len(flat), dtype=bool)
    else:
        blank = pc.or_kleene(pc.equal(pc.binary_length(response), 0), pc.utf8_is_space(response))
        empty = np.asarray(blank.fill_null(True).to_numpy(zero_copy_only=False), dtype=bool)

    rating_values, bad = _ratings(flat, rating)
    bad_comp |= bad

    if pa.types.is_null(instr.type):
        bad_instr = np.ones(n, dtype=bool)
    else:
        blank_instr = pc.or_kleene(pc.equal(pc.binary_length(instr), 0), pc.utf8_is_space(instr))
        bad_instr = np.asarray(blank_instr.fill_null(True).to_numpy(zero_copy_only=False), dtype=bool)
    bad_row = bad_instr | comps_null | bad_instr_text | bad_label_text
    if len(parent):
        np.logical_or.at(bad_row, parent, bad_comp)
        # duplicate model names within a row
        codes = pc.dictionary_encode(model).indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        key = parent * (int(codes.max(initial=0)) + 2) + codes + 1
        uniq, counts = np.unique(key, return_counts=True)
        dup_rows = uniq[counts > 1] // (int(codes.max(initial=0)) + 2)
        bad_row[dup_rows] = True

    malformed: list[str | None] = _utf8_reasons(
        n, parent, lengths, bad_instr_text, bad_model_text, bad_response_text, bad_label_text
    )
    prompt_ids: list[str | None] = [None] * n
    for i in np.flatnonzero(bad_row):
        if malformed[i] is None:
            malformed[i] = _row_reason(batch, int(i), rating)
    good = np.flatnonzero(~bad_row & np.array([m is None for m in malformed], dtype=bool))
    if good.size:
        _hash_instructions(instr, good, prompt_ids)

    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    off = pa.array(offsets, type=pa.int32())
    rating_arr = pa.array(rating_values, type=pa.float64(), from_pandas=True)  # NaN -> null
    return pa.table(
        [
            pa.array(prompt_ids, type=pa.string()),
            pa.array(malformed, type=pa.string()),
            pa.ListArray.from_arrays(off, model.cast(pa.string())),
            pa.ListArray.from_arrays(off, pa.array(empty, type=pa.bool_())),
            pa.ListArray.from_arrays(off, rating_arr),
        ],
        schema=parsed_schema(),
    )


def _nulled(arr: pa.Array, mask: Any) -> pa.Array:
    """``arr`` with the elements under ``mask`` set to null (text that is not UTF-8 is never read)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not mask.any():
        return arr
    # replace_with_mask drops the bytes too (if_else keeps them under the null, and text kernels
    # would still trip on them)
    return pc.replace_with_mask(arr, pa.array(mask), pa.nulls(int(mask.sum()), arr.type))


def _utf8_reasons(n, parent, lengths, instr, model, response, label) -> list[str | None]:
    """Per row: the first text field that is not valid UTF-8, worded as :func:`parse_row` words problems."""
    import numpy as np

    reasons: list[str | None] = [None] * n
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if n else np.zeros(0, dtype=np.int64)
    for j in np.flatnonzero(model | response)[::-1]:  # the first completion of a row wins
        row = int(parent[j])
        field = "model" if model[j] else "response"
        reasons[row] = f"completions[{int(j - starts[row])}].{field} is not valid UTF-8"
    for i in np.flatnonzero(label):
        reasons[int(i)] = reasons[int(i)] or "source is not valid UTF-8"
    for i in np.flatnonzero(instr):
        reasons[int(i)] = "instruction is not valid UTF-8"
    return reasons


def _row_reason(batch: pa.RecordBatch, i: int, rating: str) -> str:
    """Why row ``i`` of ``batch`` is malformed, as :func:`parse_row` says it."""
    columns = [c for c in ("instruction", "completions", "source") if c in batch.schema.names]
    try:
        row = batch.select(columns).slice(i, 1).to_pylist()[0]
    except UnicodeDecodeError:  # text in a field parse_row reads that is not UTF-8 (a Rating, say)
        return "a text field of the row is not valid UTF-8"
    try:
        parse_row(row, rating)
    except MalformedRow as exc:
        return str(exc)
    return "row does not follow the UltraFeedback schema"  # pragma: no cover


# ------------------------------------------------------------------------------- registration
def matches(schema: pa.Schema) -> bool:
    """An UltraFeedback-style schema: ``instruction`` and ``completions`` columns."""
    return "instruction" in schema.names and "completions" in schema.names


def texts(batch: pa.RecordBatch) -> SourceTexts:
    """Prompt = ``instruction``; responses = ``completions[].response`` in order; label = ``source``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    comps = batch.column("completions")
    offsets = comps.offsets.to_numpy().astype(np.int64)
    responses = pc.struct_field(comps.values, "response")
    label = None
    if "source" in batch.schema.names and pa.types.is_string(batch.schema.field("source").type):
        label = batch.column("source")
    return SourceTexts(prompt=batch.column("instruction"), responses=responses, offsets=offsets, label=label)


SOURCE = register_source(
    SourceSchema(
        name="ultrafeedback",
        description="openbmb/UltraFeedback: instruction, completions[{model, response, annotations, overall_score}]",
        matches=matches,
        check_schema=check_schema,
        parse_batch=parse_batch,
        texts=texts,
        text_columns=("instruction", "completions", "source"),
        ratings=ratings,
        quick_scan=quick_scan,
        rating_methods=RATING_METHODS,
        rating_help={
            "aspects": "mean of the four GPT-4 aspect ratings, 'N/A' ignored",
            "overall_score": "GPT-4 critique `overall_score`, 1-10",
        },
        pinned_revisions={DEFAULT_SOURCE: DEFAULT_REVISION},
        licenses={DEFAULT_SOURCE: "mit"},
    )
)
