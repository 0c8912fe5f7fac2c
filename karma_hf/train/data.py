"""The training data of a stage: one KARMA config's splits, shaped for the stage's TRL trainer.

* **DPO** (and every pair-based stage) trains on the pairs split (``dataset_train_split``,
  default ``train``): columns ``prompt``/``chosen``/``rejected`` in TRL's conversational format,
  plus the KARMA metadata.
* **SFT** trains on the chosen responses as conversational **prompt/completion** rows
  (``completion`` = ``chosen``), so the loss covers the completion only with *any* chat
  template (TRL's ``assistant_only_loss`` needs ``{% generation %}`` markers most templates
  lack). ``dataset_train_split: train_sft`` works too: its ``messages`` are split into the
  prompt (all but the last turn) and the completion (the last assistant turn).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from karma_hf.errors import KarmaError
from karma_hf.karma_set import KarmaSet


def load_karma_splits(name: str, config: str | None, splits: Sequence[str], *, revision: str | None = None) -> Any:
    """Load ``splits`` of one config (KARMA mode) of a KARMA set as a ``DatasetDict``.

    The config's data files are read from the dataset card, and only the requested splits are
    loaded (see :meth:`karma_hf.karma_set.KarmaSet.load`).
    """
    return KarmaSet(name, revision=revision).load(config, splits)


def to_sft_rows(ds, split: str):
    """Conversational prompt/completion rows for SFT on the chosen side (see the module doc)."""
    cols = set(ds.column_names)
    if {"prompt", "chosen"} <= cols:
        drop = [c for c in ("rejected", "messages") if c in cols]  # messages = prompt + chosen, the same turns
        return ds.rename_column("chosen", "completion").remove_columns(drop)
    if "messages" in cols:

        def split_last(row):
            msgs = row["messages"]
            if not msgs or msgs[-1].get("role") != "assistant":
                raise KarmaError(f"split {split!r}: a messages row does not end with an assistant turn")
            return {"prompt": msgs[:-1], "completion": msgs[-1:]}

        return ds.map(split_last, remove_columns=["messages"], desc=f"SFT rows from {split}")
    raise KarmaError(
        f"split {split!r} has neither prompt/chosen nor messages columns (columns: {', '.join(sorted(cols))})"
    )


def check_pairs(ds, split: str):
    """DPO needs ``prompt``/``chosen``/``rejected``."""
    missing = [c for c in ("prompt", "chosen", "rejected") if c not in ds.column_names]
    if missing:
        raise KarmaError(
            f"split {split!r} has no {', '.join(missing)} column(s) for DPO "
            f"(columns: {', '.join(ds.column_names)}); use a pairs split such as 'train'"
        )
    return ds
