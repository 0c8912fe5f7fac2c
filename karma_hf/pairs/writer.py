"""Streaming every config's rows to parquet: one file per (config, split), configs written concurrently.

The builder hands :class:`OutputWriter` one source batch at a time (:class:`Batch`: its texts and
its decided rows) with the rows of each config (a mode in a form, :data:`karma_hf.layout.FORMS`);
each config's thread gathers them with Arrow ``take`` straight into their split (train rows and
test rows are taken separately, never filtered afterwards) and writes them. Arrow kernels and
parquet encoding release the GIL, so the configs are gathered and encoded in parallel while the
main thread parses and decides the next batch. With fewer configs than cores (a one-mode build on
two cores), each config splits its work over two threads: one gathers a batch while the other
encodes the previous one, since parquet encoding is most of a build and one thread would leave a
core idle. At most two batches per config wait in line (as references to the memory-mapped
source), plus one gathered batch when pipelined, so memory stays bounded by the batch size,
whatever the size of the source.

``train_sft`` has no file of its own: the card declares it on ``train``'s shards
(:data:`karma_hf.layout.SPLIT_FILES`), so its bytes are stored and uploaded once.
"""

from __future__ import annotations

import contextlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from karma_hf.layout import DEFAULT_FORM, FORMS, form_schema, shard_name, shard_split
from karma_hf.sources.messages import append_message, message_type

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from karma_hf.kinship import Kinship
    from karma_hf.pairs.decide import Rows
    from karma_hf.sources.registry import SourceTexts

ROW_GROUP_SIZE = 1000
#: Row groups between two returns of the writer thread's freed memory to the OS (see :func:`release_unused`).
#: Every group costs time: a four-mode build of 1M rows took 83 s with peak anonymous memory
#: 393 MB, against 75 s and 429 MB releasing the Arrow pool every second group without
#: ``malloc_trim``, and 81 s and 407 MB trimming every eighth (``benchmarks/build.py``, 2 cores).
RELEASE_EVERY = 1
#: The same for a pipelined config (fewer configs than cores): its encoder thread is the build's
#: critical path, and with so few writer threads their retained memory stays small (a one-mode
#: build of 1M rows peaks at ~220 MB either way).
RELEASE_EVERY_PIPELINED = 4
#: Batches that may wait for one config's gather thread before the reader blocks.
MAX_PENDING = 2
#: Gathered batches that may wait for one config's write thread before its gather thread blocks.
MAX_WRITING = 1


def release_unused() -> None:
    """Return the memory this thread's Arrow allocator holds but no longer uses to the OS.

    Every batch's buffers are allocated by the reader thread and freed by a writer thread, and
    each row group's encoder allocates and frees its own; pyarrow's default allocator (mimalloc)
    keeps much of that resident per thread, so without this the anonymous memory of a four-mode
    build creeps up with the number of row groups written."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    if _TRIM is not None:  # glibc: numpy's freed blocks in this thread's arena too
        _TRIM(0)


def available_cores() -> int:
    """CPU cores this process may run on."""
    import os

    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None elsewhere."""
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


class SplitWriter:
    """Streams rows of one (config, split) to parquet in fixed-size row groups."""

    def __init__(self, path: Path, schema: pa.Schema, release_every: int = RELEASE_EVERY) -> None:
        import pyarrow.parquet as pq

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.schema = schema
        self.release_every = release_every
        self.writer = pq.ParquetWriter(str(path), schema, compression="snappy")
        self.buffer: list[pa.Table] = []
        self.buffered = 0
        self.rows = 0
        self.groups = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self.buffer.append(table)
            self.buffered += table.num_rows
            while self.buffered >= ROW_GROUP_SIZE:
                self._flush(ROW_GROUP_SIZE)

    def _flush(self, count: int) -> None:
        import pyarrow as pa

        merged = pa.concat_tables(self.buffer) if len(self.buffer) > 1 else self.buffer[0]
        head, rest = merged.slice(0, count), merged.slice(count)
        self.writer.write_table(head, row_group_size=count)
        self.rows += head.num_rows
        self.groups += 1
        if self.groups % self.release_every == 0:
            release_unused()
        self.buffer = [rest] if rest.num_rows else []
        self.buffered = rest.num_rows

    def close(self) -> dict[str, int]:
        """Finish the file; an empty split is removed (``datasets`` cannot load a 0-row split)."""
        if self.buffered:
            self._flush(self.buffered)
        self.writer.close()
        if not self.rows:
            self.path.unlink()
            return {"num_examples": 0, "num_bytes": 0, "download_size": 0}
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(self.path).metadata  # uncompressed size: a function of the file bytes
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        return {"num_examples": self.rows, "num_bytes": int(size), "download_size": self.path.stat().st_size}

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the folder is being removed anyway
            self.writer.close()


