"""The prompts ``karma generate`` answers, from any ``datasets`` source.

- ``--prompt-column COL``: the column holds a string (one user message) or messages
  (``[{role, content}]``; a conversation is cut after its last user turn, so a chat dataset's
  ``messages`` column gives the prompt before the reply);
- without it, a dataset in a registered source schema (UltraFeedback's ``instruction``, Nectar,
  Arena, OpenHermes, a generated set) gives its prompts as ``karma build`` reads them, with the
  same ``prompt_id`` (``sha256`` of the text for a single user turn) and the source label.

Malformed rows and prompts without a non-empty last user turn are skipped (counted); a repeated
prompt (same ``prompt_id``) is answered once (counted). ``limit`` keeps the first N distinct prompts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from karma_hf.errors import KarmaError
from karma_hf.sources.messages import prompt_id_of, prompt_problem


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    messages: list[dict[str, str]]
    label: str | None = None


@dataclass
class PromptSet:
    """Distinct prompts in source order, and how the source was read."""

    prompts: list[Prompt]
    source: str
    split: str
    prompt_column: str | None
    schema: str  # the registered source schema, or "column"
    rows: int = 0
    skipped: int = 0
    duplicates: int = 0
    examples: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.prompts)

    def digest(self) -> str:
        """SHA-256 over every prompt (id, messages, label), in order."""
        h = hashlib.sha256()
        for p in self.prompts:
            h.update(json.dumps([p.prompt_id, p.messages, p.label], ensure_ascii=False, sort_keys=True).encode())
            h.update(b"\n")
        return h.hexdigest()


def _as_messages(value: Any) -> list[dict[str, str]] | None:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list):
        last_user = max(
            (i for i, m in enumerate(value) if isinstance(m, dict) and m.get("role") == "user"), default=-1
        )
        if last_user < 0:
            return None
        return [{"role": m.get("role"), "content": m.get("content")} for m in value[: last_user + 1]]
    return None


def load_prompts(
    source: str | Path,
    *,
    prompt_column: str | None = None,
    split: str = "train",
    revision: str | None = None,
    limit: int | None = None,
    cache_dir: str | Path | None = None,
) -> PromptSet:
    """Read the prompts of ``source``: a Hub id or a local file / folder
    (:func:`karma_hf.sources.loading.load_source`)."""
    from karma_hf.sources.loading import load_source

    if limit is not None and limit < 1:
        raise KarmaError(f"--limit must be >= 1, got {limit}")
    ds = load_source(source, revision=revision, split=split, cache_dir=cache_dir)
    out = _from_column(ds, prompt_column) if prompt_column is not None else _from_schema(ds)
    out.source, out.split, out.prompt_column, out.rows = str(source), split, prompt_column, len(ds)
    seen: set[str] = set()
    distinct: list[Prompt] = []
    for p in out.prompts:
        if p.prompt_id in seen:
            out.duplicates += 1
            continue
        seen.add(p.prompt_id)
        distinct.append(p)
        if limit is not None and len(distinct) >= limit:
            break
    out.prompts = distinct
    if not distinct:
        detail = f" (e.g. {out.examples[0]})" if out.examples else ""
        raise KarmaError(f"no usable prompt in {source}: {out.skipped} row(s) skipped{detail}")
    return out


def _from_column(ds: Any, column: str) -> PromptSet:
    import pyarrow as pa

    if column not in ds.column_names:
        raise KarmaError(
            f"--prompt-column {column!r} is not a column of the source (columns: {', '.join(ds.column_names)})"
        )
    table = ds.data.table
    labels = table.column("source").to_pylist() if "source" in table.column_names and pa.types.is_string(
        table.schema.field("source").type
    ) else [None] * table.num_rows  # fmt: skip
    out = PromptSet([], "", "", column, "column")
    for i, value in enumerate(table.column(column).to_pylist()):
        messages = _as_messages(value)
        problem = prompt_problem(messages, column) if messages is not None else f"{column} is not text or messages"
        if problem is not None:
            out.skipped += 1
            if len(out.examples) < 5:
                out.examples.append(f"row {i}: {problem}")
            continue
        assert messages is not None
        out.prompts.append(Prompt(prompt_id_of(messages), messages, labels[i]))
    return out


def _from_schema(ds: Any) -> PromptSet:
    from karma_hf.sources.registry import detect_source

    table = ds.data.table
    try:
        schema = detect_source(table.schema)
    except KarmaError as exc:
        raise KarmaError(f"{exc}; or pass --prompt-column COLUMN") from exc
    rating = schema.rating_methods[0]
    schema.check_schema(table.schema, rating)
    out = PromptSet([], "", "", None, schema.name)
    start = 0
    for batch in table.to_batches(max_chunksize=1000):
        if not batch.num_rows:
            continue
        parsed = schema.parse_batch(batch, rating)
        texts = schema.texts(batch.select([c for c in schema.text_columns if c in batch.schema.names]))
        ids = parsed.column("prompt_id").to_pylist()
        bad = parsed.column("malformed").to_pylist()
        prompts = texts.prompt.to_pylist()
        messages = texts.prompt_messages.to_pylist() if texts.prompt_messages is not None else None
        labels = texts.label.to_pylist() if texts.label is not None else [None] * batch.num_rows
        for j in range(batch.num_rows):
            msgs = messages[j] if messages is not None else [{"role": "user", "content": prompts[j]}]
            problem = bad[j] or (prompt_problem(msgs) if msgs is not None else "prompt is missing")
            if problem is not None or ids[j] is None:
                out.skipped += 1
                if len(out.examples) < 5:
                    out.examples.append(f"row {start + j}: {problem}")
                continue
            out.prompts.append(Prompt(ids[j], [dict(m) for m in msgs], labels[j]))
        start += batch.num_rows
    return out
