"""``karma train kto``: TRL's ``KTOTrainer`` (``from trl import KTOTrainer, KTOConfig``) on a KARMA set.

Two inputs:

* **unpaired rows** (``prompt`` / ``completion`` / ``label``, TRL's unpaired preference format,
  e.g. the set's ``unpaired`` form: ``--dataset_train_split unpaired`` or its ``<mode>-unpaired``
  config): trained as they are;
* **pairs** (``prompt`` / ``chosen`` / ``rejected``, the default ``train`` split): unpaired on the
  fly, annotation-free: the chosen completion becomes a desirable row (``label: True``), the
  rejected one an undesirable row (``label: False``). Both rows keep the pair's columns
  (``kinship``, ``chosen_model``, ``rejected_model``, ``s_pref_*``, ``prompt_id``...), so the
  kinship batch statistics count each trained row with its pair.

TRL's KTO reads rows in dataset order (``train_sampling_strategy: sequential``) because its KL
estimate pairs every prompt with the completion of its neighbour in the batch (a rotation by one
within each ``per_device_train_batch_size`` block). The pairs are therefore laid out block by
block: ``B // 2`` consecutive pairs give their ``B // 2`` chosen rows, then their ``B // 2``
rejected rows, so every batch holds as many desirable as undesirable rows and a row's KL
neighbour is another prompt's completion (with ``B >= 4``). The pair order itself — shuffled
with the seed, or the curriculum of :mod:`karma_hf.train.order` — is kept block by block.
"""

from __future__ import annotations

import logging
from typing import Any

from karma_hf.errors import KarmaError
from karma_hf.train.data import check_pairs
from karma_hf.train.stages import Stage, register_stage

logger = logging.getLogger(__name__)

UNPAIRED_COLUMNS: tuple[str, ...] = ("prompt", "completion", "label")


def _config() -> type:
    from trl import KTOConfig

    return KTOConfig


def _trainer() -> type:
    from trl import KTOTrainer

    return KTOTrainer


def is_unpaired(ds: Any) -> bool:
    return all(c in ds.column_names for c in UNPAIRED_COLUMNS)


def unpair(ds: Any, split: str, *, block: int | None = None) -> Any:
    """One desirable (chosen) and one undesirable (rejected) row per pair, pair columns kept.

    ``block`` pairs at a time give their chosen rows, then their rejected rows (``None``: all
    chosen rows, then all rejected rows). The pairs' order is kept.
    """
    check_pairs(ds, split)
    n = len(ds)
    size = n if block is None else max(1, int(block))
    order: list[int] = []  # row j of the result comes from pair order[j] // 2, chosen when even
    for start in range(0, n, size):
        pairs = range(start, min(start + size, n))
        order += [2 * i for i in pairs] + [2 * i + 1 for i in pairs]
    keep = [c for c in ds.column_names if c not in ("chosen", "rejected")]

    def rows(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        m = len(batch["chosen"])
        out = {c: [v for v in batch[c] for _ in (0, 1)] for c in keep}
        out["completion"] = [x for pair in zip(batch["chosen"], batch["rejected"], strict=True) for x in pair]
        out["label"] = [True, False] * m
        return out

    # every pair as two adjacent rows (chosen, rejected), then the block layout by one select
    doubled = ds.map(rows, batched=True, remove_columns=ds.column_names, desc=f"Unpairing {split}")
    return doubled.select(order)


def to_kto_rows(ds: Any, split: str, *, block: int | None = None) -> Any:
    """The split as KTO rows: unpaired rows as they are, pairs unpaired (see the module doc)."""
    if is_unpaired(ds):
        return ds
    if {"prompt", "chosen", "rejected"} <= set(ds.column_names):
        return unpair(ds, split, block=block)
    raise KarmaError(
        f"split {split!r} has neither prompt/completion/label (unpaired) nor prompt/chosen/rejected (pairs) "
        f"columns for KTO (columns: {', '.join(sorted(ds.column_names))})"
    )


def _prepare(ds: Any, split: str) -> Any:
    return to_kto_rows(ds, split)


def _prepare_train(ds: Any, split: str, args: Any) -> Any:
    batch = args.training.per_device_train_batch_size
    if batch < 4 and getattr(args.training, "loss_type", "kto") != "apo_zero_unpaired" and not is_unpaired(ds):
        logger.warning(
            "karma train kto: per_device_train_batch_size %d < 4, so a row's KL neighbour in its batch is the other "
            "completion of its own prompt; use a batch of 4 or more",
            batch,
        )
    return to_kto_rows(ds, split, block=max(1, batch // 2))


STAGE = register_stage(
    Stage(
        name="kto",
        help="KTO on unpaired rows (prompt/completion/label), or on the KARMA pairs unpaired on the fly "
        "(chosen -> desirable, rejected -> undesirable).",
        config_class=_config,
        trainer_class=_trainer,
        prepare=_prepare,
        prepare_train=_prepare_train,
    )
)
