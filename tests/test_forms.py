"""`karma build --form best|all|ranked|unpaired` on the quickstart sample (300 UltraFeedback-schema rows).

Every expectation is recomputed here from the sample's raw rows and the paper's score table with
plain numpy (min-max normalisation, S_pref = mean, cosine kinship, Eq. 3 labels), independent of
``karma_hf.kinship`` and the builder.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest

from karma_hf.cli import main
from karma_hf.layout import karma_modes
from karma_hf.pairs.builder import build
from karma_hf.quickstart import sample_path
from karma_hf.scores import load_scores

TAU = 0.1
TEST_PROMPTS = 30
FORMS = ("best", "all", "ranked", "unpaired")
EXCLUDED = {"ultralm-65b"}  # §3.1 of the paper: no mode uses its completions


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("forms")
    build(
        sample_path(),
        scores="ultrafeedback-paper",
        tau=TAU,
        test_size=TEST_PROMPTS,
        forms=FORMS,
        output=root / "set",
        cache_dir=root / "cache",
    )
    return root / "set"


@pytest.fixture(scope="module")
def reference():
    """Normalised scores, S_pref and cosines of the paper's table, by model name (plain numpy)."""
    table = load_scores("ultrafeedback-paper")
    values = np.asarray(table.values, dtype=float)
    lo, hi = values.min(axis=0), values.max(axis=0)
    norm = (values - lo) / (hi - lo)
    s_pref = norm.mean(axis=1)
    unit = norm / np.linalg.norm(norm, axis=1, keepdims=True)
    cos = unit @ unit.T
    models = list(table.models)
    return {
        "s_pref": dict(zip(models, s_pref, strict=True)),
        "cos": {(a, b): cos[i, j] for i, a in enumerate(models) for j, b in enumerate(models)},
    }


@pytest.fixture(scope="module")
def candidates(reference) -> dict[str, list[set[str]]]:
    """prompt_id -> per source row: its scored, non-empty, non-excluded models."""
    import pyarrow.parquet as pq

    out: dict[str, list[set[str]]] = defaultdict(list)
    for row in pq.read_table(sample_path()).to_pylist():
        pid = hashlib.sha256(row["instruction"].encode("utf-8")).hexdigest()
        models = {
            c["model"]
            for c in row["completions"]
            if c["model"] in reference["s_pref"] and c["model"] not in EXCLUDED and (c["response"] or "").strip()
        }
        out[pid].append(models)
    return out


def _rows(built: Path, config: str) -> list[dict]:
    import pyarrow.parquet as pq

    rows = []
    for split in ("train", "test"):
        path = built / config / f"{split}-00000-of-00001.parquet"
        if path.exists():
            rows += [{**r, "_split": split} for r in pq.read_table(path).to_pylist()]
    return rows


def _kin_pairs(models: set[str], ref) -> list[tuple[str, str]]:
    """Every kin pair (cosine >= tau, S_pref not tied), chosen = higher S_pref (Eq. 3)."""
    out = []
    for a, b in combinations(sorted(models), 2):
        sa, sb = ref["s_pref"][a], ref["s_pref"][b]
        if ref["cos"][a, b] >= TAU and sa != sb:
            out.append((a, b) if sa > sb else (b, a))
    return out


def test_one_config_per_mode_and_form_in_card_and_report(built):
    from karma_hf.karma_set import KarmaSet, scan_folder

    report = json.loads((built / "build_report.json").read_text())
    assert report["forms"] == list(FORMS)
    expected = {*report["modes"]}
    expected |= {f"{m}-{f}" for f in ("all", "ranked") for m in karma_modes()}
    expected |= {f"{m}-unpaired" for m in report["modes"]}
    assert set(report["configs"]) == expected  # rlaif has no all/ranked form (no kinship order)
    card_set = KarmaSet(built)
    assert set(card_set.configs()) == expected
    assert card_set.files("sim")["train_sft"] == card_set.files("sim")["train"]  # one file, two splits
    assert not (built / "sim" / "train_sft-00000-of-00001.parquet").exists()
    assert set(scan_folder(built).configs) == expected  # a push accepts the folder
    for name, info in report["configs"].items():
        assert info["rows"] == len(_rows(built, name)), name


