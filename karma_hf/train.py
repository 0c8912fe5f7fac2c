"""``karma train sft|dpo``: TRL's SFT and DPO trainers on a KARMA set, with :class:`KarmaCallback`.

Arguments are parsed by TRL's own ``TrlParser`` over TRL's own dataclasses, so every field of
``ScriptArguments`` (``dataset_name``, ``dataset_config`` = the KARMA mode,
``dataset_train_split``, ``dataset_test_split``), ``SFTConfig`` / ``DPOConfig`` (all of
transformers' ``TrainingArguments`` included) and ``ModelConfig`` (``model_name_or_path``,
``dtype``, LoRA/QLoRA through ``use_peft``, ``load_in_4bit``...) is accepted, from a YAML
``--config`` file and/or as ``--flag value`` (flags win). Karma's own options live in
:class:`KarmaArguments`. Unknown keys are an error that names them, with the replacement when the
key was removed from TRL 1.x / transformers 5 (``warmup_ratio`` -> ``warmup_steps: 0.1``...).

Data:

* **DPO** trains on the pairs split (``dataset_train_split``, default ``train``): columns
  ``prompt``/``chosen``/``rejected`` in TRL's conversational format, plus the KARMA metadata.
* **SFT** trains on the chosen responses as conversational **prompt/completion** rows
  (``completion`` = ``chosen``), so the loss covers the completion only with *any* chat
  template (TRL's ``assistant_only_loss`` needs ``{% generation %}`` markers most templates
  lack). ``dataset_train_split: train_sft`` works too: its ``messages`` are split into the
  prompt (all but the last turn) and the completion (the last assistant turn).

The trainer is built here (not by TRL's script) so that the callback can be passed;
multi-GPU, DeepSpeed and FSDP come from ``accelerate launch`` / ``torchrun`` with no code
change (``recipes/accelerate/``).
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from karma_hf.errors import KarmaError

STAGES = ("sft", "dpo")

#: Keys that were removed or renamed in TRL 1.x / transformers 5, with what to write instead.
STALE_KEYS: dict[str, str] = {
    "warmup_ratio": "removed in transformers 5; use warmup_steps: 0.1 (a value below 1 is a fraction of the steps)",
    "max_prompt_length": "removed in TRL 1.x; prompts are no longer truncated separately, set max_length",
    "max_completion_length": "removed from DPOConfig in TRL 1.x; set max_length",
    "max_seq_length": "renamed max_length",
    "torch_dtype": "renamed dtype",
    "evaluation_strategy": "renamed eval_strategy",
    "overwrite_output_dir": "removed in transformers 5; delete it",
    "logging_dir": "removed in transformers 5; delete it (logs go under output_dir)",
    "save_safetensors": "removed in transformers 5; weights are always safetensors",
    "use_logits_to_keep": "removed in TRL 1.x; delete it",
    "rpo_alpha": "removed in TRL 1.x; delete it",
    "reference_free": "removed in TRL 1.x; delete it",
    "force_use_ref_model": "removed in TRL 1.x; delete it",
    "generate_during_eval": "removed in TRL 1.x; delete it",
    "label_pad_token_id": "removed in TRL 1.x; delete it",
    "padding_value": "removed in TRL 1.x; delete it",
    "is_encoder_decoder": "removed in TRL 1.x; delete it",
    "dataset_mixture": "alignment-handbook key; use dataset_name and dataset_config",
    "dataset_splits": "alignment-handbook key; use dataset_train_split and dataset_test_split",
}


@dataclass
class KarmaArguments:
    """Options of ``karma train`` that are not TRL's (the dataset itself is ``ScriptArguments``')."""

    dataset_revision: str | None = field(
        default=None, metadata={"help": "Branch, tag or commit of the KARMA set on the Hub (recorded, resolved)."})
    karma_max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on the first N rows only (smoke runs)."})
    karma_eval_tasks: list[str] | None = field(
        default=None, metadata={"help": "karma lm-eval tasks/groups to run on the saved model, e.g. karma."})
    karma_eval_limit: float | None = field(
        default=None, metadata={"help": "lm-eval --limit for the karma evaluation (items per task)."})
    karma_eval_on_save: bool = field(
        default=False, metadata={"help": "Also evaluate every saved checkpoint."})
    karma_eval_batch_size: str = field(default="1", metadata={"help": "lm-eval batch size (int or 'auto')."})
    karma_eval_apply_chat_template: bool = field(
        default=True, metadata={"help": "Evaluate with the model's chat template (instruct students)."})


@dataclass
class ParsedArgs:
    """The four dataclasses ``karma train`` runs on."""

    stage: str
    script: Any
    training: Any
    model: Any
    karma: KarmaArguments

    def resolved(self) -> dict[str, Any]:
        """JSON-safe dict of all four (what ``karma_provenance.json`` records as ``run_config``)."""
        def plain(obj: Any) -> dict[str, Any]:
            if hasattr(obj, "to_json_string"):
                return json.loads(obj.to_json_string())
            return json.loads(json.dumps(dataclasses.asdict(obj), default=str))
        return {"stage": self.stage, "script": plain(self.script), "model": plain(self.model),
                "karma": plain(self.karma), "training": plain(self.training)}


@dataclass
class TrainResult:
    """What a finished ``karma train`` run left behind."""

    output_dir: Path
    global_step: int
    metrics: dict[str, float]
    log_history: list[dict[str, Any]]
    eval_files: list[Path]
    train_seconds: float


# ====================================================================== parsing
def _config_cls(stage: str):
    from trl import DPOConfig, SFTConfig

    if stage not in STAGES:
        raise KarmaError(f"unknown training stage {stage!r}; choose one of {', '.join(STAGES)}")
    return SFTConfig if stage == "sft" else DPOConfig


def make_parser(stage: str):
    """TRL's ``TrlParser`` over (ScriptArguments, SFTConfig|DPOConfig, ModelConfig, KarmaArguments).

    Argument errors raise :class:`KarmaError` instead of exiting.
    """
    from trl import ModelConfig, ScriptArguments, TrlParser

    class _Parser(TrlParser):
        def error(self, message: str):  # argparse: bad value, missing value
            raise KarmaError(f"karma train {stage}: {message}")

    return _Parser((ScriptArguments, _config_cls(stage), ModelConfig, KarmaArguments),
                   prog=f"karma train {stage}")


def _unknown_keys(strings: Sequence[str]) -> list[str]:
    return [s[2:].split("=", 1)[0] for s in strings if s.startswith("--")]


def _stale_error(keys: Sequence[str], where: str, stage: str) -> KarmaError:
    parts = []
    for k in keys:
        hint = STALE_KEYS.get(k)
        parts.append(f"{k!r} ({hint})" if hint else repr(k))
    noun = "field" if len(keys) == 1 else "fields"
    return KarmaError(f"{where}: unknown {noun} {', '.join(parts)}; see `karma train {stage} --list-fields` "
                      "for the accepted fields")


def _check_config_keys(parser, path: Path, stage: str) -> None:
    """Unknown keys in the YAML recipe, reported before anything else is validated."""
    import yaml

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise KarmaError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise KarmaError(f"{path}: a recipe must be a YAML mapping of field: value")
    known = {action.dest for action in parser._actions} | {"env"}
    unknown = [str(k) for k in config if k not in known]
    if unknown:
        raise _stale_error(unknown, str(path), stage)


def parse_args(stage: str, argv: Sequence[str]) -> ParsedArgs:
    """Parse ``karma train STAGE`` arguments (``--config recipe.yaml`` plus ``--flag value``).

    Unknown keys (in the YAML or on the command line) raise :class:`KarmaError` naming them.
    """
    parser = make_parser(stage)
    argv = list(argv)
    if not argv:
        raise KarmaError(f"karma train {stage}: give --config RECIPE.yaml and/or --model_name_or_path, "
                         "--dataset_name, --dataset_config, --output_dir (see --help)")
    where = "command line"
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise KarmaError("--config needs a YAML file")
        from karma_hf.resources import resolve_recipe

        path = resolve_recipe(argv[i + 1])
        argv[i + 1] = str(path)
        if not path.is_file():
            raise KarmaError(f"config file not found: {path}")
        where = str(path)
        _check_config_keys(parser, path, stage)
    flags = {opt for action in parser._actions for opt in action.option_strings} | {"--config"}
    unknown = [a.split("=", 1)[0][2:].replace("-", "_") for a in argv
               if a.startswith("--") and a.split("=", 1)[0] not in flags]
    if unknown:  # before the dataclasses are built, so a stale flag is reported first
        raise _stale_error(unknown, "command line", stage)
    try:
        with warnings.catch_warnings():  # TRL's own default gradient_checkpointing=True trips this
            warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
            *parsed, config_rest, cli_rest = parser.parse_args_and_config(
                argv, return_remaining_strings=True, separate_remaining_strings=True)
    except KarmaError:
        raise
    except (ValueError, TypeError) as exc:  # YAML not a mapping, __post_init__ checks (bf16 on CPU...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "support bf16" in first:
            raise KarmaError(f"{where}: bf16 is on (TRL's default) but there is no GPU; set bf16: false "
                             "(or use_cpu: true) to train on CPU") from None
        raise KarmaError(f"{where}: invalid training configuration: {first}") from None
    if config_rest:
        raise _stale_error(_unknown_keys(config_rest), where, stage)
    if cli_rest:
        raise _stale_error(_unknown_keys(cli_rest) or list(cli_rest), "command line", stage)
    script, training, model, karma = parsed
    if not script.dataset_name:
        raise KarmaError(f"{where}: dataset_name is required (a KARMA set: Hub id or local folder)")
    if not model.model_name_or_path:
        raise KarmaError(f"{where}: model_name_or_path is required")
    return ParsedArgs(stage, script, training, model, karma)


# ====================================================================== data
def load_karma_splits(name: str, config: str | None, splits: Sequence[str], *,
                      revision: str | None = None):
    """Load ``splits`` of one config (KARMA mode) of a KARMA set as a ``DatasetDict``.

    The config's data files are read from the dataset card, and only the requested splits are
    loaded (a set's ``train_sft`` split has other columns than its pairs splits).
    """
    from datasets import DatasetDict, load_dataset

    from karma_hf.karma_set import config_files, read_dataset_files

    info = read_dataset_files(name, revision)
    meta = info["card_metadata"]
    declared = [c.get("config_name") for c in meta.get("configs") or [] if isinstance(c, Mapping)]
    if info["card_text"] is None and not info["local_path"] and info["notes"]:
        raise KarmaError(f"cannot read dataset {name!r}: {info['notes'][0]}")
    if declared:
        if config is None:
            raise KarmaError(f"dataset {name}: dataset_config (the KARMA mode) is required; "
                             f"available: {', '.join(map(str, declared))}")
        if config not in declared:
            raise KarmaError(f"dataset {name} has no config {config!r}; available: "
                             f"{', '.join(map(str, declared))}")
        files = config_files(meta, config)
        missing = [s for s in splits if s not in files]
        if missing:
            raise KarmaError(f"dataset {name} config {config!r} has no split {missing[0]!r}; "
                             f"available: {', '.join(files)}")
        data_files = {s: files[s] for s in splits}
        try:
            ds = load_dataset(info["local_path"] or name, data_files=data_files,
                              revision=None if info["local_path"] else (info["resolved_revision"] or revision))
        except Exception as exc:
            raise KarmaError(f"cannot load dataset {name} config {config!r}: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        return DatasetDict({s: ds[s] for s in splits})
    try:
        ds = load_dataset(name, config, revision=revision)
    except Exception as exc:
        raise KarmaError(f"cannot load dataset {name!r} (config {config!r}): {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    missing = [s for s in splits if s not in ds]
    if missing:
        raise KarmaError(f"dataset {name} has no split {missing[0]!r}; available: {', '.join(ds)}")
    return DatasetDict({s: ds[s] for s in splits})


def to_sft_rows(ds, split: str):
    """Conversational prompt/completion rows for SFT on the chosen side (see the module doc)."""
    cols = set(ds.column_names)
    if {"prompt", "chosen"} <= cols:
        drop = [c for c in ("rejected",) if c in cols]
        return ds.rename_column("chosen", "completion").remove_columns(drop)
    if "messages" in cols:
        def split_last(row):
            msgs = row["messages"]
            if not msgs or msgs[-1].get("role") != "assistant":
                raise KarmaError(f"split {split!r}: a messages row does not end with an assistant turn")
            return {"prompt": msgs[:-1], "completion": msgs[-1:]}
        return ds.map(split_last, remove_columns=["messages"], desc=f"SFT rows from {split}")
    raise KarmaError(f"split {split!r} has neither prompt/chosen nor messages columns "
                     f"(columns: {', '.join(sorted(cols))})")


def check_pairs(ds, split: str):
    """DPO needs ``prompt``/``chosen``/``rejected``."""
    missing = [c for c in ("prompt", "chosen", "rejected") if c not in ds.column_names]
    if missing:
        raise KarmaError(f"split {split!r} has no {', '.join(missing)} column(s) for DPO "
                         f"(columns: {', '.join(ds.column_names)}); use a pairs split such as 'train'")
    return ds


# ====================================================================== the run
def build_trainer(args: ParsedArgs, *, callbacks: Sequence[Any] = ()):
    """Load the data, and build the TRL trainer with a :class:`KarmaCallback` attached.

    Returns ``(trainer, karma_callback)``.
    """
    from trl import DPOTrainer, SFTTrainer, get_peft_config, get_quantization_config

    from karma_hf.callback import KarmaCallback

    script, training, model_args, karma = args.script, args.training, args.model, args.karma
    want_eval = training.eval_strategy != "no"
    splits = [script.dataset_train_split] + ([script.dataset_test_split] if want_eval else [])
    data = load_karma_splits(script.dataset_name, script.dataset_config, splits,
                             revision=karma.dataset_revision)
    train = data[script.dataset_train_split]
    if karma.karma_max_train_samples is not None:
        train = train.select(range(min(karma.karma_max_train_samples, len(train))))
    prepare = to_sft_rows if args.stage == "sft" else check_pairs
    train = prepare(train, script.dataset_train_split)
    eval_ds = prepare(data[script.dataset_test_split], script.dataset_test_split) if want_eval else None

    model_init_kwargs = dict(revision=model_args.model_revision, trust_remote_code=training.trust_remote_code,
                             attn_implementation=model_args.attn_implementation, dtype=model_args.dtype)
    model_init_kwargs.update(training.model_init_kwargs or {})
    training.model_init_kwargs = model_init_kwargs

    batch_size = int(karma.karma_eval_batch_size) if karma.karma_eval_batch_size.isdigit() else karma.karma_eval_batch_size
    cb = KarmaCallback(script.dataset_name, script.dataset_config, dataset_revision=karma.dataset_revision,
                       train_dataset=train, run_config=args.resolved(), eval_tasks=karma.karma_eval_tasks,
                       eval_limit=karma.karma_eval_limit, eval_on_save=karma.karma_eval_on_save,
                       eval_at_train_end=False, eval_batch_size=batch_size,
                       eval_apply_chat_template=karma.karma_eval_apply_chat_template)
    trainer_cls = SFTTrainer if args.stage == "sft" else DPOTrainer
    trainer = trainer_cls(model=model_args.model_name_or_path, args=training, train_dataset=train,
                          eval_dataset=eval_ds, callbacks=[cb, *callbacks],
                          quantization_config=get_quantization_config(model_args),
                          peft_config=get_peft_config(model_args))
    cb.attach(trainer)
    if script.ignore_bias_buffers:
        import torch

        trainer.model._ddp_params_and_buffers_to_ignore = [
            name for name, buf in trainer.model.named_buffers() if buf.dtype == torch.bool]
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


def train(stage: str, argv: Sequence[str] = (), *, args: ParsedArgs | None = None,
          callbacks: Sequence[Any] = ()) -> TrainResult:
    """Run ``karma train STAGE`` in this process (one rank of a launcher job, or alone).

    Trains, saves the model (and tokenizer) to ``output_dir``, writes the TRL model card plus the
    KARMA section, and runs the karma evaluation when ``karma_eval_tasks`` is set.
    """
    args = args or parse_args(stage, argv)
    trainer, cb = build_trainer(args, callbacks=callbacks)
    training, script = args.training, args.script
    resume = _resume_target(training.resume_from_checkpoint)
    if resume is True:
        from transformers.trainer_utils import get_last_checkpoint

        if not Path(training.output_dir).is_dir() or get_last_checkpoint(training.output_dir) is None:
            raise KarmaError(f"resume_from_checkpoint: no checkpoint-* folder in {training.output_dir}")
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
    result = TrainResult(out, trainer.state.global_step, dict(output.metrics),
                         list(trainer.state.log_history), [], seconds)
    _release(trainer)
    # The karma evaluation runs after the process group is gone: a long lm-eval on the main
    # process never holds the other ranks in a collective (NCCL/gloo timeouts).
    result.eval_files = cb.finalize(out, is_main_process=main)
    if training.push_to_hub and main:
        from huggingface_hub import upload_file

        upload_file(path_or_fileobj=str(out / "README.md"), path_in_repo="README.md",
                    repo_id=hub_model_id, token=training.hub_token,
                    commit_message="karma-hf: model card provenance section")
    return result
