"""`--karma_order curriculum`: the rows a run reads, in S_pref-gap (or kinship) order, also under torchrun.

The set is the fixture set with every train pair given its own S_pref gap and kinship, so an
order is visible row by row. What the dataloader really read is logged by a hook on
`datasets.Dataset.__getitems__` (the call torch's fetcher makes) and mapped back to rows through
the trainer's prepared train dataset (`prompt_id`), captured by a hook on
`Trainer.get_train_dataloader`; the expected order is computed here from the parquet file.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from karma_set import write_karma_set

from karma_hf.errors import KarmaError
from karma_hf.train import train
from karma_hf.train.args import parse_args
from karma_hf.train.order import apply_order, prepare_train_split

REPO = Path(__file__).resolve().parents[1]
TINY = REPO / "recipes" / "tiny"


def write_order_set(root: Path, n_train: int = 24, missing: int = 0) -> Path:
    """The fixture set (mode `sim`) with a distinct S_pref gap and kinship per train pair; the last
    `missing` pairs have no kinship and no S_pref of the rejected model."""
    import pyarrow.parquet as pq
    from datasets import Dataset

    data = write_karma_set(root, modes=("sim",), n_train=n_train, n_test=4)
    path = data / "sim" / "train-00000-of-00001.parquet"
    rows = pq.read_table(path).to_pylist()
    rng = random.Random(7)
    gaps, kins = rng.sample(range(1, 990), len(rows)), rng.sample(range(500, 1000), len(rows))
    for i, (row, gap, kin) in enumerate(zip(rows, gaps, kins, strict=True)):
        row["s_pref_chosen"] = 0.99
        row["s_pref_rejected"] = round(0.99 - gap / 1000, 6)
        row["kinship"] = kin / 1000
        if i >= len(rows) - missing:
            row["kinship"] = row["s_pref_rejected"] = None
    Dataset.from_list(rows).to_parquet(str(path))
    return data


def _rows(data: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(data / "sim" / "train-00000-of-00001.parquet").to_pylist()


def _gap(row: dict) -> float | None:
    return None if row["s_pref_rejected"] is None else row["s_pref_chosen"] - row["s_pref_rejected"]


def _args(stage: str, data: Path, out: Path, model: str = "m", *extra) -> object:
    return parse_args(
        stage,
        [
            "--config",
            str(TINY / f"{stage}.yaml"),
            "--model_name_or_path",
            str(model),
            "--dataset_name",
            str(data),
            "--dataset_config",
            "sim",
            "--output_dir",
            str(out),
            *map(str, extra),
        ],
    )


def _train_split(data: Path):
    from datasets import Dataset

    return Dataset.from_parquet(str(data / "sim" / "train-00000-of-00001.parquet"))


# ---------------------------------------------------------------------------------- the order itself
def test_curriculum_sorts_by_gap_or_kinship_missing_last(tmp_path):
    data = write_order_set(tmp_path / "set", missing=3)
    rows, ds = _rows(data), _train_split(data)
    known = [r for r in rows if _gap(r) is not None]

    args = _args("dpo", data, tmp_path / "o", "m", "--karma_order", "curriculum")
    assert args.training.train_sampling_strategy == "random"
    by_gap, record = apply_order(ds, args)
    assert args.training.train_sampling_strategy == "sequential"
    gaps = [_gap(r) for r in by_gap]
    assert gaps[: len(known)] == sorted((_gap(r) for r in known), reverse=True) and gaps[len(known) :] == [None] * 3
    assert [r["prompt_id"] for r in by_gap][len(known) :] == [r["prompt_id"] for r in rows[len(known) :]]
    assert Counter(r["prompt_id"] for r in by_gap) == Counter(r["prompt_id"] for r in rows)  # a permutation
    assert record == {
        "order": "curriculum",
        "key": "s_pref_gap",
        "reverse": False,
        "direction": "largest S_pref gap first",
        "sampler": "sequential",
        "rows": len(rows),
        "rows_without_key": 3,
        "first": pytest.approx(max(map(_gap, known))),
        "last": pytest.approx(min(map(_gap, known))),
    }

    args = _args("dpo", data, tmp_path / "o", "m", "--karma_order", "curriculum", "--karma_order_key", "kinship")
    by_kin, record = apply_order(ds, args)
    assert [r["kinship"] for r in by_kin] == sorted(r["kinship"] for r in known) + [None] * 3  # most kin last
    assert record["direction"] == "least kin first, most kin last"
    args = _args(
        "dpo",
        data,
        tmp_path / "o",
        "m",
        "--karma_order",
        "curriculum",
        "--karma_order_key",
        "kinship",
        "--karma_order_reverse",
        "true",
    )
    reverse, record = apply_order(ds, args)
    assert [r["kinship"] for r in reverse] == sorted((r["kinship"] for r in known), reverse=True) + [None] * 3
    assert record["direction"] == "most kin first, least kin last"


def test_shuffle_is_the_default_and_leaves_the_sampler_alone(tmp_path):
    data = write_order_set(tmp_path / "set")
    args = _args("dpo", data, tmp_path / "o")
    assert args.karma.karma_order == "shuffle"
    ds = _train_split(data)
    same, record = apply_order(ds, args)
    assert same is ds and record == {"order": "shuffle", "sampler": "random", "seed": 0}
    assert args.training.train_sampling_strategy == "random"


def test_curriculum_errors_name_what_is_wrong(tmp_path):
    data = write_order_set(tmp_path / "set")
    ds = _train_split(data).remove_columns(["kinship"])
    args = _args("dpo", data, tmp_path / "o", "m", "--karma_order", "curriculum", "--karma_order_key", "kinship")
    with pytest.raises(KarmaError, match="needs the column.s. kinship"):
        apply_order(ds, args)
    args = _args(
        "dpo", data, tmp_path / "o", "m", "--karma_order", "curriculum", "--train_sampling_strategy", "group_by_length"
    )
    with pytest.raises(KarmaError, match="group_by_length would reorder them"):
        apply_order(_train_split(data), args)
    with pytest.raises(KarmaError, match="invalid choice: 'gap'"):
        _args("dpo", data, tmp_path / "o", "m", "--karma_order", "curriculum", "--karma_order_key", "gap")


def test_kto_curriculum_keeps_the_pair_order_block_by_block(tmp_path):
    """KTO unpairs the sorted pairs: each batch of 4 = 2 consecutive pairs' chosen rows, then their rejected rows."""
    from karma_hf.train.stages import get_stage

    data = write_order_set(tmp_path / "set")
    args = _args("kto", data, tmp_path / "o", "m", "--karma_order", "curriculum")
    rows, record = prepare_train_split(get_stage("kto"), args, _train_split(data), "train")
    n = len(_rows(data))
    assert record["trainer_rows"] == len(rows) == 2 * n and record["rows"] == n
    gaps = [_gap(r) for r in rows]
    assert gaps == [
        g
        for block in (sorted(map(_gap, _rows(data)), reverse=True)[i : i + 2] for i in range(0, n, 2))
        for g in block * 2
    ]
    assert [r["label"] for r in rows][:8] == [True, True, False, False] * 2
    assert args.training.train_sampling_strategy == "sequential"