def test_all_form_is_every_kin_pair_correctly_labelled(built, reference, candidates):
    for mode in karma_modes():
        best = _rows(built, mode)
        rows = _rows(built, f"{mode}-all")
        assert len(rows) >= len(best)
        got: dict[str, Counter] = defaultdict(Counter)
        for r in rows:
            c, j = r["chosen_model"], r["rejected_model"]
            assert reference["cos"][c, j] >= TAU and reference["s_pref"][c] > reference["s_pref"][j]
            assert r["kinship"] == pytest.approx(reference["cos"][c, j])
            assert r["s_pref_chosen"] == pytest.approx(reference["s_pref"][c])
            assert r["messages"][-1] == r["chosen"][0]
            got[r["prompt_id"]][c, j] += 1
        expected = {
            pid: Counter(p for models in per_row for p in _kin_pairs(models, reference))
            for pid, per_row in candidates.items()
        }
        expected = {pid: pairs for pid, pairs in expected.items() if pairs}
        assert got == expected, mode
        # pair_rank 1 is the mode's own pick (the best form), rank counts up per prompt
        # (a repeated instruction is one prompt_id with a pick per source row: compare multisets)
        firsts: dict[str, Counter] = defaultdict(Counter)
        for r in rows:
            if r["pair_rank"] == 1:
                firsts[r["prompt_id"]][r["chosen_model"], r["rejected_model"]] += 1
        picks: dict[str, Counter] = defaultdict(Counter)
        for r in best:
            picks[r["prompt_id"]][r["chosen_model"], r["rejected_model"]] += 1
        assert firsts == picks, mode
    # each source row's pairs are consecutive (rows in source order), ranked 1, 2, ... within it
    groups: list[list[dict]] = []
    for r in _rows(built, "sim-all"):
        if r["pair_rank"] == 1:
            groups.append([])
        assert groups and groups[-1] == [] or groups[-1][-1]["prompt_id"] == r["prompt_id"]
        groups[-1].append(r)
    assert len(groups) == len(_rows(built, "sim"))
    for group in groups:
        assert [r["pair_rank"] for r in group] == list(range(1, len(group) + 1))
        cos = [r["kinship"] for r in group]
        assert cos == sorted(cos, reverse=True)  # K_sim: most similar first


def test_max_pairs_per_prompt(tmp_path):
    build(
        sample_path(),
        scores="ultrafeedback-paper",
        modes="score",
        forms="all",
        max_pairs_per_prompt=2,
        test_size=TEST_PROMPTS,
        output=tmp_path / "set",
    )
    rows = _rows(tmp_path / "set", "score-all")
    # the cap is per source row (a repeated instruction's rows each have their own completions)
    starts = [i for i, r in enumerate(rows) if r["pair_rank"] == 1]
    sizes = [b - a for a, b in zip(starts, [*starts[1:], len(rows)], strict=True)]
    assert max(sizes) == 2 and {r["pair_rank"] for r in rows} == {1, 2}
    assert max(Counter(r["prompt_id"] for r in rows).values()) == 4  # the sample's one repeated instruction
    assert not (tmp_path / "set" / "score").exists()  # only the forms asked for


def test_ranked_rows_are_ordered_by_s_pref(built, reference, candidates):
    rows = _rows(built, "sim-ranked")
    best = {r["prompt_id"] for r in _rows(built, "sim")}
    assert {r["prompt_id"] for r in rows} == best  # the prompts the mode keeps
    for r in rows:
        models = r["models"]
        assert len(models) == len(r["completions"]) == len(r["s_pref"]) == len(r["scores"]) >= 2
        assert set(models) in candidates[r["prompt_id"]]
        assert r["s_pref"] == sorted(r["s_pref"], reverse=True)
        assert r["s_pref"] == pytest.approx([reference["s_pref"][m] for m in models])
        assert r["kinship_to_best"] == pytest.approx([reference["cos"][models[0], m] for m in models])
        assert all(c[0]["role"] == "assistant" for c in r["completions"])


