"""`karma build` on realistic synthetic UltraFeedback data, against a pyarrow floor and a per-row reference.

The source (:func:`make_source`) has UltraFeedback's shape (``../shared/notes/ultrafeedback.md``):
per instruction 4 completions of distinct models drawn by the real completion frequencies, listed
in shuffled order, with nested aspect annotations (string ratings, ~5% "N/A" on honesty), a
critique, ``overall_score`` and ``fine-grained_score``. Every instruction and every response is a
*unique* text (a seeded random stream of Zipf-distributed words, so parquet compression sees text
that repeats the way prose does, not a small pool): response length ~ log-normal with median
900 characters and sigma 0.75 (mean ~1.19k, 99th percentile ~5.1k, clipped to 16..32,000),
~0.1% empty; instruction length ~ log-normal, median 250, sigma 1.0 (clipped to 12..20,000).
Critiques and rationales come from a pool (no job reads them). It is written in chunks to one
Arrow IPC stream file (what ``save_to_disk`` writes; loaded memory-mapped with
``Dataset.from_file``), so generating 1M rows needs little memory.

Jobs, each in a fresh spawned process on the same file (so its peak memory is its own):

  floor      pyarrow alone: memory-map the source, gather the instruction and two responses per
             row and write the same output columns (random hex ids, a few distinct scores) to the
             same train/test files, snappy, 1,000-row row groups (no parsing, no decisions;
             ``train_sft`` is declared on ``train``'s file, as the builder does)
  floor-4    four such floors at once, one thread each (what four configs cost pyarrow alone)
  build-1    karma_hf.pairs.builder.build(..., modes=[sim]) -> parquet + card + report
  build-4    the same with the four modes score, sim, score_sim, rlaif (h4 recipe)
  reference  the usual per-row way: ``datasets.map`` with a Python function per row (chosen =
             max overall_score, rejected = a random other completion, as
             HuggingFaceH4/ultrafeedback_binarized did), then train/test split and ``to_parquet``

Rounds are interleaved; each job's wall time and CPU time (user + system, all its threads) are
reported, medians of the rounds. Module imports are done before the clock starts in every job.

Memory: the parent samples each job's ``RssAnon`` (``/proc/<pid>/status``: anonymous pages only,
i.e. what the job allocated; the memory-mapped source's file-backed pages are not counted, being
reclaimable page cache) every 5 ms and reports the peak (from outside: a sampling thread inside
the job would take the GIL from the build's threads 200 times a second); the job reports its
``VmHWM`` (peak RSS incl. file pages). A spike shorter than the sampling period can be missed.

Acceptance (issue 13): build-1 <= 1.25x floor, build-4 <= 1.6x build-1 (256k rows), reference /
build-1 >= 12x, peak anonymous memory of a 1M-row build <= 400 MB.

    python benchmarks/build.py --rows 64000 256000 [--repeats 3] [--memory-rows 1000000]
                               [--workdir DIR [--keep] [--reuse]] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

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
FOUR_MODES = ["score", "sim", "score_sim", "rlaif"]
#: log-normal text lengths in characters: (median, sigma, min, max)
RESPONSE_LENGTH = (900.0, 0.75, 16, 32_000)
INSTRUCTION_LENGTH = (250.0, 1.0, 12, 20_000)
EMPTY_RESPONSES = 0.001
CHUNK_ROWS = 8_192
#: values the floor writes in the score and cosine columns (as many distinct values as the build's)
SCORE_VALUES = [round(0.25 * i, 2) for i in range(4, 21)] + [0.91, 0.93, 0.95, 0.97, 0.99]
BLOCK, BLOCKS = 32, 65_536


# ---------------------------------------------------------------------------------- data
class TextStream:
    """Unique random texts: slices of a seeded stream of Zipf-distributed pseudo-words."""

    def __init__(self, rng: Any, vocab_size: int = 8_000) -> None:
        import numpy as np

        self.rng = rng
        letters = np.frombuffer(b"etaoinshrdlcumwfgypbvkjxqz", dtype=np.uint8)
        letter_p = np.array([12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0,
                             2.0, 1.9, 1.5, 1.0, 0.8, 0.2, 0.2, 0.1, 0.1])  # fmt: skip
        lengths = np.clip(rng.poisson(4.0, vocab_size) + 1, 1, 14)
        chars = rng.choice(letters, size=int(lengths.sum()), p=letter_p / letter_p.sum())
        ends = np.cumsum(lengths + 1)
        self.word_bytes = np.full(int(ends[-1]), ord(" "), dtype=np.uint8)
        keep = np.ones(self.word_bytes.size, dtype=bool)
        keep[ends - 1] = False
        self.word_bytes[keep] = chars
        self.word_start = (ends - lengths - 1).astype(np.int64)
        self.word_len = (lengths + 1).astype(np.int64)  # with its trailing space
        p = 1.0 / (np.arange(vocab_size) + 8.0)  # Zipf-like word frequencies
        self.word_p = p / p.sum()
        self.blocks: Any = None

    def _words(self, nbytes: int) -> Any:
        """``nbytes`` bytes of random words (slow: a gather per byte; used once, for the blocks)."""
        import numpy as np

        mean_len = float((self.word_len * self.word_p).sum())
        words = self.rng.choice(self.word_len.size, size=int(nbytes / mean_len * 1.2) + 64, p=self.word_p)
        lens = self.word_len[words]
        cut = int(np.searchsorted(np.cumsum(lens), nbytes)) + 1
        words, lens = words[:cut], lens[:cut]
        starts = np.cumsum(lens) - lens
        idx = np.repeat(self.word_start[words] - starts, lens) + np.arange(int(lens.sum()))
        return self.word_bytes[idx[:nbytes]]

    def stream(self, nbytes: int) -> Any:
        """``nbytes`` bytes of text: random 32-byte blocks of a word stream, end to end (16 random bits
        per 32 bytes: every text of a dozen blocks or more is unique)."""
        if self.blocks is None:
            self.blocks = self._words(BLOCKS * BLOCK).reshape(BLOCKS, BLOCK)
        ids = self.rng.integers(0, BLOCKS, size=nbytes // BLOCK + 1)
        return self.blocks[ids].reshape(-1)[:nbytes]

    def texts(self, lengths: Any) -> Any:
        """A string array with one text per length (consecutive slices of a fresh stream)."""
        import numpy as np
        import pyarrow as pa

        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = self.stream(int(offsets[-1]))
        return pa.LargeStringArray.from_buffers(len(lengths), pa.py_buffer(offsets), pa.py_buffer(data)).cast(
            pa.string()
        )


def lognormal_lengths(rng: Any, n: int, spec: tuple[float, float, int, int]) -> Any:
    import numpy as np

    median, sigma, lo, hi = spec
    return np.clip(np.rint(rng.lognormal(np.log(median), sigma, n)), lo, hi).astype(np.int64)


def _source_chunk(rows: int, rng: Any, words: TextStream, pools: dict[str, Any]) -> Any:
    import numpy as np
    import pyarrow as pa

    n_comp = rows * 4

    def pick(pool: pa.Array, count: int) -> pa.Array:
        return pool.take(pa.array(rng.integers(0, len(pool), size=count)))

    resp_len = lognormal_lengths(rng, n_comp, RESPONSE_LENGTH)
    resp_len[rng.random(n_comp) < EMPTY_RESPONSES] = 0  # empty responses, as in the real data
    responses = words.texts(resp_len)
    instructions = words.texts(lognormal_lengths(rng, rows, INSTRUCTION_LENGTH))

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
        arrays = [ratings(na_rate), pick(pools["rationales"], n_comp)]
        names = ["Rating", "Rationale"]
        if with_type:
            arrays += [
                pick(pools["rationales"], n_comp),
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
    completions = pa.StructArray.from_arrays(
        [
            annotations,
            pick(pools["critiques"], n_comp),
            pa.array(["As an AI assistant, be helpful."] * n_comp),
            pa.array(rng.random(n_comp) * 4 + 1),
            model_arr,
            pa.array(rng.integers(2, 21, n_comp) / 2.0),
            pa.array(["helpfulness"] * n_comp),
            responses,
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
    nones = pa.ListArray.from_arrays(pa.array(np.arange(rows + 1), pa.int32()), pa.array(["None"] * rows))
    return pa.table(
        {
            "source": pa.array(np.array(SOURCES)[rng.integers(0, len(SOURCES), rows)]),
            "instruction": instructions,
            "models": pa.ListArray.from_arrays(offsets, pa.array(models_sorted.reshape(-1))),
            "completions": pa.ListArray.from_arrays(offsets, completions),
            "correct_answers": nones,
            "incorrect_answers": nones,
        }
    )


def make_source(rows: int, path: Path, seed: int = 0) -> dict[str, float]:
    """Write the synthetic source to ``path`` (one Arrow IPC stream file, in chunks); return its
    size in bytes and the mean response / instruction length."""
    import datasets
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    words = TextStream(rng)
    pools = {
        "critiques": words.texts(lognormal_lengths(rng, 1024, (400.0, 0.4, 60, 2000))),
        "rationales": words.texts(lognormal_lengths(rng, 1024, (150.0, 0.4, 20, 600))),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    resp_chars = instr_chars = 0
    try:
        for start in range(0, rows, CHUNK_ROWS):
            chunk = _source_chunk(min(CHUNK_ROWS, rows - start), rng, words, pools)
            if writer is None:
                schema = chunk.schema.with_metadata(
                    datasets.Features.from_arrow_schema(chunk.schema).arrow_schema.metadata
                )
                writer = pa.ipc.new_stream(str(path), schema)
            # 1,000-row record batches, as datasets writes its Arrow files (writer_batch_size)
            writer.write_table(chunk.replace_schema_metadata(schema.metadata), max_chunksize=1000)
            comps = chunk.column("completions").combine_chunks()
            resp_chars += len(comps.values.field("response").buffers()[2] or b"")
            instr_chars += sum(len(c.buffers()[2] or b"") for c in chunk.column("instruction").chunks)
    finally:
        if writer is not None:
            writer.close()
    return {
        "bytes": path.stat().st_size,
        "mean_response_chars": resp_chars / (4 * rows),
        "mean_instruction_chars": instr_chars / rows,
    }


# ---------------------------------------------------------------------------------- memory
def status_kb(field: str, pid: int | str = "self") -> int:
    """A ``/proc/<pid>/status`` field in kB (0 when absent or the process is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


class MemorySampler:
    """In the job: its CPU time and its memory at the start and the end of the timed work. The
    peak ``RssAnon`` is sampled from outside, by :func:`run_job` (a sampling thread inside the job
    would compete for the GIL with the build's own threads)."""

    def __enter__(self) -> MemorySampler:
        self.baseline_kb = status_kb("RssAnon")
        self.cpu0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu_s = time.process_time() - self.cpu0  # user + system time of all the job's threads
        self.end_kb = status_kb("RssAnon")

    def figures(self) -> dict[str, float]:
        return {
            "cpu_seconds": self.cpu_s,
            "anon_peak_mb": self.end_kb / 1024,  # run_job raises it to the peak it sampled
            "anon_at_start_mb": self.baseline_kb / 1024,
            "rss_peak_mb": status_kb("VmHWM") / 1024,  # incl. file pages of the mapped source
        }


# ---------------------------------------------------------------------------------- jobs
def job_build(src: str, out: str, modes: list[str], queue: Any) -> None:
    # imports are not part of the timed work (as in the other jobs); datasets loads lazily
    import huggingface_hub  # noqa: F401
    import jinja2  # noqa: F401  (the card's template engine, imported lazily by huggingface_hub)
    import pyarrow.parquet  # noqa: F401
    from datasets import Dataset  # noqa: F401

    import karma_hf.cards.dataset  # noqa: F401
    import karma_hf.kinship  # noqa: F401
    import karma_hf.pairs.report  # noqa: F401
    import karma_hf.pairs.stream  # noqa: F401
    import karma_hf.pairs.writer  # noqa: F401
    import karma_hf.scores  # noqa: F401
    import karma_hf.sources.loading  # noqa: F401
    from karma_hf.pairs.builder import build
    from karma_hf.sources.registry import source_names

    source_names()  # imports the built-in source schemas

    with MemorySampler() as mem:
        t0 = time.perf_counter()
        result = build(src, modes=modes, output=out, test_size=2000, seed=42)
        elapsed = time.perf_counter() - t0
    queue.put({"seconds": elapsed, **mem.figures(), "kept": result.report["modes"][modes[0]]["kept"]})


def job_reference(src: str, out: str, modes: list[str], queue: Any) -> None:
    import random

    import datasets
    from datasets import Dataset  # noqa: F401  (loaded lazily: not part of the timed work)

    datasets.disable_progress_bars()
    with MemorySampler() as mem:
        t0 = time.perf_counter()
        ds = datasets.Dataset.from_file(src)
        rng = random.Random(42)

        def binarize(row: dict[str, Any]) -> dict[str, Any]:
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
        elapsed = time.perf_counter() - t0
    result = {"seconds": elapsed, **mem.figures(), "kept": pairs.num_rows}
    ds.cleanup_cache_files()  # the map/filter caches next to the source: not part of the next run
    queue.put(result)


def floor_config(src: str, folder: Path, offset: int = 0) -> int:
    """The pyarrow floor of one config: memory-map the source, gather the instruction and two
    responses per row (completions ``offset`` and ``offset + 1``), write the output columns to
    ``folder``'s train and test files in 1,000-row row groups; returns the rows written."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from karma_hf.layout import output_schema

    schema = output_schema()
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

    rng = np.random.default_rng(offset)
    folder.mkdir(parents=True, exist_ok=True)
    writers = {
        s: pq.ParquetWriter(str(folder / f"{s}-00000-of-00001.parquet"), schema, compression="snappy")
        for s in ("train", "test")
    }
    row = 0
    with pa.memory_map(src) as source:
        for batch in pa.ipc.open_stream(source):
            for start in range(0, batch.num_rows, 1000):
                part = batch.slice(start, 1000)
                n = part.num_rows
                comps = part.column("completions")
                base = comps.offsets.to_numpy()[:-1].astype(np.int64) + offset
                resp = pc.struct_field(comps.values, "response")
                model = pc.struct_field(comps.values, "model")
                instr = part.column("instruction")
                chosen, rejected = resp.take(pa.array(base)), resp.take(pa.array(base + 1))
                # values like the build's: a random hex id per row, a few distinct scores and cosines
                digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
                hexes = digits[rng.integers(0, 16, size=(n, 64), dtype=np.uint8)].view("S64").reshape(n)
                floats = [pa.array(rng.choice(SCORE_VALUES, n)) for _ in range(5)]
                out_t = pa.table(
                    [
                        messages(["user"], [instr], n),
                        messages(["assistant"], [chosen], n),
                        messages(["assistant"], [rejected], n),
                        messages(["user", "assistant"], [instr, chosen], n),
                        pa.array(hexes, type=pa.binary(64)).cast(pa.string()),
                        model.take(pa.array(base)),
                        model.take(pa.array(base + 1)),
                        *floats,
                        part.column("source"),
                    ],
                    schema=schema,
                )
                test = np.zeros(n, dtype=bool)
                test[: max(0, min(n, 2000 - row))] = True  # the first 2000 rows stand in for the test split
                if test.any():
                    writers["test"].write_table(out_t.filter(pa.array(test)))
                writers["train"].write_table(out_t.filter(pa.array(~test)) if test.any() else out_t)
                row += n
    for w in writers.values():
        w.close()
    return row


def job_floor(src: str, out: str, modes: list[str], queue: Any) -> None:
    """The floor of ``len(modes)`` configs, one thread each (as the builder's writer threads)."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.parquet  # noqa: F401

    import karma_hf.layout  # noqa: F401

    with MemorySampler() as mem:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=len(modes)) as pool:
            done = list(pool.map(lambda i: floor_config(src, Path(out) / modes[i], i % 3), range(len(modes))))
        elapsed = time.perf_counter() - t0
    queue.put({"seconds": elapsed, **mem.figures(), "kept": done[0]})


def run_job(fn: Any, *args: Any) -> dict[str, Any]:
    """Run ``fn(*args, queue)`` in a fresh spawned process; sample its ``RssAnon`` every 5 ms from
    here until it reports, and return its figures with that peak."""
    import queue as queue_module

    ctx = mp.get_context("spawn")  # fresh interpreter: its own peak memory, nothing cached in memory
    results = ctx.Queue()
    proc = ctx.Process(target=fn, args=(*args, results))
    proc.start()
    peak_kb = 0
    while True:  # a child that dies (OOM, crash) must not leave us waiting forever
        try:
            result = results.get(timeout=0.005)
            break
        except queue_module.Empty:
            peak_kb = max(peak_kb, status_kb("RssAnon", proc.pid))
            if not proc.is_alive():
                raise SystemExit(f"{fn.__name__} died with exit code {proc.exitcode}") from None
    proc.join()
    result["anon_peak_mb"] = max(result["anon_peak_mb"], peak_kb / 1024)
    return result


JOBS: dict[str, tuple[Any, list[str]]] = {
    "floor": (job_floor, ["sim"]),
    "floor-4": (job_floor, FOUR_MODES),
    "build-1": (job_build, ["sim"]),
    "build-4": (job_build, FOUR_MODES),
    "reference": (job_reference, ["sim"]),
}


def _source(work: Path, rows: int, reuse: bool) -> Path:
    src = work / f"source-{rows}.arrow"
    t0 = time.perf_counter()
    if reuse and src.exists():
        print(f"source: {rows:,} rows, reusing {src} ({src.stat().st_size / 2**20:,.0f} MiB)")
        return src
    info = make_source(rows, src)
    print(
        f"source: {rows:,} instructions x 4 completions, {info['bytes'] / 2**20:,.0f} MiB Arrow, mean response "
        f"{info['mean_response_chars']:,.0f} chars, mean instruction {info['mean_instruction_chars']:,.0f} chars "
        f"(made in {time.perf_counter() - t0:.1f} s)",
        flush=True,
    )
    return src


def measure(work: Path, rows: int, repeats: int, reference_repeats: int, reuse: bool) -> dict[str, Any]:
    """Interleaved rounds of every job on one source of ``rows`` rows; medians and ratios."""
    src = _source(work, rows, reuse)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in JOBS}
    for rep in range(repeats):  # interleaved, so load from other users hits all jobs alike
        for name, (fn, modes) in JOBS.items():
            if name == "reference" and rep >= reference_repeats:
                continue
            out = work / f"out-{name}"
            shutil.rmtree(out, ignore_errors=True)
            run = run_job(fn, str(src), str(out), modes)
            run["written_mib"] = round(sum(p.stat().st_size for p in out.rglob("*.parquet")) / 2**20, 1)
            runs[name].append(run)
            print(
                f"  {rows:,} rows, round {rep + 1}: {name:<9} {run['seconds']:7.2f} s "
                f"(CPU {run['cpu_seconds']:6.2f} s)  "
                f"anon peak {run['anon_peak_mb']:6.0f} MB  RSS peak {run['rss_peak_mb']:6.0f} MB",
                flush=True,
            )
    figures: dict[str, Any] = {"rows": rows, "source_mib": round(src.stat().st_size / 2**20, 1)}
    for name, rs in runs.items():
        if not rs:
            continue
        figures[name] = {
            "seconds": statistics.median(r["seconds"] for r in rs),
            "runs": [round(r["seconds"], 3) for r in rs],
            "cpu_seconds": statistics.median(r["cpu_seconds"] for r in rs),
            "anon_peak_mb": round(max(r["anon_peak_mb"] for r in rs), 1),
            "rss_peak_mb": round(max(r["rss_peak_mb"] for r in rs), 1),
            "written_mib": rs[0]["written_mib"],
            "kept": rs[0]["kept"],
        }
    fl, fl4, b1, b4 = (figures[k]["seconds"] for k in ("floor", "floor-4", "build-1", "build-4"))
    figures["ratios"] = {
        "build1_over_floor": b1 / fl,
        "build4_over_build1": b4 / b1,
        "floor4_over_floor": fl4 / fl,
        "build4_over_floor4": b4 / fl4,
    }
    cpu = {k: figures[k]["cpu_seconds"] for k in ("floor", "floor-4", "build-1", "build-4")}
    figures["cpu_ratios"] = {
        "build1_over_floor": cpu["build-1"] / cpu["floor"],
        "build4_over_build1": cpu["build-4"] / cpu["build-1"],
        "floor4_over_floor": cpu["floor-4"] / cpu["floor"],
    }
    if "reference" in figures:
        figures["ratios"]["reference_over_build1"] = figures["reference"]["seconds"] / b1
        figures["cpu_ratios"]["reference_over_build1"] = figures["reference"]["cpu_seconds"] / cpu["build-1"]
    return figures


