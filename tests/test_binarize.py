"""The dataset builder on hand-made rows in the real openbmb/UltraFeedback schema.

tests/fixtures/ultrafeedback_mini.jsonl (16 rows) — what each row is for:

 0  4 models, completions NOT in `models` order; the three KARMA modes pick three different pairs;
    overall_score ranks the models differently from the aspect mean
 1  "N/A" and "0" ratings            2  starchat + pythia-12b (cosine 0.02 < tau) + ultralm-65b (unscored, excluded)
 3  two empty responses ("" and whitespace)   4  gpt-4 + ultralm-65b (one scored model)
 5  a single completion              6  three completions with equal ratings (argilla tie; h4 keeps it)
 7  unknown model + gpt-4            8  unknown model + gpt-4 + bard
 9  Rating "seven" (malformed)      10  no instruction (malformed)   11  a completion without model
12  the instruction of row 0 again  13  a null response, source truthful_qa (h4 drops it)
14  bard (rated 2) vs gpt-3.5-turbo (rated 5)
15  no completions at all
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from karma_hf.errors import KarmaError
from karma_hf.layout import DROP_REASONS, SPLITS, karma_modes, modes, shard_name, shard_split
from karma_hf.pairs.builder import build
from karma_hf.sources.loading import load_source
from karma_hf.sources.ultrafeedback import MalformedRow, parse_batch, parse_rating, parse_row, prompt_id

FIXTURE = Path(__file__).parent / "fixtures" / "ultrafeedback_mini.jsonl"
RAW = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]

K, F2, EMPTY, NOKIN, TIE, UNK, BAD, SRC = (
    "kept",
    "fewer_than_two_scored",
    "empty_response",
    "no_kin_above_tau",
    "tie",
    "unknown_model",
    "malformed",
    "excluded_source",
)
EXPECTED_REASONS = {
    "karma": [K, K, NOKIN, EMPTY, F2, F2, K, UNK, K, BAD, BAD, BAD, K, K, K, F2],
    # default recipe h4: ties kept (row 6), ultralm-65b excluded (rows 2, 4), truthful_qa dropped (row 13)
    "rlaif": [K, K, K, EMPTY, F2, F2, K, UNK, K, BAD, BAD, BAD, K, SRC, K, F2],
}
# (row -> (chosen_model, rejected_model)) per KARMA mode
EXPECTED_PAIRS = {
    "score": {
        0: ("gpt-4", "llama-2-70b-chat"),
        1: ("bard", "gpt-3.5-turbo"),
        6: ("wizardlm-70b", "wizardlm-13b"),
        8: ("gpt-4", "bard"),
        12: ("gpt-4", "bard"),
        13: ("bard", "gpt-3.5-turbo"),
        14: ("bard", "gpt-3.5-turbo"),
    },
    "sim": {
        0: ("llama-2-70b-chat", "llama-2-7b-chat"),
        1: ("mpt-30b-chat", "alpaca-7b"),
        6: ("wizardlm-13b", "llama-2-13b-chat"),
        8: ("gpt-4", "bard"),
        12: ("gpt-4", "bard"),
        13: ("bard", "gpt-3.5-turbo"),
        14: ("bard", "gpt-3.5-turbo"),
    },
    "score_sim": {
        0: ("gpt-4", "vicuna-33b"),
        1: ("bard", "gpt-3.5-turbo"),
        6: ("wizardlm-70b", "wizardlm-13b"),
        8: ("gpt-4", "bard"),
        12: ("gpt-4", "bard"),
        13: ("bard", "gpt-3.5-turbo"),
        14: ("bard", "gpt-3.5-turbo"),
    },
}


def _response(row: int, model: str) -> str:
    for comp in RAW[row]["completions"]:
        if comp.get("model") == model:
            return comp["response"]
    raise AssertionError(f"row {row} has no {model}")


def _rows_by_index(result, mode: str) -> dict[int, dict]:
    """Kept output rows keyed by source row index (matched on prompt + source label)."""
    key_to_row = {(r.get("instruction"), r["source"]): i for i, r in enumerate(RAW)}
    out = {}
    for split in ("train", "test"):
        if split not in result.datasets[mode]:  # empty splits are not written
            continue
        for rec in result.datasets[mode][split]:
            i = key_to_row[(rec["prompt"][0]["content"], rec["source"])]
            assert i not in out
            out[i] = {**rec, "split": split}
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hf-cache")


@pytest.fixture(scope="module")
def built(tmp_path_factory, cache):
    out = tmp_path_factory.mktemp("build") / "karma-mini"
    return build(
        FIXTURE, scores="ultrafeedback-paper", test_size=3, output=out, cache_dir=cache, ignore_unknown_models=True
    )


# ----------------------------------------------------------------------------- parsing
def test_rating_strings():
    assert parse_rating("N/A") is None and parse_rating(None) is None
    assert parse_rating("0") == 0.0 and parse_rating("5") == 5.0 and parse_rating(4) == 4.0
    for bad in ("seven", "6", "4.5", "-1", "", [4]):
        with pytest.raises(ValueError):
            parse_rating(bad)


def test_parse_row_reference():
    row0 = parse_row(RAW[0])
    assert RAW[0]["models"] != [c.model for c in row0.completions]  # order differs from `models`
    ratings = {c.model: c.rating for c in row0.completions}
    assert ratings == {"vicuna-33b": 4.0, "gpt-4": 5.0, "llama-2-7b-chat": 2.5, "llama-2-70b-chat": 4.0}  # N/A ignored
    assert {c.model: c.rating for c in parse_row(RAW[1]).completions}["mpt-30b-chat"] == 0.75  # "0" counts as 0
    assert {c.model: c.rating for c in parse_row(RAW[0], "overall_score").completions}["llama-2-7b-chat"] == 9.0
    assert row0.prompt_id == hashlib.sha256(RAW[0]["instruction"].encode()).hexdigest()
    # H4's published prompt_id for this prompt (notes/ultrafeedback.md)
    assert (
        prompt_id("Which books are still banned in Canada?")
        == "aeccf551d9ba42fdf5f2044de43b8ce6e360fb523ace428317b81d804594e090"
    )
    with pytest.raises(MalformedRow, match=r"completions\[1\]\.annotations\.honesty\.Rating = 'seven'"):
        parse_row(RAW[9])
    with pytest.raises(MalformedRow, match="^instruction is missing"):
        parse_row(RAW[10])
    with pytest.raises(MalformedRow, match="^instruction is empty"):
        parse_row({**RAW[0], "instruction": " \n"})
    with pytest.raises(MalformedRow, match=r"completions\[2\]\.model is missing"):
        parse_row(RAW[11])
    dup = json.loads(json.dumps(RAW[14]))
    dup["completions"][1]["model"] = "bard"
    with pytest.raises(MalformedRow, match=r"completions\[1\]\.model = 'bard' repeats completions\[0\]"):
        parse_row(dup)


@pytest.mark.parametrize("rating", ["aspects", "overall_score"])
def test_vectorised_parse_matches_reference(cache, rating):
    import datasets

    ds = load_source(FIXTURE, cache_dir=cache)
    blank = {**ds[0], "instruction": "   "}  # an empty instruction is malformed too
    ds = datasets.concatenate_datasets([ds, datasets.Dataset.from_list([blank], features=ds.features)])
    parsed = parse_batch(ds.data.table, rating).to_pylist()
    assert parsed[-1]["malformed"] == "instruction is empty"
    for i, (got, raw) in enumerate(zip(parsed, ds, strict=False)):
        try:
            ref = parse_row(raw, rating)
        except MalformedRow as exc:
            assert got["malformed"] == str(exc), i
            assert got["prompt_id"] is None
            continue
        assert got["malformed"] is None and got["prompt_id"] == ref.prompt_id
        assert got["models"] == [c.model for c in ref.completions], i
        assert got["empty"] == [c.empty for c in ref.completions], i
        assert got["rating"] == [c.rating for c in ref.completions], i


@pytest.mark.parametrize("rating", ["aspects", "overall_score"])
def test_ratings_alone_match_parse_batch(cache, rating):
    """``ratings`` (the h4 recipe's overall_score without a second full parse) holds exactly what
    ``parse_batch``'s rating column holds, malformed rows included (NaN where no rating)."""
    import pyarrow.compute as pc

    from karma_hf.sources.registry import completion_ratings, get_source

    table = load_source(FIXTURE, cache_dir=cache).data.table
    source = get_source("ultrafeedback")
    for batch in table.to_batches(max_chunksize=7):
        full = pc.list_flatten(parse_batch(batch, rating).column("rating")).to_numpy(zero_copy_only=False)
        alone = completion_ratings(source, batch, rating)
        assert alone.dtype == np.float64
        np.testing.assert_array_equal(alone, full.astype(np.float64))
    generic = dataclasses.replace(source, ratings=None)  # the fallback: parse_batch's column
    batch = table.to_batches()[0]
    np.testing.assert_array_equal(
        completion_ratings(generic, batch, rating), completion_ratings(source, batch, rating)
    )


# ----------------------------------------------------------------------------- pairs and drops
def test_every_row_accounted_for(built):
    for mode in modes():
        info = built.report["modes"][mode]
        assert info["rows"] == len(RAW)
        assert info["kept"] + sum(info["dropped"].values()) == len(RAW)
        assert set(info["dropped"]) == set(DROP_REASONS)
        expected = EXPECTED_REASONS["rlaif" if mode == "rlaif" else "karma"]
        assert built.row_reasons(mode) == expected, mode
        assert info["splits"]["train"] + info["splits"]["test"] == info["kept"]
        assert info["splits"]["train_sft"] == info["splits"]["train"]
    assert built.report["skipped_completions"] == {
        "unknown_model": {"mystery-7b": 2},
        "excluded_model": {"ultralm-65b": 2},
    }
    assert [m["row"] for m in built.report["malformed_examples"]] == [9, 10, 11]


@pytest.mark.parametrize("mode", karma_modes())
def test_karma_pairs_and_labels(built, mode):
    kin = built.kinship
    rows = _rows_by_index(built, mode)
    assert {i: (r["chosen_model"], r["rejected_model"]) for i, r in rows.items()} == EXPECTED_PAIRS[mode]
    for i, rec in rows.items():
        chosen, rejected = rec["chosen_model"], rec["rejected_model"]
        assert kin.s_pref_of(chosen) > kin.s_pref_of(rejected)  # Eq. 3: higher S_pref is chosen
        assert rec["kinship"] == pytest.approx(kin.kinship_of(chosen, rejected))
        assert rec["kinship"] >= kin.tau
        assert rec["s_pref_chosen"] == pytest.approx(kin.s_pref_of(chosen))
        # responses are matched by completion["model"], not by position
        assert rec["chosen"] == [{"role": "assistant", "content": _response(i, chosen)}]
        assert rec["rejected"] == [{"role": "assistant", "content": _response(i, rejected)}]
        assert rec["prompt"] == [{"role": "user", "content": RAW[i]["instruction"]}]
        assert rec["messages"] == rec["prompt"] + rec["chosen"]
        assert rec["prompt_id"] == prompt_id(RAW[i]["instruction"])
    # the label ignores per-instance ratings: bard (rated 2) beats gpt-3.5-turbo (rated 5)
    assert (rows[14]["score_chosen"], rows[14]["score_rejected"]) == (2.0, 5.0)


def test_rlaif_argilla_with_ultralm_65b(tmp_path, cache):
    built = build(
        FIXTURE,
        modes=["rlaif"],
        rlaif_recipe="argilla",
        include_ultralm_65b=True,
        test_size=3,
        output=tmp_path / "argilla",
        cache_dir=cache,
        ignore_unknown_models=True,
    )
    assert built.row_reasons("rlaif") == [K, K, K, EMPTY, K, F2, TIE, UNK, K, BAD, BAD, BAD, K, K, K, F2]
    assert built.report["skipped_completions"]["excluded_model"] == {}
    assert "--rlaif-recipe argilla" in built.report["command"] and "--include-ultralm-65b" in built.report["command"]
    rows = _rows_by_index(built, "rlaif")
    for i, rec in rows.items():
        assert rec["score_chosen"] > rec["score_rejected"], i  # strictly lower-rated rejected, no ties
    assert rows[0]["chosen_model"] == "gpt-4"
    assert rows[0]["rejected_model"] in {"vicuna-33b", "llama-2-7b-chat", "llama-2-70b-chat"}
    assert rows[14]["chosen_model"] == "gpt-3.5-turbo"  # rating decides here, not S_pref
    # known-unscored models take part; their S_pref and kinship are null
    assert (rows[4]["chosen_model"], rows[4]["rejected_model"]) == ("gpt-4", "ultralm-65b")
    assert rows[4]["kinship"] is None and rows[4]["s_pref_rejected"] is None
    assert rows[2]["chosen_model"] == "ultralm-65b" and rows[2]["rejected_model"] in {"starchat", "pythia-12b"}
    assert rows[13]["chosen_model"] == "bard"  # gpt-4 has a null response here


def test_rlaif_draw_is_seeded(tmp_path, cache):
    source = load_source(FIXTURE, cache_dir=cache)
    picks = {}
    for seed in range(12):
        result = build(
            source,
            modes=["rlaif"],
            seed=seed,
            test_size=0,
            output=tmp_path / str(seed),
            ignore_unknown_models=True,
            cache_dir=cache,
        )
        rows = _rows_by_index(result, "rlaif")
        picks[seed] = rows[0]["rejected_model"]
    assert len(set(picks.values())) > 1  # the rejected side really is drawn
    again = build(
        source,
        modes=["rlaif"],
        seed=3,
        test_size=0,
        output=tmp_path / "again",
        ignore_unknown_models=True,
        cache_dir=cache,
    )
    assert _rows_by_index(again, "rlaif")[0]["rejected_model"] == picks[3]


def test_overall_score_option(tmp_path, cache):
    result = build(
        FIXTURE,
        modes=["rlaif", "sim"],
        rating="overall_score",
        test_size=0,
        output=tmp_path / "o",
        ignore_unknown_models=True,
        cache_dir=cache,
    )
    rows = _rows_by_index(result, "rlaif")
    assert (rows[0]["chosen_model"], rows[0]["score_chosen"]) == ("llama-2-7b-chat", 9.0)
    assert result.report["rating"] == "overall_score"
    sim = _rows_by_index(result, "sim")
    assert (sim[0]["score_chosen"], sim[0]["score_rejected"]) == (5.0, 9.0)  # llama-2-70b vs llama-2-7b


def test_equal_s_pref_is_a_tie(tmp_path, cache):
    from karma_hf.scores import load_scores

    preset = load_scores("ultrafeedback-paper")
    values = {m: list(v) for m, v in zip(preset.models, preset.values.tolist(), strict=False)}
    values["gpt-3.5-turbo"] = values["bard"]  # same profile: cosine 1, equal S_pref
    csv = tmp_path / "tie.csv"
    csv.write_text(
        "model,"
        + ",".join(preset.benchmarks)
        + "\n"
        + "".join(f"{m}," + ",".join(map(str, v)) + "\n" for m, v in values.items())
    )
    result = build(
        FIXTURE,
        scores=str(csv),
        modes=karma_modes(),
        test_size=0,
        output=tmp_path / "t",
        ignore_unknown_models=True,
        cache_dir=cache,
    )
    for mode in karma_modes():
        reasons = result.row_reasons(mode)
        assert reasons[14] == TIE and reasons[13] == TIE, mode  # only bard + gpt-3.5-turbo answered
        # ultralm-65b is excluded (not "unknown", though this table does not know it): gpt-4 alone is left
        assert reasons[4] == F2


# ----------------------------------------------------------------------------- errors
def test_unknown_models_are_an_error_by_default(tmp_path, cache):
    out = tmp_path / "out"
    with pytest.raises(KarmaError, match=r"'mystery-7b' \(2 completions\).*--ignore-unknown-models"):
        build(FIXTURE, test_size=3, output=out, cache_dir=cache)
    assert not out.exists()  # nothing written


def test_strict_names_the_malformed_row(tmp_path, cache):
    with pytest.raises(
        KarmaError,
        match=r"row 9 of .* malformed: completions\[1\]\.annotations\.honesty\."
        r"Rating = 'seven'.*3 malformed",
    ):
        build(FIXTURE, test_size=3, output=tmp_path / "s", cache_dir=cache, ignore_unknown_models=True, strict=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"modes": ["sim", "best"]}, "unknown mode"),
        ({"test_size": 50}, "only 12 distinct"),
        ({"test_size": 1.5}, "fraction"),
        ({"rating": "mean"}, "--rating"),
        ({"revision": "main"}, "Hub sources only"),
    ],
)
def test_bad_arguments(tmp_path, cache, kwargs, message):
    with pytest.raises(KarmaError, match=message):
        build(
            FIXTURE, output=tmp_path / "x", cache_dir=cache, ignore_unknown_models=True, **{"test_size": 3, **kwargs}
        )


