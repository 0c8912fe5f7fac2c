"""Loading a response dataset from a Hub id or a local file/folder, whatever its schema."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from karma_hf.errors import KarmaError
from karma_hf.sources.registry import pinned_revision

if TYPE_CHECKING:  # pragma: no cover
    import datasets

_FILE_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}

#: Column a loader adds when some rows of a file could not be read as the others (invalid JSON or
#: UTF-8, a value whose type differs from the same field in the other rows): the reason per row,
#: null for a row read normally. The builder counts such rows as ``malformed`` with that reason;
#: their other columns are null.
LOAD_ERROR_COLUMN = "__karma_load_error__"


def load_source(
    source: str | Path, *, revision: str | None = None, split: str = "train", cache_dir: str | Path | None = None
) -> datasets.Dataset:
    """Load a response dataset from a Hub id or a local path as a memory-mapped ``Dataset``.

    Local paths: a ``.parquet`` / ``.jsonl`` / ``.json`` file, an ``.arrow`` file, a
    ``save_to_disk`` folder (``Dataset`` or ``DatasetDict``: ``split`` is taken), or a folder of
    data files. A Hub id is loaded with ``load_dataset`` at ``revision``; for
    a Hub id that a source pins (``openbmb/UltraFeedback``) the default revision is the pinned one.
    ``split`` applies to Hub ids, ``DatasetDict`` folders and folders of data files; a single file
    (or a single-``Dataset`` folder) has no splits, and any ``split`` but the default ``train`` is
    an error for it (see :func:`has_splits`).

    A JSON Lines file whose rows Arrow cannot read as one table (a line that is not valid JSON, a
    field whose type differs from the other rows) is read line by line: such rows come back with
    their reason in :data:`LOAD_ERROR_COLUMN` instead of failing the whole load.
    """
    import datasets

    text = str(source)
    path = Path(text).expanduser()
    try:
        if path.exists():
            if revision is not None:
                raise KarmaError(f"--revision applies to Hub sources only, but {text!r} is a local path")
            ds = _load_local(path, split, cache_dir)
        else:
            if text.startswith((".", "/", "~")) or path.suffix.lower() in (*_FILE_BUILDERS, ".arrow"):
                raise KarmaError(f"source path does not exist: {text}")
            if text.count("/") != 1:
                raise KarmaError(f"source {text!r} is neither an existing path nor a Hub dataset id (user/name)")
            if revision is None:
                revision = pinned_revision(text)
            ds = datasets.load_dataset(
                text, revision=revision, split=split, cache_dir=str(cache_dir) if cache_dir else None
            )
    except KarmaError:
        raise
    except Exception as exc:  # noqa: BLE001 - datasets raises many types; report one line
        where = f"{text}@{revision}" if revision else text
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise KarmaError(f"cannot load source {where} (split {split!r}): {type(exc).__name__}: {message}") from exc
    if isinstance(ds, datasets.DatasetDict):  # pragma: no cover - load_dataset(split=...) returns a Dataset
        ds = ds[split]
    if ds._indices is not None:  # noqa: SLF001 - an indices mapping would break batch alignment
        ds = ds.flatten_indices()
    return ds


def has_splits(source: str | Path) -> bool:
    """Whether ``--split`` means something for ``source``: a Hub id, a ``DatasetDict`` folder or a
    folder of data files has splits; a single file or a single-``Dataset`` folder has none."""
    path = Path(str(source)).expanduser()
    if not path.exists():
        return True  # a Hub id
    if path.is_dir():
        return not (path / "state.json").exists()
    return False


def _no_split(path: Path, split: str) -> None:
    if split != "train":
        raise KarmaError(
            f"--split {split}: {path} is a single {'dataset' if path.is_dir() else 'file'} without splits; "
            "drop --split (it applies to Hub sources, DatasetDict folders and folders of data files)"
        )


def _load_local(path: Path, split: str, cache_dir: str | Path | None) -> datasets.Dataset:
    import datasets

    cache = str(cache_dir) if cache_dir else None
    if path.is_dir():
        if (path / "state.json").exists() or (path / "dataset_dict.json").exists():
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise KarmaError(f"{path} has splits {', '.join(loaded)}; no split {split!r}")
                return loaded[split]
            _no_split(path, split)
            return loaded
        return datasets.load_dataset(str(path), split=split, cache_dir=cache)
    _no_split(path, split)
    suffix = path.suffix.lower()
    if suffix == ".arrow":
        return datasets.Dataset.from_file(str(path))
    if suffix not in _FILE_BUILDERS:
        raise KarmaError(
            f"source file {path} has unsupported extension {suffix!r}; "
            "use .parquet, .jsonl, .json, .arrow or a save_to_disk folder"
        )
    if path.stat().st_size == 0:
        raise KarmaError(f"source file {path} is empty")
    builder = _FILE_BUILDERS[suffix]
    if builder != "json":
        return datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache)
    try:
        with _quiet_datasets():  # its "Failed to load JSON" log line: the rows are read one by one instead
            ds = datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache)
    except Exception:  # noqa: BLE001 - a line Arrow cannot read (bad JSON, a field changing type): row by row
        return _read_json_rows(path)
    if _has_json_feature(ds.features):
        # datasets types objects whose keys differ between rows (a completion without
        # "model", say) as opaque Json; pyarrow's reader unifies them into structs with
        # nulls instead, which keeps such rows parseable (and reportable as malformed).
        import pyarrow as pa
        import pyarrow.json as pj

        try:
            features = datasets.Features.from_arrow_schema(pj.read_json(str(path)).schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):  # types change between rows
            return _read_json_rows(path)
        ds = datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache, features=features)
    return ds


@contextmanager
def _quiet_datasets():
    import datasets

    level = datasets.logging.get_verbosity()
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    try:
        yield
    finally:
        datasets.logging.set_verbosity(level)


# ------------------------------------------------------------------------------ row-by-row JSON
_KIND_NAMES = {
    "string": "a string",
    "number": "a number",
    "bool": "true/false",
    "list": "a list",
    "object": "an object",
}


def _kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def _walk(value: Any, key: str, where: str):
    """Yield ``(path key, readable path, kind, value)`` of ``value`` and everything inside it."""
    yield key, where, _kind(value), value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{key}.{k}" if key else k, f"{where}.{k}" if where else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{key}[]", f"{where}[{i}]")


def _row_problem(row: Any, majority: dict[str, str]) -> str | None:
    """Why a decoded row cannot share a table with the others (None: it can)."""
    if not isinstance(row, dict):
        return f"row is {_KIND_NAMES.get(_kind(row) or '', 'null')}, expected an object"
    for key, where, kind, value in _walk(row, "", ""):
        if kind == "string" and any("\udc80" <= c <= "\udcff" for c in value):
            return f"{where} is not valid UTF-8"
        if kind is not None and key and majority.get(key, kind) != kind:
            return f"{where} is {_KIND_NAMES[kind]}, expected {_KIND_NAMES[majority[key]]}"
    return None


def _read_json_rows(path: Path) -> datasets.Dataset:
    """Read a JSON Lines file (or a JSON array) row by row; unreadable rows get a reason.

    A row is unreadable when its line is not valid JSON, not an object, holds text that is not
    valid UTF-8, or has a field whose type (string, number, list, object...) differs from the type
    most rows have there; such a row is kept as nulls with its reason in :data:`LOAD_ERROR_COLUMN`,
    so row numbers stay those of the file's lines (blank lines not counted).
    """
    import json
    from collections import Counter

    import datasets
    import pyarrow as pa

    data = path.read_bytes()
    decoded: list[Any] = []
    problems: list[str | None] = []
    stripped = data.lstrip()
    if stripped.startswith(b"["):  # a JSON array of rows
        try:
            values = json.loads(data.decode("utf-8", errors="surrogateescape"))
        except ValueError as exc:
            raise KarmaError(f"source file {path} is not valid JSON ({exc})") from exc
        decoded = list(values) if isinstance(values, list) else [values]
        problems = [None] * len(decoded)
    else:
        for line in data.splitlines():
            if not line.strip():
                continue
            try:
                decoded.append(json.loads(line.decode("utf-8", errors="surrogateescape")))
                problems.append(None)
            except json.JSONDecodeError as exc:
                decoded.append(None)
                problems.append(f"row is not valid JSON ({exc.msg}, column {exc.colno})")
    counts: dict[str, Counter] = {}
    for row, problem in zip(decoded, problems, strict=True):
        if problem is None and isinstance(row, dict):
            for key, _, kind, _ in _walk(row, "", ""):
                if kind is not None and key:
                    counts.setdefault(key, Counter())[kind] += 1
    majority = {key: c.most_common(1)[0][0] for key, c in counts.items()}
    for i, row in enumerate(decoded):
        if problems[i] is None:
            problems[i] = _row_problem(row, majority)
    good = [row if problem is None else None for row, problem in zip(decoded, problems, strict=True)]
    try:
        struct = pa.array(good) if any(r is not None for r in good) else None
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise KarmaError(f"source file {path}: rows cannot be read as one table ({exc})") from exc
    columns: list[pa.Array] = []
    names: list[str] = []
    if struct is not None and pa.types.is_struct(struct.type):
        columns = list(struct.flatten())
        names = [struct.type.field(i).name for i in range(struct.type.num_fields)]
    reasons = pa.array(problems, type=pa.string())
    table = pa.Table.from_arrays([*columns, reasons], names=[*names, LOAD_ERROR_COLUMN])
    return datasets.Dataset(datasets.table.InMemoryTable(table))


def _has_json_feature(feature: Any) -> bool:
    """True when a (nested) feature is datasets' opaque ``Json`` type."""
    if type(feature).__name__ == "Json":
        return True
    if isinstance(feature, Mapping):
        return any(_has_json_feature(v) for v in feature.values())
    inner = getattr(feature, "feature", None)
    return inner is not None and _has_json_feature(inner)