def test_unpaired_is_trl_unpair_of_the_pairs(built):
    from datasets import Dataset
    from trl import unpair_preference_dataset

    for mode in ("sim", "rlaif"):
        pairs = Dataset.from_list([{k: v for k, v in r.items() if k != "_split"} for r in _rows(built, mode)])
        trl_rows = unpair_preference_dataset(pairs.remove_columns(["messages"])).to_list()
        ours = [{k: v for k, v in r.items() if k != "_split"} for r in _rows(built, f"{mode}-unpaired")]

        def key(r: dict) -> str:
            return json.dumps(r, sort_keys=True)

        assert sorted(map(key, ours)) == sorted(map(key, trl_rows))
        assert [r["label"] for r in ours[:4]] == [True, False, True, False]  # each pair's rows side by side


def test_test_split_is_identical_across_forms_and_modes(built):
    report = json.loads((built / "build_report.json").read_text())
    held: set[str] | None = None
    for name in report["configs"]:
        rows = _rows(built, name)
        test_ids = {r["prompt_id"] for r in rows if r["_split"] == "test"}
        train_ids = {r["prompt_id"] for r in rows if r["_split"] == "train"}
        assert not test_ids & train_ids, name
        # every config's test prompts come from the one held-out set of TEST_PROMPTS prompts
        held = test_ids if held is None else held
        assert len(test_ids) <= TEST_PROMPTS
    all_test = set().union(
        *({r["prompt_id"] for r in _rows(built, n) if r["_split"] == "test"} for n in report["configs"])
    )
    assert len(all_test) <= TEST_PROMPTS == report["test_prompts"]
    for name in report["configs"]:  # a prompt held out anywhere is held out everywhere
        assert not {r["prompt_id"] for r in _rows(built, name) if r["_split"] == "train"} & all_test


def test_form_rows_are_byte_stable(built, tmp_path):
    build(
        sample_path(),
        scores="ultrafeedback-paper",
        tau=TAU,
        test_size=TEST_PROMPTS,
        forms=FORMS,
        output=tmp_path / "again",
    )
    for path in sorted(built.rglob("*.parquet")):
        again = tmp_path / "again" / path.relative_to(built)
        assert again.read_bytes() == path.read_bytes(), path.relative_to(built)


def test_kto_trains_on_the_unpaired_config(tiny_model_dir, built, tmp_path):
    out = tmp_path / "kto"
    argv = [
        "train",
        "kto",
        "--config",
        str(Path(__file__).resolve().parents[1] / "recipes" / "tiny" / "kto.yaml"),
        "--model_name_or_path",
        str(tiny_model_dir),
        "--dataset_name",
        str(built),
        "--dataset_config",
        "sim-unpaired",
        "--output_dir",
        str(out),
        "--max_steps",
        "2",
    ]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    prov = json.loads((out / "karma_provenance.json").read_text())
    assert prov["stage"] == "kto" and prov["dataset"]["config"] == "sim-unpaired"
    assert prov["dataset"]["num_train_rows"] == len(
        [r for r in _rows(built, "sim-unpaired") if r["_split"] == "train"]
    )
    stats = json.loads((out / "karma_batch_stats.json").read_text())
    assert stats["disabled"] is None  # the pair columns came along


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--form", "best,pairs"], "unknown form(s) 'pairs'"),
        (["--max-pairs-per-prompt", "2"], "--max-pairs-per-prompt applies to --form all only"),
        (["--modes", "rlaif", "--form", "all"], "needs a KARMA mode"),
    ],
)
def test_cli_form_options(extra, message, tmp_path, capsys):
    argv = ["build", "--source", str(sample_path()), "--scores", "ultrafeedback-paper", *extra]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--output", str(tmp_path / "out")])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
