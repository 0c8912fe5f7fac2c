"""The output folder of ``karma generate``: sharded, resumable, byte-stable.

::

    OUT/
      README.md                          # what the folder is
      karma_generate.json                # the manifest: config, its fingerprint, counts, complete: true|false
      data/train-00000-of-00001.parquet  # the result, in the common multi-model schema (once complete)
      .shards/<model>/<block>.parquet    # one file per (model, block of prompts): the work units

``load_dataset(OUT)`` reads ``data/`` only (datasets skips hidden folders and finds the split by the
file name). The finished README declares no ``configs``: with one, datasets 5 caches a local folder
by its name alone and serves stale rows after the folder is rewritten. While a run is unfinished the
README does declare ``data/train-*.parquet``, so loading it fails instead of reading the manifest.

Work is cut into (model, block) shards: block ``b`` holds prompts ``[b * shard_size, (b + 1) *
shard_size)`` and a model's shard holds those of them it answers (``--per-prompt``). A shard is
written to a temporary file and renamed into place, so it exists complete or not at all; a rerun
with the same configuration (same fingerprint) skips every shard that exists and removes leftover
temporary files. The result is assembled from the shards only when all exist, again through a
temporary file and a rename; nothing in the folder records a time, so a finished run's files are
byte-identical to an uninterrupted run's (greedy decoding, same hardware and library versions).

The common schema (one row per prompt, prompts in source order, completions in pool order):
``prompt_id`` (string), ``prompt`` (``[{role, content}]``), ``completions: [{model, response,
generation_config}]`` (``generation_config`` a JSON string), ``source`` (the prompt's label).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from karma_hf.errors import KarmaError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from karma_hf.generation.config import GenerateConfig
    from karma_hf.generation.prompts import PromptSet

MANIFEST = "karma_generate.json"
FORMAT = "karma-generate/1"
DATA_FILE = "data/train-00000-of-00001.parquet"
SHARDS = ".shards"
UNFINISHED_HEADER = """---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*.parquet
---
"""
FINISHED_HEADER = """---
tags:
- karma-hf
- generated
---
"""
README = """{header}
# Generated responses (karma generate)

Responses of a pool of models to a prompt set, in karma-hf's common multi-model schema:
`prompt_id`, `prompt` (messages), `completions: [{{model, response, generation_config}}]`, `source`.
Build KARMA pairs from it with `karma build --source <this folder> --scores <results> --modes score,sim,score_sim`.
The run is described in `{manifest}`{status}.
"""


def model_dir(name: str) -> str:
    """A file-system-safe, collision-free folder name for a model."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[-60:] or "model"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def assignment(prompt_ids: Sequence[str], models: Sequence[str], per_prompt: int | None, seed: int) -> list[list[int]]:
    """Per prompt, the indices (in pool order) of the models that answer it.

    ``per_prompt`` None (or >= the pool): all. Otherwise the ``per_prompt`` models with the smallest
    ``sha256(seed:prompt_id:model)``: a seeded choice per prompt that does not depend on the order of
    the pool or of the prompts.
    """
    if per_prompt is None or per_prompt >= len(models):
        return [list(range(len(models))) for _ in prompt_ids]
    out = []
    for pid in prompt_ids:
        keys = [hashlib.sha256(f"{seed}:{pid}:{m}".encode()).digest() for m in models]
        out.append(sorted(sorted(range(len(models)), key=keys.__getitem__)[:per_prompt]))
    return out


@dataclass(frozen=True)
class Shard:
    model: int  # index in the pool
    block: int
    prompts: tuple[int, ...]  # prompt indices, ascending
    path: Path


def plan(config: GenerateConfig, prompts: PromptSet) -> list[list[Shard]]:
    """Per model, its non-empty shards in block order."""
    ids = [p.prompt_id for p in prompts.prompts]
    assigned = assignment(ids, [m.name for m in config.models], config.per_prompt, config.seed)
    out: list[list[Shard]] = []
    root = Path(config.output) / SHARDS
    for mi, spec in enumerate(config.models):
        shards = []
        for block, start in enumerate(range(0, len(ids), config.shard_size)):
            rows = tuple(i for i in range(start, min(start + config.shard_size, len(ids))) if mi in assigned[i])
            if rows:
                shards.append(Shard(mi, block, rows, root / model_dir(spec.name) / f"{block:05d}.parquet"))
        out.append(shards)
    return out


# ------------------------------------------------------------------------------ shard files
def shard_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("prompt_index", pa.int64()),
            ("prompt_id", pa.string()),
            ("response", pa.string()),
            ("generation_config", pa.string()),
            ("prompt_tokens", pa.int64()),
            ("new_tokens", pa.int64()),
        ]
    )


