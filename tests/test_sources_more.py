"""The built-in sources beyond UltraFeedback, each built from a hand-written fixture in its real schema.

tests/fixtures/<name>_mini.jsonl, one row per case (the comments in ROWS say what each row is for).
Every test runs the real `karma build` command line (in process) with a CSV score table whose model
names are mapped to the dataset's names through an alias map, then checks every row's outcome in
the build report, the pairs against the kinship of the scores, the multi-turn prompts and the
rlaif baseline's choice from the source's per-instance rating.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from karma_hf.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
K, F2, EMPTY, UNK, BAD, TIE = "kept", "fewer_than_two_scored", "empty_response", "unknown_model", "malformed", "tie"

#: source -> (score-table name -> dataset name, benchmark values)
POOLS: dict[str, dict[str, tuple[str, tuple[float, float, float]]]] = {
    "nectar": {
        "GPT-4": ("gpt-4", (0.90, 0.85, 0.95)),
        "GPT-3.5-Turbo": ("gpt-3.5-turbo", (0.70, 0.80, 0.75)),
        "Mistral-7B-Instruct": ("mistral-7b-instruct", (0.55, 0.40, 0.60)),
        "Llama-2-7B-Chat": ("llama-2-7b-chat", (0.45, 0.60, 0.35)),
        "GPT-3.5-Turbo-Instruct": ("gpt-3.5-turbo-instruct", (0.65, 0.30, 0.70)),
        "Claude": ("anthropic", (0.30, 0.70, 0.50)),
    },
    "arena": {
        "ChatGLM-6B": ("chatglm-6b", (0.40, 0.30, 0.55)),
        "Koala-13B": ("koala-13b", (0.60, 0.55, 0.35)),
        "OASST-Pythia-12B": ("oasst-pythia-12b", (0.30, 0.45, 0.40)),
        "Alpaca-13B": ("alpaca-13b", (0.50, 0.35, 0.30)),
        "Vicuna-13B": ("vicuna-13b", (0.70, 0.65, 0.60)),
    },
    "openhermes": {
        "OpenHermes-2.5": ("teknium/OpenHermes-2.5", (0.60, 0.55, 0.65)),
        "Nous-Hermes-2-Yi-34B": ("NousResearch/Nous-Hermes-2-Yi-34B", (0.75, 0.70, 0.60)),
        "Mixtral-8x7B-Instruct": ("mistralai/Mixtral-8x7B-Instruct-v0.1", (0.70, 0.60, 0.75)),
    },
    "generated": {
        "big": ("org/big-model", (0.80, 0.75, 0.70)),
        "mid": ("org/mid-model", (0.55, 0.60, 0.40)),
        "small": ("org/small-model", (0.30, 0.35, 0.50)),
    },
}

#: source -> per fixture row: (KARMA-mode outcome, rlaif-argilla outcome, rlaif chosen model or None)
ROWS: dict[str, list[tuple[str, str, str | None]]] = {
    "nectar": [
        (K, K, "gpt-4"),  # 0  7 ranked answers (koala-13b is not in the score table: skipped)
        (K, K, "gpt-3.5-turbo"),  # 1  a two-turn transcript: the earlier turns stay in the prompt
        (F2, F2, None),  # 2  a single answer (a single-model prompt)
        (EMPTY, EMPTY, None),  # 3  two of three answers empty ("" and whitespace)
        (UNK, UNK, None),  # 4  gpt-4 + two models not in the score table
        (BAD, BAD, None),  # 5  rank 0 (ranks start at 1)
        (BAD, BAD, None),  # 6  a prompt that is not a Human/Assistant transcript
        (BAD, BAD, None),  # 7  the same model twice
        (K, K, "llama-2-7b-chat"),  # 8  the lowest-S_pref model has the best rank; two source labels
    ],
    "arena": [
        (K, K, "koala-13b"),  # 0  winner model_b
        (K, TIE, None),  # 1  tie: a pair for KARMA (which never reads the vote), a tie for rlaif
        (K, K, "koala-13b"),  # 2  winner model_a
        (K, TIE, None),  # 3  tie (bothbad)
        (K, K, "koala-13b"),  # 4  two turns: the first turn and model_a's first reply stay in the prompt
        (BAD, BAD, None),  # 5  model_a = model_b
        (EMPTY, EMPTY, None),  # 6  model_b's reply is empty
        (UNK, UNK, None),  # 7  gpt-4 is not in the score table
        (BAD, BAD, None),  # 8  the second user turn differs between the two conversations
    ],
    "openhermes": [
        (K, K, "teknium/OpenHermes-2.5"),  # 0  ranks [0, 2, 1]: rank 0 is the best
        (K, K, "NousResearch/Nous-Hermes-2-Yi-34B"),  # 1  a system message in `chosen` stays in the prompt
        (K, F2, None),  # 2  ranks null: KARMA pairs it, rlaif has no rating
        (F2, F2, None),  # 3  a single candidate
        (BAD, BAD, None),  # 4  a blank prompt
        (BAD, BAD, None),  # 5  three policies for two completions
        (K, K, "mistralai/Mixtral-8x7B-Instruct-v0.1"),  # 6  one empty candidate of three
    ],
    "generated": [
        (K, F2, None),  # 0  three models (no per-instance rating: rlaif has nothing to rank)
        (K, F2, None),  # 1  system + earlier turns in the prompt
        (F2, F2, None),  # 2  one model answered (--per-prompt 1)
        (EMPTY, F2, None),  # 3  one of two responses is whitespace
        (BAD, BAD, None),  # 4  the prompt ends with an assistant message
        (UNK, UNK, None),  # 5  a model not in the score table
        (K, F2, None),  # 6  no source label
    ],
}
SOURCE_FORMATS = {"nectar": "nectar", "arena": "arena", "openhermes": "openhermes", "generated": "generated"}


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)


def _scores(tmp: Path, name: str) -> tuple[Path, Path]:
    pool = POOLS[name]
    csv = tmp / f"{name}-scores.csv"
    csv.write_text(
        "model,b1,b2,b3\n" + "".join(f"{m},{a},{b},{c}\n" for m, (_, (a, b, c)) in pool.items()), encoding="utf-8"
    )
    aliases = tmp / f"{name}-aliases.json"
    aliases.write_text(json.dumps({m: dataset for m, (dataset, _) in pool.items()}), encoding="utf-8")
    return csv, aliases


def _build(tmp: Path, name: str, *extra: str) -> tuple[dict, Path]:
    csv, aliases = _scores(tmp, name)
    out = tmp / f"{name}-set"
    code = _run(
        [
            "build",
            "--source",
            str(FIXTURES / f"{name}_mini.jsonl"),
            "--scores",
            str(csv),
            "--aliases",
            str(aliases),
            "--modes",
            "score,sim,score_sim,rlaif",
            "--rlaif-recipe",
            "argilla",
            "--ignore-unknown-models",
            "--test-size",
            "0",
            "-o",
            str(out),
            *extra,
        ]
    )
    assert code == 0
    return json.loads((out / "build_report.json").read_text()), out


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / f"{name}_mini.jsonl").read_text(encoding="utf-8").splitlines()]


def _prompt_of(name: str, raw: dict) -> list[dict]:
    """The prompt messages the mapping documented in each source module gives a fixture row."""
    from karma_hf.sources.messages import parse_transcript
    from karma_hf.sources.openhermes import prompt_messages

    if name == "nectar":
        return parse_transcript(raw["prompt"])
    if name == "arena":
        return [{"role": m["role"], "content": m["content"]} for m in raw["conversation_a"][:-1]]
    if name == "openhermes":
        return prompt_messages(raw["prompt"], raw["chosen"])
    return raw["prompt"]


def _responses(name: str, raw: dict) -> dict[str, str]:
    if name == "nectar":
        return {a["model"]: a["answer"] for a in raw["answers"]}
    if name == "arena":
        return {
            raw["model_a"]: raw["conversation_a"][-1]["content"],
            raw["model_b"]: raw["conversation_b"][-1]["content"],
        }
    if name == "openhermes":
        return dict(zip(raw["candidate_policies"], raw["candidates_completions"], strict=True))
    return {c["model"]: c["response"] for c in raw["completions"]}


@pytest.mark.parametrize("name", list(ROWS))
def test_source_builds_from_its_fixture(tmp_path, name):
    from datasets import load_dataset

    from karma_hf.kinship import Kinship
    from karma_hf.scores import load_scores

    report, out = _build(tmp_path, name)
    assert report["source"]["format"] == SOURCE_FORMATS[name]
    assert report["rating"] == {"generated": "none", "arena": "winner"}.get(name, "rank")  # the source's own
    expected = ROWS[name]
    assert report["source"]["rows"] == len(expected)
    for mode in ("score", "sim", "score_sim", "rlaif"):
        column = 1 if mode == "rlaif" else 0
        want: dict[str, int] = {}
        for outcome in expected:
            want[outcome[column]] = want.get(outcome[column], 0) + 1
        info = report["modes"][mode]
        got = {reason: n for reason, n in info["dropped"].items() if n} | ({K: info["kept"]} if info["kept"] else {})
        assert got == want, (mode, got)

    csv, aliases = _scores(tmp_path, name)
    kin = Kinship.from_table(load_scores([str(csv)], aliases=str(aliases)), tau=0.1)
    raw = _rows(name)
    by_prompt = {json.dumps(_prompt_of(name, r)): (i, r) for i, r in enumerate(raw) if expected[i][0] == K}
    for mode in ("score", "sim", "score_sim"):
        pairs = load_dataset(str(out), mode, cache_dir=str(tmp_path / "cache"))["train"].to_list()
        assert len(pairs) == sum(1 for e in expected if e[0] == K)
        for pair in pairs:
            i, row = by_prompt[json.dumps(pair["prompt"])]  # the whole prompt, earlier turns included
            texts = _responses(name, row)
            candidates = [m for m, t in texts.items() if m in kin.index and (t or "").strip()]
            best = kin.select(mode, candidates)
            assert (pair["chosen_model"], pair["rejected_model"]) == (best.chosen, best.rejected), (mode, i)
            assert kin.s_pref_of(pair["chosen_model"]) > kin.s_pref_of(pair["rejected_model"])
            assert pair["chosen"] == [{"role": "assistant", "content": texts[pair["chosen_model"]]}]
            assert pair["rejected"] == [{"role": "assistant", "content": texts[pair["rejected_model"]]}]
            assert pair["messages"] == pair["prompt"] + pair["chosen"]
    rlaif = {}
    if report["modes"]["rlaif"]["kept"]:
        rows = load_dataset(str(out), "rlaif", cache_dir=str(tmp_path / "cache"))["train"].to_list()
        rlaif = {json.dumps(p["prompt"]): p for p in rows}
    for i, (_, outcome, chosen) in enumerate(expected):
        if outcome == K:
            pair = rlaif[json.dumps(_prompt_of(name, raw[i]))]
            assert pair["chosen_model"] == chosen, i
            assert pair["score_chosen"] > pair["score_rejected"]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert f"{name}_mini.jsonl" in card and f"Source schema `{SOURCE_FORMATS[name]}`" in card


def test_multi_turn_prompts_keep_earlier_turns(tmp_path):
    from datasets import load_dataset

    _, out = _build(tmp_path, "nectar")
    pairs = load_dataset(str(out), "score", cache_dir=str(tmp_path / "cache"))["train"].to_list()
    two_turn = next(p for p in pairs if len(p["prompt"]) > 1)
    assert two_turn["prompt"] == [
        {"role": "user", "content": "Give me a word that rhymes with cat."},
        {"role": "assistant", "content": "Hat."},
        {"role": "user", "content": "Another one, please."},
    ]
    assert two_turn["source"] == "anthropic-hh"
    labels = {p["source"] for p in pairs}
    assert "ultrafeedback,sharegpt" in labels  # Nectar's list of source labels, joined

    _, out = _build(tmp_path, "arena")
    pairs = load_dataset(str(out), "score", cache_dir=str(tmp_path / "cache"))["train"].to_list()
    haiku = next(p for p in pairs if len(p["prompt"]) == 3)
    assert [m["role"] for m in haiku["prompt"]] == ["user", "assistant", "user"]
    assert haiku["prompt"][1]["content"] == "Blossoms in the breeze / ..."  # conversation_a's earlier reply
    assert {p["source"] for p in pairs} == {None}

    _, out = _build(tmp_path, "generated")
    pairs = load_dataset(str(out), "score", cache_dir=str(tmp_path / "cache"))["train"].to_list()
    french = next(p for p in pairs if p["prompt"][0]["role"] == "system")
    assert len(french["prompt"]) == 4 and french["messages"][-1]["role"] == "assistant"


def test_detection_and_wrong_rating(tmp_path):
    from karma_hf.sources.loading import load_source
    from karma_hf.sources.registry import detect_source

    for name in ROWS:
        ds = load_source(FIXTURES / f"{name}_mini.jsonl")
        assert detect_source(ds.features.arrow_schema).name == SOURCE_FORMATS[name]
    csv, aliases = _scores(tmp_path, "nectar")
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "build",
                "--source",
                str(FIXTURES / "nectar_mini.jsonl"),
                "--scores",
                str(csv),
                "--aliases",
                str(aliases),
                "--rating",
                "overall_score",
                "--modes",
                "score",
                "-o",
                str(tmp_path / "x"),
            ]
        )
    assert exc.value.code == 2


def test_unknown_models_fail_without_the_flag(tmp_path, capsys):
    csv, aliases = _scores(tmp_path, "arena")
    code = _run(
        [
            "build",
            "--source",
            str(FIXTURES / "arena_mini.jsonl"),
            "--scores",
            str(csv),
            "--aliases",
            str(aliases),
            "--modes",
            "score",
            "--test-size",
            "0",
            "-o",
            str(tmp_path / "x"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "'gpt-4' (1 completions)" in err and "--ignore-unknown-models" in err


def test_transcript_parsing():
    from karma_hf.sources.messages import parse_transcript, prompt_id_of

    assert parse_transcript("\n\nHuman: Hi\n\nAssistant:") == [{"role": "user", "content": "Hi"}]
    assert parse_transcript("Human: Hi\n\nAssistant: Yo\n\nHuman: Bye\n\nAssistant:") == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Yo"},
        {"role": "user", "content": "Bye"},
    ]
    for bad in ("Hi", "\n\nHuman: Hi", "\n\nHuman: Hi\n\nAssistant: Hello", "\n\nAssistant: x\n\nAssistant:"):
        with pytest.raises(ValueError):
            parse_transcript(bad)
    from karma_hf.sources.ultrafeedback import prompt_id

    assert prompt_id_of([{"role": "user", "content": "Hi"}]) == prompt_id("Hi")  # same id as UltraFeedback's
