"""Run lm-eval with the karma_* tasks: the library side of ``karma eval``.

Each model is evaluated by lm-eval's own ``run`` command (its argument parser, its
evaluator, its output layout ``OUTPUT/<model_name_sanitized>/results_<date>.json``), with
``--include_path`` pointing at the installed karma tasks. Any other lm-eval option is
passed through unchanged. Before the first model loads, the request is checked so that the
common mistakes fail at once with one clear line: an unknown task, a model path that does
not exist, a ``KARMA_DATA_DIR`` without the files a task needs, IFEval without punkt_tab.

``karma kinship --scores OUTPUT`` (``karma_hf.scores.load_scores``) reads the folder directly.
"""

from __future__ import annotations

import fnmatch
import gc
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from karma_hf.data_download import DATA_DIR_ENV, data_dir_from_env, missing_files
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
    """Read the karma task / group YAMLs (without importing lm-eval or resolving functions)."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))
    tasks: dict[str, str] = {}
    groups: dict[str, list[str]] = {}
    for path in sorted(Path(folder or tasks_dir()).glob("*.yaml")):
        cfg = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}
        if "group" in cfg:
            members = cfg.get("task") or []
            groups[cfg["group"]] = [m if isinstance(m, str) else m.get("task") or m.get("group")
                                    for m in ([members] if isinstance(members, str) else members)]
        elif "task" in cfg:
            tasks[cfg["task"]] = (cfg.get("dataset_kwargs") or {}).get("karma_source", "")
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
            raise KarmaError(f"--tasks selects the group {group!r} and its member {overlap[0]!r}; "
                             "use 'karma_*' for the six tasks, or group names alone")
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
        raise KarmaError(f"unknown task {unknown[0]!r}: not a karma task or group "
                         f"({', '.join(index.names)}) nor an lm-eval task (see `lm_eval ls tasks`)")


def _model_args_dict(model_args: str) -> dict[str, str]:
    pairs = [p for p in re.split(r",(?=[A-Za-z_][\w.-]*=)", model_args.strip()) if p]
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise KarmaError(f"--model_args {model_args!r}: expected key=value pairs, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


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
    path = Path(pretrained).expanduser()
    looks_local = (pretrained.startswith(("/", "./", "../", "~", ".\\")) or pretrained.count("/") > 1
                   or not _HUB_ID.match(pretrained))
    if path.exists():
        if not path.is_dir():
            raise KarmaError(f"model path {pretrained} is a file; pass the model folder")
        return pretrained
    if looks_local:
        raise KarmaError(f"model path does not exist: {pretrained}")
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(pretrained, "config.json", revision=args.get("revision"))
        if not isinstance(cached, str):
            raise KarmaError(f"model {pretrained!r} is neither a local folder nor in the Hub cache, "
                             "and HF_HUB_OFFLINE is set")
    return pretrained


def _check_extra_args(extra_args: Sequence[str]) -> None:
    for arg in extra_args:
        option = arg.split("=", 1)[0].replace("-", "_").replace("__", "--", 1)
        if option in _OWN_OPTIONS:
            raise KarmaError(f"{arg.split('=', 1)[0]} is set by karma eval itself; use its own option "
                             "(or call `lm_eval run --include_path \"$(karma tasks-path)\"` directly)")


def _parse_run_args(model: str, model_args: str, tasks: list[str], output_path: Path,
                    extra_args: Sequence[str]):
    """lm-eval's own parser for ``lm_eval run``: every pass-through option is validated there."""
    from lm_eval._cli import HarnessCLI

    argv = ["run", "--model", model, "--model_args", model_args, "--tasks", ",".join(tasks),
            "--include_path", str(tasks_dir()), "--output_path", str(output_path), *extra_args]
    parser = HarnessCLI()._parser
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as exc:  # argparse already printed "lm-eval run: error: ..."
        raise KarmaError("lm-eval rejected the options (see its message above)") from exc
    if unknown:
        raise KarmaError(f"unknown lm-eval option(s): {' '.join(unknown)} (see `lm_eval run --help`)")
    return args


