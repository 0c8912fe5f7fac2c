"""Pair decisions for every row of a source, vectorised with numpy (the builder's core).

Every parsed row ends up kept or dropped with exactly one reason (:data:`karma_hf.layout.DROP_REASONS`);
when several apply, the first of these wins:

1. ``malformed``: the row breaks its source's schema;
2. ``excluded_source`` / ``truthfulqa_copy``: (``rlaif`` with the ``h4`` recipe only) the row is
   TruthfulQA: its source label is ``truthful_qa``, or its instruction is one of the
   ``--truthfulqa-questions``;
3. ``fewer_than_two_scored``: the source row has fewer than two completions;
4. ``unknown_model``: (``ignore_unknown_models`` only) skipping completions of unknown models
   left fewer than two;
5. ``fewer_than_two_scored``: fewer than two completions of *scored* models (``rlaif``: of known
   models with a rating);
6. ``empty_response``: those were two or more, but fewer than two have a non-empty response;
7. ``no_kin_above_tau`` / ``tie``: from the pair selection (``rlaif``: ``tie`` only, ``argilla``
   recipe only).

Completions of *excluded* models (``ultralm-65b`` by default: §3.1 of the paper leaves it out of
the final dataset) are never candidates in any mode; they count as known in step 4, so a row left
with fewer than two others is ``fewer_than_two_scored``.

KARMA modes (:data:`karma_hf.layout.karma_modes`): per row, the candidates are the completions
whose model is scored and whose response is not empty; one :meth:`Kinship.select
<karma_hf.kinship.Kinship.select>` call per distinct candidate set picks the pair, and the model
with the higher S_pref is ``chosen`` (Eq. 3). Baseline modes have a decision function of their
own in :data:`BASELINES`; ``rlaif`` has one per recipe (:data:`RLAIF_DECISIONS`,
:data:`karma_hf.layout.RLAIF_RECIPES`). In both recipes the candidates are the completions of
*known* models (scored or known-unscored, not excluded) with a non-empty response and a score:

- ``h4`` (``HuggingFaceH4/ultrafeedback_binarized``): the score is ``overall_score`` whatever the
  ``--rating`` (:attr:`Rows.overall`). ``chosen`` = the highest score, the first in completion
  order among equal ones (Python's ``max``, as H4); ``rejected`` = a seeded uniform random one of
  the *other* candidates, whatever its score: equal scores are kept (zero-margin pairs), so this
  recipe never drops a ``tie``. TruthfulQA rows are dropped first (step 2).
- ``argilla`` (``argilla/ultrafeedback-binarized-preferences``): the score is the per-instance
  ``--rating`` (:attr:`Rows.rating`, by default the mean aspect rating). ``chosen`` = the best
  rating (several best: a seeded random one of them); ``rejected`` = a seeded random pick among
  the *strictly* lower-rated ones; a row where every candidate has the same rating is ``tie``.

The random draws are a hash of ``(seed, row index, model)``, so they do not depend on batch size,
``num_proc`` or the order of completions inside a row.

The test split (:func:`test_split`) is a seeded hash-ranking of the distinct ``prompt_id``
values (:func:`test_keys`): the same prompts are held out in every mode. Decisions are made per
batch of source rows (:attr:`Rows.start` keeps the draws those of the source row), with one
selection per distinct candidate set of the whole source (the ``cache`` arguments).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from karma_hf.errors import KarmaError
from karma_hf.layout import DEFAULT_RLAIF_RECIPE, DROP_REASONS

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from karma_hf.kinship import Kinship

KEPT = 0
STATUS = {reason: i + 1 for i, reason in enumerate(DROP_REASONS)}


@dataclass
class Decision:
    """Per source row: status (0 kept, else 1 + index in DROP_REASONS) and the pair."""

    status: np.ndarray  # int8 (n,)
    chosen_pos: np.ndarray  # int64 (n,): position in the row's completions, -1 if dropped
    rejected_pos: np.ndarray


@dataclass
class PairItems:
    """Several pairs per row (``--form all``): one entry per pair, rows ascending."""

    row: np.ndarray  # int64: source row
    chosen_pos: np.ndarray  # int64: position in the row's completions
    rejected_pos: np.ndarray
    pair_rank: np.ndarray  # int32: 1 = first by the mode's criterion


@dataclass
class CandidateSets:
    """The rows ``todo`` grouped by their set of candidate models (see :meth:`Rows._candidate_sets`)."""

    todo: np.ndarray  # rows
    first: np.ndarray  # per set: index in todo of its first row
    set_keys: list  # per set: a hashable key of its members (the same set gets the same key in every batch)
    inverse: np.ndarray  # per todo row: its set
    keys: np.ndarray  # sorted row * k + code of every candidate
    flat: np.ndarray  # the completion (flat index) of each key
    k: int
    row_start: np.ndarray  # per todo row: where its candidates start in keys
    #: per set: its key as one exact number (a sum of distinct powers of two; pools of <= 52
    #: models), which orders and searches as a numpy array; None for larger pools
    numeric_keys: np.ndarray | None = None

    def members(self, j: int) -> np.ndarray:
        """The model codes of set ``j``, ascending."""
        i = self.first[j]
        return self.keys[self.row_start[i] : self.row_start[i + 1]] % self.k

    def lookup(self, rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Flat index of the candidate of model ``codes[i]`` in row ``rows[i]`` (which must exist)."""
        return self.flat[np.searchsorted(self.keys, rows * self.k + codes)]


