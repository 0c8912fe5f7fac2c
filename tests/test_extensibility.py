"""Adding a mode, a source schema or a trainer is one new piece plus one registry entry.

Each test registers a toy one from the test itself (no other file touched) and runs it through the
real `karma build` / `karma train` command line, then checks what came out.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from karma_hf.cli import main

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "ultrafeedback_mini.jsonl"


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)


# ---------------------------------------------------------------------------------------- a mode
@pytest.fixture()
def toy_mode():
    """`weakest`: the kin pair of the two lowest-ranked models (a curriculum's easy end)."""
    from karma_hf.kinship import SELECTORS, selector
    from karma_hf.layout import register_mode, unregister_mode

    register_mode("weakest", "toy: the kin pair of the two lowest-ranked models by S_pref")

    @selector("weakest")
    def _weakest(sub: np.ndarray, kin: np.ndarray) -> tuple[int, int]:
        rows = np.flatnonzero(kin.any(axis=1))
        a = int(rows[-1])  # the worst model with a kin partner
        return int(np.flatnonzero(kin[a])[-1]), a  # and its worst-ranked kin partner

    yield "weakest"
    SELECTORS.pop("weakest", None)
    unregister_mode("weakest")


def test_a_registered_mode_builds_trains_and_is_labelled_by_s_pref(toy_mode, tmp_path):
    from datasets import load_dataset

    from karma_hf.kinship import Kinship
    from karma_hf.scores import load_scores

    out = tmp_path / "set"
    code = _run(
        [
            "build",
            "--source",
            str(FIXTURE),
            "--scores",
            "ultrafeedback-paper",
            "--modes",
            f"sim,{toy_mode}",
            "--ignore-unknown-models",
            "--test-size",
            "2",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    meta = json.loads((out / "build_report.json").read_text())
    assert list(meta["modes"]) == ["sim", toy_mode]
    assert meta["modes"][toy_mode]["description"].startswith("toy:")
    pairs = load_dataset(str(out), toy_mode)["train"]
    assert len(pairs) > 0
    kin = Kinship.from_table(load_scores("ultrafeedback-paper"))
    rank = {m: i for i, m in enumerate(kin.ranking())}
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    source_rows: dict[str, list[dict]] = {}
    for r in rows:
        if isinstance(r.get("instruction"), str):
            source_rows.setdefault(r["instruction"], []).append(r)
    for row in pairs:
        c, r = row["chosen_model"], row["rejected_model"]
        assert kin.s_pref_of(c) > kin.s_pref_of(r) and kin.is_kin(c, r)
        # the rejected model is the worst-ranked scored candidate that answered this instruction
        # (an instruction may occur twice in the source: one of its rows made this pair)
        worst = [
            max(
                rank[x["model"]]
                for x in src["completions"]
                if x.get("model") in kin.index and (x.get("response") or "").strip()
            )
            for src in source_rows[row["prompt"][0]["content"]]
        ]
        assert rank[r] in worst
    from karma_hf.karma_set import KarmaSet

    assert KarmaSet(out).declared_configs() == ["sim", toy_mode]  # the card declares the new config


# ---------------------------------------------------------------------------------------- a source
TOY_ROWS = [
    {
        "question": "Name a prime number.",
        "answers": [
            {"llm": "gpt-4", "text": "7 is prime."},
            {"llm": "bard", "text": "2."},
            {"llm": "llama-2-7b-chat", "text": "9"},
        ],
    },
    {
        "question": "What is the capital of France?",
        "answers": [
            {"llm": "llama-2-13b-chat", "text": "Paris."},
            {"llm": "llama-2-7b-chat", "text": "Paris, France."},
        ],
    },
    {"question": "Say hi.", "answers": [{"llm": "gpt-4", "text": "Hi!"}]},  # one answer: dropped
    {"question": "   ", "answers": [{"llm": "gpt-4", "text": "?"}, {"llm": "bard", "text": "!"}]},  # malformed
]


@pytest.fixture()
def toy_source():
    """A schema of its own: `question`, `answers: [{llm, text}]`, no ratings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from karma_hf.errors import KarmaError
    from karma_hf.sources.registry import SourceSchema, SourceTexts, parsed_schema, register_source, unregister_source
    from karma_hf.sources.ultrafeedback import prompt_id

    def check(schema: pa.Schema, rating: str) -> None:
        if not pa.types.is_list(schema.field("answers").type):
            raise KarmaError("toy source: answers must be a list")

    def parse(batch, rating: str) -> pa.Table:
        rows = batch.to_pylist()
        out = {"prompt_id": [], "malformed": [], "models": [], "empty": [], "rating": []}
        for row in rows:
            bad = not (row["question"] or "").strip()
            out["prompt_id"].append(None if bad else prompt_id(row["question"]))
            out["malformed"].append("question is empty" if bad else None)
            out["models"].append([a["llm"] for a in row["answers"]])
            out["empty"].append([not (a["text"] or "").strip() for a in row["answers"]])
            out["rating"].append([None for _ in row["answers"]])
        return pa.table(out, schema=parsed_schema())

    def texts(batch: pa.RecordBatch) -> SourceTexts:
        answers = batch.column("answers")
        return SourceTexts(
            prompt=batch.column("question"),
            responses=pc.struct_field(answers.values, "text"),
            offsets=answers.offsets.to_numpy().astype(np.int64),
        )

    source = register_source(
        SourceSchema(
            name="toy_qa",
            description="question + answers[{llm, text}]",
            matches=lambda s: {"question", "answers"} <= set(s.names),
            check_schema=check,
            parse_batch=parse,
            texts=texts,
            text_columns=("question", "answers"),
            rating_methods=("none",),
        )
    )
    yield source
    unregister_source("toy_qa")


def test_a_registered_source_is_detected_and_built(toy_source, tmp_path):
    from datasets import load_dataset

    src = tmp_path / "toy.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in TOY_ROWS), encoding="utf-8")
    out = tmp_path / "set"
    code = _run(
        [
            "build",
            "--source",
            str(src),
            "--scores",
            "ultrafeedback-paper",
            "--modes",
            "score,sim",
            "--rating",
            "none",
            "--test-size",
            "0",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads((out / "build_report.json").read_text())
    assert report["source"]["format"] == "toy_qa"
    for mode in ("score", "sim"):
        info = report["modes"][mode]
        assert info["kept"] == 2
        assert info["dropped"]["malformed"] == 1 and info["dropped"]["fewer_than_two_scored"] == 1
    score = load_dataset(str(out), "score")["train"].to_list()
    first = next(r for r in score if r["prompt"][0]["content"] == "Name a prime number.")
    assert (first["chosen_model"], first["rejected_model"]) == ("gpt-4", "bard")  # the two best by S_pref
    assert first["chosen"][0]["content"] == "7 is prime." and first["rejected"][0]["content"] == "2."
    second = next(r for r in score if r["prompt"][0]["content"].startswith("What is"))
    assert (second["chosen_model"], second["chosen"][0]["content"]) == ("llama-2-13b-chat", "Paris.")
    assert second["score_chosen"] is None  # this source has no per-instance ratings


# ---------------------------------------------------------------------------------------- a trainer
@pytest.fixture()
def toy_stage():
    """`sft_last`: TRL's SFTTrainer on the `messages` of train_sft, with its own shaping function."""
    from karma_hf.train.data import to_sft_rows
    from karma_hf.train.stages import Stage, register_stage, unregister_stage

    seen: list[int] = []

    def config():
        from trl import SFTConfig

        return SFTConfig

    def trainer():
        from trl import SFTTrainer

        return SFTTrainer

    def prepare(ds, split):
        seen.append(len(ds))
        return to_sft_rows(ds, split)

    register_stage(Stage("sft_last", "toy: SFT on the last assistant turn of train_sft", config, trainer, prepare))
    yield seen
    unregister_stage("sft_last")


def test_a_registered_stage_trains_through_karma_train(toy_stage, tiny_model_dir, tmp_path):
    from karma_set import write_karma_set
    from transformers import AutoModelForCausalLM

    data = write_karma_set(tmp_path / "karma-set", modes=("sim",))
    out = tmp_path / "run"
    code = _run(
        [
            "train",
            "sft_last",
            "--config",
            str(REPO / "recipes" / "tiny" / "sft.yaml"),
            "--model_name_or_path",
            str(tiny_model_dir),
            "--dataset_name",
            str(data),
            "--dataset_config",
            "sim",
            "--dataset_train_split",
            "train_sft",
            "--output_dir",
            str(out),
            "--max_steps",
            "2",
        ]
    )
    assert code == 0
    assert toy_stage and toy_stage[0] > 0  # our prepare() shaped the split
    prov = json.loads((out / "karma_provenance.json").read_text())
    assert prov["stage"] == "sft_last"  # named by the stage, though it shares SFTConfig with `sft`
    assert prov["training_args"]["max_steps"] == 2 and prov["dataset"]["config"] == "sim"
    assert AutoModelForCausalLM.from_pretrained(out).num_parameters() > 0
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
