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
MMLU_STEM_SUBJECTS = frozenset(
    {
        "abstract_algebra",
        "anatomy",
        "astronomy",
        "college_biology",
        "college_chemistry",
        "college_computer_science",
        "college_mathematics",
        "college_physics",
        "computer_security",
        "conceptual_physics",
        "electrical_engineering",
        "elementary_mathematics",
        "high_school_biology",
        "high_school_chemistry",
        "high_school_computer_science",
        "high_school_mathematics",
        "high_school_physics",
        "high_school_statistics",
        "machine_learning",
    }
)

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
    return datasets.DatasetDict(
        {split: datasets.load_dataset(src.repo, src.config, split=split) for split in src.splits}
    )


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
    return {
        "question": doc["question"].strip(),
        "options": options,
        "gold": _with_letter(options, int(doc["answer"]), f"mmlu {doc['subject']} item"),
    }


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
    return {
        "question": doc["question"].strip(),
        "options": options,
        "gold": _with_letter(options, kept.index(answer), f"MMLU-Pro question_id {doc['question_id']}"),
    }


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
    return {
        "question": doc["question"].strip(),
        "options": options,
        "gold": _with_letter(options, labels.index(key), f"ARC item {doc['id']}"),
    }


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
    question = (
        "Which option is the most plausible continuation of this text?\n"
        f"{_clean_hellaswag(doc['activity_label'] + ': ' + context)}"
    )
    options = [_clean_hellaswag(e) for e in doc["endings"]]
    label = str(doc["label"]).strip()
    if not label.isdigit():
        raise KarmaError(
            f"HellaSwag ind {doc['ind']}: label {label!r} is not an ending index "
            "(the unlabelled test split cannot be scored; use validation)"
        )
    return {
        "question": question,
        "options": options,
        "gold": _with_letter(options, int(label), f"HellaSwag ind {doc['ind']}"),
    }


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


# --------------------------------------------------------------------------- chain of thought
#
# The karma-cot-* tasks follow MMLU-Pro's evaluation framework (TIGER-Lab's evaluate_from_*
# scripts; lm-eval's mmlu_pro v3.1): a header naming the subject, up to five worked examples
# of the *same* subject / category from the source's few-shot split, then the question, the
# options as "A. ...", and "Answer: Let's think step by step.". lm-eval's own few-shot
# sampler cannot pick examples per item (it is not given the item when the few-shot split
# differs from the test split), so the loader tags every item with its subject and
# :func:`doc_to_text_cot` prepends that subject's examples; the tasks set num_fewshot: 0.
#
# Where the worked examples' reasoning comes from:
#   MMLU-Pro  the validation split's own ``cot_content`` (5 per category);
#   MMLU      the dev split (5 per subject) with the chain-of-thought-hub rationales that
#             lm-eval ships for those very dev questions (lm_eval/tasks/mmlu/flan_cot_fewshot/
#             _cot_prompts.json; matched by question text; an example without one shows its
#             answer only);
#   ARC, HellaSwag  no rationales exist: zero-shot chain of thought (instruction + cue only),
#             rather than examples that answer without reasoning or reasoning we wrote.

COT_SHOTS = 5
COT_CUE = "Answer: Let's think step by step."


class _CotSource:
    """How one source becomes chain-of-thought prompts."""

    def __init__(self, row: Any, subject: Any, words: Any, ident: Any, rationale: Any, keep: Any = None) -> None:
        self.row = row  # source row -> normalised {question, options, gold}
        self.subject = subject  # source row -> subject key; None: zero-shot (no examples)
        self.words = words  # subject key -> words for the header
        self.ident = ident  # (few-shot row, its index) -> id recorded in cot_shot_ids
        self.rationale = rationale  # few-shot row -> its reasoning text, or None
        self.keep = keep  # eval row -> worth tagging (None: all)


def _mmlu_pro_rationale(doc: dict) -> str | None:
    text = str(doc.get("cot_content") or "").strip()
    text = re.sub(r"^A:\s*", "", text)
    return text or None


def _norm_question(text: str) -> str:
    return " ".join(re.sub(r"\W+", " ", str(text)).lower().split())


