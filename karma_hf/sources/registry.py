"""The source registry and what every source hands the builder.

A :class:`SourceSchema` is a small record of functions:

- ``matches(schema)``: does an Arrow schema look like this source? (``--source-format auto``)
- ``check_schema(schema, rating)``: one-line :class:`~karma_hf.errors.KarmaError` when no row of
  a dataset with this schema could be parsed (wrong column types);
- ``parse_batch(batch, rating)``: one output row per source row in :func:`parsed_schema`'s
  columns: ``prompt_id`` (null when malformed), ``malformed`` (null or ``"<field> <problem>"``),
  and per completion ``models``, ``empty`` and ``rating`` (null = not rated);
- ``texts(batch)``: the prompt of each row and the response of each completion, in the same
  order as ``parse_batch``'s completions, plus an optional per-row ``source`` label and, for
  multi-turn prompts, the prompt as messages;
- ``ratings(batch, rating)`` (optional): ``parse_batch``'s ``rating`` values alone, flattened
  (float64, NaN = not rated), for a second rating method without parsing the batch again
  (:func:`completion_ratings`);
- ``quick_scan(batch)`` (optional): ``(prompt ids, model names)`` without validating anything:
  per row the ``prompt_id`` that ``parse_batch`` gives the row *if* it is well-formed (null only
  where no row could have one), and the model name of every completion, rows concatenated. With
  it the builder's first pass hashes the prompts and checks the models without parsing every row
  (the full parse then happens once, in the second pass).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from karma_hf.errors import KarmaError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

#: Modules that register the built-in sources (imported on first lookup, so importing the
#: registry stays cheap and has no import circle).
BUILTIN_MODULES: tuple[str, ...] = (
    "karma_hf.sources.ultrafeedback",
    "karma_hf.sources.generated",
    "karma_hf.sources.nectar",
    "karma_hf.sources.arena",
    "karma_hf.sources.openhermes",
)


@dataclass(frozen=True)
class SourceTexts:
    """The texts of one batch: ``prompt`` (one string per row), ``responses`` (one string per
    completion, rows concatenated), ``offsets`` (row i's completions are
    ``responses[offsets[i]:offsets[i + 1]]``) and ``label`` (one string per row, or None).

    ``prompt_messages`` (optional, ``list<struct<role, content>>``, one list per row): the whole
    prompt when it has more than the one user turn ``prompt`` holds (a system message, earlier
    turns); the writer then uses it for the pairs' ``prompt`` and ``messages``, while ``prompt``
    (the last user turn) stays what other steps match on."""

    prompt: pa.Array
    responses: pa.Array
    offsets: np.ndarray
    label: pa.Array | None = None
    prompt_messages: pa.Array | None = None


@dataclass(frozen=True)
class SourceSchema:
    """One response-dataset schema (see the module docstring)."""

    name: str
    description: str
    matches: Callable[[pa.Schema], bool]
    check_schema: Callable[[pa.Schema, str], None]
    parse_batch: Callable[[Any, str], pa.Table]
    texts: Callable[[pa.RecordBatch], SourceTexts]
    #: Source columns ``texts`` reads (the writer selects only these).
    text_columns: tuple[str, ...]
    ratings: Callable[[pa.RecordBatch, str], np.ndarray] | None = None
    quick_scan: Callable[[pa.RecordBatch], tuple[pa.Array, pa.Array]] | None = None
    rating_methods: tuple[str, ...] = ("default",)
    rating_help: dict[str, str] = field(default_factory=dict)
    #: Hub ids with a pinned default revision, e.g. ``{"openbmb/UltraFeedback": "40b4..."}``.
    pinned_revisions: dict[str, str] = field(default_factory=dict)
    #: Licenses of known Hub ids (the card inherits them).
    licenses: dict[str, str] = field(default_factory=dict)


def completion_ratings(source: SourceSchema, batch: pa.RecordBatch, rating: str) -> np.ndarray:
    """Per completion of ``batch`` (rows concatenated): its ``rating`` as float64, NaN = not rated;
    the source's own ``ratings`` when it has one, else ``parse_batch``'s ``rating`` column."""
    import numpy as np
    import pyarrow.compute as pc

    if source.ratings is not None:
        return source.ratings(batch, rating)
    column = source.parse_batch(batch, rating).column("rating").combine_chunks()
    return np.asarray(pc.list_flatten(column).to_numpy(zero_copy_only=False), dtype=np.float64)


_SOURCES: dict[str, SourceSchema] = {}
_loaded = False


def _ensure_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def register_source(schema: SourceSchema) -> SourceSchema:
    """Add (or replace) a source schema; returns it."""
    _SOURCES[schema.name] = schema
    return schema


def unregister_source(name: str) -> None:
    _SOURCES.pop(name, None)


def source_names() -> tuple[str, ...]:
    _ensure_builtins()
    return tuple(_SOURCES)


def get_source(name: str) -> SourceSchema:
    _ensure_builtins()
    try:
        return _SOURCES[name]
    except KeyError as exc:
        raise KarmaError(f"unknown --source-format {name!r}; known: {', '.join(_SOURCES)}") from exc


def detect_source(schema: pa.Schema) -> SourceSchema:
    """The first registered source whose ``matches`` accepts ``schema``."""
    _ensure_builtins()
    for source in _SOURCES.values():
        if source.matches(schema):
            return source
    raise KarmaError(
        f"no known source schema matches the columns {', '.join(schema.names)}; "
        f"known schemas: {', '.join(_SOURCES)} (pass --source-format NAME to check one)"
    )


def pinned_revision(source_id: str) -> str | None:
    """The default revision karma-hf pins for a Hub id, if a source declares one."""
    _ensure_builtins()
    for source in _SOURCES.values():
        if source_id in source.pinned_revisions:
            return source.pinned_revisions[source_id]
    return None


def known_license(source_id: str) -> str | None:
    _ensure_builtins()
    for source in _SOURCES.values():
        if source_id in source.licenses:
            return source.licenses[source_id]
    return None


def invalid_utf8(arr: pa.Array) -> np.ndarray:
    """Boolean mask of the elements of a string array that are not valid UTF-8.

    Arrow readers (parquet, JSON) do not validate text; a source's ``parse_batch`` calls this on
    every text it reads so that such rows become malformed instead of crashing a later
    ``to_pylist`` or landing as raw bytes in the output. One full validation when the array is
    clean; bisection down to the bad elements otherwise.
    """
    import numpy as np
    import pyarrow as pa

    n = len(arr)
    bad = np.zeros(n, dtype=bool)
    if not n or not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return bad
    stack = [(0, n)]
    while stack:
        lo, hi = stack.pop()
        try:
            arr.slice(lo, hi - lo).validate(full=True)
            continue
        except pa.ArrowInvalid:
            pass
        if hi - lo == 1:
            bad[lo] = True
        else:
            mid = (lo + hi) // 2
            stack += [(lo, mid), (mid, hi)]
    return bad


def parsed_schema() -> pa.Schema:
    """Schema of every source's ``parse_batch`` output (one row per source row)."""
    import pyarrow as pa

    return pa.schema(
        [
            ("prompt_id", pa.string()),
            ("malformed", pa.string()),
            ("models", pa.list_(pa.string())),
            ("empty", pa.list_(pa.bool_())),
            ("rating", pa.list_(pa.float64())),
        ]
    )
