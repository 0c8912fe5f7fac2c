"""Arguments of ``karma train STAGE``: TRL's ``TrlParser`` over TRL's own dataclasses, plus karma's.

Every field of ``ScriptArguments`` (``dataset_name``, ``dataset_config`` = the KARMA mode,
``dataset_train_split``, ``dataset_test_split``), the stage's TRL config (``SFTConfig``,
``DPOConfig``...: all of transformers' ``TrainingArguments`` included) and ``ModelConfig``
(``model_name_or_path``, ``dtype``, LoRA/QLoRA through ``use_peft``, ``load_in_4bit``...) is
accepted, from a YAML ``--config`` file and/or as ``--flag value`` (flags win). Karma's own
options live in :class:`KarmaArguments`. Unknown keys are an error that names them, with the
replacement when the key was removed from TRL 1.x / transformers 5 (``warmup_ratio`` ->
``warmup_steps: 0.1``...).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from karma_hf.errors import KarmaError
from karma_hf.train.stages import get_stage

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
        default=None, metadata={"help": "Branch, tag or commit of the KARMA set on the Hub (recorded, resolved)."}
    )
    karma_max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on the first N rows only (smoke runs)."}
    )
    karma_eval_tasks: list[str] | None = field(
        default=None, metadata={"help": "karma lm-eval tasks/groups to run on the saved model, e.g. karma."}
    )
    karma_eval_limit: float | None = field(
        default=None, metadata={"help": "lm-eval --limit for the karma evaluation (items per task)."}
    )
    karma_eval_on_save: bool = field(default=False, metadata={"help": "Also evaluate every saved checkpoint."})
    karma_eval_batch_size: str = field(default="1", metadata={"help": "lm-eval batch size (int or 'auto')."})
    karma_eval_apply_chat_template: bool = field(
        default=True, metadata={"help": "Evaluate with the model's chat template (instruct students)."}
    )
    karma_order: str = field(
        default="shuffle",
        metadata={
            "help": "Order of the train rows: shuffle (the trainer's seeded sampler) or curriculum "
            "(sorted by karma_order_key, read in order; see karma_hf.train.order).",
            "choices": ["shuffle", "curriculum"],
        },
    )
    karma_order_key: str = field(
        default="s_pref_gap",
        metadata={
            "help": "Curriculum key: s_pref_gap (S_pref(chosen) - S_pref(rejected), largest gap first) or "
            "kinship (the pair's kinship, least kin first, most kin last).",
            "choices": ["s_pref_gap", "kinship"],
        },
    )
    karma_order_reverse: bool = field(
        default=False, metadata={"help": "Curriculum in the opposite direction (hardest pairs first)."}
    )


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

        return {
            "stage": self.stage,
            "script": plain(self.script),
            "model": plain(self.model),
            "karma": plain(self.karma),
            "training": plain(self.training),
        }


def make_parser(stage: str):
    """TRL's ``TrlParser`` over (ScriptArguments, SFTConfig|DPOConfig, ModelConfig, KarmaArguments).

    Argument errors raise :class:`KarmaError` instead of exiting.
    """
    from trl import ModelConfig, ScriptArguments, TrlParser

    class _Parser(TrlParser):
        def error(self, message: str):  # argparse: bad value, missing value
            raise KarmaError(f"karma train {stage}: {message}")

    dataclass_types: tuple[Any, ...] = (ScriptArguments, get_stage(stage).config_class(), ModelConfig, KarmaArguments)
    return _Parser(dataclass_types, prog=f"karma train {stage}")


def _unknown_keys(strings: Sequence[str]) -> list[str]:
    return [s[2:].split("=", 1)[0] for s in strings if s.startswith("--")]


def _stale_error(keys: Sequence[str], where: str, stage: str) -> KarmaError:
    parts = []
    for k in keys:
        hint = STALE_KEYS.get(k)
        parts.append(f"{k!r} ({hint})" if hint else repr(k))
    noun = "field" if len(keys) == 1 else "fields"
    return KarmaError(
        f"{where}: unknown {noun} {', '.join(parts)}; see `karma train {stage} --list-fields` for the accepted fields"
    )


def _check_config_keys(parser, path: Path, stage: str) -> None:
    """Unknown keys in the YAML recipe, reported before anything else is validated."""
    import yaml

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise KarmaError(f"{path}: not valid UTF-8 text (byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        raise KarmaError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from exc
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
        raise KarmaError(
            f"karma train {stage}: give --config RECIPE.yaml and/or --model_name_or_path, "
            "--dataset_name, --dataset_config, --output_dir (see --help)"
        )
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
    unknown = [
        a.split("=", 1)[0][2:].replace("-", "_")
        for a in argv
        if a.startswith("--") and a.split("=", 1)[0] not in flags
    ]
    if unknown:  # before the dataclasses are built, so a stale flag is reported first
        raise _stale_error(unknown, "command line", stage)
    try:
        with warnings.catch_warnings():  # TRL's own default gradient_checkpointing=True trips this
            warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
            *parsed, config_rest, cli_rest = parser.parse_args_and_config(
                argv, return_remaining_strings=True, separate_remaining_strings=True
            )
    except KarmaError:
        raise
    except (ValueError, TypeError) as exc:  # YAML not a mapping, __post_init__ checks (bf16 on CPU...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "support bf16" in first:
            raise KarmaError(
                f"{where}: bf16 is on (TRL's default) but there is no GPU; set bf16: false "
                "(or use_cpu: true) to train on CPU"
            ) from exc
        raise KarmaError(f"{where}: invalid training configuration: {first}") from exc
    if config_rest:
        raise _stale_error(_unknown_keys(config_rest), where, stage)
    if cli_rest:
        raise _stale_error(_unknown_keys(cli_rest) or list(cli_rest), "command line", stage)
    script, training, model, karma = parsed
    if not script.dataset_name:
        raise KarmaError(f"{where}: dataset_name is required (a KARMA set: Hub id or local folder)")
    if not model.model_name_or_path:
        raise KarmaError(f"{where}: model_name_or_path is required")
    result = ParsedArgs(stage, script, training, model, karma)
    check = get_stage(stage).check_args
    if check is not None:  # options the stage cannot honour, before anything is loaded
        check(result)
    return result
