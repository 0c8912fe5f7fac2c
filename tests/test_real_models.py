"""Real-model tier: the five multiple-choice karma_* tasks on two real small models, offline.

`karma eval` (the CLI, in a subprocess) runs SmolLM2-135M-Instruct with its chat template and
Gemma 3 270M (a *base* model) without one, on real benchmark items (tests/real_models.py:
ARC *validation* stands in for ARC test; MMLU-Pro is the schema-true fixture), with
``--limit 8 --log_samples``. The assertions read the logged samples: the default metric's
extractor (robust-extract) must find an answer in at least 90% of SmolLM2's outputs, i.e.
the tasks measure what the model answered rather than whether it used the requested format.

Budget: the issue asked for 8 minutes on a 2-core CPU including the GGUF conversion from
nothing; measured here 527 s to 1044 s with other work sharing the machine (docs/tasks.md), so
over it under load. ``KARMA_REAL_TIER_OUT=DIR`` keeps the outputs;
``python scripts/real_tier_table.py DIR`` prints the accuracy table of docs/tasks.md from them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import REAL_LIMIT as LIMIT
from conftest import REAL_TASKS as TASKS
from real_models import read_samples, summarise

pytestmark = [pytest.mark.real, pytest.mark.slow]

# The runs themselves are the session fixture ``real_runs`` of tests/conftest.py (shared with
# tests/test_real_pool.py, which uses them as the pool's scores).
SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _samples(run: Path, task: str, filter_name: str | None = None) -> list[dict]:
    rows = read_samples(run, task)
    return [r for r in rows if filter_name is None or r["filter"] == filter_name]


def test_every_task_ran_on_both_models_with_the_limit(real_runs) -> None:
    assert sorted(real_runs) == ["SmolLM2-135M-Instruct", "gemma-3-270m"]
    for run in real_runs.values():
        [results] = sorted(run.glob("*/results_*.json"))
        data = json.loads(results.read_text())
        assert sorted(data["results"]) == sorted(TASKS)
        for task in TASKS:
            assert data["n-samples"][task]["effective"] == LIMIT
            assert {"exact_match,robust-extract", "exact_match,strict-match"} <= data["results"][task].keys()
            assert len(_samples(run, task, "robust-extract")) == LIMIT


def test_each_model_gets_its_own_prompt_format(real_runs) -> None:
    for task in TASKS:
        chat = _samples(real_runs["SmolLM2-135M-Instruct"], task, "robust-extract")
        plain = _samples(real_runs["gemma-3-270m"], task, "robust-extract")
        for sample in chat:
            prompt = sample["arguments"]["gen_args_0"]["arg_0"]
            assert prompt.startswith("<|im_start|>system\nThe following is a multiple choice question.")
            assert prompt.endswith("Answer:<|im_end|>\n<|im_start|>assistant\n")
        for sample in plain:
            prompt = sample["arguments"]["gen_args_0"]["arg_0"]
            assert prompt.startswith("The following is a multiple choice question.") and prompt.endswith("Answer:")


def test_smollm2_outputs_commit_to_an_answer(real_runs) -> None:
    """robust-extract reads an answer in >= 90% of SmolLM2-Instruct's outputs (all five tasks)."""
    run = real_runs["SmolLM2-135M-Instruct"]
    samples = [s for task in TASKS for s in _samples(run, task, "robust-extract")]
    missed = [s["resps"][0][0] for s in samples if s["filtered_resps"][0] == "[invalid]"]
    rate = 1 - len(missed) / len(samples)
    assert rate >= 0.9, f"extraction rate {rate:.2f}; outputs without an answer: {missed}"


def test_robust_extract_reads_every_letter_strict_match_reads(real_runs) -> None:
    for run in real_runs.values():
        for task in TASKS:
            strict = {s["doc_id"]: s["filtered_resps"][0] for s in _samples(run, task, "strict-match")}
            robust = {s["doc_id"]: s["filtered_resps"][0] for s in _samples(run, task, "robust-extract")}
            for doc_id, letter in strict.items():
                if letter != "[invalid]":
                    assert robust[doc_id] == letter, (task, doc_id)


def test_accuracy_table(real_runs, capsys) -> None:
    """The per-task table of docs/tasks.md (printed with `pytest -s`; kept under KARMA_REAL_TIER_OUT)."""
    sys.path.insert(0, str(SCRIPTS))
    from real_tier_table import table

    rows = {name: {task: summarise(read_samples(run, task)) for task in TASKS} for name, run in real_runs.items()}
    for per_task in rows.values():
        for summary in per_task.values():
            assert summary["items"] == LIMIT and 0.0 <= summary["accuracy"] <= 1.0
            assert 0.0 < summary["chance"] <= 0.5
    text = table(real_runs, TASKS)
    assert all(name in text for name in real_runs) and all(task in text for task in TASKS)
    next(iter(real_runs.values())).parent.joinpath("table.md").write_text(text)
    with capsys.disabled():
        print("\n" + text)
