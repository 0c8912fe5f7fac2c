"""``lmsys/chatbot_arena_conversations``: one human-judged battle between two models per row.

One row: ``question_id``, ``model_a``, ``model_b``, ``winner`` (``model_a``, ``model_b``,
``tie`` or ``tie (bothbad)``), ``judge``, ``conversation_a`` / ``conversation_b``
(``[{content, role}]``, the same user turns answered by each model), ``turn`` (user turns),
``anony``, ``language``, ``tstamp``, ``openai_moderation``, ``toxic_chat_tag``.

Mapping:

- completions: two per row, ``model_a``'s last reply then ``model_b``'s;
- prompt: every message before the last reply. Multi-turn battles keep all earlier turns; the
  earlier *assistant* turns differ between the two conversations and a pair shares one prompt,
  so karma-hf takes them from ``conversation_a``: for multi-turn rows, model_b's last reply
  follows model_a's earlier replies (the Arena user saw each model continue its own
  conversation). ``prompt_id`` = :func:`~karma_hf.sources.messages.prompt_id_of` of the prompt;
- per-instance rating (``--rating winner``, the only one), the label of the ``rlaif`` baseline
  (use ``--rlaif-recipe argilla``): the winner 1, the loser 0; ``tie`` 0.5 each and
  ``tie (bothbad)`` 0 each, so the argilla recipe drops both kinds of ties as ``tie``
  (the KARMA modes never read the winner);
- no label column (the pairs' ``source`` is null);
- malformed: a missing model name, ``model_a`` = ``model_b``, an unknown ``winner``, a
  conversation that is missing, does not alternate user / assistant turns starting with the
  user and ending with the reply, or whose user turns differ between ``conversation_a`` and
  ``conversation_b``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from karma_hf.errors import KarmaError
from karma_hf.sources.messages import (
    check_columns,
    concat_parsed,
    last_user_text,
    messages_array,
    parsed_rows,
    prompt_id_of,
    row_batches,
)
from karma_hf.sources.registry import SourceSchema, SourceTexts, register_source

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

HUB_ID = "lmsys/chatbot_arena_conversations"
RATING_METHODS: tuple[str, ...] = ("winner",)
#: ``winner`` -> (rating of model_a, rating of model_b)
WINNER_RATINGS: dict[str, tuple[float, float]] = {
    "model_a": (1.0, 0.0),
    "model_b": (0.0, 1.0),
    "tie": (0.5, 0.5),
    "tie (bothbad)": (0.0, 0.0),
}
_COLUMNS = {"model_a": "string", "model_b": "string", "winner": "string", "conversation_a": "list",
            "conversation_b": "list"}  # fmt: skip


def matches(schema: pa.Schema) -> bool:
    """Arena: ``model_a``, ``model_b``, ``conversation_a`` and ``conversation_b`` columns."""
    return {"model_a", "model_b", "conversation_a", "conversation_b"} <= set(schema.names)


def check_schema(schema: pa.Schema, rating: str = "winner") -> None:
    if rating not in RATING_METHODS:
        raise KarmaError(f"--rating must be one of {', '.join(RATING_METHODS)} for arena sources, got {rating!r}")
    check_columns(schema, _COLUMNS, HUB_ID)


def _conversation(conv: Any, where: str) -> tuple[list[dict[str, str]] | None, str | None]:
    """(messages, None) or (None, problem): user/assistant turns, alternating, ending with the reply."""
    if conv is None:
        return None, f"{where} is missing"
    if len(conv) < 2:
        return None, f"{where} has {len(conv)} message(s), expected a user turn and a reply"
    out = []
    for i, message in enumerate(conv):
        if not isinstance(message, Mapping):
            return None, f"{where}[{i}] is null"
        role, content = message.get("role"), message.get("content")
        want = "user" if i % 2 == 0 else "assistant"
        if role != want:
            return None, f"{where}[{i}].role = {role!r}, expected {want!r} (turns alternate, the user first)"
        if content is not None and not isinstance(content, str):
            return None, f"{where}[{i}].content is {type(content).__name__}, expected a string"
        out.append({"role": role, "content": content or ""})
    if out[-1]["role"] != "assistant":
        return None, f"{where} ends with a user turn, expected the reply"
    return out, None


def parse_row(row: Mapping[str, Any]) -> tuple[str | None, str | None, list[str], list[bool], list[float | None]]:
    """(prompt_id, problem, models, empty, ratings) of one battle."""
    model_a, model_b, winner = row.get("model_a"), row.get("model_b"), row.get("winner")
    for name, value in (("model_a", model_a), ("model_b", model_b)):
        if not isinstance(value, str) or not value.strip():
            return None, f"{name} is {'missing' if value is None else repr(value)}", [], [], []
    if model_a == model_b:
        return None, f"model_b = model_a = {model_a!r} (a battle needs two models)", [], [], []
    if winner not in WINNER_RATINGS:
        return None, f"winner = {winner!r} is not one of {', '.join(WINNER_RATINGS)}", [], [], []
    conv_a, problem = _conversation(row.get("conversation_a"), "conversation_a")
    if problem is None:
        conv_b, problem = _conversation(row.get("conversation_b"), "conversation_b")
    if problem is not None:
        return None, problem, [], [], []
    assert conv_a is not None and conv_b is not None
    if len(conv_a) != len(conv_b):
        return None, f"conversation_a has {len(conv_a)} messages but conversation_b {len(conv_b)}", [], [], []
    for i in range(0, len(conv_a), 2):
        if conv_a[i]["content"] != conv_b[i]["content"]:
            return None, f"conversation_b[{i}] (a user turn) differs from conversation_a[{i}]", [], [], []
    prompt = conv_a[:-1]
    if not prompt[-1]["content"].strip():
        return None, f"conversation_a[{len(prompt) - 1}].content (the user turn) is empty", [], [], []
    ratings = WINNER_RATINGS[winner]
    empty = [not conv_a[-1]["content"].strip(), not conv_b[-1]["content"].strip()]
    return prompt_id_of(prompt), None, [str(model_a), str(model_b)], empty, list(ratings)


_PARSE_COLUMNS = ("model_a", "model_b", "winner", "conversation_a", "conversation_b")


def parse_batch(batch: Any, rating: str = "winner") -> pa.Table:
    check_schema(batch.schema, rating)
    parts = []
    for rb in row_batches(batch):
        out: tuple[list, list, list, list, list] = ([], [], [], [], [])
        for row in rb.select(list(_PARSE_COLUMNS)).to_pylist():
            for column, value in zip(out, parse_row(row), strict=True):
                column.append(value)
        parts.append(parsed_rows(*out))
    return concat_parsed(parts)


def texts(batch: pa.RecordBatch) -> SourceTexts:
    """Prompt = ``conversation_a`` less its last reply; responses = the last reply of a, then of b."""
    import pyarrow as pa

    prompts: list[list[dict[str, str]] | None] = []
    replies: list[str | None] = []
    for conv_a, conv_b in zip(
        batch.column("conversation_a").to_pylist(), batch.column("conversation_b").to_pylist(), strict=True
    ):
        a, _ = _conversation(conv_a, "conversation_a")
        b, _ = _conversation(conv_b, "conversation_b")
        prompts.append(a[:-1] if a else None)
        replies += [a[-1]["content"] if a else None, b[-1]["content"] if b else None]
    n = batch.num_rows
    return SourceTexts(
        prompt=pa.array([last_user_text(p) for p in prompts], type=pa.string()),
        responses=pa.array(replies, type=pa.string()),
        offsets=np.arange(0, 2 * n + 1, 2, dtype=np.int64),
        prompt_messages=messages_array(prompts),
    )


SOURCE = register_source(
    SourceSchema(
        name="arena",
        description="lmsys/chatbot_arena_conversations: model_a/model_b battles, conversation_a/b [{role, content}], "
        "winner; prompt = the turns before the last reply (earlier replies from conversation_a)",
        matches=matches,
        check_schema=check_schema,
        parse_batch=parse_batch,
        texts=texts,
        text_columns=("conversation_a", "conversation_b"),
        rating_methods=RATING_METHODS,
        rating_help={"winner": "the human vote: winner 1, loser 0, tie 0.5 each, tie (bothbad) 0 each"},
    )
)
