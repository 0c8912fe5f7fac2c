"""The pipeline file of ``karma run``: :class:`PipelineConfig`, parsed from YAML and checked.

One section per stage (the format, with every key, is in ``docs/pipeline.md``)::

    output: runs/my-pool                 # every stage writes under it
    pool:                                # the origin models, as for karma eval / karma generate
      model: hf                          # backend of every model: hf or vllm
      models:
        - pretrained=HuggingFaceTB/SmolLM2-135M-Instruct,dtype=float32
        - {model_args: "pretrained=google/gemma-3-270m", name: gemma-3-270m}
    evaluate: {benchmarks: [karma_arc_easy, "hellaswag:acc_norm,none"], limit: 100}
    prompts: {source: prompts.jsonl, column: text, limit: 1000}
    generate: {per_prompt: 2, generation: {max_new_tokens: 256}}
    kinship: {tau: 0.1}
    build: {modes: [score, sim, score_sim], test_size: 0.1}
    hub: {repo: me/karma-my-pool}        # optional: push the dataset
    train:                               # optional: students, evaluated and compared
      students:
        - {name: dpo-sim, stage: dpo, recipe: tiny/dpo.yaml, model: path/to/student, mode: sim}

Strings may use ``${VAR}`` (an environment variable; unset is an error). Relative paths are
relative to the current directory, as for every ``karma`` command. An unknown key or a value of
the wrong type is a :class:`~karma_hf.errors.KarmaError` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from karma_hf.errors import KarmaError
from karma_hf.generation.config import ModelSpec, SamplingSettings

#: The KARMA modes a pipeline builds unless told otherwise (a generated source has no per-instance
#: rating, so the rlaif baseline does not apply to it).
DEFAULT_MODES: tuple[str, ...] = ("score", "sim", "score_sim")
_ENV_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


# ============================================================================ sections
@dataclass(frozen=True)
class PoolSection:
    """The origin models: ``model`` (backend of every model: hf or vllm), ``models`` (lm-eval
    ``model_args`` strings, or mappings with ``model_args``, ``name``, ``model``, ``generation``
    as in a ``karma generate`` pool file, plus ``apply_chat_template`` for this model's evaluation)
    and/or ``models_file`` (as ``--models-file``)."""

    model: str = "hf"
    models: tuple[Any, ...] = ()
    models_file: str | None = None

    def __post_init__(self) -> None:
        _check_backend(self.model, "model")
        if not self.models and not self.models_file:
            raise KarmaError("no model given: list them under pool.models or give pool.models_file")


@dataclass(frozen=True)
class EvaluateSection:
    """How the origin models (and the students) are evaluated with lm-eval.

    ``benchmarks``: karma tasks or groups (``karma``, ``karma_arc_easy``...) and/or any lm-eval
    ``TASK`` or ``TASK:METRIC`` (the metric key read into the score table, e.g.
    ``hellaswag:acc_norm,none``). ``limit``: items per task. ``gen_kwargs``: lm-eval's
    ``--gen_kwargs`` (a mapping or ``k=v,...``); ``lm_eval_args``: any other ``lm_eval run`` options.
    """

    benchmarks: tuple[str, ...] = ("karma",)
    limit: int | float | None = None
    batch_size: int | str | None = None
    apply_chat_template: bool = False
    device: str | None = None
    gen_kwargs: str | dict[str, Any] | None = None
    lm_eval_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.benchmarks:
            raise KarmaError("benchmarks: give at least one karma task or lm-eval TASK[:METRIC]")
        for b in self.benchmarks:
            task, _, _metric = b.partition(":")
            if not task.strip():
                raise KarmaError(f"benchmarks: bad entry {b!r}; expected a karma task or TASK[:METRIC]")
        if self.limit is not None and self.limit <= 0:
            raise KarmaError(f"limit: must be > 0 (items per task, or a fraction below 1), got {self.limit}")
        if isinstance(self.batch_size, int) and self.batch_size < 1:
            raise KarmaError(f"batch_size: must be >= 1 or 'auto', got {self.batch_size}")
        if isinstance(self.gen_kwargs, dict):
            text = ",".join(f"{k}={v}" for k, v in self.gen_kwargs.items())
            object.__setattr__(self, "gen_kwargs", text or None)

    @property
    def tasks(self) -> list[str]:
        """The lm-eval task names (``TASK:METRIC`` without the metric), in order, once each."""
        return list(dict.fromkeys(b.partition(":")[0].strip() for b in self.benchmarks))

    def extra_args(self) -> list[str]:
        """The ``lm_eval run`` options besides limit, batch size, device and chat template."""
        extra = list(self.lm_eval_args)
        if self.gen_kwargs:
            extra += ["--gen_kwargs", str(self.gen_kwargs)]
        return extra

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PromptsSection:
    """The prompt set: ``source`` (Hub id or local file / folder), ``column`` (text or messages;
    default: read a known source schema such as UltraFeedback's), ``split``, ``revision``, ``limit``."""

    source: str
    column: str | None = None
    split: str = "train"
    revision: str | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if not self.source.strip():
            raise KarmaError("source: must name a Hub dataset or a local file")
        if self.limit is not None and self.limit < 1:
            raise KarmaError(f"limit: must be >= 1, got {self.limit}")


@dataclass(frozen=True)
class GenerateSection:
    """``karma generate``'s settings: models per prompt (``per_prompt``, default all), ``seed``,
    ``generation`` defaults (max_new_tokens, temperature, top_p, seed), batching and sharding."""

    per_prompt: int | None = None
    seed: int = 0
    generation: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 8
    shard_size: int = 64
    device: str | None = None

    def __post_init__(self) -> None:
        if self.per_prompt is not None and self.per_prompt < 1:
            raise KarmaError(f"per_prompt: must be >= 1, got {self.per_prompt}")
        if self.batch_size < 1:
            raise KarmaError(f"batch_size: must be >= 1, got {self.batch_size}")
        if self.shard_size < 1:
            raise KarmaError(f"shard_size: must be >= 1, got {self.shard_size}")
        self.settings()  # unknown or bad generation settings fail here

    def settings(self) -> SamplingSettings:
        """The decoding defaults of every model (``seed`` defaults to the section's)."""
        return SamplingSettings(seed=self.seed).updated(self.generation, "generation")


@dataclass(frozen=True)
class KinshipSection:
    """``tau``; ``allow_missing`` (drop a benchmark some model lacks); ``scores``: more score sources
    (preset, CSV, lm-eval results; same benchmarks) joined to the measured ones; ``score_overrides``:
    ``{model: {benchmark: value}}`` replacing measured values (after evaluation, before kinship)."""

    tau: float = 0.1
    allow_missing: bool = False
    scores: tuple[str, ...] = ()
    score_overrides: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.tau <= 1.0:
            raise KarmaError(f"tau: must be within [0, 1], got {self.tau}")


@dataclass(frozen=True)
class BuildSection:
    """``karma build``'s settings for the generated responses (see ``docs/build.md``)."""

    modes: tuple[str, ...] = DEFAULT_MODES
    forms: tuple[str, ...] = ("best",)
    test_size: int | float = 0
    seed: int = 42
    max_pairs_per_prompt: int | None = None
    ignore_unknown_models: bool = False
    num_proc: int | None = None

    def __post_init__(self) -> None:
        from karma_hf.layout import parse_forms, parse_modes
        from karma_hf.pairs.config import check_test_size

        object.__setattr__(self, "modes", parse_modes(self.modes))
        object.__setattr__(self, "forms", parse_forms(self.forms))
        try:
            check_test_size(self.test_size)
        except KarmaError as exc:
            raise KarmaError(f"test_size: {str(exc).removeprefix('--test-size ')}") from exc
        if self.max_pairs_per_prompt is not None and self.max_pairs_per_prompt < 1:
            raise KarmaError(f"max_pairs_per_prompt: must be >= 1, got {self.max_pairs_per_prompt}")
        if self.num_proc is not None and self.num_proc < 1:
            raise KarmaError(f"num_proc: must be >= 1, got {self.num_proc}")


@dataclass(frozen=True)
class HubSection:
    """Publish the built dataset: ``repo`` (``user/name``), ``private`` (applies when it is created)."""

    repo: str
    private: bool = False

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", self.repo):
            raise KarmaError(f"repo: expected a Hub dataset id user/name, got {self.repo!r}")


@dataclass(frozen=True)
class StudentSection:
    """One student: ``name`` (its folder ``train/<name>/``), ``stage`` (sft, dpo, kto, orpo,
    reward), ``recipe`` (a YAML path or a shipped recipe such as ``tiny/dpo.yaml``), ``model`` (the
    student to train), ``mode`` (the KARMA config it trains on: default the recipe's
    ``dataset_config``), ``args`` (more ``karma train`` fields, e.g. ``{max_steps: 10}``)."""

    name: str
    stage: str
    recipe: str
    model: str
    mode: str | None = None
    args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]*", self.name):
            raise KarmaError(f"name: {self.name!r} must be a plain folder name (letters, digits, . _ -)")
        own = sorted({"model_name_or_path", "dataset_name", "output_dir", "config"} & set(self.args))
        if own:
            raise KarmaError(f"args: {', '.join(own)} is set by karma run itself (model, recipe, dataset, folder)")

    def argv(self, recipe: Path, dataset: Path, output_dir: Path) -> list[str]:
        """``karma train STAGE`` arguments of this student."""
        argv = ["--config", str(recipe), "--model_name_or_path", self.model, "--dataset_name", str(dataset)]
        argv += ["--output_dir", str(output_dir)]
        if self.mode:
            argv += ["--dataset_config", self.mode]
        for key, value in self.args.items():
            if isinstance(value, (list, tuple)):
                argv += [f"--{key}", *(str(v) for v in value)]
            else:
                argv += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
        return argv


@dataclass(frozen=True)
class TrainSection:
    """Students trained on the built dataset, then evaluated (``evaluate``: default the origin
    models' settings; ``false``: not evaluated, not compared) and compared (``baseline``: a
    student's name, the others get deltas to it)."""

    students: tuple[StudentSection, ...]
    evaluate: EvaluateSection | bool | None = None
    baseline: str | None = None

    def __post_init__(self) -> None:
        if not self.students:
            raise KarmaError("students: give at least one student (name, stage, recipe, model)")
        names = [s.name for s in self.students]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise KarmaError(f"students: the name {twice[0]!r} is given twice")
        if self.baseline is not None and self.baseline not in names:
            raise KarmaError(f"baseline: {self.baseline!r} is not a student ({', '.join(names)})")
        if self.evaluate is True:
            object.__setattr__(self, "evaluate", None)


# ============================================================================ the pipeline
@dataclass(frozen=True)
class PipelineConfig:
    """A parsed, checked pipeline file (:func:`load_pipeline`)."""

    path: Path
    output: str
    pool: PoolSection
    prompts: PromptsSection
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    generate: GenerateSection = field(default_factory=GenerateSection)
    kinship: KinshipSection = field(default_factory=KinshipSection)
    build: BuildSection = field(default_factory=BuildSection)
    hub: HubSection | None = None
    train: TrainSection | None = None
    description: str | None = None
    models: tuple[ModelSpec, ...] = ()
    #: Per-model ``apply_chat_template`` of the evaluation (a pool entry's own key), by model name.
    chat_templates: dict[str, bool] = field(default_factory=dict)

    def apply_chat_template(self, model: str) -> bool:
        """Whether ``model`` is evaluated with its chat template (its pool entry, else ``evaluate``'s)."""
        return self.chat_templates.get(model, self.evaluate.apply_chat_template)

    @property
    def student_evaluate(self) -> EvaluateSection | None:
        """How the students are evaluated (None: they are not)."""
        if self.train is None or self.train.evaluate is False:
            return None
        return self.train.evaluate if isinstance(self.train.evaluate, EvaluateSection) else self.evaluate


#: Top-level keys and whether they are required.
_TOP_KEYS: dict[str, bool] = {
    "output": True,
    "pool": True,
    "prompts": True,
    "evaluate": False,
    "generate": False,
    "kinship": False,
    "build": False,
    "hub": False,
    "train": False,
    "description": False,
}


def find_pipeline(path: str | Path) -> Path:
    """``path``, or the shipped example of that name (``tiny-cpu.yaml``, ``pipelines/gpu-pool.yaml``)."""
    from karma_hf.resources import recipes_dir, resolve_recipe

    p = Path(path).expanduser()
    if p.exists():
        if not p.is_file():
            raise KarmaError(f"pipeline file {path} is a folder; pass the YAML file")
        return p
    shipped = resolve_recipe(p)
    if shipped.is_file():
        return shipped
    if len(p.parts) == 1 and (recipes_dir() / "pipelines" / p.name).is_file():
        return recipes_dir() / "pipelines" / p.name
    raise KarmaError(f"pipeline file not found: {path}")


def load_pipeline(path: str | Path) -> PipelineConfig:
    """Read and check a pipeline file; every problem is one :class:`KarmaError` naming file and key."""
    import yaml

    file = find_pipeline(path)
    where = str(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise KarmaError(f"{where}: not valid UTF-8 text (byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise KarmaError(f"{where}: not valid YAML{at}: {problem}") from exc
    if not isinstance(data, Mapping):
        raise KarmaError(f"{where}: expected a mapping of {', '.join(_TOP_KEYS)}; see docs/pipeline.md")
    data = _expand_env(data, where, "")
    _check_keys(data, list(_TOP_KEYS), where, "")
    missing = [k for k, required in _TOP_KEYS.items() if required and data.get(k) is None]
    if missing:
        raise KarmaError(f"{where}: missing key {missing[0]!r} (see docs/pipeline.md)")

    def section(key: str, cls: type) -> Any:
        value = data.get(key)
        return _coerce(value if value is not None else {}, cls, where, key)

    output = _coerce(data["output"], str, where, "output")
    if not output.strip():
        raise KarmaError(f"{where}: output: must name a folder")
    pool = section("pool", PoolSection)
    generate = section("generate", GenerateSection)
    specs, chat_templates = _pool_specs(pool, generate, where)
    config = PipelineConfig(
        path=file,
        output=output,
        pool=pool,
        prompts=_coerce(_shorthand(data["prompts"], "source"), PromptsSection, where, "prompts"),
        evaluate=section("evaluate", EvaluateSection),
        generate=generate,
        kinship=section("kinship", KinshipSection),
        build=section("build", BuildSection),
        hub=_coerce(_shorthand(data["hub"], "repo"), HubSection, where, "hub") if data.get("hub") else None,
        train=_coerce(data["train"], TrainSection, where, "train") if data.get("train") else None,
        description=_coerce(data.get("description"), str | None, where, "description"),
        models=tuple(specs),
        chat_templates=chat_templates,
    )
    if config.train is not None:
        from karma_hf.train.stages import stage_names

        for i, student in enumerate(config.train.students):
            if student.stage not in stage_names():
                raise KarmaError(
                    f"{where}: train.students[{i}].stage: unknown stage {student.stage!r}; "
                    f"choose from {', '.join(stage_names())}"
                )
            if student.mode is not None and student.mode not in config.build.modes:
                raise KarmaError(
                    f"{where}: train.students[{i}].mode: {student.mode!r} is not built "
                    f"(build.modes: {', '.join(config.build.modes)})"
                )
    return config


def _shorthand(value: Any, key: str) -> Any:
    """``prompts: FILE`` means ``prompts: {source: FILE}`` (and ``hub: REPO`` ``{repo: REPO}``)."""
    return {key: value} if isinstance(value, str) else value


def _pool_specs(pool: PoolSection, generate: GenerateSection, where: str) -> tuple[list[ModelSpec], dict[str, bool]]:
    """The models, and the per-model ``apply_chat_template`` of the evaluation (``{name: bool}``)."""
    from karma_hf.generation.config import check_pool, pool_from_mapping, read_pool_file

    base = generate.settings()
    entries: list[Any] = []
    chat: dict[int, bool] = {}
    for i, entry in enumerate(pool.models):
        if isinstance(entry, Mapping) and "model" in entry:
            _check_backend(entry["model"], f"models[{i}].model", where=f"{where}: pool")
        if isinstance(entry, Mapping) and "apply_chat_template" in entry:
            entry = dict(entry)
            chat[i] = _coerce(entry.pop("apply_chat_template"), bool, where, f"pool.models[{i}].apply_chat_template")
        entries.append(entry)
    try:
        specs = pool_from_mapping({"model": pool.model, "models": entries}, where=f"{where}: pool", settings=base)
        if pool.models_file:
            specs += read_pool_file(pool.models_file, backend=pool.model, settings=base)
        check_pool(specs)
    except KarmaError as exc:
        message = str(exc)
        raise KarmaError(message if message.startswith(where) else f"{where}: pool: {message}") from exc
    return specs, {specs[i].name: value for i, value in chat.items()}


def _check_backend(value: Any, key: str, where: str | None = None) -> None:
    from karma_hf.generation.config import _BACKEND_ALIASES

    if value not in _BACKEND_ALIASES:
        prefix = f"{where}: " if where else ""
        raise KarmaError(f"{prefix}{key}: unknown model backend {value!r}; karma run runs hf or vllm models")


# ============================================================================ parsing helpers
def _expand_env(value: Any, where: str, key: str) -> Any:
    """``${VAR}`` in every string, recursively; an unset variable is an error naming the key."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                raise KarmaError(f"{where}: {key or 'value'}: environment variable {name} is not set")
            return os.environ[name]

        return _ENV_VAR.sub(sub, value)
    if isinstance(value, Mapping):
        return {k: _expand_env(v, where, f"{key}.{k}" if key else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, where, f"{key}[{i}]") for i, v in enumerate(value)]
    return value


def _check_keys(data: Mapping[str, Any], known: list[str], where: str, key: str) -> None:
    for k in data:
        if not isinstance(k, str) or k not in known:
            close = difflib.get_close_matches(str(k), known, n=1)
            prefix = f"{key}." if key else ""
            hint = f"; did you mean {prefix + close[0]!r}?" if close else f" (known: {', '.join(known)})"
            name = f"{prefix}{k}"
            raise KarmaError(f"{where}: unknown key {name!r}{hint}")


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    if origin is tuple:
        return "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return _TYPE_WORDS.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, where: str, key: str) -> Any:
    """``value`` checked against the type ``tp`` (a section dataclass is parsed key by key)."""
    origin = typing.get_origin(tp)
    bad = KarmaError(f"{where}: {key}: expected {_describe(tp)}, got {value!r}")
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        members = typing.get_args(tp)
        if value is None:
            if type(None) in members:
                return None
            raise bad
        last: KarmaError | None = None
        for member in members:
            if member is type(None):
                continue
            try:
                return _coerce(value, member, where, key)
            except KarmaError as exc:
                last = exc
                if dataclasses.is_dataclass(member) and isinstance(value, Mapping):
                    raise  # the mapping was meant as this section: its own error is the useful one
        raise bad from last
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if origin is tuple:
        (item_type, _) = typing.get_args(tp)
        if isinstance(value, str) and item_type is str:
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise bad
        return tuple(_coerce(v, item_type, where, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        _, value_type = typing.get_args(tp)
        if not isinstance(value, Mapping):
            raise bad
        return {str(k): _coerce(v, value_type, where, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise bad
        return _parse_section(value, tp, where, key)
    raise TypeError(f"no parser for {tp!r}")  # pragma: no cover - a programming error


def _parse_section(data: Mapping[str, Any], cls: Any, where: str, key: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = [f for f in dataclasses.fields(cls) if f.init]
    _check_keys(data, [f.name for f in fields], where, key)
    kwargs = {}
    for f in fields:
        if f.name in data:
            kwargs[f.name] = _coerce(data[f.name], hints[f.name], where, f"{key}.{f.name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise KarmaError(f"{where}: {key}: missing key {f.name!r}")
    try:
        return cls(**kwargs)
    except KarmaError as exc:
        message = str(exc)
        if message.startswith(where):
            raise
        named = message.split(":", 1)[0] in {f.name for f in fields}
        raise KarmaError(f"{where}: {key}{'.' if named else ': '}{message}") from exc
