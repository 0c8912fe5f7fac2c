"""`karma report` numbers on hand-made pairs where every figure is known exactly."""

from __future__ import annotations

import json
import math
import struct
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from karma_hf.analysis.factors import FACTORS, compare, factor_arrays, factors_of, last_assistant_text
from karma_hf.analysis.quality import load_pairs
from karma_hf.analysis.quality import quality_report as build_report
from karma_hf.analysis.report import run_report
from karma_hf.errors import KarmaError


def _msg(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def _write(folder: Path, mode: str, split: str, pairs: list[dict]) -> None:
    rows = []
    for i, p in enumerate(pairs):
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"q{i}"}],
                "chosen": _msg(p["c"]),
                "rejected": _msg(p["r"]),
                "prompt_id": f"{i:064x}",
                "chosen_model": p["cm"],
                "rejected_model": p["rm"],
                "kinship": p["k"],
                "s_pref_chosen": p["sc"],
                "s_pref_rejected": p["sr"],
                "score_chosen": p["gc"],
                "score_rejected": p["gr"],
                "source": "hand",
            }
        )
    (folder / mode).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / mode / f"{split}-00000-of-00001.parquet")


# sim: 5 pairs. Ratings: agree (gap 1), disagree (gap 0.5), tie (gap 0), agree (gap 4), unrated.
SIM_TRAIN = [
    dict(c="one two three four", r="one two", cm="a", rm="b", k=0.9, sc=0.6, sr=0.5, gc=4.0, gr=3.0),
    dict(c="- a\n- b", r="x y z w v", cm="a", rm="b", k=0.8, sc=0.6, sr=0.4, gc=3.0, gr=3.5),
    dict(c="**bold** text", r="**bold** text", cm="c", rm="d", k=1.0, sc=0.5, sr=0.2, gc=2.0, gr=2.0),
]
SIM_TEST = [
    dict(
        c="```\ncode\n```\n# Title",
        r="I'm sorry, but I cannot help with that.",
        cm="a",
        rm="b",
        k=0.5,
        sc=0.9,
        sr=0.5,
        gc=5.0,
        gr=1.0,
    ),
    dict(c="same", r="same", cm="c", rm="d", k=0.8, sc=0.5, sr=0.25, gc=3.0, gr=None),
]
# rlaif: 2 pairs, gaps 4 and 2, one with an unscored model (kinship / S_pref missing)
RLAIF_TRAIN = [
    dict(c="long answer with many words here", r="short", cm="a", rm="d", k=0.3, sc=0.6, sr=0.2, gc=5.0, gr=1.0),
    dict(c="another fairly long answer", r="tiny", cm="e", rm="a", k=None, sc=None, sr=0.6, gc=4.0, gr=2.0),
]


@pytest.fixture()
def hand_dataset(tmp_path: Path) -> Path:
    ds = tmp_path / "ds"
    _write(ds, "sim", "train", SIM_TRAIN)
    _write(ds, "sim", "test", SIM_TEST)
    _write(ds, "rlaif", "train", RLAIF_TRAIN)
    (ds / "rlaif" / "train_sft-00000-of-00001.parquet").write_bytes(b"ignored: not a pair split")
    return ds


def test_factor_counts_exact():
    text = (
        "Sure! I'm not sure, but it might work.\n\n## Setup\nTitle\n=====\n\n- **one** item\n2. two __b__\n"
        "```python\n# not a header\n- not a list\n```\n"
        "I'm sorry, but I cannot help with that. As an AI language model I may fail.\n"
    )
    f = factors_of(text)
    assert f["list_items"] == 2  # "- **one** item", "2. two"; not the "- not a list" inside the code block
    assert f["headers"] == 2  # "## Setup" and the setext "Title"; not "# not a header" in code
    assert f["code_blocks"] == 1
    assert f["bold"] == 2
    assert f["refusals"] == 3  # "I'm sorry, but", "I cannot help", "As an AI language model"
    assert f["hedges"] == 3  # "I'm not sure", "might", "may"
    assert f["words"] == len(text.split())
    assert factors_of("") == {k: 0 for k in FACTORS} == factors_of(None)
    assert factors_of("```\nunclosed")["code_blocks"] == 1
    assert factors_of("I'm sorry to hear that.")["refusals"] == 0


