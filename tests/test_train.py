"""`karma train sft|dpo` with the real TRL trainers on the tiny offline model and a small KARMA set.

Runs go through the CLI entry point in-process (imports are paid once per session); the
two-process run, whose point is the launcher, is a subprocess (tests/test_train_dist.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from karma_set import MODE_PAIRS, write_karma_set

from karma_hf.cli import main
from karma_hf.errors import KarmaError
from karma_hf.train import train
from karma_hf.train.args import STALE_KEYS, parse_args

REPO = Path(__file__).resolve().parents[1]
TINY = {"sft": REPO / "recipes" / "tiny" / "sft.yaml", "dpo": REPO / "recipes" / "tiny" / "dpo.yaml"}


@pytest.fixture(scope="module")
def karma_set(tmp_path_factory) -> Path:
    return write_karma_set(tmp_path_factory.mktemp("karma-set") / "uf-karma", modes=("score", "sim"))


def _argv(stage, model, data, out, *extra):
    return [
        "train",
        stage,
        "--config",
        str(TINY[stage]),
        "--model_name_or_path",
        str(model),
        "--dataset_name",
        str(data),
        "--output_dir",
        str(out),
        *map(str, extra),
    ]


def _run_cli(argv, capsys=None) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code


def _check_run(out: Path, data: Path, mode: str, stage: str, steps: int, batch: int) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    assert model.generate(**ids, max_new_tokens=2, do_sample=False).shape[-1] == ids["input_ids"].shape[-1] + 2

    prov = json.loads((out / "karma_provenance.json").read_text())
    ds = prov["dataset"]
    assert (ds["name"], ds["config"], ds["local_path"]) == (str(data), mode, str(data.resolve()))
    assert len(ds["content_sha256"]) == 64 and ds["fingerprint"]
    assert ds["tau"] == pytest.approx(0.1)
    assert ds["score_table"]["models"][0] == "gpt-4" and ds["s_pref"]["gpt-4"] == pytest.approx(0.99)
    assert prov["stage"] == stage and prov["world_size"] == 1
    assert prov["versions"]["trl"] and prov["versions"]["transformers"] and prov["versions"]["karma-hf"]
    assert prov["training_args"]["max_steps"] == steps
    assert prov["run_config"]["script"]["dataset_config"] == mode
    assert prov["run_config"]["model"]["model_name_or_path"]

    card = (out / "README.md").read_text()
    assert "## KARMA provenance" in card and str(data) in card and f"`{mode}`" in card
    assert card.count("karma-provenance:begin") == 1

    stats = json.loads((out / "karma_batch_stats.json").read_text())
    assert stats["disabled"] is None and stats["rows"] == steps * batch
    allowed = {f"{c}>{r}" for c, r, _ in MODE_PAIRS[mode]}
    assert set(stats["pair_counts"]) <= allowed and sum(stats["pair_counts"].values()) == steps * batch
    kin = {f"{c}>{r}": k for c, r, k in MODE_PAIRS[mode]}
    expected_mean = sum(kin[p] * n for p, n in stats["pair_counts"].items()) / stats["rows"]
    assert stats["kinship_mean"] == pytest.approx(expected_mean)
    state = json.loads((out / "karma_provenance.json").read_text())
    return state


def test_train_dpo_local_folder(tiny_model_dir, karma_set, tmp_path):
    out = tmp_path / "dpo"
    assert _run_cli(_argv("dpo", tiny_model_dir, karma_set, out)) == 0
    _check_run(out, karma_set, "score", "dpo", steps=4, batch=4)


def test_train_sft_local_folder_logs_kinship_next_to_trl_metrics(tiny_model_dir, karma_set, tmp_path):
    out = tmp_path / "sft"
    result = train("sft", _argv("sft", tiny_model_dir, karma_set, out, "--dataset_config", "sim")[2:])
    _check_run(out, karma_set, "sim", "sft", steps=4, batch=4)
    logs = [h for h in result.log_history if "loss" in h]
    assert len(logs) == 2  # logging_steps 2 of 4 steps
    for h in logs:
        assert h["karma/rows"] == 8 and 0.97 < h["karma/kinship_mean"] <= 0.99
        shares = [v for k, v in h.items() if k.startswith("karma/pair_share/")]
        assert shares and sum(shares) == pytest.approx(1.0)
    assert result.global_step == 4


def test_sft_reads_the_train_sft_split(tiny_model_dir, karma_set, tmp_path):
    """train_sft's `messages` become prompt (all but the last turn) / completion (the last assistant turn)."""
    from datasets import load_dataset

    from karma_hf.train.data import to_sft_rows

    sft = load_dataset(str(karma_set), data_files={"t": "score/train_sft-00000-of-00001.parquet"})["t"]
    rows = to_sft_rows(sft, "train_sft")
    assert len(rows) == len(sft) and "messages" not in rows.column_names
    for src, row in zip(sft.select(range(5)), rows.select(range(5)), strict=True):
        assert row["prompt"] + row["completion"] == src["messages"] and len(row["completion"]) == 1
        assert row["completion"][0]["role"] == "assistant"
    out = tmp_path / "o"
    result = train(
        "sft", _argv("sft", tiny_model_dir, karma_set, out, "--dataset_train_split", "train_sft", "--max_steps", 1)[2:]
    )
    assert result.global_step == 1
    state = _check_run(out, karma_set, "score", "sft", steps=1, batch=4)
    assert state["dataset"]["num_train_rows"] == len(sft)
    assert state["run_config"]["script"]["dataset_train_split"] == "train_sft"


