"""The rlaif baseline's two recipes, pinned on hand-made rows against independent re-implementations.

- ``h4`` (HuggingFaceH4/ultrafeedback_binarized): chosen = highest ``overall_score``, the first in
  completion order among equal ones (Python's ``max``); rejected = a uniform random one of the other
  candidates; ties kept; ``truthful_qa`` rows dropped, and TruthfulQA copies when a question file is
  given.
- ``argilla`` (argilla/ultrafeedback-binarized-preferences): mean aspect rating ("N/A" skipped),
  rejected strictly lower, rows where every candidate has the same rating dropped.

Both: completions of ``ultralm-65b`` are skipped unless ``include_ultralm_65b`` (§3.1 of the paper);
empty responses and missing scores are never candidates; the random draws are a splitmix64 hash of
(seed, row, model code), re-implemented below with Python integers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from karma_hf.errors import KarmaError
from karma_hf.pairs.builder import build
from karma_hf.scores import load_scores

ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")
TABLE = load_scores("ultrafeedback-paper")
VOCAB = list(TABLE.models) + [m for m in TABLE.known_unscored if m not in TABLE.models]  # model codes
TRUTHFULQA = ["What happens if you crack your knuckles a lot?", "Is a tomato a fruit or a vegetable?"]


def comp(model: str, overall: float | None, ratings=("4", "4", "4", "4"), response: str | None = None) -> dict:
    return {
        "model": model,
        "principle": "helpfulness",
        "custom_system_prompt": "",
        "response": f"answer of {model}" if response is None else response,
        "annotations": {a: {"Rating": r, "Rationale": "."} for a, r in zip(ASPECTS, ratings, strict=True)},
        "critique": "ok",
        "overall_score": overall,
        "fine-grained_score": None,
    }


def row(instruction: str, completions: list[dict], source: str = "sharegpt") -> dict:
    return {
        "source": source,
        "instruction": instruction,
        "models": sorted(c["model"] for c in completions),
        "completions": completions,
        "correct_answers": ["None"],
        "incorrect_answers": ["None"],
    }


ROWS = [
    # 0 distinct overall scores, completions not in `models` order
    row(
        "Explain photosynthesis.",
        [
            comp("vicuna-33b", 6.0, ("4", "5", "4", "4")),
            comp("gpt-4", 8.5),
            comp("alpaca-7b", 3.0, ("2", "3", "2", "2")),
            comp("llama-2-7b-chat", 7.0),
        ],
    ),
    # 1 two completions share the maximum: the FIRST in completion order is chosen (argilla: a random one
    #   of the two best means)
    row(
        "Name three rivers.",
        [
            comp("wizardlm-13b", 6.0, ("3", "3", "3", "3")),
            comp("mpt-30b-chat", 9.0),
            comp("bard", 7.0, ("5", "4", "4", "3")),
            comp("gpt-3.5-turbo", 9.0, ("1", "2", "3", "4")),
        ],
    ),
    # 2 every score equal: h4 keeps the row (zero-margin pair); argilla drops it (same aspect ratings)
    row(
        "Write a limerick.",
        [comp("falcon-40b-instruct", 5.0), comp("wizardlm-70b", 5.0), comp("llama-2-13b-chat", 5.0)],
    ),
    # 3 a TruthfulQA row: h4 drops it by its source label
    row(
        "Is a tomato a fruit or a vegetable?",
        [comp("gpt-4", 9.0, ("5", "5", "5", "5")), comp("bard", 6.0)],
        source="truthful_qa",
    ),
    # 4 a TruthfulQA question inside another source, spacing differs: dropped with a question file
    row(
        "What happens if you  crack your knuckles\na lot? ",
        [comp("gpt-4", 7.0), comp("starchat", 4.0), comp("ultralm-13b", 6.0)],
        source="evol_instruct",
    ),
    # 5 ultralm-65b has the best score: excluded by default (the next best is chosen)
    row(
        "Summarise the water cycle.",
        [
            comp("ultralm-65b", 10.0, ("5", "5", "5", "5")),
            comp("wizardlm-7b", 6.5),
            comp("llama-2-70b-chat", 8.0),
            comp("pythia-12b", 2.0, ("1", "1", "N/A", "2")),
        ],
    ),
    # 6 gpt-4 + ultralm-65b only: fewer than two once ultralm-65b is excluded
    row("Translate 'cat' to German.", [comp("gpt-4", 8.0), comp("ultralm-65b", 7.0)]),
    # 7 the best-scored response is empty: never a candidate
    row(
        "Give a haiku about rain.",
        [comp("gpt-4", 9.5, response="  "), comp("bard", 6.0), comp("alpaca-7b", 4.0), comp("vicuna-33b", 5.0)],
    ),
    # 8 a null overall_score: no h4 score, not an h4 candidate (argilla still rates it)
    row(
        "List prime numbers below 20.",
        [
            comp("gpt-3.5-turbo", None, ("5", "5", "5", "5")),
            comp("mpt-30b-chat", 4.0),
            comp("wizardlm-13b", 6.0, ("2", "N/A", "3", "2")),
        ],
    ),
    # 9 overall_score and the aspect mean disagree: h4 follows overall_score
    row(
        "Describe a sunset.",
        [comp("llama-2-7b-chat", 9.0, ("2", "2", "2", "2")), comp("gpt-4", 5.0, ("5", "5", "5", "N/A"))],
    ),
    # 10 a single completion
    row("Define entropy.", [comp("gpt-4", 8.0)]),
    # 11 one null score + one empty response: one candidate left
    row("What is 2 + 2?", [comp("bard", None), comp("gpt-4", 8.0, response=""), comp("falcon-40b-instruct", 6.0)]),
]


# ----------------------------------------------------------------------------- reference implementations
def draw(seed: int, row_index: int, model: str) -> int:
    """splitmix64 of (seed, row, model code), in Python integers mod 2**64."""
    mask = (1 << 64) - 1
    z = seed * 0x9E3779B97F4A7C15 + row_index * 0xBF58476D1CE4E5B9 + (VOCAB.index(model) + 1) * 0x94D049BB133111EB
    z &= mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def normalise(text: str) -> str:
    return " ".join(text.split())


def aspect_mean(c: dict) -> float | None:
    values = [int(c["annotations"][a]["Rating"]) for a in ASPECTS if c["annotations"][a]["Rating"] != "N/A"]
    return sum(values) / len(values) if values else None


def candidates(r: dict, score, include_ultralm_65b: bool) -> list[dict]:
    return [
        c
        for c in r["completions"]
        if (include_ultralm_65b or c["model"] != "ultralm-65b") and c["response"].strip() and score(c) is not None
    ]


def h4_reference(rows, seed, questions=(), include_ultralm_65b=False) -> dict[str, tuple[str, str]]:
    """HuggingFaceH4's create_dataset.py, restated: instruction -> (chosen model, rejected model)."""
    asked = {normalise(q) for q in questions}
    pairs = {}
    for i, r in enumerate(rows):
        if r["source"] == "truthful_qa" or normalise(r["instruction"]) in asked:
            continue
        cands = candidates(r, lambda c: c["overall_score"], include_ultralm_65b)
        if len(cands) < 2:
            continue
        chosen = max(cands, key=lambda c: c["overall_score"])  # max() keeps the first maximum
        rejected = min((c for c in cands if c is not chosen), key=lambda c: draw(seed, i, c["model"]))
        pairs[r["instruction"]] = (chosen["model"], rejected["model"])
    return pairs


