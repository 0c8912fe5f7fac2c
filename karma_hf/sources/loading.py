"""Loading a response dataset from a Hub id or a local file/folder, whatever its schema."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from karma_hf.errors import KarmaError
from karma_hf.sources.registry import pinned_revision

if TYPE_CHECKING:  # pragma: no cover
    import datasets

_FILE_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}


def load_source(
    source: str | Path, *, revision: str | None = None, split: str = "train", cache_dir: str | Path | None = None
) -> datasets.Dataset:
    """Load a response dataset from a Hub id or a local path as a memory-mapped ``Dataset``.

    Local paths: a ``.parquet`` / ``.jsonl`` / ``.json`` file, an ``.arrow`` file, a
    ``save_to_disk`` folder (``Dataset`` or ``DatasetDict``: ``split`` is taken), or a folder of
    data files. A Hub id is loaded with ``load_dataset`` at ``revision``; for
    a Hub id that a source pins (``openbmb/UltraFeedback``) the default revision is the pinned one.
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
            return loaded
        return datasets.load_dataset(str(path), split=split, cache_dir=cache)
    suffix = path.suffix.lower()
    if suffix == ".arrow":
        return datasets.Dataset.from_file(str(path))
    if suffix not in _FILE_BUILDERS:
        raise KarmaError(
            f"source file {path} has unsupported extension {suffix!r}; "
            "use .parquet, .jsonl, .json, .arrow or a save_to_disk folder"
        )
    builder = _FILE_BUILDERS[suffix]
    ds = datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache)
    if builder == "json" and _has_json_feature(ds.features):
        # datasets types objects whose keys differ between rows (a completion without
        # "model", say) as opaque Json; pyarrow's reader unifies them into structs with
        # nulls instead, which keeps such rows parseable (and reportable as malformed).
        import pyarrow.json as pj

        features = datasets.Features.from_arrow_schema(pj.read_json(str(path)).schema)
        ds = datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache, features=features)
    return ds


def _has_json_feature(feature: Any) -> bool:
    """True when a (nested) feature is datasets' opaque ``Json`` type."""
    if type(feature).__name__ == "Json":
        return True
    if isinstance(feature, Mapping):
        return any(_has_json_feature(v) for v in feature.values())
    inner = getattr(feature, "feature", None)
    return inner is not None and _has_json_feature(inner)
