"""`karma build` killed mid-write (real SIGINT / SIGKILL): nothing is lost, nothing half-written is readable.

A build writes into a hidden sibling ``.<name>.partial-<pid>`` and moves it into place only when
complete. Each case starts a real ``karma build`` subprocess on a few-MB UltraFeedback-format
parquet, waits until the partial folder holds a parquet file (the write phase has begun), and
signals it. Afterwards a previous build is intact byte for byte and loads with its exact row
counts, no partial data is readable through ``datasets.load_dataset``, and a rerun succeeds and
removes the leftover of a killed run.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "ultrafeedback_mini.jsonl"
MODELS = [
    "gpt-4",
    "gpt-3.5-turbo",
    "bard",
    "llama-2-7b-chat",
    "llama-2-13b-chat",
    "llama-2-70b-chat",
    "wizardlm-13b",
    "wizardlm-70b",
    "vicuna-33b",
    "mpt-30b-chat",
    "alpaca-7b",
    "starchat",
]
KARMA = [sys.executable, "-m", "karma_hf.cli"]


def make_source(path: Path, rows: int = 6000, seed: int = 0) -> Path:
    """An UltraFeedback-format parquet: ``rows`` instructions x 4 completions of ~600 characters."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    words = np.array(
        [
            "the",
            "model",
            "answer",
            "explains",
            "each",
            "step",
            "with",
            "examples",
            "and",
            "a",
            "summary",
            "of",
            "key",
            "facts",
            "about",
            "science",
            "history",
            "code",
            "math",
            "language",
            "travel",
            "health",
            "cooking",
            "music",
            "art",
            "data",
            "python",
            "list",
        ]
    )
    pool = [" ".join(words[rng.integers(0, len(words), 110)]) for _ in range(512)]
    n = rows * 4
    picks = np.argsort(rng.random((rows, len(MODELS))), axis=1)[:, :4].reshape(-1)
    ratings = rng.integers(1, 6, size=(4, n)).astype(str)
    aspect = lambda k: pa.StructArray.from_arrays([pa.array(ratings[k])], names=["Rating"])  # noqa: E731
    annotations = pa.StructArray.from_arrays(
        [aspect(0), aspect(1), aspect(2), aspect(3)],
        names=["helpfulness", "honesty", "instruction_following", "truthfulness"],
    )
    completions = pa.StructArray.from_arrays(
        [
            pa.array(np.array(MODELS)[picks]),
            pa.array([pool[i] for i in rng.integers(0, 512, n)]),
            annotations,
            pa.array(rng.integers(2, 21, n) / 2.0),
        ],
        names=["model", "response", "annotations", "overall_score"],
    )
    offsets = pa.array(np.arange(0, n + 1, 4), pa.int32())
    table = pa.table(
        {
            "source": pa.array(["evol_instruct"] * rows),
            "instruction": pa.array([f"Instruction {i}: {pool[i % 512][:80]}" for i in range(rows)]),
            "completions": pa.ListArray.from_arrays(offsets, completions),
        }
    )
    pq.write_table(table, str(path))
    return path


@pytest.fixture(scope="module")
def big_source(tmp_path_factory) -> Path:
    return make_source(tmp_path_factory.mktemp("interrupt-source") / "uf-big.parquet")


def _env(tmp: Path) -> dict[str, str]:
    return {**os.environ, "HF_DATASETS_CACHE": str(tmp / "hf-cache"), "PYTHONUNBUFFERED": "1"}


def _build(source: Path, out: Path, *extra: str) -> list[str]:
    return [
        *KARMA,
        "build",
        "--source",
        str(source),
        "--scores",
        "ultrafeedback-paper",
        "--test-size",
        "50",
        "--ignore-unknown-models",
        "-o",
        str(out),
        *extra,
    ]


def _partials(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.partial-*"))


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _load_counts(folder: Path, cache: Path) -> dict[str, dict[str, int]]:
    import datasets

    report = json.loads((folder / "build_report.json").read_text())
    return {
        mode: {
            split: datasets.load_dataset(str(folder), mode, cache_dir=str(cache))[split].num_rows
            for split in info["splits"]
            if info["splits"][split]
        }
        for mode, info in report["modes"].items()
    }


@pytest.fixture
def previous(tmp_path) -> Path:
    """A complete small build at ``tmp/builds/out`` (what ``--overwrite`` would replace)."""
    out = tmp_path / "builds" / "out"
    proc = subprocess.run(
        [
            *KARMA,
            "build",
            "--source",
            str(FIXTURE),
            "--scores",
            "ultrafeedback-paper",
            "--test-size",
            "3",
            "--ignore-unknown-models",
            "-o",
            str(out),
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def _interrupt(cmd: list[str], out: Path, sig: int, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run ``cmd`` and send ``sig`` as soon as its partial folder holds a parquet file."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.glob("*/*.parquet") for p in _partials(out)):
                proc.send_signal(sig)
                break
            time.sleep(0.002)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode not in (0, None), f"the build finished before it could be interrupted: {stderr[-1500:]}"
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("overwrite", [False, True], ids=["fresh", "overwrite"])
def test_interrupted_build_loses_nothing_and_leaves_nothing_readable(big_source, tmp_path, sig, overwrite, request):
    import datasets

    out = tmp_path / "builds" / "out"
    before = before_counts = None
    if overwrite:
        request.getfixturevalue("previous")
        before, before_counts = _digests(out), _load_counts(out, tmp_path / "load-cache")
    env = _env(tmp_path)
    proc = _interrupt(_build(big_source, out, *(["--overwrite"] if overwrite else [])), out, sig, env)

    if sig == signal.SIGINT:  # Ctrl-C: one line, exit 130, the partial folder removed on the way out
        assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert proc.stderr.strip().splitlines()[-1] == "error: interrupted"
        assert _partials(out) == [], proc.stderr[-2000:]
    else:  # SIGKILL: no cleanup possible; the leftover is hidden and never read
        assert proc.returncode == -signal.SIGKILL
    if overwrite:  # the previous build, byte for byte, with its exact row counts
        assert _digests(out) == before
        assert _load_counts(out, tmp_path / "load-cache") == before_counts
    else:  # nothing was published: there is nothing to load, and a hidden leftover is never data
        assert not out.exists()
        for folder in (out, out.parent):
            with pytest.raises(Exception):  # noqa: B017 - datasets: FileNotFoundError / EmptyDatasetError
                datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "load-cache"))

    # a rerun succeeds and removes the leftover of the killed run
    rerun = subprocess.run(
        [
            *KARMA,
            "build",
            "--source",
            str(FIXTURE),
            "--scores",
            "ultrafeedback-paper",
            "--test-size",
            "3",
            "--ignore-unknown-models",
            "--overwrite",
            "-o",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert _partials(out) == [] and not list(out.parent.glob(f".{out.name}.old-*"))
    assert (out / "README.md").is_file() and _load_counts(out, tmp_path / "load-cache")["sim"]["train"] > 0