def _new_results(output_path: Path, since: float) -> list[Path]:
    found = [p for p in output_path.glob("*/results_*.json") if p.stat().st_mtime >= since]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def evaluate_models(model_args_list: Sequence[str], *, model: str = "hf",
                    tasks: str | Sequence[str] = ("karma",), output_path: str | Path,
                    limit: float | None = None, batch_size: int | str | None = None,
                    device: str | None = None, apply_chat_template: bool = False,
                    extra_args: Sequence[str] = (), on_model=None) -> list[Path]:
    """Evaluate each ``model_args`` string (e.g. ``"pretrained=org/name,dtype=bfloat16"``).

    Returns the lm-eval results files written, one per model, in order. ``extra_args`` are
    raw ``lm_eval run`` options (e.g. ``["--num_fewshot", "5", "--log_samples"]``).
    ``on_model(i, n, model_args)`` is called before each model starts.
    """
    if not model_args_list:
        raise KarmaError("no model given: pass --model_args (repeatable) or --models-file")
    output = Path(output_path).expanduser().resolve()
    if output.suffix == ".json":
        raise KarmaError(f"--output_path {output_path} must be a folder (one results file per model "
                         "is written under it)")
    names = split_tasks(tasks)
    if not names:
        raise KarmaError("--tasks is empty")
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
    index = karma_task_index()
    leaves = _resolve_tasks(names, index)
    root = data_dir_from_env()
    if root is not None and leaves:
        missing = missing_files(root, sorted({index.tasks[t] for t in leaves}))
        if missing:
            raise KarmaError(f"{DATA_DIR_ENV}={root} is missing {missing[0]}"
                             + (f" (and {len(missing) - 1} more files)" if len(missing) > 1 else "")
                             + f"; write the copies with `karma data download --out {root}`")
    if "karma_ifeval" in leaves:
        from karma_hf.nltk_data import ensure_punkt_tab

        ensure_punkt_tab()
    if model in {"hf", "hf-auto", "huggingface", "vllm", "sglang"}:
        for margs in model_args_list:
            check_model(margs)
    parsed = [_parse_run_args(model, m, names, output, extras) for m in model_args_list]

    # --- run lm-eval once per model
    written: list[Path] = []
    output.mkdir(parents=True, exist_ok=True)
    for i, (margs, args) in enumerate(zip(model_args_list, parsed)):
        if on_model is not None:
            on_model(i, len(model_args_list), margs)
        start = time.time() - 1.0
        args.func(args)
        new = _new_results(output, start)
        if not new:
            raise KarmaError(f"lm-eval wrote no results file under {output} for {margs} "
                             "(see its log above)")
        written.append(new[-1])
        gc.collect()
    return written


def evaluate_model(pretrained: str, *, tasks: str | Sequence[str] = ("karma",), output_path: str | Path,
                   limit: float | None = None, batch_size: int | str | None = None,
                   device: str | None = None, apply_chat_template: bool = False,
                   extra_args: Sequence[str] = ()) -> list[Path]:
    """Evaluate one Hugging Face model (``--model hf``) on the karma tasks.

    ``pretrained`` is a local folder or a Hub id. Returns the results files written
    (``output_path/<model_name_sanitized>/results_<date>.json``).
    """
    return evaluate_models([f"pretrained={pretrained}"], model="hf", tasks=tasks, output_path=output_path,
                           limit=limit, batch_size=batch_size, device=device,
                           apply_chat_template=apply_chat_template, extra_args=extra_args)


def read_models_file(path: str | Path) -> list[str]:
    """One ``model_args`` string per line (``#`` comments and blank lines ignored).

    A line without ``=`` is taken as ``pretrained=<line>``.
    """
    file = Path(path)
    if not file.is_file():
        raise KarmaError(f"models file not found: {path}")
    out = []
    for line in file.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line if "=" in line else f"pretrained={line}")
    if not out:
        raise KarmaError(f"models file {path} lists no model")
    return out
