"""The chain-of-thought protocol (karma-cot-*): per-subject worked examples, prompt, names, CLI run.

The fixtures' few-shot splits hold examples of several subjects, so "the examples for a physics
item come from physics" is checked against the raw files, independently of tasks/utils.py.
"""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from karma_hf.errors import KarmaError
from karma_hf.resources import tasks_dir
from karma_hf.tasks import utils

FIXTURES = Path(__file__).parent / "fixtures" / "karma_data"
DIRECT = [
    "karma_arc_challenge",
    "karma_arc_easy",
    "karma_hellaswag",
    "karma_ifeval",
    "karma_mmlu_pro",
    "karma_mmlu_stem",
]
COT = [
    "karma-cot-arc_challenge",
    "karma-cot-arc_easy",
    "karma-cot-hellaswag",
    "karma-cot-mmlu_pro",
    "karma-cot-mmlu_stem",
]
BIN = Path(sys.executable).parent


def _rows(rel: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / rel).read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def fixture_data(monkeypatch):
    monkeypatch.setenv("KARMA_DATA_DIR", str(FIXTURES))
    return FIXTURES


def _cot_docs(source: str, process) -> list[dict]:
    return list(process(utils.load_cot_source(source)[utils.get_source(source).splits[0]]))


def test_mmlu_pro_examples_come_from_the_items_own_category(fixture_data) -> None:
    validation = _rows("TIGER-Lab__MMLU-Pro/validation.jsonl")
    docs = _cot_docs("mmlu_pro", utils.process_mmlu_pro)
    assert len(docs) == len(_rows("TIGER-Lab__MMLU-Pro/test.jsonl"))
    for doc in docs:
        same = [r for r in validation if r["category"] == doc["category"]][: utils.COT_SHOTS]
        assert doc["cot_shot_ids"] == [str(r["question_id"]) for r in same]
        prompt = utils.doc_to_text_cot(doc)
        for row in validation:
            shown = row["question"] in prompt
            assert shown == (row in same), (doc["category"], row["category"])
        for row in same:  # MMLU-Pro's own reasoning, with "A: " turned into the "Answer: " cue
            assert "Answer: " + row["cot_content"].removeprefix("A: ") in prompt
        assert prompt.endswith(
            f"Question:\n{doc['question']}\nOptions:\n"
            + "\n".join(f"{utils.LETTERS[i]}. {o}" for i, o in enumerate(doc["options"]))
            + "\nAnswer: Let's think step by step."
        )
    physics = next(d for d in docs if d["category"] == "physics")
    prompt = utils.doc_to_text_cot(physics)
    assert "refracting telescope" in prompt and "thermodynamic processes" in prompt
    assert "Brahman" not in prompt and "recombinant DNA" not in prompt and "characteristic of the ring" not in prompt


def test_mmlu_examples_come_from_the_subjects_dev_items(fixture_data) -> None:
    dev = _rows("cais__mmlu/all/dev.jsonl")
    docs = _cot_docs("mmlu", utils.process_mmlu_stem)
    assert {d["subject"] for d in docs} <= utils.MMLU_STEM_SUBJECTS and len(docs) == 6
    for doc in docs:
        same = [i for i, r in enumerate(dev) if r["subject"] == doc["subject"]][: utils.COT_SHOTS]
        assert doc["cot_shot_ids"] == [f"dev#{i}" for i in same]
        prompt = utils.doc_to_text_cot(doc)
        for i, row in enumerate(dev):
            assert (row["question"] in prompt) == (i in same)
    hs_physics = next(d for d in docs if d["subject"] == "high_school_physics")
    prompt = utils.doc_to_text_cot(hs_physics)
    # real dev questions get chain-of-thought-hub's rationale (shipped by lm-eval) ...
    assert "At the closed end of the pipe, the particles cannot have any net displacement" in prompt
    assert "power is given by voltage times current" in prompt
    # ... the fixture's hand-written one has none, so it shows its answer only
    assert "depends on\nOptions:\nA. the shell radius only" in prompt
    assert "D. nothing; it is zero\nAnswer: The answer is (B).\n\n" in prompt
    assert hs_physics["cot_words"] == "high school physics"


def test_zero_shot_sources_have_no_examples(fixture_data) -> None:
    for source, process in (("arc_easy", utils.process_arc), ("hellaswag", utils.process_hellaswag)):
        for doc in _cot_docs(source, process):
            assert doc["cot_shot_ids"] == [] and utils.doc_to_text_cot(doc).startswith("Question:\n")


