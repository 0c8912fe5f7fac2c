"""Build kinship-mapped preference sets (KARMA stages 2–3) and the baseline: :func:`build`.

:func:`build` turns a multi-model response dataset (any registered source schema,
:mod:`karma_hf.sources`) into one config per mode (:mod:`karma_hf.layout`) in two passes over
the memory-mapped source, one Arrow record batch at a time (:mod:`karma_hf.pairs.stream`):

1. **scan**: hash every row's prompt and keep per row only a 16-byte test-split key, checking
   that every completion names a known model; only the rows of the smallest keys are parsed, to
   find the held-out prompts among well-formed rows (:func:`karma_hf.pairs.stream.quick_scan`).
   With ``--strict``, a fractional ``--test-size``, rows the loader could not read, an unknown
   model or a source without a quick scan, every batch is parsed instead (``num_proc`` threads,
   default up to 2), counting malformed rows and unknown models (errors before anything is
   written); then the distinct prompts are ranked into the test split;
2. **decide and write**: parse each batch (again, after a full scan), decide its rows' pairs for
   every mode (:mod:`karma_hf.pairs.decide`, numpy per batch, one ``Kinship.select`` per distinct
   candidate set of the whole source), gather each config's rows with Arrow ``take`` and hand them to that
   config's writer thread (:mod:`karma_hf.pairs.writer`: parquet in 1,000-row row groups, the
   configs encoded concurrently while the next batch is parsed); the counts of the build report
   (:mod:`karma_hf.pairs.report`) are gathered on the way, then the report and the card
   (:mod:`karma_hf.cards.dataset`) are written;
3. **publish** atomically: everything is written into a hidden sibling folder
   (``.<name>.partial-<pid>``) that is moved into place only when complete. ``overwrite``
   replaces a previous build only then, so an interrupted build leaves the previous one intact;
   a leftover partial folder of a killed run is never read by ``load_dataset(output)`` and is
   removed by the next build.

Memory: what a build keeps per source row is one int8 status per mode and one test flag (plus the
16-byte key during the first pass, and the parsed batches of a full scan when all of them fit
64 MiB); everything else lives for one batch (``batch_size`` rows, at most two waiting per
config), except the parquet footers (row-group statistics), which each writer holds until its
file closes. Measured with ``benchmarks/build.py`` (UltraFeedback-like rows, 4 completions of
~1.2k characters): peak anonymous memory (``RssAnon``) 174 / 262 MB for one / four modes at 64k
rows, 181 / 283 MB at 256k, 248 / 393 MB at 1M rows: it grows by a few bytes per row, not with
the text. The resident set (RSS) is larger by the pages of the memory-mapped source that the
passes read: file-backed page cache, shared and reclaimable, which the OS evicts under memory
pressure.

Outputs: one config per mode and form (:data:`karma_hf.layout.FORMS`; ``sim`` is the ``best``
form, ``sim-all`` the ``all`` form, ...); all splits of a config share one schema
(:func:`karma_hf.layout.form_schema`; ``datasets`` needs one schema per config). The ``best``
form's ``train_sft`` split is declared on ``train``'s file (same rows; SFT reads ``messages``), so
its bytes are stored and uploaded once. A split with no rows is not written (``datasets`` cannot
load an empty split) and the card does not declare it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from karma_hf.errors import KarmaError, os_error_message
from karma_hf.layout import DROP_REASONS, REPORT_FILE, config_form, shard_name, shard_split
from karma_hf.pairs.config import DEFAULT_SCORES, DEFAULT_SOURCE, BuildConfig, check_test_size

if TYPE_CHECKING:  # pragma: no cover
    import datasets

    from karma_hf.kinship import Kinship
    from karma_hf.scores import ScoreTable


@dataclass
class BuildResult:
    """What :func:`build` made: the report, the kinship, and (lazily loaded) the datasets."""

    report: dict[str, Any]
    kinship: Kinship
    table: ScoreTable
    output: Path
    cache_dir: str | None = None
    statuses: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _datasets: dict[str, datasets.DatasetDict] | None = field(default=None, repr=False)
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def modes(self) -> tuple[str, ...]:
        return tuple(self.report["modes"])

    def row_reasons(self, mode: str) -> list[str]:
        """Per source row: ``"kept"`` or the drop reason, in source order."""
        names = ("kept", *DROP_REASONS)
        return [names[int(code)] for code in self.statuses[mode]]

    @property
    def configs(self) -> tuple[str, ...]:
        """Every config written (a mode in a form: ``sim``, ``sim-all``, ...)."""
        return tuple(name for name, info in self.report["configs"].items() if any(info["splits"].values()))

    def files(self, config: str) -> dict[str, Path]:
        """The parquet file of each split of ``config`` (empty splits are not written; ``train_sft``
        reads ``train``'s file)."""
        splits = config_form(config).splits
        paths = {split: self.output / config / shard_name(shard_split(split)) for split in splits}
        return {split: path for split, path in paths.items() if path.exists()}

    @property
    def datasets(self) -> dict[str, datasets.DatasetDict]:
        """``{config: DatasetDict(train, test[, train_sft])}`` read from the written parquet files."""
        if self._datasets is None:
            import datasets as hf_datasets

            self._datasets = {
                mode: hf_datasets.load_dataset(
                    "parquet", data_files={s: str(p) for s, p in self.files(mode).items()}, cache_dir=self.cache_dir
                )
                for mode in self.configs
                if self.files(mode)
            }
        return self._datasets


def build(
    source: str | Path | datasets.Dataset = DEFAULT_SOURCE,
    *,
    scores: str | Path | Sequence[str | Path] | ScoreTable = DEFAULT_SCORES,
    modes: Iterable[str] | str | None = None,
    tau: float = 0.1,
    forms: Iterable[str] | str = ("best",),
    max_pairs_per_prompt: int | None = None,
    seed: int = 42,
    test_size: int | float = 2000,
    revision: str | None = None,
    output: str | Path | None = None,
    split: str = "train",
    rating: str = "aspects",
    rlaif_recipe: str = "h4",
    truthfulqa_questions: str | Path | None = None,
    include_ultralm_65b: bool = False,
    source_format: str = "auto",
    ignore_unknown_models: bool = False,
    strict: bool = False,
    num_proc: int | None = None,
    batch_size: int = 1000,
    cache_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
    command: str | None = None,
    repo_id: str | None = None,
    card_note: str | None = None,
    config: BuildConfig | None = None,
) -> BuildResult:
    """Binarize ``source`` into one preference config per mode and write it.

    ``source``: a Hub id, a local path (parquet/jsonl/arrow/save_to_disk) or a ``Dataset``.
    ``scores``: a preset name, CSV, lm-eval results path(s) or a ``ScoreTable``.
    ``test_size``: number of distinct prompts held out (or a fraction in (0, 1)).
    ``forms``: how each mode's decisions become rows (:data:`karma_hf.layout.FORMS`: ``best``,
    ``all``, ``ranked``, ``unpaired``), one config per mode and form (``sim``, ``sim-all``, ...);
    ``max_pairs_per_prompt`` caps the ``all`` form.
    ``output``: folder for ``<mode>/<split>-00000-of-00001.parquet``, ``README.md`` (the card)
    and ``build_report.json``; without it a temporary folder lives as long as the result.
    ``source_format``: a registered source schema, or ``auto`` (detected from the columns).
    ``rlaif_recipe``: how the ``rlaif`` baseline binarizes (``h4`` or ``argilla``,
    :data:`karma_hf.layout.RLAIF_RECIPES`); ``truthfulqa_questions``: a TruthfulQA question file
    whose copies ``h4`` drops (:mod:`karma_hf.pairs.exclusions`). ``include_ultralm_65b``: use
    UltraLM-65B's completions (excluded from every mode by default, as in §3.1 of the paper).
    ``ignore_unknown_models``: skip (and count) completions of models that are neither scored
    nor known-unscored instead of failing. ``strict``: fail on the first malformed row.
    ``command`` (overrides the recorded build command) and ``repo_id`` (where it will be
    published) go into the card, and ``card_note`` under its title. ``config``: a ready
    :class:`BuildConfig` (the other options are then ignored, except ``source``/``scores``
    objects, ``cache_dir``, ``progress``, ``command`` and ``repo_id``).
    """
    from karma_hf.scores import ScoreTable, load_scores

    table = scores if isinstance(scores, ScoreTable) else None
    if config is None:
        specs = (
            table.source.split(", ")
            if table is not None
            else [str(scores)]
            if isinstance(scores, (str, Path))
            else [str(s) for s in scores]  # type: ignore[union-attr]
        )
        config = BuildConfig(
            source=str(source) if isinstance(source, (str, Path)) else "<in-memory Dataset>",
            source_format=source_format,
            revision=revision,
            split=split,
            scores=tuple(specs),
            modes=(modes if isinstance(modes, str) else tuple(modes)) if modes is not None else BuildConfig().modes,
            tau=tau,
            forms=forms if isinstance(forms, str) else tuple(forms),
            max_pairs_per_prompt=max_pairs_per_prompt,
            seed=seed,
            test_size=test_size,
            rating=rating,
            rlaif_recipe=rlaif_recipe,
            truthfulqa_questions=str(truthfulqa_questions) if truthfulqa_questions is not None else None,
            include_ultralm_65b=include_ultralm_65b,
            ignore_unknown_models=ignore_unknown_models,
            strict=strict,
            num_proc=num_proc,
            batch_size=batch_size,
            output=str(output) if output is not None else None,
            overwrite=overwrite,
            push_to=repo_id,
        )
    if table is None:
        table = load_scores(
            list(config.scores),
            benchmarks=list(config.benchmarks) or None,
            allow_missing=config.allow_missing,
            aliases=config.aliases,
        )
    return run_build(
        config,
        table=table,
        dataset=None if isinstance(source, (str, Path)) else source,
        cache_dir=cache_dir,
        progress=progress,
        command=command,
        repo_id=repo_id or config.push_to,
        card_note=card_note,
    )


def run_build(
    config: BuildConfig,
    *,
    table: ScoreTable,
    dataset: datasets.Dataset | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    command: str | None = None,
    repo_id: str | None = None,
    card_note: str | None = None,
) -> BuildResult:
    """Run the build that ``config`` describes, with the score table already loaded."""

    from karma_hf.cards.dataset import write_dataset_card
    from karma_hf.kinship import Kinship
    from karma_hf.pairs.report import BuildStats, build_report
    from karma_hf.pairs.stream import Context, can_quick_scan, decide_and_write, quick_scan, resolve_test_split
    from karma_hf.pairs.writer import OutputWriter, release_unused
    from karma_hf.sources.loading import LOAD_ERROR_COLUMN, has_splits, load_source
    from karma_hf.sources.registry import detect_source, get_source, pinned_revision

    kin = Kinship.from_table(table, tau=config.tau)
    output = Path(config.output) if config.output is not None else None
    if output is not None:
        _check_output(output, config.overwrite)

    revision = config.revision
    if dataset is not None:
        ds, source_id = dataset, "<in-memory Dataset>"
        if ds._indices is not None:  # noqa: SLF001 - an indices mapping would break batch alignment
            ds = ds.flatten_indices()
    else:
        ds = load_source(config.source, revision=revision, split=config.split, cache_dir=cache_dir)
        source_id = str(config.source)
        if revision is None and not Path(source_id).expanduser().exists():
            revision = pinned_revision(source_id)
        _check_readable(ds, source_id)
    arrow_schema = ds.features.arrow_schema
    source = detect_source(arrow_schema) if config.source_format == "auto" else get_source(config.source_format)
    if config.rating == BuildConfig.rating and config.rating not in source.rating_methods:
        config = config.replace(rating=source.rating_methods[0])  # the default means: this source's own rating
    if config.rating not in source.rating_methods:
        raise KarmaError(
            f"--rating must be one of {', '.join(source.rating_methods)} for {source.name} sources, "
            f"got {config.rating!r}"
        )
    source.check_schema(arrow_schema, config.rating)
    data = ds.data.table
    ctx = Context(source, config, kin, tuple(table.known_unscored), load_errors=LOAD_ERROR_COLUMN in ds.column_names)
    truthfulqa_questions = _prepare_h4(ctx) if ctx.h4 else None
    stats = BuildStats(n=data.num_rows, modes=tuple(config.modes), configs=tuple(config.configs()))

    with _progress(progress, data.num_rows) as bars:
        quick = quick_scan(ctx, data, bars("Hashing prompts")) if can_quick_scan(ctx) else None  # pass 1
        if quick is not None:
            count = int(config.test_size)
            is_test = resolve_test_split(ctx, data, *quick, count)
            del quick
        else:
            count, is_test = _full_scan(ctx, data, stats, table, source_id, bars("Reading completions"))
        stats.test_prompts = count
        release_unused()  # the first pass's freed buffers go back to the OS before the writers start

        tmp: tempfile.TemporaryDirectory | None = None
        if output is None:
            tmp = tempfile.TemporaryDirectory(prefix="karma-build-")
            work = Path(tmp.name)
        else:
            work = _partial_path(output)
        writer: OutputWriter | None = None
        try:
            if output is not None:  # inside the try: an interrupt right after mkdir still cleans up
                _make_partial(output, work)
            writer = OutputWriter(work, {name: form for name, _, form in config.configs()})
            decide_and_write(ctx, data, is_test, writer, stats, bars("Writing pairs"))  # pass 2
            sizes = writer.close()
            writer = None
            report = build_report(
                config,
                source_id=source_id,
                source_format=source.name,
                revision=revision,
                stats=stats,
                vocab=tuple(kin.models) + tuple(m for m in table.known_unscored if m not in kin.index),
                is_test=is_test,
                kin=kin,
                table=table,
                command=command,
                truthfulqa_questions=truthfulqa_questions,
            )
            _check_some_pairs(report, source_id)
            if dataset is None and not has_splits(config.source):
                report["source"]["split"] = None  # a single file has no splits: none was used
            for name, per_split in sizes.items():
                report["configs"][name]["bytes"] = per_split
                if name in report["modes"]:  # the best form: the mode's own config
                    report["modes"][name]["bytes"] = per_split
            (work / REPORT_FILE).write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
            write_dataset_card(work, report, table=table, repo_id=repo_id, note=card_note)
            out_dir = work if output is None else _publish(work, output)
        except BaseException:
            if writer is not None:
                writer.abort()
            if output is not None:
                _remove(work)
            elif tmp is not None:
                tmp.cleanup()
            raise
    return BuildResult(
        report=report,
        kinship=kin,
        table=table,
        output=out_dir,
        cache_dir=str(cache_dir) if cache_dir else None,
        statuses=stats.statuses,
        _tmp=tmp,
    )


def _full_scan(
    ctx: Any, data: Any, stats: Any, table: ScoreTable, source_id: str, progress: Any
) -> tuple[int, np.ndarray]:
    """Pass 1 parsing every row (:func:`karma_hf.pairs.stream.scan`): the errors that need every
    row (``--strict``, unknown models) come before anything is written; returns the number of
    held-out prompts and the test flag of each row."""
    from karma_hf.pairs.decide import count_prompts, test_split
    from karma_hf.pairs.stream import scan

    config, kin = ctx.config, ctx.kin
    keys, valid = scan(ctx, data, stats, progress)
    if config.strict and stats.malformed:
        i, reason = stats.malformed_examples[0]
        raise KarmaError(
            f"row {i} of {source_id} is malformed: {reason} "
            f"({stats.malformed} malformed row(s) in all; drop --strict to skip and count them)"
        )
    unknown = stats.unknown_counts()
    if unknown and not config.ignore_unknown_models:
        listed = ", ".join(f"{name!r} ({n} completions)" for name, n in unknown.items())
        known = ", ".join(tuple(kin.models) + tuple(m for m in table.known_unscored if m not in kin.index))
        raise KarmaError(
            f"model(s) in {source_id} not in the score table: {listed}; known: {known}; "
            "add them to --scores (or --aliases) or pass --ignore-unknown-models to skip them"
        )
    sorted_rows, rank, total = count_prompts(keys, valid)
    del keys, valid
    count = _test_count(config.test_size, total)
    return count, test_split(sorted_rows, rank, total, data.num_rows, count)


def _prepare_h4(ctx: Any) -> int | None:
    """The ``h4`` recipe's inputs: a source with ``overall_score``, and the TruthfulQA questions;
    returns the number of questions read (None without a question file)."""
    from karma_hf.pairs.exclusions import check_overall_score, question_values, read_questions

    config = ctx.config
    if config.rating != "overall_score":
        check_overall_score(ctx.source)
    questions = read_questions(config.truthfulqa_questions) if config.truthfulqa_questions else None
    ctx.questions = question_values(questions)
    return len(questions) if questions is not None else None


@contextmanager
def _progress(enabled: bool, total: int):
    """``bars(description)``: a callback advancing a rich progress bar of ``total`` rows (None when
    ``enabled`` is false)."""
    if not enabled:
        yield lambda description: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
    )

    def bars(description: str):
        task = bar.add_task(description, total=total)
        return lambda n: bar.update(task, advance=n)

    bar.start()
    try:
        yield bars
    finally:
        bar.stop()


