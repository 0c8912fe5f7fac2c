"""What each stage of ``karma run`` does, through the library's own entry points.

A stage declares the configuration it reads (:meth:`Stage.config`), the stages it consumes
(:attr:`Stage.upstream`), its items when it has several (one per model or student, each with its
own hash), the checks that can fail before any long work (:meth:`Stage.preflight`) and the work
itself (:meth:`Stage.run`). Stage outputs live under the pipeline's output folder:

=====================  ==============================================  ======================
stage                  library call                                    output
=====================  ==============================================  ======================
evaluate               :func:`karma_hf.evaluation.run.evaluate_models`  ``eval/<model>/``
generate               :func:`karma_hf.generation.run.generate`        ``generate/``
kinship                :class:`karma_hf.kinship.Kinship`               ``kinship/``
build                  :func:`karma_hf.pairs.builder.run_build`         ``dataset/``
push                   :func:`karma_hf.hub.push_folder`                (the Hub repo)
train                  :func:`karma_hf.train.train`                    ``train/<student>/``
evaluate-students      :func:`karma_hf.evaluation.run.evaluate_models`  ``train/<student>/karma_eval/``
compare                :func:`karma_hf.evaluation.compare.compare_runs` ``compare/``
=====================  ==============================================  ======================

Heavy libraries (torch, transformers, trl, lm_eval, datasets) are imported inside the methods.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from karma_hf.errors import KarmaError, os_error_message
from karma_hf.pipeline.config import EvaluateSection, PipelineConfig
from karma_hf.pipeline.state import digest, path_digest

if TYPE_CHECKING:  # pragma: no cover
    from karma_hf.generation.config import GenerateConfig
    from karma_hf.generation.prompts import PromptSet

EVAL_DIR = "eval"
GENERATE_DIR = "generate"
KINSHIP_DIR = "kinship"
KINSHIP_FILE = "kinship.json"
SCORES_FILE = "scores.csv"
DATASET_DIR = "dataset"
TRAIN_DIR = "train"
COMPARE_DIR = "compare"


@dataclass
class Context:
    """One pipeline run: the configuration, its output folder, and what stages share (loaded once)."""

    config: PipelineConfig
    progress: bool = True
    echo: Callable[[str], None] = print
    _prompts: PromptSet | None = field(default=None, repr=False)
    _benchmarks: list[str] | None = field(default=None, repr=False)

    @property
    def out(self) -> Path:
        return Path(self.config.output).expanduser()

    @property
    def prompts(self) -> PromptSet:
        """The prompt set (loaded once; needed to plan: its digest and size)."""
        if self._prompts is None:
            from karma_hf.generation.prompts import load_prompts

            p = self.config.prompts
            self._prompts = load_prompts(
                p.source, prompt_column=p.column, split=p.split, revision=p.revision, limit=p.limit
            )
        return self._prompts

    @property
    def score_benchmarks(self) -> list[str]:
        """The score-table columns: the leaves of the karma tasks and groups, plus each ``TASK[:METRIC]``."""
        if self._benchmarks is None:
            self._benchmarks = score_benchmarks(self.config.evaluate)
        return self._benchmarks

    def generate_config(self) -> GenerateConfig:
        from karma_hf.generation.config import GenerateConfig

        g = self.config.generate
        return GenerateConfig(
            models=self.config.models,
            output=str(self.out / GENERATE_DIR),
            per_prompt=g.per_prompt,
            seed=g.seed,
            shard_size=g.shard_size,
            batch_size=g.batch_size,
            device=g.device,
        )


def score_benchmarks(section: EvaluateSection) -> list[str]:
    """``TASK[:METRIC]`` columns read from the results of ``section.benchmarks``."""
    import fnmatch

    from karma_hf.evaluation.run import karma_task_index

    index = None
    out: list[str] = []
    for entry in section.benchmarks:
        task, _, metric = entry.partition(":")
        if task.startswith("karma") and not metric:
            index = index or karma_task_index()
            matched = fnmatch.filter(index.names, task)
            if not matched:
                raise KarmaError(f"evaluate.benchmarks: unknown karma task {task!r}; known: {', '.join(index.names)}")
            out += [leaf for m in matched for leaf in index.leaves(m)]
        else:
            out.append(entry)
    return list(dict.fromkeys(out))


def _lm_eval_model(backend: str) -> str:
    return "vllm" if backend == "vllm" else "hf"


def _eval_settings(section: EvaluateSection) -> dict[str, Any]:
    """What decides evaluation results (the device does not)."""
    data = section.to_dict()
    data.pop("device", None)
    return data


def _rel(ctx: Context, path: Path) -> str:
    return str(path.relative_to(ctx.out))


def _results_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*/results_*.json"))


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


@dataclass
class Describe:
    """A stage's line in the plan: models, items of work, estimated generated tokens."""

    models: str = ""
    work: str = ""
    tokens: int | None = None


