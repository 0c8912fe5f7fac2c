"""The builder's two passes over a source, one Arrow batch at a time (a few bytes of state per row).

1. The first pass must end before anything is written: which prompts are held out decides every
   split's first row. Two ways:

   - :func:`quick_scan` (sources with a ``quick_scan``, when nothing needs every row parsed
     first: see :func:`can_quick_scan`): per row only the test-split key of its would-be prompt id
     (16 bytes) and a check that every completion names a known model; then
     :func:`resolve_test_split` parses just the rows of the smallest keys to find the held-out
     prompts among well-formed rows. A completion of an unknown model falls back to the full scan.
   - :func:`scan` parses every batch (the source's ``parse_batch``) and keeps, per row, the
     test-split key and whether the row has a prompt id; malformed rows, unknown and excluded
     models and empty completions are counted (:class:`~karma_hf.pairs.report.BuildStats`), so
     ``--strict`` and unknown models fail before anything is written.

2. :func:`decide_and_write` parses each batch (counting what a quick first pass did not), decides
   the pair of each of its rows for every mode (:mod:`karma_hf.pairs.decide`: one kinship
   selection per distinct candidate set of the whole source, cached across batches), turns the
   decisions into each config's rows and hands them to the
   :class:`~karma_hf.pairs.writer.OutputWriter`, whose threads encode the parquet files while the
   next batch is parsed. Per row only the status of each mode is kept.

The full scan keeps the parsed batches (:class:`~karma_hf.pairs.decide.Rows` and prompt ids,
~210 bytes per row) when all of them fit in :data:`PARSED_BUDGET` (64 MiB); otherwise pass 2
parses every batch again. Keeping the whole parsed source would make memory grow with it.
Both first passes give the same held-out rows, so the same bytes (``tests/test_binarize.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from karma_hf.layout import DEFAULT_RLAIF_RECIPE

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from karma_hf.kinship import Kinship
    from karma_hf.pairs.config import BuildConfig
    from karma_hf.pairs.decide import Decision, Rows
    from karma_hf.pairs.report import BuildStats
    from karma_hf.pairs.writer import Items, OutputWriter
    from karma_hf.sources.registry import SourceSchema


#: Bytes of parsed batches the scan may keep for pass 2 (~210 bytes per UltraFeedback row: sources
#: up to ~300k rows are parsed once); a larger source is parsed again batch by batch, so its
#: anonymous memory does not grow with its size.
PARSED_BUDGET = 64 * 2**20


@dataclass
class Context:
    """What every batch is parsed and decided with."""

    source: SourceSchema
    config: BuildConfig
    kin: Kinship
    known_unscored: tuple[str, ...]
    load_errors: bool = False  # the loader added LOAD_ERROR_COLUMN
    #: the ``h4`` recipe's TruthfulQA questions (normalised, distinct), or None without a file
    questions: Any = None
    caches: dict[str, dict] = field(default_factory=dict)
    rank_of: np.ndarray | None = None
    #: batches parsed by the scan and kept for pass 2 (``(rows, prompt ids)`` by first row) when the
    #: whole parsed source fits in :data:`PARSED_BUDGET` bytes; otherwise pass 2 parses every batch again
    parsed: dict[int, tuple[Rows, pa.Array]] = field(default_factory=dict)
    keep_parsed: bool | None = None
    #: pass 1 was :func:`quick_scan`: pass 2 parses every batch and counts what the scan would have
    quick: bool = False

    @property
    def h4(self) -> bool:
        return "rlaif" in self.config.modes and self.config.rlaif_recipe == "h4"

    def cache(self, name: str) -> dict:
        return self.caches.setdefault(name, {})


def batches(table: pa.Table, size: int) -> Iterator[tuple[int, pa.RecordBatch]]:
    """``(first source row, record batch)`` of at most ``size`` rows each (zero-copy views)."""
    start = 0
    for batch in table.to_batches(max_chunksize=size):
        if batch.num_rows:
            yield start, batch
            start += batch.num_rows


def parse(ctx: Context, batch: pa.RecordBatch) -> pa.Table:
    """The source's ``parse_batch``; rows the loader could not read are malformed with its reason."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from karma_hf.sources.loading import LOAD_ERROR_COLUMN

    parsed = ctx.source.parse_batch(batch, ctx.config.rating).combine_chunks()
    if not ctx.load_errors:
        return parsed
    reasons = batch.column(LOAD_ERROR_COLUMN)
    unread = reasons.is_valid()
    for name, value in (("malformed", reasons), ("prompt_id", pa.nulls(len(reasons), pa.string()))):
        column = parsed.column(name).combine_chunks()
        parsed = parsed.set_column(parsed.schema.get_field_index(name), name, pc.if_else(unread, value, column))
    return parsed


