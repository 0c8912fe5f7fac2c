"""``karma generate``: responses of a pool of models to a prompt set, sharded and resumable.

:func:`generate` runs a :class:`~karma_hf.generation.config.GenerateConfig` on a
:class:`~karma_hf.generation.prompts.PromptSet` into the folder layout of
:mod:`karma_hf.generation.shards`: per model, load it once, answer its pending shards (each written
atomically), free it; when every shard exists, assemble the result. A rerun of the same
configuration into the same folder continues where a killed run stopped; a different
configuration is refused unless ``overwrite``.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from karma_hf.errors import KarmaError
from karma_hf.generation.config import GenerateConfig, ModelSpec
from karma_hf.generation.prompts import PromptSet
from karma_hf.generation.shards import (
    DATA_FILE,
    MANIFEST,
    Shard,
    assemble,
    manifest,
    plan,
    read_manifest,
    remove_partials,
    write_manifest,
    write_shard,
)


@dataclass
class ModelRun:
    """What one model did in this run (throughput counts only the prompts generated now)."""

    name: str
    prompts: int  # assigned to it in all
    resumed: int  # already done by an earlier run
    generated: int = 0
    new_tokens: int = 0
    seconds: float = 0.0
    load_seconds: float = 0.0
    chat_template: bool | None = None

    @property
    def prompts_per_s(self) -> float:
        return self.generated / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else 0.0


@dataclass
class GenerateResult:
    output: Path
    complete: bool
    rows: int
    models: list[ModelRun] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def data_file(self) -> Path:
        return self.output / DATA_FILE


def check_models(specs: Sequence[ModelSpec]) -> None:
    """Fail before any work: vLLM missing for a vllm model, a model path or Hub id that cannot be found."""
    from karma_hf.evaluation.run import check_model
    from karma_hf.generation.vllm_backend import require_vllm

    if any(s.backend == "vllm" for s in specs):
        require_vllm()
    for spec in specs:
        check_model(spec.model_args)


def shard_seed(seed: int, block: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:block:{block}".encode()).digest()[:4], "big")


def _open_generator(spec: ModelSpec, config: GenerateConfig, device: str | None) -> Any:
    if spec.backend == "vllm":
        from karma_hf.generation.vllm_backend import VLLMGenerator

        return VLLMGenerator(spec)
    from karma_hf.generation.hf_backend import HFGenerator

    return HFGenerator(spec, device=device, batch_size=config.batch_size)


def _check_output(out: Path, fingerprint: str, overwrite: bool) -> tuple[dict[str, Any] | None, bool]:
    """(the previous manifest when resuming, whether to wipe the folder first); refuse a foreign folder."""
    if out.exists() and not out.is_dir():
        raise KarmaError(f"--output {out} exists and is not a folder")
    previous = read_manifest(out)
    if previous is None:
        if out.is_dir() and any(out.iterdir()):
            raise KarmaError(f"--output {out} is not empty and holds no {MANIFEST}; choose another folder")
        return None, False
    if previous.get("fingerprint") == fingerprint:
        return previous, False
    if not overwrite:
        raise KarmaError(
            f"--output {out} holds a karma generate run of another configuration (models, prompts or settings "
            "differ); pass --overwrite to replace it, or choose another folder"
        )
    return None, True


def generate(
    config: GenerateConfig,
    prompts: PromptSet,
    *,
    overwrite: bool = False,
    progress: bool = False,
    on_model: Callable[[int, int, ModelSpec], None] | None = None,
) -> GenerateResult:
    """Generate every pending shard, then assemble ``data/train-00000-of-00001.parquet``."""
    from karma_hf.generation.hf_backend import dist_state, share

    check_models(config.models)
    out = Path(config.output)
    fingerprint = config.fingerprint(prompts.digest())
    state = dist_state(config.device)
    main_process = state is None or state.is_main_process
    previous, wipe = _check_output(out, fingerprint, overwrite)  # read only: every process decides the same
    _barrier(state)
    shards = plan(config, prompts)
    runs = [ModelRun(spec.name, sum(len(s.prompts) for s in shards[i]), 0) for i, spec in enumerate(config.models)]
    if previous is not None and previous.get("complete") and (out / DATA_FILE).is_file():
        models = (previous.get("counts") or {}).get("models") or {}
        for run in runs:
            run.resumed = run.prompts
            run.chat_template = (models.get(run.name) or {}).get("chat_template")
        counts = previous.get("counts") or {}
        return GenerateResult(out, True, int(counts.get("rows", 0)), runs, counts)
    if main_process:
        if wipe:
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        remove_partials(out)
        write_manifest(out, manifest(config, prompts, fingerprint, complete=False), complete=False)
    _barrier(state)

    pending_all = [[s for s in model_shards if not s.path.exists()] for model_shards in shards]
    for run, model_shards, pending in zip(runs, shards, pending_all, strict=True):
        run.resumed = sum(len(s.prompts) for s in model_shards) - sum(len(s.prompts) for s in pending)
    bar = _ProgressBars(runs) if progress and main_process else None
    try:
        for i, spec in enumerate(config.models):
            if not pending_all[i]:
                continue
            if on_model is not None and main_process:
                on_model(i, len(config.models), spec)
            mine = share(pending_all[i], state) if spec.backend == "hf" else pending_all[i]
            if spec.backend == "vllm" and not main_process:
                mine = []  # vLLM parallelises itself (tensor / data parallel): one driver process
            if mine:
                _run_model(spec, config, prompts, mine, runs[i], bar, state)
            _barrier(state)
    finally:
        if bar is not None:
            bar.stop()
    if not main_process:
        return GenerateResult(out, False, 0, runs)
    missing = [s for model_shards in shards for s in model_shards if not s.path.exists()]
    if missing:  # pragma: no cover - only when another process failed
        raise KarmaError(f"{len(missing)} shard(s) missing after the run (e.g. {missing[0].path}); rerun to finish")
    counts = assemble(config, prompts, shards)
    for run in runs:
        run.chat_template = counts["models"][run.name]["chat_template"]
    write_manifest(out, manifest(config, prompts, fingerprint, complete=True, counts=counts), complete=True)
    return GenerateResult(out, True, counts["rows"], runs, counts)


def _barrier(state: Any) -> None:
    if state is not None:
        state.wait_for_everyone()


def _run_model(
    spec: ModelSpec,
    config: GenerateConfig,
    prompts: PromptSet,
    shards: list[Shard],
    run: ModelRun,
    bar: _ProgressBars | None,
    state: Any,
) -> None:
    device = str(state.device) if state is not None else config.device
    start = time.perf_counter()
    generator = _open_generator(spec, config, device)
    run.load_seconds = time.perf_counter() - start
    started = time.perf_counter()

    def on_batch(n_prompts: int, n_tokens: int) -> None:
        run.generated += n_prompts
        run.new_tokens += n_tokens
        run.seconds = time.perf_counter() - started
        if bar is not None:
            bar.advance(run, n_prompts)

    try:
        for shard in shards:
            items = [prompts.prompts[i] for i in shard.prompts]
            kwargs: dict[str, Any] = {"seed": shard_seed(spec.settings.seed, shard.block), "on_batch": on_batch}
            if spec.backend == "vllm":
                kwargs["prompt_ids"] = [p.prompt_id for p in items]
            results = generator.generate([p.messages for p in items], **kwargs)
            rows = [
                {
                    "prompt_index": i,
                    "prompt_id": p.prompt_id,
                    "response": r["response"],
                    "generation_config": spec.settings.record(spec.backend, r["chat_template"]),
                    "prompt_tokens": r["prompt_tokens"],
                    "new_tokens": r["new_tokens"],
                }
                for i, p, r in zip(shard.prompts, items, results, strict=True)
            ]
            write_shard(shard, rows)
            if run.chat_template is None and results:
                run.chat_template = bool(results[0]["chat_template"])
    finally:
        generator.close()
        run.seconds = time.perf_counter() - started


class _ProgressBars:
    """One rich bar per model: prompts done of assigned, prompts/s and generated tokens/s."""

    def __init__(self, runs: list[ModelRun]) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
        )
        self.tasks = {
            r.name: self.progress.add_task(_short(r.name), total=r.prompts, completed=r.resumed, rate="") for r in runs
        }
        self.progress.start()

    def advance(self, run: ModelRun, n: int) -> None:
        rate = f"{run.prompts_per_s:.2f} prompts/s  {run.tokens_per_s:.1f} tok/s"
        self.progress.update(self.tasks[run.name], advance=n, rate=rate)

    def stop(self) -> None:
        self.progress.stop()


def _short(name: str, width: int = 32) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]
