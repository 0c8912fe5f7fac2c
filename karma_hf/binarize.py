"""Build kinship-mapped preference datasets (KARMA stages 2–3) and the RLAIF baseline.

:func:`build` turns an UltraFeedback-format response dataset into one ``DatasetDict`` per mode:

- ``score`` / ``sim`` / ``score_sim``: per instruction, the *candidates* are the completions whose
  ``model`` is in the score table and whose response is not empty; :meth:`Kinship.select
  <karma_hf.kinship.Kinship.select>` picks the kin pair for the mode; ``chosen`` is the model
  with the higher S_pref (Eq. 3). No per-instance annotation is used for the label.
- ``rlaif`` (the paper's baseline): candidates are the completions of *known* models (scored or
  ``table.known_unscored``) with a non-empty response and a per-instance rating
  (:mod:`karma_hf.ultrafeedback`). ``chosen`` = the best rating (several best: a seeded random
  one of them); ``rejected`` = a seeded random pick among the *strictly* lower-rated ones; a row
  where every candidate has the same rating is dropped as ``tie``. The random draws are a hash
  of ``(seed, row index, model)``, so they do not depend on batch size, ``num_proc`` or the
  order of completions inside a row.

Every input row ends up kept or dropped with exactly one reason, tested in this order:

1. ``malformed``: the row breaks the schema (see :mod:`karma_hf.ultrafeedback`);
2. ``fewer_than_two_scored``: the source row has fewer than two completions;
3. ``unknown_model``: (``ignore_unknown_models`` only) skipping completions of unknown models
   left fewer than two;
4. ``fewer_than_two_scored``: fewer than two completions of *scored* models (``rlaif``: of known
   models with a rating);
5. ``empty_response``: those were two or more, but fewer than two have a non-empty response;
6. ``no_kin_above_tau`` / ``tie``: from the pair selection (``rlaif``: ``tie`` only).

Outputs: splits ``train``, ``test`` and ``train_sft`` share one schema (``datasets`` needs one
schema per config): ``prompt``, ``chosen``, ``rejected``, ``messages`` (= prompt + chosen),
``prompt_id``, ``chosen_model``, ``rejected_model``, ``kinship``, ``s_pref_chosen``,
``s_pref_rejected``, ``score_chosen``, ``score_rejected``, ``source``. ``train_sft`` holds the
same rows as ``train`` (SFT reads ``messages``). A split with no rows is not written (``datasets``
cannot load an empty split) and the card does not declare it. The test split is a seeded hash-ranking of the
distinct ``prompt_id`` values of the source: the ``test_size`` first prompts are held out in
every mode, so duplicate instructions always land on the same side and no test prompt is
trained on by any mode.

Speed: the source is parsed in Arrow batches (``datasets.map``, optional ``num_proc``) into a
few small columns; pairs are decided with numpy over all rows at once, with one
``Kinship.select`` call per distinct candidate set; output text is gathered with Arrow
``take`` and streamed to parquet, so memory does not grow with the dataset.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from karma_hf import __version__
from karma_hf.errors import KarmaError
from karma_hf.ultrafeedback import DEFAULT_REVISION, DEFAULT_SOURCE, RATING_METHODS

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import pyarrow as pa

    from karma_hf.kinship import Kinship
    from karma_hf.scores import ScoreTable

KARMA_MODES: tuple[str, ...] = ("score", "sim", "score_sim")
ALL_MODES: tuple[str, ...] = (*KARMA_MODES, "rlaif")
SPLITS: tuple[str, ...] = ("train", "test", "train_sft")
DROP_REASONS: tuple[str, ...] = ("fewer_than_two_scored", "empty_response", "no_kin_above_tau", "tie",
                                 "unknown_model", "malformed")
DROP_REASON_HELP: dict[str, str] = {
    "malformed": "the row breaks the UltraFeedback schema (missing instruction/model, bad rating...)",
    "fewer_than_two_scored": "fewer than two completions of scored models (rlaif: of known models with a rating)",
    "unknown_model": "fewer than two completions left after skipping unknown models",
    "empty_response": "two or more candidates, but fewer than two non-empty responses",
    "no_kin_above_tau": "no candidate pair has kinship >= tau",
    "tie": "the pair has equal S_pref (rlaif: all candidates have the same rating)",
}
MODE_HELP: dict[str, str] = {
    "score": "K_score: the two best models by S_pref that are kin (cosine >= tau)",
    "sim": "K_sim: the kin pair with the highest cosine kinship",
    "score_sim": "K_(score,sim): the best model by S_pref with a kin partner, and its most similar kin partner",
    "rlaif": "baseline: best per-instance AI rating vs a seeded random strictly lower-rated completion",
}
ROW_GROUP_SIZE = 1000
_KEPT = 0
_STATUS = {reason: i + 1 for i, reason in enumerate(DROP_REASONS)}


def shard_name(split: str) -> str:
    return f"{split}-00000-of-00001.parquet"


def output_schema() -> pa.Schema:
    """The columns of every split of every mode."""
    import pyarrow as pa

    message = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    return pa.schema([
        ("prompt", message), ("chosen", message), ("rejected", message), ("messages", message),
        ("prompt_id", pa.string()), ("chosen_model", pa.string()), ("rejected_model", pa.string()),
        ("kinship", pa.float64()), ("s_pref_chosen", pa.float64()), ("s_pref_rejected", pa.float64()),
        ("score_chosen", pa.float64()), ("score_rejected", pa.float64()), ("source", pa.string()),
    ])


# ------------------------------------------------------------------------------ result
@dataclass
class BuildResult:
    """What :func:`build` made: the report, the kinship, and (lazily loaded) the datasets."""

    report: dict[str, Any]
    kinship: Kinship
    table: ScoreTable
    output: Path
    cache_dir: str | None = None
    statuses: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _datasets: dict[str, datasets.DatasetDict] | None = field(default=None, repr=False)
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(self.report["modes"])

    def row_reasons(self, mode: str) -> list[str]:
        """Per source row: ``"kept"`` or the drop reason, in source order."""
        names = ("kept", *DROP_REASONS)
        return [names[int(code)] for code in self.statuses[mode]]

    def files(self, mode: str) -> dict[str, Path]:
        """The parquet file of each split of ``mode`` (empty splits are not written)."""
        paths = {split: self.output / mode / shard_name(split) for split in SPLITS}
        return {split: path for split, path in paths.items() if path.exists()}

    @property
    def datasets(self) -> dict[str, datasets.DatasetDict]:
        """``{mode: DatasetDict(train, test, train_sft)}`` read from the written parquet files."""
        if self._datasets is None:
            import datasets as hf_datasets

            self._datasets = {
                mode: hf_datasets.load_dataset(
                    "parquet", data_files={s: str(p) for s, p in self.files(mode).items()},
                    cache_dir=self.cache_dir)
                for mode in self.modes if self.files(mode)
            }
        return self._datasets


# ------------------------------------------------------------------------------ build
def build(source: str | Path | datasets.Dataset = DEFAULT_SOURCE, *,
          scores: str | Path | Sequence[str | Path] | ScoreTable = "ultrafeedback-paper",
          modes: Iterable[str] = ALL_MODES, tau: float = 0.1, seed: int = 42,
          test_size: int | float = 2000, revision: str | None = None,
          output: str | Path | None = None, split: str = "train", rating: str = "aspects",
          ignore_unknown_models: bool = False, strict: bool = False, num_proc: int | None = None,
          batch_size: int = 1000, cache_dir: str | Path | None = None, overwrite: bool = False,
          progress: bool = False, command: str | None = None, repo_id: str | None = None) -> BuildResult:
    """Binarize ``source`` into one preference ``DatasetDict`` per mode and write it.

    ``source``: a Hub id, a local path (parquet/jsonl/arrow/save_to_disk) or a ``Dataset``.
    ``scores``: a preset name, CSV, lm-eval results path(s) or a ``ScoreTable``.
    ``test_size``: number of distinct prompts held out (or a fraction in (0, 1)).
    ``output``: folder for ``<mode>/<split>-00000-of-00001.parquet``, ``README.md`` (the card)
    and ``build_report.json``; without it a temporary folder lives as long as the result.
    ``ignore_unknown_models``: skip (and count) completions of models that are neither scored
    nor known-unscored instead of failing. ``strict``: fail on the first malformed row.
    ``command`` (the build command) and ``repo_id`` (where it will be published) go into the card.
    """
    import datasets as hf_datasets

    from karma_hf.kinship import Kinship
    from karma_hf.scores import ScoreTable, load_scores
    from karma_hf.ultrafeedback import load_source, parse_batch, parsed_schema

    modes = _check_modes(modes)
    if rating not in RATING_METHODS:
        raise KarmaError(f"--rating must be one of {', '.join(RATING_METHODS)}, got {rating!r}")
    if batch_size < 1:
        raise KarmaError(f"batch_size must be >= 1, got {batch_size}")
    table = scores if isinstance(scores, ScoreTable) else load_scores(scores)
    kin = Kinship.from_table(table, tau=tau)
    if output is not None and Path(output).is_dir() and any(Path(output).iterdir()) and not overwrite:
        raise KarmaError(f"--output {output} is not empty; pass --overwrite to replace a previous build")

    if isinstance(source, hf_datasets.Dataset):
        ds, source_id = source, "<in-memory Dataset>"
        if ds._indices is not None:  # noqa: SLF001
            ds = ds.flatten_indices()
    else:
        ds = load_source(source, revision=revision, split=split, cache_dir=cache_dir)
        source_id = str(source)
        if revision is None and source_id == DEFAULT_SOURCE:
            revision = DEFAULT_REVISION
    from karma_hf.ultrafeedback import check_schema

    check_schema(ds.features.arrow_schema, rating)

    was_disabled = hf_datasets.are_progress_bars_disabled()
    if not progress:
        hf_datasets.disable_progress_bars()
    try:
        parsed = ds.with_format("arrow").map(
            parse_batch, batched=True, batch_size=batch_size, num_proc=num_proc,
            remove_columns=ds.column_names, fn_kwargs={"rating": rating}, keep_in_memory=True,
            features=hf_datasets.Features.from_arrow_schema(parsed_schema()),
            desc="Parsing completions")
    finally:
        if not progress and not was_disabled:
            hf_datasets.enable_progress_bars()
    parsed_table = parsed.data.table.combine_chunks()

    rows = _Rows.from_parsed(parsed_table, kin, tuple(table.known_unscored))
    malformed_rows = np.flatnonzero(rows.malformed)
    if strict and malformed_rows.size:
        i = int(malformed_rows[0])
        raise KarmaError(f"row {i} of {source_id} is malformed: {rows.malformed_reason(parsed_table, i)} "
                         f"({malformed_rows.size} malformed row(s) in all; drop --strict to skip and count them)")
    unknown = rows.unknown_counts()
    if unknown and not ignore_unknown_models:
        listed = ", ".join(f"{name!r} ({n} completions)" for name, n in unknown.items())
        known = ", ".join(rows.vocab)
        raise KarmaError(f"model(s) in {source_id} not in the score table: {listed}; known: {known}; "
                         "add them to --scores (or --aliases) or pass --ignore-unknown-models to skip them")

    is_test = _test_split(parsed_table.column("prompt_id"), test_size, seed)
    decisions = {mode: (rows.decide_rlaif(seed) if mode == "rlaif" else rows.decide_karma(kin, mode))
                 for mode in modes}

    out_dir, tmp = _prepare_output(output, overwrite)
    report = _report(source_id=_public_name(source_id), revision=revision, split=split, rows=rows,
                     parsed=parsed_table, decisions=decisions, is_test=is_test, kin=kin, table=table,
                     tau=tau, seed=seed, test_size=test_size, rating=rating,
                     ignore_unknown_models=ignore_unknown_models, unknown=unknown, command=command)
    sizes = _write_outputs(ds, out_dir, decisions, rows, parsed_table.column("prompt_id").combine_chunks(),
                           is_test, kin, batch_size, progress)
    for mode, per_split in sizes.items():
        report["modes"][mode]["bytes"] = per_split
    (out_dir / "build_report.json").write_text(json.dumps(report, indent=2, sort_keys=False) + "\n",
                                               encoding="utf-8")
    from karma_hf.cards import write_dataset_card

    write_dataset_card(out_dir, report, table=table, repo_id=repo_id)
    return BuildResult(report=report, kinship=kin, table=table, output=out_dir,
                       cache_dir=str(cache_dir) if cache_dir else None,
                       statuses={mode: dec.status for mode, dec in decisions.items()}, _tmp=tmp)


def _check_modes(modes: Iterable[str]) -> tuple[str, ...]:
    if isinstance(modes, str):
        modes = [m.strip() for m in modes.split(",") if m.strip()]
    chosen = tuple(dict.fromkeys(modes))
    if not chosen:
        raise KarmaError(f"no --modes given; choose from {', '.join(ALL_MODES)}")
    bad = [m for m in chosen if m not in ALL_MODES]
    if bad:
        raise KarmaError(f"unknown mode(s) {', '.join(map(repr, bad))}; choose from {', '.join(ALL_MODES)}")
    return tuple(m for m in ALL_MODES if m in chosen)  # canonical order


def _prepare_output(output: str | Path | None, overwrite: bool
                    ) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    if output is None:
        tmp = tempfile.TemporaryDirectory(prefix="karma-build-")
        return Path(tmp.name), tmp
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise KarmaError(f"--output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise KarmaError(f"--output {out} is not empty; pass --overwrite to replace a previous build")
        if not (out / "build_report.json").exists():
            raise KarmaError(f"--output {out} is not empty and holds no build_report.json; refusing to overwrite it")
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out, None


# ------------------------------------------------------------------------------ decisions
@dataclass
class _Decision:
    """Per source row: status (0 kept, else 1 + index in DROP_REASONS) and the pair."""

    status: np.ndarray       # int8 (n,)
    chosen_pos: np.ndarray   # int64 (n,): position in the row's completions, -1 if dropped
    rejected_pos: np.ndarray


@dataclass
class _Rows:
    """The parsed rows flattened to numpy: one entry per completion, ``parent`` = row index."""

    n: int
    offsets: np.ndarray      # int64 (n + 1,)
    parent: np.ndarray       # int64 (n_completions,)
    code: np.ndarray         # int64: model index in kin.models, then known_unscored; -1 unknown
    empty: np.ndarray        # bool
    rating: np.ndarray       # float64, NaN = not rated
    malformed: np.ndarray    # bool (n,)
    vocab: tuple[str, ...]   # kin.models + known_unscored
    n_scored_models: int
    unknown_names: np.ndarray  # object (n_completions,) name for code -1 else None

    @classmethod
    def from_parsed(cls, parsed: pa.Table, kin: Kinship, known_unscored: tuple[str, ...]) -> _Rows:
        import pyarrow.compute as pc

        models = parsed.column("models").combine_chunks()
        n = parsed.num_rows
        lengths = pc.list_value_length(models).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        parent = np.repeat(np.arange(n, dtype=np.int64), lengths)
        flat_models = pc.list_flatten(models)
        vocab = tuple(kin.models) + tuple(m for m in known_unscored if m not in kin.index)
        lookup = {m: i for i, m in enumerate(vocab)}
        encoded = pc.dictionary_encode(flat_models)
        names = encoded.dictionary.to_pylist()
        dict_codes = np.array([lookup.get(m, -1) for m in names] + [-1], dtype=np.int64)
        idx = encoded.indices.fill_null(len(names)).to_numpy(zero_copy_only=False)
        code = dict_codes[idx]
        unknown_names = np.array(names + [None], dtype=object)[idx]
        unknown_names[code >= 0] = None
        empty = np.asarray(pc.list_flatten(parsed.column("empty").combine_chunks())
                           .fill_null(True).to_numpy(zero_copy_only=False), dtype=bool)
        rating = (pc.list_flatten(parsed.column("rating").combine_chunks())
                  .to_numpy(zero_copy_only=False).astype(np.float64))
        malformed = np.asarray(parsed.column("malformed").is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        # completions of malformed rows never count anywhere
        return cls(n=n, offsets=offsets, parent=parent, code=code, empty=empty, rating=rating,
                   malformed=malformed, vocab=vocab, n_scored_models=len(kin.models),
                   unknown_names=unknown_names)

    # ------------------------------------------------------------------ helpers
    def malformed_reason(self, parsed: pa.Table, row: int) -> str:
        return str(parsed.column("malformed")[row].as_py())

    def unknown_counts(self) -> dict[str, int]:
        ok = ~self.malformed[self.parent] & (self.code == -1)
        names, counts = np.unique(self.unknown_names[ok & (self.unknown_names != None)].astype(str),  # noqa: E711
                                  return_counts=True)
        return {str(n): int(c) for n, c in sorted(zip(names, counts), key=lambda x: (-x[1], x[0]))}

    def _count(self, mask: np.ndarray) -> np.ndarray:
        return np.bincount(self.parent[mask], minlength=self.n)

    def _stages(self, scored: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        """Status before pair selection: 0 = needs selection, else a drop code."""
        n_all = np.diff(self.offsets)
        known = self.code >= 0
        status = np.zeros(self.n, dtype=np.int8)
        n_cand = self._count(candidate)
        status[n_cand < 2] = _STATUS["empty_response"]
        status[self._count(scored) < 2] = _STATUS["fewer_than_two_scored"]
        status[self._count(known) < 2] = _STATUS["unknown_model"]
        status[n_all < 2] = _STATUS["fewer_than_two_scored"]
        status[self.malformed] = _STATUS["malformed"]
        return status

    def position(self, flat_index: np.ndarray) -> np.ndarray:
        return flat_index - self.offsets[self.parent[flat_index]]

    # ------------------------------------------------------------------ KARMA modes
    def decide_karma(self, kin: Kinship, mode: str) -> _Decision:
        from karma_hf.kinship import Pair

        k = self.n_scored_models
        scored = (self.code >= 0) & (self.code < k)
        candidate = scored & ~self.empty
        status = self._stages(scored, candidate)
        chosen = np.full(self.n, -1, dtype=np.int64)
        rejected = np.full(self.n, -1, dtype=np.int64)
        todo = np.flatnonzero(status == 0)
        if todo.size:
            # flat index of each (row, scored model) candidate; one select() per distinct set
            where = np.full((self.n, k), -1, dtype=np.int64)
            flat = np.flatnonzero(candidate)
            where[self.parent[flat], self.code[flat]] = flat
            member = where[todo] >= 0
            if k <= 52:  # the candidate set as one exact integer key (sum of distinct powers of two)
                keys, first, inverse = np.unique(member @ (2.0 ** np.arange(k)), return_index=True,
                                                 return_inverse=True)
            else:
                keys, first, inverse = np.unique(np.packbits(member, axis=1), axis=0, return_index=True,
                                                 return_inverse=True)
            inverse = inverse.reshape(-1)
            outcome = np.zeros((len(keys), 3), dtype=np.int64)  # status, chosen code, rejected code
            for j, row in enumerate(first):
                result = kin.select(mode, [kin.models[c] for c in np.flatnonzero(member[row])])
                if isinstance(result, Pair):
                    outcome[j] = (_KEPT, kin.index[result.chosen], kin.index[result.rejected])
                else:
                    reason = "fewer_than_two_scored" if result.reason == "fewer_than_two" else result.reason
                    outcome[j] = (_STATUS[reason], -1, -1)
            per_row = outcome[inverse]
            status[todo] = per_row[:, 0]
            kept = per_row[:, 0] == _KEPT
            rows_kept = todo[kept]
            chosen[rows_kept] = self.position(where[rows_kept, per_row[kept, 1]])
            rejected[rows_kept] = self.position(where[rows_kept, per_row[kept, 2]])
        return _Decision(status, chosen, rejected)

    # ------------------------------------------------------------------ RLAIF baseline
    def decide_rlaif(self, seed: int) -> _Decision:
        known = self.code >= 0
        rated = known & ~np.isnan(self.rating)
        candidate = rated & ~self.empty
        status = self._stages(rated, candidate)
        chosen = np.full(self.n, -1, dtype=np.int64)
        rejected = np.full(self.n, -1, dtype=np.int64)
        eligible = candidate & (status[self.parent] == 0)
        flat = np.flatnonzero(eligible)
        if flat.size:
            rows = self.parent[flat]
            best = np.full(self.n, -np.inf)
            np.maximum.at(best, rows, self.rating[flat])
            draw = _hash_uniform(seed, rows, self.code[flat])
            top = self.rating[flat] == best[rows]
            for mask, target in ((top, chosen), (~top, rejected)):
                sub = flat[mask]
                order = np.lexsort((draw[mask], rows[mask]))
                first_rows, first = np.unique(rows[mask][order], return_index=True)
                target[first_rows] = self.position(sub[order][first])
            todo = np.unique(rows)
            tie = todo[rejected[todo] < 0]
            status[tie] = _STATUS["tie"]
            chosen[tie] = -1
        return _Decision(status, chosen, rejected)


def _hash_uniform(seed: int, rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """A splitmix64 hash of (seed, row, model code): deterministic per-row random keys."""
    with np.errstate(over="ignore"):
        z = (np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
             + rows.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
             + (codes.astype(np.int64) + 1).astype(np.uint64) * np.uint64(0x94D049BB133111EB))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def _test_split(prompt_ids: pa.ChunkedArray, test_size: int | float, seed: int) -> np.ndarray:
    """Boolean mask of rows whose prompt is held out (same prompts for every mode)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = prompt_ids.combine_chunks() if isinstance(prompt_ids, pa.ChunkedArray) else prompt_ids
    distinct = [p for p in pc.unique(ids.drop_null()).to_pylist()]
    total = len(distinct)
    if isinstance(test_size, float) and not float(test_size).is_integer():
        if not 0.0 < test_size < 1.0:
            raise KarmaError(f"--test-size must be a count of prompts or a fraction in (0, 1), got {test_size}")
        count = int(round(total * test_size))
    else:
        count = int(test_size)
        if count < 0:
            raise KarmaError(f"--test-size must be >= 0, got {test_size}")
    if count and count >= total:
        raise KarmaError(f"--test-size {test_size} holds out {count} prompts but the source has only "
                         f"{total} distinct well-formed prompts; use a smaller --test-size")
    salt = f"karma-test-split:{seed}:".encode()
    keys = [hashlib.sha256(salt + p.encode("ascii")).digest() for p in distinct]
    order = sorted(range(total), key=keys.__getitem__)[:count]
    held = pa.array([distinct[i] for i in order], type=pa.string())
    return np.asarray(pc.is_in(ids, value_set=held).fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


# ------------------------------------------------------------------------------ report
def _public_name(source_id: str) -> str:
    """What the card and report call a source: a Hub id or preset as is, a local path by its name only.

    Absolute local paths would leak the builder's file system into a published card and point
    nowhere on the Hub.
    """
    path = Path(source_id).expanduser()
    return path.name if (path.is_absolute() or path.exists()) and source_id not in ("", ".") else source_id


def _report(*, source_id: str, revision: str | None, split: str, rows: _Rows, parsed: pa.Table,
            decisions: dict[str, _Decision], is_test: np.ndarray, kin: Kinship, table: ScoreTable,
            tau: float, seed: int, test_size: int | float, rating: str,
            ignore_unknown_models: bool, unknown: dict[str, int], command: str | None) -> dict[str, Any]:
    malformed_rows = np.flatnonzero(rows.malformed)
    modes: dict[str, Any] = {}
    for mode, dec in decisions.items():
        kept = dec.status == _KEPT
        dropped = {reason: int((dec.status == _STATUS[reason]).sum()) for reason in DROP_REASONS}
        pair_counts: dict[tuple[str, str], int] = {}
        kept_rows = np.flatnonzero(kept)
        if kept_rows.size:
            c = rows.code[rows.offsets[kept_rows] + dec.chosen_pos[kept_rows]]
            r = rows.code[rows.offsets[kept_rows] + dec.rejected_pos[kept_rows]]
            pairs, counts = np.unique(np.stack([c, r], axis=1), axis=0, return_counts=True)
            pair_counts = {(rows.vocab[a], rows.vocab[b]): int(n) for (a, b), n in zip(pairs, counts)}
        top = sorted(pair_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
        modes[mode] = {
            "description": MODE_HELP[mode],
            "rows": int(rows.n),
            "kept": int(kept.sum()),
            "dropped": dropped,
            "splits": {"train": int((kept & ~is_test).sum()), "test": int((kept & is_test).sum()),
                       "train_sft": int((kept & ~is_test).sum())},
            "distinct_pairs": len(pair_counts),
            "top_pairs": [{"chosen": a, "rejected": b, "count": n} for (a, b), n in top],
        }
    return {
        "karma_hf_version": __version__,
        "source": {"id": source_id, "revision": revision, "split": split, "rows": int(rows.n)},
        "rating": rating,
        "tau": float(tau),
        "seed": int(seed),
        "test_size": test_size,
        "test_prompts": int(len(set(parsed.column("prompt_id").filter(is_test).to_pylist()))) if is_test.any() else 0,
        "ignore_unknown_models": bool(ignore_unknown_models),
        "skipped_completions": {"unknown_model": unknown if ignore_unknown_models else {}},
        "empty_completions": int((rows.empty & ~rows.malformed[rows.parent]).sum()),
        "malformed_examples": [{"row": int(i), "reason": rows.malformed_reason(parsed, int(i))}
                               for i in malformed_rows[:20]],
        "drop_reasons": DROP_REASON_HELP,
        "scores": {"source": ", ".join(_public_name(p) for p in table.source.split(", ")), "models": list(table.models), "benchmarks": list(table.benchmarks),
                   "known_unscored": list(table.known_unscored)},
        "kinship": kin.to_dict(),
        "modes": modes,
        "command": command,
    }


# ------------------------------------------------------------------------------ writing
class _SplitWriter:
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


def _write_outputs(ds: datasets.Dataset, out_dir: Path, decisions: dict[str, _Decision], rows: _Rows,
                   prompt_ids: pa.Array, is_test: np.ndarray, kin: Kinship, batch_size: int, progress: bool
                   ) -> dict[str, dict[str, dict[str, int]]]:
    import pyarrow as pa
    import pyarrow.compute as pc

    schema = output_schema()
    # train_sft holds exactly the train rows with the same schema: its file is a copy of train's
    writers = {(mode, split): _SplitWriter(out_dir / mode / shard_name(split), schema)
               for mode in decisions for split in ("train", "test")}
    vocab = rows.vocab
    k = rows.n_scored_models
    s_pref = np.concatenate([kin.s_pref, np.full(len(vocab) - k, np.nan)])
    table = ds.data.table
    columns = ["instruction", "completions"] + (["source"] if "source" in table.column_names else [])
    table = table.select(columns)
    has_source = "source" in columns and pa.types.is_string(table.schema.field("source").type)

    bar = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("Writing pairs"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                       transient=True)
        task = bar.add_task("write", total=rows.n)
        bar.start()
    try:
        start = 0
        for batch in table.to_batches(max_chunksize=batch_size):
            n = batch.num_rows
            sl = slice(start, start + n)
            comps = batch.column("completions")
            base = comps.offsets.to_numpy().astype(np.int64)[:-1]
            values = comps.values
            responses = pc.struct_field(values, "response")
            instr = batch.column("instruction")
            src = batch.column("source") if has_source else None
            for mode, dec in decisions.items():
                keep = np.flatnonzero(dec.status[sl] == _KEPT)
                if not keep.size:
                    continue
                gidx = keep + start
                c_flat = rows.offsets[gidx] + dec.chosen_pos[gidx]
                r_flat = rows.offsets[gidx] + dec.rejected_pos[gidx]
                c_code, r_code = rows.code[c_flat], rows.code[r_flat]
                both = (c_code < k) & (r_code < k)
                kinship = np.where(both, kin.cosine[np.minimum(c_code, k - 1), np.minimum(r_code, k - 1)], np.nan)
                prompt_text = instr.take(pa.array(keep)).cast(pa.string())
                chosen_text = responses.take(pa.array(base[keep] + dec.chosen_pos[gidx])).cast(pa.string())
                rejected_text = responses.take(pa.array(base[keep] + dec.rejected_pos[gidx])).cast(pa.string())
                m = keep.size
                names = pa.array(list(vocab), type=pa.string())
                out = pa.table([
                    _messages([("user", prompt_text)], m),
                    _messages([("assistant", chosen_text)], m),
                    _messages([("assistant", rejected_text)], m),
                    _messages([("user", prompt_text), ("assistant", chosen_text)], m),
                    prompt_ids.take(pa.array(gidx)),
                    names.take(pa.array(c_code)),
                    names.take(pa.array(r_code)),
                    pa.array(kinship, type=pa.float64(), from_pandas=True),
                    pa.array(s_pref[c_code], type=pa.float64(), from_pandas=True),
                    pa.array(s_pref[r_code], type=pa.float64(), from_pandas=True),
                    pa.array(rows.rating[c_flat], type=pa.float64(), from_pandas=True),
                    pa.array(rows.rating[r_flat], type=pa.float64(), from_pandas=True),
                    (src.take(pa.array(keep)).cast(pa.string()) if src is not None
                     else pa.nulls(m, type=pa.string())),
                ], schema=schema)
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


# ------------------------------------------------------------------------------ terminal summary
def summary_renderables(report: dict[str, Any], *, top: int = 3) -> list[Any]:
    """Rich tables for the terminal: rows kept/dropped by reason per mode, and the top pairs."""
    from rich.table import Table

    modes = report["modes"]
    counts = Table(title=f"karma build: {report['source']['rows']} source rows "
                         f"(tau {report['tau']}, seed {report['seed']}, rating {report['rating']})")
    counts.add_column("rows", style="bold")
    for mode in modes:
        counts.add_column(mode, justify="right")
    counts.add_row("[green]kept[/]", *[f"[green]{info['kept']}[/]" for info in modes.values()])
    for split in SPLITS[:2]:
        counts.add_row(f"  {split}", *[str(info["splits"][split]) for info in modes.values()])
    for reason in DROP_REASONS:
        values = [info["dropped"][reason] for info in modes.values()]
        counts.add_row(f"dropped: {reason}", *[str(v) if v else "[dim]0[/]" for v in values])
    pairs = Table(title=f"most frequent pairs (chosen > rejected), top {top}")
    pairs.add_column("mode", style="bold")
    pairs.add_column("pair")
    pairs.add_column("count", justify="right")
    pairs.add_column("share", justify="right")
    for mode, info in modes.items():
        for i, p in enumerate(info["top_pairs"][:top]):
            share = p["count"] / info["kept"] if info["kept"] else 0.0
            pairs.add_row(mode if i == 0 else "", f"{p['chosen']} > {p['rejected']}", str(p["count"]),
                          f"{share:.1%}")
        if not info["top_pairs"]:
            pairs.add_row(mode, "[dim](no pairs)[/]", "0", "")
    return [counts, pairs]
