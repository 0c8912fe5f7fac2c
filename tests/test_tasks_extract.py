"""Answer extraction of the karma_* multiple-choice tasks: strict-match and robust-extract.

Each case is a realistic model output for an item with known options, with what a careful
human reader takes as the answer (robust-extract) and what the strict "answer is (X)" reader
finds. Outputs marked "SmolLM2" / "Gemma" were produced by SmolLM2-135M-Instruct and
Gemma 3 270M (base) on the real-model tier (tests/test_real_models.py).
"""

from __future__ import annotations

import pytest

from karma_hf.tasks.utils import INVALID, extract_robust, extract_strict, robust_extract, strict_match

RENEWABLE = ["coal", "oil", "wind", "natural gas"]  # C
ORGANS = ["The nervous system", "The endocrine system", "The respiratory system", "The circulatory system"]
ORBITS = [
    "the size of the planets",
    "gravitational pull of the Sun",
    "the composition of the planets",
    "electromagnetic radiation from the Sun",
]
FACTORIAL = ["21", "42", "35", "56", "14", "49", "30", "84", "12", "7"]  # 7!/5! = B
BERLIN = ["1987", "1988", "1989", "1990", "1991"]  # C
MAGNET = ["a magnet", "a battery", "iron filings", "a compass", "copper wire"]  # 5-option ARC
THREE = ["It melts", "It freezes", "It evaporates"]  # 3-option ARC
OHM = ["Newton", "Joule", "Ohm", "Watt"]
PAIRS = ["True, True", "False, False", "True, False", "False, True"]  # MMLU statements
ARTHROPODS = [
    "They possess an exoskeleton composed primarily of peptidoglycan.",
    "They possess an open circulatory system with a dorsal heart.",
    "They are members of a biologically unsuccessful phylum.",
    "They lack paired, jointed appendages.",
]
MARKETING = [
    "Safe practices, Fear, Jealousy, Trivial",
    "Unsafe practices, Distress, Joy, Trivial",
    "Safe practices, Wants, Jealousy, Trivial",
    "Safe practices, Distress, Fear, Trivial",
    "Unsafe practices, Wants, Jealousy, Serious",
    "Safe practices, Distress, Jealousy, Serious",
    "Safe practices, Wants, Fear, Serious",
    "Unsafe practices, Wants, Fear, Trivial",
    "Unsafe practices, Distress, Fear, Serious",
    "Unsafe practices, Fear, Jealousy, Serious",
]
TEN = [f"choice number {i}" for i in range(1, 11)]

