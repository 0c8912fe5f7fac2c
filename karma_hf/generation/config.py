"""What a ``karma generate`` run is: the pool (:class:`ModelSpec`), decoding (:class:`SamplingSettings`)
and the run itself (:class:`GenerateConfig`).

Models are given exactly as for ``karma eval``: a backend (``--model hf|vllm``) and one lm-eval
``model_args`` string per model (``pretrained=org/name,dtype=bfloat16``), repeated or read from a
models file (one ``model_args`` per line, :func:`karma_hf.evaluation.run.read_models_file`), so
one pool description serves evaluation and generation. A YAML / JSON pool file may also give
per-model decoding settings and names (:func:`read_pool_file`)::

    model: hf                        # the default backend
    generation: {max_new_tokens: 256}  # defaults for every model
    models:
      - pretrained=HuggingFaceTB/SmolLM2-135M-Instruct,dtype=float32
      - model_args: pretrained=google/gemma-3-270m
        name: gemma-3-270m           # the name in the output (default: the pretrained value)
        generation: {temperature: 0.7, top_p: 0.9, seed: 1}

A model's name defaults to its ``pretrained`` value, which is also the name lm-eval writes into its
results (``model_name``), so ``karma build --scores RESULTS --source GENERATED`` matches them
without an alias map.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from karma_hf.errors import KarmaError

BACKENDS: tuple[str, ...] = ("hf", "vllm")
#: lm-eval spellings of the two backends.
_BACKEND_ALIASES = {"hf": "hf", "hf-auto": "hf", "huggingface": "hf", "vllm": "vllm"}
SETTING_KEYS: tuple[str, ...] = ("max_new_tokens", "temperature", "top_p", "seed")


@dataclass(frozen=True)
class SamplingSettings:
    """Decoding settings, recorded with every response. ``temperature`` 0 = greedy (the default)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.max_new_tokens) < 1:
            raise KarmaError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if float(self.temperature) < 0:
            raise KarmaError(f"temperature must be >= 0 (0 = greedy), got {self.temperature}")
        if not 0.0 < float(self.top_p) <= 1.0:
            raise KarmaError(f"top_p must be in (0, 1], got {self.top_p}")
        object.__setattr__(self, "max_new_tokens", int(self.max_new_tokens))
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "top_p", float(self.top_p))
        object.__setattr__(self, "seed", int(self.seed))

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0

    def updated(self, values: Mapping[str, Any] | None, where: str) -> SamplingSettings:
        """These settings with ``values`` (a ``generation:`` mapping) applied; unknown keys are an error."""
        if not values:
            return self
        if not isinstance(values, Mapping):
            raise KarmaError(f"{where}: generation must be a mapping of {', '.join(SETTING_KEYS)}")
        unknown = sorted(set(values) - set(SETTING_KEYS))
        if unknown:
            raise KarmaError(
                f"{where}: unknown generation setting(s) {', '.join(unknown)}; known: {', '.join(SETTING_KEYS)}"
            )
        try:
            return dataclasses.replace(self, **dict(values))
        except (TypeError, ValueError) as exc:
            raise KarmaError(f"{where}: bad generation setting ({exc})") from exc

    def record(self, backend: str, chat_template: bool) -> str:
        """The ``generation_config`` JSON string stored with each response (sorted keys, no spaces)."""
        data = {**dataclasses.asdict(self), "do_sample": self.do_sample, "backend": backend}
        data["chat_template"] = bool(chat_template)
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class ModelSpec:
    """One model of the pool: its output name, backend, lm-eval ``model_args`` and decoding settings."""

    name: str
    backend: str
    model_args: str
    settings: SamplingSettings = field(default_factory=SamplingSettings)

    @property
    def args(self) -> dict[str, str]:
        from karma_hf.evaluation.run import _model_args_dict

        return _model_args_dict(self.model_args)

    @property
    def pretrained(self) -> str:
        return self.args.get("pretrained") or self.args.get("model") or ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "model_args": self.model_args,
            "generation": dataclasses.asdict(self.settings),
        }


def backend_name(model: str) -> str:
    try:
        return _BACKEND_ALIASES[model]
    except KeyError as exc:
        raise KarmaError(f"--model {model!r}: karma generate runs hf or vllm models") from exc


