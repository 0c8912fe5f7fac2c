"""The embedded UltraFeedback-format sample: schema, model mix, drop reasons, size, determinism."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from karma_hf.quickstart import sample_path

REPO = Path(__file__).resolve().parent.parent
MODELS_17 = {
    "gpt-4",
    "gpt-3.5-turbo",
    "bard",
    "llama-2-7b-chat",
    "llama-2-13b-chat",
    "llama-2-70b-chat",
    "ultralm-13b",
    "ultralm-65b",
    "wizardlm-7b",
    "wizardlm-13b",
    "wizardlm-70b",
    "vicuna-33b",
    "alpaca-7b",
    "falcon-40b-instruct",
    "mpt-30b-chat",
    "starchat",
    "pythia-12b",
}
ASPECT_KEYS = {
    "helpfulness": ["Rating", "Rationale", "Rationale For Rating", "Type"],
    "honesty": ["Rating", "Rationale"],
    "instruction_following": ["Rating", "Rationale"],
    "truthfulness": ["Rating", "Rationale", "Rationale For Rating", "Type"],
}


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return pq.read_table(sample_path()).to_pylist()


def test_sample_is_shipped_and_small():
    path = sample_path()
    assert path.name == "ultrafeedback_sample.parquet" and path.parent.name == "data"
    assert path.stat().st_size < 2_000_000


def test_schema_is_ultrafeedbacks(rows):
    schema = pq.read_schema(sample_path())
    assert schema.names == ["source", "instruction", "models", "completions", "correct_answers", "incorrect_answers"]
    comp = schema.field("completions").type.value_type
    assert [f.name for f in comp] == [
        "model",
        "principle",
        "custom_system_prompt",
        "response",
        "annotations",
        "critique",
        "overall_score",
        "fine-grained_score",
    ]
    ann = comp.field("annotations").type
    for aspect, keys in ASPECT_KEYS.items():
        assert [f.name for f in ann.field(aspect).type] == keys
        assert ann.field(aspect).type.field("Rating").type == pa.string()  # ratings are strings
    assert comp.field("overall_score").type == pa.float64()
    for r in rows:
        assert r["models"] == sorted(r["models"]) == sorted(c["model"] for c in r["completions"])
        assert len(r["completions"]) <= 4
        assert isinstance(r["correct_answers"], list) and isinstance(r["incorrect_answers"], list)
        for c in r["completions"]:
            for aspect in ASPECT_KEYS:
                rating = c["annotations"][aspect]["Rating"]
                assert rating == "N/A" or rating in {"1", "2", "3", "4", "5"}
            vals = [int(a["Rating"]) for a in c["annotations"].values() if a["Rating"] != "N/A"]
            assert c["fine-grained_score"] == pytest.approx(sum(vals) / len(vals))
            assert 1.0 <= c["overall_score"] <= 10.0


def test_models_sources_and_pitfalls(rows):
    counts = Counter(c["model"] for r in rows for c in r["completions"])
    assert set(counts) == MODELS_17
    typical = sorted(counts.values())[len(counts) // 2]
    assert counts["pythia-12b"] < typical / 5 and counts["bard"] < typical * 0.7  # rare, as in UltraFeedback
    sources = Counter(r["source"] for r in rows)
    assert len(sources) >= 6 and {"sharegpt", "evol_instruct", "ultrachat", "false_qa", "flan_v2_niv2"} <= set(sources)
    assert 280 <= len(rows) <= 320
    ratings = Counter(c["annotations"]["honesty"]["Rating"] for r in rows for c in r["completions"])
    assert ratings["N/A"] > 0
    assert sum(1 for r in rows for c in r["completions"] if not c["response"].strip()) >= 3
    dup = [t for t, n in Counter(r["instruction"] for r in rows).items() if n > 1]
    assert len(dup) == 1  # exactly one duplicated instruction
    # completions are not in `models` order in at least some rows (as in the real data)
    assert any([c["model"] for c in r["completions"]] != r["models"] for r in rows)
    # truthful_qa rows carry reference answers, others the literal ["None"]
    assert all(r["correct_answers"] != ["None"] for r in rows if r["source"] == "truthful_qa")
    assert all(r["correct_answers"] == ["None"] for r in rows if r["source"] != "truthful_qa")


def test_responses_track_model_strength(rows):
    """Stronger models (paper S_pref) write longer, more structured, better-rated responses."""
    import numpy as np

    s_pref = {
        "gpt-4": 0.99,
        "bard": 0.86,
        "gpt-3.5-turbo": 0.77,
        "wizardlm-70b": 0.58,
        "llama-2-70b-chat": 0.58,
        "vicuna-33b": 0.57,
        "falcon-40b-instruct": 0.47,
        "llama-2-13b-chat": 0.45,
        "wizardlm-13b": 0.45,
        "llama-2-7b-chat": 0.41,
        "ultralm-13b": 0.40,
        "mpt-30b-chat": 0.38,
        "wizardlm-7b": 0.34,
        "alpaca-7b": 0.16,
        "pythia-12b": 0.07,
        "starchat": 0.05,
    }
    by_model: dict[str, list] = {}
    for r in rows:
        for c in r["completions"]:
            if c["model"] in s_pref and c["response"].strip():
                by_model.setdefault(c["model"], []).append((c["fine-grained_score"], len(c["response"].split())))
    models = sorted(by_model)
    strength = [s_pref[m] for m in models]
    rating = [np.mean([x[0] for x in by_model[m]]) for m in models]
    words = [np.mean([x[1] for x in by_model[m]]) for m in models]
    assert np.corrcoef(strength, rating)[0, 1] > 0.9
    assert np.corrcoef(strength, words)[0, 1] > 0.6
    # ...but per instance it is noisy: a weaker model sometimes out-rates a stronger one
    upsets = sum(
        1
        for r in rows
        for a in r["completions"]
        for b in r["completions"]
        if a["model"] in s_pref
        and b["model"] in s_pref
        and s_pref[a["model"]] > s_pref[b["model"]]
        and a["fine-grained_score"] < b["fine-grained_score"]
        and a["response"]
        and b["response"]
    )
    assert upsets > 50


def test_every_drop_reason_of_a_default_build_occurs(tmp_path: Path):
    from karma_hf.pairs.builder import build

    res = build(sample_path(), test_size=30, output=tmp_path / "ds")
    modes = res.report["modes"]
    for mode in ("score", "sim", "score_sim"):
        d = modes[mode]["dropped"]
        assert d["fewer_than_two_scored"] >= 1 and d["empty_response"] >= 1 and d["no_kin_above_tau"] >= 1
        assert d["unknown_model"] == 0 and d["malformed"] == 0
    d = modes["rlaif"]["dropped"]  # default recipe h4: ties kept, the truthful_qa row dropped
    assert d["excluded_source"] >= 1 and d["fewer_than_two_scored"] >= 1 and d["empty_response"] >= 1
    assert d["tie"] == 0 and d["unknown_model"] == 0 and d["malformed"] == 0
    d = build(
        sample_path(), modes=["rlaif"], rlaif_recipe="argilla", test_size=30, output=tmp_path / "argilla"
    ).report["modes"]["rlaif"]["dropped"]
    assert d["tie"] >= 1 and d["excluded_source"] == 0
    for mode, m in modes.items():
        assert m["kept"] + sum(m["dropped"].values()) == m["rows"] == 300, mode


def test_generator_is_deterministic_and_matches_the_shipped_file(tmp_path: Path):
    outs = []
    for name in ("a.parquet", "b.parquet"):
        res = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "make_sample.py"), "--out", str(tmp_path / name)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr
        assert "sim" in res.stdout and "rlaif" in res.stdout
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] == sample_path().read_bytes(), "shipped sample is stale: run python scripts/make_sample.py"
