"""Plan and run a pipeline: :func:`plan_pipeline` (what runs, what is skipped, and why) and :func:`run_pipeline`.

Stages run in order (:data:`karma_hf.pipeline.stages.STAGES`: evaluate, generate, kinship, build,
then push, train, evaluate-students and compare when the file asks for them). A stage's hash
covers its part of the configuration, its items and the hashes of the upstream stages it reads,
so it is known before anything runs. A stage is **skipped** when its recorded state
(:mod:`karma_hf.pipeline.state`) has the same hash, is complete, its outputs exist, and no upstream
stage runs now; otherwise it **runs**, and so does every stage downstream of it. ``force`` runs
the named stages (and so their downstream) whatever their state.

Before the first stage starts, every stage that will run checks what can fail quickly (model
paths, tasks and their data, vLLM, the Hub target, training recipes) and the output folder is
checked for writing, so a user error costs seconds, not an evaluation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from karma_hf.errors import KarmaError, os_error_message
from karma_hf.pipeline.config import PipelineConfig, load_pipeline
from karma_hf.pipeline.stages import STAGE_NAMES, STAGES, Context, Describe, Stage
from karma_hf.pipeline.state import STATE_DIR, StageState, changed_keys, digest, read_state, write_state


@dataclass
class StagePlan:
    """One stage of the plan: its hash, whether it runs and why, and the items it redoes."""

    stage: Stage
    index: int
    total: int
    hash: str
    config: dict
    upstream: dict[str, str]
    items: dict[str, str]
    todo: list[str]
    run: bool
    reason: str
    describe: Describe
    previous: StageState | None = None

    @property
    def name(self) -> str:
        return self.stage.name

    @property
    def action(self) -> str:
        return "run" if self.run else "skip"

    def line(self) -> str:
        """``[3/6] kinship: run (tau changed)``."""
        return f"[{self.index}/{self.total}] {self.name}: {self.action} ({self.reason})"


@dataclass
class Plan:
    context: Context
    stages: list[StagePlan]

    @property
    def config(self) -> PipelineConfig:
        return self.context.config

    @property
    def output(self) -> Path:
        return self.context.out


@dataclass
class StageOutcome:
    name: str
    ran: bool
    reason: str
    seconds: float = 0.0
    summary: str = ""


@dataclass
class PipelineResult:
    output: Path
    outcomes: list[StageOutcome] = field(default_factory=list)

    @property
    def ran(self) -> list[str]:
        return [o.name for o in self.outcomes if o.ran]

    @property
    def skipped(self) -> list[str]:
        return [o.name for o in self.outcomes if not o.ran]


# ============================================================================ plan
def _outputs_missing(ctx: Context, state: StageState) -> str | None:
    paths = [*state.outputs, *(p for files in state.item_outputs.values() for p in files)]
    return next((p for p in paths if not (ctx.out / p).exists()), None)


def _item_missing(ctx: Context, state: StageState, item: str) -> bool:
    files = state.item_outputs.get(item)
    return not files or any(not (ctx.out / p).exists() for p in files)


def _short_list(names: Sequence[str], limit: int = 3) -> str:
    names = list(names)
    more = f" +{len(names) - limit}" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _decide(
    ctx: Context,
    stage: Stage,
    previous: StageState | None,
    new_hash: str,
    config: dict,
    upstream: dict[str, str],
    items: dict[str, str],
    forced: bool,
    running_upstream: list[str],
) -> tuple[bool, str, list[str]]:
    """(runs?, why, items to redo)."""
    every = list(items)
    if forced:
        return True, "forced", every
    if previous is None:
        return True, "no previous run", every
    changed = changed_keys(previous.config, config)
    if changed:
        todo = [i for i in items if previous.items.get(i) != items[i]] if stage.itemized else every
        return True, f"{_short_list(changed)} changed", todo or every
    moved = [u for u, h in upstream.items() if previous.upstream.get(u) != h]
    if moved:
        return True, f"{_short_list(moved)} changed", every
    if running_upstream:
        return True, f"{_short_list(running_upstream)} reruns", every
    if stage.itemized:
        new = [i for i in items if i not in previous.items]
        differ = [i for i in items if i in previous.items and previous.items[i] != items[i]]
        missing = [i for i in items if i not in new and i not in differ and _item_missing(ctx, previous, i)]
        removed = [i for i in previous.items if i not in items]
        todo = new + differ + missing
        if not previous.complete:
            return True, f"interrupted ({len(items) - len(todo)} of {len(items)} done)", todo
        if new:
            return True, f"new: {_short_list(new)}", todo
        if differ:
            return True, f"changed: {_short_list(differ)}", todo
        if missing:
            return True, f"outputs missing: {_short_list(missing)}", todo
        if removed:
            return True, f"removed: {_short_list(removed)}", todo
    if previous.hash != new_hash or not previous.complete:
        return True, "interrupted" if not previous.complete else "configuration changed", every
    gone = _outputs_missing(ctx, previous)
    if gone is not None:
        return True, f"outputs missing ({gone})", every
    return False, "up to date", []


def plan_pipeline(
    config: PipelineConfig | str | Path,
    *,
    force: Sequence[str] = (),
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> Plan:
    """What a run would do: every applicable stage with run/skip and why. Creates nothing."""
    if not isinstance(config, PipelineConfig):
        config = load_pipeline(config)
    forced = _check_force(force)
    ctx = Context(config, progress=progress, echo=echo)
    _check_output(ctx.out)
    applicable = [s for s in STAGES if s.applies(ctx)]
    names = [s.name for s in applicable]
    for f in forced:
        if f != "all" and f not in names:
            raise KarmaError(f"--force {f}: this pipeline has no {f} stage (its stages: {', '.join(names)})")
    hashes: dict[str, str] = {}
    planned_items: dict[str, dict[str, str]] = {}
    running: set[str] = set()
    plans: list[StagePlan] = []
    for i, stage in enumerate(applicable, start=1):
        upstream = {u: hashes[u] for u in stage.upstream if u in hashes}
        stage_config = stage.config(ctx)
        items = stage.items(ctx, upstream, planned_items)
        new_hash = digest({"config": stage_config, "upstream": upstream, "items": items})
        previous = read_state(ctx.out, stage.name) if ctx.out.is_dir() else None
        running_upstream = [u for u in stage.upstream if u in running]
        run, reason, todo = _decide(
            ctx,
            stage,
            previous,
            new_hash,
            stage_config,
            upstream,
            items,
            "all" in forced or stage.name in forced,
            running_upstream,
        )
        if run:
            running.add(stage.name)
        hashes[stage.name] = new_hash
        planned_items[stage.name] = items
        plans.append(
            StagePlan(
                stage,
                i,
                len(applicable),
                new_hash,
                stage_config,
                upstream,
                items,
                todo,
                run,
                reason,
                stage.describe(ctx),
                previous,
            )  # fmt: skip
        )
    return Plan(ctx, plans)


def _check_force(force: Sequence[str]) -> list[str]:
    out = []
    for f in force:
        for name in (x.strip() for x in f.split(",")):
            if not name:
                continue
            if name != "all" and name not in STAGE_NAMES:
                raise KarmaError(f"--force {name}: unknown stage; stages: {', '.join(STAGE_NAMES)}, or all")
            out.append(name)
    return out


def _check_output(out: Path) -> None:
    """The output folder can be made and written, and is a pipeline's (or new, or empty). Creates nothing."""
    if out.exists():
        if not out.is_dir():
            raise KarmaError(f"output {out} exists and is not a folder")
        if any(out.iterdir()) and not (out / STATE_DIR).is_dir():
            raise KarmaError(f"output {out} is not empty and holds no karma run {STATE_DIR}/ folder; choose another")
    probe = out.absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise KarmaError(f"output {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise KarmaError(f"output {out}: {probe} is not writable")


# ============================================================================ run
def run_pipeline(
    config: PipelineConfig | str | Path,
    *,
    force: Sequence[str] = (),
    progress: bool = True,
    echo: Callable[[str], None] = print,
    on_stage: Callable[[StagePlan], None] | None = None,
    plan: Plan | None = None,
) -> PipelineResult:
    """Run the stages the plan says to run (see the module docstring); returns what each did."""
    plan = plan or plan_pipeline(config, force=force, progress=progress, echo=echo)
    ctx = plan.context
    for sp in plan.stages:  # everything that can fail fast, before the first long stage
        if sp.run:
            sp.stage.preflight(ctx, sp.todo)
    try:  # state/ first: a folder with it is a pipeline's, even when its first stage fails
        (ctx.out / STATE_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KarmaError(f"output {ctx.out}: cannot create it ({os_error_message(exc)})") from exc
    result = PipelineResult(ctx.out)
    with _lock(ctx.out):
        for sp in plan.stages:
            if on_stage is not None:
                on_stage(sp)
            if not sp.run:
                summary = sp.previous.summary if sp.previous is not None else ""
                result.outcomes.append(StageOutcome(sp.name, False, sp.reason, 0.0, summary))
                continue
            result.outcomes.append(_run_stage(ctx, sp))
    return result


LOCK_FILE = ".lock"


@contextmanager
def _lock(out: Path) -> Iterator[None]:
    """One ``karma run`` per output folder at a time: an exclusive ``flock`` on ``state/.lock``
    (released by the system when the process ends, however it ends). Without ``fcntl`` (Windows), no lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(out / STATE_DIR / LOCK_FILE, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise KarmaError(
                f"output {out} is in use by another karma run ({STATE_DIR}/{LOCK_FILE} is locked)"
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_stage(ctx: Context, sp: StagePlan) -> StageOutcome:
    previous = sp.previous
    carried = {
        i: h
        for i, h in (previous.items.items() if previous is not None else ())
        if sp.stage.itemized and i in sp.items and i not in sp.todo and sp.items[i] == h
    }
    item_outputs = {i: list(previous.item_outputs.get(i, [])) for i in carried} if previous is not None else {}
    done_items = dict(carried)

    def rel(paths: Sequence[Path]) -> list[str]:
        return [str(Path(p).resolve().relative_to(ctx.out.resolve())) for p in paths]

    def done(item: str, files: list[Path]) -> None:
        done_items[item] = sp.items[item]
        item_outputs[item] = rel(files)
        write_state(
            ctx.out,
            StageState(sp.name, "", sp.config, sp.upstream, dict(done_items), [], dict(item_outputs), complete=False),
        )

    start = time.perf_counter()
    files, summary = sp.stage.run(ctx, sp.todo, done)
    seconds = time.perf_counter() - start
    state = StageState(
        sp.name,
        sp.hash,
        sp.config,
        sp.upstream,
        sp.items,
        [] if sp.stage.itemized else rel(files),
        {i: item_outputs[i] for i in sp.items if i in item_outputs} if sp.stage.itemized else {},
        complete=True,
        summary=summary,
        seconds=round(seconds, 3),
    )
    write_state(ctx.out, state)
    return StageOutcome(sp.name, True, sp.reason, seconds, summary)
