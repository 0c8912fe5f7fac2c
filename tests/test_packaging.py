"""The wheel carries the lm-eval tasks, the card templates and the presets as package data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_tasks_and_hub_cards(tmp_path: Path) -> None:
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    wheel = next(tmp_path.glob("karma_hf-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    task_yamls = sorted(Path(n).name for n in names if n.startswith("karma_hf/tasks/") and n.endswith(".yaml"))
    for task in (
        "karma_ifeval",
        "karma_mmlu_stem",
        "karma_mmlu_pro",
        "karma_hellaswag",
        "karma_arc_easy",
        "karma_arc_challenge",
    ):
        assert f"{task}.yaml" in task_yamls, task_yamls
    assert "karma_hf/tasks/utils.py" in names
    assert any(n.startswith("karma_hf/hub_cards/") and n.endswith(".md") for n in names)
    assert "karma_hf/presets/ultrafeedback-paper.csv" in names
    assert "karma_hf/presets/ultrafeedback-paper.json" in names
    assert "karma_hf/data/ultrafeedback_sample.parquet" in names
    assert "karma_hf/recipes/tiny/dpo.yaml" in names and "karma_hf/recipes/accelerate/zero3.yaml" in names
    assert "karma_hf/recipes/qwen2.5-7b-instruct/sft.yaml" in names
    assert "karma_hf/recipes/pipelines/tiny-cpu.yaml" in names and "karma_hf/recipes/pipelines/gpu-pool.yaml" in names
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert entry and "karma = karma_hf.cli:main" in zipfile.ZipFile(wheel).read(entry[0]).decode()
