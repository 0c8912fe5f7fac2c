"""Chat messages shared by the sources and the writer: the Arrow type, prompt ids, transcripts.

A prompt is a list of ``{"role", "content"}`` messages (TRL's conversational format) whose last
message is the ``user`` turn being answered; earlier turns (``system``, ``user``, ``assistant``)
are context. Sources whose prompt is a single string hand the writer that string only
(:attr:`~karma_hf.sources.registry.SourceTexts.prompt`); sources with multi-turn prompts also hand
it the messages (:attr:`~karma_hf.sources.registry.SourceTexts.prompt_messages`).

``prompt_id`` (:func:`prompt_id_of`): the SHA-256 hex digest of the text for a single user
message, as UltraFeedback / H4 compute it, so the same instruction gets the same id in every
source; for any other prompt, of its canonical JSON (``[[role, content], ...]``, UTF-8, no
spaces).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

ROLES: tuple[str, ...] = ("system", "user", "assistant")


def message_type() -> pa.DataType:
    """``list<struct<role: string, content: string>>``: the type of every messages column."""
    import pyarrow as pa

    return pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def messages_array(rows: Sequence[Sequence[Mapping[str, str]] | None]) -> pa.Array:
    """A messages column from Python lists of ``{"role", "content"}`` (None = a null row)."""
    import pyarrow as pa

    clean = [None if r is None else [{"role": m["role"], "content": m["content"]} for m in r] for r in rows]
    return pa.array(clean, type=message_type())


def prompt_id_of(messages: Sequence[Mapping[str, Any]]) -> str:
    """SHA-256 hex of a prompt (see the module docstring)."""
    if len(messages) == 1 and messages[0].get("role") == "user":
        text = str(messages[0]["content"])
    else:
        text = json.dumps(
            [[str(m["role"]), str(m["content"])] for m in messages], ensure_ascii=False, separators=(",", ":")
        )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prompt_problem(messages: Any, where: str = "prompt") -> str | None:
    """Why ``messages`` is not a usable prompt (``"<field> <problem>"``), or None when it is."""
    if messages is None:
        return f"{where} is missing"
    if not isinstance(messages, (list, tuple)):
        return f"{where} is {type(messages).__name__}, expected a list of messages"
    if not messages:
        return f"{where} is an empty list"
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            return f"{where}[{i}] is {type(message).__name__}, expected {{role, content}}"
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            return f"{where}[{i}].role = {role!r} is not one of {', '.join(ROLES)}"
        if not isinstance(content, str):
            return f"{where}[{i}].content is {type(content).__name__}, expected a string"
    last = messages[-1]
    if last["role"] != "user":
        return f"{where} ends with a {last['role']!r} message, expected the user turn to answer"
    if not last["content"].strip():
        return f"{where}[{len(messages) - 1}].content (the user turn) is empty"
    return None


def last_user_text(messages: Sequence[Mapping[str, Any]] | None) -> str | None:
    """The content of the last message (the user turn a prompt asks to answer)."""
    if not messages:
        return None
    content = messages[-1].get("content")
    return content if isinstance(content, str) else None


_TURN = re.compile(r"\n\n(Human|Assistant):[ \t]?")


def parse_transcript(text: str) -> list[dict[str, str]]:
    """An Anthropic-style ``"\\n\\nHuman: ...\\n\\nAssistant:"`` transcript -> messages.

    The final ``Assistant:`` (the turn to write) is required and dropped; ``Human`` becomes
    ``user``. Raises ``ValueError`` when the text is not such a transcript.
    """
    body = text if text.startswith("\n\n") else "\n\n" + text.lstrip()
    parts = _TURN.split(body)
    if parts[0].strip() or len(parts) < 5:
        raise ValueError("is not a '\\n\\nHuman: ...\\n\\nAssistant:' transcript")
    messages: list[dict[str, str]] = []
    for speaker, content in zip(parts[1::2], parts[2::2], strict=True):
        messages.append({"role": "user" if speaker == "Human" else "assistant", "content": content.strip()})
    last = messages.pop()
    if last["role"] != "assistant" or last["content"]:
        raise ValueError("does not end with an empty 'Assistant:' turn")
    if messages[0]["role"] != "user" or any(
        a["role"] == b["role"] for a, b in zip(messages, messages[1:], strict=False)
    ):
        raise ValueError("does not alternate Human and Assistant turns")
    return messages


def append_message(prompts: pa.Array, role: str, contents: pa.Array) -> pa.Array:
    """Each row's prompt messages plus one ``{role, content}`` message (``contents[i]`` for row i)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    prompts = prompts.cast(message_type())
    n = len(prompts)
    flat = pc.list_flatten(prompts)
    lengths = pc.list_value_length(prompts).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths + 1, out=offsets[1:])
    added = pa.StructArray.from_arrays(
        [pa.array([role] * n, type=pa.string()), contents.cast(pa.string())], names=["role", "content"]
    )
    index = np.empty(int(offsets[-1]), dtype=np.int64)
    is_added = np.zeros(len(index), dtype=bool)
    is_added[offsets[1:] - 1] = True
    index[~is_added] = np.arange(len(flat))
    index[is_added] = len(flat) + np.arange(n)
    values = pa.concat_arrays([flat, added.cast(flat.type)]).take(pa.array(index))
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)


