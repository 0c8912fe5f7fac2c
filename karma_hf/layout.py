"""The KARMA-set contract: modes, splits, columns, drop reasons, file and shard names.

One place owns what a KARMA set *is*; the builder writes it, :mod:`karma_hf.karma_set` reads it,
the card, the Hub push, the report and the trainers check against it. Nothing here imports
anything heavier than the standard library (``output_schema`` imports pyarrow when called).

Modes are a registry: :func:`register_mode` adds one (a KARMA mode also needs a selector in
:mod:`karma_hf.kinship`, a baseline mode a decision in :mod:`karma_hf.pairs.decide`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from karma_hf.errors import KarmaError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa


@dataclass(frozen=True)
class Mode:
    """A selection mode: its config name in a KARMA set, what it does, and its kind.

    ``kind`` is ``"karma"`` (pairs chosen by kinship, labelled by S_pref; no annotation) or
    ``"baseline"`` (pairs chosen and labelled by the source's per-instance ratings).
    """

    name: str
    help: str
    kind: str = "karma"


_MODES: dict[str, Mode] = {}


def register_mode(name: str, help: str, *, kind: str = "karma") -> Mode:
    """Add a mode (or replace one of the same name); returns it. Order of registration is the
    canonical order of configs in a build."""
    if kind not in ("karma", "baseline"):
        raise ValueError(f"mode kind must be 'karma' or 'baseline', got {kind!r}")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"mode name {name!r} must be lowercase letters, digits and underscores")
    mode = Mode(name, help, kind)
    _MODES[name] = mode
    return mode


def unregister_mode(name: str) -> None:
    """Remove a registered mode (tests that register a toy mode clean up with this)."""
    _MODES.pop(name, None)


register_mode("score", "K_score: the two best models by S_pref that are kin (cosine >= tau)")
register_mode("sim", "K_sim: the kin pair with the highest cosine kinship")
register_mode(
    "score_sim", "K_(score,sim): the best model by S_pref with a kin partner, and its most similar kin partner"
)
register_mode(
    "rlaif",
    "baseline: instance-wise binarization by the source's per-instance AI ratings (recipe: --rlaif-recipe)",
    kind="baseline",
)

#: The baseline mode reports compare against.
BASELINE_MODE = "rlaif"

#: How the ``rlaif`` baseline binarizes (``--rlaif-recipe``): name -> what it does. The paper names
#: no recipe ("instance-wise scored RLAIF", Cui et al. 2023); ``h4`` is the default (our choice:
#: the binarization most papers mean by instance-wise UltraFeedback pairs).
RLAIF_RECIPES: dict[str, str] = {
    "h4": "HuggingFaceH4/ultrafeedback_binarized: chosen = highest overall_score (first in completion order), "
    "rejected = a seeded uniform random one of the other completions, ties kept, TruthfulQA rows dropped",
    "argilla": "argilla/ultrafeedback-binarized-preferences: chosen = best mean aspect rating, rejected = a "
    "seeded random strictly lower-rated completion, ties dropped",
}
DEFAULT_RLAIF_RECIPE = "h4"


def modes() -> tuple[str, ...]:
    """Every registered mode, in canonical order."""
    return tuple(_MODES)


def karma_modes() -> tuple[str, ...]:
    """The modes whose pairs come from kinship (the paper's K_score, K_sim, K_(score,sim), ...)."""
    return tuple(m.name for m in _MODES.values() if m.kind == "karma")


def get_mode(name: str) -> Mode:
    try:
        return _MODES[name]
    except KeyError as exc:
        raise KarmaError(f"unknown mode {name!r}; choose from {', '.join(_MODES)}") from exc


def mode_help(name: str) -> str:
    return get_mode(name).help


def order_modes(names: list[str] | tuple[str, ...]) -> list[str]:
    """Config names in canonical order: by form (``best`` first), then mode; names that are not a
    registered mode in a form follow, sorted."""
    forms = list(FORMS)

    def key(name: str) -> tuple[int, int, str]:
        mode, form = split_config_name(name)
        if mode in _MODES:
            return (forms.index(form), list(_MODES).index(mode), "")
        return (len(forms), 0, name)

    return sorted(dict.fromkeys(names), key=key)


def parse_modes(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"score,sim"`` or a list -> registered modes in canonical order; unknown names are an error."""
    items = [m.strip() for m in value.split(",")] if isinstance(value, str) else [str(m).strip() for m in value]
    chosen = tuple(dict.fromkeys(m for m in items if m))
    if not chosen:
        raise KarmaError(f"no --modes given; choose from {', '.join(_MODES)}")
    bad = [m for m in chosen if m not in _MODES]
    if bad:
        raise KarmaError(f"unknown mode(s) {', '.join(map(repr, bad))}; choose from {', '.join(_MODES)}")
    return tuple(m for m in _MODES if m in chosen)


# ------------------------------------------------------------------------------ pair forms
@dataclass(frozen=True)
class Form:
    """How a mode's decisions become rows (``karma build --form``): its name, what a row is, its
    splits, the columns TRL (or a listwise loss) needs, and whether baseline modes have it."""

    name: str
    help: str
    splits: tuple[str, ...]
    required: tuple[str, ...]
    karma_only: bool = False


FORMS: dict[str, Form] = {
    f.name: f
    for f in (
        Form(
            "best",
            "one pair per prompt: the mode's pick (train/test for DPO, train_sft for SFT)",
            ("train", "test", "train_sft"),
            ("prompt", "chosen", "rejected", "messages"),
        ),
        Form(
            "all",
            "every kin pair of the prompt's models (cosine >= tau, S_pref not tied), labelled by Eq. 3 and "
            "ordered by the mode's criterion; pair_rank 1 is the mode's pick",
            ("train", "test"),
            ("prompt", "chosen", "rejected", "pair_rank"),
            karma_only=True,
        ),
        Form(
            "ranked",
            "one row per prompt with all its scored completions ordered by S_pref (listwise losses)",
            ("train", "test"),
            ("prompt", "completions", "models", "s_pref"),
            karma_only=True,
        ),
        Form(
            "unpaired",
            "TRL's unpaired preference format (prompt, completion, label) for KTO: the mode's chosen "
            "completion is desirable, its rejected one undesirable (each pair's two rows side by side)",
            ("train", "test"),
            ("prompt", "completion", "label"),
        ),
    )
}
DEFAULT_FORM = "best"


def parse_forms(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"best,all"`` or a list -> forms in canonical order; unknown names are an error."""
    items = [f.strip() for f in value.split(",")] if isinstance(value, str) else [str(f).strip() for f in value]
    chosen = tuple(dict.fromkeys(f for f in items if f))
    if not chosen:
        raise KarmaError(f"no --form given; choose from {', '.join(FORMS)}")
    bad = [f for f in chosen if f not in FORMS]
    if bad:
        raise KarmaError(f"unknown form(s) {', '.join(map(repr, bad))}; choose from {', '.join(FORMS)}")
    return tuple(f for f in FORMS if f in chosen)


def config_name(mode: str, form: str = DEFAULT_FORM) -> str:
    """The config (and folder) of a mode in a form: ``sim`` for the best form, ``sim-all`` otherwise."""
    return mode if form == DEFAULT_FORM else f"{mode}-{form}"


def split_config_name(name: str) -> tuple[str, str]:
    """``"sim-all"`` -> ``("sim", "all")``; a name without a known form suffix is the best form."""
    mode, sep, form = name.rpartition("-")
    if sep and form in FORMS and form != DEFAULT_FORM:
        return mode, form
    return name, DEFAULT_FORM


def config_form(name: str) -> Form:
    return FORMS[split_config_name(name)[1]]


# ------------------------------------------------------------------------------ splits and files
#: Splits of every config: pairs for DPO (``train``, ``test``) and ``train_sft`` (same rows as ``train``).
SPLITS: tuple[str, ...] = ("train", "test", "train_sft")
#: The splits that hold pairs (the report pools them; ``train_sft`` repeats ``train``).
PAIR_SPLITS: tuple[str, ...] = ("train", "test")
#: Splits whose rows are another split's (same files): ``train_sft`` is declared on ``train``'s shards,
#: so a set stores (and a push uploads) those bytes once; SFT reads their ``messages`` column.
SPLIT_FILES: dict[str, str] = {"train_sft": "train"}


def shard_split(split: str) -> str:
    """The split whose shard files hold ``split``'s rows (``train_sft`` -> ``train``)."""
    return SPLIT_FILES.get(split, split)


CARD_FILE = "README.md"
REPORT_FILE = "build_report.json"
SHARD_RE = re.compile(r"(?P<split>[a-z_]+)-(?P<i>\d{5})-of-(?P<n>\d{5})\.parquet")


def shard_name(split: str, index: int = 0, count: int = 1) -> str:
    """``train-00000-of-00001.parquet``: the Hub's shard naming, which ``load_dataset`` understands."""
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


# ------------------------------------------------------------------------------ columns
#: Columns TRL needs per split: conversational preference pairs, or ``messages`` for SFT.
TRL_COLUMNS: dict[str, tuple[str, ...]] = {
    "train": ("prompt", "chosen", "rejected"),
    "test": ("prompt", "chosen", "rejected"),
    "train_sft": ("messages",),
}
#: The KARMA metadata of each pair (what the report and the training statistics read).
PAIR_COLUMNS: tuple[str, ...] = (
    "chosen",
    "rejected",
    "chosen_model",
    "rejected_model",
    "kinship",
    "s_pref_chosen",
    "s_pref_rejected",
    "score_chosen",
    "score_rejected",
)
#: Per-row columns the training callback's kinship statistics read.
STATS_COLUMNS: tuple[str, ...] = ("kinship", "chosen_model", "rejected_model")


def _message_type() -> pa.DataType:
    import pyarrow as pa

    return pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def form_schema(form: str = DEFAULT_FORM) -> pa.Schema:
    """The columns of every split of a config in ``form`` (``datasets`` needs one schema per config)."""
    import pyarrow as pa

    message = _message_type()
    if form == "best":
        return output_schema()
    if form == "all":
        return output_schema().append(pa.field("pair_rank", pa.int32()))
    if form == "ranked":
        return pa.schema(
            [
                ("prompt", message),
                ("completions", pa.list_(message)),
                ("models", pa.list_(pa.string())),
                ("s_pref", pa.list_(pa.float64())),
                ("kinship_to_best", pa.list_(pa.float64())),
                ("scores", pa.list_(pa.float64())),
                ("prompt_id", pa.string()),
                ("source", pa.string()),
            ]
        )
    if form == "unpaired":  # TRL's unpair_preference_dataset of the best form, less messages
        base = output_schema()
        pair_meta = [
            base.field(name) for name in base.names if name not in ("prompt", "chosen", "rejected", "messages")
        ]
        return pa.schema([("prompt", message), ("completion", message), ("label", pa.bool_()), *pair_meta])
    raise KarmaError(f"unknown form {form!r}; choose from {', '.join(FORMS)}")


def output_schema() -> pa.Schema:
    """The columns of every split of every mode in the ``best`` form (``datasets`` needs one schema
    per config)."""
    import pyarrow as pa

    message = _message_type()
    return pa.schema(
        [
            ("prompt", message),
            ("chosen", message),
            ("rejected", message),
            ("messages", message),
            ("prompt_id", pa.string()),
            ("chosen_model", pa.string()),
            ("rejected_model", pa.string()),
            ("kinship", pa.float64()),
            ("s_pref_chosen", pa.float64()),
            ("s_pref_rejected", pa.float64()),
            ("score_chosen", pa.float64()),
            ("score_rejected", pa.float64()),
            ("source", pa.string()),
        ]
    )


# ------------------------------------------------------------------------------ drop reasons
#: Why a source row produced no pair, in the order reports list them (which reason wins when several
#: apply: :mod:`karma_hf.pairs.decide`).
DROP_REASONS: tuple[str, ...] = (
    "fewer_than_two_scored",
    "empty_response",
    "no_kin_above_tau",
    "tie",
    "unknown_model",
    "malformed",
    "excluded_source",
    "truthfulqa_copy",
)
DROP_REASON_HELP: dict[str, str] = {
    "malformed": "the row breaks the source schema (missing instruction/model, bad rating...)",
    "fewer_than_two_scored": "fewer than two completions of scored models (rlaif: of known models with a rating); "
    "completions of excluded models (ultralm-65b by default) do not count",
    "unknown_model": "fewer than two completions left after skipping unknown models",
    "empty_response": "two or more candidates, but fewer than two non-empty responses",
    "no_kin_above_tau": "no candidate pair has kinship >= tau",
    "tie": "the pair has equal S_pref (rlaif argilla: all candidates have the same rating)",
    "excluded_source": "rlaif h4 only: the row's source label is truthful_qa (H4 drops TruthfulQA)",
    "truthfulqa_copy": "rlaif h4 only: the instruction is a question of --truthfulqa-questions (a TruthfulQA copy)",
}
