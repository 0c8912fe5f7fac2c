"""``karma train STAGE``: a TRL trainer on a KARMA set, with :class:`~karma_hf.train.callbacks.KarmaCallback`.

The stage (:mod:`karma_hf.train.stages`) names the TRL config and trainer; arguments come from
:mod:`karma_hf.train.args`, the data from :mod:`karma_hf.train.data`. The trainer is built here
(not by TRL's script) so that the callback can be passed; multi-GPU, DeepSpeed and FSDP come
from ``accelerate launch`` / ``torchrun`` with no code change (``recipes/accelerate/``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from karma_hf.errors import KarmaError, os_error_message
from karma_hf.train.args import ParsedArgs, parse_args
from karma_hf.train.data import load_karma_splits
from karma_hf.train.order import prepare_train_split
from karma_hf.train.stages import get_stage


@dataclass
class TrainResult:
    """What a finished ``karma train`` run left behind."""

    output_dir: Path
    global_step: int
    metrics: dict[str, float]
    log_history: list[dict[str, Any]]
    eval_files: list[Path]
    train_seconds: float


# ====================================================================== pre-flight
def preflight(args: ParsedArgs) -> None:
    """Everything a run needs that can be checked in seconds, before the trainer (and the model) is built.

    The output folder can be created; the model is a folder or a Hub id it can find
    (:func:`karma_hf.evaluation.run.check_pretrained`: in the cache when offline); the KARMA set has
    the config and splits; ``karma_max_train_samples`` is a positive count; a checkpoint to resume
    from exists; and the ``karma_eval_tasks`` are known tasks whose data can be read (with the
    ``ifeval`` extra when IFEval is among them), so that a typo does not cost a whole training run.
    """
    from karma_hf.evaluation.run import check_pretrained
    from karma_hf.karma_set import KarmaSet

    script, training, model_args, karma = args.script, args.training, args.model, args.karma
    out = Path(training.output_dir)
    if out.exists() and not out.is_dir():
        raise KarmaError(f"--output_dir {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KarmaError(f"--output_dir {out}: cannot create it ({os_error_message(exc)})") from exc
    if karma.karma_max_train_samples is not None and karma.karma_max_train_samples < 1:
        raise KarmaError(f"karma_max_train_samples must be a count >= 1, got {karma.karma_max_train_samples}")
    if karma.karma_eval_limit is not None and karma.karma_eval_limit <= 0:
        raise KarmaError(
            f"karma_eval_limit must be > 0 (items per task, or a fraction below 1), got {karma.karma_eval_limit}"
        )
    try:
        check_pretrained(str(model_args.model_name_or_path), model_args.model_revision)
    except KarmaError as exc:
        raise KarmaError(f"model_name_or_path: {exc}") from exc
    name = str(script.dataset_name)
    if not Path(name).expanduser().exists() and (name.count("/") != 1 or name.startswith((".", "/", "~"))):
        raise KarmaError(f"dataset_name {name}: no such folder, and not a Hub dataset id (user/name)")
    want_eval = training.eval_strategy != "no"
    splits = [script.dataset_train_split] + ([script.dataset_test_split] if want_eval else [])
    KarmaSet(script.dataset_name, revision=karma.dataset_revision).check(script.dataset_config, splits)
    resume = _resume_target(training.resume_from_checkpoint)
    if resume is True:
        from transformers.trainer_utils import get_last_checkpoint

        if get_last_checkpoint(training.output_dir) is None:
            raise KarmaError(f"resume_from_checkpoint: no checkpoint-* folder in {training.output_dir}")
    if karma.karma_eval_tasks:
        from karma_hf.evaluation.run import preflight_tasks

        try:
            preflight_tasks(karma.karma_eval_tasks)
        except KarmaError as exc:
            raise KarmaError(f"karma_eval_tasks: {exc}") from exc


# ====================================================================== the run
def build_trainer(args: ParsedArgs, *, callbacks: Sequence[Any] = ()):
    """Load the data, and build the TRL trainer with a :class:`KarmaCallback` attached.

    Returns ``(trainer, karma_callback)``.
    """
    from trl import get_peft_config, get_quantization_config

    from karma_hf.train.callbacks import KarmaCallback

    script, training, model_args, karma = args.script, args.training, args.model, args.karma
    want_eval = training.eval_strategy != "no"
    splits = [script.dataset_train_split] + ([script.dataset_test_split] if want_eval else [])
    data = load_karma_splits(script.dataset_name, script.dataset_config, splits, revision=karma.dataset_revision)
    train = data[script.dataset_train_split]
    if karma.karma_max_train_samples is not None:
        train = train.select(range(min(karma.karma_max_train_samples, len(train))))
    stage = get_stage(args.stage)
    # the stage's argument checks, --karma_order (shuffle / curriculum), then the stage's shaping
    train, order = prepare_train_split(stage, args, train, script.dataset_train_split)
    eval_ds = stage.prepare(data[script.dataset_test_split], script.dataset_test_split) if want_eval else None

    model_init_kwargs = dict(
        revision=model_args.model_revision,
        trust_remote_code=training.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
        dtype=model_args.dtype,
    )
    model_init_kwargs.update(training.model_init_kwargs or {})
    training.model_init_kwargs = model_init_kwargs

    batch_size = (
        int(karma.karma_eval_batch_size) if karma.karma_eval_batch_size.isdigit() else karma.karma_eval_batch_size
    )
    cb = KarmaCallback(
        script.dataset_name,
        script.dataset_config,
        dataset_revision=karma.dataset_revision,
        train_dataset=train,
        run_config=args.resolved(),
        eval_tasks=karma.karma_eval_tasks,
        eval_limit=karma.karma_eval_limit,
        eval_on_save=karma.karma_eval_on_save,
        eval_at_train_end=False,
        eval_batch_size=batch_size,
        eval_apply_chat_template=karma.karma_eval_apply_chat_template,
        facts={"order": order},
    )
    trainer = stage.trainer_class()(
        model=model_args.model_name_or_path,
        args=training,
        train_dataset=train,
        eval_dataset=eval_ds,
        callbacks=[cb, *callbacks],
        quantization_config=get_quantization_config(model_args),
        peft_config=get_peft_config(model_args),
    )
    cb.attach(trainer)
    if script.ignore_bias_buffers:
        import torch

        trainer.model._ddp_params_and_buffers_to_ignore = [
            name for name, buf in trainer.model.named_buffers() if buf.dtype == torch.bool
        ]
    return trainer, cb


def _release(trainer: Any) -> None:
    """Free the DDP/DeepSpeed wrappers while every rank is alive, then end the process group.

    Tearing the group down first (or letting one rank exit while another still holds a DDP
    reducer) can hang gloo's destructor; this order lets every rank leave cleanly.
    """
    import gc

    accelerator = trainer.accelerator
    accelerator.wait_for_everyone()
    trainer.model_wrapped = trainer.model
    accelerator.free_memory()
    gc.collect()
    accelerator.wait_for_everyone()
    if hasattr(trainer, "end"):
        trainer.end()


def _resume_target(value: str | None) -> str | bool | None:
    if value is None:
        return None
    if str(value).lower() in ("true", "last", "latest"):
        return True
    if not Path(value).is_dir():
        raise KarmaError(f"resume_from_checkpoint: no checkpoint folder {value}")
    return value


def train(
    stage: str, argv: Sequence[str] = (), *, args: ParsedArgs | None = None, callbacks: Sequence[Any] = ()
) -> TrainResult:
    """Run ``karma train STAGE`` in this process (one rank of a launcher job, or alone).

    Checks what can be checked first (:func:`preflight`), then trains, saves the model (and
    tokenizer) to ``output_dir``, writes the TRL model card plus the KARMA section, and runs the
    karma evaluation when ``karma_eval_tasks`` is set.
    """
    args = args or parse_args(stage, argv)
    preflight(args)
    trainer, cb = build_trainer(args, callbacks=callbacks)
    training, script = args.training, args.script
    resume = _resume_target(training.resume_from_checkpoint)
    t0 = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - t0
    out = Path(training.output_dir)
    trainer.save_model(str(out))
    hub_name = script.dataset_name if not Path(script.dataset_name).expanduser().is_dir() else None
    main = trainer.is_world_process_zero()
    trainer.create_model_card(model_name=out.name, dataset_name=hub_name)
    if training.push_to_hub:
        trainer.push_to_hub(dataset_name=hub_name)
    hub_model_id = trainer.hub_model_id
    result = TrainResult(
        out, trainer.state.global_step, dict(output.metrics), list(trainer.state.log_history), [], seconds
    )
    _release(trainer)
    # The karma evaluation runs after the process group is gone: a long lm-eval on the main
    # process never holds the other ranks in a collective (NCCL/gloo timeouts).
    result.eval_files = cb.finalize(out, is_main_process=main)
    if training.push_to_hub and main:
        from huggingface_hub import upload_file

        upload_file(
            path_or_fileobj=str(out / "README.md"),
            path_in_repo="README.md",
            repo_id=hub_model_id,
            token=training.hub_token,
            commit_message="karma-hf: model card provenance section",
        )
    return result
