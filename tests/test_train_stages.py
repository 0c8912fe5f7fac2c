"""`karma train kto|orpo|reward` on the tiny offline model, from a set written by the real builder.

Each stage is TRL's own trainer (KTO and reward from `trl`, ORPO from `trl.experimental.orpo`)
run through the `karma` CLI in-process; the checks are the saved model loading back, the
provenance record naming the stage, and the kinship batch statistics recomputed here from the
set's own parquet files. The DPO loss-variant recipes each train one step. The curriculum order
is in tests/test_train_order.py, the SmolLM2 run at the bottom (real-model tier).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from karma_hf.cli import main
from karma_hf.errors import KarmaError
from karma_hf.train import train

REPO = Path(__file__).resolve().parents[1]
TINY = {s: REPO / "recipes" / "tiny" / f"{s}.yaml" for s in ("sft", "dpo", "kto", "orpo", "reward")}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """`karma build` on the UltraFeedback fixture with the paper's score table (5 train pairs per mode)."""
    from karma_hf.pairs.builder import build

    root = tmp_path_factory.mktemp("built")
    build(
        REPO / "tests/fixtures/ultrafeedback_mini.jsonl",
        scores="ultrafeedback-paper",
        test_size=3,
        output=root / "set",
        cache_dir=root / "cache",
        ignore_unknown_models=True,
    )
    return root / "set"


def _argv(stage, model, data, out, *extra) -> list[str]:
    return [
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


def _cli(stage, *argv) -> int:
    with pytest.raises(SystemExit) as exc:
        main(["train", stage, *argv])
    return exc.value.code


def _train_pairs(data: Path, mode: str) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(next((data / mode).glob("train-*.parquet"))).to_pylist()


def _check_provenance(out: Path, data: Path, stage: str, mode: str = "sim") -> dict:
    prov = json.loads((out / "karma_provenance.json").read_text())
    ds = prov["dataset"]
    assert prov["stage"] == stage and prov["run_config"]["stage"] == stage
    assert (ds["name"], ds["config"], ds["local_path"]) == (str(data), mode, str(data.resolve()))
    assert ds["tau"] == pytest.approx(0.1) and ds["score_table"]["source"] == "preset:ultrafeedback-paper"
    assert ds["s_pref"]["gpt-4"] == pytest.approx(0.99, abs=0.005)  # paper Table 3
    assert prov["versions"]["trl"] and prov["world_size"] == 1
    card = (out / "README.md").read_text()
    assert card.count("## KARMA provenance") == 1 and f"`{mode}`" in card
    return prov


def _check_stats(out: Path, data: Path, mode: str, rows: int) -> dict:
    """The batch statistics against the set's own kinship values (an independent lookup)."""
    stats = json.loads((out / "karma_batch_stats.json").read_text())
    assert stats["disabled"] is None and stats["rows"] == rows
    kin = {f"{r['chosen_model']}>{r['rejected_model']}": r["kinship"] for r in _train_pairs(data, mode)}
    assert set(stats["pair_counts"]) <= set(kin) and sum(stats["pair_counts"].values()) == rows
    mean = sum(kin[p] * n for p, n in stats["pair_counts"].items()) / rows
    assert stats["kinship_mean"] == pytest.approx(mean)
    return stats


def _check_causal_lm(out: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    assert model.generate(**ids, max_new_tokens=2, do_sample=False).shape[-1] == ids["input_ids"].shape[-1] + 2


# ------------------------------------------------------------------------------------------- KTO
def test_unpair_keeps_the_pair_columns_block_by_block():
    """chosen -> label True, rejected -> label False; `block` pairs give their chosen rows, then their rejected
    rows; checked against TRL's own unpair_preference_dataset as a multiset."""
    from datasets import Dataset
    from trl import unpair_preference_dataset

    from karma_hf.train.kto import unpair

    pairs = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": f"q{i}"}],
                "chosen": [{"role": "assistant", "content": f"good{i}"}],
                "rejected": [{"role": "assistant", "content": f"bad{i}"}],
                "kinship": 0.9 + i / 100,
                "chosen_model": f"m{i}",
                "rejected_model": "z",
                "s_pref_chosen": 1.0,
                "s_pref_rejected": i / 10,
            }
            for i in range(5)
        ]
    )
    rows = unpair(pairs, "train", block=2)
    got = [(r["completion"][0]["content"], r["label"], r["kinship"], r["chosen_model"]) for r in rows]
    assert [g[0] for g in got] == ["good0", "good1", "bad0", "bad1", "good2", "good3", "bad2", "bad3", "good4", "bad4"]
    assert all(label == text.startswith("good") for text, label, _, _ in got)
    assert all(
        kin == pytest.approx(0.9 + int(text[-1]) / 100) and model == f"m{text[-1]}" for text, _, kin, model in got
    )
    assert "chosen" not in rows.column_names and "rejected" not in rows.column_names
    trl_rows = unpair_preference_dataset(pairs)
    key = ("prompt", "completion", "label", "kinship", "chosen_model", "rejected_model")
    assert Counter(json.dumps([r[k] for k in key]) for r in rows) == Counter(
        json.dumps([r[k] for k in key]) for r in trl_rows
    )
    assert [r["completion"][0]["content"] for r in unpair(pairs, "train")] == [f"good{i}" for i in range(5)] + [
        f"bad{i}" for i in range(5)
    ]