def make_spec(
    model_args: str, *, backend: str = "hf", settings: SamplingSettings | None = None, name: str | None = None
) -> ModelSpec:
    """A :class:`ModelSpec` from lm-eval ``model_args`` (``pretrained=`` is required)."""
    from karma_hf.evaluation.run import _model_args_dict

    args = _model_args_dict(model_args)
    pretrained = args.get("pretrained") or args.get("model")
    if not pretrained:
        raise KarmaError(f"--model_args {model_args!r} has no pretrained=<path or Hub id>")
    return ModelSpec(
        name=name or pretrained,
        backend=backend_name(backend),
        model_args=model_args,
        settings=settings or SamplingSettings(),
    )


def read_pool_file(
    path: str | Path, *, backend: str = "hf", settings: SamplingSettings | None = None
) -> list[ModelSpec]:
    """Models from a file: YAML / JSON (``.yaml``, ``.yml``, ``.json``, format in the module
    docstring) or text (one ``model_args`` per line, as ``karma eval --models-file`` reads)."""
    from karma_hf.evaluation.run import read_models_file

    file = Path(path)
    base = settings or SamplingSettings()
    if file.suffix.lower() not in (".yaml", ".yml", ".json"):
        return [make_spec(m, backend=backend, settings=base) for m in read_models_file(file)]
    if not file.is_file():
        raise KarmaError(f"models file not found: {path}")
    import yaml

    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise KarmaError(f"{file}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from exc
    if isinstance(data, list):
        data = {"models": data}
    if not isinstance(data, Mapping) or not isinstance(data.get("models"), list):
        raise KarmaError(f"{file}: expected a 'models:' list (see `karma generate --help`)")
    return pool_from_mapping(data, where=str(file), backend=backend, settings=base)


def pool_from_mapping(
    data: Mapping[str, Any], *, where: str, backend: str = "hf", settings: SamplingSettings | None = None
) -> list[ModelSpec]:
    """Models from a parsed pool mapping (``model``, ``generation``, ``models``); shared with ``karma run``."""
    default_backend = str(data.get("model", backend))
    base = (settings or SamplingSettings()).updated(data.get("generation"), f"{where}: generation")
    specs = []
    for i, entry in enumerate(data.get("models") or []):
        at = f"{where}: models[{i}]"
        if isinstance(entry, str):
            specs.append(make_spec(entry, backend=default_backend, settings=base))
            continue
        if not isinstance(entry, Mapping) or not isinstance(entry.get("model_args"), str):
            raise KarmaError(f"{at}: expected a model_args string or a mapping with model_args")
        unknown = sorted(set(entry) - {"model_args", "name", "model", "generation"})
        if unknown:
            raise KarmaError(f"{at}: unknown key(s) {', '.join(unknown)} (known: model_args, name, model, generation)")
        specs.append(
            make_spec(
                entry["model_args"],
                backend=str(entry.get("model", default_backend)),
                settings=base.updated(entry.get("generation"), at),
                name=str(entry["name"]) if entry.get("name") else None,
            )
        )
    check_pool(specs)
    return specs


def check_pool(specs: Sequence[ModelSpec]) -> None:
    if not specs:
        raise KarmaError("no model given: pass --model_args (repeatable) or --models-file")
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise KarmaError(f"model {spec.name!r} is given twice; give each model once (or a distinct name)")
        seen.add(spec.name)


@dataclass(frozen=True)
class GenerateConfig:
    """Everything that decides a run's output (its hash guards resuming into an existing folder).

    ``per_prompt``: how many models answer each prompt (a seeded choice per prompt), None = all;
    ``shard_size``: prompts per block (work is sharded by model and block); ``batch_size``: prompts
    per forward pass of the HF backend (part of the hash: padding changes greedy outputs at the
    last bit).
    """

    models: tuple[ModelSpec, ...]
    output: str
    per_prompt: int | None = None
    seed: int = 0
    shard_size: int = 64
    batch_size: int = 8
    device: str | None = None

    def __post_init__(self) -> None:
        check_pool(self.models)
        if self.per_prompt is not None and self.per_prompt < 1:
            raise KarmaError(f"--per-prompt must be >= 1, got {self.per_prompt}")
        if self.shard_size < 1:
            raise KarmaError(f"--shard-size must be >= 1, got {self.shard_size}")
        if self.batch_size < 1:
            raise KarmaError(f"--batch-size must be >= 1, got {self.batch_size}")

    def fingerprint(self, prompts_digest: str) -> str:
        """SHA-256 of what decides the output: prompts, models, settings, assignment, sharding, batching."""
        data = {
            "prompts": prompts_digest,
            "models": [m.to_dict() for m in self.models],
            "per_prompt": self.per_prompt,
            "seed": self.seed,
            "shard_size": self.shard_size,
            "batch_size": self.batch_size,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