class Stage:
    """Base class; see the module docstring. ``itemized`` stages run per item (model or student)."""

    name = ""
    upstream: tuple[str, ...] = ()
    itemized = False

    def applies(self, ctx: Context) -> bool:
        return True

    def config(self, ctx: Context) -> dict[str, Any]:
        return {}

    def items(self, ctx: Context, upstream: dict[str, str], planned: dict[str, dict[str, str]]) -> dict[str, str]:
        """Per-item hashes; ``upstream``: the upstream stages' hashes, ``planned``: items of earlier stages."""
        return {}

    def describe(self, ctx: Context) -> Describe:
        return Describe()

    def preflight(self, ctx: Context, todo: list[str]) -> None:
        """Checks that need no long work (run before the first stage starts)."""

    def run(self, ctx: Context, todo: list[str], done: Callable[[str, list[Path]], None]) -> tuple[list[Path], str]:
        """Do the work; returns (output files, one-line summary). Itemized stages call
        ``done(item, files)`` after each item."""
        raise NotImplementedError


# ============================================================================ evaluate
class EvaluateStage(Stage):
    name = "evaluate"
    itemized = True

    def config(self, ctx: Context) -> dict[str, Any]:
        return _eval_settings(ctx.config.evaluate)

    def items(self, ctx: Context, upstream: dict[str, str], planned: dict[str, dict[str, str]]) -> dict[str, str]:
        settings = self.config(ctx)
        return {
            m.name: digest(
                {
                    "backend": m.backend,
                    "model_args": m.model_args,
                    "evaluate": {**settings, "apply_chat_template": ctx.config.apply_chat_template(m.name)},
                }
            )
            for m in ctx.config.models
        }

    def folder(self, ctx: Context, name: str) -> Path:
        from karma_hf.generation.shards import model_dir

        return ctx.out / EVAL_DIR / model_dir(name)

    def describe(self, ctx: Context) -> Describe:
        e = ctx.config.evaluate
        limit = f"{e.limit:g} items" if e.limit is not None else "all items"
        return Describe(str(len(ctx.config.models)), f"{len(e.tasks)} task(s) x {limit}")

    def preflight(self, ctx: Context, todo: list[str]) -> None:
        from karma_hf.evaluation.run import check_model, preflight_tasks

        specs = [m for m in ctx.config.models if m.name in todo]
        if any(m.backend == "vllm" for m in specs):
            from karma_hf.generation.vllm_backend import require_vllm

            require_vllm()
        for m in specs:
            check_model(m.model_args)
        try:
            preflight_tasks(ctx.config.evaluate.tasks)
        except KarmaError as exc:
            raise KarmaError(f"evaluate.benchmarks: {exc}") from exc

    def run(self, ctx: Context, todo: list[str], done: Callable[[str, list[Path]], None]) -> tuple[list[Path], str]:
        from karma_hf.evaluation.run import evaluate_models
        from karma_hf.generation.shards import model_dir

        e = ctx.config.evaluate
        keep = {model_dir(m.name) for m in ctx.config.models}
        root = ctx.out / EVAL_DIR
        if root.is_dir():  # models no longer in the pool
            for stale in root.iterdir():
                if stale.name not in keep:
                    _remove(stale)
        files: list[Path] = []
        specs = [m for m in ctx.config.models if m.name in todo]
        for i, m in enumerate(specs):
            ctx.echo(f"      evaluate {i + 1}/{len(specs)}: {m.name}")
            folder = self.folder(ctx, m.name)
            _remove(folder)
            written = evaluate_models(
                [m.model_args],
                model=_lm_eval_model(m.backend),
                tasks=e.tasks,
                output_path=folder,
                limit=e.limit,
                batch_size=e.batch_size,
                device=e.device,
                apply_chat_template=ctx.config.apply_chat_template(m.name),
                extra_args=e.extra_args(),
            )
            done(m.name, written)
            files += written
        return files, f"{len(specs)} of {len(ctx.config.models)} model(s) evaluated"