# ------------------------------------------------------------------------------ checks
def _check_readable(ds: datasets.Dataset, source_id: str) -> None:
    """A source none of whose rows could be read (every line bad JSON, say) is an error, not a build."""
    from karma_hf.sources.loading import LOAD_ERROR_COLUMN

    if LOAD_ERROR_COLUMN not in ds.column_names:
        return
    reasons = ds.data.table.column(LOAD_ERROR_COLUMN)
    if ds.num_rows and reasons.null_count == 0:
        raise KarmaError(f"no row of {source_id} could be read: row 0: {reasons[0].as_py()}")


def _test_count(test_size: int | float, total: int) -> int:
    """``--test-size`` as a number of prompts: a fraction in (0, 1) of the ``total`` distinct
    well-formed prompts rounded up (as ``datasets``' ``train_test_split``), or the count itself."""
    import math

    check_test_size(test_size)
    if isinstance(test_size, float):
        return math.ceil(test_size * total)
    return int(test_size)


def _check_some_pairs(report: dict[str, Any], source_id: str) -> None:
    """A build whose every mode kept no pair is an error (nothing would be loadable)."""
    modes = report["modes"]
    if any(m["kept"] for m in modes.values()):
        return
    dropped: dict[str, int] = {}
    for m in modes.values():
        for reason, n in m["dropped"].items():
            dropped[reason] = max(dropped.get(reason, 0), n)
    why = ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items(), key=lambda kv: -kv[1]) if n)
    raise KarmaError(
        f"no pairs in any mode ({', '.join(modes)}) from the {report['source']['rows']} rows of {source_id}"
        f" (dropped: {why or 'none'}); nothing written. Check --scores / --aliases against the models of the "
        "source, --tau, and the malformed rows (--strict names the first)"
    )