def test_missing_source_and_non_empty_output(tmp_path, built, cache):
    with pytest.raises(KarmaError, match="source path does not exist"):
        build(tmp_path / "nope.jsonl", output=tmp_path / "y")
    with pytest.raises(KarmaError, match="not empty"):
        build(FIXTURE, output=built.output, test_size=3, ignore_unknown_models=True, cache_dir=cache)


# ----------------------------------------------------------------------------- splits, layout, determinism
def test_test_split_is_shared_by_prompt(built):
    test_ids, train_ids = set(), set()
    for mode in modes():
        for split, bucket in (("test", test_ids), ("train", train_ids)):
            bucket.update(built.datasets[mode][split]["prompt_id"])
    assert test_ids and not (test_ids & train_ids)  # no prompt is tested in one mode and trained in another
    assert len(test_ids) <= 3 == built.report["test_prompts"]
    q0 = prompt_id(RAW[0]["instruction"])  # rows 0 and 12 share it: same side in every mode
    sides = {
        split
        for mode in karma_modes()
        for split in ("train", "test")
        if q0 in built.datasets[mode][split]["prompt_id"]
    }
    assert len(sides) == 1
    for mode in modes():
        assert built.datasets[mode]["train_sft"].to_list() == built.datasets[mode]["train"].to_list()


