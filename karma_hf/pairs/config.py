"""``BuildConfig``: the one place the options of a build live.

``karma build`` fills it from its options, :func:`karma_hf.pairs.builder.build` from its keyword
arguments; the card's recorded command (:meth:`BuildConfig.to_command`) and the build report's
fields are rendered from it, so the same fact is never written twice.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from karma_hf.errors import KarmaError
from karma_hf.layout import (
    DEFAULT_FORM,
    DEFAULT_RLAIF_RECIPE,
    FORMS,
    RLAIF_RECIPES,
    config_name,
    parse_forms,
    parse_modes,
)
from karma_hf.layout import modes as registered_modes

DEFAULT_SOURCE = "openbmb/UltraFeedback"
DEFAULT_SCORES = "ultrafeedback-paper"
#: UltraFeedback's UltraLM-65B: §3.1 of the paper excludes its completions from the final dataset
#: ("its performance could not be accurately assessed"); every mode skips them unless
#: ``include_ultralm_65b``.
ULTRALM_65B = "ultralm-65b"


def public_name(spec: str) -> str:
    """What a card calls a source or score file: a Hub id or preset as is, a local path by its name.

    Absolute local paths would leak the builder's file system into a published card and point
    nowhere on the Hub.
    """
    path = Path(spec).expanduser()
    return path.name if (path.is_absolute() or path.exists()) and spec not in ("", ".") else spec


def check_test_size(value: Any) -> int | float:
    """``--test-size`` as ``datasets``' ``train_test_split`` reads it: a float in (0, 1) is a fraction
    of the distinct prompts (rounded up), an integer >= 1 a number of prompts; 0 holds out none."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise KarmaError(f"--test-size must be a count of prompts or a fraction in (0, 1), got {value!r}")
    if isinstance(value, float):
        if not (math.isfinite(value) and 0.0 < value < 1.0):
            hint = f" (for {int(value)} prompt(s) pass the integer {int(value)})" if value.is_integer() else ""
            raise KarmaError(f"--test-size {value}: a fraction must lie in (0, 1){hint}")
    elif value < 0:
        raise KarmaError(f"--test-size {value}: a count of prompts must be >= 0")
    return value


@dataclass(frozen=True)
class BuildConfig:
    """Every option of a build (see ``karma build --help`` for each)."""

    source: str = DEFAULT_SOURCE
    source_format: str = "auto"
    revision: str | None = None
    split: str = "train"
    scores: tuple[str, ...] = (DEFAULT_SCORES,)
    benchmarks: tuple[str, ...] = ()
    allow_missing: bool = False
    aliases: str | None = None
    modes: tuple[str, ...] | str = field(default_factory=registered_modes)
    tau: float = 0.1
    forms: tuple[str, ...] | str = (DEFAULT_FORM,)
    max_pairs_per_prompt: int | None = None
    seed: int = 42
    test_size: int | float = 2000
    rating: str = "aspects"
    rlaif_recipe: str = DEFAULT_RLAIF_RECIPE
    truthfulqa_questions: str | None = None
    include_ultralm_65b: bool = False
    ignore_unknown_models: bool = False
    strict: bool = False
    num_proc: int | None = None
    batch_size: int = 1000
    output: str | None = None
    overwrite: bool = False
    push_to: str | None = None
    private: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "modes", parse_modes(self.modes))
        object.__setattr__(self, "forms", parse_forms(self.forms))
        object.__setattr__(self, "scores", tuple(str(s) for s in self.scores))
        object.__setattr__(self, "benchmarks", tuple(self.benchmarks))
        if not 0.0 <= float(self.tau) <= 1.0:
            raise KarmaError(f"--tau must be within [0, 1], got {self.tau}")
        check_test_size(self.test_size)
        if self.max_pairs_per_prompt is not None:
            if isinstance(self.max_pairs_per_prompt, bool) or int(self.max_pairs_per_prompt) < 1:
                raise KarmaError(f"--max-pairs-per-prompt must be >= 1, got {self.max_pairs_per_prompt}")
            if "all" not in self.forms:
                raise KarmaError("--max-pairs-per-prompt applies to --form all only")
        karma_only = [f for f in self.forms if FORMS[f].karma_only]
        if karma_only and not [m for m in self.modes if m != "rlaif"]:
            raise KarmaError(
                f"--form {','.join(karma_only)} needs a KARMA mode (the rlaif baseline has no kinship order); "
                "add one to --modes"
            )
        if self.batch_size < 1:
            raise KarmaError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.num_proc is not None and self.num_proc < 1:
            raise KarmaError(f"--num-proc must be >= 1, got {self.num_proc}")
        if self.private and not self.push_to:
            raise KarmaError("--private needs --push-to")
        if self.rlaif_recipe not in RLAIF_RECIPES:
            raise KarmaError(f"--rlaif-recipe must be one of {', '.join(RLAIF_RECIPES)}, got {self.rlaif_recipe!r}")
        if self.truthfulqa_questions is not None and (self.rlaif_recipe != "h4" or "rlaif" not in self.modes):
            raise KarmaError("--truthfulqa-questions applies to the rlaif mode with --rlaif-recipe h4 only")

    @property
    def excluded_models(self) -> tuple[str, ...]:
        """Models whose completions no mode uses (UltraLM-65B, as in §3.1 of the paper, by default)."""
        return () if self.include_ultralm_65b else (ULTRALM_65B,)

    def configs(self) -> list[tuple[str, str, str]]:
        """``(config name, mode, form)`` of every config the build writes, forms first, then modes in
        canonical order; the rlaif baseline has no ``karma_only`` form (no kinship order)."""
        return [
            (config_name(mode, form), mode, form)
            for form in self.forms
            for mode in self.modes
            if not (FORMS[form].karma_only and mode == "rlaif")
        ]

    def replace(self, **changes: Any) -> BuildConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_command(self) -> str:
        """The ``karma build`` command that reproduces this build (local paths by file name only)."""
        parts = ["karma", "build", "--source", public_name(self.source)]
        if self.source_format != "auto":
            parts += ["--source-format", self.source_format]
        if self.revision:
            parts += ["--revision", self.revision]
        if self.split != "train":
            parts += ["--split", self.split]
        parts += [x for s in self.scores for x in ("--scores", public_name(s))]
        parts += [x for b in self.benchmarks for x in ("--benchmark", b)]
        if self.allow_missing:
            parts.append("--allow-missing")
        if self.aliases:
            parts += ["--aliases", public_name(self.aliases)]
        parts += [
            "--modes",
            ",".join(self.modes),
            "--tau",
            str(self.tau),
            "--seed",
            str(self.seed),
            "--test-size",
            str(self.test_size),
            "--rating",
            self.rating,
        ]
        if self.forms != (DEFAULT_FORM,):
            parts += ["--form", ",".join(self.forms)]
        if self.max_pairs_per_prompt is not None:
            parts += ["--max-pairs-per-prompt", str(self.max_pairs_per_prompt)]
        if "rlaif" in self.modes:
            parts += ["--rlaif-recipe", self.rlaif_recipe]
        if self.truthfulqa_questions:
            parts += ["--truthfulqa-questions", public_name(self.truthfulqa_questions)]
        if self.include_ultralm_65b:
            parts.append("--include-ultralm-65b")
        if self.ignore_unknown_models:
            parts.append("--ignore-unknown-models")
        if self.strict:
            parts.append("--strict")
        parts += ["--output", "DIR"]  # where a build goes is not part of what it is
        if self.push_to:
            parts += ["--push-to", self.push_to]
        return shlex.join(parts)