class ConfigWriter:
    """The files of one config, fed from the reader by a thread of their own that gathers each
    batch's tables (Arrow ``take``) and encodes them (parquet). ``pipelined``: a second thread
    encodes while the first gathers the next batch (both release the GIL), for builds with fewer
    configs than cores; with as many configs as cores the configs already keep every core busy,
    and a second stage would only hold one more batch of text per config."""

    def __init__(self, folder: Path, form: str, pipelined: bool = False) -> None:
        self.folder = folder
        schema = form_schema(form)
        self.writers = {
            split: SplitWriter(
                folder / shard_name(split), schema, RELEASE_EVERY_PIPELINED if pipelined else RELEASE_EVERY
            )
            for split in FORMS[form].splits
            if shard_split(split) == split
        }
        self.gather_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"karma-gather-{folder.name}")
        self.write_pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"karma-write-{folder.name}") if pipelined else None
        )
        self.pending: deque[Future[None]] = deque()  # batches being gathered (the reader's queue)
        self.writing: deque[Future[None]] = deque()  # tables being written (the gather thread's queue)

    def submit(self, batch: Batch, items: Items, is_test: np.ndarray) -> None:
        """Queue one batch's rows of this config (gathered and written by this config's threads)."""
        while len(self.pending) >= MAX_PENDING:
            self.pending.popleft().result()  # re-raises a failed gather or write here, in the reader
        self.pending.append(self.gather_pool.submit(self._gather, batch, items, is_test))

    def _gather(self, batch: Batch, items: Items, is_test: np.ndarray) -> None:
        test = is_test[items.row]
        tables = [
            (split, TABLES[items.form](batch, items, sel))
            for split, sel in (("train", np.flatnonzero(~test)), ("test", np.flatnonzero(test)))
            if sel.size
        ]
        if self.write_pool is None:
            self._write(tables)
            return
        while len(self.writing) >= MAX_WRITING:
            self.writing.popleft().result()  # a failed write fails this gather, and so the reader
        self.writing.append(self.write_pool.submit(self._write, tables))

    def _write(self, tables: list[tuple[str, pa.Table]]) -> None:
        for split, table in tables:
            self.writers[split].add(table)

    def close(self) -> dict[str, dict[str, int]]:
        while self.pending:
            self.pending.popleft().result()
        self.gather_pool.shutdown()
        while self.writing:  # only the gather thread appends, and it is done
            self.writing.popleft().result()
        if self.write_pool is not None:
            self.write_pool.shutdown()
        sizes = {split: writer.close() for split, writer in self.writers.items()}
        if not any(size["num_examples"] for size in sizes.values()):
            self.folder.rmdir()  # a config without rows is not written at all
        return sizes

    def abort(self) -> None:
        for future in self.pending:
            future.cancel()
        self.gather_pool.shutdown(wait=True, cancel_futures=True)
        for future in self.writing:
            future.cancel()
        if self.write_pool is not None:
            self.write_pool.shutdown(wait=True, cancel_futures=True)
        for writer in self.writers.values():
            writer.abort()


# ------------------------------------------------------------------------------ what each config holds
@dataclass
class Items:
    """The rows of one config, in output order (source rows ascending).

    ``row``: source row of each output row. ``pos``/``other``: positions in the row's completions
    (pair forms: chosen and rejected; ``unpaired``: the completion and its pair partner).
    ``rank``: ``pair_rank`` (``all``). ``label``: desirable or not (``unpaired``).
    ``lists``: (``ranked``) offsets into ``list_pos``, the S_pref-ordered candidates of each row.
    """

    form: str
    row: np.ndarray
    pos: np.ndarray
    other: np.ndarray
    rank: np.ndarray | None = None
    label: np.ndarray | None = None
    lists: np.ndarray | None = None
    list_pos: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.row.size)


def best_items(status: np.ndarray, chosen: np.ndarray, rejected: np.ndarray, kept_code: int = 0) -> Items:
    rows = np.flatnonzero(status == kept_code)
    return Items("best", rows, chosen[rows], rejected[rows])