# ============================================================================ generate
class GenerateStage(Stage):
    name = "generate"

    def config(self, ctx: Context) -> dict[str, Any]:
        g = ctx.generate_config()
        p = ctx.config.prompts
        return {
            "prompts": {
                "source": p.source,
                "column": p.column,
                "split": p.split,
                "revision": p.revision,
                "limit": p.limit,
                "digest": ctx.prompts.digest(),
            },
            "models": [m.to_dict() for m in g.models],
            "per_prompt": g.per_prompt,
            "seed": g.seed,
            "shard_size": g.shard_size,
            "batch_size": g.batch_size,
        }

    def describe(self, ctx: Context) -> Describe:
        from karma_hf.generation.shards import plan

        g = ctx.generate_config()
        shards = plan(g, ctx.prompts)
        tokens = sum(len(s.prompts) * g.models[i].settings.max_new_tokens for i, ms in enumerate(shards) for s in ms)
        per = f", {g.per_prompt} per prompt" if g.per_prompt and g.per_prompt < len(g.models) else ""
        return Describe(f"{len(g.models)}{per}", f"{len(ctx.prompts)} prompts", tokens)

    def preflight(self, ctx: Context, todo: list[str]) -> None:
        from karma_hf.generation.run import check_models

        check_models(ctx.config.models)

    def run(self, ctx: Context, todo: list[str], done: Callable[[str, list[Path]], None]) -> tuple[list[Path], str]:
        from karma_hf.generation.run import generate

        # a run of another configuration in generate/ is replaced; the same one resumes
        result = generate(ctx.generate_config(), ctx.prompts, overwrite=True, progress=ctx.progress)
        tokens = sum(r.new_tokens for r in result.models)
        responses = sum(r.prompts for r in result.models)
        from karma_hf.generation.shards import MANIFEST

        summary = f"{result.rows} prompts, {responses} responses" + (f", {tokens} new tokens" if tokens else "")
        return [result.data_file, result.output / MANIFEST], summary


# ============================================================================ kinship
class KinshipStage(Stage):
    name = "kinship"
    upstream = ("evaluate",)

    def config(self, ctx: Context) -> dict[str, Any]:
        k = ctx.config.kinship
        return {
            "tau": k.tau,
            "allow_missing": k.allow_missing,
            "benchmarks": ctx.score_benchmarks,
            "scores": [{"spec": s, "digest": path_digest(s)} for s in k.scores],
            "score_overrides": k.score_overrides,
            "models": [m.name for m in ctx.config.models],
        }

    def describe(self, ctx: Context) -> Describe:
        return Describe(str(len(ctx.config.models)), f"{len(ctx.score_benchmarks)} benchmark(s)")

    def preflight(self, ctx: Context, todo: list[str]) -> None:
        k = ctx.config.kinship
        known = {m.name for m in ctx.config.models}
        if k.scores:
            from karma_hf.scores import load_scores

            try:
                extra = load_scores(list(k.scores), benchmarks=ctx.score_benchmarks, allow_missing=k.allow_missing)
            except KarmaError as exc:
                raise KarmaError(f"kinship.scores: {exc}") from exc
            known |= set(extra.models)
        for model, values in k.score_overrides.items():
            if model not in known:
                raise KarmaError(
                    f"kinship.score_overrides: {model!r} is not a model of the pool or of kinship.scores "
                    f"({', '.join(sorted(known))})"
                )
            bad = sorted(set(values) - set(ctx.score_benchmarks))
            if bad:
                raise KarmaError(
                    f"kinship.score_overrides.{model}: {bad[0]!r} is not a benchmark of the pipeline "
                    f"({', '.join(ctx.score_benchmarks)})"
                )

    def table(self, ctx: Context):
        """The score table: measured results (named by the pool's names), extra sources, overrides."""
        import dataclasses

        import numpy as np

        from karma_hf.scores import load_scores

        k = ctx.config.kinship
        evaluate = EvaluateStage()
        specs = [f"{m.name}={evaluate.folder(ctx, m.name)}" for m in ctx.config.models]
        table = load_scores([*specs, *k.scores], benchmarks=ctx.score_benchmarks, allow_missing=k.allow_missing)
        if not k.score_overrides:
            return table
        values = np.array(table.values, dtype=np.float64)
        for model, row in k.score_overrides.items():
            for bench, value in row.items():
                if bench not in table.benchmarks:  # dropped by allow_missing
                    continue
                values[table.models.index(model), table.benchmarks.index(bench)] = float(value)
        note = f"score_overrides of {ctx.config.path.name} applied to {', '.join(k.score_overrides)}"
        return dataclasses.replace(table, values=values, notes=[*table.notes, note])

    def run(self, ctx: Context, todo: list[str], done: Callable[[str, list[Path]], None]) -> tuple[list[Path], str]:
        from karma_hf.kinship import Kinship

        table = self.table(ctx)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            kin = Kinship.from_table(table, tau=ctx.config.kinship.tau)
        notes = [*table.notes, *(str(w.message) for w in caught)]
        for note in notes:
            ctx.echo(f"      {note}" if note.startswith("warning:") else f"      note: {note}")
        pairs = kin.global_pairs_dict()
        payload = {
            "scores": table.to_dict(),
            "kinship": kin.to_dict(),
            "ranking": kin.ranking(),
            "pairs": pairs,
            "notes": notes,
        }
        folder = ctx.out / KINSHIP_DIR
        folder.mkdir(parents=True, exist_ok=True)
        from karma_hf.generation.shards import write_atomic_text

        write_atomic_text(json.dumps(payload, indent=2) + "\n", folder / KINSHIP_FILE)
        write_atomic_text(table.to_csv(), folder / SCORES_FILE)
        picked = [f"{m} {p['chosen']} > {p['rejected']}" for m, p in pairs.items() if "chosen" in p]
        summary = f"tau {kin.tau:g}; " + ("; ".join(picked) if picked else "no kin pair in the pool")
        return [folder / KINSHIP_FILE, folder / SCORES_FILE], summary