def test_resume_from_checkpoint_continues_step_count(tiny_model_dir, karma_set, tmp_path):
    out = tmp_path / "resume"
    first = train(
        "dpo",
        _argv(
            "dpo",
            tiny_model_dir,
            karma_set,
            out,
            "--max_steps",
            2,
            "--save_strategy",
            "steps",
            "--save_steps",
            2,
            "--logging_steps",
            1,
        )[2:],
    )
    assert first.global_step == 2 and (out / "checkpoint-2").is_dir()
    second = train(
        "dpo",
        _argv(
            "dpo",
            tiny_model_dir,
            karma_set,
            out,
            "--max_steps",
            4,
            "--save_strategy",
            "steps",
            "--save_steps",
            2,
            "--logging_steps",
            1,
            "--resume_from_checkpoint",
            out / "checkpoint-2",
        )[2:],
    )
    assert second.global_step == 4
    steps = [h["step"] for h in second.log_history if "loss" in h]
    assert steps == [1, 2, 3, 4]  # history restored from the checkpoint, then steps 3 and 4 trained
    assert json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4
    assert json.loads((out / "karma_provenance.json").read_text())["resumed_from_step"] == 2
    # the checkpoint saves rewrote the TRL card; the karma section is there exactly once
    assert (out / "README.md").read_text().count("## KARMA provenance") == 1