_MEMO: dict[tuple, Any] = {}


def _mmlu_cot_hub() -> dict[tuple[str, str], str]:
    """(subject, normalised question) -> rationale, from lm-eval's flan_cot_fewshot prompts."""
    if ("cot-hub",) in _MEMO:
        return _MEMO[("cot-hub",)]
    import json
    import warnings
    from importlib.util import find_spec
    from pathlib import Path

    out: dict[tuple[str, str], str] = {}
    _MEMO[("cot-hub",)] = out
    spec = find_spec("lm_eval")
    path = Path(next(iter(spec.submodule_search_locations or ["."])) if spec else ".")
    path = path / "tasks" / "mmlu" / "flan_cot_fewshot" / "_cot_prompts.json"
    if not path.is_file():
        warnings.warn(f"{path} not found: karma-cot-mmlu_stem examples show their answers only", stacklevel=2)
        return out
    for subject, prompt in json.loads(path.read_text(encoding="utf-8")).items():
        for block in prompt.split("\n\nQ: ")[1:]:
            question, _, rest = block.partition("\n(A) ")
            _, _, rationale = rest.partition("\nA: ")
            if rationale.strip():
                out[(subject, _norm_question(question))] = rationale.strip()
    return out


def _mmlu_rationale(doc: dict) -> str | None:
    rationale = _mmlu_cot_hub().get((doc["subject"], _norm_question(doc["question"])))
    if rationale is None:
        return None
    letter = LETTERS[int(doc["answer"])]
    # only a rationale that ends on this item's own answer letter
    return rationale if extract_strict(rationale, LETTERS[: len(doc["choices"])]) == letter else None


_COT_SOURCES: dict[str, _CotSource] = {
    "mmlu": _CotSource(
        _mmlu_row,
        lambda d: d["subject"],
        lambda s: s.replace("_", " "),
        lambda d, i: f"dev#{i}",
        _mmlu_rationale,
        keep=lambda d: d["subject"] in MMLU_STEM_SUBJECTS,
    ),
    "mmlu_pro": _CotSource(
        _mmlu_pro_row, lambda d: d["category"], str, lambda d, i: str(d["question_id"]), _mmlu_pro_rationale
    ),
    "arc_easy": _CotSource(_arc_row, None, str, None, None),
    "arc_challenge": _CotSource(_arc_row, None, str, None, None),
    "hellaswag": _CotSource(_hellaswag_row, None, str, None, None),
}


def _cot_question(doc: dict) -> str:
    options = "\n".join(f"{LETTERS[i]}. {str(opt).strip()}" for i, opt in enumerate(doc["options"]))
    return f"Question:\n{doc['question']}\nOptions:\n{options}\n"


def cot_example(doc: dict, rationale: str | None) -> str:
    """One worked example: question, options, and its reasoning (or only its answer)."""
    answer = f"Answer: {rationale}" if rationale else f"Answer: The answer is ({doc['gold']})."
    return f"{_cot_question(doc)}{answer}\n\n"


def _cot_examples(karma_source: str, data_dir: str | None) -> dict[str, tuple[str, tuple[str, ...]]]:
    """subject -> (the rendered examples, their ids): the first COT_SHOTS rows of that subject
    in the source's few-shot split (its second split: MMLU dev, MMLU-Pro validation).

    Memoised per (source, KARMA_DATA_DIR): the loader and every prompt share one copy.
    """
    key = ("examples", karma_source, data_dir)
    if key not in _MEMO:
        _MEMO[key] = _build_cot_examples(karma_source)
    return _MEMO[key]


