"""The order a run reads its train rows in: ``--karma_order shuffle`` (default) or ``curriculum``.

* ``shuffle``: the trainer's own seeded sampler (TRL/transformers: ``train_sampling_strategy:
  random``, seeded by ``data_seed`` or ``seed``). A stage whose trainer reads rows in dataset
  order (TRL's KTO: ``train_sampling_strategy: sequential``, which its KL estimate needs) gets
  the rows shuffled once here instead, with the same seed.
* ``curriculum``: the rows sorted by ``--karma_order_key`` — the paper's reading of KARMA's
  selection as a curriculum "from simpler to more complex distinctions":

  - ``s_pref_gap`` = ``s_pref_chosen - s_pref_rejected``: **largest gap first** (the clearest
    preferences first, the closest calls last);
  - ``kinship``: the pair's kinship (cosine similarity of the two models' score vectors):
    **least kin first, most kin last** (near-identical models are the hardest distinctions).

  ``--karma_order_reverse true`` runs either the other way (hardest first). Ties keep the set's
  own order (a stable sort); rows without a value (a model without scores, e.g. in ``rlaif``)
  go last. The sorted dataset is read in order: the sampler is set to transformers 5's public
  ``train_sampling_strategy: sequential`` (no sampler override). Under data parallelism
  accelerate shards that sampler's batches round-robin, so with ``W`` processes and per-device
  batch ``B`` the global batch ``k`` (sorted rows ``kB .. kB+B-1``) goes to rank ``k % W``:
  optimizer step ``s`` trains on global batches ``sW .. sW+W-1``, and each rank reads its share
  in order. Every epoch repeats the same order.

The choice, key, direction and the key's range are recorded in ``karma_provenance.json``
(``order``). Stages shape the sorted rows without reordering them (KTO unpairs pair by pair).
"""

from __future__ import annotations

import math
from typing import Any

from karma_hf.errors import KarmaError

ORDERS: tuple[str, ...] = ("shuffle", "curriculum")
ORDER_KEYS: tuple[str, ...] = ("s_pref_gap", "kinship")
#: Key -> (columns it needs, True when the curriculum starts from the largest value).
KEY_COLUMNS: dict[str, tuple[tuple[str, ...], bool]] = {
    "s_pref_gap": (("s_pref_chosen", "s_pref_rejected"), True),
    "kinship": (("kinship",), False),
}
DIRECTIONS = {
    ("s_pref_gap", False): "largest S_pref gap first",
    ("s_pref_gap", True): "smallest S_pref gap first",
    ("kinship", False): "least kin first, most kin last",
    ("kinship", True): "most kin first, least kin last",
}


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def key_values(ds: Any, key: str, split: str = "train") -> list[float | None]:
    """The curriculum key of every row of ``ds`` (``None`` where a column value is missing)."""
    if key not in KEY_COLUMNS:
        raise KarmaError(f"karma_order_key {key!r}: choose one of {', '.join(ORDER_KEYS)}")
    needed, _ = KEY_COLUMNS[key]
    missing = [c for c in needed if c not in ds.column_names]
    if missing:
        raise KarmaError(
            f"karma_order curriculum by {key} needs the column(s) {', '.join(missing)}, which split {split!r} "
            f"lacks (columns: {', '.join(ds.column_names)})"
        )
    cols = ds.select_columns(list(needed))[:]
    if key == "kinship":
        return [_number(v) for v in cols["kinship"]]
    out: list[float | None] = []
    for c, r in zip(cols["s_pref_chosen"], cols["s_pref_rejected"], strict=True):
        c, r = _number(c), _number(r)
        out.append(None if c is None or r is None else c - r)
    return out


def curriculum_indices(values: list[float | None], *, descending: bool) -> list[int]:
    """Row indices sorted by value (stable; ``None`` last, in their original order)."""
    sign = -1.0 if descending else 1.0
    return sorted(range(len(values)), key=lambda i: (values[i] is None, sign * (values[i] or 0.0), i))


def _seed(training: Any) -> int:
    data_seed = getattr(training, "data_seed", None)
    return int(data_seed if data_seed is not None else training.seed)


def apply_order(ds: Any, args: Any, split: str = "train") -> tuple[Any, dict[str, Any]]:
    """``ds`` in the order ``args.karma`` asks for, and the record of it (see the module docstring).

    Sets ``args.training.train_sampling_strategy`` to ``sequential`` for a curriculum.
    """
    karma, training = args.karma, args.training
    order = getattr(karma, "karma_order", "shuffle")
    strategy = getattr(training, "train_sampling_strategy", "random")
    if order not in ORDERS:
        raise KarmaError(f"karma_order {order!r}: choose one of {', '.join(ORDERS)}")
    if order == "shuffle":
        record: dict[str, Any] = {"order": "shuffle", "sampler": strategy, "seed": _seed(training)}
        if strategy == "sequential":  # the trainer reads rows in dataset order (KTO): shuffle them here
            ds = ds.shuffle(seed=_seed(training))
            record["shuffled_rows"] = True
        return ds, record
    key = karma.karma_order_key
    reverse = bool(getattr(karma, "karma_order_reverse", False))
    if strategy not in ("random", "sequential"):
        raise KarmaError(
            f"karma_order curriculum reads the sorted rows in order (train_sampling_strategy: sequential); "
            f"train_sampling_strategy: {strategy} would reorder them, drop it"
        )
    values = key_values(ds, key, split)
    descending = KEY_COLUMNS[key][1] != reverse
    indices = curriculum_indices(values, descending=descending)
    ds = ds.select(indices)
    training.train_sampling_strategy = "sequential"
    known = [values[i] for i in indices if values[i] is not None]
    record = {
        "order": "curriculum",
        "key": key,
        "reverse": reverse,
        "direction": DIRECTIONS[(key, reverse)],
        "sampler": "sequential",
        "rows": len(indices),
        "rows_without_key": len(indices) - len(known),
        "first": known[0] if known else None,
        "last": known[-1] if known else None,
    }
    return ds, record


def prepare_train_split(stage: Any, args: Any, ds: Any, split: str) -> tuple[Any, dict[str, Any]]:
    """The train split as the stage's trainer gets it: ``check_args``, the order, then the stage's shaping.

    Returns ``(dataset, order record)``; the record notes the row count after shaping when the
    stage changes it (KTO: one row per completion).
    """
    if stage.check_args is not None:
        stage.check_args(args)
    ds, record = apply_order(ds, args, split)
    before = len(ds)
    ds = stage.prepare_train(ds, split, args) if stage.prepare_train is not None else stage.prepare(ds, split)
    if len(ds) != before:
        record["trainer_rows"] = len(ds)
    return ds, record
