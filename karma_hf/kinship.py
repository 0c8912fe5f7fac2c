"""Kinship between origin models and kin-pair selection (KARMA §2.1–2.4, vectorised with numpy).

Given a :class:`~karma_hf.scores.ScoreTable` (models × benchmarks, each benchmark in its own
unit):

1. every benchmark is min–max normalised over the candidate pool,
   ``n_ik = (b_ik - min_k) / (max_k - min_k)``. A benchmark whose max equals its min carries no
   information about the models; it is **dropped with a warning** (recorded in
   ``Kinship.dropped_benchmarks``) instead of dividing by zero;
2. ``S_pref(M_i) = mean_k n_ik`` (Eq. 2);
3. kinship ``S_ij = cos(n_i, n_j)`` (Eq. 1). A model whose normalised vector is all zeros (the
   worst model on every benchmark) has no direction: its cosine with every *other* model is 0,
   so it is never kin at ``tau > 0``. The diagonal is 1 by definition (a model is its own kin;
   pairs are always of two distinct models). All values lie in [0, 1] because normalised scores
   are non-negative;
4. pairs with ``S_ij < tau`` are not kin and are never paired.

Pair selection, :meth:`Kinship.select`, works on any subset of models (the models that answered
one instruction). Models are ranked by S_pref, best first; equal S_pref is ordered by model id
(so iteration is deterministic, but a pair of equal S_pref is still a *tie*, see below).

- ``score`` (K_score): walk the ranking; the first model that has a kin partner is paired with
  its best-ranked kin partner (the top two when they are kin);
- ``sim`` (K_sim): the kin pair with the highest cosine; equal cosines go to the pair whose
  members rank higher (first the better member, then its partner);
- ``score_sim`` (K_(score,sim)): the best-ranked model that has a kin partner, paired with its
  most similar kin partner; equal cosines go to the better-ranked partner.

Within the pair, the model with the higher S_pref is ``chosen`` (Eq. 3). Equal S_pref is never
broken at random: the selection returns ``NoPair("tie")``. With no kin pair it returns
``NoPair("no_kin_above_tau")``, and with fewer than two models ``NoPair("fewer_than_two")``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from karma_hf.errors import KarmaError
from karma_hf.layout import get_mode, karma_modes

if TYPE_CHECKING:  # pragma: no cover
    from karma_hf.scores import ScoreTable

DEFAULT_TAU = 0.1
NO_PAIR_REASONS: tuple[str, ...] = ("fewer_than_two", "no_kin_above_tau", "tie")

#: A selector gets the candidates' cosines ``sub`` (ranked by S_pref, best first) and the boolean
#: kin mask ``kin`` (``sub >= tau``, diagonal False, at least one True) and returns the positions
#: ``(a, b)`` of the pair in that ranking. The label (Eq. 3) and ties are decided by the caller.
Selector = Callable[[np.ndarray, np.ndarray], tuple[int, int]]
SELECTORS: dict[str, Selector] = {}


def selector(mode: str) -> Callable[[Selector], Selector]:
    """Register ``fn`` as the pair selector of ``mode`` (a mode registered in :mod:`karma_hf.layout`)."""

    def register(fn: Selector) -> Selector:
        SELECTORS[mode] = fn
        return fn

    return register


@selector("score")
def _select_score(sub: np.ndarray, kin: np.ndarray) -> tuple[int, int]:
    """K_score: the best-ranked model with a kin partner, and its best-ranked kin partner."""
    a = int(np.argmax(kin.any(axis=1)))
    return a, int(np.argmax(kin[a]))


@selector("score_sim")
def _select_score_sim(sub: np.ndarray, kin: np.ndarray) -> tuple[int, int]:
    """K_(score,sim): the best-ranked model with a kin partner, and its most similar kin partner."""
    a = int(np.argmax(kin.any(axis=1)))
    row = np.where(kin[a], sub[a], -np.inf)
    return a, int(np.argmax(row))  # first maximum = best-ranked partner among equals


@selector("sim")
def _select_sim(sub: np.ndarray, kin: np.ndarray) -> tuple[int, int]:
    """K_sim: the kin pair with the highest cosine (row-major first: best-ranked members win ties)."""
    upper = np.where(np.triu(kin, k=1), sub, -np.inf)
    a, b = (int(v) for v in np.argwhere(upper == upper.max())[0])
    return a, b


#: A pair order gets the candidates' cosines ``sub`` (ranked by S_pref, best first) and the positions
#: ``a < b`` of every kin pair in that ranking, and returns the order of those pairs by the mode's
#: criterion (``--form all``; the first is the selector's pick).
PairOrder = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]
PAIR_ORDERS: dict[str, PairOrder] = {}


def pair_order(mode: str) -> Callable[[PairOrder], PairOrder]:
    """Register ``fn`` as the order of all kin pairs of ``mode`` (what ``karma build --form all`` ranks by)."""

    def register(fn: PairOrder) -> PairOrder:
        PAIR_ORDERS[mode] = fn
        return fn

    return register


@pair_order("score")
def _order_score(sub: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """K_score: by the better member's rank, then the partner's rank."""
    return np.lexsort((b, a))


@pair_order("score_sim")
def _order_score_sim(sub: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """K_(score,sim): by the better member's rank, then the most similar partner, then its rank."""
    return np.lexsort((b, -sub[a, b], a))


