"""The training-stage registry: one entry per TRL trainer ``karma train`` can run.

A stage names TRL's config and trainer classes (imported lazily, so ``karma --help`` stays fast)
and how a KARMA split is shaped for that trainer. Built-in stages live one per module
(:mod:`karma_hf.train.sft`, :mod:`karma_hf.train.dpo`, :mod:`karma_hf.train.kto`,
:mod:`karma_hf.train.orpo`, :mod:`karma_hf.train.reward`); add one with :func:`register_stage`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from karma_hf.errors import KarmaError

BUILTIN_MODULES: tuple[str, ...] = (
    "karma_hf.train.sft",
    "karma_hf.train.dpo",
    "karma_hf.train.kto",
    "karma_hf.train.orpo",
    "karma_hf.train.reward",
)


@dataclass(frozen=True)
class Stage:
    """``karma train <name>``: ``config_class()`` / ``trainer_class()`` return TRL's classes;
    ``prepare(dataset, split_name)`` shapes a KARMA split for the trainer.

    Optional: ``prepare_train(dataset, split_name, parsed_args)`` shapes the *train* split when it
    needs the run's arguments (seed, batch size, ``karma_order``; else ``prepare`` is used), and
    ``check_args(parsed_args)`` refuses or adjusts arguments the stage cannot honour (called by
    :func:`karma_hf.train.args.parse_args` and again by
    :func:`karma_hf.train.order.prepare_train_split`, so it must be idempotent)."""

    name: str
    help: str
    config_class: Callable[[], type]
    trainer_class: Callable[[], type]
    prepare: Callable[[Any, str], Any]
    prepare_train: Callable[[Any, str, Any], Any] | None = None
    check_args: Callable[[Any], None] | None = None


_STAGES: dict[str, Stage] = {}
_loaded = False


def _ensure_builtins() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)


def register_stage(stage: Stage) -> Stage:
    _STAGES[stage.name] = stage
    return stage


def unregister_stage(name: str) -> None:
    _STAGES.pop(name, None)


def stage_names() -> tuple[str, ...]:
    _ensure_builtins()
    return tuple(_STAGES)


def get_stage(name: str) -> Stage:
    _ensure_builtins()
    try:
        return _STAGES[name]
    except KeyError as exc:
        raise KarmaError(f"unknown training stage {name!r}; choose one of {', '.join(_STAGES)}") from exc


def stage_of_config(config: Any) -> str:
    """The stage whose TRL config class ``config`` is an instance of (else the class name)."""
    _ensure_builtins()
    for stage in _STAGES.values():
        try:
            if type(config) is stage.config_class():
                return stage.name
        except ImportError:  # pragma: no cover - a stage whose trainer is not installed
            continue
    return type(config).__name__
