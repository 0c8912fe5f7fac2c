"""The dataset card of a build: valid Hub metadata that datasets reads back, counts equal to the report."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from karma_hf.cards.dataset import (
    dataset_card_metadata as card_metadata,
)
from karma_hf.cards.dataset import (
    render_dataset_card,
    size_category,
    write_dataset_card,
)
from karma_hf.cards.model import render_model_card_section
from karma_hf.layout import DROP_REASONS, SPLITS, output_schema, shard_name, shard_split
from karma_hf.pairs.builder import build

FIXTURE = Path(__file__).parent / "fixtures" / "ultrafeedback_mini.jsonl"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = tmp_path_factory.mktemp("hf-cache")
    out = tmp_path_factory.mktemp("card") / "karma-mini"
    return build(
        FIXTURE,
        test_size=3,
        output=out,
        cache_dir=cache,
        ignore_unknown_models=True,
        command="karma build --source tests/fixtures/ultrafeedback_mini.jsonl --output karma-mini",
    )


def _front_matter(text: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "card has no YAML front matter"
    return yaml.safe_load(match.group(1))


def test_card_metadata_is_valid_and_complete(built):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(built.output / "README.md")
    meta = card.data.to_dict()
    assert meta["license"] == "other" and meta["language"] == ["en"]
    assert meta["task_categories"] == ["text-generation"]
    assert {"dpo", "preference", "karma"} <= set(meta["tags"])
    assert meta["source_datasets"] == ["original"]  # a local file is not a Hub dataset
    assert meta["size_categories"] == ["n<1K"]
    assert _front_matter((built.output / "README.md").read_text()) == meta  # plain YAML, no anchors/tags
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert list(configs) == ["score", "sim", "score_sim", "rlaif"]
    for mode, config in configs.items():
        files = {f["split"]: f["path"] for f in config["data_files"]}
        assert files == {s: f"{mode}/{shard_name(shard_split(s))}" for s in SPLITS}  # train_sft: train's file
        assert all((built.output / p).is_file() for p in files.values())


def test_card_is_what_datasets_reads(built):
    """datasets parses `configs` and `dataset_info` from the card: features and sizes must match."""
    from datasets import Features
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    data = DatasetCard.load(built.output / "README.md").data
    configs = MetadataConfigs.from_dataset_card_data(data)
    assert set(configs) == set(built.report["modes"])
    infos = DatasetInfosDict.from_dataset_card_data(data)
    for mode, info in infos.items():
        assert info.features == Features.from_arrow_schema(output_schema())
        assert {name: s.num_examples for name, s in info.splits.items()} == built.report["modes"][mode]["splits"]
        # each file once: train_sft reads train's
        assert info.download_size == sum(
            (built.output / mode / shard_name(s)).stat().st_size for s in ("train", "test")
        )


def test_card_counts_equal_build_report(built):
    text = (built.output / "README.md").read_text()
    report = json.loads((built.output / "build_report.json").read_text())
    modes = list(report["modes"])
    header = next(line for line in text.splitlines() if line.startswith("| reason | meaning |"))
    assert [c.strip(" `") for c in header.split("|")[3:-1]] == modes

    def row(label: str) -> list[int]:
        line = next(line for line in text.splitlines() if line.startswith(f"| {label} |"))
        return [int(c) for c in line.split("|")[3:-1]]

    assert row("**kept**") == [report["modes"][m]["kept"] for m in modes]
    for reason in DROP_REASONS:
        assert row(f"`{reason}`") == [report["modes"][m]["dropped"][reason] for m in modes], reason
    for mode in modes:  # the config table: train / test counts
        line = next(line for line in text.splitlines() if line.startswith(f"| `{mode}` | "))
        splits = report["modes"][mode]["splits"]
        assert f"| {splits['train']} / {splits['test']} |" in line
        top = report["modes"][mode]["top_pairs"][0]
        assert f"| `{top['chosen']}` | `{top['rejected']}` | {top['count']} |" in text
    assert "| 1 | `gpt-4` | 0.990 |" in text  # S_pref ranking
    assert "τ = 0.1" in text and "arXiv 2502.18744" in text and "UltraFeedback" in text
    assert "karma build --source tests/fixtures/ultrafeedback_mini.jsonl --output karma-mini" in text
    assert 'load_dataset("<user>/<repo>", "sim")' in text
    assert "`mystery-7b` (2)" in text  # skipped unknown-model completions are stated


def test_card_for_the_hub_source_and_repo(built):
    report = copy.deepcopy(built.report)
    report["source"].update(id="openbmb/UltraFeedback", revision="40b436560ca83a8dba36114c22ab3c66e43f6d5e")
    card = render_dataset_card(report, table=built.table, repo_id="me/karma-uf")
    assert card.data.license == "mit" and card.data.source_datasets == ["openbmb/UltraFeedback"]
    assert 'load_dataset("me/karma-uf", "sim")' in card.text
    assert "https://huggingface.co/datasets/openbmb/UltraFeedback" in card.text
    assert "40b436560ca83a8dba36114c22ab3c66e43f6d5e" in card.text
    assert str(card) == str(render_dataset_card(report, table=built.table, repo_id="me/karma-uf"))  # deterministic


def test_empty_splits_and_modes_are_not_declared(built, tmp_path):
    report = copy.deepcopy(built.report)
    report["configs"]["sim"]["splits"]["test"] = 0
    report["configs"]["rlaif"]["splits"] = {s: 0 for s in SPLITS}
    meta = card_metadata(report)
    configs = {c["config_name"]: [f["split"] for f in c["data_files"]] for c in meta["configs"]}
    assert configs["sim"] == ["train", "train_sft"] and "rlaif" not in configs
    assert write_dataset_card(tmp_path, report).read_text().startswith("---\n")


def test_model_card_section(built):
    """The model card section is rendered from a run's provenance (hub_cards/model_card_section.md)."""
    from karma_hf.set_provenance import dataset_provenance

    dataset = dataset_provenance(str(built.output), "sim")
    prov = {
        "karma_hf_version": "9.9",
        "stage": "dpo",
        "dataset": {**dataset, "name": "me/karma-uf"},
        "versions": {"trl": "1.16.0"},
        "world_size": 2,
        "run_config": {"model": {"model_name_or_path": "org/base"}},
    }
    text = render_model_card_section(prov, batch_rows=12, batch_kinship_mean=0.5)
    assert text.startswith("<!-- karma-provenance:begin -->") and text.endswith("<!-- karma-provenance:end -->")
    assert "**me/karma-uf**" in text and "**`sim`**" in text and "K_sim" in text
    assert "| base model | `org/base` |" in text and "| world size | `2` |" in text
    top = max(dataset["s_pref"].items(), key=lambda kv: kv[1])
    assert f"| {top[0]} | {top[1]:.4f} |" in text
    assert "Batches seen: 12 rows, mean kinship 0.5000." in text
    assert "Batches seen" not in render_model_card_section(prov)


@pytest.mark.parametrize("n, label", [(0, "n<1K"), (999, "n<1K"), (60_000, "10K<n<100K"), (2_000_000, "1M<n<10M")])
def test_size_category(n, label):
    assert size_category(n) == label
