"""`karma train` on a KARMA set served by the loopback Hub (tests/minihub.py), in a fresh online process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from karma_set import write_karma_set

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """
import json, sys
from karma_hf.train import train
model, repo, sha, out = sys.argv[1:5]
common = ["--model_name_or_path", model, "--dataset_name", repo, "--max_steps", "2"]
dpo = train("dpo", ["--config", "recipes/tiny/dpo.yaml", *common, "--output_dir", out + "/dpo",
                    "--dataset_revision", sha])
sft = train("sft", ["--config", "recipes/tiny/sft.yaml", *common, "--output_dir", out + "/sft",
                    "--dataset_config", "sim"])
print(json.dumps([dpo.global_step, sft.global_step]))
"""


@pytest.mark.slow
def test_train_sft_and_dpo_from_the_hub(hub_server, tiny_model_dir, tmp_path):
    repo = "testuser/karma-train-source"
    sha = hub_server.hub.seed_folder(repo, write_karma_set(tmp_path / "set", modes=("score", "sim")))
    out = tmp_path / "runs"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_model_dir), repo, sha, str(out)],
        env=hub_server.env(tmp_path / "home", token=None),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [2, 2]
    for stage, mode in (("dpo", "score"), ("sft", "sim")):
        run = out / stage
        prov = json.loads((run / "karma_provenance.json").read_text())["dataset"]
        assert (prov["name"], prov["config"], prov["local_path"]) == (repo, mode, None)
        assert prov["resolved_revision"] == sha and prov["tau"] == pytest.approx(0.1)
        assert prov["data_files"]["train"] == [f"{mode}/train-00000-of-00001.parquet"]
        assert prov["notes"] == []
        card = (run / "README.md").read_text()
        assert f"datasets:\n- {repo}" in card and f"`{mode}`" in card and sha in card
        from transformers import AutoModelForCausalLM

        assert AutoModelForCausalLM.from_pretrained(run).config.vocab_size > 0
    assert json.loads((out / "dpo" / "karma_provenance.json").read_text())["dataset"]["revision"] == sha
