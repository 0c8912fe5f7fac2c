"""Every mode of a real build trains: `karma train` on score, sim, score_sim and the rlaif baseline.

The rlaif baseline pairs models that have no benchmark scores (no kinship, no S_pref: null in the
set); the batch statistics count those rows as rows without kinship, and provenance records them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from karma_hf.cli import main
from karma_hf.layout import modes

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "ultrafeedback_mini.jsonl"
TINY = REPO / "recipes" / "tiny"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    from karma_hf.pairs.builder import build

    root = tmp_path_factory.mktemp("modes")
    return build(
        FIXTURE,
        scores="ultrafeedback-paper",
        test_size=3,
        output=root / "set",
        cache_dir=root / "cache",
        ignore_unknown_models=True,
        include_ultralm_65b=True,
    ).output


@pytest.mark.parametrize("stage,mode", [*(("dpo", m) for m in modes()), ("sft", "rlaif")])
def test_every_mode_of_a_real_build_trains_one_step(stage, mode, built, tiny_model_dir, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / f"{stage}-{mode}"
    argv = [
        "train",
        stage,
        "--config",
        TINY / f"{stage}.yaml",
        "--model_name_or_path",
        tiny_model_dir,
        "--dataset_name",
        built,
        "--dataset_config",
        mode,
        "-o",
        out,
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "2",
        "--logging_steps",
        "1",
    ]
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    assert exc.value.code == 0
    rows = pq.read_table(built / mode / "train-00000-of-00001.parquet", columns=["kinship"]).column("kinship")
    stats = json.loads((out / "karma_batch_stats.json").read_text())
    assert stats["disabled"] is None and stats["rows"] == 2
    assert stats["rows_with_kinship"] <= 2 and (stats["kinship_mean"] is None) == (stats["rows_with_kinship"] == 0)
    prov = json.loads((out / "karma_provenance.json").read_text())
    assert prov["dataset"]["config"] == mode and prov["dataset"]["num_train_rows"] == len(rows)
    assert "## KARMA provenance" in (out / "README.md").read_text()
    if mode == "rlaif":
        assert rows.null_count > 0  # the baseline really has pairs without kinship (ultralm-65b)