def parsed_rows(ctx: Context, parsed: pa.Table, start: int) -> Rows:
    from karma_hf.pairs.decide import Rows

    return Rows.from_parsed(parsed, ctx.kin, ctx.known_unscored, ctx.config.excluded_models, start=start)


def malformed_reasons(parsed: pa.Table, start: int) -> list[tuple[int, str]]:
    """``(source row, reason)`` of the malformed rows of a parsed batch."""
    column = parsed.column("malformed").combine_chunks()
    rows = np.flatnonzero(np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool))
    return [(start + int(i), str(column[int(i)].as_py())) for i in rows]


# ------------------------------------------------------------------------------ pass 1
#: Prompts beyond ``--test-size`` whose rows :func:`resolve_test_split` parses at first (malformed
#: rows among the smallest keys need a few more; the search doubles while they are not enough).
QUICK_MARGIN = 64


def can_quick_scan(ctx: Context) -> bool:
    """Whether pass 1 may skip the full parse (:func:`quick_scan`): the source has a
    ``quick_scan``, ``--test-size`` is a count (a fraction needs the number of well-formed
    prompts), and no error needs every row parsed before writing (``--strict``, rows the loader
    could not read)."""
    config = ctx.config
    return (
        ctx.source.quick_scan is not None
        and not config.strict
        and not ctx.load_errors
        and not isinstance(config.test_size, float)
    )