# ============================================================================ build
class BuildStage(Stage):
    name = "build"
    upstream = ("generate", "kinship")

    def config(self, ctx: Context) -> dict[str, Any]:
        b = ctx.config.build
        data = {k: v for k, v in b.__dict__.items() if k != "num_proc"}
        data["repo"] = ctx.config.hub.repo if ctx.config.hub else None  # named in the card
        return data

    def describe(self, ctx: Context) -> Describe:
        b = ctx.config.build
        configs = len(b.modes) * len(b.forms)
        work = f"{len(ctx.prompts)} rows, {configs} config(s)"
        return Describe(f"{len(b.modes)} mode(s) x {len(b.forms)} form(s)", work)

    def run(self, ctx: Context, todo: list[str], done: Callable[[str, list[Path]], None]) -> tuple[list[Path], str]:
        from karma_hf.pairs.builder import run_build
        from karma_hf.pairs.config import BuildConfig
        from karma_hf.score_table import ScoreTable

        b, k = ctx.config.build, ctx.config.kinship
        kin_dir = ctx.out / KINSHIP_DIR
        table = ScoreTable.from_dict(json.loads((kin_dir / KINSHIP_FILE).read_text(encoding="utf-8"))["scores"])
        output = ctx.out / DATASET_DIR
        repo = ctx.config.hub.repo if ctx.config.hub else None
        config = BuildConfig(
            source=str(ctx.out / GENERATE_DIR),
            scores=(str(kin_dir / SCORES_FILE),),
            modes=b.modes,
            tau=k.tau,
            forms=b.forms,
            max_pairs_per_prompt=b.max_pairs_per_prompt,
            seed=b.seed,
            test_size=b.test_size,
            ignore_unknown_models=b.ignore_unknown_models,
            num_proc=b.num_proc,
            output=str(output),
            overwrite=True,
            push_to=repo,
            private=bool(ctx.config.hub and ctx.config.hub.private),
        )
        result = run_build(config, table=table, progress=False, repo_id=repo)
        from karma_hf.layout import REPORT_FILE

        kept = ", ".join(f"{m} {info['kept']}" for m, info in result.report["modes"].items())
        return [output / REPORT_FILE, output / "README.md"], f"pairs kept: {kept}"