# ------------------------------------------------------------------------------ atomic output
def _check_output(out: Path, overwrite: bool) -> None:
    """Refuse an output that is a file, or a non-empty folder without ``overwrite`` / not a build.

    Runs before the source is read: the parent folder is created now, so a parent that is a file or
    a read-only location fails at once. A previous build that a killed run had moved aside
    (``.<name>.old-<pid>``, the run gone before moving its new build in) is put back first.
    """
    _recover(out)
    if out.exists() and not out.is_dir():
        raise KarmaError(f"--output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise KarmaError(f"--output {out} is not empty; pass --overwrite to replace a previous build")
        if not (out / REPORT_FILE).exists():
            raise KarmaError(f"--output {out} is not empty and holds no {REPORT_FILE}; refusing to overwrite it")
    try:
        out.absolute().parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KarmaError(f"--output {out}: cannot create it ({os_error_message(exc)})") from exc


def _remove(folder: Path) -> None:
    """Delete a partial build with Ctrl-C held back meanwhile (a second Ctrl-C must not leave half
    of it behind); whatever still remains is cleaned by the next build."""
    with _no_interrupt():
        for _ in range(3):
            try:
                shutil.rmtree(folder, ignore_errors=True)
            except KeyboardInterrupt:  # one that was already pending when the mask took effect
                continue
            if not folder.exists():
                break


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def _leftovers(out: Path, kind: str) -> list[Path]:
    """``.<name>.<kind>-<pid>`` siblings of ``out`` whose process is gone."""
    parent = out.absolute().parent
    found = []
    if parent.is_dir():
        for path in parent.glob(f".{out.name}.{kind}-*"):
            pid = path.name.rsplit("-", 1)[-1]
            if not (pid.isdigit() and _alive(int(pid))):
                found.append(path)
    return sorted(found)


def _recover(out: Path) -> None:
    old = [p for p in _leftovers(out, "old") if (p / REPORT_FILE).is_file()]
    if not out.exists() and old:
        old[-1].rename(out)
    for stale in _leftovers(out, "old"):
        shutil.rmtree(stale, ignore_errors=True)


def _partial_path(out: Path) -> Path:
    """This process's hidden sibling of ``out``: ``.<name>.partial-<pid>``."""
    return out.absolute().parent / f".{out.name}.partial-{os.getpid()}"


def _make_partial(out: Path, work: Path) -> None:
    """Create ``work`` fresh; leftovers of killed builds are removed first (a partial folder whose
    process still runs is another build's, and is left alone)."""
    try:
        work.parent.mkdir(parents=True, exist_ok=True)
        for stale in _leftovers(out, "partial"):
            shutil.rmtree(stale, ignore_errors=True)
        if work.exists():
            shutil.rmtree(work)
        work.mkdir()
    except OSError as exc:
        raise KarmaError(f"--output {out}: cannot write there ({os_error_message(exc)})") from exc


@contextmanager
def _no_interrupt():
    """Hold Ctrl-C back (main thread, POSIX) while a few renames must happen together."""
    import signal
    import threading

    blocked = threading.current_thread() is threading.main_thread() and hasattr(signal, "pthread_sigmask")
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if blocked else None
    try:
        yield
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _publish(work: Path, out: Path) -> Path:
    """Move the complete build ``work`` to ``out``; a previous build there is replaced only now.

    The two renames run with Ctrl-C held back, so an interrupt never leaves ``out`` missing with
    the previous build moved aside (a SIGKILL there is repaired by the next build, see
    :func:`_recover`)."""
    with _no_interrupt():
        old = None
        if out.exists():
            old = work.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
        try:
            work.rename(out)
        except OSError:
            if old is not None:
                old.rename(out)  # put the previous build back
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out
