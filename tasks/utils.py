"""Helpers for the karma_* lm-eval tasks: data loading, prompts, answer extraction.

lm-eval loads this file by path (``!function utils.<name>`` in the YAMLs); it is also
importable as ``karma_hf.tasks.utils``. Everything here is plain Python on dicts, except
the loader, which imports ``datasets``.

Every multiple-choice doc is normalised by its ``process_*`` function to three columns
(the source's own columns stay alongside):

* ``question``: the text shown after "Question:",
* ``options``: the option texts, shown as (A), (B), ... in order,
* ``gold``: the letter of the right option.

The extractors read ``len(doc["options"])`` so the valid letters are the item's own
(A-D for MMLU and HellaSwag, up to A-J for MMLU-Pro, up to A-E for ARC).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Any

from karma_hf.errors import KarmaError
from karma_hf.evaluation import nltk_data
from karma_hf.evaluation.data import data_dir_from_env, get_source, require_local

LETTERS = string.ascii_uppercase
INVALID = "[invalid]"

#: The 19 MMLU subjects lm-eval's ``mmlu`` groups under ``stem``.
MMLU_STEM_SUBJECTS = frozenset({
    "abstract_algebra", "anatomy", "astronomy", "college_biology", "college_chemistry",
    "college_computer_science", "college_mathematics", "college_physics", "computer_security",
    "conceptual_physics", "electrical_engineering", "elementary_mathematics",
    "high_school_biology", "high_school_chemistry", "high_school_computer_science",
    "high_school_mathematics", "high_school_physics", "high_school_statistics",
    "machine_learning",
})

# Make a cached punkt_tab visible before lm-eval's IFEval module is imported (that import
# otherwise tries a network download). Cheap and silent; karma_ifeval's loader re-checks
# and fails loudly if the resource is really unavailable.
nltk_data.prepare_punkt_tab()


# --------------------------------------------------------------------------- data loading

def load_source(karma_source: str, **_metadata: Any):
    """``custom_dataset`` for every karma task: the source's splits as a ``DatasetDict``.

    With ``KARMA_DATA_DIR`` set, reads ``$KARMA_DATA_DIR/<owner>__<name>[/<config>]/<split>.jsonl``
    (see :mod:`karma_hf.evaluation.data`); a missing file raises a KarmaError naming it.
    Otherwise reads the Hub dataset (cached by ``datasets``; honours HF_DATASETS_OFFLINE).
    lm-eval also passes the task metadata and model arguments; they are ignored.
    """
    import datasets

    src = get_source(karma_source)
    root = data_dir_from_env()
    if root is not None:
        files = require_local(root, karma_source)
        return datasets.load_dataset("json", data_files={k: str(v) for k, v in files.items()})
    return datasets.DatasetDict({
        split: datasets.load_dataset(src.repo, src.config, split=split) for split in src.splits
    })


def load_ifeval(karma_source: str = "ifeval", **metadata: Any):
    """``custom_dataset`` of karma_ifeval: checks punkt_tab first (fails before generating).

    Also seeds ``langdetect`` (used by IFEval's language and case checkers, random unless
    seeded), so the same responses always get the same scores.
    """
    nltk_data.ensure_punkt_tab()
    try:
        from langdetect import DetectorFactory

        DetectorFactory.seed = 0
    except ImportError:  # lm-eval's IFEval checker reports the missing package itself
        pass
    return load_source(karma_source, **metadata)


# --------------------------------------------------------------------------- process_docs

# Recompute on every load, in memory: the processing is cheap, and a cache keyed on the
# function's fingerprint would not see edits to the helpers it calls.
_FRESH = {"keep_in_memory": True, "load_from_cache_file": False}


def _with_letter(options: Sequence[str], index: int, item: str) -> str:
    if not 0 <= index < len(options):
        raise KarmaError(f"{item}: answer index {index} is outside its {len(options)} options")
    return LETTERS[index]


def _mmlu_row(doc: dict) -> dict:
    options = list(doc["choices"])
    return {"question": doc["question"].strip(), "options": options,
            "gold": _with_letter(options, int(doc["answer"]), f"mmlu {doc['subject']} item")}


def process_mmlu_stem(dataset):
    """cais/mmlu (all) -> the 19 STEM subjects, normalised."""
    stem = dataset.filter(lambda d: d["subject"] in MMLU_STEM_SUBJECTS, **_FRESH)
    return stem.map(_mmlu_row, **_FRESH)


def _mmlu_pro_row(doc: dict) -> dict:
    # A few MMLU-Pro items pad their option list with "N/A"; those are not shown.
    kept = [i for i, o in enumerate(doc["options"]) if str(o).strip() != "N/A"]
    answer = int(doc["answer_index"])
    if answer not in kept:
        raise KarmaError(f"MMLU-Pro question_id {doc['question_id']}: the answer is an 'N/A' option")
    options = [doc["options"][i] for i in kept]
    return {"question": doc["question"].strip(), "options": options,
            "gold": _with_letter(options, kept.index(answer), f"MMLU-Pro question_id {doc['question_id']}")}


def process_mmlu_pro(dataset):
    """TIGER-Lab/MMLU-Pro, normalised (3 to 10 options)."""
    return dataset.map(_mmlu_pro_row, **_FRESH)


def _arc_row(doc: dict) -> dict:
    labels = [str(label).strip() for label in doc["choices"]["label"]]
    key = str(doc["answerKey"]).strip()
    if key not in labels:
        raise KarmaError(f"ARC item {doc['id']}: answerKey {key!r} is not one of its labels {labels}")
    options = list(doc["choices"]["text"])
    # Labels are "A".."E" or "1".."5"; options are re-lettered by position either way.
    return {"question": doc["question"].strip(), "options": options,
            "gold": _with_letter(options, labels.index(key), f"ARC item {doc['id']}")}


def process_arc(dataset):
    """allenai/ai2_arc (either config), normalised; numeric labels 1-5 become A-E."""
    return dataset.map(_arc_row, **_FRESH)


def _clean_hellaswag(text: str) -> str:
    """WikiHow contexts carry markup such as ``[title]`` / ``[header]`` / ``[step]``."""
    text = re.sub(r"\s*\[title\]\s*", ". ", text.strip())
    text = re.sub(r"\[[^\]]*\]", " ", text)
    return re.sub(r"\s+", " ", text).strip().lstrip(". ")


def _hellaswag_row(doc: dict) -> dict:
    context = f"{doc['ctx_a']} {doc['ctx_b'].capitalize()}".strip()
    question = ("Which option is the most plausible continuation of this text?\n"
                f"{_clean_hellaswag(doc['activity_label'] + ': ' + context)}")
    options = [_clean_hellaswag(e) for e in doc["endings"]]
    label = str(doc["label"]).strip()
    if not label.isdigit():
        raise KarmaError(f"HellaSwag ind {doc['ind']}: label {label!r} is not an ending index "
                         "(the unlabelled test split cannot be scored; use validation)")
    return {"question": question, "options": options,
            "gold": _with_letter(options, int(label), f"HellaSwag ind {doc['ind']}")}


def process_hellaswag(dataset):
    """Rowan/hellaswag: the context becomes the question, the four endings options A-D."""
    return dataset.map(_hellaswag_row, **_FRESH)


# --------------------------------------------------------------------------- prompts

def doc_to_text(doc: dict) -> str:
    """The question and its lettered options, ending with ``Answer:``."""
    lines = [f"Question: {doc['question']}", "Options:"]
    lines += [f"({LETTERS[i]}) {str(opt).strip()}" for i, opt in enumerate(doc["options"])]
    lines.append("Answer:")
    return "\n".join(lines)


# --------------------------------------------------------------------------- extraction

_ANSWER_IS = re.compile(
    r"(?i:answer\s+is)\s*:?\s*(?:\*\*|__)?\s*(?:\(([A-Za-z])\)|\[([A-Za-z])\]|([A-Z])(?![A-Za-z0-9]))")
_ANSWER_COLON = re.compile(
    r"(?i:answer|option|choice)\s*[:：]\s*(?:\*\*|__)?\s*\(?([A-Za-z])\)?(?![A-Za-z0-9])")
_OPTION_WORD = re.compile(
    r"(?i:answer|option|choice)\s+(?:(?i:is)\s+)?(?:\*\*|__)?(?:\(([A-Za-z])\)|([A-Z]))(?![A-Za-z0-9])")
_MARKED = re.compile(
    r"\*\*\s*\(?([A-Za-z])\)?[.:)]?\s*\*\*"            # **C**, **(C)**, **C.**
    r"|\(([A-Z])\)"                                     # (C)
    r"|(?m:^[ \t>*-]*([A-Z])[.):](?=\s|$))")            # "C." / "C)" at a line start
_BARE = re.compile(r"(?<![A-Za-z0-9'’])([A-Z])(?![A-Za-z0-9'’])")
# "A" and "I" are also words. A bare one followed by a lowercase word is read as the
# article / pronoun unless that word is one a letter answer is commonly followed by.
_WORD_AFTER = re.compile(r"\s+([a-z]+)")
_LETTER_VERBS = frozenset({"is", "was", "and", "or", "seems", "looks", "appears", "because", "since"})
_ONLY_LETTER = re.compile(r"^[\s*_(\[]*([A-Za-z])[\s*_)\].:]*$")


def _letters_of(doc: dict | None) -> str:
    n = len(doc["options"]) if doc and "options" in doc else 10
    return LETTERS[:n]


def _last_in(matches: list[str], allowed: str) -> str | None:
    for letter in reversed(matches):
        if letter and letter.upper() in allowed:
            return letter.upper()
    return None


def _groups(pattern: re.Pattern, text: str) -> list[str]:
    return [next((g for g in m.groups() if g), "") for m in pattern.finditer(text)]


def extract_strict(text: str, allowed: str = LETTERS[:10]) -> str:
    """The letter of the last "answer is (X)" statement (X within ``allowed``), else ``[invalid]``.

    Accepts "The answer is (C)", "the answer is: **(c)**", "The best answer is C"; a bare
    letter must be upper case ("the answer is a" is an article, not option A).
    """
    return _last_in(_groups(_ANSWER_IS, text or ""), allowed) or INVALID


def extract_flexible(text: str, allowed: str = LETTERS[:10]) -> str:
    """Best-effort letter: the strict form, else "Answer: X" / "option X", else a marked
    letter ("**C**", "(C)", "C." at a line start), else the last standalone capital letter.

    Within each tier the last occurrence wins (models tend to end with their verdict).
    Only letters within ``allowed`` count. Returns ``[invalid]`` when nothing fits.
    """
    text = text or ""
    strict = extract_strict(text, allowed)
    if strict != INVALID:
        return strict
    only = _ONLY_LETTER.match(text)
    if only and only.group(1).upper() in allowed:
        return only.group(1).upper()
    for pattern in (_ANSWER_COLON, _OPTION_WORD, _MARKED):
        found = _last_in(_groups(pattern, text), allowed)
        if found:
            return found
    bare = []
    for m in _BARE.finditer(text):
        letter = m.group(1)
        if letter in "AI":
            after = _WORD_AFTER.match(text, m.end())
            if after and after.group(1) not in _LETTER_VERBS:
                continue
        bare.append(letter)
    return _last_in(bare, allowed) or INVALID


def strict_match(resps: Sequence[Sequence[str]], docs: Sequence[dict]) -> list[list[str]]:
    """lm-eval ``custom`` filter: :func:`extract_strict` with each doc's own letter range."""
    return [[extract_strict(r, _letters_of(doc)) for r in rs] for rs, doc in zip(resps, docs)]


def flexible_extract(resps: Sequence[Sequence[str]], docs: Sequence[dict]) -> list[list[str]]:
    """lm-eval ``custom`` filter: :func:`extract_flexible` with each doc's own letter range."""
    return [[extract_flexible(r, _letters_of(doc)) for r in rs] for rs, doc in zip(resps, docs)]
