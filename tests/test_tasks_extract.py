"""Answer extraction of the karma_* multiple-choice tasks (strict-match / flexible-extract)."""

from __future__ import annotations

import pytest

from karma_hf.tasks.utils import (INVALID, extract_flexible, extract_strict, flexible_extract,
                                  strict_match)

ABCD = "ABCD"
A_TO_J = "ABCDEFGHIJ"
A_TO_E = "ABCDE"

# (model output, allowed letters, strict-match, flexible-extract)
CASES = [
    ("The answer is (C).", ABCD, "C", "C"),
    ("Let's think step by step. Water boils at 100 C at sea level. The answer is (B).", ABCD, "B", "B"),
    ("the answer is (c)", ABCD, "C", "C"),
    ("The answer is C", ABCD, "C", "C"),
    ("The correct answer is: **(D)**", ABCD, "D", "D"),
    ("**The answer is (A)**", ABCD, "A", "A"),
    ("The best answer is B.", ABCD, "B", "B"),
    ("The answer is (A). Wait, no: the mass is conserved, so the answer is (D).", ABCD, "D", "D"),
    ("The answer is (J).", A_TO_J, "J", "J"),
    ("The answer is (J).", ABCD, INVALID, INVALID),              # outside this item's options
    ("The answer is (E).", A_TO_E, "E", "E"),                    # 5-option ARC item
    ("the answer is a tricky one, but I pick (B).", ABCD, INVALID, "B"),  # "a" is an article
    ("(C) because the Moon has no atmosphere.", ABCD, INVALID, "C"),
    ("Answer: B", ABCD, INVALID, "B"),
    ("answer: c", ABCD, INVALID, "C"),
    ("**B**", ABCD, INVALID, "B"),
    ("I believe **C. Ohm** is right.", ABCD, INVALID, "C"),
    ("b", ABCD, INVALID, "B"),
    (" D\n\n", ABCD, INVALID, "D"),
    ("C) the refrigerator door contains iron", A_TO_E, INVALID, "C"),
    ("Option B is correct since copper conducts electricity.", ABCD, INVALID, "B"),
    ("A is wrong and B is wrong, so the right one is D.", ABCD, INVALID, "D"),
    ("Between (A) and (C), the correct choice is (C).", ABCD, INVALID, "C"),
    ("I think it is the second one.", ABCD, INVALID, INVALID),   # "I" is a pronoun
    ("A good option would be the balance.", ABCD, INVALID, INVALID),  # "A" is an article
    ("I'm not sure about this question.", ABCD, INVALID, INVALID),
    ("Sorry, I cannot help with that.", ABCD, INVALID, INVALID),  # no letter at all
    ("", ABCD, INVALID, INVALID),
    ("................................", ABCD, INVALID, INVALID),  # random-model output
    ("The answer is (H)", A_TO_J, "H", "H"),
    ("The answer is (I).", A_TO_J, "I", "I"),                    # "I" as option letter, marked
    ("Step 1: F = ma = 2 * 3 = 6 N.\nAnswer: (D)", "ABCDEFG", INVALID, "D"),
    ("The answer is \\boxed{B}", ABCD, INVALID, "B"),             # strict needs "(B)" or "B"
    ("> **Answer:** C", ABCD, INVALID, "C"),
    ("The answer is (B)\nQuestion: next", ABCD, "B", "B"),
]


@pytest.mark.parametrize(("text", "allowed", "strict", "flexible"), CASES)
def test_extractors(text: str, allowed: str, strict: str, flexible: str) -> None:
    assert extract_strict(text, allowed) == strict
    assert extract_flexible(text, allowed) == flexible


def test_enough_realistic_cases() -> None:
    assert len(CASES) >= 25
    assert any(c[3] == INVALID for c in CASES) and any(c[2] == INVALID != c[3] for c in CASES)


def test_filters_use_each_docs_own_letter_range() -> None:
    """The lm-eval `custom` filter functions take the letters from len(doc['options'])."""
    docs = [{"options": ["w", "x", "y", "z"]}, {"options": list("abcdefghij")}, {"options": list("abcde")}]
    resps = [["The answer is (E)."], ["The answer is (E)."], ["So (E) it is.", "The answer is (A)"]]
    assert strict_match(resps, docs) == [[INVALID], ["E"], [INVALID, "A"]]
    assert flexible_extract(resps, docs) == [[INVALID], ["E"], ["E", "A"]]
