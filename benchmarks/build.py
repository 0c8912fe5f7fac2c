"""`karma build` at UltraFeedback scale, against a per-row reference and a pyarrow floor.

One run makes a synthetic UltraFeedback-shaped source (default 64,000 instructions x 4
completions, responses of 1-2 KB, full nested annotations with string ratings incl. "N/A",
critiques), saves it with ``save_to_disk`` (the Arrow format datasets works on), then measures,
each in a fresh subprocess (so peak RSS is per job), on the same file:

  (a) build      karma_hf.pairs.builder.build(..., modes=[MODE]) -> parquet + card + report
  (b) reference  the usual per-row way: ``datasets.map`` with a Python function per row
                 (chosen = max overall_score, rejected = a random other completion, as
                 HuggingFaceH4/ultrafeedback_binarized did), then train/test split and to_parquet
  (c) floor      pyarrow alone: memory-map the source, gather the instruction and two responses
                 per row and write the same output columns and files (no parsing, no decisions;
                 train_sft copied from train, as the builder does)

and prints times, ratios (build / floor, reference / build) and each job's peak RSS.
Targets (issue 4): build <= 2x floor, >= 5x faster than the reference, peak RSS <= 2 GB.

    python benchmarks/build.py [--rows 64000] [--mode sim] [--repeats 3] [--workdir DIR [--keep] [--reuse]]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

MODELS = [
    "gpt-4",
    "gpt-3.5-turbo",
    "bard",
    "llama-2-7b-chat",
    "llama-2-13b-chat",
    "llama-2-70b-chat",
    "ultralm-13b",
    "ultralm-65b",
    "wizardlm-7b",
    "wizardlm-13b",
    "wizardlm-70b",
    "vicuna-33b",
    "alpaca-7b",
    "falcon-40b-instruct",
    "mpt-30b-chat",
    "starchat",
    "pythia-12b",
]
# completion frequencies of the real data (notes/ultrafeedback.md): bard, starchat, pythia rare
WEIGHTS = [16.5, 16.5, 8.3, 16.5, 16.5, 16.5, 16.5, 16.5, 16.5, 16.5, 16.5, 16.5, 16.5, 16.5, 16.5, 14.0, 0.8]
SOURCES = ["evol_instruct", "false_qa", "flan_v2_cot", "flan_v2_niv2", "flan_v2_p3", "sharegpt", "ultrachat"]
WORDS = [
    "the",
    "model",
    "answer",
    "explains",
    "each",
    "step",
    "in",
    "detail",
    "with",
    "examples",
    "and",
    "a",
    "short",
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
    "function",
    "result",
    "because",
    "however",
    "therefore",
    "first",
    "second",
    "finally",
    "note",
    "that",
    "this",
    "is",
]  # noqa: E501


# ---------------------------------------------------------------------------------- data
def make_source(rows: int, path: Path, seed: int = 0) -> int:
    """Write the synthetic source with ``save_to_disk``; return its size in bytes."""
    import datasets
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    n_comp = rows * 4

    def text_pool(count: int, lo: int, hi: int) -> pa.Array:
        words = np.array(WORDS)
        out = []
        for _ in range(count):
            length = int(rng.integers(lo, hi))
            chunk = " ".join(words[rng.integers(0, len(words), size=length // 5 + 8)])
            out.append(chunk[:length])
        return pa.array(out, type=pa.string())

    def pick(pool: pa.Array, count: int) -> pa.Array:
        return pool.take(pa.array(rng.integers(0, len(pool), size=count)))

    responses = text_pool(4096, 1000, 2000)
    responses = pa.concat_arrays([responses, pa.array(["", "   "], type=pa.string())])
    resp_idx = rng.integers(0, 4096, size=n_comp)
    resp_idx[rng.random(n_comp) < 0.001] = 4096  # ~0.1% empty responses, as in the real data
    critiques = text_pool(1024, 200, 600)
    rationales = text_pool(512, 60, 200)
    instructions = [f"Instruction {i}: " for i in range(rows)]
    prompt_pool = text_pool(2048, 80, 600).to_pylist()
    draws = rng.integers(0, 2048, rows)
    instructions = pa.array([p + prompt_pool[int(j)] for p, j in zip(instructions, draws, strict=True)])

    # 4 distinct models per row, drawn by frequency, listed in a shuffled order
    w = np.asarray(WEIGHTS) / sum(WEIGHTS)
    keys = rng.random((rows, len(MODELS))) ** (1.0 / w)  # weighted sampling without replacement
    chosen = np.argsort(-keys, axis=1)[:, :4]
    model_arr = pa.array(np.array(MODELS)[chosen.reshape(-1)])
    models_sorted = np.sort(np.array(MODELS)[chosen], axis=1)

    def ratings(na_rate: float) -> pa.Array:
        values = rng.integers(1, 6, size=n_comp).astype(str).astype(object)
        values[rng.random(n_comp) < na_rate] = "N/A"
        return pa.array(values, type=pa.string())

    def aspect(with_type: bool, na_rate: float) -> pa.StructArray:
        arrays = [ratings(na_rate), pick(rationales, n_comp)]
        names = ["Rating", "Rationale"]
        if with_type:
            arrays += [
                pick(rationales, n_comp),
                pa.ListArray.from_arrays(
                    pa.array(np.arange(0, n_comp + 1), pa.int32()), pa.array(rng.integers(1, 4, n_comp).astype(str))
                ),
            ]
            names += ["Rationale For Rating", "Type"]
        return pa.StructArray.from_arrays(arrays, names=names)

    annotations = pa.StructArray.from_arrays(
        [aspect(True, 0.0), aspect(False, 0.053), aspect(False, 0.0), aspect(True, 0.0)],
        names=["helpfulness", "honesty", "instruction_following", "truthfulness"],
    )
    overall = pa.array(rng.integers(2, 21, n_comp) / 2.0)
    completions = pa.StructArray.from_arrays(
        [
            annotations,
            pick(critiques, n_comp),
            pa.array(["As an AI assistant, be helpful."] * n_comp),
            pa.array(rng.random(n_comp) * 4 + 1),
            model_arr,
            overall,
            pa.array(["helpfulness"] * n_comp),
            responses.take(pa.array(resp_idx)),
        ],
        names=[
            "annotations",
            "critique",
            "custom_system_prompt",
            "fine-grained_score",
            "model",
            "overall_score",
            "principle",
            "response",
        ],
    )
    offsets = pa.array(np.arange(0, n_comp + 1, 4), pa.int32())
    table = pa.table(
        {
            "source": pa.array(np.array(SOURCES)[rng.integers(0, len(SOURCES), rows)]),
            "instruction": instructions,
            "models": pa.ListArray.from_arrays(offsets, pa.array(models_sorted.reshape(-1))),
            "completions": pa.ListArray.from_arrays(offsets, completions),
            "correct_answers": pa.ListArray.from_arrays(
                pa.array(np.arange(rows + 1), pa.int32()), pa.array(["None"] * rows)
            ),
            "incorrect_answers": pa.ListArray.from_arrays(
                pa.array(np.arange(rows + 1), pa.int32()), pa.array(["None"] * rows)
            ),
        }
    )
    datasets.disable_progress_bars()
    datasets.Dataset(table).save_to_disk(str(path))
    return sum(f.stat().st_size for f in path.glob("data-*.arrow"))


# ---------------------------------------------------------------------------------- jobs
def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM: per address space, so a spawned child does not
    inherit its parent's peak the way ``ru_maxrss`` does across fork + exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def job_build(src: str, out: str, mode: str, queue) -> None:
    import datasets  # noqa: F401  imports are not part of the timed work (as in the other jobs)
    import huggingface_hub  # noqa: F401

    import karma_hf.cards.dataset  # noqa: F401
    import karma_hf.scores  # noqa: F401
    from karma_hf.pairs.builder import build

    t0 = time.perf_counter()
    result = build(src, modes=[mode], output=out, test_size=2000, seed=42)
    elapsed = time.perf_counter() - t0
    queue.put({"seconds": elapsed, "rss_mb": _peak_rss_mb(), "kept": result.report["modes"][mode]["kept"]})


def job_reference(src: str, out: str, mode: str, queue) -> None:
    import random

    import datasets

    datasets.disable_progress_bars()
    t0 = time.perf_counter()
    ds = datasets.load_from_disk(src)
    rng = random.Random(42)

    def binarize(row):
        comps = [c for c in row["completions"] if c["response"]]
        if len(comps) < 2:
            return {
                "prompt": [],
                "chosen": [],
                "rejected": [],
                "messages": [],
                "score_chosen": -100.0,
                "score_rejected": -100.0,
                "chosen_model": "",
                "rejected_model": "",
            }
        best = max(comps, key=lambda c: c["overall_score"])
        other = rng.choice([c for c in comps if c is not best])
        prompt = [{"role": "user", "content": row["instruction"]}]
        chosen = [{"role": "assistant", "content": best["response"]}]
        return {
            "prompt": prompt,
            "chosen": chosen,
            "rejected": [{"role": "assistant", "content": other["response"]}],
            "messages": prompt + chosen,
            "score_chosen": best["overall_score"],
            "score_rejected": other["overall_score"],
            "chosen_model": best["model"],
            "rejected_model": other["model"],
        }

    pairs = ds.map(
        binarize,
        remove_columns=["models", "completions", "correct_answers", "incorrect_answers"],
        load_from_cache_file=False,
    )
    pairs = pairs.filter(lambda r: r["score_chosen"] != -100.0, load_from_cache_file=False)
    splits = pairs.train_test_split(test_size=2000, seed=42)
    Path(out).mkdir(parents=True, exist_ok=True)
    splits["train"].to_parquet(f"{out}/train.parquet")
    splits["test"].to_parquet(f"{out}/test.parquet")
    splits["train"].to_parquet(f"{out}/train_sft.parquet")
    result = {"seconds": time.perf_counter() - t0, "rss_mb": _peak_rss_mb(), "kept": pairs.num_rows}
    ds.cleanup_cache_files()  # the map/filter caches next to the source: not part of the next run
    queue.put(result)


def job_floor(src: str, out: str, mode: str, queue) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from karma_hf.layout import output_schema

    schema = output_schema()
    t0 = time.perf_counter()
    files = sorted(Path(src).glob("data-*.arrow"))
    Path(out).mkdir(parents=True, exist_ok=True)
    writers = {s: pq.ParquetWriter(f"{out}/{s}.parquet", schema) for s in ("train", "test")}
    msg_type = schema.field("prompt").type

    def messages(roles: list[str], contents: list[pa.Array], n: int) -> pa.Array:
        k = len(contents)
        role_arr = pa.array(roles * n, type=pa.string())
        content = (
            contents[0]
            if k == 1
            else pa.concat_arrays(contents).take(pa.array(np.arange(n * k).reshape(k, n).T.reshape(-1)))
        )
        values = pa.StructArray.from_arrays([role_arr, content], names=["role", "content"])
        return pa.ListArray.from_arrays(pa.array(np.arange(0, n * k + 1, k, dtype=np.int32)), values).cast(msg_type)

    row = 0
    for f in files:
        with pa.memory_map(str(f)) as source:
            table = pa.ipc.open_stream(source).read_all()
        for batch in table.select(["instruction", "completions", "source"]).to_batches(max_chunksize=1000):
            n = batch.num_rows
            comps = batch.column("completions")
            base = comps.offsets.to_numpy()[:-1].astype(np.int64)
            resp = pc.struct_field(comps.values, "response")
            model = pc.struct_field(comps.values, "model")
            instr = batch.column("instruction")
            chosen, rejected = resp.take(pa.array(base)), resp.take(pa.array(base + 1))
            floats = pa.array(np.zeros(n))
            out_t = pa.table(
                [
                    messages(["user"], [instr], n),
                    messages(["assistant"], [chosen], n),
                    messages(["assistant"], [rejected], n),
                    messages(["user", "assistant"], [instr, chosen], n),
                    pa.array(np.char.mod("%064x", np.arange(row, row + n))).cast(pa.string()),
                    model.take(pa.array(base)),
                    model.take(pa.array(base + 1)),
                    floats,
                    floats,
                    floats,
                    floats,
                    floats,
                    batch.column("source"),
                ],
                schema=schema,
            )
            test = np.zeros(n, dtype=bool)
            test[: max(0, min(n, 2000 - row))] = True  # the first 2000 rows stand in for the test split
            writers["test"].write_table(out_t.filter(pa.array(test)))
            train = out_t.filter(pa.array(~test))
            writers["train"].write_table(train)
            row += n
    for w in writers.values():
        w.close()
    shutil.copyfile(f"{out}/train.parquet", f"{out}/train_sft.parquet")  # same rows, as the builder does
    queue.put({"seconds": time.perf_counter() - t0, "rss_mb": _peak_rss_mb(), "kept": row})


def run_job(fn, *args) -> dict:
    ctx = mp.get_context("spawn")  # fresh interpreter: its own peak RSS, nothing cached in memory
    queue = ctx.Queue()
    proc = ctx.Process(target=fn, args=(*args, queue))
    proc.start()
    while True:  # a child that dies (OOM, crash) must not leave us waiting forever
        try:
            result = queue.get(timeout=1.0)
            break
        except Exception:  # queue.Empty
            if not proc.is_alive():
                raise SystemExit(f"{fn.__name__} died with exit code {proc.exitcode}") from None
    proc.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=64_000, help="instructions (x4 completions)")
    ap.add_argument("--mode", default="sim", choices=["score", "sim", "score_sim", "rlaif"])
    ap.add_argument("--workdir", type=Path, default=None, help="where the source and outputs go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the workdir")
    ap.add_argument("--reuse", action="store_true", help="reuse a source already in --workdir")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of floor + build (median reported)")
    ap.add_argument("--reference-repeats", type=int, default=1, help="rounds that also run the slow reference")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="karma-bench-build-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        src = work / "source"
        t0 = time.perf_counter()
        if args.reuse and (src / "state.json").exists():
            size = sum(f.stat().st_size for f in src.glob("data-*.arrow"))
        else:
            shutil.rmtree(src, ignore_errors=True)
            size = make_source(args.rows, src)
        print(
            f"source: {args.rows:,} instructions x 4 completions, {size / 2**20:,.0f} MiB Arrow "
            f"(ready in {time.perf_counter() - t0:.1f} s)"
        )
        runs: dict[str, list[dict]] = {"floor": [], "build": [], "reference": []}
        jobs = {"floor": job_floor, "build": job_build, "reference": job_reference}
        for rep in range(args.repeats):  # interleaved, so load from other users hits all three alike
            for name, fn in jobs.items():
                if name == "reference" and rep >= args.reference_repeats:
                    continue
                out = work / f"out-{name}"
                shutil.rmtree(out, ignore_errors=True)
                run = run_job(fn, str(src), str(out), args.mode)
                run["written_mib"] = round(sum(p.stat().st_size for p in out.rglob("*.parquet")) / 2**20, 1)
                runs[name].append(run)
                print(f"  round {rep + 1} {name:<9} {run['seconds']:7.2f} s", flush=True)
        figures = {}
        for name, rs in runs.items():
            f = dict(rs[0])
            f["seconds"] = statistics.median(r["seconds"] for r in rs)
            f["rss_mb"] = max(r["rss_mb"] for r in rs)
            f["runs"] = [round(r["seconds"], 3) for r in rs]
            figures[name] = f
            print(
                f"  {name:<9} median {f['seconds']:7.2f} s of {len(rs)}  {args.rows / f['seconds']:9,.0f} rows/s  "
                f"peak RSS {f['rss_mb']:7.0f} MB  wrote {f['written_mib']:6.1f} MiB ({f['kept']:,} pairs)"
            )
        b, fl, ref = figures["build"]["seconds"], figures["floor"]["seconds"], figures["reference"]["seconds"]
        print(f"build / floor      = {b / fl:5.2f}x   (target <= 2)")
        print(f"reference / build  = {ref / b:5.2f}x   (target >= 5)")
        print(f"build peak RSS     = {figures['build']['rss_mb']:.0f} MB   (target <= 2048)")
        print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
        if args.json:
            args.json.write_text(json.dumps({"rows": args.rows, "mode": args.mode, **figures}, indent=2))
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
