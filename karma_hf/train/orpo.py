"""``karma train orpo``: TRL's ORPO trainer on the KARMA pairs (prompt/chosen/rejected).

ORPO is **experimental in TRL 1.x**: its public import path is ``trl.experimental.orpo``
(``from trl.experimental.orpo import ORPOConfig, ORPOTrainer``), which may change in any TRL
release. Importing it warns (``TRLExperimentalWarning``); this stage imports it with that one
warning filtered (this docstring and ``docs/train.md`` say it instead), nothing else silenced.

The trainer is TRL's, with two adjustments so it takes the same arguments as the other stages:
``quantization_config`` (which TRL's stable trainers accept and ORPO's does not) goes into
``model_init_kwargs`` (the model then loads on its rank's device), and ``device_map`` is otherwise
``None`` so the Trainer places the model as for every other stage (ORPO's own default, ``"auto"``,
ignores ``use_cpu`` and would spread one copy over all GPUs of every DDP / DeepSpeed rank).
No reference model: ORPO adds an odds-ratio term to the SFT loss of the chosen response.
"""

from __future__ import annotations

import functools
from typing import Any

from karma_hf.train.data import check_pairs
from karma_hf.train.stages import Stage, register_stage

EXPERIMENTAL_MODULE = "trl.experimental.orpo"


def _import() -> Any:
    import importlib
    import warnings

    from trl.import_utils import TRLExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TRLExperimentalWarning)
        return importlib.import_module(EXPERIMENTAL_MODULE)


def _config() -> type:
    return _import().ORPOConfig


@functools.cache
def _trainer() -> type:
    base = _import().ORPOTrainer

    class KarmaORPOTrainer(base):  # type: ignore[misc,valid-type]
        """TRL's ``ORPOTrainer`` taking ``quantization_config`` and loading per rank under DDP."""

        def __init__(self, *args: Any, quantization_config: Any = None, **kwargs: Any) -> None:
            config = kwargs.get("args")
            model = kwargs.get("model", args[0] if args else None)
            if config is not None and isinstance(model, str):
                init = dict(config.model_init_kwargs or {})
                if quantization_config is not None:
                    init["quantization_config"] = quantization_config
                    # a quantized model is placed on its rank's device when loaded
                    init.setdefault("device_map", {"": config.distributed_state.local_process_index})
                # else the Trainer places the model (ORPO's "auto" would ignore use_cpu and spread
                # one copy over every GPU of each DDP/DeepSpeed rank)
                init.setdefault("device_map", None)
                config.model_init_kwargs = init
            super().__init__(*args, **kwargs)

    return KarmaORPOTrainer


def to_orpo_rows(ds: Any, split: str) -> Any:
    """The pairs, without the set's ``messages`` column (prompt + chosen again), which ORPO's chat-template
    step would take for a second conversation."""
    check_pairs(ds, split)
    return ds.remove_columns([c for c in ("messages",) if c in ds.column_names])


STAGE = register_stage(
    Stage(
        name="orpo",
        help="ORPO on the KARMA pairs (prompt/chosen/rejected), no reference model; TRL's experimental "
        "trl.experimental.orpo trainer.",
        config_class=_config,
        trainer_class=_trainer,
        prepare=to_orpo_rows,
    )
)