def unpaired_items(best: Items) -> Items:
    """Two rows per pair: the chosen completion (desirable), then the rejected one (undesirable)."""
    n = len(best)
    label = np.tile(np.array([True, False]), n)
    pos = np.empty(2 * n, dtype=np.int64)
    other = np.empty(2 * n, dtype=np.int64)
    pos[0::2], pos[1::2] = best.pos, best.other
    other[0::2], other[1::2] = best.other, best.pos
    return Items("unpaired", np.repeat(best.row, 2), pos, other, label=label)


# ------------------------------------------------------------------------------ tables
def _messages(role_content: list[tuple[str, pa.Array]], n: int) -> pa.Array:
    """A list<struct<role, content>> column with one message per (role, content) entry."""
    import pyarrow as pa

    k = len(role_content)
    if k == 1:
        roles = pa.array([role_content[0][0]] * n, type=pa.string())
        contents = role_content[0][1]
    else:
        order = np.arange(n * k).reshape(k, n).T.reshape(-1)  # interleave the k columns
        roles = pa.array([r for r, _ in role_content], type=pa.string()).take(pa.array(np.tile(np.arange(k), n)))
        contents = pa.concat_arrays([c for _, c in role_content]).take(pa.array(order))
    values = pa.StructArray.from_arrays([roles, contents], names=["role", "content"])
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)), values)


def _floats(values: np.ndarray) -> pa.Array:
    import pyarrow as pa

    return pa.array(values, type=pa.float64(), from_pandas=True)


