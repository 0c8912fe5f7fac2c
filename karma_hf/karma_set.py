"""The one reader of a KARMA set, local folder or Hub dataset repo: :class:`KarmaSet`.

A set is what :mod:`karma_hf.layout` describes: a card (``README.md``) whose YAML ``configs``
declare one config per mode with its data files per split, a ``build_report.json``, and the
parquet shards. ``karma train`` loads the files the card declares for one mode, ``karma report``
reads the pair columns of several, ``karma push`` checks a folder against its card, and the
training callback records the set's provenance, all through this module. A local folder without
a card (a hand-made set) is read by the layout alone: ``<mode>/<split>-*.parquet``.

Only the standard library, PyYAML, pyarrow and (for Hub sets) huggingface_hub / datasets are
imported, never transformers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from karma_hf.errors import KarmaError
from karma_hf.layout import (
    CARD_FILE,
    DEFAULT_FORM,
    PAIR_SPLITS,
    REPORT_FILE,
    SHARD_RE,
    SPLIT_FILES,
    TRL_COLUMNS,
    config_form,
    order_modes,
)

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import pyarrow as pa


def card_metadata(text: str) -> dict[str, Any]:
    """The YAML front matter of a card as a dict (``{}`` when absent or not valid YAML)."""
    import yaml

    if not text.startswith("---"):
        return {}
    head = text.split("---", 2)
    try:
        data = yaml.safe_load(head[1]) if len(head) > 2 else {}
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def is_local(name: str) -> bool:
    return Path(name).expanduser().is_dir()


def config_files(card_meta: Mapping[str, Any], config: str | None) -> dict[str, list[str]]:
    """Split -> data files of one config declared in a dataset card's YAML ``configs``.

    Accepts the forms the Hub accepts: a path or list of paths (all ``train``), a list of
    ``{split, path}`` entries, or a ``{split: path(s)}`` mapping.
    """

    def as_list(paths: Any) -> list[str]:
        return [paths] if isinstance(paths, str) else [str(p) for p in paths or []]

    for cfg in card_meta.get("configs") or []:
        if not (isinstance(cfg, Mapping) and cfg.get("config_name") == config):
            continue
        files = cfg.get("data_files") or []
        if isinstance(files, Mapping):
            return {str(split): as_list(paths) for split, paths in files.items()}
        if isinstance(files, str) or all(isinstance(f, str) for f in files):
            return {"train": as_list(files)}
        return {str(e.get("split", "train")): as_list(e.get("path")) for e in files if isinstance(e, Mapping)}
    return {}


def read_dataset_files(name: str, revision: str | None = None) -> dict[str, Any]:
    """Card text/metadata and build report of a KARMA set (local folder or Hub dataset repo).

    Returns ``{"card_text", "card_metadata", "build_report", "resolved_revision", "local_path",
    "notes"}``; what cannot be read is ``None`` with a note saying why.
    """
    notes: list[str] = []
    texts: dict[str, str | None] = {CARD_FILE: None, REPORT_FILE: None}
    resolved = None
    local = None
    if is_local(name):
        local = str(Path(name).expanduser().resolve())
        for fname in texts:
            p = Path(local) / fname
            texts[fname] = _read_text(p) if p.is_file() else None
    else:
        from huggingface_hub import HfApi, hf_hub_download

        try:
            resolved = HfApi().dataset_info(name, revision=revision).sha
        except Exception as exc:  # offline, private without token, not found
            notes.append(f"could not resolve the revision of {name}: {type(exc).__name__}")
        for fname in texts:
            try:
                path = hf_hub_download(name, fname, repo_type="dataset", revision=resolved or revision)
                texts[fname] = Path(path).read_text(encoding="utf-8")
            except Exception as exc:
                notes.append(f"could not read {fname} of {name}: {type(exc).__name__}")
    for fname, text in texts.items():
        if text is None and not any(fname in n for n in notes):
            notes.append(f"{fname} not found in {name}")
    report = None
    report_text = texts[REPORT_FILE]
    if report_text:
        try:
            report = json.loads(report_text)
        except json.JSONDecodeError as exc:
            notes.append(f"build_report.json of {name} is not valid JSON ({exc.msg})")
    card_text = texts[CARD_FILE]
    return {
        "card_text": card_text,
        "card_metadata": card_metadata(card_text or ""),
        "build_report": report,
        "resolved_revision": resolved,
        "local_path": local,
        "notes": notes,
    }


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise KarmaError(f"{path}: not valid UTF-8 text (byte {exc.start})") from exc


def check_text(table: pa.Table, where: str) -> pa.Table:
    """``table`` after checking its text columns are valid UTF-8 (parquet readers do not check).

    A set written before karma-hf validated its sources can hold raw bytes in a string column;
    reading it would fail deep inside a report or a training run instead.
    """
    import pyarrow as pa

    try:
        table.validate(full=True)
    except pa.ArrowInvalid as exc:
        for name in table.column_names:
            try:
                table.column(name).validate(full=True)
            except pa.ArrowInvalid:
                raise KarmaError(
                    f"{where}: column {name!r} holds text that is not valid UTF-8; rebuild the set with "
                    "`karma build` (it drops such rows as malformed)"
                ) from exc
        raise KarmaError(f"{where}: not a valid Arrow table ({_first_line(exc)})") from exc
    return table


# ====================================================================== the reader
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class KarmaSet:
    """A KARMA set: ``KarmaSet("me/karma-uf")`` (Hub) or ``KarmaSet("out/karma-uf")`` (folder).

    Reading is lazy: the card and build report are fetched on first use.
    """

    def __init__(self, name: str | Path, revision: str | None = None) -> None:
        self.name = str(name)
        self.revision = revision
        self._info: dict[str, Any] | None = None

    # ------------------------------------------------------------------ card and report
    @property
    def local_path(self) -> Path | None:
        return Path(self.name).expanduser() if is_local(self.name) else None

    @property
    def info(self) -> dict[str, Any]:
        if self._info is None:
            self._info = read_dataset_files(self.name, self.revision)
        return self._info

    @property
    def card_metadata(self) -> dict[str, Any]:
        return self.info["card_metadata"]

    @property
    def build_report(self) -> dict[str, Any] | None:
        return self.info["build_report"]

    def declared_configs(self) -> list[str]:
        """Config names the card declares (``[]`` without a card)."""
        return [
            str(c.get("config_name"))
            for c in self.card_metadata.get("configs") or []
            if isinstance(c, Mapping) and c.get("config_name") is not None
        ]

    def _layout_files(self) -> dict[str, dict[str, list[str]]]:
        """``{mode: {split: [files]}}`` of a card-less local folder, by the layout alone."""
        root = self.local_path
        found: dict[str, dict[str, list[str]]] = {}
        if root is None or not root.is_dir():
            return found
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for shard in sorted(folder.glob("*.parquet")):
                m = SHARD_RE.fullmatch(shard.name)
                if m:
                    found.setdefault(folder.name, {}).setdefault(m.group("split"), []).append(
                        f"{folder.name}/{shard.name}"
                    )
        for name, files in found.items():  # a split declared on another's files (train_sft on train)
            for split, on in SPLIT_FILES.items():
                if split in config_form(name).splits and split not in files and on in files:
                    files[split] = list(files[on])
        return found

    def configs(self) -> list[str]:
        """The set's configs (KARMA modes), in canonical mode order."""
        declared = self.declared_configs()
        return order_modes(declared if declared or self.info["card_text"] else list(self._layout_files()))

    def files(self, config: str) -> dict[str, list[str]]:
        """Split -> data files (relative to the set) of one config."""
        if self.declared_configs() or self.info["card_text"]:
            return config_files(self.card_metadata, config)
        return self._layout_files().get(config, {})

    def _check_config(self, config: str | None) -> str:
        available = self.configs()
        if not available:
            where = (
                "its card declares no configs"
                if self.info["card_text"]
                else (
                    self.info["notes"][0]
                    if self.info["notes"] and self.local_path is None
                    else "no <mode>/<split>-*.parquet files and no card"
                )
            )
            raise KarmaError(f"dataset {self.name}: no KARMA configs ({where})")
        if config is None:
            raise KarmaError(
                f"dataset {self.name}: dataset_config (the KARMA mode) is required; available: {', '.join(available)}"
            )
        if config not in available:
            raise KarmaError(f"dataset {self.name} has no config {config!r}; available: {', '.join(available)}")
        return config

    # ------------------------------------------------------------------ data
    def check(self, config: str | None, splits: Sequence[str]) -> str:
        """The config after checking the set declares it with ``splits`` (what :meth:`load` needs), without
        reading any data; KarmaError naming what is missing otherwise."""
        config = self._check_config(config)
        files = self.files(config)
        missing = [s for s in splits if s not in files]
        if missing:
            raise KarmaError(
                f"dataset {self.name} config {config!r} has no split {missing[0]!r}; available: {', '.join(files)}"
            )
        return config

    def load(self, config: str | None, splits: Sequence[str]) -> datasets.DatasetDict:
        """``splits`` of one config as a ``DatasetDict`` (only the files the card declares)."""
        from datasets import DatasetDict, load_dataset

        config = self.check(config, splits)
        files = self.files(config)
        local = self.local_path
        try:
            ds = load_dataset(
                str(local) if local else self.name,
                data_files={s: files[s] for s in splits},
                revision=None if local else (self.info["resolved_revision"] or self.revision),
            )
        except Exception as exc:  # noqa: BLE001 - datasets raises many types; one line for the user
            raise KarmaError(f"cannot load dataset {self.name} config {config!r}: {_first_line(exc)}") from exc
        for s in splits:
            check_text(ds[s].data.table, f"dataset {self.name} config {config!r} split {s!r} ({', '.join(files[s])})")
        return DatasetDict({s: ds[s] for s in splits})

    def read_columns(
        self, config: str, splits: Sequence[str] = PAIR_SPLITS, columns: Sequence[str] | None = None
    ) -> dict[str, pa.Table]:
        """The present ``splits`` of a config as Arrow tables (``columns`` only), split -> table."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        config = self._check_config(config)
        files = self.files(config)
        present = [s for s in splits if s in files]
        if not present:
            raise KarmaError(
                f"dataset {self.name} config {config!r}: none of the splits {', '.join(splits)} "
                f"(has {', '.join(files) or 'none'})"
            )
        out: dict[str, pa.Table] = {}
        local = self.local_path
        if local is None:
            for split, table in ((s, self.load(config, [s])[s].data.table) for s in present):
                _check_columns(table.schema.names, columns, f"{self.name} config {config!r} split {split!r}")
                out[split] = table.select(list(columns)) if columns else table
            return out
        for split in present:
            parts = []
            for rel in files[split]:
                for path in sorted(local.glob(rel)):
                    try:
                        names = pq.read_schema(path).names
                    except Exception as exc:  # noqa: BLE001 - a corrupt file is a user error
                        raise KarmaError(f"{path}: not a readable parquet file ({_first_line(exc)})") from exc
                    _check_columns(names, columns, str(path))
                    try:
                        part = pq.read_table(path, columns=list(columns) if columns else None)
                    except Exception as exc:  # noqa: BLE001 - a truncated file is a user error
                        raise KarmaError(f"{path}: not a readable parquet file ({_first_line(exc)})") from exc
                    parts.append(check_text(part, str(path)))
            if not parts:
                raise KarmaError(f"{local}: config {config!r} split {split!r} declares {files[split]}, no such file")
            out[split] = pa.concat_tables(parts)
        return out


def _check_columns(names: Sequence[str], columns: Sequence[str] | None, where: str) -> None:
    missing = [c for c in columns or () if c not in names]
    if missing:
        raise KarmaError(f"{where}: missing column(s) {', '.join(missing)}")


# ====================================================================== a folder about to be published
@dataclass(frozen=True)
class FolderPlan:
    """What a push uploads: repo-relative POSIX paths, plus files left out and why."""

    folder: Path
    files: tuple[str, ...]
    configs: tuple[str, ...]
    skipped: tuple[str, ...] = field(default=())


def scan_folder(folder: str | os.PathLike) -> FolderPlan:
    """Check that ``folder`` is a karma dataset folder and list the files a push uploads.

    Raises :class:`KarmaError` naming the first problem: missing card or report, a card whose
    ``configs`` are missing or point at absent files, a mode folder not declared in the card, a
    shard that is not a parquet file with the columns TRL needs, splits of one mode whose columns
    differ (``load_dataset`` needs one schema per config), an empty shard. Files outside the layout (for
    example plots next to the card) are not uploaded; they are listed in ``skipped``.
    """
    root = Path(folder)
    if not root.is_dir():
        raise KarmaError(f"{root}: not a folder (expected a karma dataset folder from `karma build --output`)")
    for name in (CARD_FILE, REPORT_FILE):
        if not (root / name).is_file():
            raise KarmaError(f"{root}: missing {name}; not a karma dataset folder (run `karma build --output DIR`)")
    try:
        json.loads((root / REPORT_FILE).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise KarmaError(f"{root / REPORT_FILE}: not valid JSON ({exc})") from exc

    declared = _declared_configs(root)
    shards: list[str] = []
    skipped: list[str] = []
    schemas: dict[str, tuple[str, tuple[str, ...]]] = {}  # mode -> (first shard, its columns)
    for entry in sorted(root.iterdir()):
        if entry.name in (CARD_FILE, REPORT_FILE):
            continue
        if entry.is_dir() and (entry.name in declared or any(entry.glob("*.parquet"))):
            for shard in sorted(entry.iterdir()):
                rel = f"{entry.name}/{shard.name}"
                m = SHARD_RE.fullmatch(shard.name)
                splits = config_form(entry.name).splits
                if not shard.is_file() or m is None or m.group("split") not in splits:
                    raise KarmaError(
                        f"{root / rel}: unexpected entry in a config folder (expected "
                        f"<split>-NNNNN-of-NNNNN.parquet with split in {', '.join(splits)})"
                    )
                columns = _check_shard(root / rel, m.group("split"), entry.name)
                first = schemas.setdefault(entry.name, (rel, columns))
                if first[1] != columns:
                    raise KarmaError(
                        f"{root / rel}: columns differ from {first[0]}; all splits of a config need "
                        f"one schema for load_dataset (differing: "
                        f"{', '.join(sorted(set(first[1]) ^ set(columns)))})"
                    )
                shards.append(rel)
        else:
            skipped.append(entry.name + ("/" if entry.is_dir() else ""))
    if not shards:
        raise KarmaError(f"{root}: no <mode>/<split>-*.parquet shards; not a karma dataset folder")
    configs = _check_card(root, shards)
    return FolderPlan(root, tuple([CARD_FILE, REPORT_FILE, *shards]), configs, tuple(skipped))


def _check_shard(path: Path, split: str, config: str) -> tuple[str, ...]:
    """The shard's column names, after checking it is parquet with the columns its split needs."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
        names = tuple(meta.schema.to_arrow_schema().names)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError on truncated or foreign files
        raise KarmaError(f"{path}: not a readable parquet file ({type(exc).__name__})") from exc
    if meta.num_rows == 0:
        raise KarmaError(
            f"{path}: has no rows; load_dataset cannot read an empty split (leave it out of the "
            "folder and the card's configs)"
        )
    form = config_form(config)
    needed = TRL_COLUMNS[split] if form.name == DEFAULT_FORM else form.required
    missing = [c for c in needed if c not in names]
    if missing:
        what = f"the {split} split" if form.name == DEFAULT_FORM else f"the {form.name} form"
        raise KarmaError(f"{path}: missing column(s) {', '.join(missing)} needed for {what}")
    return names


