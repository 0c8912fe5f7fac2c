"""`karma train` with karma_eval_tasks: real lm-eval on the saved tiny model, read back by load_scores/compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from karma_set import write_karma_set

from karma_hf.evaluation.compare import compare_runs
from karma_hf.scores import KARMA_TASKS, load_scores
from karma_hf.train import train

REPO = Path(__file__).resolve().parents[1]
KARMA_DATA = REPO / "tests" / "fixtures" / "karma_data"


@pytest.mark.slow
def test_train_then_karma_eval_writes_results_that_load_scores_reads(tiny_model_dir, tmp_path, monkeypatch):
    pytest.importorskip("karma_hf.evaluation.run")
    monkeypatch.setenv("KARMA_DATA_DIR", str(KARMA_DATA))
    data = write_karma_set(tmp_path / "set", modes=("score",))
    out = tmp_path / "run-score"
    result = train(
        "dpo",
        [
            "--config",
            str(REPO / "recipes/tiny/dpo.yaml"),
            "--model_name_or_path",
            str(tiny_model_dir),
            "--dataset_name",
            str(data),
            "--output_dir",
            str(out),
            "--max_steps",
            "2",
            "--karma_eval_tasks",
            "karma",
            "--karma_eval_limit",
            "2",
            "--save_strategy",
            "steps",
            "--save_steps",
            "2",
            "--karma_eval_on_save",
            "true",
        ],
    )
    files = sorted((out / "karma_eval").glob("*/results_*.json"))
    assert len(files) == 1 and result.eval_files == files
    # --karma_eval_on_save: the checkpoint was scored too, apart from the final model's results
    assert len(list((out / "karma_eval_checkpoints" / "checkpoint-2").glob("*/results_*.json"))) == 1
    raw = json.loads(files[0].read_text())
    assert raw["config"]["limit"] == 2 and set(KARMA_TASKS) <= set(raw["results"])
    table = load_scores(str(out / "karma_eval"))
    assert table.benchmarks == list(KARMA_TASKS) and len(table.models) == 1
    assert ((table.values >= 0) & (table.values <= 1)).all()
    prov = json.loads((out / "karma_provenance.json").read_text())
    assert prov["karma_eval"] == {"tasks": ["karma"], "limit": 2.0, "on_save": True}
    cmp = compare_runs([out])
    assert cmp.runs[0].mode == "score" and cmp.runs[0].stage == "dpo" and cmp.benchmarks == list(KARMA_TASKS)
