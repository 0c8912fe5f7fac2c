"""``karma train sft``: TRL's ``SFTTrainer`` on the chosen responses of a KARMA set."""

from __future__ import annotations

from karma_hf.train.data import to_sft_rows
from karma_hf.train.stages import Stage, register_stage


def _config() -> type:
    from trl import SFTConfig

    return SFTConfig


def _trainer() -> type:
    from trl import SFTTrainer

    return SFTTrainer


STAGE = register_stage(
    Stage(
        name="sft",
        help="Supervised fine-tuning on the chosen responses (prompt/completion, completion-only loss).",
        config_class=_config,
        trainer_class=_trainer,
        prepare=to_sft_rows,
    )
)