def _card_meta(root: Path) -> dict:
    text = _read_text(root / CARD_FILE)
    meta = card_metadata(text)
    if not meta and text.startswith("---"):
        raise KarmaError(f"{root / CARD_FILE}: invalid YAML metadata")
    return meta


def _declared_configs(root: Path) -> set[str]:
    return {str(c.get("config_name")) for c in _card_meta(root).get("configs") or [] if isinstance(c, dict)}


def _check_card(root: Path, shards: list[str]) -> tuple[str, ...]:
    """The card's YAML ``configs`` must cover every mode folder and point only at shards present."""
    meta = _card_meta(root)
    configs = meta.get("configs")
    if not isinstance(configs, list) or not configs:
        raise KarmaError(f"{root / CARD_FILE}: YAML metadata has no `configs` list (one config per mode)")
    present = set(shards)
    declared: list[str] = []
    for config in configs:
        name = config.get("config_name") if isinstance(config, dict) else None
        if not name:
            raise KarmaError(f"{root / CARD_FILE}: a `configs` entry has no config_name")
        declared.append(name)
        for patterns in config_files(meta, name).values():
            for pattern in patterns:
                if not any(_glob_match(pattern, s) for s in present):
                    raise KarmaError(
                        f"{root / CARD_FILE}: config {name!r} points at {pattern}, which is not in the folder"
                    )
    modes = sorted({s.split("/", 1)[0] for s in shards})
    undeclared = [m for m in modes if m not in declared]
    if undeclared:
        raise KarmaError(f"{root / CARD_FILE}: `configs` does not declare mode folder(s) {', '.join(undeclared)}")
    return tuple(declared)


def _glob_match(pattern: str, path: str) -> bool:
    from fnmatch import fnmatchcase

    return fnmatchcase(path, pattern)
