"""``karma train dpo``: TRL's ``DPOTrainer`` on the KARMA pairs (prompt/chosen/rejected)."""

from __future__ import annotations

from karma_hf.train.data import check_pairs
from karma_hf.train.stages import Stage, register_stage


def _config() -> type:
    from trl import DPOConfig

    return DPOConfig


def _trainer() -> type:
    from trl import DPOTrainer

    return DPOTrainer


STAGE = register_stage(
    Stage(
        name="dpo",
        help="DPO on the KARMA pairs (prompt/chosen/rejected).",
        config_class=_config,
        trainer_class=_trainer,
        prepare=check_pairs,
    )
)