def _build_cot_examples(karma_source: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    cfg = _COT_SOURCES[karma_source]
    src = get_source(karma_source)
    if cfg.subject is None or len(src.splits) < 2:
        return {}
    by_subject: dict[str, list[tuple[int, dict]]] = {}
    for index, raw in enumerate(load_source(karma_source)[src.splits[1]]):
        rows = by_subject.setdefault(cfg.subject(raw), [])
        if len(rows) < COT_SHOTS:
            rows.append((index, raw))
    return {
        subject: (
            "".join(cot_example(cfg.row(r), cfg.rationale(r)) for _, r in rows),
            tuple(cfg.ident(r, i) for i, r in rows),
        )
        for subject, rows in by_subject.items()
    }


def load_cot_source(karma_source: str, **metadata: Any):
    """``custom_dataset`` of the karma-cot-* tasks: :func:`load_source`, with every evaluated
    item tagged ``cot_source``, ``cot_subject`` (key), ``cot_words`` (for the header) and
    ``cot_shot_ids`` (the worked examples it will be shown). A subject without any example
    in the few-shot split is a KarmaError, raised before anything is generated."""
    cfg = _COT_SOURCES.get(karma_source)
    if cfg is None:
        raise KarmaError(f"no chain-of-thought protocol for source {karma_source!r}")
    ds = load_source(karma_source, **metadata)
    src = get_source(karma_source)
    root = data_dir_from_env()
    examples = _cot_examples(karma_source, str(root) if root else None)
    eval_split = src.splits[0]
    rows = ds[eval_split]
    if cfg.keep is not None:
        rows = rows.filter(cfg.keep, **_FRESH)

    def tag(doc: dict) -> dict:
        subject = cfg.subject(doc) if cfg.subject else ""
        if cfg.subject and subject not in examples:
            raise KarmaError(
                f"{src.describe()}: no {src.splits[1]} example of subject {subject!r} for the chain-of-thought prompt"
            )
        return {
            "cot_source": karma_source,
            "cot_subject": subject,
            "cot_words": cfg.words(subject),
            "cot_shot_ids": list(examples[subject][1]) if cfg.subject else [],
        }

    ds[eval_split] = rows.map(tag, **_FRESH)
    return ds


def doc_to_text_cot(doc: dict) -> str:
    """The subject's worked examples, then the question, options "A. ..." and the CoT cue."""
    shots = ""
    if doc.get("cot_subject"):
        root = data_dir_from_env()
        shots, ids = _cot_examples(doc["cot_source"], str(root) if root else None)[doc["cot_subject"]]
        if list(ids) != list(doc["cot_shot_ids"]):
            raise KarmaError(
                f"chain-of-thought examples of {doc['cot_subject']!r} changed since the data "
                "was loaded (KARMA_DATA_DIR changed?)"
            )
    return f"{shots}{_cot_question(doc)}{COT_CUE}"


# --------------------------------------------------------------------------- extraction
#
# Two readers of the model's text, both limited to the item's own letters (A-D, up to A-J):
#
# * strict-match (:func:`extract_strict`): only the "answer is (X)" statement the prompt asks
#   for; a format-compliance figure, kept as the secondary metric.
# * robust-extract (:func:`extract_robust`): what a reader would take as the model's answer,
#   whatever the format; the default metric. See its docstring for the order of the tiers.

_ANSWER_IS = re.compile(
    r"(?i:answer\s+is)\s*:?\s*(?:\*\*|__)?\s*(?:\(([A-Za-z])\)|\[([A-Za-z])\]|([A-Z])(?![A-Za-z0-9]))"
)


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


# Building blocks of the robust reader. A letter "token" is (C), [C], an upper-case C not
# followed by a letter or digit, or a lower-case c that ends the phrase ("answer: c.").
_DECOR = r"[\s*_`~>]*"
_LETTER = (
    r"(?:\(\s*([A-Za-z])\s*\)|\[\s*([A-Za-z])\s*\]|([A-Z])(?![A-Za-z0-9'’])"
    r"|([a-z])(?=[\s*_]*(?:$|[.,;:!?)\]]|\n)))"
)
_PICK = r"(?:(?:option|choice|letter)\s*)?"
_VERB = (
    r"(?:is|was|=|would\s+be|should\s+be|must\s+be|will\s+be|has\s+to\s+be|"
    r"seems\s+to\s+be|appears\s+to\s+be)"
)
_ADVERB = r"(?:\s+(?:probably|likely|clearly|definitely|therefore|thus|indeed|actually|then|still|most\s+likely))?"
_QUALIFIED = r"(?:correct|right|best|final|true)"

# Tier 1: explicit commitments; the last one in the text wins.
_COMMIT = [
    # "the answer is (C)", "answer is: **D**", "answer is\n(D)", "the answer must be C",
    # "The correct answer is option B", "the answer to this question is (B)"
    re.compile(
        rf"(?i:\banswers?(?:\s+(?:here|to\s+(?:this|the)\s+question))?\s+{_VERB}{_ADVERB})\s*[:：]?"
        rf"{_DECOR}(?i:{_PICK}){_DECOR}{_LETTER}"
    ),
    # "the correct choice is (C)", "the best option would be B"
    re.compile(rf"(?i:\b{_QUALIFIED}\s+(?:option|choice|letter|one)\s+{_VERB}{_ADVERB})\s*[:：]?{_DECOR}{_LETTER}"),
    # \boxed{D}, $\boxed{\text{D}}$, \boxed{(D)}
    re.compile(r"\\boxed\s*\{\s*(?:\\text(?:bf)?\s*\{\s*)?\(?\s*([A-Za-z])\s*\)?\s*(?=[}.:)\s])"),
    # "C is the correct answer", "(C) is correct", "Option B is the best choice"
    re.compile(
        rf"(?:(?i:option|choice|letter)\s+)?{_DECOR}(?:\(\s*([A-Za-z])\s*\)|\b([A-Z]))(?![A-Za-z0-9'’])"
        r"[*_`]*[.:)]?\s+(?i:is|would\s+be|must\s+be|seems\s+to\s+be)\s+(?i:the\s+)?"
        r"(?i:correct|right|best|better|answer|most\s+(?:likely|plausible|appropriate|accurate|"
        r"reasonable|suitable|logical))\b"
    ),
    # "I choose (B)", "I'd go with C", "I will pick option D"
    re.compile(
        rf"\bI(?:\s+would|\s+will|'d|’d|'ll|’ll)?\s+(?i:choose|pick|select|go\s+with)\s+"
        rf"(?i:{_PICK}){_DECOR}{_LETTER}"
    ),
]
# Tier 2: "Answer: X", "Final answer: X", "**Answer:** C", an "Answer" heading. Never a bare
# "option:" / "choice:" heading ("Let's check each option: (A) ..." is not an answer).
_ANSWER_COLON = [
    re.compile(rf"(?i:\banswer)[*_\s]*[:：\-–—][*_\s]*(?i:{_PICK}){_DECOR}{_LETTER}"),
    re.compile(rf"(?i:\b{_QUALIFIED}\s+(?:option|choice|letter))[*_\s]*[:：][*_\s]*{_DECOR}{_LETTER}"),
    re.compile(rf"(?im:^[#*_\s]*(?:final\s+)?answer[#*_\s]*$)\s*{_DECOR}{_LETTER}"),
]
# Tier 3: a marked letter: **C**, **(C)**, **C. text**, (C), "C." / "C)" at a line start.
_MARKED = re.compile(
    r"(?:\*\*|__)\s*\(?\s*([A-Za-z])\s*\)?\s*[.:)]?\s*(?:\*\*|__)"
    r"|(?:\*\*|__)\s*\(?([A-Z])[.):]\s"
    r"|\(([A-Z])\)"
    r"|(?m:^[ \t>*#-]*([A-Z])[.):](?=\s|$))"
)
_NEGATED = re.compile(r"(?i:\b(?:not|isn't|isn’t|except|exclude|eliminate|rule\s+out)\s*(?:option\s+)?[(*_\s]*)$")
_REVISION = re.compile(
    r"(?i:\b(?:wait|actually|correction|instead|rather|on\s+second\s+thought|"
    r"i\s+was\s+wrong|let\s+me\s+reconsider)\b)"
)
# Tier 5: "Option 3", "choice #2", "the third option".
_OPTION_NUMBER = re.compile(r"(?i:\b(?:option|choice)\s*(?:#|no\.?|number)?\s*(\d{1,2})\b)")
_ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]
_OPTION_ORDINAL = re.compile(rf"(?i:\bthe\s+({'|'.join(_ORDINALS)})\s+(?:option|choice|one|answer)\b)")
# Tier 6: a lone letter, or the last standalone capital letter.
_ONLY_LETTER = re.compile(r"^[\s*_(\[]*([A-Za-z])[\s*_)\].:]*$")
_BARE = re.compile(r"(?<![A-Za-z0-9'’.])([A-Z])(?![A-Za-z0-9'’])(?!\.[A-Za-z])")
# "A" and "I" are also words. A bare one followed by a lowercase word is read as the
# article / pronoun unless that word is one a letter answer is commonly followed by.
_WORD_AFTER = re.compile(r"\s+([a-z]+)")
_LETTER_VERBS = frozenset({"is", "was", "and", "or", "seems", "looks", "appears", "because", "since"})