def quick_scan(ctx: Context, table: pa.Table, progress: Any = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Pass 1 without parsing: every row's test-split key from its would-be prompt id (the
    source's ``quick_scan``) and whether it has one. None as soon as a completion names a model
    that is neither scored, known-unscored nor excluded, or a name is not UTF-8 text: that build
    needs the full :func:`scan` (an error before writing, or counts of skipped completions).
    :func:`resolve_test_split` then parses only the rows of the smallest keys."""
    import pyarrow.compute as pc

    from karma_hf.pairs.decide import test_keys
    from karma_hf.sources.registry import invalid_utf8

    assert ctx.source.quick_scan is not None
    known = {*ctx.kin.models, *ctx.known_unscored, *ctx.config.excluded_models}
    keys = np.zeros((table.num_rows, 2), dtype=np.uint64)
    maybe = np.zeros(table.num_rows, dtype=bool)
    for start, batch in batches(table, ctx.config.batch_size):
        ids, models = ctx.source.quick_scan(batch)
        names = pc.unique(models).drop_null()
        if invalid_utf8(names).any() or not known.issuperset(names.to_pylist()):
            return None
        n = batch.num_rows
        keys[start : start + n], maybe[start : start + n] = test_keys(ids, ctx.config.seed)
        if progress is not None:
            progress(n)
    ctx.quick = True
    return keys, maybe


def resolve_test_split(ctx: Context, table: pa.Table, keys: np.ndarray, maybe: np.ndarray, count: int) -> np.ndarray:
    """After :func:`quick_scan`: the rows of the ``count`` held-out prompts, exactly as
    :func:`~karma_hf.pairs.decide.test_split` finds them after a full scan (the ``count`` distinct
    prompts of well-formed rows with the smallest keys). Only the rows of the smallest keys are
    parsed, a few more than ``count`` prompts' worth, more while malformed ones leave too few."""
    from karma_hf.pairs.decide import count_prompts, test_split

    n = len(maybe)
    rows, rank, distinct = count_prompts(keys, maybe)  # every row with a would-be prompt id
    if count == 0:
        return np.zeros(n, dtype=bool)
    want = count + 1 + max(QUICK_MARGIN, count // 16)
    while True:
        cand = rank < want
        cand_rows, cand_rank = rows[cand], rank[cand]
        valid = _well_formed(ctx, table, cand_rows)
        valid_ranks, dense = np.unique(cand_rank[valid], return_inverse=True)
        if valid_ranks.size > count or want >= distinct:
            break
        want *= 2
    # more than count well-formed prompts found, or all of them (then their number is exact)
    return test_split(cand_rows[valid], dense.reshape(-1), int(valid_ranks.size), n, count)


def _well_formed(ctx: Context, table: pa.Table, rows: np.ndarray) -> np.ndarray:
    """Whether each of the source ``rows`` parses (has a prompt id). The rows are gathered from
    their record batches (``Table.take`` across the chunks of a memory-mapped table would copy it
    whole) and parsed together, a batch's worth at a time."""
    import pyarrow as pa

    chunks = [b for b in table.to_batches() if b.num_rows]
    starts = np.cumsum([0] + [b.num_rows for b in chunks])
    order = np.argsort(rows, kind="stable")
    out = np.zeros(rows.size, dtype=bool)
    size = ctx.config.batch_size
    for lo in range(0, rows.size, size):
        part = order[lo : lo + size]
        wanted = rows[part]  # ascending
        chunk = np.searchsorted(starts, wanted, side="right") - 1
        pieces = [chunks[c].take(pa.array(wanted[chunk == c] - starts[c])) for c in np.unique(chunk).tolist()]
        gathered = pa.Table.from_batches(pieces).combine_chunks()
        parsed = ctx.source.parse_batch(gathered, ctx.config.rating)
        out[part] = np.asarray(parsed.column("prompt_id").is_valid().to_numpy(zero_copy_only=False))
    return out


def scan(ctx: Context, table: pa.Table, stats: BuildStats, progress: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Pass 1: every row's test-split key and whether it has a prompt id
    (:func:`~karma_hf.pairs.decide.test_keys`); the counts go to ``stats``. Batches are parsed by
    ``num_proc`` threads (default: up to 2; Arrow kernels and hashing release the GIL), in order."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from karma_hf.pairs.decide import test_keys

    def one(item: tuple[int, pa.RecordBatch]) -> tuple[int, int, Any, Rows, pa.Array, list[tuple[int, str]]]:
        start, batch = item
        parsed = parse(ctx, batch)
        ids = parsed.column("prompt_id").combine_chunks()
        keys = test_keys(ids, ctx.config.seed)
        return start, batch.num_rows, keys, parsed_rows(ctx, parsed, start), ids, malformed_reasons(parsed, start)

    keys = np.zeros((table.num_rows, 2), dtype=np.uint64)
    valid = np.zeros(table.num_rows, dtype=bool)
    workers = ctx.config.num_proc or min(2, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="karma-scan") as pool:
        pending: list[Any] = []
        todo = batches(table, ctx.config.batch_size)
        for item in todo:
            pending.append(pool.submit(one, item))
            if len(pending) < 2 * workers:
                continue
            _add_scan(ctx, pending.pop(0).result(), keys, valid, stats, progress)
        for future in pending:
            _add_scan(ctx, future.result(), keys, valid, stats, progress)
    return keys, valid


def _add_scan(
    ctx: Context, result: tuple, keys: np.ndarray, valid: np.ndarray, stats: BuildStats, progress: Any
) -> None:
    start, n, (batch_keys, batch_valid), rows, ids, reasons = result
    keys[start : start + n], valid[start : start + n] = batch_keys, batch_valid
    stats.add_scan(rows, reasons)
    if ctx.keep_parsed is None:  # decided on the first batch: would the whole parsed source fit?
        ctx.keep_parsed = (rows.nbytes + ids.nbytes) / max(n, 1) * len(valid) <= PARSED_BUDGET
    if ctx.keep_parsed:
        ctx.parsed[start] = (rows, ids)
    if progress is not None:
        progress(n)


# ------------------------------------------------------------------------------ pass 2
def decide_batch(ctx: Context, batch: pa.RecordBatch, rows: Rows) -> dict[str, Decision]:
    """Every mode's decision for the rows of one batch."""
    from karma_hf.pairs.decide import decide

    config = ctx.config
    if ctx.h4:
        from karma_hf.pairs.exclusions import batch_exclusions
        from karma_hf.sources.registry import completion_ratings

        if config.rating == "overall_score":
            rows.overall = rows.rating
        else:  # the overall_score alone, not a second parse of the batch
            rows.overall = completion_ratings(ctx.source, batch, "overall_score")
        rows.row_exclusion = batch_exclusions(batch, ctx.source, ctx.questions)
    return {
        mode: decide(
            rows,
            mode,
            ctx.kin,
            config.seed,
            rlaif_recipe=config.rlaif_recipe or DEFAULT_RLAIF_RECIPE,
            cache=ctx.cache(f"decide:{mode}"),
        )
        for mode in config.modes
    }


def config_items(ctx: Context, rows: Rows, decisions: dict[str, Decision]) -> dict[str, Items]:
    """The rows of every config (:meth:`BuildConfig.configs`) in one batch: the mode's decisions
    in each form (rows numbered in the batch)."""
    from karma_hf.errors import KarmaError
    from karma_hf.pairs.decide import model_ranks
    from karma_hf.pairs.writer import Items, best_items, unpaired_items

    out: dict[str, Items] = {}
    for name, mode, form in ctx.config.configs():
        dec = decisions[mode]
        best = best_items(dec.status, dec.chosen_pos, dec.rejected_pos)
        if form == "best":
            out[name] = best
        elif form == "unpaired":
            out[name] = unpaired_items(best)
        elif form == "all":
            pairs = rows.kin_pairs(ctx.kin, mode, ctx.config.max_pairs_per_prompt, cache=ctx.cache(f"all:{mode}"))
            out[name] = Items("all", pairs.row, pairs.chosen_pos, pairs.rejected_pos, rank=pairs.pair_rank)
        elif form == "ranked":
            if ctx.rank_of is None:
                ctx.rank_of = model_ranks(ctx.kin)
            offsets, positions = rows.ranked_items(ctx.kin, best.row, ctx.rank_of)
            out[name] = Items("ranked", best.row, best.pos, best.other, lists=offsets, list_pos=positions)
        else:  # pragma: no cover - BuildConfig checks the forms
            raise KarmaError(f"unknown form {form!r}")
    return out


def decide_and_write(
    ctx: Context,
    table: pa.Table,
    is_test: np.ndarray,
    writer: OutputWriter,
    stats: BuildStats,
    progress: Any = None,
) -> None:
    """Pass 2: decide every batch's rows, count them in ``stats`` and queue each config's rows."""
    import pyarrow as pa

    from karma_hf.pairs.writer import Batch

    kin = ctx.kin
    vocab: tuple[str, ...] | None = None
    names: pa.Array | None = None
    s_pref = np.zeros(0)
    for start, batch in batches(table, ctx.config.batch_size):
        n = batch.num_rows
        kept = ctx.parsed.pop(start, None)
        if kept is not None:
            rows, prompt_ids = kept
        else:
            parsed = parse(ctx, batch)
            rows, prompt_ids = parsed_rows(ctx, parsed, start), parsed.column("prompt_id").combine_chunks()
            if ctx.quick:  # pass 1 counted nothing
                stats.add_scan(rows, malformed_reasons(parsed, start))
        decisions = decide_batch(ctx, batch, rows)
        stats.add_decisions(rows, decisions)
        items = config_items(ctx, rows, decisions)
        batch_test = is_test[start : start + n]
        stats.add_items(items, batch_test)
        if vocab is None:
            vocab = rows.vocab
            k = rows.n_scored_models
            names = pa.array(list(vocab), type=pa.string())
            s_pref = np.concatenate([kin.s_pref, np.full(len(vocab) - k, np.nan)])
        assert names is not None
        texts = ctx.source.texts(batch)
        writer.add(Batch(texts, rows, kin, prompt_ids, names, s_pref), items, batch_test)
        if progress is not None:
            progress(n)