@pair_order("sim")
def _order_sim(sub: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """K_sim: by cosine, highest first; equal cosines by the members' ranks."""
    return np.lexsort((b, a, -sub[a, b]))


@dataclass(frozen=True)
class Pair:
    """A selected pair: ``chosen`` has the higher S_pref."""

    chosen: str
    rejected: str
    kinship: float
    s_pref_chosen: float
    s_pref_rejected: float


@dataclass(frozen=True)
class NoPair:
    """No pair for this candidate set, with the reason (one of :data:`NO_PAIR_REASONS`)."""

    reason: str

    def __bool__(self) -> bool:  # lets callers write ``if result:``
        return False


def min_max_normalize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min–max normalise each column; return ``(normalised, informative_mask)``.

    Columns whose max equals their min are not informative; they are returned as zeros and
    flagged ``False`` in the mask so callers can drop them.
    """
    values = np.asarray(values, dtype=np.float64)
    lo = values.min(axis=0)
    span = values.max(axis=0) - lo
    informative = span > 0
    safe = np.where(informative, span, 1.0)
    normalized = np.where(informative, (values - lo) / safe, 0.0)
    return normalized, informative


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """Pairwise cosine of the rows; zero rows have cosine 0 with every other row; diagonal 1."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    unit = np.divide(vectors, norms[:, None], out=np.zeros_like(vectors), where=norms[:, None] > 0)
    cos = unit @ unit.T
    np.clip(cos, -1.0, 1.0, out=cos)
    np.fill_diagonal(cos, 1.0)
    return cos


#: Pools up to this many models keep the full n × n cosine matrix (4096² float64 = 128 MiB);
#: larger pools compute cosines on demand, per candidate set or in blocks, and never hold it.
FULL_MATRIX_LIMIT = 4096
#: ``Kinship.to_dict()`` (``karma kinship --format json``, ``build_report.json``) embeds the full
#: matrix only up to this many models; above it, ``cosine`` is ``None`` with a note.
JSON_MATRIX_LIMIT = 1000
_BLOCK_ROWS = 1024


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1)
    return np.divide(vectors, norms[:, None], out=np.zeros_like(vectors), where=norms[:, None] > 0)