def test_layout_and_load_dataset(built, cache):
    import datasets

    out = built.output
    for mode in modes():
        # train and test have files; train_sft is declared on train's (same rows, stored once)
        assert sorted(p.name for p in (out / mode).iterdir()) == [shard_name("test"), shard_name("train")]
        assert built.files(mode) == {s: out / mode / shard_name(shard_split(s)) for s in SPLITS}
        loaded = datasets.load_dataset(str(out), mode, cache_dir=str(cache))
        assert set(loaded) == set(SPLITS)
        for split in SPLITS:
            assert loaded[split].num_rows == built.report["modes"][mode]["splits"][split]
        row = loaded["train"][0]
        assert row["prompt"][0]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    report = json.loads((out / "build_report.json").read_text())
    assert report["modes"] == json.loads(json.dumps(built.report["modes"]))


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.parquet"))
    } | {"build_report.json": hashlib.sha256((folder / "build_report.json").read_bytes()).hexdigest()}


def test_byte_identical_rebuilds(tmp_path, built, cache):
    """Same inputs + seed => same bytes, whatever the batch size, process count or source format."""
    first = _digests(built.output)
    assert len(first) == 9  # 4 modes x (train, test) + the report
    again = build(
        FIXTURE,
        test_size=3,
        output=tmp_path / "again",
        cache_dir=cache,
        ignore_unknown_models=True,
        batch_size=4,
        num_proc=2,
    )
    assert _digests(again.output) == first
    # the same rows from parquet, a save_to_disk folder and its .arrow file
    ds = load_source(FIXTURE, cache_dir=cache)
    ds.to_parquet(str(tmp_path / "uf.parquet"))
    ds.save_to_disk(str(tmp_path / "uf_disk"))
    arrow_file = next((tmp_path / "uf_disk").glob("data-*.arrow"))
    for src in (tmp_path / "uf.parquet", tmp_path / "uf_disk", arrow_file):
        other = build(
            src, test_size=3, output=tmp_path / f"from-{src.name}", cache_dir=cache, ignore_unknown_models=True
        )
        parquet = {k: v for k, v in _digests(other.output).items() if k.endswith(".parquet")}
        assert parquet == {k: v for k, v in first.items() if k.endswith(".parquet")}, src.name