def blank(values: pa.Array) -> np.ndarray:
    """Per string value: null, empty or only whitespace (an *empty* response)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_null(values.type):
        return np.ones(len(values), dtype=bool)
    text = values.cast(pa.string())
    mask = pc.or_kleene(pc.equal(pc.binary_length(text), 0), pc.utf8_is_space(text))
    return np.asarray(mask.fill_null(True).to_numpy(zero_copy_only=False), dtype=bool)


def parsed_rows(
    prompt_ids: list[str | None],
    malformed: list[str | None],
    models: list[list[str]],
    empty: list[list[bool]],
    ratings: list[list[float | None]],
) -> pa.Table:
    """A :func:`~karma_hf.sources.registry.parsed_schema` table from per-row Python lists."""
    import pyarrow as pa

    from karma_hf.sources.registry import parsed_schema

    return pa.table(
        {"prompt_id": prompt_ids, "malformed": malformed, "models": models, "empty": empty, "rating": ratings},
        schema=parsed_schema(),
    )


def check_columns(schema: pa.Schema, columns: Mapping[str, str], source: str) -> None:
    """One-line :class:`~karma_hf.errors.KarmaError` when a required column is missing or has a
    type no row could satisfy. ``columns`` maps name -> ``"string"``, ``"list"`` or ``"any"``."""
    import pyarrow as pa

    from karma_hf.errors import KarmaError

    for name, kind in columns.items():
        if name not in schema.names:
            raise KarmaError(
                f"source has no {name!r} column (columns: {', '.join(schema.names)}); expected the {source} schema"
            )
        t = schema.field(name).type
        ok = (
            kind == "any"
            or pa.types.is_null(t)
            or (kind == "string" and (pa.types.is_string(t) or pa.types.is_large_string(t)))
            or (kind == "list" and (pa.types.is_list(t) or pa.types.is_large_list(t)))
        )
        if not ok:
            raise KarmaError(f"source column {name!r} has type {t}, expected a {kind} ({source} schema)")


def row_batches(batch: Any) -> list[pa.RecordBatch]:
    """The non-empty record batches of a Table or RecordBatch."""
    import pyarrow as pa

    if isinstance(batch, pa.RecordBatch):
        return [batch]
    return [rb for rb in batch.to_batches() if rb.num_rows]


def concat_parsed(parts: list[pa.Table]) -> pa.Table:
    import pyarrow as pa

    from karma_hf.sources.registry import parsed_schema

    if not parts:
        return parsed_schema().empty_table()
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def number_problem(value: Any, *, minimum: int = 0) -> str | None:
    """Why ``value`` is not an integer-valued number >= ``minimum`` (a rank), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"= {value!r} is not a number"
    if isinstance(value, float) and not (np.isfinite(value) and value.is_integer()):
        return f"= {value!r} is not a whole number"
    if value < minimum:
        return f"= {value!r} is below {minimum}"
    return None