def test_compare_shares_sum_to_one():
    c = factor_arrays(["a b c", "a", "- x\n- y"])
    r = factor_arrays(["a", "a", "z"])
    out = compare(c, r)
    assert out["words"]["share_chosen_more"] == pytest.approx(2 / 3)
    assert out["words"]["share_equal"] == pytest.approx(1 / 3)
    assert out["list_items"]["mean_diff"] == pytest.approx(2 / 3)
    for f in FACTORS:
        s = out[f]
        assert s["share_chosen_more"] + s["share_equal"] + s["share_chosen_less"] == pytest.approx(1.0)
    empty = compare(factor_arrays([]), factor_arrays([]))
    assert empty["words"]["n"] == 0 and math.isnan(empty["words"]["share_chosen_more"])


def test_last_assistant_text():
    assert last_assistant_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]) == "a"
    assert last_assistant_text("plain") == "plain"
    assert last_assistant_text(None) == ""


def test_report_numbers_on_hand_made_pairs(hand_dataset: Path, tmp_path: Path):
    res = run_report(hand_dataset, out=tmp_path / "rep")
    rep = json.loads(res.json.read_text())
    assert list(rep["modes"]) == ["sim", "rlaif"] and rep["baseline"] == "rlaif"
    sim, rlaif = rep["modes"]["sim"], rep["modes"]["rlaif"]

    assert sim["pairs"] == 5 and sim["rated_pairs"] == 4 and sim["splits"] == {"train": 3, "test": 2}
    assert sim["rating_gap"]["mean"] == pytest.approx((1 + 0.5 + 0 + 4) / 4)
    assert sim["rating_gap"]["median"] == pytest.approx(0.75)
    assert sim["rating_gap"]["share_at_least_1"] == pytest.approx(0.5)
    assert sim["rating_gap"]["share_at_least_2"] == pytest.approx(0.25)
    assert sum(sim["rating_gap"]["histogram"]["counts"]) == 4
    assert sim["agreement"] == {
        "agree": 2,
        "tie": 1,
        "disagree": 1,
        "share_agree": 0.5,
        "share_tie": 0.25,
        "share_disagree": 0.25,
    }
    assert sim["kinship"]["mean"] == pytest.approx((0.9 + 0.8 + 1.0 + 0.5 + 0.8) / 5)
    assert sim["kinship"]["min"] == pytest.approx(0.5) and sim["kinship"]["missing"] == 0
    assert sim["s_pref_gap"]["mean"] == pytest.approx((0.1 + 0.2 + 0.3 + 0.4 + 0.25) / 5)

    f = sim["factors"]
    # words: chosen more in pair 1 only; equal in pairs 3 and 5; less in pairs 2 and 4
    assert (
        f["words"]["share_chosen_more"],
        f["words"]["share_equal"],
        f["words"]["share_chosen_less"],
    ) == pytest.approx((0.2, 0.4, 0.4))
    assert f["list_items"]["share_chosen_more"] == pytest.approx(0.2) and f["list_items"][
        "mean_diff"
    ] == pytest.approx(0.4)
    assert f["code_blocks"]["share_chosen_more"] == pytest.approx(0.2)
    assert f["headers"]["share_chosen_more"] == pytest.approx(0.2)
    assert f["bold"]["share_equal"] == pytest.approx(1.0)
    assert f["refusals"]["share_chosen_less"] == pytest.approx(0.2) and f["refusals"]["share_chosen_more"] == 0

    assert sim["model_pairs"]["distinct"] == 2
    assert sim["model_pairs"]["top"][0] == {"chosen": "a", "rejected": "b", "count": 3, "share": 0.6}

    assert rlaif["pairs"] == 2 and rlaif["rating_gap"]["mean"] == pytest.approx(3.0)
    assert rlaif["agreement"]["share_agree"] == 1.0
    assert rlaif["kinship"]["missing"] == 1 and rlaif["kinship"]["mean"] == pytest.approx(0.3)
    assert rlaif["s_pref_gap"]["missing"] == 1 and rlaif["s_pref_gap"]["mean"] == pytest.approx(0.4)

    cmp_ = rep["comparison_with_baseline"]["sim"]
    assert cmp_["smaller_gap_than_baseline"] is True
    assert cmp_["gap_ratio"] == pytest.approx(1.375 / 3.0)


