"""DPO training throughput (tokens/s) of a ~0.5B randomly initialised Llama in bf16, with and
without ``precompute_ref_log_probs``, through ``karma train dpo``.

Meant for one GPU; ``--smoke`` runs the same code path with a tiny model on CPU (to check the
script, not to measure). Tokens/s counts the non-padding tokens of chosen + rejected sequences
that the optimizer steps consumed (TRL's ``num_tokens`` metric) divided by the wall time of
those steps (interval between the first and last ``on_step_end`` after ``--warmup`` steps);
the one-off precompute pass at init is reported separately.

    python benchmarks/train_gpu_throughput.py --steps 40 --json benchmarks/results/gpu_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

# ~0.47B parameters with the tiny 1k-token vocabulary (32 layers x 14.7M, hidden 1280).
HALF_B = dict(hidden=1280, layers=32)


def _build_model(out: Path, smoke: bool) -> tuple[Path, int]:
    import torch
    from tiny_model import build_tiny_model
    from transformers import AutoModelForCausalLM

    kw = {} if smoke else HALF_B
    path = build_tiny_model(out, **kw)
    n = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).parameters())
    return path, n


def run(model: Path, data: Path, out: Path, steps: int, warmup: int, precompute: bool, smoke: bool) -> dict:
    from transformers import TrainerCallback

    from karma_hf.train import train

    class Tokens(TrainerCallback):
        def __init__(self) -> None:
            self.stamps: list[tuple[float, float]] = []
            self.t_begin = 0.0
            self.logged: list[tuple[float, int, float]] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.t_begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.stamps.append((time.perf_counter(), float(state.global_step)))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "num_tokens" in logs:
                self.logged.append((time.perf_counter(), state.global_step, float(logs["num_tokens"])))

    cb = Tokens()
    t0 = time.perf_counter()
    argv = [
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
        "--per_device_train_batch_size",
        "8",
        "--logging_steps",
        "5",
        "--max_length",
        "1024",
        "--precompute_ref_log_probs",
        str(precompute).lower(),
    ]
    if not smoke:
        argv += ["--bf16", "true", "--use_cpu", "false", "--dtype", "bfloat16"]
    train("dpo", argv, callbacks=[cb])
    (t_a, _), (t_b, _) = cb.stamps[warmup], cb.stamps[-1]
    after = [x for x in cb.logged if x[1] > warmup]  # TRL's num_tokens: cumulative non-padding tokens
    (l_a, s_a, n_a), (l_b, s_b, n_b) = after[0], after[-1]
    return {
        "precompute_ref_log_probs": precompute,
        "steps_timed": len(cb.stamps) - 1 - warmup,
        "tokens_per_s": (n_b - n_a) / (l_b - l_a) if l_b > l_a else None,
        "tokens_window_steps": [s_a, s_b],
        "steps_per_s": (len(cb.stamps) - 1 - warmup) / (t_b - t_a),
        "init_s": cb.t_begin - t0,
        "total_s": time.perf_counter() - t0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--smoke", action="store_true", help="tiny model on CPU (checks the script only)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()

    import torch
    from karma_set import write_karma_set

    if not a.smoke and not torch.cuda.is_available():
        sys.exit("no CUDA device: run on a GPU, or pass --smoke to check the script on CPU")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, n_params = _build_model(tmp / "model", a.smoke)
        data = write_karma_set(tmp / "set", modes=("score",), n_train=a.steps * 8, n_test=8)
        arms = [run(model, data, tmp / f"run-{p}", a.steps, a.warmup, p, a.smoke) for p in (False, True)]
    out = {
        "params": n_params,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "dtype": "float32 (smoke)" if a.smoke else "bfloat16",
        "arms": arms,
    }
    print(json.dumps(out, indent=2))
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
