"""Streaming the kept pairs of every mode to parquet, one file per (mode, split)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from karma_hf.layout import SPLITS, output_schema, shard_name
from karma_hf.pairs.decide import KEPT, Decision, Rows
from karma_hf.sources.messages import append_message, message_type

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import pyarrow as pa

    from karma_hf.kinship import Kinship
    from karma_hf.sources.registry import SourceSchema

ROW_GROUP_SIZE = 1000


class SplitWriter:
    """Streams kept rows of one (mode, split) to parquet in fixed-size row groups."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.schema = schema
        self.writer = pq.ParquetWriter(str(path), schema, compression="snappy")
        self.buffer: list[pa.Table] = []
        self.buffered = 0
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        if table.num_rows:
            self.buffer.append(table)
            self.buffered += table.num_rows
            while self.buffered >= ROW_GROUP_SIZE:
                self._flush(ROW_GROUP_SIZE)

    def _flush(self, count: int) -> None:
        import pyarrow as pa

        merged = pa.concat_tables(self.buffer)
        head, rest = merged.slice(0, count), merged.slice(count)
        head = head.combine_chunks()
        self.writer.write_table(head, row_group_size=count)
        self.rows += head.num_rows
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


def write_outputs(
    ds: datasets.Dataset,
    source: SourceSchema,
    out_dir: Path,
    decisions: dict[str, Decision],
    rows: Rows,
    prompt_ids: pa.Array,
    is_test: np.ndarray,
    kin: Kinship,
    batch_size: int,
    progress: bool,
) -> dict[str, dict[str, dict[str, int]]]:
    """Write ``out_dir/<mode>/<split>-00000-of-00001.parquet`` for every mode; return the sizes.

    The texts come from ``source.texts`` (the only place that knows the source's columns);
    every other column comes from the decisions and the kinship.
    """
    import pyarrow as pa

    schema = output_schema()
    # train_sft holds exactly the train rows with the same schema: its file is a copy of train's
    writers = {
        (mode, split): SplitWriter(out_dir / mode / shard_name(split), schema)
        for mode in decisions
        for split in ("train", "test")
    }
    vocab = rows.vocab
    k = rows.n_scored_models
    s_pref = np.concatenate([kin.s_pref, np.full(len(vocab) - k, np.nan)])
    table = ds.data.table
    table = table.select([c for c in source.text_columns if c in table.column_names])
    names = pa.array(list(vocab), type=pa.string())

    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn("Writing pairs"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
        )
        task = bar.add_task("write", total=rows.n)
        bar.start()
    try:
        start = 0
        for batch in table.to_batches(max_chunksize=batch_size):
            n = batch.num_rows
            sl = slice(start, start + n)
            texts = source.texts(batch)
            base = texts.offsets[:-1]
            for mode, dec in decisions.items():
                keep = np.flatnonzero(dec.status[sl] == KEPT)
                if not keep.size:
                    continue
                gidx = keep + start
                c_flat = rows.offsets[gidx] + dec.chosen_pos[gidx]
                r_flat = rows.offsets[gidx] + dec.rejected_pos[gidx]
                c_code, r_code = rows.code[c_flat], rows.code[r_flat]
                both = (c_code < k) & (r_code < k)
                kinship = np.where(both, kin.pair_cosine(np.minimum(c_code, k - 1), np.minimum(r_code, k - 1)), np.nan)
                prompt_text = texts.prompt.take(pa.array(keep)).cast(pa.string())
                chosen_text = texts.responses.take(pa.array(base[keep] + dec.chosen_pos[gidx])).cast(pa.string())
                rejected_text = texts.responses.take(pa.array(base[keep] + dec.rejected_pos[gidx])).cast(pa.string())
                m = keep.size
                if texts.prompt_messages is not None:  # a multi-turn prompt: all its messages
                    prompt_col = texts.prompt_messages.take(pa.array(keep)).cast(message_type())
                    messages_col = append_message(prompt_col, "assistant", chosen_text)
                else:
                    prompt_col = _messages([("user", prompt_text)], m)
                    messages_col = _messages([("user", prompt_text), ("assistant", chosen_text)], m)
                out = pa.table(
                    [
                        prompt_col,
                        _messages([("assistant", chosen_text)], m),
                        _messages([("assistant", rejected_text)], m),
                        messages_col,
                        prompt_ids.take(pa.array(gidx)),
                        names.take(pa.array(c_code)),
                        names.take(pa.array(r_code)),
                        pa.array(kinship, type=pa.float64(), from_pandas=True),
                        pa.array(s_pref[c_code], type=pa.float64(), from_pandas=True),
                        pa.array(s_pref[r_code], type=pa.float64(), from_pandas=True),
                        pa.array(rows.rating[c_flat], type=pa.float64(), from_pandas=True),
                        pa.array(rows.rating[r_flat], type=pa.float64(), from_pandas=True),
                        (
                            texts.label.take(pa.array(keep)).cast(pa.string())
                            if texts.label is not None
                            else pa.nulls(m, type=pa.string())
                        ),
                    ],
                    schema=schema,
                )
                test_mask = is_test[gidx]
                writers[(mode, "test")].add(out.filter(pa.array(test_mask)))
                train = out.filter(pa.array(~test_mask))
                writers[(mode, "train")].add(train)
            start += n
            if bar is not None:
                bar.update(task, advance=n)
    finally:
        if bar is not None:
            bar.stop()
    sizes: dict[str, dict[str, dict[str, int]]] = {}
    for (mode, split), writer in writers.items():
        sizes.setdefault(mode, {})[split] = writer.close()
    for mode in decisions:
        train = out_dir / mode / shard_name("train")
        if train.exists():
            shutil.copyfile(train, out_dir / mode / shard_name("train_sft"))
        sizes[mode]["train_sft"] = dict(sizes[mode]["train"])
        sizes[mode] = {split: sizes[mode][split] for split in SPLITS}
    return sizes
