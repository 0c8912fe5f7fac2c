"""Local copies of the six benchmark sources, for offline / air-gapped evaluation.

The karma_* lm-eval tasks read their Hub datasets by default. When the environment
variable ``KARMA_DATA_DIR`` is set, every task reads a local copy instead, laid out as::

    $KARMA_DATA_DIR/
      google__IFEval/train.jsonl
      cais__mmlu/all/test.jsonl            cais__mmlu/all/dev.jsonl           (dev = few-shot)
      TIGER-Lab__MMLU-Pro/test.jsonl       TIGER-Lab__MMLU-Pro/validation.jsonl
      allenai__ai2_arc/ARC-Easy/test.jsonl       .../ARC-Easy/validation.jsonl
      allenai__ai2_arc/ARC-Challenge/test.jsonl  .../ARC-Challenge/validation.jsonl
      Rowan__hellaswag/validation.jsonl    Rowan__hellaswag/train.jsonl        (train = few-shot)

i.e. ``<owner>__<name>[/<config>]/<split>.jsonl``, one JSON object per line in the source's
own schema (the rows exactly as ``datasets.load_dataset`` returns them). ``karma data
download --out DIR`` (:func:`download`) writes this layout on a machine with network.

This module stays light: ``datasets`` is imported only inside :func:`download`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from karma_hf.errors import KarmaError

DATA_DIR_ENV = "KARMA_DATA_DIR"


@dataclass(frozen=True)
class Source:
    """One benchmark source on the Hub and the splits the karma tasks read from it."""

    key: str
    repo: str
    config: str | None
    splits: tuple[str, ...]

    def folder(self, root: Path) -> Path:
        """``root/<owner>__<name>[/<config>]``."""
        base = Path(root) / self.repo.replace("/", "__")
        return base / self.config if self.config else base

    def file(self, root: Path, split: str) -> Path:
        """The JSON Lines file holding ``split`` under ``root``."""
        return self.folder(root) / f"{split}.jsonl"

    def describe(self) -> str:
        return f"{self.repo}" + (f" ({self.config})" if self.config else "")


#: The six sources, keyed by the name the task YAMLs use (``dataset_kwargs.karma_source``).
#: The first split is the one evaluated; the others feed ``--num_fewshot``.
SOURCES: dict[str, Source] = {
    s.key: s
    for s in (
        Source("ifeval", "google/IFEval", None, ("train",)),
        Source("mmlu", "cais/mmlu", "all", ("test", "dev")),
        Source("mmlu_pro", "TIGER-Lab/MMLU-Pro", None, ("test", "validation")),
        Source("arc_easy", "allenai/ai2_arc", "ARC-Easy", ("test", "validation")),
        Source("arc_challenge", "allenai/ai2_arc", "ARC-Challenge", ("test", "validation")),
        Source("hellaswag", "Rowan/hellaswag", None, ("validation", "train")),
    )
}


def get_source(key: str) -> Source:
    try:
        return SOURCES[key]
    except KeyError as exc:
        raise KarmaError(f"unknown karma data source {key!r}; known: {', '.join(SOURCES)}") from exc


def data_dir_from_env() -> Path | None:
    """``KARMA_DATA_DIR`` as an absolute path, or None when unset/empty.

    The path comes from the variable only (``~`` expanded); it is never looked up relative
    to the task files. A relative value is taken relative to the current directory at the
    moment the tasks load, so prefer an absolute path.
    """
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    if not value:
        return None
    return Path(value).expanduser().resolve()


def missing_files(root: Path, keys: Iterable[str]) -> list[Path]:
    """The files of the given sources that are absent under ``root`` (empty = complete)."""
    missing: list[Path] = []
    for key in keys:
        src = get_source(key)
        missing += [src.file(root, s) for s in src.splits if not src.file(root, s).is_file()]
    return missing


def require_local(root: Path, key: str) -> dict[str, Path]:
    """The split files of source ``key`` under ``root``; KarmaError naming the first missing one."""
    src = get_source(key)
    if not root.is_dir():
        raise KarmaError(
            f"{DATA_DIR_ENV}={root} is not a directory; create it with "
            f"`karma data download --out {root}` or unset {DATA_DIR_ENV} to read the Hub"
        )
    files = {split: src.file(root, split) for split in src.splits}
    for split, path in files.items():
        if not path.is_file():
            raise KarmaError(
                f"{DATA_DIR_ENV}={root} is missing {path} (the local copy of "
                f"{src.describe()}, split {split}); write it with "
                f"`karma data download --out {root}` or unset {DATA_DIR_ENV}"
            )
    return files


_TRUE = {"1", "true", "yes", "on"}


def offline_variable() -> str | None:
    """``HF_DATASETS_OFFLINE`` or ``HF_HUB_OFFLINE`` when one is set (the Hub cannot be read), else None."""
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        if os.environ.get(name, "").strip().lower() in _TRUE:
            return name
    return None


def _in_local_cache(src: Source) -> bool:
    """Whether ``datasets`` could load ``src`` offline: its datasets-cache or Hub-cache folder exists."""
    import datasets.config
    from huggingface_hub import constants

    owner, name = src.repo.split("/")
    built = Path(datasets.config.HF_DATASETS_CACHE) / f"{owner}___{name}"
    if src.config:
        built = built / src.config
    hub = Path(constants.HF_HUB_CACHE) / f"datasets--{owner}--{name}"
    return built.is_dir() or hub.is_dir()


def check_available(keys: Iterable[str]) -> None:
    """KarmaError naming the first benchmark source the karma tasks could not read.

    With ``KARMA_DATA_DIR`` set, every split file must be there. Without it the tasks read the
    Hub; when the Hub is off (``HF_DATASETS_OFFLINE`` / ``HF_HUB_OFFLINE``) the source must then be
    in the local ``datasets`` or Hub cache.
    """
    keys = list(keys)
    if not keys:
        return
    root = data_dir_from_env()
    if root is not None:
        if not root.is_dir():
            raise KarmaError(
                f"{DATA_DIR_ENV}={root} is not a directory; create it with "
                f"`karma data download --out {root}` or unset {DATA_DIR_ENV} to read the Hub"
            )
        missing = missing_files(root, keys)
        if missing:
            raise KarmaError(
                f"{DATA_DIR_ENV}={root} is missing {missing[0]}"
                + (f" (and {len(missing) - 1} more files)" if len(missing) > 1 else "")
                + f"; write the copies with `karma data download --out {root}`"
            )
        return
    offline = offline_variable()
    if offline is None:
        return
    for key in keys:
        src = get_source(key)
        if not _in_local_cache(src):
            raise KarmaError(
                f"{offline} is set and {DATA_DIR_ENV} is not, so the karma tasks would read {src.describe()} "
                f"from the Hub, and it is not in the local cache; export {DATA_DIR_ENV}=DIR with the local "
                "copies (`karma data download --out DIR` on a machine with network)"
            )


Loader = Callable[[Source, str, "str | None"], Any]


def _hub_loader(src: Source, split: str, revision: str | None) -> Any:
    import datasets

    offline = offline_variable()
    if offline is not None:
        raise KarmaError(
            f"{offline} is set (offline mode): `karma data download` reads {src.describe()} from the Hub; run it "
            "where the network is reachable and copy the folder here (then export KARMA_DATA_DIR=<it>)"
        )
    try:
        return datasets.load_dataset(src.repo, src.config, split=split, revision=revision)
    except Exception as exc:  # noqa: BLE001 - network, auth, unknown revision: one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KarmaError(f"cannot download {src.describe()} split {split}: {type(exc).__name__}: {first}") from exc


def save_split(dataset: Any, path: Path) -> int:
    """Write a ``datasets.Dataset`` as JSON Lines (deterministic row order); return rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    dataset.to_json(str(tmp), lines=True, force_ascii=False)
    tmp.replace(path)
    return len(dataset)