def test_a_subject_without_examples_is_an_error(monkeypatch, tmp_path) -> None:
    data = tmp_path / "data"
    (data / "TIGER-Lab__MMLU-Pro").mkdir(parents=True)
    (data / "TIGER-Lab__MMLU-Pro" / "test.jsonl").write_text((FIXTURES / "TIGER-Lab__MMLU-Pro/test.jsonl").read_text())
    (data / "TIGER-Lab__MMLU-Pro" / "validation.jsonl").write_text(
        "\n".join(json.dumps(r) for r in _rows("TIGER-Lab__MMLU-Pro/validation.jsonl") if r["category"] != "history")
        + "\n"
    )
    monkeypatch.setenv("KARMA_DATA_DIR", str(data))
    with pytest.raises(KarmaError, match="no validation example of subject 'history'"):
        utils.load_cot_source("mmlu_pro")


def test_names_keep_the_protocols_apart() -> None:
    """'karma_*' is the six direct tasks, `karma` their group; the CoT tasks are only in `karma-cot`."""
    from karma_hf.evaluation.run import karma_task_index

    index = karma_task_index()
    assert sorted(fnmatch.filter(index.names, "karma_*")) == DIRECT
    assert sorted(index.leaves("karma")) == DIRECT
    assert sorted(index.leaves("karma-cot")) == COT
    assert sorted(fnmatch.filter(index.names, "karma-cot-*")) == COT
    for group in ("karma", "karma-knowledge", "karma-reasoning", "karma-instruction"):
        assert not set(index.leaves(group)) & set(COT)
    assert {index.tasks[t] for t in COT} == {"mmlu", "mmlu_pro", "arc_easy", "arc_challenge", "hellaswag"}


def _scripted_cot_lm():
    from lm_eval.api.model import LM

    class Reasoner(LM):
        """Reasons a little, then gives the gold answer of the fixture item (found by its question)."""

        def __init__(self) -> None:
            super().__init__()
            self.requests: list[tuple[str, dict]] = []

        def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
            out = []
            for req in requests:
                prompt, kwargs = req.args
                self.requests.append((prompt, kwargs))
                out.append(" First, recall the definitions. Then compare the options. The answer is (A).")
            return out

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            raise AssertionError("generative")

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            raise AssertionError("generative")

    return Reasoner()


def test_cot_group_through_lm_eval(fixture_data) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    lm = _scripted_cot_lm()
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=["karma-cot"],
        num_fewshot=3,
        log_samples=True,
        task_manager=TaskManager(include_path=[str(tasks_dir())], include_defaults=False),
    )
    assert sorted(out["group_subtasks"]["karma-cot"]) == COT
    assert all(out["n-shot"][t] == 0 for t in COT)  # the worked examples are in the prompt; --num_fewshot ignored
    for prompt, kwargs in lm.requests:
        assert prompt.rstrip().endswith("Answer: Let's think step by step.")
        assert kwargs["max_gen_toks"] == 2048 and kwargs["until"] == ["Question:"] and kwargs["do_sample"] is False
        assert 'finish your answer with "the answer is (X)"' in prompt
    pro = next(p for p, _ in lm.requests if "net force acts on it" in p)
    assert pro.startswith("The following are multiple choice questions (with answers) about physics.")
    assert pro.count("Answer: Let's think step by step.") == 3  # two physics examples + the item
    arc = next(p for p, _ in lm.requests if "measuring the mass of a rock" in p)
    assert arc.startswith("The following is a multiple choice question about grade-school science.")
    # every response says "(A)": exact_match is the share of gold-A items, for both filters
    for task in COT:
        samples = [s for s in out["samples"][task] if s["filter"] == "robust-extract"]
        expected = sum(s["target"] == "A" for s in samples) / len(samples)
        for key in ("exact_match,robust-extract", "exact_match,strict-match"):
            assert out["results"][task][key] == pytest.approx(expected)


@pytest.mark.slow
def test_karma_eval_runs_the_cot_group_on_the_tiny_model(tiny_model_dir: Path, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KARMA_DATA_DIR": str(FIXTURES),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    out = tmp_path / "out"
    cmd = [
        str(BIN / "karma"),
        "eval",
        "--model_args",
        f"pretrained={tiny_model_dir}",
        "--tasks",
        "karma-cot",
        "--limit",
        "2",
        "--gen_kwargs",
        "max_gen_toks=16",
        "--log_samples",
        "--output_path",
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    [results] = sorted(out.glob("*/results_*.json"))
    data = json.loads(results.read_text())
    assert sorted(data["groups"]) == ["karma-cot"] and sorted(data["results"]) == sorted(["karma-cot", *COT])
    for task in COT:
        assert data["n-samples"][task]["effective"] == 2
        assert 0.0 <= data["results"][task]["exact_match,robust-extract"] <= 1.0
    [sample] = [
        json.loads(line) for line in next(out.glob("*/samples_karma-cot-mmlu_pro_*.jsonl")).read_text().splitlines()
    ][:1]
    assert sample["doc"]["cot_shot_ids"] and sample["arguments"]["gen_args_0"]["arg_0"].endswith(
        "Answer: Let's think step by step."
    )