def write_atomic_table(table: pa.Table, path: Path) -> None:
    """Write parquet to ``path.tmp-<pid>`` and rename it into place."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression="snappy")
    os.replace(tmp, path)


def write_atomic_text(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_shard(shard: Shard, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa

    write_atomic_table(pa.Table.from_pylist(rows, schema=shard_schema()), shard.path)


def remove_partials(root: Path) -> int:
    """Delete temporary files a killed run left behind; returns how many."""
    n = 0
    for tmp in root.rglob("*.tmp-*"):
        tmp.unlink(missing_ok=True)
        n += 1
    return n


# ------------------------------------------------------------------------------ manifest, result
def manifest(
    config: GenerateConfig, prompts: PromptSet, fingerprint: str, *, complete: bool, counts: dict | None = None
) -> dict[str, Any]:
    from karma_hf.pairs.config import public_name

    return {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "complete": complete,
        "prompts": {
            "source": public_name(prompts.source),
            "split": prompts.split,
            "prompt_column": prompts.prompt_column,
            "schema": prompts.schema,
            "source_rows": prompts.rows,
            "prompts": len(prompts),
            "skipped": prompts.skipped,
            "duplicates": prompts.duplicates,
            "digest": prompts.digest(),
        },
        "models": [m.to_dict() for m in config.models],
        "per_prompt": config.per_prompt,
        "seed": config.seed,
        "shard_size": config.shard_size,
        "batch_size": config.batch_size,
        "counts": counts or {},
    }


def read_manifest(out: Path) -> dict[str, Any] | None:
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise KarmaError(f"{path}: not valid JSON ({exc.msg}); remove the folder or pass --overwrite") from exc


def write_manifest(out: Path, data: dict[str, Any], *, complete: bool) -> None:
    write_atomic_text(json.dumps(data, indent=1, sort_keys=False) + "\n", out / MANIFEST)
    status = "" if complete else " (unfinished: rerun the same command to continue)"
    header = FINISHED_HEADER if complete else UNFINISHED_HEADER
    write_atomic_text(README.format(header=header, manifest=MANIFEST, status=status), out / "README.md")


def result_schema() -> pa.Schema:
    import pyarrow as pa

    from karma_hf.sources.messages import message_type

    completion = pa.struct([("model", pa.string()), ("response", pa.string()), ("generation_config", pa.string())])
    return pa.schema(
        [
            ("prompt_id", pa.string()),
            ("prompt", message_type()),
            ("completions", pa.list_(completion)),
            ("source", pa.string()),
        ]
    )


def assemble(config: GenerateConfig, prompts: PromptSet, shards: list[list[Shard]]) -> dict[str, Any]:
    """Join every shard into ``data/train-00000-of-00001.parquet``; returns per-model counts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    per_prompt: list[list[dict[str, str]]] = [[] for _ in prompts.prompts]
    counts: dict[str, Any] = {}
    for mi, model_shards in enumerate(shards):
        name = config.models[mi].name
        stats: dict[str, Any] = {
            "responses": 0,
            "empty": 0,
            "new_tokens": 0,
            "prompt_tokens": 0,
            "chat_template": None,
        }
        for shard in model_shards:
            table = pq.read_table(shard.path, schema=shard_schema())
            for row in table.to_pylist():
                i = int(row["prompt_index"])
                if prompts.prompts[i].prompt_id != row["prompt_id"]:
                    raise KarmaError(f"{shard.path} does not belong to this prompt set; rerun with --overwrite")
                per_prompt[i].append(
                    {"model": name, "response": row["response"], "generation_config": row["generation_config"]}
                )
                stats["responses"] += 1
                stats["empty"] += int(not (row["response"] or "").strip())
                stats["new_tokens"] += int(row["new_tokens"])
                stats["prompt_tokens"] += int(row["prompt_tokens"])
                if stats["chat_template"] is None:
                    stats["chat_template"] = json.loads(row["generation_config"]).get("chat_template")
        counts[name] = stats
    order = {m.name: i for i, m in enumerate(config.models)}
    rows = []
    for p, comps in zip(prompts.prompts, per_prompt, strict=True):
        if comps:
            rows.append(
                {
                    "prompt_id": p.prompt_id,
                    "prompt": p.messages,
                    "completions": sorted(comps, key=lambda c: order[c["model"]]),
                    "source": p.label,
                }
            )
    write_atomic_table(pa.Table.from_pylist(rows, schema=result_schema()), Path(config.output) / DATA_FILE)
    return {"rows": len(rows), "models": counts}
