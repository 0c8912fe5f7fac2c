"""Exact scoring of the karma_* tasks, driven through lm-eval with a scripted model.

A scripted ``lm_eval.api.model.LM`` answers every item from a table built from the RAW
fixture files (gold letters derived here, independently of tasks/utils.py): one third of
the items in the strict form with the right letter, one third right but only in a form the
robust filter reads, one third wrong. The expected exact_match of each filter is then a
known fraction. IFEval gets hand-written responses with known instruction outcomes.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import pytest

from karma_hf.resources import tasks_dir

FIXTURES = Path(__file__).parent / "fixtures" / "karma_data"
STEM = {
    "abstract_algebra",
    "anatomy",
    "high_school_physics",
    "high_school_computer_science",
    "college_mathematics",
    "conceptual_physics",
}  # the STEM subjects present in the fixture
L = "ABCDEFGHIJ"


def _rows(rel: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / rel).read_text().splitlines()]


def _gold_table() -> dict[str, list[tuple[str, str, int]]]:
    """task -> [(probe text found in the prompt, gold letter, number of options)]."""
    table = {
        "karma_mmlu_stem": [
            (r["question"], L[r["answer"]], 4) for r in _rows("cais__mmlu/all/test.jsonl") if r["subject"] in STEM
        ],
        "karma_mmlu_pro": [
            (r["question"], r["answer"], sum(o != "N/A" for o in r["options"]))
            for r in _rows("TIGER-Lab__MMLU-Pro/test.jsonl")
        ],
        "karma_hellaswag": [
            (r["ctx_a"].split("]")[-1][:30].strip(), L[int(r["label"])], 4)
            for r in _rows("Rowan__hellaswag/validation.jsonl")
        ],
    }
    for task, config in (("karma_arc_easy", "ARC-Easy"), ("karma_arc_challenge", "ARC-Challenge")):
        table[task] = [
            (r["question"], L[r["choices"]["label"].index(r["answerKey"])], len(r["choices"]["label"]))
            for r in _rows(f"allenai__ai2_arc/{config}/test.jsonl")
        ]
    return table


GOLD = _gold_table()

# IFEval responses: key -> (response, expected strict per-instruction, expected loose per-instruction)
IFEVAL = {
    1001: ("I spent the weekend hiking in the mountains and the air was fresh and cold.", [True], [True]),
    1005: ("Rivers carry sediment downstream. Over time erosion carves deep valleys.", [True, True], [True, True]),
    # three bullets where two were asked: fails strictly; the loose check drops the first line
    1012: ("* It opens doors to new friends.\n* It helps your career.\n* It keeps the brain sharp.", [False], [True]),
    # a title but no postscript
    1020: (
        "<<Falling Leaves>>\nRed leaves drift and fall\nquiet wind hums through the trees\nthe ground turns to gold",
        [True, False],
        [True, False],
    ),
    1031: (
        "A prime number is a whole number bigger than one that can only be divided evenly by one and "
        "by itself, like 2, 3, 5 and 7. Is there anything else I can help with?",
        [True, True],
        [True, True],
    ),
}


def _response(task: str, index: int, gold: str, n_options: int) -> str:
    wrong = L[(L.index(gold) + 1) % n_options]
    kind = index % 3
    if kind == 0:
        return f"Let me think. The answer is ({gold})."
    if kind == 1:
        return f"**{gold}**"  # right, but not in the "answer is (X)" form
    return f"The answer is ({wrong})."


def _expected(task: str) -> tuple[Fraction, Fraction]:
    n = len(GOLD[task])
    strict = sum(1 for i in range(n) if i % 3 == 0)
    robust = sum(1 for i in range(n) if i % 3 in (0, 1))
    return Fraction(strict, n), Fraction(robust, n)


def _scripted_lm():
    from lm_eval.api.model import LM

    class Scripted(LM):
        """Answers each prompt from the tables above; records what it was asked."""

        def __init__(self) -> None:
            super().__init__()
            self.requests: list[tuple[str, dict]] = []

        def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
            out = []
            for req in requests:
                prompt, gen_kwargs = req.args
                self.requests.append((prompt, gen_kwargs))
                out.append(self._answer(prompt))
            return out

        def _answer(self, prompt: str) -> str:
            for key, (response, _, _) in IFEVAL.items():
                if prompt.strip() == next(r["prompt"] for r in _rows("google__IFEval/train.jsonl") if r["key"] == key):
                    return response
            for task, items in GOLD.items():
                for i, (probe, gold, n) in enumerate(items):
                    if probe in prompt:
                        return _response(task, i, gold, n)
            raise AssertionError(f"scripted model got an unknown prompt: {prompt[:200]!r}")

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            raise AssertionError("karma tasks are generative")

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            raise AssertionError("karma tasks are generative")

    return Scripted()


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory):
    import lm_eval
    from lm_eval.tasks import TaskManager

    old = os.environ.get("KARMA_DATA_DIR")
    os.environ["KARMA_DATA_DIR"] = str(FIXTURES)
    try:
        lm = _scripted_lm()
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=["karma"],
            log_samples=True,
            task_manager=TaskManager(include_path=[str(tasks_dir())], include_defaults=False),
        )
    finally:
        if old is None:
            os.environ.pop("KARMA_DATA_DIR")
        else:
            os.environ["KARMA_DATA_DIR"] = old
    return lm, results


@pytest.mark.parametrize("task", sorted(GOLD))
def test_multiple_choice_scores_are_exact(scripted_run, task: str) -> None:
    _, results = scripted_run
    res = results["results"][task]
    strict, robust = _expected(task)
    assert res["sample_len"] == len(GOLD[task])
    assert res["exact_match,strict-match"] == pytest.approx(float(strict), abs=1e-12)
    assert res["exact_match,robust-extract"] == pytest.approx(float(robust), abs=1e-12)
    assert robust > strict  # the two filters really differ on these outputs


def test_ifeval_scores_follow_the_instructions(scripted_run) -> None:
    _, results = scripted_run
    res = results["results"]["karma_ifeval"]
    strict = [v[1] for v in IFEVAL.values()]
    loose = [v[2] for v in IFEVAL.values()]
    assert res["prompt_level_strict_acc,none"] == pytest.approx(sum(all(s) for s in strict) / 5)  # 3/5
    assert res["inst_level_strict_acc,none"] == pytest.approx(sum(map(sum, strict)) / 8)  # 6/8
    assert res["prompt_level_loose_acc,none"] == pytest.approx(sum(all(s) for s in loose) / 5)  # 4/5
    assert res["inst_level_loose_acc,none"] == pytest.approx(sum(map(sum, loose)) / 8)  # 7/8
    per_doc = {s["doc"]["key"]: s["inst_level_strict_acc"] for s in results["samples"]["karma_ifeval"]}
    assert per_doc == {k: v[1] for k, v in IFEVAL.items()}


def test_groups_aggregate_their_members(scripted_run) -> None:
    _, results = scripted_run
    r = results["results"]
    for group, members in (
        ("karma-knowledge", ["karma_mmlu_stem", "karma_mmlu_pro"]),
        ("karma-reasoning", ["karma_arc_easy", "karma_arc_challenge", "karma_hellaswag"]),
    ):
        for key in ("exact_match,strict-match", "exact_match,robust-extract"):
            assert r[group][key] == pytest.approx(sum(r[m][key] for m in members) / len(members))
    assert r["karma-instruction"]["prompt_level_strict_acc,none"] == r["karma_ifeval"]["prompt_level_strict_acc,none"]
    assert set(results["group_subtasks"]["karma"]) == {"karma-instruction", "karma-knowledge", "karma-reasoning"}


def test_prompts_and_generation_settings(scripted_run) -> None:
    lm, _ = scripted_run
    mc = [(p, k) for p, k in lm.requests if "Options:" in p]
    assert len(mc) == sum(len(v) for v in GOLD.values())
    for prompt, kwargs in mc:
        assert prompt.startswith("The following is a multiple choice question.")
        assert 'finish your answer with "The answer is (X)"' in prompt
        assert prompt.rstrip().endswith("Answer:")
        assert kwargs["until"] == ["Question:"] and kwargs["max_gen_toks"] == 128
        assert kwargs["do_sample"] is False
    ten = next(p for p, _ in mc if "7! / 5!" in p)
    assert "(J) 7" in ten and "(K)" not in ten
    na = next(p for p, _ in mc if "Berlin Wall" in p)
    assert "(E) 1991" in na and "N/A" not in na
    numeric = next(p for p, _ in mc if "renewable resource" in p)
    assert "(C) wind" in numeric and "(1)" not in numeric
    henna = next(p for p, _ in mc if "henna" in p)
    assert "[" not in henna and "(C) Paint your nails" in henna
    ifeval = [(p, k) for p, k in lm.requests if "Options:" not in p]
    assert len(ifeval) == 5 and all(k["max_gen_toks"] == 1280 for _, k in ifeval)


def test_num_fewshot_uses_the_dev_split_and_shows_the_answer_form(monkeypatch) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("KARMA_DATA_DIR", str(FIXTURES))
    lm = _scripted_lm()
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=["karma_mmlu_stem", "karma_arc_challenge"],
        num_fewshot=2,
        limit=1,
        task_manager=TaskManager(include_path=[str(tasks_dir())], include_defaults=False),
    )
    assert out["n-shot"] == {"karma_mmlu_stem": 2, "karma_arc_challenge": 2}
    mmlu = next(p for p, _ in lm.requests if "field extension" in p)
    dev = [r["question"] for r in _rows("cais__mmlu/all/dev.jsonl")][:2]
    assert mmlu.index(dev[0]) < mmlu.index(dev[1]) < mmlu.index("field extension")
    assert mmlu.count("Answer: The answer is (") == 2 and mmlu.rstrip().endswith("Answer:")
    arc = next(p for p, _ in lm.requests if "meteorite impact" in p)
    assert "rubbing them" in arc and "Answer: The answer is (A)." in arc and "Answer: The answer is (B)." in arc