def _hits(patterns: Sequence[re.Pattern], text: str, allowed: str) -> list[tuple[int, str]]:
    """(position, letter) of every match whose letter is within ``allowed``, in text order."""
    out = []
    for pattern in patterns:
        for m in pattern.finditer(text):
            letter = next((g for g in m.groups() if g), "").upper()
            if letter and letter in allowed and not _NEGATED.search(text[max(0, m.start() - 24) : m.start()]):
                out.append((m.start(), letter))
    return sorted(out)


def _lists_options(text: str) -> bool:
    """True when the marked letters of ``text`` run (A), (B), (C), ...: the options listed again."""
    distinct = list(dict.fromkeys(next(g for g in m.groups() if g).upper() for m in _MARKED.finditer(text)))
    return len(distinct) >= 3 and distinct[:3] == ["A", "B", "C"]


def _marked(text: str, allowed: str) -> str | None:
    hits = [(m.start(), next(g for g in m.groups() if g).upper()) for m in _MARKED.finditer(text)]
    hits = [(p, x) for p, x in hits if x in allowed and not _NEGATED.search(text[max(0, p - 24) : p])]
    if not hits:
        return None
    if _lists_options(text):
        return None  # the options listed again ("(A) ... (B) ... (C) ..."), not an answer
    first_pos, first = hits[0]
    leading = not text[:first_pos].strip(" \t\n*_>#-")
    if leading and not _REVISION.search(text[first_pos:]):
        return first  # "(C) Droughts. (A) is wrong because ..." answers C
    return hits[-1][1]


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", str(text).lower()).split())