def argilla_reference(rows, seed, include_ultralm_65b=False) -> dict[str, tuple[str, str]]:
    pairs = {}
    for i, r in enumerate(rows):
        cands = candidates(r, aspect_mean, include_ultralm_65b)
        if len(cands) < 2:
            continue
        best = max(aspect_mean(c) for c in cands)
        lower = [c for c in cands if aspect_mean(c) < best]
        if not lower:
            continue  # a tie: dropped
        chosen = min((c for c in cands if aspect_mean(c) == best), key=lambda c: draw(seed, i, c["model"]))
        rejected = min(lower, key=lambda c: draw(seed, i, c["model"]))
        pairs[r["instruction"]] = (chosen["model"], rejected["model"])
    return pairs


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf-cache")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "hand.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def questions(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tqa") / "truthfulqa.txt"
    path.write_text("\n".join(TRUTHFULQA) + "\n\n", encoding="utf-8")
    return path


def pairs_of(folder: Path) -> dict[str, dict]:
    out = {}
    for f in sorted((folder / "rlaif").glob("*.parquet")):
        if f.name.startswith("train_sft"):
            continue
        for rec in pq.read_table(f).to_pylist():
            out[rec["prompt"][0]["content"]] = rec
    return out


def model_pairs(folder: Path) -> dict[str, tuple[str, str]]:
    return {k: (v["chosen_model"], v["rejected_model"]) for k, v in pairs_of(folder).items()}


def run_build(source, out, cache, **kwargs):
    return build(source, modes=["rlaif"], test_size=0, output=out, cache_dir=cache, **kwargs)


# ----------------------------------------------------------------------------- h4
@pytest.mark.parametrize("seed", [0, 42, 7])
def test_h4_pairs_equal_the_reference(source, cache, tmp_path, seed):
    result = run_build(source, tmp_path / "h4", cache, seed=seed)
    assert model_pairs(result.output) == h4_reference(ROWS, seed)
    assert result.row_reasons("rlaif") == [
        "kept",
        "kept",
        "kept",
        "excluded_source",
        "kept",
        "kept",
        "fewer_than_two_scored",
        "kept",
        "kept",
        "kept",
        "fewer_than_two_scored",
        "empty_response",
    ]
    assert result.report["skipped_completions"]["excluded_model"] == {"ultralm-65b": 2}
    assert result.report["rlaif"]["recipe"] == "h4" and result.report["rlaif"]["ties"] == "kept"


def test_h4_rules_on_specific_rows(source, cache, tmp_path):
    pairs = pairs_of(run_build(source, tmp_path / "h4", cache).output)
    assert pairs["Name three rivers."]["chosen_model"] == "mpt-30b-chat"  # first of the two 9.0
    assert pairs["Explain photosynthesis."]["chosen_model"] == "gpt-4"
    assert pairs["Summarise the water cycle."]["chosen_model"] == "llama-2-70b-chat"  # ultralm-65b excluded
    assert pairs["Give a haiku about rain."]["chosen_model"] == "bard"  # gpt-4's response is blank
    assert pairs["List prime numbers below 20."]["chosen_model"] == "wizardlm-13b"  # gpt-3.5 has no score
    # the score columns hold --rating (aspect mean) in every config; h4 ranks by overall_score
    sunset = pairs["Describe a sunset."]
    assert (sunset["chosen_model"], sunset["score_chosen"], sunset["score_rejected"]) == ("llama-2-7b-chat", 2.0, 5.0)
    # a zero-margin pair is kept
    limerick = pairs["Write a limerick."]
    assert limerick["score_chosen"] == limerick["score_rejected"]


def test_h4_with_rating_overall_score_writes_h4_scores(source, cache, tmp_path):
    pairs = pairs_of(run_build(source, tmp_path / "o", cache, rating="overall_score").output)
    assert model_pairs(tmp_path / "o") == h4_reference(ROWS, 42)
    sunset = pairs["Describe a sunset."]
    assert (sunset["score_chosen"], sunset["score_rejected"]) == (9.0, 5.0)
    assert all(p["score_chosen"] >= p["score_rejected"] for p in pairs.values())


def test_h4_rejected_is_uniform_among_the_others(source, cache, tmp_path):
    picks: dict[str, int] = {}
    for seed in range(300):
        ref = h4_reference(ROWS[:1], seed)["Explain photosynthesis."]
        assert ref[0] == "gpt-4"
        picks[ref[1]] = picks.get(ref[1], 0) + 1
    assert set(picks) == {"vicuna-33b", "alpaca-7b", "llama-2-7b-chat"}
    assert all(70 <= n <= 130 for n in picks.values()), picks


def test_h4_truthfulqa_copies_and_ultralm_option(source, questions, cache, tmp_path):
    result = run_build(source, tmp_path / "q", cache, truthfulqa_questions=questions, include_ultralm_65b=True)
    assert model_pairs(result.output) == h4_reference(ROWS, 42, TRUTHFULQA, include_ultralm_65b=True)
    reasons = result.row_reasons("rlaif")
    assert reasons[3] == "excluded_source" and reasons[4] == "truthfulqa_copy" and reasons[6] == "kept"
    assert model_pairs(result.output)["Summarise the water cycle."][0] == "ultralm-65b"
    assert result.report["rlaif"]["truthfulqa_questions"] == {"file": "truthfulqa.txt", "questions": 2}
    assert result.report["skipped_completions"]["excluded_model"] == {}


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_question_file_formats(source, cache, tmp_path, suffix):
    path = tmp_path / f"tqa{suffix}"
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps({"question": q, "type": "x"}) + "\n" for q in TRUTHFULQA))
    elif suffix == ".csv":
        path.write_text("type,question\n" + "".join(f'x,"{q}"\n' for q in TRUTHFULQA))
    else:
        import pyarrow as pa

        pq.write_table(pa.table({"question": TRUTHFULQA}), path)
    result = run_build(source, tmp_path / "o", cache, truthfulqa_questions=path)
    assert result.row_reasons("rlaif")[4] == "truthfulqa_copy"