# (model output, the item's options, strict-match, robust-extract)
CASES = [
    # --- the requested form and its variants
    ("The answer is (C).", RENEWABLE, "C", "C"),
    ("Let's think step by step. Wind is replenished naturally. The answer is (C).", RENEWABLE, "C", "C"),
    ("the answer is (c)", RENEWABLE, "C", "C"),
    ("The answer is C", RENEWABLE, "C", "C"),
    ("The correct answer is: **(D)**", ORGANS, "D", "D"),
    ("**The answer is (A)**", ORGANS, "A", "A"),
    ("The best answer is B.", ORGANS, "B", "B"),
    ("The answer is: **D**", ORGANS, "D", "D"),
    ("After weighing the options, the answer is\n(D)", ORGANS, "D", "D"),
    ("Thus the answer is \\boxed{B}.", FACTORIAL, INVALID, "B"),
    ("$\\boxed{\\text{C}}$", RENEWABLE, INVALID, "C"),
    ("Final Answer: The final answer is $\\boxed{C}$", RENEWABLE, INVALID, "C"),
    ("The answer is (J).", FACTORIAL, "J", "J"),
    ("The answer is (H)", FACTORIAL, "H", "H"),
    ("The answer is (I).", FACTORIAL, "I", "I"),  # "I" as an option letter
    ("The answer is (E).", MAGNET, "E", "E"),  # 5-option ARC item
    ("The answer is option B.", ORGANS, INVALID, "B"),
    ("The answer must be C because coal and oil run out.", RENEWABLE, INVALID, "C"),
    ("The answer to this question is (B).", FACTORIAL, INVALID, "B"),
    ("The correct choice is (C).", RENEWABLE, INVALID, "C"),
    ("The best option would be D", ORGANS, INVALID, "D"),
    ("C is the correct answer.", RENEWABLE, INVALID, "C"),
    ("(B) is correct, since 7 * 6 = 42.", FACTORIAL, INVALID, "B"),
    ("Option D is the best choice here.", ORGANS, INVALID, "D"),
    ("I choose (B).", ORGANS, INVALID, "B"),
    ("I'd go with C.", RENEWABLE, INVALID, "C"),
    ("the answer is a tricky one, but I pick (B).", RENEWABLE, INVALID, "B"),  # "a" is an article
    # --- revisions and several letters: the last commitment wins
    ("The answer is (A). Wait, no: the mass is conserved, so the answer is (D).", ORGANS, "D", "D"),
    # SmolLM2: two contradictory statements; the later one stands
    ("The correct answer is (C) Lysosome. The correct answer is (B) Ribosome.", ORGANS, "B", "B"),
    ("Between (A) and (C), the correct choice is (C).", RENEWABLE, INVALID, "C"),
    ("A is wrong and B is wrong, so the right one is D.", ORGANS, INVALID, "D"),
    ("(A) and (C) both look plausible, but (C) is better.", RENEWABLE, INVALID, "C"),
    ("(A). Actually, on reflection, (C).", RENEWABLE, INVALID, "C"),
    ("The answer is not (A); it is (B).", ORGANS, INVALID, "B"),
    ("It is not B, so D.", ORGANS, INVALID, "D"),
    # --- the heading bug: "option:" / "choice:" introduce a list, they are not answers
    (
        "Let's check each option: (A) coal runs out, (B) oil runs out, so the answer must be C.",
        RENEWABLE,
        INVALID,
        "C",
    ),
    ("Let's check each option:\n(A) coal is fossil\n(B) oil is fossil\nSo the answer is (C).", RENEWABLE, "C", "C"),
    (
        "Consider each choice: (A) coal, (B) oil. Neither is renewable; the correct option is C.",
        RENEWABLE,
        INVALID,
        "C",
    ),
    ("Option: (A) looks wrong.\nFinal answer: C", RENEWABLE, INVALID, "C"),
    # --- "Answer: X" and friends
    ("Answer: B", ORGANS, INVALID, "B"),
    ("answer: c", RENEWABLE, INVALID, "C"),
    ("Final answer: (D)", ORGANS, INVALID, "D"),
    ("> **Answer:** C", RENEWABLE, INVALID, "C"),
    ("**Answer**: B", ORGANS, INVALID, "B"),
    ("### Answer\n\nD", ORGANS, INVALID, "D"),
    ("Step 1: F = ma = 2 * 3 = 6 N.\nAnswer: (D)", ["2 N", "3 N", "5 N", "6 N", "8 N", "9 N", "12 N"], INVALID, "D"),
    ("Correct option: B", ORGANS, INVALID, "B"),
    ("Answer: a plant cell has a wall", RENEWABLE, INVALID, INVALID),  # "a" is an article, no option quoted
    # --- chain of thought in markdown
    (
        "**Step 1.** Coal and oil are fossil fuels.\n**Step 2.** Wind is renewable.\n\n**Answer: (C)**",
        RENEWABLE,
        INVALID,
        "C",
    ),
    ("1. Coal: finite.\n2. Oil: finite.\n3. Wind: renewable.\n\nSo the answer is **C**.", RENEWABLE, "C", "C"),
    ("- (A) no\n- (B) no\n- (C) yes\n- (D) no\n\nThe answer is (C).", RENEWABLE, "C", "C"),
    # --- a marked letter without a commitment phrase
    ("**B**", ORGANS, INVALID, "B"),
    ("I believe **C. Ohm** is right.", OHM, INVALID, "C"),
    ("(C) because the Moon has no atmosphere.", RENEWABLE, INVALID, "C"),
    ("C) the refrigerator door contains iron", MAGNET, INVALID, "C"),
    ("(C) Droughts.", ["floods", "tornado", "droughts", "hail"], INVALID, "C"),  # SmolLM2
    (
        "(C) Choose different objects to roll",
        [
            "Put the objects in groups.",
            "Change the height of the ramp.",
            "Choose different objects to roll.",
            "Record the details of the investigation.",
        ],
        INVALID,
        "C",
    ),  # SmolLM2
    (
        " (D) Record the details of the investigation.\n\n",
        [
            "Put the objects in groups.",
            "Change the height of the ramp.",
            "Choose different objects to roll.",
            "Record the details of the investigation.",
        ],
        INVALID,
        "D",
    ),  # Gemma
    (" (B)\n\n", ORGANS, INVALID, "B"),  # Gemma
    (
        "(C)\n\nThe answer is (C)\n\nThe population growth of a species is determined by its logistic growth curve.",
        RENEWABLE,
        "C",
        "C",
    ),  # SmolLM2
    ("(C) Wind. (A) and (B) are fossil fuels.", RENEWABLE, INVALID, "C"),  # leads with its answer
    # Gemma (base) lists the options again instead of answering: no commitment
    (
        " (A) Safe practices, Fear, Jealousy, Trivial\n(B) Unsafe practices, Distress, Fear, Trivial\n"
        "(C) Safe practices, Wants, Jealousy, Serious\n(D) Safe practices, Distress, Fear, Serious\n"
        "(E) Unsafe practices, Wants, Fear, Trivial\n(J) Unsafe practices, Fear,",
        MARKETING,
        INVALID,
        INVALID,
    ),
    # Gemma (base) continues the prompt: options, "Answer:", and the options once more
    (
        "\n(A) 30 km/h\n(B) 40 km/h\n(C) 50 km/h\n(D) 60 km/h\nAnswer:\n(A) 30 km/h\n(B) 40 km/h\n(C) 50 km/h",
        ["30 km/h", "40 km/h", "50 km/h", "60 km/h"],
        INVALID,
        INVALID,
    ),
    (
        " (A) Balance sheet\n",
        ["Balance sheet", "Income statement", "Statement of cash flows", "Trial balance"],
        INVALID,
        "A",
    ),  # Gemma
    (" 1\n", ["6", "8", "12", "16", "18", "24", "4", "3", "2", "36"], INVALID, INVALID),  # Gemma: no option
    ("(I) 110 km/h\n\nThe answer is (J) 120 km/h", [f"{10 * i} km/h" for i in range(3, 13)], "J", "J"),  # SmolLM2
    # --- the option's own text
    ("The circulatory system is the answer to the question.", ORGANS, INVALID, "D"),  # SmolLM2
    (
        "The factor with the greatest effect on the orbits of the planets is electromagnetic radiation from the Sun.",
        ORBITS,
        INVALID,
        "D",
    ),  # SmolLM2
    ("wind", RENEWABLE, INVALID, "C"),
    ("Wind.", RENEWABLE, INVALID, "C"),
    (" 1989\n\n", BERLIN, INVALID, "C"),  # Gemma
    (" 12\n\n", FACTORIAL, INVALID, "I"),  # Gemma: "12" is (I)
    ("The answer is 42.", FACTORIAL, INVALID, "B"),
    ("They possess an open circulatory system with a dorsal heart.", ARTHROPODS, INVALID, "B"),
    ("Iron filings would be attracted, as would a compass needle.", MAGNET, INVALID, INVALID),  # two options
    ("Natural gas is a fossil fuel, like coal.", RENEWABLE, INVALID, INVALID),  # two options
    ("It evaporates when heated.", THREE, INVALID, "C"),
    ("False, True", PAIRS, INVALID, "D"),
    # --- "Option 3"-style numbers
    ("Option 3 is the right one.", RENEWABLE, INVALID, "C"),
    ("I would say choice #2.", ORGANS, INVALID, "B"),
    ("The third option.", RENEWABLE, INVALID, "C"),
    ("Option 10", TEN, INVALID, "J"),
    ("Option 7", RENEWABLE, INVALID, INVALID),  # only 4 options
    # --- a lone letter
    ("b", ORGANS, INVALID, "B"),
    (" D\n\n", ORGANS, INVALID, "D"),
    ("C.", RENEWABLE, INVALID, "C"),
    ("E", MAGNET, INVALID, "E"),
    ("It has to be D, given the heart.", ORGANS, INVALID, "D"),
    # --- out-of-range letters never count
    ("The answer is (J).", RENEWABLE, INVALID, INVALID),
    ("The answer is (E).", RENEWABLE, INVALID, INVALID),
    ("(E)", THREE, INVALID, INVALID),
    ("Answer: F", ORGANS, INVALID, INVALID),
    ("The answer is (D).", THREE, INVALID, INVALID),
    # --- no commitment: refusals, empty, noise, words that look like letters
    ("I think it is the second one.", ORGANS, INVALID, "B"),  # "I" is a pronoun; "the second one"
    ("I think it is hard to say.", ORGANS, INVALID, INVALID),  # "I" is a pronoun
    ("A good option would be the balance.", ORGANS, INVALID, INVALID),  # "A" is an article
    ("I'm not sure about this question.", ORGANS, INVALID, INVALID),
    ("Sorry, I cannot help with that.", ORGANS, INVALID, INVALID),
    ("As an AI language model, I do not have opinions.", ORGANS, INVALID, INVALID),
    ("", ORGANS, INVALID, INVALID),
    ("   \n\n", ORGANS, INVALID, INVALID),
    ("................................", ORGANS, INVALID, INVALID),  # random-model output
    ("Question: Which gas do plants absorb?", RENEWABLE, INVALID, INVALID),
    ("The U.S. relies on coal and oil.", RENEWABLE, INVALID, INVALID),  # "U.S." is no letter; two options
    ("The answer is (B)\nQuestion: next", ORGANS, "B", "B"),
]