def _by_option_text(text: str, options: Sequence[str], allowed: str) -> str | None:
    """The option whose own text the answer gives (the idea of a multiple-choice text match).

    1. the whole answer is an option's text ("wind", "1989");
    2. else the text after the last "answer is" / "answer:" starts with an option's text;
    3. else exactly one option's text (at least 3 characters, not a bare number, and not
       only part of a longer option that is also quoted) appears in the answer.
    Several options quoted without a commitment is no answer.
    """
    said = _norm(text)
    normed = [(LETTERS[i], _norm(o)) for i, o in enumerate(options) if LETTERS[i] in allowed]
    normed = [(x, o) for x, o in normed if o]
    if not said or not normed:
        return None
    exact = [x for x, o in normed if o == said]
    if exact:
        return exact[0]
    committed = [m.end() for m in re.finditer(r"\banswer(?: would| must| should| will)? (?:is|be)?\s*", said)]
    for end in reversed(committed):
        rest = said[end:]
        found = sorted(((len(o), x) for x, o in normed if rest == o or rest.startswith(o + " ")), reverse=True)
        if found:
            return found[0][1]
    padded = f" {said} "
    quoted = [(x, o) for x, o in normed if len(o) >= 3 and not o.replace(" ", "").isdigit() and f" {o} " in padded]
    spans = {x: [(m.start(), m.start() + len(o)) for m in re.finditer(re.escape(f" {o} "), padded)] for x, o in quoted}
    alone = [
        x
        for x, o in quoted
        if any(
            not any(y != x and len(p) > len(o) and s2 <= s1 and e1 <= e2 for y, p in quoted for s2, e2 in spans[y])
            for s1, e1 in spans[x]
        )
    ]
    return alone[0] if len(alone) == 1 else None