def test_quick_first_pass_matches_full_scan(tmp_path, cache, monkeypatch):
    """Without unknown models, pass 1 only hashes the prompts and parses the rows of the smallest
    keys (``stream.quick_scan``); every test size gives the bytes (or the error) of a full scan,
    with malformed rows and repeated prompts among the held-out candidates."""
    import karma_hf.pairs.stream as stream

    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
    for row in rows:  # ultralm-65b is known (excluded), so nothing is unknown
        row["models"] = [m.replace("mystery-7b", "ultralm-65b") for m in row.get("models") or []]
        for comp in row.get("completions") or []:
            if isinstance(comp, dict) and comp.get("model") == "mystery-7b":
                comp["model"] = "ultralm-65b"
    bad = json.loads(json.dumps(rows[0]))
    bad["completions"][0]["annotations"]["honesty"]["Rating"] = "seven"  # same prompt as row 0, malformed
    rows += [json.loads(json.dumps(rows[0])), bad]
    src = tmp_path / "uf.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    quick_runs: list[bool] = []
    real_quick = stream.quick_scan

    def spy(*args, **kwargs):
        result = real_quick(*args, **kwargs)
        quick_runs.append(result is not None)
        return result

    def outcome(out: Path) -> dict[str, bytes] | str:
        try:
            result = build(src, test_size=test_size, output=out, cache_dir=cache)
        except KarmaError as exc:
            return str(exc)
        return {str(p.relative_to(result.output)): p.read_bytes() for p in sorted(result.output.rglob("*.*"))}

    distinct = 0
    for test_size in range(0, 20):
        monkeypatch.setattr(stream, "can_quick_scan", lambda ctx: False)
        full = outcome(tmp_path / f"full-{test_size}")
        monkeypatch.undo()
        for margin in (stream.QUICK_MARGIN, 0):  # 0: malformed candidates make the search widen
            monkeypatch.setattr(stream, "quick_scan", spy)
            monkeypatch.setattr(stream, "QUICK_MARGIN", margin)
            quick = outcome(tmp_path / f"quick-{test_size}-{margin}")
            monkeypatch.undo()
            assert quick_runs.pop() is True
            assert quick == full, (test_size, margin)
        if isinstance(full, str):
            assert "distinct well-formed prompts" in full
            break
        distinct += 1
    assert distinct > 5  # several held-out sizes were built before --test-size ran out of prompts


