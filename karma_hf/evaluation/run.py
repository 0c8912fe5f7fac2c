"""Run lm-eval with the karma_* tasks: the library side of ``karma eval``.

Each model is evaluated by lm-eval's own ``lm_eval run`` command, in a child process (its
argument parser, its evaluator, its output layout ``OUTPUT/<model_name_sanitized>/results_<date>.json``),
with ``--include_path`` pointing at the installed karma tasks. Any other lm-eval option is
passed through unchanged; lm-eval's own messages stream to the terminal. The child never
inherits a launcher's rank variables (``RANK``, ``WORLD_SIZE``...), so evaluating from inside a
``torchrun`` job runs one plain process. Before the first model loads, the request is checked so that the
common mistakes fail at once with one clear line: an unknown task, a model path that does
not exist, a ``KARMA_DATA_DIR`` without the files a task needs, IFEval without punkt_tab.

``karma kinship --scores OUTPUT`` (``karma_hf.scores.load_scores``) reads the folder directly.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from karma_hf.errors import KarmaError
from karma_hf.resources import tasks_dir

#: Options ``karma eval`` sets itself; they may not appear among the pass-through args.
_OWN_OPTIONS = ("--model", "--model_args", "--tasks", "--include_path", "--output_path")


@dataclass(frozen=True)
class KarmaTaskIndex:
    """Names in the karma tasks folder: leaf tasks (-> data source) and groups (-> members)."""

    tasks: dict[str, str]
    groups: dict[str, list[str]]

    @property
    def names(self) -> list[str]:
        return sorted([*self.tasks, *self.groups])

    def leaves(self, name: str) -> list[str]:
        if name in self.tasks:
            return [name]
        return [leaf for member in self.groups.get(name, []) for leaf in self.leaves(member)]


def karma_task_index(folder: Path | None = None) -> KarmaTaskIndex:
    """The karma tasks and groups, as lm-eval's ``TaskManager`` indexes the tasks folder
    (the karma folder alone: no index of lm-eval's own tasks, no task functions resolved)."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(folder or tasks_dir()), include_defaults=False)
    tasks: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for name, entry in manager.task_index.items():
        cfg = entry.cfg or {}
        if "group" in cfg:
            members = cfg.get("task") or []
            groups[name] = [
                m if isinstance(m, str) else m.get("task") or m.get("group")
                for m in ([members] if isinstance(members, str) else members)
            ]
        elif "task" in cfg:
            tasks[name] = (cfg.get("dataset_kwargs") or {}).get("karma_source", "")
    return KarmaTaskIndex(tasks, groups)


def split_tasks(tasks: str | Sequence[str]) -> list[str]:
    items = [tasks] if isinstance(tasks, str) else list(tasks)
    return [t.strip() for item in items for t in item.split(",") if t.strip()]


def _resolve_tasks(names: list[str], index: KarmaTaskIndex) -> list[str]:
    """The karma leaf tasks selected; KarmaError for a name neither karma nor lm-eval knows."""
    leaves: list[str] = []
    selected: list[str] = []
    foreign: list[str] = []
    for name in names:
        if name.endswith(".yaml"):
            foreign.append(name)
            continue
        if name.startswith("karma") and not fnmatch.filter(index.names, name):
            raise KarmaError(f"unknown task {name!r}; karma tasks and groups: {', '.join(index.names)}")
        matched = fnmatch.filter(index.names, name)
        if matched:
            selected += matched
            leaves += [leaf for m in matched for leaf in index.leaves(m)]
        else:
            foreign.append(name)
    for group in (n for n in selected if n in index.groups):
        members = set(index.leaves(group)) | set(index.groups[group])
        overlap = sorted(members & set(selected))
        if overlap:  # lm-eval would stop with "Duplicate task"
            raise KarmaError(
                f"--tasks selects the group {group!r} and its member {overlap[0]!r}; "
                "use 'karma_*' for the six tasks, or group names alone"
            )
    if foreign:
        _check_lm_eval_tasks(foreign, index)
    return sorted(set(leaves))


def _check_lm_eval_tasks(names: list[str], index: KarmaTaskIndex) -> None:
    """Names that are not karma tasks must be lm-eval tasks (indexing them takes ~10 s)."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=[str(tasks_dir())])
    unknown = [n for n in names if not n.endswith(".yaml") and not manager.match_tasks([n])]
    unknown += [n for n in names if n.endswith(".yaml") and not Path(n).is_file()]
    if unknown:
        raise KarmaError(
            f"unknown task {unknown[0]!r}: not a karma task or group "
            f"({', '.join(index.names)}) nor an lm-eval task (see `lm_eval ls tasks`)"
        )


#: Modules of the ``ifeval`` extra (``pip install 'karma-hf[ifeval]'``) that lm-eval's IFEval checkers import.
IFEVAL_EXTRA: tuple[str, ...] = ("nltk", "langdetect", "immutabledict")


def check_ifeval_extra() -> None:
    """KarmaError when the ``ifeval`` extra is not installed (lm-eval would fail after generating)."""
    import importlib.util

    def missing(name: str) -> bool:
        try:
            return importlib.util.find_spec(name) is None
        except (ImportError, ValueError):
            return True

    absent = [m for m in IFEVAL_EXTRA if missing(m)]
    if absent:
        raise KarmaError(
            f"karma_ifeval needs the ifeval extra, and {', '.join(absent)} cannot be imported: "
            "pip install 'karma-hf[ifeval]'"
        )


def preflight_tasks(tasks: str | Sequence[str]) -> list[str]:
    """Everything about ``tasks`` that can fail without a model, checked at once; returns the karma leaves.

    The names must be karma or lm-eval tasks; their data must be readable (the ``KARMA_DATA_DIR``
    files, or with the Hub offline a local copy at all, :func:`karma_hf.evaluation.data.check_available`);
    IFEval needs the ``ifeval`` extra and NLTK's ``punkt_tab``. ``karma eval`` runs this before any
    model loads, ``karma train`` before the trainer is built.
    """
    from karma_hf.evaluation.data import check_available

    names = split_tasks(tasks)
    if not names:
        raise KarmaError("--tasks is empty")
    index = karma_task_index()
    leaves = _resolve_tasks(names, index)
    check_available(sorted({index.tasks[t] for t in leaves if index.tasks[t]}))
    if "karma_ifeval" in leaves:
        from karma_hf.evaluation.nltk_data import ensure_punkt_tab

        check_ifeval_extra()
        ensure_punkt_tab()
    return leaves


def _model_args_dict(model_args: str) -> dict[str, str]:
    """``k=v,...`` parsed by lm-eval's own ``simple_parse_args_string`` (values as strings)."""
    from lm_eval.utils import simple_parse_args_string

    try:
        parsed = simple_parse_args_string(model_args.strip())
    except ValueError as exc:
        raise KarmaError(f"--model_args {model_args!r}: expected key=value pairs ({exc})") from exc
    return {str(k): str(v) for k, v in parsed.items()}


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def check_model(model_args: str) -> str:
    """The ``pretrained`` value of ``model_args`` after checking it can be found.

    A value that names a folder must exist; a Hub id (``org/name``) must be in the local
    Hub cache when ``HF_HUB_OFFLINE`` is set. Other model types pass unchecked.
    """
    args = _model_args_dict(model_args)
    pretrained = args.get("pretrained") or args.get("model")
    if not pretrained:
        raise KarmaError(f"--model_args {model_args!r} has no pretrained=<path or Hub id>")
    return check_pretrained(pretrained, args.get("revision"))


def check_pretrained(pretrained: str, revision: str | None = None) -> str:
    """``pretrained`` (a model folder or Hub id) after checking it can be found (see :func:`check_model`)."""
    path = Path(pretrained).expanduser()
    looks_local = (
        pretrained.startswith(("/", "./", "../", "~", ".\\"))
        or pretrained.count("/") > 1
        or not _HUB_ID.match(pretrained)
    )
    if path.exists():
        if not path.is_dir():
            raise KarmaError(f"model path {pretrained} is a file; pass the model folder")
        return pretrained
    if looks_local:
        raise KarmaError(f"model path does not exist: {pretrained}")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        from huggingface_hub import try_to_load_from_cache

        cached = [
            try_to_load_from_cache(pretrained, f, revision=revision) for f in ("config.json", "adapter_config.json")
        ]
        if not any(isinstance(c, str) for c in cached):
            raise KarmaError(
                f"model {pretrained!r} is neither a local folder nor in the Hub cache, and HF_HUB_OFFLINE is set"
            )
    return pretrained


def _check_extra_args(extra_args: Sequence[str]) -> None:
    for arg in extra_args:
        option = arg.split("=", 1)[0].replace("-", "_").replace("__", "--", 1)
        if option in _OWN_OPTIONS:
            raise KarmaError(
                f"{arg.split('=', 1)[0]} is set by karma eval itself; use its own option "
                '(or call `lm_eval run --include_path "$(karma tasks-path)"` directly)'
            )


#: Launcher variables a child lm-eval process must not inherit (it would try to join the job).
_DIST_ENV = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "GROUP_WORLD_SIZE",
)
_UNRECOGNIZED = re.compile(r"unrecognized arguments: (?P<args>.+)$")


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _DIST_ENV and not k.startswith("TORCHELASTIC_")}


