"""Cost of `karma eval` per task: items/s and generated tokens per item, on a random model.

A randomly initialised model never emits EOS or a stop sequence, so every item costs the
task's full ``max_gen_toks`` (128 for the multiple-choice tasks, 1280 for IFEval): the
figures are the worst case a real model can cost. The model is built offline with
tests/tiny_model.py (locally trained tokenizer, random weights):

  --size tiny   hidden 64, 2 layers (~0.2 M parameters; CPU smoke run)
  --size 0.5b   hidden 1536, 24 layers (~0.5 B parameters; a Qwen2-0.5B-sized stack)

Three measurements, in one process, on the same model and items:

  1. end to end: ``karma_hf.evaluation.run.evaluate_model`` (what `karma eval` runs: lm-eval's own
     `run` command, task indexing, model load, all six tasks) with ``--batch_size auto``,
  2. per task: lm-eval's ``simple_evaluate`` on an already loaded ``HFLM`` (the batch size
     ``auto`` picks), timed per task (best of --repeats) -> items/s, generated tokens/item
     (responses re-tokenised), tokens/s,
  3. reference: plain ``model.generate`` (greedy, same batch size, same prompts, the same
     number of new tokens) -> tokens/s; the report gives karma tokens/s / reference tokens/s.

    python benchmarks/eval_cost.py --size tiny --limit 8 --device cpu
    python benchmarks/eval_cost.py --size tiny --limit 8 --device cpu --protocol cot --repeats 1
    python benchmarks/eval_cost.py --size 0.5b --limit 64 --device cuda   # on a GPU

``--protocol cot`` times the chain-of-thought tasks (karma-cot-*: 5-shot per-subject prompts,
``max_gen_toks`` 2048); the table also gives the prompt length in tokens per item.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "karma_data"
SIZES = {"tiny": {"hidden": 64, "layers": 2}, "0.5b": {"hidden": 1536, "layers": 24}}
#: the chain-of-thought protocol (group karma-cot): 5-shot per-subject prompts, max_gen_toks 2048
COT_TASKS = [
    "karma-cot-mmlu_stem",
    "karma-cot-mmlu_pro",
    "karma-cot-hellaswag",
    "karma-cot-arc_easy",
    "karma-cot-arc_challenge",
]
TASKS = [
    "karma_ifeval",
    "karma_mmlu_stem",
    "karma_mmlu_pro",
    "karma_hellaswag",
    "karma_arc_easy",
    "karma_arc_challenge",
]


def _hardware(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {name}, {os.cpu_count()} cores (torch {torch.__version__})"


def _build_model(size: str, arch: str, out: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from tiny_model import build_tiny_model

    if not (out / "config.json").exists():
        build_tiny_model(out, arch=arch, **SIZES[size])
        # The test fixture caps generation at 32 new tokens in generation_config.json, which
        # would override the tasks' max_gen_toks; a real checkpoint has no such cap.
        from transformers import GenerationConfig

        cfg = GenerationConfig.from_pretrained(out)
        cfg.max_new_tokens = None
        cfg.save_pretrained(out)
        # The CoT tasks generate up to 2048 tokens after a 5-shot prompt: give the model an
        # 8k context (random weights, rotary positions: any length works).
        from transformers import AutoConfig

        model_cfg = AutoConfig.from_pretrained(out)
        model_cfg.max_position_embeddings = 8192
        model_cfg.save_pretrained(out)
    return out


def _per_task(
    model_dir: Path, device: str, limit: int, tasks: list[str], batch_size: int, repeats: int
) -> tuple[list[dict], object]:
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from karma_hf.resources import tasks_dir

    lm = HFLM(pretrained=str(model_dir), device=device, batch_size=batch_size)
    manager = TaskManager(include_path=[str(tasks_dir())], include_defaults=False)
    rows = []
    for task in tasks:
        seconds = float("inf")
        for _ in range(repeats):  # best of N: the machine may be shared and noisy
            start = time.perf_counter()
            out = lm_eval.simple_evaluate(
                model=lm, tasks=[task], limit=limit, log_samples=True, task_manager=manager, verbosity="WARNING"
            )
            seconds = min(seconds, time.perf_counter() - start)
        samples = [s for s in out["samples"][task] if s["filter"] in ("strict-match", "none")]
        lengths = [len(lm.tokenizer(s["resps"][0][0], add_special_tokens=False).input_ids) for s in samples]
        prompt_lengths = [len(lm.tokenizer(s["arguments"][0][0], add_special_tokens=False).input_ids) for s in samples]
        max_gen = out["configs"][task]["generation_kwargs"]["max_gen_toks"]
        rows.append(
            {
                "task": task,
                "items": len(samples),
                "seconds": seconds,
                "items_per_s": len(samples) / seconds,
                "max_gen_toks": max_gen,
                "tokens_per_item": sum(lengths) / len(lengths),
                "prompt_tokens_per_item": sum(prompt_lengths) / len(prompt_lengths),
                "tokens_per_s": sum(lengths) / seconds,
                "prompts": [s["arguments"][0][0] for s in samples],
            }
        )
    return rows, lm


def _auto_batch_size(model_dir: Path, device: str) -> int:
    """The batch size lm-eval's ``--batch_size auto`` picks for generation on this model.

    Detected once here (lm-eval re-detects on every call, which would be timed per task);
    uses HFLM's detector, a private method, acceptable in a benchmark.
    """
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(model_dir), device=device, batch_size="auto")
    size = int(lm._detect_batch_size())
    del lm
    return size


def _reference(lm, prompts: list[str], new_tokens: int, batch: int, repeats: int) -> float:
    """tokens/s of plain greedy ``generate`` on the same prompts (forced to ``new_tokens``), best of N."""
    import torch

    tok, model = lm.tokenizer, lm.model
    tok.padding_side = "left"
    best = 0.0
    for _ in range(repeats):
        generated, start = 0, time.perf_counter()
        for i in range(0, len(prompts), batch):
            enc = tok(prompts[i : i + batch], return_tensors="pt", padding=True).to(model.device)
            with torch.no_grad():
                out = model.generate(
                    **enc,
                    max_new_tokens=new_tokens,
                    min_new_tokens=new_tokens,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                )
            generated += (out.shape[1] - enc["input_ids"].shape[1]) * out.shape[0]
        best = max(best, generated / (time.perf_counter() - start))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--arch", choices=["qwen2", "llama"], default="qwen2")
    ap.add_argument("--limit", type=int, default=8, help="items per task")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--tasks", default=None, help="comma-separated (default: the --protocol's tasks)")
    ap.add_argument(
        "--protocol",
        choices=["direct", "cot", "both"],
        default="direct",
        help="direct: the six karma_* tasks; cot: the five karma-cot-* tasks; both",
    )
    ap.add_argument("--repeats", type=int, default=3, help="per-task timings are the best of N runs")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()

    os.environ.setdefault("KARMA_DATA_DIR", str(FIXTURES))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from rich.console import Console
    from rich.table import Table

    from karma_hf.evaluation.run import evaluate_model

    torch.manual_seed(0)
    console = Console(width=150)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="karma-eval-cost-"))
    default = {"direct": TASKS, "cot": COT_TASKS, "both": TASKS + COT_TASKS}[args.protocol]
    tasks = [t for t in args.tasks.split(",") if t] if args.tasks else default
    model_dir = _build_model(args.size, args.arch, work / f"model-{args.arch}-{args.size}")
    n_params = sum(
        p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(model_dir).parameters()
    )
    hardware = _hardware(args.device)
    console.print(
        f"model {model_dir} ({n_params / 1e6:.1f} M parameters), {hardware}, "
        f"data {os.environ['KARMA_DATA_DIR']}, limit {args.limit}"
    )

    start = time.perf_counter()
    [results] = evaluate_model(
        str(model_dir),
        tasks=tasks,
        output_path=work / "karma-eval",
        limit=args.limit,
        batch_size="auto",
        device=args.device,
    )
    end_to_end = time.perf_counter() - start
    batch = _auto_batch_size(model_dir, args.device)

    rows, lm = _per_task(model_dir, args.device, args.limit, tasks, batch, args.repeats)
    for row in rows:
        ref = _reference(lm, row.pop("prompts"), row["max_gen_toks"], batch, args.repeats)
        row["reference_tokens_per_s"] = ref
        row["ratio_vs_reference"] = row["tokens_per_s"] / ref

    table = Table(title=f"karma eval cost: {args.size} {args.arch}, {n_params / 1e6:.1f} M params, {hardware}")
    for col in (
        "task",
        "items",
        "prompt tokens/item",
        "max_gen_toks",
        "gen tokens/item",
        "items/s",
        "tokens/s",
        "generate() tokens/s",
        "karma / generate()",
    ):
        table.add_column(col, justify="left" if col == "task" else "right")
    for r in rows:
        table.add_row(
            r["task"],
            str(r["items"]),
            f"{r['prompt_tokens_per_item']:.0f}",
            str(r["max_gen_toks"]),
            f"{r['tokens_per_item']:.1f}",
            f"{r['items_per_s']:.2f}",
            f"{r['tokens_per_s']:.0f}",
            f"{r['reference_tokens_per_s']:.0f}",
            f"{r['ratio_vs_reference']:.2f}",
        )
    console.print(table)
    items = sum(r["items"] for r in rows)
    console.print(
        f"end to end (`karma eval`, {len(tasks)} tasks, {items} items, incl. task indexing "
        f"and model load): {end_to_end:.1f} s; batch size chosen by auto: {batch}"
    )
    report = {
        "size": args.size,
        "arch": args.arch,
        "parameters": n_params,
        "hardware": hardware,
        "device": args.device,
        "limit": args.limit,
        "repeats": args.repeats,
        "batch_size": batch,
        "end_to_end_seconds": end_to_end,
        "end_to_end_items": items,
        "tasks": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