@dataclass
class Rows:
    """The parsed rows flattened to numpy: one entry per completion, ``parent`` = row index."""

    n: int
    offsets: np.ndarray  # int64 (n + 1,)
    parent: np.ndarray  # int64 (n_completions,)
    code: np.ndarray  # int64: model index in kin.models, then known_unscored; -1 unknown
    empty: np.ndarray  # bool
    rating: np.ndarray  # float64, NaN = not rated
    malformed: np.ndarray  # bool (n,)
    vocab: tuple[str, ...]  # kin.models + known_unscored
    n_scored_models: int
    unknown_names: np.ndarray  # object (n_completions,) name for code -1 else None
    #: bool (n_completions,): completion of an excluded model (never a candidate, never "unknown")
    excluded: np.ndarray | None = None
    excluded_names: tuple[str, ...] = ()
    #: float64 (n_completions,): the ``h4`` recipe's score (``overall_score``), NaN = none
    overall: np.ndarray | None = None
    #: int8 (n,): 0, or the drop code of a TruthfulQA row (``excluded_source`` / ``truthfulqa_copy``)
    row_exclusion: np.ndarray | None = None
    #: source index of row 0 (a batch of a larger source: the seeded draws hash the source index)
    start: int = 0
    _karma_memo: tuple[np.ndarray, CandidateSets | None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.excluded is None:
            self.excluded = np.zeros(len(self.code), dtype=bool)
        if self.row_exclusion is None:
            self.row_exclusion = np.zeros(self.n, dtype=np.int8)

    @classmethod
    def from_parsed(
        cls,
        parsed: pa.Table,
        kin: Kinship,
        known_unscored: tuple[str, ...],
        excluded_models: tuple[str, ...] = (),
        start: int = 0,
    ) -> Rows:
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
        excluded = np.array([m in excluded_models for m in names] + [False], dtype=bool)[idx]
        empty = np.asarray(
            pc.list_flatten(parsed.column("empty").combine_chunks()).fill_null(True).to_numpy(zero_copy_only=False),
            dtype=bool,
        )
        rating = (
            pc.list_flatten(parsed.column("rating").combine_chunks()).to_numpy(zero_copy_only=False).astype(np.float64)
        )
        malformed = np.asarray(parsed.column("malformed").is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        # completions of malformed rows never count anywhere
        return cls(
            n=n,
            offsets=offsets,
            parent=parent,
            code=code,
            empty=empty,
            rating=rating,
            malformed=malformed,
            vocab=vocab,
            n_scored_models=len(kin.models),
            unknown_names=unknown_names,
            excluded=excluded,
            excluded_names=tuple(excluded_models),
            start=start,
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by the per-row and per-completion arrays."""
        arrays = (self.offsets, self.parent, self.code, self.empty, self.rating, self.malformed, self.unknown_names)
        extra = (self.excluded, self.row_exclusion)
        return sum(a.nbytes for a in arrays) + sum(a.nbytes for a in extra if a is not None)

    # ------------------------------------------------------------------ helpers
    def malformed_reason(self, parsed: pa.Table, row: int) -> str:
        return str(parsed.column("malformed")[row].as_py())

    def unknown_counts(self) -> dict[str, int]:
        ok = ~self.malformed[self.parent] & (self.code == -1) & ~self._excluded
        if not ok.any():
            return {}
        names, counts = np.unique(
            self.unknown_names[ok & (self.unknown_names != None)].astype(str),  # noqa: E711
            return_counts=True,
        )
        return {str(n): int(c) for n, c in sorted(zip(names, counts, strict=False), key=lambda x: (-x[1], x[0]))}

    def excluded_counts(self) -> dict[str, int]:
        """Completions of each excluded model in well-formed rows (zero counts included)."""
        ok = ~self.malformed[self.parent] & self._excluded
        counts = dict.fromkeys(self.excluded_names, 0)
        codes = self.code[ok]
        for name in self.excluded_names:
            if name in self.vocab:
                counts[name] = int((codes == self.vocab.index(name)).sum())
            else:
                counts[name] = int((self.unknown_names[ok] == name).sum())
        return counts

    @property
    def _excluded(self) -> np.ndarray:
        assert self.excluded is not None
        return self.excluded

    def _known(self) -> np.ndarray:
        """Known, non-excluded completions: the models a baseline may pair."""
        return (self.code >= 0) & ~self._excluded

    def _count(self, mask: np.ndarray) -> np.ndarray:
        return np.bincount(self.parent[mask], minlength=self.n)

    def _stages(self, scored: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        """Status before pair selection: 0 = needs selection, else a drop code."""
        n_all = np.diff(self.offsets)
        known = (self.code >= 0) | self._excluded  # an excluded model is not "unknown"
        status = np.zeros(self.n, dtype=np.int8)
        n_cand = self._count(candidate)
        status[n_cand < 2] = STATUS["empty_response"]
        status[self._count(scored) < 2] = STATUS["fewer_than_two_scored"]
        status[self._count(known) < 2] = STATUS["unknown_model"]
        status[n_all < 2] = STATUS["fewer_than_two_scored"]
        status[self.malformed] = STATUS["malformed"]
        return status

    def position(self, flat_index: np.ndarray) -> np.ndarray:
        return flat_index - self.offsets[self.parent[flat_index]]

    # ------------------------------------------------------------------ KARMA modes
    def _karma_candidates(self) -> tuple[np.ndarray, np.ndarray]:
        """Status before selection and the candidate mask (scored, not excluded, non-empty)."""
        k = self.n_scored_models
        scored = (self.code >= 0) & (self.code < k) & ~self._excluded
        candidate = scored & ~self.empty
        return self._stages(scored, candidate), candidate

    def _candidate_sets(self, candidate: np.ndarray, todo: np.ndarray) -> CandidateSets:
        """The distinct candidate sets of the rows ``todo`` (one selection per set, not per row)."""
        k = self.n_scored_models
        in_todo = np.zeros(self.n, dtype=bool)
        in_todo[todo] = True
        flat = np.flatnonzero(candidate & in_todo[self.parent])
        flat = flat[self.code[flat] < k]
        keys = self.parent[flat] * k + self.code[flat]  # ascending in the row; codes unordered within
        order = np.argsort(keys, kind="stable")
        sorted_keys, sorted_flat = keys[order], flat[order]
        # a model twice in a row: the later completion is the candidate (as a row -> model map keeps it)
        last = np.ones(sorted_keys.size, dtype=bool)
        last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
        sorted_keys, sorted_flat = sorted_keys[last], sorted_flat[last]
        rows, codes = np.divmod(sorted_keys, k)
        pos = np.full(self.n, -1, dtype=np.int64)
        pos[todo] = np.arange(todo.size)
        if k <= 52:  # the candidate set as one exact integer key (a sum of distinct powers of two)
            row_key = np.bincount(pos[rows], weights=np.ldexp(1.0, codes), minlength=todo.size)
            set_keys, first, inverse = np.unique(row_key, return_index=True, return_inverse=True)
            hashable: list = set_keys.tolist()
        else:
            member = np.zeros((todo.size, k), dtype=bool)
            member[pos[rows], codes] = True
            set_keys, first, inverse = np.unique(
                np.packbits(member, axis=1), axis=0, return_index=True, return_inverse=True
            )
            hashable = [row.tobytes() for row in set_keys]
        return CandidateSets(
            todo=todo,
            first=first,
            set_keys=hashable,
            inverse=inverse.reshape(-1),
            keys=sorted_keys,
            flat=sorted_flat,
            k=k,
            row_start=np.searchsorted(pos[rows], np.arange(todo.size + 1)),
            numeric_keys=set_keys if k <= 52 else None,
        )

    def _karma_sets(self) -> tuple[np.ndarray, CandidateSets | None]:
        """Status before selection (a copy) and the candidate sets of the rows that need a
        selection; computed once per batch, shared by every KARMA mode and form."""
        if self._karma_memo is None:
            status, candidate = self._karma_candidates()
            todo = np.flatnonzero(status == 0)
            self._karma_memo = (status, self._candidate_sets(candidate, todo) if todo.size else None)
        status, sets = self._karma_memo
        return status.copy(), sets

    def decide_karma(self, kin: Kinship, mode: str, cache: dict | None = None) -> Decision:
        """``cache``: outcomes by candidate set, kept across the batches of one build (one
        :meth:`Kinship.select` per distinct set of the whole source)."""
        cache = {} if cache is None else cache

        status, sets = self._karma_sets()
        chosen = np.full(self.n, -1, dtype=np.int64)
        rejected = np.full(self.n, -1, dtype=np.int64)
        if sets is not None:
            todo = sets.todo
            per_row = _set_outcomes(sets, kin, mode, cache)[sets.inverse]
            status[todo] = per_row[:, 0]
            kept = per_row[:, 0] == KEPT
            rows_kept = todo[kept]
            chosen[rows_kept] = self.position(sets.lookup(rows_kept, per_row[kept, 1]))
            rejected[rows_kept] = self.position(sets.lookup(rows_kept, per_row[kept, 2]))
        return Decision(status, chosen, rejected)

    def kin_pairs(self, kin: Kinship, mode: str, max_pairs: int | None = None, cache: dict | None = None) -> PairItems:
        """Every kin pair of every row (``--form all``), in the mode's order within a row, at most
        ``max_pairs`` per row; rows in source order. ``cache``: pairs by candidate set, kept across
        batches."""
        cache = {} if cache is None else cache
        _, sets = self._karma_sets()
        empty = np.zeros(0, dtype=np.int64)
        if sets is None:
            return PairItems(empty, empty, empty, empty.astype(np.int32))
        todo = sets.todo
        per_set_c: list[np.ndarray] = []
        per_set_r: list[np.ndarray] = []
        for j, key in enumerate(sets.set_keys):
            hit = cache.get(key)
            if hit is None:
                pairs = kin.all_pairs(mode, [kin.models[c] for c in sets.members(j)])[:max_pairs]
                hit = (
                    np.array([kin.index[p.chosen] for p in pairs], dtype=np.int64),
                    np.array([kin.index[p.rejected] for p in pairs], dtype=np.int64),
                )
                cache[key] = hit
            per_set_c.append(hit[0])
            per_set_r.append(hit[1])
        n_pairs = np.array([len(c) for c in per_set_c], dtype=np.int64)
        set_start = np.concatenate([[0], np.cumsum(n_pairs)[:-1]])
        counts = n_pairs[sets.inverse]
        row = np.repeat(todo, counts)
        item_start = np.repeat(np.cumsum(counts) - counts, counts)
        within = np.arange(row.size, dtype=np.int64) - item_start
        at = np.repeat(set_start[sets.inverse], counts) + within
        c_code = np.concatenate(per_set_c + [empty])[at]
        r_code = np.concatenate(per_set_r + [empty])[at]
        return PairItems(
            row=row,
            chosen_pos=self.position(sets.lookup(row, c_code)),
            rejected_pos=self.position(sets.lookup(row, r_code)),
            pair_rank=(within + 1).astype(np.int32),
        )

    def ranked_items(
        self, kin: Kinship, rows: np.ndarray, rank_of: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``--form ranked``: for each of ``rows``, the positions of its candidates (scored, non-empty;
        one per model, the later completion of a repeated one) ordered by S_pref, best first (equal
        S_pref by model id). Returns ``(offsets, positions)``: row ``rows[i]``'s list is
        ``positions[offsets[i]:offsets[i + 1]]``."""
        _, candidate = self._karma_candidates()
        sets = self._candidate_sets(candidate, np.asarray(rows, dtype=np.int64))
        if rank_of is None:
            rank_of = model_ranks(kin)
        item_rows, codes = np.divmod(sets.keys, sets.k)
        order = np.lexsort((rank_of[codes], item_rows))
        flat = sets.flat[order]
        counts = np.bincount(np.searchsorted(rows, item_rows[order]), minlength=len(rows))
        offsets = np.concatenate([[0], np.cumsum(counts)])
        return offsets, self.position(flat)

    # ------------------------------------------------------------------ RLAIF baseline
    def decide_rlaif_argilla(self, seed: int) -> Decision:
        """Argilla: best ``rating`` vs a seeded random strictly lower-rated candidate; ties dropped."""
        rated = self._known() & ~np.isnan(self.rating)
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
            draw = hash_uniform(seed, rows + self.start, self.code[flat])
            top = self.rating[flat] == best[rows]
            for mask, target in ((top, chosen), (~top, rejected)):
                sub = flat[mask]
                order = np.lexsort((draw[mask], rows[mask]))
                first_rows, first = np.unique(rows[mask][order], return_index=True)
                target[first_rows] = self.position(sub[order][first])
            todo = np.unique(rows)
            tie = todo[rejected[todo] < 0]
            status[tie] = STATUS["tie"]
            chosen[tie] = -1
        return Decision(status, chosen, rejected)

    def decide_rlaif_h4(self, seed: int) -> Decision:
        """H4: first highest ``overall_score`` vs a seeded uniform random other candidate; ties kept."""
        if self.overall is None:
            raise KarmaError("the h4 rlaif recipe needs each completion's overall_score (Rows.overall)")
        rated = self._known() & ~np.isnan(self.overall)
        candidate = rated & ~self.empty
        status = self._stages(rated, candidate)
        assert self.row_exclusion is not None
        excluded_row = (self.row_exclusion > 0) & ~self.malformed
        status[excluded_row] = self.row_exclusion[excluded_row]
        chosen = np.full(self.n, -1, dtype=np.int64)
        rejected = np.full(self.n, -1, dtype=np.int64)
        flat = np.flatnonzero(candidate & (status[self.parent] == 0))  # ascending: completion order
        if flat.size:
            rows = self.parent[flat]
            best = np.full(self.n, -np.inf)
            np.maximum.at(best, rows, self.overall[flat])
            top = self.overall[flat] == best[rows]
            first_rows, first = np.unique(rows[top], return_index=True)  # the first maximum of each row
            chosen_flat = np.full(self.n, -1, dtype=np.int64)
            chosen_flat[first_rows] = flat[top][first]
            other = flat != chosen_flat[rows]
            sub, sub_rows = flat[other], rows[other]
            order = np.lexsort((hash_uniform(seed, sub_rows + self.start, self.code[sub]), sub_rows))
            picked_rows, picked = np.unique(sub_rows[order], return_index=True)
            chosen[first_rows] = self.position(chosen_flat[first_rows])
            rejected[picked_rows] = self.position(sub[order][picked])
        return Decision(status, chosen, rejected)


def _select_outcome(kin: Kinship, mode: str, codes: np.ndarray) -> tuple[int, int, int]:
    """``(status, chosen code, rejected code)`` of one candidate set (:meth:`Kinship.select`)."""
    from karma_hf.kinship import Pair

    result = kin.select(mode, [kin.models[c] for c in codes])
    if isinstance(result, Pair):
        return KEPT, kin.index[result.chosen], kin.index[result.rejected]
    reason = "fewer_than_two_scored" if result.reason == "fewer_than_two" else result.reason
    return STATUS[reason], -1, -1


def _set_outcomes(sets: CandidateSets, kin: Kinship, mode: str, cache: dict) -> np.ndarray:
    """Per candidate set: ``(status, chosen code, rejected code)`` (int64, (n_sets, 3)). ``cache``
    keeps the outcomes of the sets seen so far: numeric set keys as a sorted array searched with
    numpy (``"keys"``, ``"outcomes"``), other keys in the dict itself; only unseen sets are
    selected."""
    if sets.numeric_keys is None:
        for j, key in enumerate(sets.set_keys):
            if key not in cache:
                cache[key] = _select_outcome(kin, mode, sets.members(j))
        return np.array([cache[key] for key in sets.set_keys], dtype=np.int64).reshape(-1, 3)
    wanted = sets.numeric_keys
    known = cache.get("keys", np.zeros(0))
    outcomes = cache.get("outcomes", np.zeros((0, 3), dtype=np.int64))
    at = np.searchsorted(known, wanted)
    seen = at < known.size
    seen[seen] = known[at[seen]] == wanted[seen]
    missing = np.flatnonzero(~seen)
    if missing.size:
        new = np.array([_select_outcome(kin, mode, sets.members(int(j))) for j in missing], dtype=np.int64)
        keys = np.concatenate([known, wanted[missing]])
        order = np.argsort(keys, kind="stable")
        known, outcomes = keys[order], np.concatenate([outcomes, new.reshape(-1, 3)])[order]
        cache["keys"], cache["outcomes"] = known, outcomes
        at = np.searchsorted(known, wanted)
    return outcomes[at]


def hash_uniform(seed: int, rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """A splitmix64 hash of (seed, row, model code): deterministic per-row random keys."""
    with np.errstate(over="ignore"):
        z = (
            np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
            + rows.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9)
            + (codes.astype(np.int64) + 1).astype(np.uint64) * np.uint64(0x94D049BB133111EB)
        )
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def model_ranks(kin: Kinship) -> np.ndarray:
    """Per model index: its place in :meth:`Kinship.ranking` (0 = best S_pref)."""
    rank_of = np.empty(len(kin.models), dtype=np.int64)
    rank_of[[kin.index[m] for m in kin.ranking()]] = np.arange(len(kin.models))
    return rank_of


def test_keys(prompt_ids: pa.Array, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The test-split ranking key of each row: the first 16 bytes of ``sha256("karma-test-split:
    <seed>:" + prompt_id)`` as two big-endian uint64 columns (n, 2), and whether the row has a
    prompt id (malformed rows have none). 16 bytes order the prompts exactly as the whole digest
    does unless two distinct prompts share a 128-bit prefix."""
    import pyarrow as pa

    ids = prompt_ids.combine_chunks() if isinstance(prompt_ids, pa.ChunkedArray) else prompt_ids
    valid = np.asarray(ids.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    salt = f"karma-test-split:{seed}:".encode()
    sha = hashlib.sha256
    zero = bytes(16)
    digests = b"".join(sha(salt + p.encode("ascii")).digest()[:16] if p is not None else zero for p in ids.to_pylist())
    keys = np.frombuffer(digests, dtype=">u8").astype(np.uint64).reshape(-1, 2)
    return keys, valid


def count_prompts(keys: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows with a prompt id sorted by key (``rows``), each one's distinct-prompt rank, and the
    number of distinct prompts."""
    rows = np.flatnonzero(valid)
    k = keys[rows]
    order = np.lexsort((k[:, 1], k[:, 0]))
    rows, k = rows[order], k[order]
    new = np.ones(rows.size, dtype=bool)
    new[1:] = (k[1:] != k[:-1]).any(axis=1)
    rank = np.cumsum(new) - 1
    return rows, rank, int(rank[-1] + 1) if rank.size else 0


def test_split(rows: np.ndarray, rank: np.ndarray, total: int, n: int, count: int) -> np.ndarray:
    """Boolean mask of the ``n`` rows whose prompt is held out (same prompts for every mode): the
    ``count`` distinct prompts with the smallest keys (:func:`test_keys`, :func:`count_prompts`: a
    seeded hash-ranking of the distinct ``prompt_id`` values)."""
    if count < 0:
        raise KarmaError(f"--test-size must be >= 0, got {count}")
    if count and count >= total:
        raise KarmaError(
            f"--test-size {count} holds out {count} prompts but the source has only "
            f"{total} distinct well-formed prompts; use a smaller --test-size"
        )
    is_test = np.zeros(n, dtype=bool)
    is_test[rows[rank < count]] = True
    return is_test


@dataclass(frozen=True)
class BaselineOptions:
    """What a baseline decision may depend on besides the rows."""

    seed: int = 42
    rlaif_recipe: str = DEFAULT_RLAIF_RECIPE


#: The ``rlaif`` decision of each recipe (:data:`karma_hf.layout.RLAIF_RECIPES`).
RLAIF_DECISIONS: dict[str, Callable[[Rows, int], Decision]] = {
    "h4": Rows.decide_rlaif_h4,
    "argilla": Rows.decide_rlaif_argilla,
}


def decide_rlaif(rows: Rows, options: BaselineOptions) -> Decision:
    try:
        fn = RLAIF_DECISIONS[options.rlaif_recipe]
    except KeyError as exc:
        raise KarmaError(
            f"--rlaif-recipe must be one of {', '.join(RLAIF_DECISIONS)}, got {options.rlaif_recipe!r}"
        ) from exc
    return fn(rows, options.seed)


#: Decision functions of the baseline modes: ``fn(rows, options) -> Decision``.
BASELINES: dict[str, Callable[[Rows, BaselineOptions], Decision]] = {"rlaif": decide_rlaif}


def decide(
    rows: Rows,
    mode: str,
    kin: Kinship,
    seed: int,
    *,
    rlaif_recipe: str = DEFAULT_RLAIF_RECIPE,
    cache: dict | None = None,
) -> Decision:
    """The decision of ``mode`` for every row: a baseline's own function, else kinship selection
    (``cache``: selections by candidate set, shared by the batches of one build)."""
    if mode in BASELINES:
        return BASELINES[mode](rows, BaselineOptions(seed=seed, rlaif_recipe=rlaif_recipe))
    return rows.decide_karma(kin, mode, cache)