# ============================================================================ push
class PushStage(Stage):
    name = "push"
    upstream = ("build",)

    def applies(self, ctx: Context) -> bool:
        return ctx.config.hub is not None

    def config(self, ctx: Context) -> dict[str, Any]:
        assert ctx.config.hub is not None
        return {"repo": ctx.config.hub.repo, "private": ctx.config.hub.private}

    def describe(self, ctx: Context) -> Describe:
        assert ctx.config.hub is not None
        return Describe("", f"datasets/{ctx.config.hub.repo}")

    def preflight(self, ctx: Context, todo: list[str]) -> None:
        from karma_hf.hub import check_push_target

        assert ctx.config.hub is not None
        try:
            check_push_target(ctx.config.hub.repo)
        except KarmaError as exc:
            raise KarmaError(f"hub.repo: {exc}") from exc

    def run(self, ctx: Context, todo: list[str], done: Callable[[str, list[Path]], None]) -> tuple[list[Path], str]:
        from karma_hf.hub import push_folder

        assert ctx.config.hub is not None
        url = push_folder(ctx.out / DATASET_DIR, ctx.config.hub.repo, private=ctx.config.hub.private)
        return [], f"pushed to {url}"


# ============================================================================ train
class TrainStage(Stage):
    name = "train"
    upstream = ("build",)
    itemized = True

    def applies(self, ctx: Context) -> bool:
        return ctx.config.train is not None

    def config(self, ctx: Context) -> dict[str, Any]:
        assert ctx.config.train is not None
        return {"students": [dict(s.__dict__) for s in ctx.config.train.students]}

    def recipe(self, student_recipe: str) -> Path:
        from karma_hf.resources import resolve_recipe

        return resolve_recipe(student_recipe)

    def items(self, ctx: Context, upstream: dict[str, str], planned: dict[str, dict[str, str]]) -> dict[str, str]:
        assert ctx.config.train is not None
        return {
            s.name: digest({"student": dict(s.__dict__), "recipe": path_digest(self.recipe(s.recipe)), **upstream})
            for s in ctx.config.train.students
        }

    def folder(self, ctx: Context, name: str) -> Path:
        return ctx.out / TRAIN_DIR / name

    def describe(self, ctx: Context) -> Describe:
        assert ctx.config.train is not None
        students = ctx.config.train.students
        return Describe(str(len(students)), ", ".join(f"{s.name} ({s.stage})" for s in students))

    def argv(self, ctx: Context, student: Any) -> list[str]:
        return student.argv(self.recipe(student.recipe), ctx.out / DATASET_DIR, self.folder(ctx, student.name))

    def preflight(self, ctx: Context, todo: list[str]) -> None:
        from karma_hf.evaluation.run import check_pretrained
        from karma_hf.train.args import parse_args

        assert ctx.config.train is not None
        for i, s in enumerate(ctx.config.train.students):
            if s.name not in todo:
                continue
            at = f"train.students[{i}]"
            if not self.recipe(s.recipe).is_file():
                raise KarmaError(f"{at}.recipe: no such file or shipped recipe: {s.recipe}")
            try:
                check_pretrained(s.model)
                parse_args(s.stage, self.argv(ctx, s))  # unknown or stale keys fail now, not after the build
            except KarmaError as exc:
                raise KarmaError(f"{at} ({s.name}): {exc}") from exc

    def run(self, ctx: Context, todo: list[str], done: Callable[[str, list[Path]], None]) -> tuple[list[Path], str]:
        from karma_hf.train import train

        assert ctx.config.train is not None
        files: list[Path] = []
        students = [s for s in ctx.config.train.students if s.name in todo]
        for i, s in enumerate(students):
            ctx.echo(f"      train {i + 1}/{len(students)}: {s.name} ({s.stage} on {s.mode or 'the recipe mode'})")
            folder = self.folder(ctx, s.name)
            _remove(folder)
            result = train(s.stage, self.argv(ctx, s))
            written = [p for p in (folder / "config.json", folder / "karma_provenance.json") if p.exists()]
            done(s.name, written)
            files += written
            ctx.echo(f"      {s.name}: {result.global_step} step(s) in {result.train_seconds:.1f} s")
        return files, f"{len(students)} student(s) trained"