def memory_only(work: Path, rows: int, reuse: bool) -> dict[str, Any]:
    """Peak anonymous memory of one- and four-mode builds of a ``rows``-row source."""
    src = _source(work, rows, reuse)
    figures: dict[str, Any] = {"rows": rows, "source_mib": round(src.stat().st_size / 2**20, 1)}
    for name in ("build-1", "build-4"):
        fn, modes = JOBS[name]
        out = work / f"out-{name}"
        shutil.rmtree(out, ignore_errors=True)
        run = run_job(fn, str(src), str(out), modes)
        shutil.rmtree(out, ignore_errors=True)
        figures[name] = {k: round(v, 2) if isinstance(v, float) else v for k, v in run.items()}
        print(
            f"  {rows:,} rows: {name:<8} {run['seconds']:7.2f} s  anon peak {run['anon_peak_mb']:6.0f} MB  "
            f"RSS peak {run['rss_peak_mb']:6.0f} MB",
            flush=True,
        )
    return figures


def report(fig: dict[str, Any]) -> None:
    rows = fig["rows"]
    print(f"\n{rows:,} rows ({fig['source_mib']:,.0f} MiB source):")
    for name in JOBS:
        if name not in fig:
            continue
        f = fig[name]
        print(
            f"  {name:<9} median {f['seconds']:7.2f} s of {len(f['runs'])} (CPU {f['cpu_seconds']:6.2f} s)  "
            f"{rows / f['seconds']:8,.0f} rows/s  "
            f"anon peak {f['anon_peak_mb']:6.0f} MB  RSS peak {f['rss_peak_mb']:6.0f} MB  "
            f"wrote {f['written_mib']:7.1f} MiB"
        )
    r = fig["ratios"]
    print(f"  build-1 / floor     = {r['build1_over_floor']:5.2f}x  (target <= 1.25)")
    print(f"  build-4 / build-1   = {r['build4_over_build1']:5.2f}x  (target <= 1.6)")
    print(f"  floor-4 / floor     = {r['floor4_over_floor']:5.2f}x  (the same ratio for pyarrow alone)")
    print(f"  build-4 / floor-4   = {r['build4_over_floor4']:5.2f}x")
    if "reference_over_build1" in r:
        print(f"  reference / build-1 = {r['reference_over_build1']:5.2f}x  (target >= 12)")
    c = fig["cpu_ratios"]
    print("  the same in CPU time (user + system, all threads): " + ", ".join(f"{k} {v:.2f}x" for k, v in c.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[64_000, 256_000], help="source sizes (instructions)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds of each job (median reported)")
    ap.add_argument("--reference-repeats", type=int, default=1, help="rounds that also run the slow reference")
    ap.add_argument("--memory-rows", type=int, default=0, help="also: peak memory of builds of this many rows")
    ap.add_argument("--workdir", type=Path, default=None, help="where sources and outputs go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the workdir")
    ap.add_argument("--reuse", action="store_true", help="reuse sources already in --workdir")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="karma-bench-build-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "sizes": [],
    }
    try:
        for rows in args.rows:
            fig = measure(work, rows, args.repeats, args.reference_repeats, args.reuse)
            results["sizes"].append(fig)
            report(fig)
        if args.memory_rows:
            results["memory"] = memory_only(work, args.memory_rows, args.reuse)
        print(f"machine: {results['machine']}")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
