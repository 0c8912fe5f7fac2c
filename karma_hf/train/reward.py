"""``karma train reward``: TRL's ``RewardTrainer`` (``from trl import RewardTrainer, RewardConfig``) on KARMA pairs.

A reward model is a **sequence-classification** model with one output (``num_labels=1``). Given a
causal-LM name or folder (``model_name_or_path``, e.g. the student), TRL 1.16 builds it itself:
``AutoModelForSequenceClassification.from_pretrained(name, num_labels=1, **model_init_kwargs)``
(a ``LlamaForSequenceClassification``, ``Qwen2ForSequenceClassification``..., whose ``score``
head is newly initialised; TRL silences the "newly initialised weights" warnings). The head reads
the last non-padding token, so the model needs a pad token id: TRL takes ``pad_token`` from the
config, else the tokenizer's pad token, else its eos token, and writes it into the model config.
The loss is ``-log sigmoid(r(chosen) - r(rejected))`` on the full prompt+response conversation.

What differs from the generative stages:

* the saved model loads with ``AutoModelForSequenceClassification`` (not ``...ForCausalLM``);
* ``karma_eval_tasks`` (lm-eval tasks that generate or score a language model's continuations)
  do not apply to a reward model and are refused; the post-training evaluation of a reward model
  is TRL's own pairwise accuracy on the test pairs: ``eval_strategy: epoch`` (or ``steps``)
  evaluates on ``dataset_test_split`` and logs ``eval_accuracy`` / ``eval_margin``;
* with LoRA (``use_peft``), ``lora_task_type`` is set to ``SEQ_CLS`` (TRL's default ``CAUSAL_LM``
  would neither train nor save the new score head).
"""

from __future__ import annotations

import logging
from typing import Any

from karma_hf.errors import KarmaError
from karma_hf.train.data import check_pairs
from karma_hf.train.stages import Stage, register_stage

logger = logging.getLogger(__name__)


def _config() -> type:
    from trl import RewardConfig

    return RewardConfig


def _trainer() -> type:
    from trl import RewardTrainer

    return RewardTrainer


def _check_args(args: Any) -> None:
    if args.karma.karma_eval_tasks:
        raise KarmaError(
            "karma train reward: karma_eval_tasks score a language model's continuations and do not apply to a "
            "reward model; drop them and set eval_strategy: epoch (or steps) for the reward model's pairwise "
            "accuracy on dataset_test_split"
        )
    model = args.model
    if getattr(model, "use_peft", False) and getattr(model, "lora_task_type", "SEQ_CLS") == "CAUSAL_LM":
        model.lora_task_type = "SEQ_CLS"
        logger.info("karma train reward: lora_task_type set to SEQ_CLS (trains and saves the score head)")


STAGE = register_stage(
    Stage(
        name="reward",
        help="A reward model (sequence classification, one score) on the KARMA pairs (prompt/chosen/rejected).",
        config_class=_config,
        trainer_class=_trainer,
        prepare=check_pairs,
        check_args=_check_args,
    )
)