# ============================================================================ evaluate the students
class EvaluateStudentsStage(Stage):
    name = "evaluate-students"
    upstream = ("train",)
    itemized = True

    def applies(self, ctx: Context) -> bool:
        return ctx.config.student_evaluate is not None

    def section(self, ctx: Context) -> EvaluateSection:
        section = ctx.config.student_evaluate
        assert section is not None
        return section

    def config(self, ctx: Context) -> dict[str, Any]:
        return _eval_settings(self.section(ctx))

    def items(self, ctx: Context, upstream: dict[str, str], planned: dict[str, dict[str, str]]) -> dict[str, str]:
        assert ctx.config.train is not None
        settings = self.config(ctx)
        trained = planned["train"]
        return {s.name: digest({"evaluate": settings, "student": trained[s.name]}) for s in ctx.config.train.students}

    def describe(self, ctx: Context) -> Describe:
        assert ctx.config.train is not None
        e = self.section(ctx)
        limit = f"{e.limit:g} items" if e.limit is not None else "all items"
        return Describe(str(len(ctx.config.train.students)), f"{len(e.tasks)} task(s) x {limit}")

    def preflight(self, ctx: Context, todo: list[str]) -> None:
        from karma_hf.evaluation.run import preflight_tasks

        try:
            preflight_tasks(self.section(ctx).tasks)
        except KarmaError as exc:
            raise KarmaError(f"train.evaluate.benchmarks: {exc}") from exc

    def run(self, ctx: Context, todo: list[str], done: Callable[[str, list[Path]], None]) -> tuple[list[Path], str]:
        from karma_hf.evaluation.run import evaluate_models

        e = self.section(ctx)
        files: list[Path] = []
        for i, name in enumerate(todo):
            ctx.echo(f"      evaluate student {i + 1}/{len(todo)}: {name}")
            folder = TrainStage().folder(ctx, name) / "karma_eval"
            _remove(folder)
            written = evaluate_models(
                [f"pretrained={TrainStage().folder(ctx, name)}"],
                tasks=e.tasks,
                output_path=folder,
                limit=e.limit,
                batch_size=e.batch_size,
                device=e.device,
                apply_chat_template=e.apply_chat_template,
                extra_args=e.extra_args(),
            )
            done(name, written)
            files += written
        return files, f"{len(todo)} student(s) evaluated"


# ============================================================================ compare
class CompareStage(Stage):
    name = "compare"
    upstream = ("evaluate-students",)

    def applies(self, ctx: Context) -> bool:
        return ctx.config.student_evaluate is not None

    def config(self, ctx: Context) -> dict[str, Any]:
        assert ctx.config.train is not None
        return {"baseline": ctx.config.train.baseline}

    def describe(self, ctx: Context) -> Describe:
        assert ctx.config.train is not None
        base = ctx.config.train.baseline
        return Describe(str(len(ctx.config.train.students)), f"baseline {base}" if base else "no baseline")

    def run(self, ctx: Context, todo: list[str], done: Callable[[str, list[Path]], None]) -> tuple[list[Path], str]:
        from karma_hf.evaluation.compare import compare_runs, plot_comparison
        from karma_hf.generation.shards import write_atomic_text

        train = ctx.config.train
        assert train is not None
        runs = [TrainStage().folder(ctx, s.name) for s in train.students]
        baseline = TrainStage().folder(ctx, train.baseline) if train.baseline else None
        cmp = compare_runs(runs, baseline=baseline)
        folder = ctx.out / COMPARE_DIR
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic_text(json.dumps(cmp.to_dict(), indent=2) + "\n", folder / "compare.json")
        write_atomic_text(cmp.to_markdown() + "\n", folder / "compare.md")
        files = [folder / "compare.json", folder / "compare.md"]
        try:
            files.append(plot_comparison(cmp, folder / "compare.png"))
        except OSError as exc:  # the plot is a convenience; the tables are the result
            ctx.echo(f"      note: no plot ({os_error_message(exc)})")
        best = max(cmp.runs, key=lambda r: cmp.value(r, "average"))
        return files, f"{len(cmp.runs)} run(s) on {len(cmp.benchmarks)} benchmark(s); best average: {best.label}"


#: Every stage, in the order they run.
STAGES: tuple[Stage, ...] = (
    EvaluateStage(),
    GenerateStage(),
    KinshipStage(),
    BuildStage(),
    PushStage(),
    TrainStage(),
    EvaluateStudentsStage(),
    CompareStage(),
)
STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