def test_report_files(hand_dataset: Path, tmp_path: Path):
    res = run_report(hand_dataset, out=tmp_path / "rep")
    md = res.markdown.read_text()
    assert [p.name for p in res.figures] == [
        "rating_gap.png",
        "agreement.png",
        "kinship.png",
        "factors.png",
        "model_pairs.png",
    ]
    for p in res.figures:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        w, h = struct.unpack(">II", data[16:24])
        assert w > 400 and h > 200
        assert f"](figures/{p.name})" in md  # embedded in the Markdown
    assert "| mean \\|rating gap\\| | 1.38 | 3.00 |" in md
    # deterministic: a second run writes identical bytes
    res2 = run_report(hand_dataset, out=tmp_path / "rep2")
    assert res2.json.read_bytes() == res.json.read_bytes()
    assert res2.markdown.read_bytes() == res.markdown.read_bytes()
    for a, b in zip(res.figures, res2.figures, strict=False):
        assert a.read_bytes() == b.read_bytes()


def test_modes_selection_and_errors(hand_dataset: Path, tmp_path: Path):
    pairs = load_pairs(hand_dataset, ["sim"])
    assert list(pairs) == ["sim", "rlaif"]  # baseline added
    assert list(load_pairs(hand_dataset, ["sim"], baseline=None)) == ["sim"]
    rep = build_report(load_pairs(hand_dataset, ["sim"], baseline=None))
    assert rep["baseline"] is None and rep["comparison_with_baseline"] == {}
    with pytest.raises(KarmaError, match="mode.*score.*not found.*available: sim, rlaif"):
        load_pairs(hand_dataset, ["score"])
    with pytest.raises(KarmaError, match="no such folder"):
        load_pairs(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(KarmaError, match="no mode folders"):
        load_pairs(tmp_path / "empty")
    bad = tmp_path / "bad"
    (bad / "sim").mkdir(parents=True)
    pq.write_table(pa.table({"chosen": ["x"]}), bad / "sim" / "train-00000-of-00001.parquet")
    with pytest.raises(KarmaError, match="missing column.*score_chosen"):
        load_pairs(bad)


def test_cli_report(hand_dataset: Path, tmp_path: Path, capsys):
    from karma_hf.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["report", str(hand_dataset), "--modes", "sim", "--out", str(tmp_path / "cli")])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "mean |rating gap|" in out and "rlaif*" in out and "rlaif* = baseline" in out
    assert (tmp_path / "cli" / "report.md").exists() and (tmp_path / "cli" / "report.json").exists()
    with pytest.raises(SystemExit) as exc:
        main(["report", str(hand_dataset), "--modes", "nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope" in err and "Traceback" not in err


@pytest.mark.slow
def test_report_on_a_hub_dataset(tmp_path: Path, hub_server):
    """`karma report USER/NAME` loads every config from the (loopback) Hub with `datasets`."""
    import os
    import subprocess

    folder = tmp_path / "hub-ds"
    _write(folder, "sim", "train", SIM_TRAIN)
    _write(folder, "sim", "test", SIM_TEST)
    _write(folder, "rlaif", "train", RLAIF_TRAIN)
    (folder / "README.md").write_text(
        "---\nconfigs:\n"
        "- config_name: sim\n  data_files:\n  - split: train\n    path: sim/train-00000-of-00001.parquet\n"
        "  - split: test\n    path: sim/test-00000-of-00001.parquet\n"
        "- config_name: rlaif\n  data_files:\n  - split: train\n    path: rlaif/train-00000-of-00001.parquet\n"
        "---\n# hand-made pairs\n"
    )
    hub_server.hub.seed_folder("testuser/report-hand", folder)
    env = {**os.environ, **hub_server.env(tmp_path / "home")}
    res = subprocess.run(
        [sys.executable, "-m", "karma_hf.cli", "report", "testuser/report-hand", "--out", str(tmp_path / "rep")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["dataset"] == "testuser/report-hand" and list(rep["modes"]) == ["sim", "rlaif"]
    assert rep["modes"]["sim"]["splits"] == {"train": 3, "test": 2}
    assert rep["modes"]["sim"]["rating_gap"]["mean"] == pytest.approx(1.375)
    assert rep["modes"]["rlaif"]["rating_gap"]["mean"] == pytest.approx(3.0)