@pytest.mark.parametrize(("text", "options", "strict", "robust"), CASES)
def test_extractors(text: str, options: list[str], strict: str, robust: str) -> None:
    letters = "ABCDEFGHIJ"[: len(options)]
    assert extract_strict(text, letters) == strict
    assert extract_robust(text, letters, options) == robust


def test_enough_realistic_cases() -> None:
    assert len(CASES) >= 70
    assert sum(c[3] == INVALID for c in CASES) >= 10  # commits to nothing
    assert sum(c[2] == INVALID != c[3] for c in CASES) >= 30  # robust reads what strict cannot
    assert all(c[2] in (INVALID, c[3]) for c in CASES)  # never a different letter than strict


def test_filters_use_each_docs_own_letters_and_options() -> None:
    """The lm-eval `custom` filters take the letters from len(doc['options']) and the texts from it."""
    docs = [
        {"options": ["w", "x", "y", "z"]},
        {"options": list("abcdefghij")},
        {"options": ["a magnet", "a battery", "iron filings", "a compass", "copper wire"]},
    ]
    resps = [["The answer is (E)."], ["The answer is (E)."], ["So (E) it is.", "The answer is (A)", "copper wire"]]
    assert strict_match(resps, docs) == [[INVALID], ["E"], [INVALID, "A", INVALID]]
    assert robust_extract(resps, docs) == [[INVALID], ["E"], ["E", "A", "E"]]