@pytest.mark.parametrize("key,value", [("max_prompt_length", 512), ("warmup_ratio", 0.1)])
def test_stale_recipe_fails_naming_the_field(tmp_path, capsys, key, value):
    recipe = tmp_path / "old.yaml"
    recipe.write_text(TINY["dpo"].read_text() + f"{key}: {value}\n")
    with pytest.raises(KarmaError, match=key) as exc:
        parse_args("dpo", ["--config", str(recipe), "--model_name_or_path", "m", "--dataset_name", "d"])
    assert str(recipe) in str(exc.value) and STALE_KEYS[key].split(";")[0] in str(exc.value)
    code = _run_cli(
        [
            "train",
            "dpo",
            "--config",
            str(recipe),
            "--model_name_or_path",
            "m",
            "--dataset_name",
            "d",
            "--output_dir",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and repr(key) in err[0]
    # reported before anything else is checked (here: bf16 left at TRL's default on a CPU box)
    bare = tmp_path / "bare.yaml"
    bare.write_text(f"{key}: {value}\n")
    with pytest.raises(KarmaError, match=f"bare.yaml: unknown field '{key}'"):
        parse_args("dpo", ["--config", str(bare)])
    with pytest.raises(KarmaError, match=f"command line: unknown field '{key}'"):
        parse_args("dpo", ["--" + key.replace("_", "-"), str(value)])


def test_unknown_flag_and_bad_values_are_one_line_errors(tmp_path):
    base = ["--config", str(TINY["dpo"]), "--model_name_or_path", "m", "--dataset_name", "d"]
    with pytest.raises(KarmaError, match="'not_a_field'"):
        parse_args("dpo", [*base, "--not_a_field", "1"])
    with pytest.raises(KarmaError, match="learning_rate"):
        parse_args("dpo", [*base, "--learning_rate", "fast"])
    with pytest.raises(KarmaError, match="config file not found"):
        parse_args("dpo", ["--config", str(tmp_path / "missing.yaml")])
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(KarmaError, match="bf16 is on"):
            parse_args("dpo", ["--model_name_or_path", "m", "--dataset_name", "d"])
    with pytest.raises(KarmaError, match="model_name_or_path is required"):
        parse_args("dpo", ["--config", str(TINY["dpo"]), "--dataset_name", "d"])


def test_unknown_mode_and_wrong_split_name_the_choices(tiny_model_dir, karma_set, tmp_path):
    with pytest.raises(KarmaError, match=r"no config 'nope'; available: score, sim"):
        train("dpo", _argv("dpo", tiny_model_dir, karma_set, tmp_path / "o", "--dataset_config", "nope")[2:])
    with pytest.raises(KarmaError, match=r"no split 'valid'"):
        train("dpo", _argv("dpo", tiny_model_dir, karma_set, tmp_path / "o", "--dataset_train_split", "valid")[2:])


def test_every_recipe_parses():
    from accelerate.commands.config.config_args import load_config_from_file

    paper = {
        "meta-llama/Llama-3.2-3B-Instruct",
        "meta-llama/Llama-3.1-8B-Instruct",
        "Qwen/Qwen2.5-3B-Instruct",
        "Qwen/Qwen2.5-7B-Instruct",
    }
    seen: set[tuple[str, str]] = set()
    not_training = ("accelerate", "pipelines")  # accelerate configs and karma run pipelines
    recipes = sorted(p for p in (REPO / "recipes").glob("*/*.yaml") if p.parent.name not in not_training)
    assert len(recipes) >= 10
    for path in recipes:
        stage = path.stem.split("-")[0]  # dpo-ipo.yaml: a DPO loss variant
        # the paper recipes ask for bf16 on GPUs; --use_cpu lets this CPU box build the configs
        extra = (
            ["--use_cpu", "true"]
            if path.parent.name != "tiny"
            else ["--model_name_or_path", "m", "--dataset_name", "d"]
        )
        args = parse_args(stage, ["--config", str(path), *extra])
        if path.parent.name == "tiny":
            continue
        t = args.training
        assert (
            t.num_train_epochs,
            t.bf16,
            t.per_device_train_batch_size,
            t.gradient_accumulation_steps,
            t.warmup_steps,
        ) == (1, True, 6, 4, 500), path
        if stage in ("sft", "dpo"):  # the paper's Appendix A; kto/orpo/reward mark their own learning rates
            assert t.learning_rate == 5e-5, path
        assert args.script.dataset_config in ("score", "sim", "score_sim", "rlaif"), path
        if stage == "reward":  # no lm-eval of a reward model: TRL's pairwise accuracy on the test pairs
            assert args.karma.karma_eval_tasks is None and t.eval_strategy == "epoch", path
        else:
            assert args.karma.karma_eval_tasks == ["karma"], path
        seen.add((args.model.model_name_or_path, stage))
    assert seen == {(m, s) for m in paper for s in ("sft", "dpo", "kto", "orpo", "reward")}
    kinds = {
        p.stem: load_config_from_file(str(p)).distributed_type.value
        for p in (REPO / "recipes" / "accelerate").glob("*.yaml")
    }
    assert kinds == {"ddp": "MULTI_GPU", "zero2": "DEEPSPEED", "zero3": "DEEPSPEED", "fsdp": "FSDP"}


def test_callback_alone_with_a_plain_trl_trainer(tiny_model_dir, karma_set, tmp_path):
    """No `karma train`: TRL's DPOTrainer built by hand, the callback passed in `callbacks`."""
    from datasets import load_dataset
    from trl import DPOConfig, DPOTrainer

    from karma_hf.train.callbacks import KarmaCallback

    ds = load_dataset(str(karma_set), data_files={"train": "sim/train-00000-of-00001.parquet"})["train"]
    cb = KarmaCallback(str(karma_set), "sim", train_dataset=ds)
    out = tmp_path / "plain"
    args = DPOConfig(
        output_dir=str(out),
        max_steps=2,
        per_device_train_batch_size=4,
        bf16=False,
        use_cpu=True,
        gradient_checkpointing=False,
        save_strategy="steps",
        save_steps=2,
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        max_length=None,
    )
    trainer = DPOTrainer(model=str(tiny_model_dir), args=args, train_dataset=ds, callbacks=[cb])
    trainer.train()
    prov = json.loads((out / "karma_provenance.json").read_text())
    assert prov["dataset"]["config"] == "sim" and prov["stage"] == "dpo" and prov["run_config"] == {}
    # TRL wrote its card at the checkpoint save; the callback's on_save added the section
    assert "## KARMA provenance" in (out / "README.md").read_text()
    stats = json.loads((out / "karma_batch_stats.json").read_text())
    assert stats["disabled"] is None and stats["rows"] == 8
    assert [h["karma/rows"] for h in trainer.state.log_history if "loss" in h] == [4.0, 4.0]


@pytest.mark.parametrize(
    "data_files,expected",
    [
        ("m/x.parquet", {"train": ["m/x.parquet"]}),
        ({"train": "m/a.parquet", "test": ["m/b.parquet"]}, {"train": ["m/a.parquet"], "test": ["m/b.parquet"]}),
        (
            [{"split": "train", "path": "m/train-*.parquet"}, {"split": "test", "path": ["m/t.parquet"]}],
            {"train": ["m/train-*.parquet"], "test": ["m/t.parquet"]},
        ),
    ],
)
def test_card_data_files_in_every_hub_form(data_files, expected):
    from karma_hf.karma_set import config_files as _config_files

    meta = {
        "configs": [
            {"config_name": "other", "data_files": "o.parquet"},
            {"config_name": "m", "data_files": data_files},
        ]
    }
    assert _config_files(meta, "m") == expected
    assert _config_files(meta, "missing") == {}


def test_train_dpo_on_a_set_written_by_the_real_builder(tiny_model_dir, tmp_path):
    """The builder's own output (karma_hf.pairs.builder.build on the UltraFeedback fixture) trains as is."""
    from karma_hf.pairs.builder import build

    data = tmp_path / "built"
    build(
        REPO / "tests/fixtures/ultrafeedback_mini.jsonl",
        scores="ultrafeedback-paper",
        test_size=3,
        output=data,
        cache_dir=tmp_path / "cache",
        ignore_unknown_models=True,
    )
    out = tmp_path / "run"
    result = train(
        "dpo",
        _argv(
            "dpo",
            tiny_model_dir,
            data,
            out,
            "--dataset_config",
            "sim",
            "--max_steps",
            2,
            "--per_device_train_batch_size",
            2,
        )[2:],
    )
    assert result.global_step == 2
    ds = json.loads((out / "karma_provenance.json").read_text())["dataset"]
    assert ds["config"] == "sim" and ds["tau"] == pytest.approx(0.1)
    assert ds["s_pref"]["gpt-4"] == pytest.approx(0.99, abs=0.005)  # paper Table 3
    assert ds["score_table"]["source"] == "preset:ultrafeedback-paper"
    assert ds["build_report_mode"]["kept"] > 0 and ds["build"]["seed"] == 42
    card = (out / "README.md").read_text()
    assert "| gpt-4 | 0.9899 |" in card and "`sim`" in card
    stats = json.loads((out / "karma_batch_stats.json").read_text())
    assert stats["rows"] == 4 and stats["disabled"] is None