@dataclass
class Kinship:
    """Normalised scores, S_pref and the cosine kinship of a pool of origin models.

    ``cosine`` is the full matrix for pools of up to :data:`FULL_MATRIX_LIMIT` models; larger
    pools compute cosines on demand (:meth:`cosine_among`, :meth:`pair_cosine`): selection
    among an instruction's candidates needs only their cosines, so a pool of 100,000 models
    builds and selects in memory linear in the pool.
    """

    models: tuple[str, ...]
    benchmarks: tuple[str, ...]
    normalized: np.ndarray
    s_pref: np.ndarray
    tau: float = DEFAULT_TAU
    dropped_benchmarks: tuple[str, ...] = ()
    display_names: dict[str, str] = field(default_factory=dict)
    index: dict[str, int] = field(init=False)
    unit: np.ndarray = field(init=False, repr=False)
    _full: np.ndarray | None = field(init=False, repr=False, default=None)
    _cache: dict[tuple[str, tuple[int, ...]], Pair | NoPair] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {m: i for i, m in enumerate(self.models)}
        self._cache = {}
        self.unit = _unit_rows(np.asarray(self.normalized, dtype=np.float64))
        self._full = cosine_matrix(self.normalized) if len(self.models) <= FULL_MATRIX_LIMIT else None

    @property
    def full_matrix(self) -> bool:
        """Whether the full n × n cosine matrix is held (pools up to :data:`FULL_MATRIX_LIMIT`)."""
        return self._full is not None

    @property
    def cosine(self) -> np.ndarray:
        """The full cosine matrix (pools up to :data:`FULL_MATRIX_LIMIT` models)."""
        if self._full is None:
            raise KarmaError(
                f"a pool of {len(self.models)} models has no full cosine matrix in memory (limit "
                f"{FULL_MATRIX_LIMIT}); use Kinship.cosine_among(indices) or Kinship.pair_cosine(a, b)"
            )
        return self._full

    def cosine_among(self, idx: np.ndarray) -> np.ndarray:
        """Cosines among the models at ``idx`` (a square matrix, diagonal 1)."""
        idx = np.asarray(idx, dtype=np.int64)
        if self._full is not None:
            return self._full[np.ix_(idx, idx)]
        u = self.unit[idx]
        sub = (u[:, None, :] * u[None, :, :]).sum(axis=-1)
        np.clip(sub, -1.0, 1.0, out=sub)
        np.fill_diagonal(sub, 1.0)
        return sub

    def pair_cosine(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine of each pair ``(a[i], b[i])`` of model indices (1 where ``a[i] == b[i]``)."""
        a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
        if self._full is not None:
            return self._full[a, b]
        out = np.clip((self.unit[a] * self.unit[b]).sum(axis=-1), -1.0, 1.0)
        return np.where(a == b, 1.0, out)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_table(cls, table: ScoreTable, tau: float = DEFAULT_TAU) -> Kinship:
        """Normalise ``table`` over its models and compute S_pref and cosine kinship."""
        return cls.from_values(
            table.models, table.benchmarks, table.values, tau=tau, display_names=dict(table.display_names)
        )

    @classmethod
    def from_values(
        cls,
        models: Iterable[str],
        benchmarks: Iterable[str],
        values: Any,
        tau: float = DEFAULT_TAU,
        display_names: dict[str, str] | None = None,
    ) -> Kinship:
        models = tuple(models)
        benchmarks = tuple(benchmarks)
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (len(models), len(benchmarks)):
            raise KarmaError(
                f"score values have shape {values.shape}, expected "
                f"({len(models)} models, {len(benchmarks)} benchmarks)"
            )
        if not np.isfinite(values).all():
            raise KarmaError("score table contains NaN or infinite values")
        if not 0.0 <= tau <= 1.0:
            raise KarmaError(f"--tau must be within [0, 1], got {tau}")
        if len(models) < 2:
            raise KarmaError(f"kinship needs at least 2 models, the score table has {len(models)}")
        normalized, informative = min_max_normalize(values)
        dropped = tuple(b for b, ok in zip(benchmarks, informative, strict=False) if not ok)
        if dropped:
            warnings.warn(
                f"benchmark(s) {', '.join(dropped)} have the same score for every model "
                "and carry no information: dropped from kinship",
                stacklevel=2,
            )
        if not informative.any():
            raise KarmaError("every benchmark has the same score for all models: kinship is undefined")
        normalized = normalized[:, informative]
        if len(models) < 3:
            warnings.warn(
                f"only {len(models)} models: min-max normalisation maps every benchmark to 0 (worst) and 1 (best), "
                "so a model that is worst on every benchmark becomes a zero vector that is never kin; "
                "kinship needs a pool of 3 or more models to mean anything",
                stacklevel=2,
            )
        if normalized.shape[1] == 1:
            warnings.warn(
                "only one informative benchmark: every cosine is 0 or 1 (a 1-D vector has no direction), so "
                "kinship cannot tell models apart; use several benchmarks",
                stacklevel=2,
            )
        kept = tuple(b for b, ok in zip(benchmarks, informative, strict=False) if ok)
        return cls(
            models=models,
            benchmarks=kept,
            normalized=normalized,
            s_pref=normalized.mean(axis=1),
            tau=float(tau),
            dropped_benchmarks=dropped,
            display_names=dict(display_names or {}),
        )

    # ------------------------------------------------------------------ lookups
    def _idx(self, model: str) -> int:
        try:
            return self.index[model]
        except KeyError as exc:
            known = ", ".join(self.models[:20]) + (" ..." if len(self.models) > 20 else "")
            raise KarmaError(f"unknown model {model!r}; the score table has: {known}") from exc

    def s_pref_of(self, model: str) -> float:
        return float(self.s_pref[self._idx(model)])

    def kinship_of(self, a: str, b: str) -> float:
        i, j = self._idx(a), self._idx(b)
        return float(self.pair_cosine(np.array([i]), np.array([j]))[0])

    def is_kin(self, a: str, b: str) -> bool:
        return a != b and self.kinship_of(a, b) >= self.tau

    def ranking(self) -> list[str]:
        """Model ids by S_pref, best first (equal S_pref by id)."""
        return [self.models[i] for i in self._rank(np.arange(len(self.models)))]

    def _rank(self, idx: np.ndarray) -> np.ndarray:
        names = np.array([self.models[i] for i in idx])
        order = np.lexsort((names, -self.s_pref[idx]))  # last key is primary
        return idx[order]

    # ------------------------------------------------------------------ selection
    def select(self, mode: str, candidates: Iterable[str]) -> Pair | NoPair:
        """Select the pair for ``mode`` among ``candidates`` (duplicates are ignored)."""
        if mode not in SELECTORS:
            get_mode(mode)  # an unregistered name: the error lists the modes
            raise KarmaError(f"mode {mode!r} is not a kinship mode; kinship modes: {', '.join(SELECTORS)}")
        idx = tuple(sorted({self._idx(m) for m in candidates}))
        key = (mode, idx)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._select(mode, np.asarray(idx, dtype=np.int64))
            if len(self._cache) < 100_000:
                self._cache[key] = hit
        return hit

    def _select(self, mode: str, idx: np.ndarray) -> Pair | NoPair:
        if idx.size < 2:
            return NoPair("fewer_than_two")
        order = self._rank(idx)
        if self._full is None and idx.size > _BLOCK_ROWS:
            return self._select_large(mode, order)
        sub = self.cosine_among(order)
        kin = sub >= self.tau
        np.fill_diagonal(kin, False)
        if not kin.any():
            return NoPair("no_kin_above_tau")
        a, b = SELECTORS[mode](sub, kin)
        return self._pair(int(order[min(a, b)]), int(order[max(a, b)]), float(sub[a, b]))

    def all_pairs(self, mode: str, candidates: Iterable[str]) -> list[Pair]:
        """Every kin pair among ``candidates`` (cosine >= tau, S_pref not tied), each labelled by
        Eq. 3, in the order of ``mode``'s criterion (:data:`PAIR_ORDERS`): when the mode's own pick
        is not a tie, it comes first."""
        if mode not in PAIR_ORDERS:
            get_mode(mode)
            raise KarmaError(
                f"mode {mode!r} has no pair order for --form all; register one with "
                f"karma_hf.kinship.pair_order({mode!r}); modes with one: {', '.join(PAIR_ORDERS)}"
            )
        idx = np.asarray(sorted({self._idx(m) for m in candidates}), dtype=np.int64)
        if idx.size < 2:
            return []
        if self._full is None and idx.size > _BLOCK_ROWS:
            raise KarmaError(
                f"--form all among {idx.size} candidates would list up to {idx.size * (idx.size - 1) // 2} pairs; "
                f"it is limited to {_BLOCK_ROWS} candidates per prompt"
            )
        order = self._rank(idx)
        sub = self.cosine_among(order)
        a, b = np.triu_indices(len(order), k=1)
        s_pref = self.s_pref[order]
        keep = (sub[a, b] >= self.tau) & (s_pref[a] != s_pref[b])
        a, b = a[keep], b[keep]
        ranked = PAIR_ORDERS[mode](sub, a, b)
        return [
            Pair(
                chosen=self.models[int(order[i])],
                rejected=self.models[int(order[j])],
                kinship=float(sub[i, j]),
                s_pref_chosen=float(s_pref[i]),
                s_pref_rejected=float(s_pref[j]),
            )
            for i, j in zip(a[ranked], b[ranked], strict=True)
        ]

    def _pair(self, first: int, second: int, cosine: float) -> Pair | NoPair:
        s1, s2 = float(self.s_pref[first]), float(self.s_pref[second])
        if s1 == s2:
            return NoPair("tie")
        return Pair(
            chosen=self.models[first],
            rejected=self.models[second],
            kinship=cosine,
            s_pref_chosen=s1,
            s_pref_rejected=s2,
        )

    def _select_large(self, mode: str, order: np.ndarray) -> Pair | NoPair:
        """Pool-wide selection without the n × n matrix: row blocks of the upper triangle in rank order.

        The built-in modes only; the same answers as the selectors on the full matrix (the
        best-ranked model with a kin partner, whose partner always ranks below it; for ``sim``
        the highest cosine, ties to the pair whose members rank higher). Cosines come from
        blocked matrix products on a contiguous copy of the unit vectors in rank order.
        """
        if mode not in ("score", "sim", "score_sim"):
            raise KarmaError(
                f"mode {mode!r} has no block-wise selection for a pool of {len(order)} models "
                f"(more than {_BLOCK_ROWS} candidates without the full matrix)"
            )
        ranked = np.ascontiguousarray(self.unit[order])
        n = len(order)
        rows_per_block = max(64, min(_BLOCK_ROWS, (1 << 24) // max(n, 1)))  # ~128 MiB of float64 per block
        best: tuple[float, int, int] | None = None  # sim: (cosine, rank of a, rank of b)
        for start in range(0, n, rows_per_block):
            stop = min(start + rows_per_block, n)
            block = ranked[start:stop] @ np.ascontiguousarray(ranked[start:].T)  # rows a, columns b >= start
            np.clip(block, -1.0, 1.0, out=block)
            block[block < self.tau] = -np.inf  # not kin
            head = block[:, : stop - start]  # b ranked at or above a: not a candidate pair
            head[np.tril_indices(stop - start)] = -np.inf
            if mode == "sim":
                top = float(block.max(initial=-np.inf))
                if np.isfinite(top) and (best is None or top > best[0]):
                    r, c = (int(v) for v in np.argwhere(block == top)[0])
                    best = (top, start + r, start + c)
                continue
            has = np.isfinite(block).any(axis=1)
            if has.any():
                r = int(np.argmax(has))
                row = block[r]
                # score: the best-ranked kin partner; score_sim: the most similar (first maximum)
                c = int(np.argmax(np.isfinite(row))) if mode == "score" else int(np.argmax(row))
                return self._pair(int(order[start + r]), int(order[start + c]), float(row[c]))
        if best is None:
            return NoPair("no_kin_above_tau")
        return self._pair(int(order[best[1]]), int(order[best[2]]), best[0])

    def global_pairs(self) -> dict[str, Pair | NoPair]:
        """The pair each kinship mode picks over the whole pool."""
        return {mode: self.select(mode, self.models) for mode in karma_modes() if mode in SELECTORS}

    # ------------------------------------------------------------------ export
    def global_pairs_dict(self) -> dict[str, dict[str, Any]]:
        """:meth:`global_pairs`, JSON-safe (rounded to 6 decimals; a mode without a pair gives its reason)."""
        out: dict[str, dict[str, Any]] = {}
        for mode, res in self.global_pairs().items():
            out[mode] = (
                {"pair": None, "reason": res.reason}
                if isinstance(res, NoPair)
                else {
                    "chosen": res.chosen,
                    "rejected": res.rejected,
                    "kinship": round(res.kinship, 6),
                    "s_pref_chosen": round(res.s_pref_chosen, 6),
                    "s_pref_rejected": round(res.s_pref_rejected, 6),
                }
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary (rounded to 6 decimals so output is stable across BLAS builds)."""
        return {
            "models": list(self.models),
            "display_names": {m: self.display_names.get(m, m) for m in self.models},
            "benchmarks": list(self.benchmarks),
            "dropped_benchmarks": list(self.dropped_benchmarks),
            "tau": self.tau,
            "s_pref": {m: round(float(v), 6) for m, v in zip(self.models, self.s_pref, strict=False)},
            "normalized": {
                m: [round(float(x), 6) for x in row] for m, row in zip(self.models, self.normalized, strict=False)
            },
            "cosine": (
                [[round(float(x), 6) for x in row] for row in self.cosine]
                if len(self.models) <= JSON_MATRIX_LIMIT
                else None
            ),
            **(
                {}
                if len(self.models) <= JSON_MATRIX_LIMIT
                else {
                    "cosine_note": f"a pool of {len(self.models)} models (> {JSON_MATRIX_LIMIT}): the full "
                    "matrix is left out; Kinship.cosine_among() computes any part of it"
                }
            ),
        }
