"""Two-process DDP training on CPU under torchrun: one writer for provenance, card, stats and eval."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from karma_set import write_karma_set

REPO = Path(__file__).resolve().parents[1]

# Loaded by every process of the job (PYTHONPATH): logs which rank writes which file.
SITECUSTOMIZE = """
import os, pathlib
_orig = pathlib.Path.write_text
def _logged(self, *a, **k):
    with open(os.environ["KARMA_WRITE_LOG"], "a") as f:
        f.write(f"{os.environ.get('RANK', '-')} {self.name}\\n")
    return _orig(self, *a, **k)
pathlib.Path.write_text = _logged
if "RANK" in os.environ:
    with open(os.environ["KARMA_WRITE_LOG"], "a") as f:
        f.write(f"{os.environ['RANK']} <hook-loaded>\\n")
"""


@pytest.mark.slow
def test_torchrun_two_processes_one_writer(tiny_model_dir, tmp_path):
    eval_args = []
    try:
        import karma_hf.evaluation.run  # noqa: F401

        eval_args = ["--karma_eval_tasks", "karma_arc_easy", "--karma_eval_limit", "2"]
    except ImportError:
        pass
    data = write_karma_set(tmp_path / "set", modes=("sim",))
    out = tmp_path / "ddp"
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "writes.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
        "KARMA_WRITE_LOG": str(log),
        "KARMA_DATA_DIR": str(REPO / "tests/fixtures/karma_data"),
        "OMP_NUM_THREADS": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--standalone",
        "-m",
        "karma_hf.cli",
        "train",
        "dpo",
        "--config",
        str(REPO / "recipes/tiny/dpo.yaml"),
        "--model_name_or_path",
        str(tiny_model_dir),
        "--dataset_name",
        str(data),
        "--dataset_config",
        "sim",
        "--output_dir",
        str(out),
        "--max_steps",
        "3",
        "--per_device_train_batch_size",
        "2",
        "--logging_steps",
        "1",
        *eval_args,
    ]
    # own process group, so a hung rank is killed with the launcher instead of outliving the test
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"torchrun job hung; stderr tail: {stderr[-2000:]}")
    assert proc.returncode == 0, stderr[-3000:]

    prov = json.loads((out / "karma_provenance.json").read_text())
    assert prov["world_size"] == 2 and prov["dataset"]["config"] == "sim"
    stats = json.loads((out / "karma_batch_stats.json").read_text())
    assert stats["rows"] == 3 * 2 * 2  # steps x per-device batch x processes, gathered over ranks
    writes = [line.split() for line in log.read_text().splitlines()]
    karma_writes = [(rank, name) for rank, name in writes if name.startswith("karma_")]
    assert {rank for rank, name in writes if name == "<hook-loaded>"} == {"0", "1"}
    assert {rank for rank, _ in karma_writes} == {"0"}  # rank 1 never writes
    assert {name for _, name in karma_writes} == {"karma_batch_stats.json", "karma_provenance.json"}
    assert stdout.count("karma train dpo") == 1  # the summary is printed by rank 0 only
    if eval_args:
        assert len(list((out / "karma_eval").glob("*/results_*.json"))) == 1