# ------------------------------------------------------------------------------------- one process
def test_curriculum_dpo_run_reads_rows_in_gap_order(tiny_model_dir, tmp_path, monkeypatch):
    import datasets
    import transformers

    data = write_order_set(tmp_path / "set")
    seen: dict[str, list] = {"ids": [], "fetches": []}
    get_items, get_loader = datasets.Dataset.__getitems__, transformers.Trainer.get_train_dataloader

    def logged_items(self, keys):
        if seen["ids"]:
            seen["fetches"].append([int(k) for k in keys])
        return get_items(self, keys)

    def logged_loader(self):
        seen["ids"] = list(self.train_dataset["prompt_id"])
        return get_loader(self)

    monkeypatch.setattr(datasets.Dataset, "__getitems__", logged_items)
    monkeypatch.setattr(transformers.Trainer, "get_train_dataloader", logged_loader)
    out = tmp_path / "run"
    result = train(
        "dpo",
        [
            "--config",
            str(TINY / "dpo.yaml"),
            "--model_name_or_path",
            str(tiny_model_dir),
            "--dataset_name",
            str(data),
            "--dataset_config",
            "sim",
            "--output_dir",
            str(out),
            "--max_steps",
            "3",
            "--per_device_train_batch_size",
            "2",
            "--karma_order",
            "curriculum",
        ],
    )
    assert result.global_step == 3
    gap_of = {r["prompt_id"]: _gap(r) for r in _rows(data)}
    read = [gap_of[seen["ids"][k]] for batch in seen["fetches"][:3] for k in batch]
    assert read == sorted(gap_of.values(), reverse=True)[:6]
    prov = json.loads((out / "karma_provenance.json").read_text())
    assert prov["order"]["order"] == "curriculum" and prov["order"]["key"] == "s_pref_gap"
    assert prov["order"]["first"] == pytest.approx(max(gap_of.values()))
    assert prov["run_config"]["karma"]["karma_order"] == "curriculum"
    assert prov["training_args"]["train_sampling_strategy"] == "sequential"