@pytest.mark.parametrize("cores", [1, 64])
def test_writer_threads_do_not_change_the_bytes(tmp_path, built, cache, monkeypatch, cores):
    """One thread per config (as many configs as cores) or a gather and an encode thread per
    config (fewer configs than cores): the same files."""
    import karma_hf.pairs.writer as writer

    monkeypatch.setattr(writer, "available_cores", lambda: cores)
    again = build(FIXTURE, test_size=3, output=tmp_path / "again", cache_dir=cache, ignore_unknown_models=True)
    assert _digests(again.output) == _digests(built.output)


@pytest.mark.parametrize("pipelined", [False, True])
def test_a_failed_write_reaches_the_reader_and_abort_returns(tmp_path, monkeypatch, pipelined):
    """An error in a config's writer thread (disk full, say) is raised in the thread that feeds
    it, at the latest when the files are closed, and abort() never waits forever."""
    import karma_hf.pairs.writer as writer

    def fail(self, table):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer.SplitWriter, "add", fail)
    items = writer.Items("best", np.arange(3), np.zeros(3, dtype=np.int64), np.ones(3, dtype=np.int64))
    monkeypatch.setattr(writer, "TABLES", {"best": lambda batch, items, sel: "a table"})
    config = writer.ConfigWriter(tmp_path / "sim", "best", pipelined=pipelined)
    with pytest.raises(OSError, match="No space left"):
        for _ in range(writer.MAX_PENDING + writer.MAX_WRITING + 3):
            config.submit(None, items, np.zeros(3, dtype=bool))  # type: ignore[arg-type]
        config.close()
    config.abort()
    with pytest.raises(RuntimeError):  # the threads are shut down
        config.gather_pool.submit(print)


def test_cli_build(tmp_path, capsys, cache, monkeypatch):
    from karma_hf.cli import main

    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    out = tmp_path / "cli"
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "build",
                "--source",
                str(FIXTURE),
                "--scores",
                "ultrafeedback-paper",
                "--test-size",
                "3",
                "--modes",
                "sim,rlaif",
                "--output",
                str(out),
            ]
        )
    assert exc.value.code == 2
    assert "error: model(s)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "build",
                "--source",
                str(FIXTURE),
                "--scores",
                "ultrafeedback-paper",
                "--test-size",
                "3",
                "--modes",
                "sim,rlaif",
                "--ignore-unknown-models",
                "--output",
                str(out),
            ]
        )
    assert exc.value.code == 0
    captured = capsys.readouterr()
    assert "dropped: no_kin_above_tau" in captured.out and "llama-2-70b-chat > llama-2-7b-chat" in captured.out
    assert "3 malformed row(s)" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "build_report.json", "rlaif", "sim"]
    assert "karma build --source" in (out / "README.md").read_text()
