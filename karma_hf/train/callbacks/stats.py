"""``KinshipStatsCallback``: kinship and model-pair statistics of the batches a run trains on.

Every logging step adds ``karma/kinship_mean``, ``karma/rows`` and
``karma/pair_share/<chosen>><rejected>`` (the most frequent pairs) for the rows seen since the
last log, gathered over all processes (accelerate's ``gather_object``), next to TRL's own
metrics. Rows are identified by dataset index: the callback records the indices each batch is
fetched with (the dataset's ``__getitems__``, which torch's fetcher calls) and looks ``kinship``,
``chosen_model`` and ``rejected_model`` up in a per-index table built from the trainer's prepared
train dataset, so TRL dropping unused columns does not matter. A pair whose kinship is unknown (a
model without scores, e.g. in the ``rlaif`` baseline) counts as a row without kinship. Needs
``dataloader_num_workers=0`` (the default) and no packing; otherwise the statistics are off, and
the reason is logged once and written to ``karma_batch_stats.json``.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from karma_hf.layout import STATS_COLUMNS

logger = logging.getLogger(__name__)

BATCH_STATS_FILE = "karma_batch_stats.json"


@dataclass
class PairStats:
    """Rows seen, the sum of their (known) kinship values, and the count of each model pair."""

    rows: int = 0
    kinship_rows: int = 0
    kinship_sum: float = 0.0
    pairs: Counter = field(default_factory=Counter)

    def add(self, other: PairStats) -> None:
        self.rows += other.rows
        self.kinship_rows += other.kinship_rows
        self.kinship_sum += other.kinship_sum
        self.pairs.update(other.pairs)

    @property
    def kinship_mean(self) -> float | None:
        return self.kinship_sum / self.kinship_rows if self.kinship_rows else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "kinship_rows": self.kinship_rows,
            "kinship_sum": self.kinship_sum,
            "pairs": dict(self.pairs),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PairStats:
        return cls(int(d["rows"]), int(d["kinship_rows"]), float(d["kinship_sum"]), Counter(d["pairs"]))


def _gather(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every process's ``obj`` (accelerate's ``gather_object``; ``[obj]`` outside a distributed run)."""
    from accelerate import PartialState
    from accelerate.utils import gather_object

    if PartialState().num_processes == 1:
        return [obj]
    return list(gather_object([obj]))


def _kinship_value(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


class KinshipStatsCallback(TrainerCallback):
    """Per-log and whole-run kinship / model-pair statistics (see the module docstring)."""

    def __init__(self, train_dataset: Any = None, *, top_pairs: int = 8) -> None:
        self.train_dataset = train_dataset
        self.top_pairs = top_pairs
        self.trainer_dataset: Any = None
        self.disabled: str | None = None
        self.total = PairStats()
        self._window = PairStats()
        self._meta: tuple[list[float | None], list[str], list[str]] | None = None
        self._fetched: deque[list[int]] = deque()

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self._fetched.clear()
        self._meta, self.disabled = None, None
        ds = getattr(train_dataloader, "dataset", None)
        if args.dataloader_num_workers:
            self.disabled = "dataloader_num_workers > 0 (indices are fetched in worker processes)"
        elif ds is None or not hasattr(ds, "__getitems__") or not hasattr(ds, "column_names"):
            self.disabled = "the train dataloader does not read a datasets.Dataset"
        elif getattr(args, "packing", False):
            self.disabled = "packing merges rows, so batches have no per-row metadata"
        else:
            source = next(
                (
                    d
                    for d in (ds, self.trainer_dataset, self.train_dataset)
                    if d is not None and all(c in getattr(d, "column_names", ()) for c in STATS_COLUMNS)
                ),
                None,
            )
            if source is None:
                self.disabled = f"no dataset with columns {', '.join(STATS_COLUMNS)}"
            elif len(source) != len(ds):
                self.disabled = (
                    f"the trainer kept {len(ds)} of {len(source)} rows; pass the trainer "
                    "to KarmaCallback.attach() for an exact index table"
                )
            else:
                cols = source.select_columns(list(STATS_COLUMNS))[:]
                self._meta = (
                    [_kinship_value(k) for k in cols["kinship"]],
                    list(cols["chosen_model"]),
                    list(cols["rejected_model"]),
                )
                self._record_fetches(ds)
        if self.disabled:
            logger.warning("karma batch statistics are off: %s", self.disabled)
        return control

    def _record_fetches(self, ds: Any) -> None:
        original = type(ds).__getitems__
        fetched = self._fetched

        def recording_getitems(keys, _ds=ds, _orig=original):
            fetched.append([int(k) for k in keys])
            return _orig(_ds, keys)

        ds.__getitems__ = recording_getitems  # instance attribute; torch's fetcher calls it

    def on_step_end(self, args, state, control, **kwargs):
        if self._meta is None:
            return control
        kin, chosen, rejected = self._meta
        for _ in range(min(args.gradient_accumulation_steps, len(self._fetched))):
            for i in self._fetched.popleft():
                self._window.rows += 1
                value = kin[i]
                if value is not None:
                    self._window.kinship_rows += 1
                    self._window.kinship_sum += value
                self._window.pairs[f"{chosen[i]}>{rejected[i]}"] += 1
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs or self.disabled is not None:
            return control
        window = self._flush()
        if window.rows == 0:
            return control
        extra: dict[str, float] = {"karma/rows": float(window.rows)}
        if window.kinship_mean is not None:
            extra["karma/kinship_mean"] = round(window.kinship_mean, 6)
        for pair, n in sorted(window.pairs.items(), key=lambda kv: (-kv[1], kv[0]))[: self.top_pairs]:
            extra[f"karma/pair_share/{pair}"] = round(n / window.rows, 6)
        logs.update(extra)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(extra)
        return control

    def _flush(self) -> PairStats:
        """The rows seen since the last flush, over all processes, added to the run totals."""
        window = PairStats()
        for part in _gather(self._window.to_dict()):
            window.add(PairStats.from_dict(part))
        self.total.add(window)
        self._window = PairStats()
        return window

    def write(self, out: Path) -> Path:
        """Run totals to ``out/karma_batch_stats.json``."""
        total = self.total
        body = {
            "disabled": self.disabled,
            "rows": total.rows,
            "rows_with_kinship": total.kinship_rows,
            "kinship_mean": total.kinship_mean,
            "pair_counts": dict(sorted(total.pairs.items(), key=lambda kv: (-kv[1], kv[0]))),
        }
        out.mkdir(parents=True, exist_ok=True)
        path = out / BATCH_STATS_FILE
        path.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
        return path

    def on_train_end(self, args, state, control, **kwargs):
        if self.disabled is None:
            self._flush()  # steps after the last log (every process takes part in the gather)
        if state.is_world_process_zero:
            self.write(Path(args.output_dir))
        return control