@dataclass
class Batch:
    """What every config's tables of one source batch are gathered from (rows numbered in the batch)."""

    texts: SourceTexts
    rows: Rows
    kin: Kinship
    prompt_ids: pa.Array
    names: pa.Array  # model names by code
    s_pref: np.ndarray  # by code (NaN for known-unscored models)

    def prompt(self, local: np.ndarray) -> tuple[pa.Array, pa.Array]:
        """The prompt messages and the user turn's text of the rows at batch positions ``local``."""
        import pyarrow as pa

        idx = pa.array(local)
        text = self.texts.prompt.take(idx).cast(pa.string())
        if self.texts.prompt_messages is not None:  # a multi-turn prompt: all its messages
            return self.texts.prompt_messages.take(idx).cast(message_type()), text
        return _messages([("user", text)], len(local)), text

    def responses(self, local: np.ndarray, pos: np.ndarray) -> pa.Array:
        import pyarrow as pa

        return self.texts.responses.take(pa.array(self.texts.offsets[:-1][local] + pos)).cast(pa.string())

    def source_label(self, local: np.ndarray) -> pa.Array:
        import pyarrow as pa

        if self.texts.label is None:
            return pa.nulls(len(local), type=pa.string())
        return self.texts.label.take(pa.array(local)).cast(pa.string())

    def kinship(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine between models by code; NaN unless both are scored."""
        k = self.rows.n_scored_models
        both = (a < k) & (b < k)
        return np.where(both, self.kin.pair_cosine(np.minimum(a, k - 1), np.minimum(b, k - 1)), np.nan)


def pair_table(batch: Batch, items: Items, sel: np.ndarray) -> pa.Table:
    """``best`` / ``all`` rows: the output schema (plus ``pair_rank`` for ``all``)."""
    import pyarrow as pa

    rows = batch.rows
    row = local = items.row[sel]
    c_flat = rows.offsets[row] + items.pos[sel]
    r_flat = rows.offsets[row] + items.other[sel]
    c_code, r_code = rows.code[c_flat], rows.code[r_flat]
    chosen_text = batch.responses(local, items.pos[sel])
    rejected_text = batch.responses(local, items.other[sel])
    m = len(sel)
    prompt_col, prompt_text = batch.prompt(local)
    if batch.texts.prompt_messages is not None:
        messages_col = append_message(prompt_col, "assistant", chosen_text)
    else:
        messages_col = _messages([("user", prompt_text), ("assistant", chosen_text)], m)
    columns = [
        prompt_col,
        _messages([("assistant", chosen_text)], m),
        _messages([("assistant", rejected_text)], m),
        messages_col,
        batch.prompt_ids.take(pa.array(row)),
        batch.names.take(pa.array(c_code)),
        batch.names.take(pa.array(r_code)),
        _floats(batch.kinship(c_code, r_code)),
        _floats(batch.s_pref[c_code]),
        _floats(batch.s_pref[r_code]),
        _floats(rows.rating[c_flat]),
        _floats(rows.rating[r_flat]),
        batch.source_label(local),
    ]
    if items.form == "all":
        assert items.rank is not None
        columns.append(pa.array(items.rank[sel], type=pa.int32()))
    return pa.table(columns, schema=form_schema(items.form))


def unpaired_table(batch: Batch, items: Items, sel: np.ndarray) -> pa.Table:
    """``unpaired`` rows: TRL's prompt / completion / label, with the pair's columns (as TRL's
    ``unpair_preference_dataset`` keeps them), each pair's desirable row first."""
    import pyarrow as pa

    assert items.label is not None
    label = items.label[sel]
    chosen_pos = np.where(label, items.pos[sel], items.other[sel])
    rejected_pos = np.where(label, items.other[sel], items.pos[sel])
    pairs = pair_table(batch, Items("best", items.row[sel], chosen_pos, rejected_pos), np.arange(len(sel)))
    local = items.row[sel]
    completion = _messages([("assistant", batch.responses(local, items.pos[sel]))], len(sel))
    meta = [pairs.column(name) for name in form_schema("unpaired").names[3:]]
    return pa.table(
        [pairs.column("prompt"), completion, pa.array(label, type=pa.bool_()), *meta], schema=form_schema("unpaired")
    )


def ranked_table(batch: Batch, items: Items, sel: np.ndarray) -> pa.Table:
    """``ranked`` rows: every scored completion of the prompt, best S_pref first."""
    import pyarrow as pa

    assert items.lists is not None and items.list_pos is not None
    rows = batch.rows
    row = local = items.row[sel]
    starts, stops = items.lists[sel], items.lists[sel + 1]
    counts = stops - starts
    take = np.concatenate([np.arange(a, b) for a, b in zip(starts, stops, strict=True)] or [np.zeros(0, np.int64)])
    pos = items.list_pos[take]
    row_rep = np.repeat(row, counts)
    flat = rows.offsets[row_rep] + pos
    code = rows.code[flat]
    best = np.repeat(code[np.concatenate([[0], np.cumsum(counts)[:-1]])] if len(sel) else code[:0], counts)
    outer = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    completions = _messages([("assistant", batch.responses(row_rep, pos))], len(pos))
    prompt_col, _ = batch.prompt(local)
    return pa.table(
        [
            prompt_col,
            pa.ListArray.from_arrays(outer, completions),
            pa.ListArray.from_arrays(outer, batch.names.take(pa.array(code))),
            pa.ListArray.from_arrays(outer, _floats(batch.s_pref[code])),
            pa.ListArray.from_arrays(outer, _floats(batch.kinship(best, code))),
            pa.ListArray.from_arrays(outer, _floats(rows.rating[flat])),
            batch.prompt_ids.take(pa.array(row)),
            batch.source_label(local),
        ],
        schema=form_schema("ranked"),
    )


TABLES = {"best": pair_table, "all": pair_table, "unpaired": unpaired_table, "ranked": ranked_table}


class OutputWriter:
    """Every config's files: ``out_dir/<config>/<split>-00000-of-00001.parquet``, fed batch by batch."""

    def __init__(self, out_dir: Path, forms: dict[str, str]) -> None:
        self.forms = forms
        self.writers: dict[str, ConfigWriter] = {}
        pipelined = len(forms) < available_cores()
        try:
            for name, form in forms.items():
                self.writers[name] = ConfigWriter(out_dir / name, form, pipelined=pipelined)
        except BaseException:
            self.abort()
            raise

    def add(self, batch: Batch, configs: dict[str, Items], is_test: np.ndarray) -> None:
        """Queue the rows of every config of ``batch`` (``is_test``: per batch row); each config's
        thread gathers them (Arrow ``take`` releases the GIL: the configs gather in parallel)."""
        for name, items in configs.items():
            if len(items):
                self.writers[name].submit(batch, items, is_test)

    def close(self) -> dict[str, dict[str, dict[str, int]]]:
        """Finish every file; return the sizes per config with rows and split (``train_sft``
        repeats ``train``'s, whose files it reads)."""
        sizes: dict[str, dict[str, dict[str, int]]] = {}
        for name, writer in self.writers.items():
            per_split = writer.close()
            if not any(size["num_examples"] for size in per_split.values()):
                continue
            sizes[name] = {
                split: per_split[split] if split in per_split else _alias_sizes(per_split[shard_split(split)])
                for split in FORMS[self.forms[name]].splits
            }
        return sizes

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


def _alias_sizes(sizes: dict[str, int]) -> dict[str, int]:
    """A split declared on another split's files: same rows and bytes, nothing more to download."""
    return {**sizes, "download_size": 0}


__all__ = [
    "DEFAULT_FORM",
    "Batch",
    "ConfigWriter",
    "Items",
    "OutputWriter",
    "SplitWriter",
    "best_items",
    "unpaired_items",
]