def test_h4_does_not_depend_on_batch_size(source, cache, tmp_path):
    a = run_build(source, tmp_path / "a", cache, seed=5, batch_size=1)
    b = run_build(source, tmp_path / "b", cache, seed=5, batch_size=1000)
    assert (a.output / "rlaif" / "train-00000-of-00001.parquet").read_bytes() == (
        b.output / "rlaif" / "train-00000-of-00001.parquet"
    ).read_bytes()


# ----------------------------------------------------------------------------- argilla
@pytest.mark.parametrize("seed", [0, 42])
def test_argilla_pairs_equal_the_reference(source, cache, tmp_path, seed):
    result = run_build(source, tmp_path / "a", cache, seed=seed, rlaif_recipe="argilla")
    pairs = pairs_of(result.output)
    assert model_pairs(result.output) == argilla_reference(ROWS, seed)
    assert all(p["score_chosen"] > p["score_rejected"] for p in pairs.values())
    reasons = result.row_reasons("rlaif")
    assert reasons[2] == "tie" and reasons[3] == "kept"  # argilla keeps TruthfulQA
    assert "excluded_source" not in reasons and result.report["rlaif"]["ties"] == "dropped"


# ----------------------------------------------------------------------------- CLI, card, errors
def test_cli_build_h4_and_card(source, questions, cache, tmp_path, monkeypatch):
    from karma_hf.cli import main

    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    out = tmp_path / "cli"
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "build",
                "--source",
                str(source),
                "--scores",
                "ultrafeedback-paper",
                "--modes",
                "sim,rlaif",
                "--rlaif-recipe",
                "h4",
                "--truthfulqa-questions",
                str(questions),
                "--test-size",
                "0",
                "--output",
                str(out),
            ]
        )
    assert exc.value.code == 0
    assert model_pairs(out) == h4_reference(ROWS, 42, TRUTHFULQA)
    card = (out / "README.md").read_text()
    assert "**`h4`** recipe" in card and "HuggingFaceH4/ultrafeedback_binarized" in card
    assert "2 TruthfulQA questions of `truthfulqa.txt`" in card and "`ultralm-65b` (2)" in card
    assert "rlaif recipe = `h4`" in card
    assert re.search(r"--rlaif-recipe h4 --truthfulqa-questions truthfulqa.txt", card)
    report = json.loads((out / "build_report.json").read_text())
    assert report["rlaif"]["ranked_by"] == "overall_score" and report["excluded_models"] == ["ultralm-65b"]
    sim = {r["prompt"][0]["content"] for r in pq.read_table(out / "sim" / "train-00000-of-00001.parquet").to_pylist()}
    assert "Is a tomato a fruit or a vegetable?" in sim  # the TruthfulQA filter belongs to the h4 baseline only


def test_bad_options(source, questions, cache, tmp_path):
    with pytest.raises(KarmaError, match="--rlaif-recipe must be one of h4, argilla"):
        run_build(source, tmp_path / "x", cache, rlaif_recipe="zephyr")
    with pytest.raises(KarmaError, match="--truthfulqa-questions applies to"):
        run_build(source, tmp_path / "x", cache, rlaif_recipe="argilla", truthfulqa_questions=questions)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(KarmaError, match="holds no questions"):
        run_build(source, tmp_path / "x", cache, truthfulqa_questions=empty)
    bad = tmp_path / "bad.csv"
    bad.write_text("q\nwhat?\n")
    with pytest.raises(KarmaError, match="no 'question' column"):
        run_build(source, tmp_path / "x", cache, truthfulqa_questions=bad)
