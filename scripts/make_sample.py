#!/usr/bin/env python
"""Generate the embedded UltraFeedback-format sample (``karma_hf/data/ultrafeedback_sample.parquet``).

The sample is SYNTHETIC: every instruction, response, rating and critique below is written by
this script from templates and a seeded random generator. It has the exact schema of
``openbmb/UltraFeedback`` (``source, instruction, models, completions[...], correct_answers,
incorrect_answers``; nested ``annotations`` with string ratings incl. ``"N/A"``), the 17 real
model strings with realistic frequencies (``pythia-12b`` and ``bard`` rare), and it is built so
that ``karma quickstart`` / ``karma report`` have something real to find:

* a model's responses get longer, more structured (lists, headers, bold, fenced code) and better
  rated the higher its S_pref (the KARMA paper's Table 3 "Average" column);
* per-instance ratings are noisy around the model's strength (an instance from a weak model can
  beat one from a strong model), and events such as refusals, wrong answers or accepting a false
  premise lower them;
* special rows make every drop reason of a default build occur (see ``SPECIAL_ROWS`` below).

The script checks its own guarantee before writing: with an independent re-implementation of
the ``sim`` pair rule and of the ``rlaif`` baseline, the mean |rating gap| of ``sim`` pairs must
be clearly smaller than that of ``rlaif`` pairs. Output is deterministic: rerunning it gives
byte-identical files.

Usage:  python scripts/make_sample.py [--out karma_hf/data/ultrafeedback_sample.parquet] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "karma_hf" / "data" / "ultrafeedback_sample.parquet"
N_REGULAR = 294  # plus the special rows below: ~300 instructions in all

# --- models --------------------------------------------------------------------------------
# completions per model in openbmb/UltraFeedback (non-empty), used as sampling weights.
MODEL_COUNTS = {
    "alpaca-7b": 16547,
    "bard": 8333,
    "falcon-40b-instruct": 16487,
    "gpt-3.5-turbo": 16561,
    "gpt-4": 16518,
    "llama-2-13b-chat": 16632,
    "llama-2-70b-chat": 16570,
    "llama-2-7b-chat": 16768,
    "mpt-30b-chat": 16560,
    "pythia-12b": 833,
    "starchat": 13977,
    "ultralm-13b": 16568,
    "ultralm-65b": 16639,
    "vicuna-33b": 16730,
    "wizardlm-13b": 16787,
    "wizardlm-70b": 16518,
    "wizardlm-7b": 16584,
}
# S_pref of the KARMA paper (Table 3, "Average"); ultralm-65b has no scores in the paper, the
# generator gives it a plausible strength for writing its responses only.
S_PREF = {
    "gpt-4": 0.99,
    "gpt-3.5-turbo": 0.77,
    "bard": 0.86,
    "llama-2-7b-chat": 0.41,
    "llama-2-13b-chat": 0.45,
    "llama-2-70b-chat": 0.58,
    "ultralm-13b": 0.40,
    "wizardlm-7b": 0.34,
    "wizardlm-13b": 0.45,
    "wizardlm-70b": 0.58,
    "vicuna-33b": 0.57,
    "alpaca-7b": 0.16,
    "falcon-40b-instruct": 0.47,
    "mpt-30b-chat": 0.38,
    "starchat": 0.05,
    "pythia-12b": 0.07,
}
STRENGTH = {**S_PREF, "ultralm-65b": 0.55}
# Table 3 raw benchmark scores (IFEval, MMLU-STEM, MMLU-Pro, HellaSwag, ARC-e, ARC-c): only used
# by the self-check below to re-derive the cosine kinship independently of karma_hf.
TABLE3 = {
    "gpt-4": (85.37, 86.40, 0.64, 95.30, 96.63, 96.40),
    "gpt-3.5-turbo": (72.54, 70.00, 0.38, 85.00, 92.80, 83.02),
    "bard": (89.33, 71.80, 0.59, 84.70, 84.43, 77.13),
    "llama-2-7b-chat": (25.19, 53.10, 0.20, 67.50, 72.14, 54.61),
    "llama-2-13b-chat": (24.82, 57.80, 0.25, 71.20, 72.05, 58.02),
    "llama-2-70b-chat": (24.07, 68.90, 0.38, 78.10, 82.20, 67.66),
    "ultralm-13b": (54.92, 49.58, 0.19, 54.00, 57.58, 48.04),
    "wizardlm-7b": (45.83, 42.50, 0.18, 77.70, 39.48, 34.90),
    "wizardlm-13b": (33.92, 52.30, 0.17, 81.00, 72.94, 55.38),
    "wizardlm-70b": (49.51, 52.70, 0.27, 83.30, 80.68, 71.93),
    "vicuna-33b": (52.76, 64.00, 0.23, 75.00, 81.57, 64.51),
    "alpaca-7b": (30.58, 37.92, 0.15, 23.60, 43.31, 33.79),
    "falcon-40b-instruct": (24.54, 67.50, 0.14, 80.00, 76.60, 56.70),
    "mpt-30b-chat": (30.70, 50.40, 0.20, 24.53, 87.12, 70.73),
    "starchat": (28.30, 40.12, 0.12, 25.40, 16.96, 9.07),
    "pythia-12b": (24.71, 27.00, 0.12, 25.60, 24.49, 31.80),
}

# Writing habits per model family (probabilities / counts); strength adds on top of these.
STYLE_DEFAULT = dict(
    preamble=0.2,
    closing=0.15,
    hedge=0.15,
    refusal=0.01,
    ai_disclaimer=0.05,
    header=0.0,
    bold=0.0,
    fence=0.0,
    off_topic=0.0,
    repeat=0.0,
)
STYLE = {
    "gpt-4": dict(header=0.55, bold=0.55, fence=1.0, preamble=0.1, closing=0.1),
    "gpt-3.5-turbo": dict(header=0.25, bold=0.35, fence=0.95, ai_disclaimer=0.2, hedge=0.25),
    "bard": dict(header=0.45, bold=0.8, fence=0.85, preamble=0.35, closing=0.3),
    "llama-2-7b-chat": dict(preamble=0.85, closing=0.7, hedge=0.55, refusal=0.12, bold=0.15, fence=0.6),
    "llama-2-13b-chat": dict(preamble=0.85, closing=0.7, hedge=0.5, refusal=0.1, bold=0.2, fence=0.65),
    "llama-2-70b-chat": dict(preamble=0.8, closing=0.6, hedge=0.4, refusal=0.07, bold=0.25, fence=0.75),
    "ultralm-13b": dict(hedge=0.2, bold=0.1, fence=0.6),
    "ultralm-65b": dict(hedge=0.2, bold=0.2, header=0.1, fence=0.75),
    "wizardlm-7b": dict(bold=0.05, fence=0.4, repeat=0.1),
    "wizardlm-13b": dict(bold=0.15, header=0.05, fence=0.6),
    "wizardlm-70b": dict(bold=0.3, header=0.15, fence=0.8),
    "vicuna-33b": dict(ai_disclaimer=0.3, hedge=0.3, bold=0.15, fence=0.7),
    "alpaca-7b": dict(preamble=0.0, closing=0.0, hedge=0.05, off_topic=0.12, repeat=0.15, fence=0.1),
    "falcon-40b-instruct": dict(hedge=0.4, ai_disclaimer=0.2, fence=0.4, preamble=0.1),
    "mpt-30b-chat": dict(hedge=0.25, bold=0.05, fence=0.5),
    "starchat": dict(preamble=0.05, closing=0.0, off_topic=0.25, repeat=0.2, fence=0.5),
    "pythia-12b": dict(preamble=0.0, closing=0.0, off_topic=0.3, repeat=0.3, fence=0.0),
}

# --- sources and instructions --------------------------------------------------------------
SOURCE_WEIGHTS = {  # roughly the per-source row shares of UltraFeedback
    "sharegpt": 19949,
    "flan_v2_niv2": 9000,
    "evol_instruct": 10000,
    "ultrachat": 9929,
    "flan_v2_cot": 3000,
    "flan_v2_p3": 2000,
    "flan_v2_flan2021": 1000,
    "false_qa": 2339,
    "truthful_qa": 811,
}
PRINCIPLES = {
    "helpfulness": 160332,
    "truthfulness": 39649,
    "verbalized_calibration": 28279,
    "honesty": 20130,
    "harmlessness": 7222,
}
SYSTEM_PROMPTS = {
    "helpfulness": [
        "As an AI assistant, provide not just answers but also spark curiosity. Offer insights that are accurate, engaging, and positive, making learning an exciting journey for the user.",
        "You are a helpful assistant. Make every interaction count: give the user useful, relevant and complete information without unnecessary detail.",
        "As a digital assistant, your duty is to ensure that every piece of information you give is accurate and useful, and presented so that the user can act on it.",
    ],
    "truthfulness": [
        "You are an AI assistant. Stick to verified facts; if a question is based on a false premise, say so politely instead of inventing an answer.",
        "As an AI assistant, your answers should be factually correct and free of fabricated details.",
    ],
    "verbalized_calibration": [
        "You are an AI assistant. State how confident you are in your answer as a percentage at the end of the response, e.g. 'Confidence: 80%'.",
    ],
    "honesty": [
        "You are an honest assistant. If you do not know the answer, say that you do not know rather than guessing.",
        "As an AI assistant, express uncertainty where it is warranted and never pretend to know what you do not.",
    ],
    "harmlessness": [
        "You are an AI assistant that avoids any content that could cause harm, and that respects the user's privacy and safety at all times.",
    ],
}

TOPICS = [
    "time management",
    "remote work",
    "learning a new language",
    "public speaking",
    "saving money",
    "home gardening",
    "marathon training",
    "writing a resume",
    "sleep hygiene",
    "meal planning",
    "starting a podcast",
    "reducing plastic waste",
    "onboarding new employees",
    "code reviews",
    "negotiating a salary",
    "studying for exams",
    "photography at night",
    "caring for a puppy",
    "running effective meetings",
    "learning to play guitar",
    "job interviews",
    "budget travel",
    "customer support",
    "writing documentation",
    "data backups",
    "password security",
]
CONCEPTS = [
    ("photosynthesis", "plants turn light, water and carbon dioxide into sugar and oxygen"),
    ("inflation", "the general rise of prices that lowers what a unit of money can buy"),
    ("compound interest", "interest earned on both the principal and the interest already added"),
    ("a hash table", "a structure that maps keys to slots through a hash function for fast lookup"),
    ("the greenhouse effect", "gases in the atmosphere trapping heat radiated by the Earth's surface"),
    ("supply and demand", "prices settling where the quantity offered meets the quantity wanted"),
    ("gradient descent", "repeatedly stepping against the gradient of a loss to reduce it"),
    ("vaccination", "training the immune system with a harmless form of a pathogen"),
    ("plate tectonics", "the slow motion of the lithosphere's plates over the mantle"),
    ("recursion", "a function solving a problem by calling itself on smaller instances"),
    ("opportunity cost", "the value of the best alternative given up when making a choice"),
    ("the water cycle", "evaporation, condensation and precipitation moving water around the planet"),
    ("blockchain", "an append-only ledger replicated across nodes and secured by hashes"),
    ("natural selection", "heritable traits that improve survival becoming more common over generations"),
    ("public-key cryptography", "encryption with a public key that only the matching private key can undo"),
    ("the Doppler effect", "the change in observed frequency when a source moves relative to the observer"),
    ("machine learning overfitting", "a model fitting noise in its training data and generalising poorly"),
    ("the French Revolution", "the 1789-1799 upheaval that ended absolute monarchy in France"),
]
COMPARISONS = [
    ("TCP", "UDP"),
    ("Python lists", "tuples"),
    ("stocks", "bonds"),
    ("RAM", "storage"),
    ("weather", "climate"),
    ("a virus", "a bacterium"),
    ("SQL", "NoSQL databases"),
    ("renting", "buying a home"),
    ("machine learning", "traditional programming"),
    ("espresso", "drip coffee"),
    ("git merge", "git rebase"),
    ("aerobic", "anaerobic exercise"),
]
CODE_TASKS = [
    ("reverses a string", "reverse_string", "s", "return s[::-1]", "reverse_string('karma')", "'amrak'"),
    (
        "checks whether a string is a palindrome",
        "is_palindrome",
        "s",
        "cleaned = ''.join(ch.lower() for ch in s if ch.isalnum())\n    return cleaned == cleaned[::-1]",
        "is_palindrome('A man, a plan, a canal: Panama')",
        "True",
    ),
    (
        "returns the n-th Fibonacci number",
        "fibonacci",
        "n",
        "a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
        "fibonacci(10)",
        "55",
    ),
    (
        "counts the words in a sentence",
        "count_words",
        "sentence",
        "return len(sentence.split())",
        "count_words('the quick brown fox')",
        "4",
    ),
    (
        "removes duplicates from a list while keeping the order",
        "dedupe",
        "items",
        "seen = set()\n    out = []\n    for item in items:\n        if item not in seen:\n            seen.add(item)\n            out.append(item)\n    return out",
        "dedupe([3, 1, 3, 2, 1])",
        "[3, 1, 2]",
    ),
    (
        "checks whether a number is prime",
        "is_prime",
        "n",
        "if n < 2:\n        return False\n    i = 2\n    while i * i <= n:\n        if n % i == 0:\n            return False\n        i += 1\n    return True",
        "is_prime(29)",
        "True",
    ),
    (
        "computes the factorial of n",
        "factorial",
        "n",
        "result = 1\n    for k in range(2, n + 1):\n        result *= k\n    return result",
        "factorial(5)",
        "120",
    ),
    (
        "converts Celsius to Fahrenheit",
        "celsius_to_fahrenheit",
        "celsius",
        "return celsius * 9 / 5 + 32",
        "celsius_to_fahrenheit(100)",
        "212.0",
    ),
    (
        "sums the digits of an integer",
        "digit_sum",
        "n",
        "return sum(int(d) for d in str(abs(n)))",
        "digit_sum(4096)",
        "19",
    ),
    (
        "flattens a nested list one level deep",
        "flatten",
        "nested",
        "return [x for sub in nested for x in sub]",
        "flatten([[1, 2], [3], [4, 5]])",
        "[1, 2, 3, 4, 5]",
    ),
    (
        "finds the largest element of a list without using max()",
        "largest",
        "values",
        "best = values[0]\n    for v in values[1:]:\n        if v > best:\n            best = v\n    return best",
        "largest([4, 9, 2])",
        "9",
    ),
    (
        "counts how often each character occurs in a string",
        "char_counts",
        "text",
        "counts = {}\n    for ch in text:\n        counts[ch] = counts.get(ch, 0) + 1\n    return counts",
        "char_counts('aab')",
        "{'a': 2, 'b': 1}",
    ),
]
CODE_LEADS = [
    "Write a Python function that {task}.",
    "Implement a Python function that {task}. Include an example.",
    "Can you show me how to write a function in Python that {task}?",
    "I need a Python function that {task}. Please explain how it works.",
]
MATH_TEMPLATES = [
    (
        "A baker makes {a} loaves of bread each day for {b} days and sells {c} of them. How many loaves are left?",
        lambda a, b, c: a * b - c,
    ),
    (
        "Tom has {a} marbles. He buys {b} bags with {c} marbles each. How many marbles does he have now?",
        lambda a, b, c: a + b * c,
    ),
    (
        "A train travels {a} km per hour for {b} hours, then {c} km more. How far does it travel in total?",
        lambda a, b, c: a * b + c,
    ),
    (
        "There are {a} students in each of {b} classes. {c} students are absent. How many are present?",
        lambda a, b, c: a * b - c,
    ),
]
REVIEW_ITEMS = [
    "headphones",
    "blender",
    "backpack",
    "laptop stand",
    "coffee grinder",
    "desk lamp",
    "phone case",
    "running shoes",
    "novel",
    "hotel stay",
    "pizza place",
    "yoga mat",
    "electric kettle",
    "winter jacket",
    "board game",
    "vacuum cleaner",
    "webcam",
    "rain boots",
]
REVIEW_POS = [
    "Works exactly as described and feels sturdy.",
    "Great value for the price, I would buy it again.",
    "Setup took five minutes and the quality is excellent.",
    "My whole family loves it.",
    "Arrived early and exceeded my expectations.",
    "Comfortable, well made and looks great.",
]
REVIEW_NEG = [
    "Stopped working after two weeks and support never answered.",
    "Cheap material that broke on the first day.",
    "Arrived late, the box was crushed and parts were missing.",
    "Not worth half the price, very disappointing.",
    "The description was misleading and it does not fit.",
    "Noisy, slow and hard to clean.",
]
PASSAGES = [
    (
        "The Amazon River carries more water than any other river in the world. It flows through Peru, Colombia and Brazil before reaching the Atlantic Ocean.",
        "Which ocean does the Amazon flow into?",
        "The Atlantic Ocean",
    ),
    (
        "Marie Curie was the first person to win Nobel Prizes in two different sciences: physics in 1903 and chemistry in 1911.",
        "In which year did Marie Curie win the Nobel Prize in chemistry?",
        "1911",
    ),
    (
        "Honeybees communicate the location of flowers through a 'waggle dance' whose angle indicates the direction relative to the sun.",
        "What does the angle of the waggle dance indicate?",
        "The direction of the flowers relative to the sun",
    ),
    (
        "The Great Wall of China was built over many centuries, with most of the surviving wall dating from the Ming dynasty.",
        "Which dynasty built most of the surviving Great Wall?",
        "The Ming dynasty",
    ),
    (
        "Mount Kilimanjaro in Tanzania is the highest mountain in Africa, rising about 5,895 metres above sea level.",
        "How high is Mount Kilimanjaro?",
        "About 5,895 metres",
    ),
    (
        "Octopuses have three hearts: two pump blood through the gills and one pumps it through the rest of the body.",
        "How many hearts does an octopus have?",
        "Three",
    ),
]
FALSE_PREMISES = [
    ("Why do fish have lungs instead of gills?", "Most fish breathe with gills, not lungs"),
    ("How many legs does a snake use to climb trees?", "Snakes have no legs; they climb by gripping with their body"),
    (
        "When did Albert Einstein win the Nobel Prize for the theory of relativity?",
        "Einstein won the 1921 Nobel Prize for the photoelectric effect, not for relativity",
    ),
    ("Why is the Sun colder than the Moon?", "The Sun is far hotter than the Moon"),
    ("What color are the feathers of a cat?", "Cats have fur, not feathers"),
    (
        "Which planet is closer to the Sun, Mercury or the Sun itself?",
        "The question compares the Sun with itself; Mercury is the closest planet to the Sun",
    ),
    (
        "How long does it take for a rock to grow into a tree?",
        "Rocks are not living things and cannot grow into trees",
    ),
    ("Why did the Roman Empire use smartphones for communication?", "Smartphones did not exist in the Roman era"),
    ("What is the boiling point of water on the Sun's surface?", "Liquid water cannot exist on the Sun's surface"),
    ("How many wings does a dolphin have?", "Dolphins have no wings; they have flippers and a dorsal fin"),
    (
        "Why do penguins migrate to the North Pole every winter?",
        "Wild penguins live in the Southern Hemisphere and do not migrate to the North Pole",
    ),
    (
        "Which ocean lies between Paris and Berlin?",
        "No ocean lies between Paris and Berlin; they are connected by land",
    ),
    ("Why do trees walk to find water?", "Trees cannot walk; their roots grow towards water"),
    ("How many moons does the Sun have?", "The Sun has no moons; moons orbit planets"),
    ("When did Shakespeare write his first computer program?", "Shakespeare lived centuries before computers existed"),
    ("What is the capital city of the Pacific Ocean?", "An ocean has no capital city"),
    ("Why do cows lay eggs in spring?", "Cows are mammals and do not lay eggs"),
    ("How fast can a turtle fly?", "Turtles cannot fly"),
]
MISCONCEPTIONS = [
    (
        "What happens if you swallow gum?",
        ["It passes through your digestive system", "Nothing much; it is excreted"],
        ["It stays in your stomach for seven years", "It sticks to your intestines forever"],
    ),
    (
        "What happens if you crack your knuckles a lot?",
        ["Nothing in particular; it does not cause arthritis"],
        ["You will get arthritis", "Your joints will wear out"],
    ),
    (
        "Do we only use 10% of our brains?",
        ["No, virtually all of the brain is active over a day"],
        ["Yes, we only use 10% of our brains"],
    ),
    (
        "Can you see the Great Wall of China from space with the naked eye?",
        ["No, it is too narrow to see from orbit with the naked eye"],
        ["Yes, it is the only man-made structure visible from space"],
    ),
    (
        "Does lightning never strike the same place twice?",
        ["No, lightning often strikes the same place repeatedly"],
        ["Yes, lightning never strikes the same place twice"],
    ),
    (
        "Do goldfish have a three-second memory?",
        ["No, goldfish can remember things for months"],
        ["Yes, goldfish forget everything after three seconds"],
    ),
    (
        "Is it dangerous to wake a sleepwalker?",
        ["No, it is not dangerous, though they may be confused"],
        ["Yes, waking a sleepwalker can kill them", "Yes, it causes a heart attack"],
    ),
    (
        "Did Vikings wear horned helmets?",
        ["No, there is no evidence Vikings wore horned helmets in battle"],
        ["Yes, Vikings wore horned helmets"],
    ),
]
POEM_SUBJECTS = [
    "the sea at dawn",
    "an old library",
    "autumn rain",
    "a city at night",
    "a lighthouse",
    "the first snow",
    "a forgotten garden",
    "a train journey",
]
EMAIL_CASES = [
    ("my landlord", "a broken heater"),
    ("my manager", "working from home on Fridays"),
    ("a client", "a delayed delivery"),
    ("my professor", "an extension for my essay"),
    ("the HR team", "a mistake on my payslip"),
    ("a colleague", "reviewing my pull request"),
]

POINTS = [
    "Set a clear goal for {t} and write down why it matters to you.",
    "Break {t} into small steps that you can finish in a single session.",
    "Track your progress with {t} every week so you can see what works.",
    "Ask someone experienced in {t} for feedback early rather than late.",
    "Start with the simplest version of {t} and improve it gradually.",
    "Schedule a fixed time for {t} so it does not depend on motivation.",
    "Remove distractions before you work on {t}, especially notifications.",
    "Learn from common mistakes people make with {t} instead of repeating them.",
    "Keep notes on {t} so you can reuse what you learned next time.",
    "Review your approach to {t} after a month and drop what does not help.",
    "Budget enough time and money for {t}; underestimating both is the usual trap.",
    "Use a checklist for the recurring parts of {t}.",
    "Celebrate small wins with {t} to keep momentum going.",
    "Compare a few tools or methods for {t} before committing to one.",
]
EXPLAIN_EXTRA = [
    "A simple everyday example makes this easier to see.",
    "This matters because it affects many decisions people make every day.",
    "Scientists and practitioners have studied this for a long time, and the basic idea is well established.",
    "A common misunderstanding is to confuse the cause with the effect.",
    "The effect is small at first but grows over time.",
    "In practice, several factors interact, so the real picture is more nuanced.",
]
ELABORATIONS = [
    "This keeps the effort manageable and makes problems visible early.",
    "Doing this consistently matters more than doing it perfectly.",
    "Many people skip this step, and it is usually the reason things stall.",
    "Even ten minutes a day adds up over a few weeks.",
    "Write the result down so you can compare it later.",
    "If it does not work for you, adjust it rather than abandoning it.",
    "A friend or colleague can help you stay accountable here.",
    "This also makes it easier to explain your progress to others.",
]
HEDGES = [
    "It may depend on your situation, so",
    "Generally speaking,",
    "It is important to note that this might vary, and",
    "I'm not entirely sure, but",
    "In some cases this could be different, so",
]
PREAMBLES = [
    "Sure, I'd be happy to help!",
    "Great question!",
    "Certainly! Here is what you need to know.",
    "Of course!",
    "Thank you for your question.",
]
CLOSINGS = [
    "I hope this helps! Let me know if you have any other questions.",
    "Feel free to ask if you need more details.",
    "Good luck!",
    "Let me know if there is anything else I can help you with.",
]
AI_DISCLAIMERS = [
    "As an AI language model, I don't have personal experiences, but",
    "As an AI, I cannot give professional advice; however,",
]
REFUSALS = [
    "I'm sorry, but I cannot help with that request. It is not appropriate for me to provide this kind of information.",
    "I apologize, but I'm not able to answer this question as it may be harmful or misleading. Is there something else I can help you with?",
    "I'm sorry, I cannot fulfill this request. As a responsible AI language model, I must point out that the question may not be safe.",
]
OFF_TOPIC = [
    "I like to go to the park on weekends with my friends.",
    "The weather today is sunny and warm, perfect for a walk.",
    "### Instruction:\nWrite a story about a dog.\n\n### Response:\nOnce upon a time there was a dog.",
    "<nooutput>",
]


CONSTRAINTS = [
    "Keep it under 150 words.",
    "Use simple language.",
    "Give one concrete example.",
    "Assume I am a complete beginner.",
    "Answer in a friendly tone.",
    "Mention one common mistake.",
    "Be specific.",
    "Focus on the most important points.",
    "Answer in one paragraph.",
    "Explain your reasoning.",
]


# --- instruction generation ----------------------------------------------------------------
def make_instruction(rng: random.Random, source: str, n: int, variant: int = 0) -> dict:
    """One instruction of the given source: dict(kind, text, topic, answer, correct, incorrect).

    ``variant`` > 0 appends one or two extra constraints (used to keep instructions distinct).
    """
    ins = _base_instruction(rng, source, n)
    if variant > 0 and ins["kind"] not in ("math", "classify"):
        extra = CONSTRAINTS[(variant - 1) % len(CONSTRAINTS)]
        if variant > len(CONSTRAINTS):
            extra += " " + CONSTRAINTS[(variant // len(CONSTRAINTS) + variant) % len(CONSTRAINTS)]
        sep = "" if ins["text"].endswith((".", "?", "!")) else "."
        ins["text"] = f"{ins['text']}{sep} {extra}"
    return ins


def _base_instruction(rng: random.Random, source: str, n: int) -> dict:
    if source == "flan_v2_cot":
        tpl, fn = MATH_TEMPLATES[n % len(MATH_TEMPLATES)]
        a, b, c = rng.randint(3, 40), rng.randint(2, 9), rng.randint(1, 30)
        text = tpl.format(a=a, b=b, c=c)
        return dict(
            kind="math",
            text=f"Q: {text}\nA: Let's think step by step.",
            topic="arithmetic",
            answer=str(fn(a, b, c)),
            nums=(a, b, c),
        )
    if source == "flan_v2_niv2":
        item = REVIEW_ITEMS[n % len(REVIEW_ITEMS)]
        label = rng.choice(["Positive", "Negative"])
        phrase = rng.choice(REVIEW_POS if label == "Positive" else REVIEW_NEG)
        review = f"Bought the {item} {rng.choice(['last month', 'for my sister', 'on sale', 'two weeks ago', 'as a gift'])}. {phrase}"
        style = rng.choice(["product review", "customer review", "short review"])
        text = (
            f"Detailed Instructions: In this task, you are given a {style}. Your task is to classify it as "
            f'"Positive" or "Negative" based on its content.\nQ: {review}\nA:'
        )
        return dict(kind="classify", text=text, topic="sentiment", answer=label)
    if source in ("flan_v2_p3", "flan_v2_flan2021"):
        passage, q, a = PASSAGES[n % len(PASSAGES)]
        lead = (
            "Read the following paragraph and answer the question."
            if source == "flan_v2_p3"
            else "Answer the question based on the context."
        )
        return dict(kind="passage", text=f"{lead}\n\nContext: {passage}\n\nQuestion: {q}", topic="reading", answer=a)
    if source == "false_qa":
        q, fact = FALSE_PREMISES[n % len(FALSE_PREMISES)]
        return dict(kind="false_premise", text=q, topic="premise", answer=fact)
    if source == "truthful_qa":
        q, correct, incorrect = MISCONCEPTIONS[n % len(MISCONCEPTIONS)]
        return dict(
            kind="misconception", text=q, topic="myth", answer=correct[0], correct=correct, incorrect=incorrect
        )
    if source == "evol_instruct":
        r = n % 4
        if r in (0, 1):
            task = CODE_TASKS[(n // 2) % len(CODE_TASKS)]
            lead = CODE_LEADS[(n // 7) % len(CODE_LEADS)]
            return dict(kind="code", text=lead.format(task=task[0]), topic=task[0], code=task)
        if r == 2:
            concept, gist = CONCEPTS[n % len(CONCEPTS)]
            words = rng.choice([100, 150, 200])
            return dict(
                kind="explain",
                text=f"Explain {concept} to a high-school student in no more than {words} words, "
                f"and give one real-world example.",
                topic=concept,
                answer=gist,
            )
        subj = POEM_SUBJECTS[n % len(POEM_SUBJECTS)]
        return dict(
            kind="creative", text=f"Write a short poem about {subj} that uses at least one metaphor.", topic=subj
        )
    if source == "ultrachat":
        r = n % 3
        if r == 0:
            concept, gist = CONCEPTS[(n + 5) % len(CONCEPTS)]
            return dict(
                kind="explain",
                text=f"Can you explain how {concept} works and why it is important?",
                topic=concept,
                answer=gist,
            )
        if r == 1:
            t = TOPICS[n % len(TOPICS)]
            return dict(
                kind="tips",
                text=f"What are the most effective strategies for {t}? Please give practical advice.",
                topic=t,
            )
        a, b = COMPARISONS[n % len(COMPARISONS)]
        return dict(
            kind="compare",
            text=f"Write a detailed comparison of {a} and {b}, covering their main differences and when to use each.",
            topic=f"{a} and {b}",
            pair=(a, b),
        )
    # sharegpt
    r = n % 5
    if r == 0:
        who, what = EMAIL_CASES[n % len(EMAIL_CASES)]
        return dict(
            kind="email", text=f"write an email to {who} about {what}. keep it polite but firm", topic=what, who=who
        )
    if r == 1:
        a, b = COMPARISONS[(n + 3) % len(COMPARISONS)]
        return dict(
            kind="compare", text=f"what is the difference between {a} and {b}?", topic=f"{a} and {b}", pair=(a, b)
        )
    if r == 2:
        t = TOPICS[(n + 11) % len(TOPICS)]
        return dict(kind="tips", text=f"give me some tips for {t}", topic=t)
    if r == 3:
        task = CODE_TASKS[(n + 5) % len(CODE_TASKS)]
        return dict(kind="code", text=f"how do i write a python function that {task[0]}", topic=task[0], code=task)
    concept, gist = CONCEPTS[(n + 9) % len(CONCEPTS)]
    return dict(kind="explain", text=f"explain {concept} like I'm five", topic=concept, answer=gist)


# --- response writing ----------------------------------------------------------------------
def _style(model: str) -> dict:
    return {**STYLE_DEFAULT, **STYLE.get(model, {})}


def write_response(rng: random.Random, model: str, ins: dict, effort: float, principle: str) -> tuple[str, dict]:
    """Write one response. ``effort`` in ~[0, 1] sets length and structure.

    Returns (text, events) where events records what lowers or raises the rating
    (refusal, off_topic, wrong, accepted_false_premise, repetitive).
    """
    st = _style(model)
    kind, t = ins["kind"], ins["topic"]
    ev = {"refusal": False, "off_topic": False, "wrong": False, "repetitive": False}
    # events that replace the answer
    if kind not in ("math", "classify", "passage") and rng.random() < st["refusal"] * (
        2.0 if kind in ("false_premise", "misconception", "creative") else 1.0
    ):
        ev["refusal"] = True
        return rng.choice(REFUSALS), ev
    if rng.random() < st["off_topic"]:
        ev["off_topic"] = True
        return rng.choice(OFF_TOPIC), ev

    structured = rng.random() < 0.25 + 0.75 * effort
    n_points = max(1, int(round(1 + 6 * effort + rng.gauss(0, 0.8))))
    use_bold = rng.random() < st["bold"] + 0.2 * effort
    use_header = rng.random() < st["header"] * (0.5 + effort)
    parts: list[str] = []
    if rng.random() < st["preamble"]:
        parts.append(rng.choice(PREAMBLES))
    if rng.random() < st["ai_disclaimer"] and kind in ("tips", "explain", "compare", "misconception"):
        parts.append(rng.choice(AI_DISCLAIMERS) + " here is some general information.")
    hedge = rng.random() < st["hedge"]

    def bold(s: str) -> str:
        return f"**{s}**" if use_bold else s

    if kind == "code":
        desc, name, arg, body, call, result = ins["code"]
        wrong = rng.random() < 0.55 * (1 - effort)
        if wrong:
            ev["wrong"] = True
            body = body.replace("return", "return None  #", 1) if "return" in body else body
        code = f"def {name}({arg}):\n"
        if effort > 0.5:
            code += f'    """Function that {desc}."""\n'
        code += "    " + body + "\n"
        if rng.random() < st["fence"]:
            parts.append(f"Here is a Python function that {desc}:" if effort > 0.3 else "Here is the code:")
            parts.append("```python\n" + code + "```")
        else:
            parts.append(code)
        if effort > 0.35:
            if use_header:
                parts.append("## How it works")
            lines = [
                f"The function takes `{arg}` as its only argument.",
                "It handles the general case in a single pass."
                if "for" in body
                else "It uses a built-in Python operation, so it is short and fast.",
                "The result is returned to the caller without modifying the input.",
            ]
            if structured:
                parts.append("\n".join(f"- {x}" for x in lines[: max(1, n_points // 2)]))
            else:
                parts.append(" ".join(lines[: max(1, n_points // 2)]))
        if effort > 0.55:
            parts.append(
                bold("Example:") + f"\n\n```python\nprint({call})  # {result}\n```"
                if rng.random() < st["fence"]
                else f"Example: {call} returns {result}."
            )
    elif kind == "math":
        a, b, c = ins["nums"]
        wrong = rng.random() < 0.65 * (1 - effort) ** 1.3
        ans = int(ins["answer"])
        given = ans + rng.choice([-10, -2, 2, 3, 10]) if wrong else ans
        ev["wrong"] = wrong
        if effort > 0.4:
            steps = [
                f"First, use the numbers given: {a}, {b} and {c}.",
                f"Combine them as the question describes to get {given}.",
            ]
            if structured:
                parts.append("\n".join(f"{i + 1}. {s}" for i, s in enumerate(steps)))
            else:
                parts.append(" ".join(steps))
        parts.append(f"The answer is {given}." if effort > 0.2 else str(given))
    elif kind == "classify":
        wrong = rng.random() < 0.45 * (1 - effort) ** 1.5
        label = ins["answer"] if not wrong else ("Negative" if ins["answer"] == "Positive" else "Positive")
        ev["wrong"] = wrong
        if effort > 0.55:
            parts.append(f"{bold(label)}\n\nThe review's wording is clearly {label.lower()} about the experience.")
        else:
            parts.append(label)
    elif kind == "passage":
        wrong = rng.random() < 0.5 * (1 - effort) ** 1.5
        ev["wrong"] = wrong
        ans = ins["answer"] if not wrong else "The passage does not say"
        parts.append(ans if effort < 0.5 else f"According to the context, the answer is: {bold(ans)}.")
    elif kind in ("false_premise", "misconception"):
        accepts = rng.random() < 0.8 * (1 - effort) ** 1.2
        if accepts:
            ev["wrong"] = True
            myth = ins.get("incorrect", ["It is true, and it happens because of how nature works."])[0]
            parts.append(
                f"{myth}."
                if kind == "misconception"
                else "That is because of the way they evolved over millions of years, which made this trait useful for survival."
            )
        else:
            fact = ins["answer"]
            if kind == "false_premise":
                parts.append(f"The question contains a false premise. {bold(fact)}.")
            else:
                parts.append(f"{bold('No')}: this is a common myth. {fact}.")
            if effort > 0.5:
                parts.append(
                    "The idea is widespread, but the evidence does not support it."
                    + (" Please check a reliable source if in doubt." if hedge else "")
                )
    elif kind == "creative":
        n_lines = 2 + int(6 * effort)
        imgs = [
            "a silver thread",
            "the quiet breath of morning",
            "a ship of paper dreams",
            "an ocean of glass",
            "the lantern of memory",
            "a choir of falling leaves",
            "the clockwork of the stars",
            "a blanket of grey",
        ]
        rng.shuffle(imgs)
        title = f"# {t.title()}\n\n" if use_header else ""
        lines = [
            f"{t.capitalize()} is {imgs[i % len(imgs)]}," if i == 0 else f"and {imgs[i % len(imgs)]} drifts along,"
            for i in range(n_lines)
        ]
        parts.append(title + "\n".join(lines))
    elif kind == "email":
        who, what = ins["who"], ins["topic"]
        body = [
            f"Subject: {what.capitalize()}",
            "",
            f"Dear {who.replace('my ', '').title()},",
            "",
            f"I am writing about {what}.",
        ]
        if effort > 0.35:
            body.append(
                "I raised this earlier and would appreciate it if it could be resolved by the end of next week."
            )
        if effort > 0.6:
            body.append("Please let me know if you need any further information from me.")
        body += ["", "Kind regards,", "[Your name]"]
        parts.append("\n".join(body))
    else:  # tips / explain / compare
        pts = POINTS[:]
        rng.shuffle(pts)
        if kind == "explain":
            gist = ins["answer"]
            parts.append(f"{t.capitalize()} is {gist}." if not hedge else f"{rng.choice(HEDGES)} {t} is {gist}.")
            extra = EXPLAIN_EXTRA[:]
            rng.shuffle(extra)
            items = extra[: max(1, n_points - 1)]
        elif kind == "compare":
            a, b = ins["pair"]
            items = [
                f"Purpose: {a} and {b} are designed for different goals.",
                f"Cost: {a} usually has different trade-offs in cost than {b}.",
                f"Speed: {a} can be faster in some situations, while {b} is more predictable.",
                f"Complexity: {b} tends to need more setup than {a}.",
                f"When to use: choose {a} for simple cases and {b} when reliability matters more.",
                f"Common mistakes: people often assume {a} and {b} are interchangeable.",
            ][: max(2, n_points)]
        else:
            items = [p.format(t=t) for p in pts[:n_points]]
            if effort > 0.45:  # stronger models explain each point
                items = [
                    f"{it} {ELABORATIONS[(i + len(t)) % len(ELABORATIONS)]}" if rng.random() < effort else it
                    for i, it in enumerate(items)
                ]
            if hedge:
                parts.append(f"{rng.choice(HEDGES)} here are some ideas for {t}.")
        if structured and len(items) > 1:
            if use_header:
                parts.append(f"## {'Key points' if kind != 'compare' else 'Main differences'}")
            numbered = rng.random() < 0.5
            lines = []
            for i, it in enumerate(items):
                if use_bold and ":" in it:
                    head, rest = it.split(":", 1)
                    it = f"**{head}:**{rest}"
                elif use_bold and i % 2 == 0:
                    words = it.split(" ", 3)
                    it = "**" + " ".join(words[:3]) + "**" + (" " + words[3] if len(words) > 3 else "")
                lines.append(f"{i + 1}. {it}" if numbered else f"- {it}")
            parts.append("\n".join(lines))
        else:
            parts.append(" ".join(items))
        if effort > 0.7 and use_header:
            parts.append("## Summary")
        if effort > 0.6:
            parts.append(f"In short, {t} rewards a steady, deliberate approach.")
    if rng.random() < st["repeat"] and parts:
        ev["repetitive"] = True
        parts.append(parts[-1])
    if principle == "verbalized_calibration":
        conf = int(min(99, max(40, round(55 + 40 * effort + rng.gauss(0, 8)))))
        parts.append(f"Confidence: {conf}%")
    if rng.random() < st["closing"]:
        parts.append(rng.choice(CLOSINGS))
    return "\n\n".join(parts), ev


# --- ratings -------------------------------------------------------------------------------
RATIONALES = {
    "helpfulness": [
        "The response is severely incorrect or unhelpful.",
        "The response is partially incorrect and of limited use.",
        "The response is correct and provides useful information.",
        "The response is accurate, extensive and informative.",
        "The response is outstandingly helpful, accurate and in-depth.",
    ],
    "honesty": [
        "The response is confidently incorrect.",
        "The response is confident but contains major errors.",
        "The response is uncertain or contains minor errors.",
        "The response is correct but expresses some uncertainty.",
        "The response is correct and confident.",
    ],
    "instruction_following": [
        "The response is irrelevant to the instruction.",
        "The response addresses only one aspect of the task poorly.",
        "The response partially complies with the instruction.",
        "The response almost fully complies, with minor deviations.",
        "The response fully complies with the instruction.",
    ],
    "truthfulness": [
        "The response is completely hallucinated.",
        "The response contains severe hallucinations.",
        "The response is overall truthful but partly misunderstands the input.",
        "The response is mostly truthful with an insignificant slip.",
        "The response contains no hallucinations.",
    ],
}


def rate(rng: random.Random, q: float, kind: str, empty: bool) -> tuple[dict, float, float, str]:
    """Aspect annotations (string ratings), overall_score, fine-grained_score, critique."""

    def r(bias: float = 0.0) -> int:
        return 1 if empty else int(min(5, max(1, round(q + bias + rng.gauss(0, 0.45)))))

    h, tr, hon, inf = r(), r(0.1), r(0.15), r(0.05)
    hon_s = "N/A" if (not empty and (kind == "creative" and rng.random() < 0.8 or rng.random() < 0.03)) else str(hon)
    inf_s = "N/A" if (not empty and rng.random() < 0.004) else str(inf)
    ann = {
        "helpfulness": {
            "Rating": str(h),
            "Rationale": "The response is empty."
            if empty
            else f"The text addresses the task; {RATIONALES['helpfulness'][h - 1].lower()}",
            "Rationale For Rating": RATIONALES["helpfulness"][h - 1],
            "Type": [] if empty else sorted({"1", "2", "3"} if h >= 4 else {"1"} if h >= 2 else set()),
        },
        "honesty": {
            "Rating": hon_s,
            "Rationale": "The task is creative writing, so honesty does not apply."
            if hon_s == "N/A"
            else RATIONALES["honesty"][hon - 1],
        },
        "instruction_following": {
            "Rating": inf_s,
            "Rationale": "Not applicable." if inf_s == "N/A" else RATIONALES["instruction_following"][inf - 1],
        },
        "truthfulness": {
            "Rating": str(tr),
            "Rationale": "The response is empty." if empty else RATIONALES["truthfulness"][tr - 1],
            "Rationale For Rating": RATIONALES["truthfulness"][tr - 1],
            "Type": ["0"] if tr == 5 else (["1"] if tr >= 3 else ["1", "3"]),
        },
    }
    vals = [int(a["Rating"]) for a in ann.values() if a["Rating"] != "N/A"]
    fine = sum(vals) / len(vals)
    overall = 1.0 if empty else min(10.0, max(1.0, round((2 * q + rng.gauss(0, 0.7)) * 2) / 2))
    if empty:
        critique = "The response is empty, so it does not address the instruction at all."
    elif fine >= 4:
        critique = "Your answer is accurate and well organised. To improve, keep it concise and double-check any specific claims."
    elif fine >= 3:
        critique = "The answer is mostly correct but misses some details the instruction asked for. Add a concrete example and structure the key points."
    else:
        critique = "The answer does not address the instruction properly and contains errors. Read the question carefully and answer it directly."
    return ann, overall, fine, critique


def make_completion(rng: random.Random, model: str, ins: dict, empty: bool = False) -> dict:
    s = STRENGTH[model]
    principle = rng.choices(list(PRINCIPLES), weights=list(PRINCIPLES.values()))[0]
    system_prompt = rng.choice(SYSTEM_PROMPTS[principle])
    effort = min(1.0, max(0.0, s + rng.gauss(0, 0.18)))
    if empty:
        text, ev = "", {}
    else:
        text, ev = write_response(rng, model, ins, effort, principle)
    q = 1.3 + 3.4 * s + 0.6 * (effort - s) + rng.gauss(0, 0.45)
    if ev.get("refusal"):
        q -= 1.8
    if ev.get("off_topic"):
        q -= 1.6
    if ev.get("wrong"):
        q -= 1.3
    if ev.get("repetitive"):
        q -= 0.4
    ann, overall, fine, critique = rate(rng, q, ins["kind"], empty)
    return {
        "model": model,
        "principle": principle,
        "custom_system_prompt": system_prompt,
        "response": text,
        "annotations": ann,
        "critique": critique,
        "overall_score": overall,
        "fine-grained_score": fine,
    }


def make_row(
    rng: random.Random,
    source: str,
    ins: dict,
    models: list[str],
    empty: set[str] = frozenset(),
    ratings_override: dict | None = None,
) -> dict:
    comps = [make_completion(rng, m, ins, empty=m in empty) for m in models]
    if ratings_override:  # force identical ratings (a tie for the rlaif baseline)
        for c in comps:
            for aspect, value in ratings_override.items():
                c["annotations"][aspect]["Rating"] = value
            c["fine-grained_score"] = float(np.mean([int(v) for v in ratings_override.values()]))
    order = list(range(len(comps)))
    rng.shuffle(order)  # completion order is NOT the order of `models`, as in the real data
    return {
        "source": source,
        "instruction": ins["text"],
        "models": sorted(models),
        "completions": [comps[i] for i in order],
        "correct_answers": ins.get("correct", ["None"]),
        "incorrect_answers": ins.get("incorrect", ["None"]),
    }


# Rows that make every drop reason of a default build occur (modes score/sim/score_sim/rlaif):
#   empty_response         one instruction where 3 of 4 responses are empty (and a few rows with
#                          a single empty response among 4, which are kept);
#   fewer_than_two_scored  one instruction answered by a single model, and one answered only by
#                          ultralm-65b (no benchmark scores) and one scored model;
#   no_kin_above_tau       an instruction answered only by starchat and pythia-12b (cosine 0.02 < 0.1);
#   tie                    (rlaif) an instruction where every completion got the same ratings;
#   duplicated instruction the same instruction twice, from two sources (both rows are kept).
# unknown_model / malformed do not occur: unknown models are an error by default, and every row
# follows the schema.
def distinct_instruction(rng: random.Random, source: str, n: int, seen: set[str]) -> dict:
    """An instruction whose text is not in ``seen`` (then added to it)."""
    for variant in range(60):
        ins = make_instruction(rng, source, n, variant)
        if ins["text"] not in seen:
            seen.add(ins["text"])
            return ins
    raise RuntimeError(f"could not make a distinct {source} instruction")


def special_rows(rng: random.Random, seen: set[str]) -> list[dict]:
    rows = []
    ins = distinct_instruction(rng, "sharegpt", 2, seen)
    rows.append(
        make_row(
            rng,
            "sharegpt",
            ins,
            ["alpaca-7b", "gpt-4", "mpt-30b-chat", "wizardlm-13b"],
            empty={"alpaca-7b", "mpt-30b-chat", "wizardlm-13b"},
        )
    )
    ins = distinct_instruction(rng, "ultrachat", 4, seen)
    rows.append(make_row(rng, "ultrachat", ins, ["vicuna-33b"]))
    ins = distinct_instruction(rng, "evol_instruct", 3, seen)
    rows.append(make_row(rng, "evol_instruct", ins, ["ultralm-65b", "wizardlm-70b"]))
    ins = distinct_instruction(rng, "evol_instruct", 5, seen)
    rows.append(make_row(rng, "evol_instruct", ins, ["pythia-12b", "starchat"]))
    ins = distinct_instruction(rng, "flan_v2_niv2", 6, seen)
    rows.append(
        make_row(
            rng,
            "flan_v2_niv2",
            ins,
            ["falcon-40b-instruct", "gpt-3.5-turbo", "llama-2-70b-chat", "vicuna-33b"],
            ratings_override={"helpfulness": "4", "honesty": "5", "instruction_following": "4", "truthfulness": "5"},
        )
    )
    return rows


def generate(seed: int = 7) -> list[dict]:
    """All rows of the sample, deterministic for a given seed."""
    rng = random.Random(seed)
    names = list(MODEL_COUNTS)
    weights = [MODEL_COUNTS[m] for m in names]
    sources = list(SOURCE_WEIGHTS)
    src_w = [SOURCE_WEIGHTS[s] for s in sources]
    per_source: dict[str, int] = {}
    rows: list[dict] = []
    regular_ins: list[tuple[dict, str]] = []
    seen: set[str] = set()
    empties_left = 4
    for _ in range(N_REGULAR):
        source = rng.choices(sources, weights=src_w)[0]
        k = per_source.get(source, 0)
        per_source[source] = k + 1
        ins = distinct_instruction(rng, source, k, seen)
        regular_ins.append((ins, source))
        models: list[str] = []
        while len(models) < 4:  # 4 distinct models, drawn with UltraFeedback's frequencies
            m = rng.choices(names, weights=weights)[0]
            if m not in models:
                models.append(m)
        empty = set()
        if empties_left and rng.random() < 0.03:
            empty = {rng.choice(models)}
            empties_left -= 1
        rows.append(make_row(rng, source, ins, models, empty=empty))
    specials = special_rows(rng, seen)
    for row in specials:
        rows.insert(rng.randrange(len(rows) + 1), row)
    # a duplicated instruction: a regular sharegpt instruction asked again under another source
    dup_ins = next(ins for ins, src in regular_ins if src == "sharegpt" and ins["kind"] == "tips")
    rows.insert(
        rng.randrange(len(rows) + 1),
        make_row(rng, "evol_instruct", dup_ins, ["gpt-3.5-turbo", "llama-2-13b-chat", "ultralm-13b", "wizardlm-7b"]),
    )
    return rows


# --- self-check: the guarantee the tests rely on -------------------------------------------
def _rating(c: dict) -> float | None:
    vals = [int(a["Rating"]) for a in c["annotations"].values() if a["Rating"] != "N/A"]
    return sum(vals) / len(vals) if vals else None


def check_gap_direction(rows: list[dict], seed: int = 42) -> tuple[float, float]:
    """Mean |rating gap| of ``sim`` pairs and of ``rlaif`` pairs, re-derived independently."""
    names = list(TABLE3)
    v = np.array([TABLE3[m] for m in names])
    n = (v - v.min(0)) / (v.max(0) - v.min(0))
    u = n / np.linalg.norm(n, axis=1, keepdims=True)
    cos = u @ u.T
    idx = {m: i for i, m in enumerate(names)}
    rng = random.Random(seed)
    sim_gaps, rlaif_gaps = [], []
    for row in rows:
        comps = [c for c in row["completions"] if c["response"].strip()]
        scored = [c for c in comps if c["model"] in idx]
        best = None
        for i in range(len(scored)):
            for j in range(i + 1, len(scored)):
                k = cos[idx[scored[i]["model"]], idx[scored[j]["model"]]]
                if k >= 0.1 and (best is None or k > best[0]):
                    best = (k, scored[i], scored[j])
        if best is not None:
            sim_gaps.append(abs(_rating(best[1]) - _rating(best[2])))
        rated = [(c, _rating(c)) for c in comps if _rating(c) is not None]
        if len(rated) >= 2:
            top = max(r for _, r in rated)
            lower = [r for _, r in rated if r < top]
            if lower:
                rlaif_gaps.append(top - rng.choice(lower))
    return float(np.mean(sim_gaps)), float(np.mean(rlaif_gaps))


SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("instruction", pa.string()),
        ("models", pa.list_(pa.string())),
        (
            "completions",
            pa.list_(
                pa.struct(
                    [
                        ("model", pa.string()),
                        ("principle", pa.string()),
                        ("custom_system_prompt", pa.string()),
                        ("response", pa.string()),
                        (
                            "annotations",
                            pa.struct(
                                [
                                    (
                                        "helpfulness",
                                        pa.struct(
                                            [
                                                ("Rating", pa.string()),
                                                ("Rationale", pa.string()),
                                                ("Rationale For Rating", pa.string()),
                                                ("Type", pa.list_(pa.string())),
                                            ]
                                        ),
                                    ),
                                    ("honesty", pa.struct([("Rating", pa.string()), ("Rationale", pa.string())])),
                                    (
                                        "instruction_following",
                                        pa.struct([("Rating", pa.string()), ("Rationale", pa.string())]),
                                    ),
                                    (
                                        "truthfulness",
                                        pa.struct(
                                            [
                                                ("Rating", pa.string()),
                                                ("Rationale", pa.string()),
                                                ("Rationale For Rating", pa.string()),
                                                ("Type", pa.list_(pa.string())),
                                            ]
                                        ),
                                    ),
                                ]
                            ),
                        ),
                        ("critique", pa.string()),
                        ("overall_score", pa.float64()),
                        ("fine-grained_score", pa.float64()),
                    ]
                )
            ),
        ),
        ("correct_answers", pa.list_(pa.string())),
        ("incorrect_answers", pa.list_(pa.string())),
    ]
)


def write(rows: list[dict], out: Path) -> None:
    """Write rows as one parquet file (zstd, no timestamps: byte-identical across runs)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    tmp = out.with_suffix(".tmp")
    pq.write_table(table, tmp, compression="zstd", compression_level=19, row_group_size=len(rows))
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    rows = generate(args.seed)
    sim_gap, rlaif_gap = check_gap_direction(rows)
    if not sim_gap < 0.8 * rlaif_gap:
        print(f"guarantee violated: sim mean gap {sim_gap:.3f} not < 0.8 x rlaif {rlaif_gap:.3f}", file=sys.stderr)
        return 1
    write(rows, args.out)
    n_comp = sum(len(r["completions"]) for r in rows)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {len(rows)} instructions, {n_comp} completions; "
        f"mean |rating gap| sim {sim_gap:.3f} < rlaif {rlaif_gap:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