# ----------------------------------------------------------------------------------- two processes
HOOK = """
import json, os
_log, _rank = os.environ["KARMA_ORDER_LOG"], os.environ.get("RANK")
if _rank is not None:
    import datasets, transformers
    _items, _loader = datasets.Dataset.__getitems__, transformers.Trainer.get_train_dataloader
    def _logged_items(self, keys):
        if os.path.exists(f"{_log}.{_rank}.ids"):
            with open(f"{_log}.{_rank}.fetch", "a") as f:
                f.write(json.dumps([int(k) for k in keys]) + "\\n")
        return _items(self, keys)
    def _logged_loader(self):
        with open(f"{_log}.{_rank}.ids", "w") as f:
            json.dump(list(self.train_dataset["prompt_id"]), f)
        return _loader(self)
    datasets.Dataset.__getitems__ = _logged_items
    transformers.Trainer.get_train_dataloader = _logged_loader
"""


@pytest.mark.slow
def test_curriculum_under_torchrun_each_rank_reads_its_share_in_order(tiny_model_dir, tmp_path):
    data = write_order_set(tmp_path / "set", n_train=32)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    log = tmp_path / "order"
    out = tmp_path / "ddp"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
        "KARMA_ORDER_LOG": str(log),
        "OMP_NUM_THREADS": "1",
    }
    steps, batch, world = 3, 2, 2
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(world),
        "--standalone",
        "-m",
        "karma_hf.cli",
        "train",
        "dpo",
        "--config",
        str(TINY / "dpo.yaml"),
        "--model_name_or_path",
        str(tiny_model_dir),
        "--dataset_name",
        str(data),
        "--dataset_config",
        "sim",
        "--output_dir",
        str(out),
        "--max_steps",
        str(steps),
        "--per_device_train_batch_size",
        str(batch),
        "--logging_steps",
        "1",
        "--karma_order",
        "curriculum",
        "--karma_order_key",
        "s_pref_gap",
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, start_new_session=True
    )
    try:
        _, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate()
        pytest.fail(f"torchrun job hung; stderr tail: {stderr[-2000:]}")
    assert proc.returncode == 0, stderr[-3000:]

    ids = {r: json.loads(Path(f"{log}.{r}.ids").read_text()) for r in range(world)}
    assert ids[0] == ids[1]  # both ranks prepared the same sorted dataset
    fetches = {
        r: [json.loads(line) for line in Path(f"{log}.{r}.fetch").read_text().splitlines()][:steps]
        for r in range(world)
    }
    # accelerate shards the sequential sampler's batches round-robin: global batch k goes to rank k % world
    for r in range(world):
        assert fetches[r] == [list(range((s * world + r) * batch, (s * world + r + 1) * batch)) for s in range(steps)]
    gap_of = {row["prompt_id"]: _gap(row) for row in _rows(data)}
    expected = sorted(gap_of.values(), reverse=True)
    for r in range(world):  # each rank's share is in gap order ...
        read = [gap_of[ids[r][k]] for b in fetches[r] for k in b]
        assert read == sorted(read, reverse=True)
    # ... and step by step, the ranks together read the global order: batches 0,1 then 2,3 then 4,5
    together = [gap_of[ids[0][k]] for s in range(steps) for r in range(world) for k in fetches[r][s]]
    assert together == expected[: steps * world * batch]

    prov = json.loads((out / "karma_provenance.json").read_text())
    assert prov["world_size"] == world and prov["order"]["order"] == "curriculum"
    assert prov["order"]["first"] == pytest.approx(expected[0])
    stats = json.loads((out / "karma_batch_stats.json").read_text())
    assert stats["rows"] == steps * batch * world