def test_kto_on_pairs_of_a_real_build(tiny_model_dir, built, tmp_path):
    out = tmp_path / "kto"
    assert _cli("kto", *_argv("kto", tiny_model_dir, built, out, "--dataset_config", "sim", "--max_steps", 2)) == 0
    _check_causal_lm(out)
    prov = _check_provenance(out, built, "kto")
    n = len(_train_pairs(built, "sim"))
    # the pairs were unpaired on the fly (2 rows each), shuffled once with the seed (KTO reads in order)
    assert prov["dataset"]["num_train_rows"] == 2 * n
    assert prov["order"] == {
        "order": "shuffle",
        "sampler": "sequential",
        "seed": 0,
        "shuffled_rows": True,
        "trainer_rows": 2 * n,
    }
    assert prov["training_args"]["train_sampling_strategy"] == "sequential"
    stats = _check_stats(out, built, "sim", rows=2 * 4)  # 2 steps x batch 4 unpaired rows
    # batch 4 = 2 pairs x (chosen, rejected): every trained pair shows up with both of its rows
    assert all(count % 2 == 0 for count in stats["pair_counts"].values())


def test_kto_on_an_unpaired_split(tiny_model_dir, tmp_path):
    """A set with TRL's unpaired format (prompt/completion/label) as its own split trains as it is."""
    import yaml
    from datasets import Dataset
    from karma_set import write_karma_set
    from trl import unpair_preference_dataset

    data = write_karma_set(tmp_path / "set", modes=("sim",), n_train=8, n_test=4)
    pairs = Dataset.from_parquet(str(data / "sim" / "train-00000-of-00001.parquet"))
    unpaired = unpair_preference_dataset(pairs.remove_columns(["messages"]))
    unpaired.to_parquet(str(data / "sim" / "unpaired-00000-of-00001.parquet"))
    card = (data / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    meta["configs"][0]["data_files"].append({"split": "unpaired", "path": "sim/unpaired-00000-of-00001.parquet"})
    (data / "README.md").write_text("---\n" + yaml.safe_dump(meta, sort_keys=False) + "---" + card.split("---", 2)[2])

    out = tmp_path / "kto-unpaired"
    result = train(
        "kto",
        _argv(
            "kto",
            tiny_model_dir,
            data,
            out,
            "--dataset_config",
            "sim",
            "--dataset_train_split",
            "unpaired",
            "--max_steps",
            2,
        ),
    )
    assert result.global_step == 2
    prov = json.loads((out / "karma_provenance.json").read_text())
    assert prov["stage"] == "kto" and prov["dataset"]["num_train_rows"] == len(unpaired) == 16
    assert "trainer_rows" not in prov["order"]  # taken as it is
    stats = json.loads((out / "karma_batch_stats.json").read_text())
    assert stats["disabled"] is None and stats["rows"] == 8  # its kinship columns came along


# ------------------------------------------------------------------------------------------ ORPO
def test_orpo_on_pairs_of_a_real_build(tiny_model_dir, built, tmp_path):
    out = tmp_path / "orpo"
    assert (
        _cli(
            "orpo",
            *_argv(
                "orpo",
                tiny_model_dir,
                built,
                out,
                "--dataset_config",
                "sim",
                "--max_steps",
                2,
                "--per_device_train_batch_size",
                2,
                "--logging_steps",
                1,
            ),
        )
        == 0
    )
    _check_causal_lm(out)
    prov = _check_provenance(out, built, "orpo")
    assert prov["order"] == {"order": "shuffle", "sampler": "random", "seed": 0}
    assert prov["training_args"]["beta"] == pytest.approx(0.1)
    _check_stats(out, built, "sim", rows=2 * 2)
    state = json.loads((out / "karma_provenance.json").read_text())
    assert state["run_config"]["training"]["max_steps"] == 2


def test_orpo_is_the_experimental_trl_trainer():
    from karma_hf.train.stages import get_stage

    stage = get_stage("orpo")
    assert stage.config_class().__module__.startswith("trl.experimental.orpo")
    assert stage.trainer_class().__mro__[1].__module__.startswith("trl.experimental.orpo")


# ---------------------------------------------------------------------------------------- reward
def test_reward_model_on_pairs_of_a_real_build(tiny_model_dir, built, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "reward"
    result = train(
        "reward",
        _argv(
            "reward",
            tiny_model_dir,
            built,
            out,
            "--dataset_config",
            "sim",
            "--max_steps",
            2,
            "--per_device_train_batch_size",
            2,
            "--eval_strategy",
            "steps",
            "--eval_steps",
            2,
        ),
    )
    assert result.global_step == 2
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_labels == 1 and model.config.pad_token_id is not None
    tok = AutoTokenizer.from_pretrained(out)
    pair = _train_pairs(built, "sim")[0]
    ids = tok.apply_chat_template(pair["prompt"] + pair["chosen"], return_tensors="pt", return_dict=True)
    with torch.no_grad():
        assert model(**ids).logits.shape == (1, 1)
    prov = _check_provenance(out, built, "reward")
    assert prov["karma_eval"] is None
    _check_stats(out, built, "sim", rows=2 * 2)
    # the reward model's post-training evaluation: TRL's pairwise accuracy on the test pairs
    evals = [h for h in result.log_history if "eval_accuracy" in h]
    assert evals and 0.0 <= evals[-1]["eval_accuracy"] <= 1.0 and math.isfinite(evals[-1]["eval_margin"])


def test_reward_refuses_lm_eval_tasks_and_trains_the_head_with_lora(tiny_model_dir, built, tmp_path):
    from karma_hf.train.args import parse_args
    from karma_hf.train.reward import STAGE

    with pytest.raises(KarmaError, match="do not apply to a reward model"):
        train(
            "reward",
            _argv(
                "reward",
                tiny_model_dir,
                built,
                tmp_path / "o",
                "--dataset_config",
                "sim",
                "--karma_eval_tasks",
                "karma",
            ),
        )
    args = parse_args("reward", _argv("reward", tiny_model_dir, built, tmp_path / "o", "--use_peft", "true"))
    assert STAGE.check_args is not None
    STAGE.check_args(args)
    assert args.model.lora_task_type == "SEQ_CLS"


# ----------------------------------------------------------------------------- DPO loss variants
@pytest.mark.parametrize(
    "recipe", sorted((REPO / "recipes" / "qwen2.5-3b-instruct").glob("dpo-*.yaml")), ids=lambda p: p.stem
)
def test_dpo_loss_variant_recipe_trains_a_step(recipe, tiny_model_dir, built, tmp_path):
    """The variant's own loss fields (loss_type, loss_weights, label_smoothing) on the tiny DPO recipe."""
    import yaml

    from karma_hf.train.args import parse_args

    fields = {
        k: v
        for k, v in yaml.safe_load(recipe.read_text()).items()
        if k in ("beta", "loss_type", "loss_weights", "label_smoothing")
    }
    assert "loss_type" in fields
    tiny = tmp_path / "tiny-variant.yaml"
    tiny.write_text(TINY["dpo"].read_text().replace("beta: 0.1\n", "") + yaml.safe_dump(fields))
    out = tmp_path / recipe.stem
    argv = [
        "--config",
        str(tiny),
        "--model_name_or_path",
        str(tiny_model_dir),
        "--dataset_name",
        str(built),
        "--output_dir",
        str(out),
        "--dataset_config",
        "sim",
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "2",
        "--logging_steps",
        "1",
    ]
    assert parse_args("dpo", argv).training.loss_type == list(
        fields["loss_type"] if isinstance(fields["loss_type"], list) else [fields["loss_type"]]
    )
    result = train("dpo", argv)
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    assert result.global_step == 1 and losses and math.isfinite(losses[0])
    assert (
        json.loads((out / "karma_provenance.json").read_text())["training_args"]["loss_type"]
        == parse_args("dpo", argv).training.loss_type
    )


# ------------------------------------------------------------------ compare across stages, eval
@pytest.mark.slow
def test_post_training_eval_after_kto_and_compare_across_stages(tiny_model_dir, built, tmp_path, monkeypatch):
    """The karma lm-eval runs on the saved KTO model; `karma compare` then sets runs of three stages side by side
    (the ORPO and DPO runs' scores are written here, their provenance is their own)."""
    pytest.importorskip("karma_hf.evaluation.run")
    from karma_hf.evaluation.compare import compare_runs, comparison_figure
    from karma_hf.scores import KARMA_TASKS

    monkeypatch.setenv("KARMA_DATA_DIR", str(REPO / "tests" / "fixtures" / "karma_data"))
    runs = {}
    for stage in ("kto", "orpo", "dpo"):
        runs[stage] = tmp_path / f"{stage}-sim"
        extra = ["--karma_eval_tasks", "karma_arc_easy", "--karma_eval_limit", 2] if stage == "kto" else []
        result = train(
            stage,
            _argv(
                stage,
                tiny_model_dir,
                built,
                runs[stage],
                "--dataset_config",
                "sim",
                "--max_steps",
                1,
                "--per_device_train_batch_size",
                2,
                *extra,
            ),
        )
        if stage == "kto":
            assert len(result.eval_files) == 1
    kto_results = json.loads(next((runs["kto"] / "karma_eval").glob("*/results_*.json")).read_text())
    assert kto_results["config"]["limit"] == 2
    for stage, value in (("orpo", 0.25), ("dpo", 0.75)):
        res = runs[stage] / "karma_eval" / f"__runs__{stage}"
        res.mkdir(parents=True)
        (res / "results_2026-11-27T10-00-00.000000.json").write_text(
            json.dumps(
                {
                    "results": {"karma_arc_easy": {"alias": "karma_arc_easy", KARMA_TASKS["karma_arc_easy"]: value}},
                    "config": {"model": "hf", "model_args": {"pretrained": str(runs[stage])}, "limit": 2},
                    "model_name": str(runs[stage]),
                    "date": 1_790_000_000.0,
                    "lm_eval_version": "0.4.13",
                }
            )
        )
    cmp = compare_runs([runs["orpo"], runs["kto"], runs["dpo"]], baseline=runs["dpo"])
    assert [(r.mode, r.stage) for r in cmp.runs] == [("sim", "dpo"), ("sim", "kto"), ("sim", "orpo")]
    assert cmp.benchmarks == ["karma_arc_easy"]
    assert cmp.delta(cmp.runs[2], "karma_arc_easy") == pytest.approx(0.25 - 0.75)
    rows = [[c.strip() for c in line.strip("|").split("|")][:3] for line in cmp.to_markdown().splitlines()[2:]]
    assert rows == [["dpo-sim (baseline)", "sim", "dpo"], ["kto-sim", "sim", "kto"], ["orpo-sim", "sim", "orpo"]]
    labels = [t.get_text() for t in comparison_figure(cmp).axes[0].get_legend().get_texts()]
    assert labels == ["dpo-sim — K_sim, dpo (baseline)", "kto-sim — K_sim, kto", "orpo-sim — K_sim, orpo"]


# ------------------------------------------------------------------------------ real-model tier
@pytest.fixture(scope="module")
def smollm2():
    """SmolLM2-135M-Instruct only (conftest's `real_models` also converts Gemma); skipped like the tier."""
    import os

    from real_models import MissingRealModelPackage, smollm2_model

    try:
        return smollm2_model()
    except MissingRealModelPackage as exc:
        if os.environ.get("KARMA_REQUIRE_REAL_MODELS", "").strip() in {"1", "true", "yes"}:
            pytest.fail(f"real-model tier: {exc}")
        pytest.skip(f"real-model tier: {exc}")


@pytest.mark.real
@pytest.mark.slow
def test_orpo_on_smollm2_two_steps(smollm2, built, tmp_path):
    """ORPO (the experimental trainer) on the real SmolLM2-135M-Instruct, its own ChatML template."""
    out = tmp_path / "smollm2-orpo"
    result = train(
        "orpo",
        _argv(
            "orpo",
            smollm2.path,
            built,
            out,
            "--dataset_config",
            "sim",
            "--max_steps",
            2,
            "--per_device_train_batch_size",
            1,
            "--logging_steps",
            1,
            "--max_length",
            128,
            "--learning_rate",
            "1e-5",
        ),
    )
    assert result.global_step == 2
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    _check_causal_lm(out)
    prov = _check_provenance(out, built, "orpo")
    assert prov["run_config"]["model"]["model_name_or_path"] == str(smollm2.path)
    _check_stats(out, built, "sim", rows=2 * 1)
