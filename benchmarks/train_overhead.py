"""Step-time overhead of ``karma train dpo`` against a plain TRL ``DPOTrainer`` script.

The same tiny DPO job (tiny random Llama from tests/tiny_model.py, a KARMA set written by
tests/karma_set.py, the settings of recipes/tiny/dpo.yaml with more steps) runs through

* **karma**: :func:`karma_hf.train.train` — TrlParser, KARMA data loading, ``KarmaCallback``
  (provenance, per-batch kinship statistics gathered at every log, card section);
* **plain**: ``TrlParser((ScriptArguments, DPOConfig, ModelConfig))`` + ``load_dataset`` +
  ``DPOTrainer(...).train()`` + ``save_model``, as TRL's own script does;

alternating (karma, plain, karma, ...) in one process, ``torch.set_num_threads(1)``. The step
time of a run is the median interval between consecutive ``on_step_end`` events (a callback
registered last in both arms, so the interval covers data fetching, forward/backward, optimizer
and every other callback, logging included), skipping the first ``--warmup`` steps. Reported:
the median over runs of each arm and their ratio (karma / plain; target <= 1.03), plus the
median of the paired per-round ratios.

    python benchmarks/train_overhead.py --rounds 5 --steps 48 [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _timer():
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.stamps: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.stamps.append(time.perf_counter())

    return StepTimer()


def _step_time(stamps: list[float], warmup: int) -> float:
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)][warmup:]
    return statistics.median(gaps)


def _argv(model: Path, data: Path, out: Path, steps: int) -> list[str]:
    return [
        "--config",
        str(ROOT / "recipes/tiny/dpo.yaml"),
        "--model_name_or_path",
        str(model),
        "--dataset_name",
        str(data),
        "--output_dir",
        str(out),
        "--max_steps",
        str(steps),
        "--logging_steps",
        "4",
    ]


def run_karma(model: Path, data: Path, out: Path, steps: int) -> list[float]:
    from karma_hf.train import train

    timer = _timer()
    train("dpo", _argv(model, data, out, steps), callbacks=[timer])
    return timer.stamps


def run_plain(model: Path, data: Path, out: Path, steps: int) -> list[float]:
    from datasets import load_dataset
    from trl import DPOConfig, DPOTrainer, ModelConfig, ScriptArguments, TrlParser

    script, training, model_args = TrlParser((ScriptArguments, DPOConfig, ModelConfig)).parse_args_and_config(
        _argv(model, data, out, steps)
    )
    files = {"train": f"{script.dataset_config}/train-00000-of-00001.parquet"}
    train_ds = load_dataset(str(data), data_files=files)["train"]
    timer = _timer()
    trainer = DPOTrainer(model=model_args.model_name_or_path, args=training, train_dataset=train_ds, callbacks=[timer])
    trainer.train()
    trainer.save_model(training.output_dir)
    return timer.stamps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="runs per arm (interleaved)")
    ap.add_argument("--steps", type=int, default=48, help="optimizer steps per run")
    ap.add_argument("--warmup", type=int, default=4, help="leading step intervals ignored")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = ap.parse_args()

    import logging

    import torch
    import transformers
    from datasets.utils.logging import disable_progress_bar
    from karma_set import write_karma_set
    from rich.console import Console
    from rich.table import Table
    from tiny_model import build_tiny_model

    torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' gradient_checkpointing rename
    transformers.logging.set_verbosity_error()
    disable_progress_bar()
    logging.getLogger("karma_hf").setLevel(logging.ERROR)
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_tiny_model(tmp / "tiny")
        data = write_karma_set(tmp / "set", modes=("score",), n_train=a.steps * 4, n_test=8)
        times: dict[str, list[float]] = {"karma": [], "plain": []}
        walls: dict[str, list[float]] = {"karma": [], "plain": []}
        for r in range(a.rounds):
            for arm, fn in (("karma", run_karma), ("plain", run_plain)):
                t0 = time.perf_counter()
                with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # TRL's log printer
                    stamps = fn(model, data, tmp / f"{arm}-{r}", a.steps)
                walls[arm].append(time.perf_counter() - t0)
                times[arm].append(_step_time(stamps, a.warmup))
                console.log(
                    f"round {r + 1}/{a.rounds} {arm}: step {times[arm][-1] * 1e3:.2f} ms, run {walls[arm][-1]:.2f} s"
                )
    med = {arm: statistics.median(v) for arm, v in times.items()}
    paired = [k / p for k, p in zip(times["karma"], times["plain"], strict=False)]
    result = {
        "rounds": a.rounds,
        "steps": a.steps,
        "warmup_intervals_skipped": a.warmup,
        "torch_threads": a.threads,
        "step_ms": {arm: [round(t * 1e3, 3) for t in v] for arm, v in times.items()},
        "median_step_ms": {arm: round(v * 1e3, 3) for arm, v in med.items()},
        "ratio_of_medians": round(med["karma"] / med["plain"], 4),
        "median_paired_ratio": round(statistics.median(paired), 4),
        "median_run_s": {arm: round(statistics.median(v), 2) for arm, v in walls.items()},
        "hardware": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
    }
    table = Table(title=f"karma train dpo vs plain DPOTrainer ({a.rounds} rounds x {a.steps} steps)")
    for col in ("arm", "median step ms", "per-run step ms", "median run s"):
        table.add_column(col, justify="right" if col != "arm" else "left")
    for arm in ("karma", "plain"):
        table.add_row(
            arm,
            f"{result['median_step_ms'][arm]:.2f}",
            " ".join(f"{t:.1f}" for t in result["step_ms"][arm]),
            f"{result['median_run_s'][arm]:.2f}",
        )
    Console().print(table)
    Console().print(
        f"step-time ratio karma/plain: [bold]{result['ratio_of_medians']:.3f}[/] (ratio of medians), "
        f"{result['median_paired_ratio']:.3f} (median of paired rounds); target <= 1.03"
    )
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