def _run_lm_eval(argv: list[str]) -> None:
    """``lm_eval run ARGV`` in a child process; its stderr streams through, its verdict is ours."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "lm_eval", *argv], env=_child_env(), stderr=subprocess.PIPE, text=True, errors="replace"
    )
    tail: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            sys.stderr.write(line)
            tail.append(line.rstrip("\n"))
            del tail[:-40]

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait()
        raise
    reader.join()
    if code == 0:
        return
    for line in reversed(tail):
        m = _UNRECOGNIZED.search(line)
        if m:
            raise KarmaError(f"unknown lm-eval option(s): {m.group('args')} (see `lm_eval run --help`)")
        if ": error: " in line:
            raise KarmaError(f"lm-eval rejected the options: {line.split(': error: ', 1)[1]}")
    last = next((t for t in reversed(tail) if t.strip()), "no output")
    raise KarmaError(f"lm-eval exited with code {code}: {last.strip()}")


def _new_results(output_path: Path, since: float) -> list[Path]:
    found = [p for p in output_path.glob("*/results_*.json") if p.stat().st_mtime >= since]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def evaluate_models(
    model_args_list: Sequence[str],
    *,
    model: str = "hf",
    tasks: str | Sequence[str] = ("karma",),
    output_path: str | Path,
    limit: float | None = None,
    batch_size: int | str | None = None,
    device: str | None = None,
    apply_chat_template: bool = False,
    extra_args: Sequence[str] = (),
    on_model=None,
) -> list[Path]:
    """Evaluate each ``model_args`` string (e.g. ``"pretrained=org/name,dtype=bfloat16"``).

    Returns the lm-eval results files written, one per model, in order. ``extra_args`` are
    raw ``lm_eval run`` options (e.g. ``["--num_fewshot", "5", "--log_samples"]``).
    ``on_model(i, n, model_args)`` is called before each model starts.
    """
    if not model_args_list:
        raise KarmaError("no model given: pass --model_args (repeatable) or --models-file")
    output = Path(output_path).expanduser().resolve()
    if output.suffix == ".json":
        raise KarmaError(
            f"--output_path {output_path} must be a folder (one results file per model is written under it)"
        )
    extras = list(extra_args)
    _check_extra_args(extras)
    if limit is not None:
        extras += ["--limit", str(limit)]
    if batch_size is not None:
        extras += ["--batch_size", str(batch_size)]
    if device is not None:
        extras += ["--device", device]
    if apply_chat_template and "--apply_chat_template" not in extras:
        extras.append("--apply_chat_template")

    # --- checks that need no model: fail before anything heavy starts
    if model in {"hf", "hf-auto", "huggingface", "vllm", "sglang"}:
        for margs in model_args_list:
            check_model(margs)
    names = split_tasks(tasks)
    preflight_tasks(names)
    output.mkdir(parents=True, exist_ok=True)  # a parent that is a file, a read-only place: fail now
    # --- run lm-eval once per model
    written: list[Path] = []
    for i, margs in enumerate(model_args_list):
        if on_model is not None:
            on_model(i, len(model_args_list), margs)
        start = time.time() - 1.0
        _run_lm_eval(
            [
                "run",
                "--model",
                model,
                "--model_args",
                margs,
                "--tasks",
                ",".join(names),
                "--include_path",
                str(tasks_dir()),
                "--output_path",
                str(output),
                *extras,
            ]
        )
        new = _new_results(output, start)
        if not new:
            raise KarmaError(f"lm-eval wrote no results file under {output} for {margs} (see its log above)")
        written.append(new[-1])
    return written


def evaluate_model(
    pretrained: str,
    *,
    tasks: str | Sequence[str] = ("karma",),
    output_path: str | Path,
    limit: float | None = None,
    batch_size: int | str | None = None,
    device: str | None = None,
    apply_chat_template: bool = False,
    extra_args: Sequence[str] = (),
) -> list[Path]:
    """Evaluate one Hugging Face model (``--model hf``) on the karma tasks.

    ``pretrained`` is a local folder or a Hub id. Returns the results files written
    (``output_path/<model_name_sanitized>/results_<date>.json``).
    """
    return evaluate_models(
        [f"pretrained={pretrained}"],
        model="hf",
        tasks=tasks,
        output_path=output_path,
        limit=limit,
        batch_size=batch_size,
        device=device,
        apply_chat_template=apply_chat_template,
        extra_args=extra_args,
    )


def read_models_file(path: str | Path) -> list[str]:
    """One ``model_args`` string per line (``#`` comments and blank lines ignored).

    A line without ``=`` is taken as ``pretrained=<line>``.
    """
    file = Path(path)
    if not file.is_file():
        raise KarmaError(f"models file not found: {path}")
    out = []
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise KarmaError(f"{file}: not valid UTF-8 text (byte {exc.start})") from exc
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line if "=" in line else f"pretrained={line}")
    if not out:
        raise KarmaError(f"models file {path} lists no model")
    return out
