"""A wheel built from the repo ships the karma tasks: lm-eval finds them from the installed copy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "karma_data"

CHECK = textwrap.dedent("""
    import json, subprocess, sys
    from pathlib import Path
    from lm_eval.tasks import TaskManager
    path = subprocess.run([sys.executable, "-m", "karma_hf.cli", "tasks-path"], capture_output=True,
                          text=True, check=True).stdout.strip()
    manager = TaskManager(include_path=[path], include_defaults=False)
    task = manager.load(["karma_arc_challenge"])  # builds the task: utils.py, template, data loader
    print(json.dumps({"path": path, "names": sorted(manager.all_tasks),
                      "groups": sorted(manager.all_groups), "loaded": repr(task)[:2000]}))
""")


@pytest.mark.slow
def test_wheel_install_has_tasks_and_groups(tmp_path: Path) -> None:
    # Build from a copy so the build leaves nothing in the working tree.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("karma_hf", "tasks", "hub_cards", "recipes"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = wheels.glob("karma_hf-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(target),
        "KARMA_DATA_DIR": str(FIXTURES),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=outside, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(info["path"]).is_relative_to(target), info["path"]  # the installed copy, not the repo
    cot = [f"karma-cot-{t}" for t in ("arc_challenge", "arc_easy", "hellaswag", "mmlu_pro", "mmlu_stem")]
    assert info["names"] == [
        "karma",
        "karma-cot",
        *cot,
        "karma-instruction",
        "karma-knowledge",
        "karma-reasoning",
        "karma_arc_challenge",
        "karma_arc_easy",
        "karma_hellaswag",
        "karma_ifeval",
        "karma_mmlu_pro",
        "karma_mmlu_stem",
    ]
    assert info["groups"] == ["karma", "karma-cot", "karma-instruction", "karma-knowledge", "karma-reasoning"]
    assert "karma_arc_challenge" in info["loaded"]
    shipped = {p.name for p in Path(info["path"]).iterdir()}
    assert {"utils.py", "_karma_mc_yaml", "karma.yaml", "karma_ifeval.yaml"} <= shipped