def _by_option_number(text: str, allowed: str) -> str | None:
    hits = [(m.start(), int(m.group(1)) - 1) for m in _OPTION_NUMBER.finditer(text)]
    hits += [(m.start(), _ORDINALS.index(m.group(1).lower())) for m in _OPTION_ORDINAL.finditer(text)]
    for _, index in sorted(hits, reverse=True):
        if 0 <= index < len(allowed):
            return LETTERS[index]
    return None


def _bare_letter(text: str, allowed: str) -> str | None:
    only = _ONLY_LETTER.match(text)
    if only:
        return only.group(1).upper() if only.group(1).upper() in allowed else None
    # marked letters were weighed (and possibly rejected as a listing) by tier 3
    text = _MARKED.sub(lambda m: " " * len(m.group()), text)
    bare = []
    for m in _BARE.finditer(text):
        letter = m.group(1)
        if letter in "AI":
            after = _WORD_AFTER.match(text, m.end())
            if after and after.group(1) not in _LETTER_VERBS:
                continue
        if _NEGATED.search(text[max(0, m.start() - 24) : m.start()]):
            continue
        bare.append(letter)
    return _last_in(bare, allowed)


def extract_robust(text: str, allowed: str = LETTERS[:10], options: Sequence[str] | None = None) -> str:
    """The letter a reader would take as the model's answer, or ``[invalid]`` if it commits to none.

    Tiers, tried in order; the first that yields a letter within ``allowed`` wins:

    1. an explicit commitment, the **last** one in the text: "the answer is (X)" and its
       variants ("answer is: **D**", "answer is\\n(D)", "the answer must be C", "the correct
       choice is B"), ``\\boxed{D}``, "C is the correct answer", "I choose (B)";
    2. "Answer: X" / "Final answer: X" / "**Answer:** X" / an "Answer" heading (last one);
       a bare "option:" or "choice:" heading is not an answer;
    3. a marked letter: **C**, (C), "C." at a line start; a response that *starts* with one
       answers with it (unless it revises itself later: "wait", "actually"), otherwise the
       last one; the options merely listed again ((A) ... (B) ... (C) ...) are no answer;
    4. the text of one of ``options`` (the item's own), see :func:`_by_option_text`;
    5. "Option 3" / "the third option" (1-based, within the item's options);
    6. a lone letter ("b", " D\\n") or the last standalone capital letter, skipping the
       words "A" / "I" ("A good option ...", "I think ...").

    Letters after "not" / "except" / "eliminate" are skipped in every tier.
    """
    text = (text or "").strip()
    if not text:
        return INVALID
    for patterns in (_COMMIT, _ANSWER_COLON):
        # an "Answer:" followed by the options listed again is no answer (a base model
        # continuing the prompt: "Answer:\n(A) 30 km/h\n(B) 40 km/h\n(C) ...")
        hits = [(p, x) for p, x in _hits(patterns, text, allowed) if not _lists_options(text[p : p + 600])]
        if hits:
            return hits[-1][1]
    return (
        _marked(text, allowed)
        or (_by_option_text(text, options, allowed) if options else None)
        or _by_option_number(text, allowed)
        or _bare_letter(text, allowed)
        or INVALID
    )


def strict_match(resps: Sequence[Sequence[str]], docs: Sequence[dict]) -> list[list[str]]:
    """lm-eval ``custom`` filter: :func:`extract_strict` with each doc's own letter range."""
    return [[extract_strict(r, _letters_of(doc)) for r in rs] for rs, doc in zip(resps, docs, strict=True)]


def robust_extract(resps: Sequence[Sequence[str]], docs: Sequence[dict]) -> list[list[str]]:
    """lm-eval ``custom`` filter: :func:`extract_robust` with each doc's own letters and options.

    lm-eval calls a ``custom`` filter as ``filter_fn(resps, docs)``: one list of responses
    per doc, and the (processed) docs, so the option texts are at hand.
    """
    return [
        [extract_robust(r, _letters_of(doc), (doc or {}).get("options")) for r in rs]
        for rs, doc in zip(resps, docs, strict=True)
    ]