def download(
    out: str | Path,
    *,
    sources: Iterable[str] | None = None,
    revision: str | None = None,
    load: Loader | None = None,
    on_split: Callable[[Source, str, int, Path], None] | None = None,
) -> dict[str, dict[str, int]]:
    """Save the benchmark sources under ``out`` in the ``KARMA_DATA_DIR`` layout.

    ``load(source, split, revision)`` returns one split as a ``datasets.Dataset``; the
    default reads the Hub (needs network). ``on_split`` is called after each file is
    written (for progress display). Returns ``{source_key: {split: rows}}``. Files are
    written atomically (``.partial`` then rename), so an interrupted run never leaves a
    truncated split that would later look complete.
    """
    root = Path(out).expanduser().resolve()
    keys = list(sources) if sources is not None else list(SOURCES)
    for key in keys:
        get_source(key)
    root.mkdir(parents=True, exist_ok=True)  # a parent that is a file, a read-only place: fail before downloading
    load = load or _hub_loader
    counts: dict[str, dict[str, int]] = {}
    for key in keys:
        src = get_source(key)
        counts[key] = {}
        for split in src.splits:
            ds = load(src, split, revision)
            path = src.file(root, split)
            counts[key][split] = save_split(ds, path)
            if on_split is not None:
                on_split(src, split, counts[key][split], path)
    return counts
