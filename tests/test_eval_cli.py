"""The karma tasks through the real `lm_eval run` CLI and `karma eval`, on the tiny model, offline.

Each CLI run spends ~11 s indexing lm-eval's built-in tasks, so there are three runs:
the `karma_*` glob, the `karma` group under --apply_chat_template, and `karma eval` with
two models. Generation is capped with lm-eval's own `--gen_kwargs max_gen_toks=...`
(the random model never stops early); the task settings themselves are checked in
test_tasks_scoring.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from karma_hf.errors import KarmaError
from karma_hf.resources import tasks_dir

FIXTURES = Path(__file__).parent / "fixtures" / "karma_data"
TASKS = [
    "karma_arc_challenge",
    "karma_arc_easy",
    "karma_hellaswag",
    "karma_ifeval",
    "karma_mmlu_pro",
    "karma_mmlu_stem",
]
GROUPS = ["karma", "karma-instruction", "karma-knowledge", "karma-reasoning"]
#: the chain-of-thought protocol: its own group, never part of `karma` or of 'karma_*'
COT = [
    "karma-cot",
    "karma-cot-arc_challenge",
    "karma-cot-arc_easy",
    "karma-cot-hellaswag",
    "karma-cot-mmlu_pro",
    "karma-cot-mmlu_stem",
]
BIN = Path(sys.executable).parent


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KARMA_DATA_DIR": str(FIXTURES),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def _run(cmd: list[str], tmp_path: Path, timeout: int = 400) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def _results(folder: Path) -> list[Path]:
    return sorted(folder.glob("*/results_*.json"))


@pytest.mark.slow
def test_lm_eval_cli_glob_runs_the_six_tasks(tiny_model_dir: Path, tmp_path: Path) -> None:
    from karma_hf.scores import KARMA_TASKS, load_scores

    out = tmp_path / "out"
    _run(
        [
            str(BIN / "lm_eval"),
            "run",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tiny_model_dir}",
            "--include_path",
            str(tasks_dir()),
            "--tasks",
            "karma_*",
            "--limit",
            "2",
            "--gen_kwargs",
            "max_gen_toks=24",
            "--output_path",
            str(out),
        ],
        tmp_path,
    )
    [results] = _results(out)
    data = json.loads(results.read_text())
    assert sorted(data["results"]) == TASKS and data["group_subtasks"] == {}
    for task, key in KARMA_TASKS.items():
        assert 0.0 <= data["results"][task][key] <= 1.0
        assert data["n-samples"][task]["effective"] == 2
    assert data["results"]["karma_mmlu_pro"].keys() >= {"exact_match,strict-match", "exact_match,robust-extract"}
    table = load_scores(out)
    assert table.models == [str(tiny_model_dir)] and sorted(table.benchmarks) == sorted(KARMA_TASKS)


@pytest.mark.slow
def test_lm_eval_cli_group_with_chat_template(tiny_model_dir: Path, tmp_path: Path) -> None:
    from karma_hf.scores import load_scores

    out = tmp_path / "out"
    _run(
        [
            str(BIN / "lm_eval"),
            "run",
            "--model",
            "hf",
            "--model_args",
            f"pretrained={tiny_model_dir}",
            "--include_path",
            str(tasks_dir()),
            "--tasks",
            "karma",
            "--limit",
            "2",
            "--apply_chat_template",
            "--gen_kwargs",
            "max_gen_toks=24",
            "--log_samples",
            "--output_path",
            str(out),
        ],
        tmp_path,
    )
    [results] = _results(out)
    data = json.loads(results.read_text())
    assert sorted(data["groups"]) == GROUPS
    assert sorted(data["results"]) == sorted(GROUPS + TASKS)
    assert data["chat_template"] and "exact_match,strict-match" in data["groups"]["karma-reasoning"]
    [sample] = [
        json.loads(line)
        for line in next(out.glob("*/samples_karma_arc_easy_*.jsonl")).read_text().splitlines()
        if json.loads(line)["filter"] == "strict-match"
    ][:1]
    prompt = sample["arguments"]["gen_args_0"]["arg_0"]
    # description -> system turn, question -> user turn, generation prompt for the assistant
    assert prompt.startswith("<|im_start|>system\nThe following is a multiple choice question.")
    assert "<|im_start|>user\nQuestion: " in prompt and prompt.endswith("<|im_start|>assistant\n")
    assert sample["target"] in "ABCDE" and sample["filtered_resps"][0] in [*"ABCDE", "[invalid]"]
    assert load_scores(out).models == [str(tiny_model_dir)]


@pytest.mark.slow
def test_karma_eval_two_models_one_results_file_each(tiny_model_dir: Path, tmp_path: Path) -> None:
    from karma_hf.scores import load_scores

    second = tmp_path / "models" / "tiny-copy"
    shutil.copytree(tiny_model_dir, second)
    models_file = tmp_path / "models.txt"
    models_file.write_text(f"# one per line\n{second}\n")
    out = tmp_path / "evals"
    proc = _run(
        [
            str(BIN / "karma"),
            "eval",
            "--model_args",
            f"pretrained={tiny_model_dir},dtype=float32",
            "--models-file",
            str(models_file),
            "--limit",
            "1",
            "--gen_kwargs",
            "max_gen_toks=8",
            "--output_path",
            str(out),
        ],
        tmp_path,
    )
    files = _results(out)
    assert len(files) == 2 and len({f.parent for f in files}) == 2
    assert sum(line.startswith("wrote ") for line in proc.stdout.splitlines()) == 2
    for f in files:
        data = json.loads(f.read_text())
        assert sorted(data["groups"]) == GROUPS and data["config"]["limit"] == 1
        assert data["config"]["gen_kwargs"] == {"max_gen_toks": 8}  # passed through to lm-eval
    table = load_scores(out)
    assert sorted(table.models) == sorted([str(tiny_model_dir), str(second)])


# --------------------------------------------------------------------------- errors (no model run)


def _karma(args: list[str], capsys) -> tuple[int, str]:
    from karma_hf.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code, capsys.readouterr().err


def test_eval_errors_are_one_clear_line(tiny_model_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KARMA_DATA_DIR", str(FIXTURES))
    ok = f"pretrained={tiny_model_dir}"
    code, err = _karma(["eval", "--model_args", ok, "--tasks", "karma_mmlu"], capsys)
    assert code == 2 and err.startswith("error: unknown task 'karma_mmlu'") and "karma_mmlu_stem" in err
    code, err = _karma(["eval", "--model_args", ok, "--tasks", "karma*"], capsys)  # lm-eval: "Duplicate task"
    assert code == 2 and "selects the group 'karma' and its member" in err
    code, err = _karma(["eval", "--model_args", f"pretrained={tmp_path / 'no-such-model'}"], capsys)
    assert code == 2 and err == f"error: model path does not exist: {tmp_path / 'no-such-model'}\n"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, err = _karma(["eval", "--model_args", "pretrained=karma-test-org/not-cached"], capsys)
    assert code == 2 and "neither a local folder nor in the Hub cache" in err
    partial = tmp_path / "data"
    shutil.copytree(FIXTURES, partial)
    (partial / "Rowan__hellaswag" / "validation.jsonl").unlink()
    monkeypatch.setenv("KARMA_DATA_DIR", str(partial))
    code, err = _karma(["eval", "--model_args", ok, "--tasks", "karma-reasoning"], capsys)
    assert code == 2 and f"is missing {partial / 'Rowan__hellaswag' / 'validation.jsonl'}" in err
    code, err = _karma(["eval", "--model_args", ok, "--include_path", "x"], capsys)
    assert code == 2 and "--include_path is set by karma eval itself" in err
    code, err = _karma(["eval", "--model_args", ok, "--tasks", "karma_arc_easy", "--no-such-option"], capsys)
    assert code == 2 and "unknown lm-eval option(s): --no-such-option" in err
    code, err = _karma(["eval", "--tasks", "karma"], capsys)
    assert code == 2 and "no model given" in err


def test_tasks_path_prints_the_tasks_folder(capsys) -> None:
    from karma_hf.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["tasks-path"])
    assert exc.value.code == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == tasks_dir() and sorted(p.stem for p in path.glob("karma*.yaml")) == sorted(GROUPS + TASKS + COT)


def test_evaluate_model_rejects_a_json_output_path(tmp_path: Path) -> None:
    from karma_hf.evaluation.run import evaluate_model

    with pytest.raises(KarmaError, match="must be a folder"):
        evaluate_model(str(tmp_path), output_path=tmp_path / "r.json")


def test_models_file_and_model_checks(tmp_path: Path, monkeypatch) -> None:
    from karma_hf.evaluation.run import check_model, read_models_file

    f = tmp_path / "models.txt"
    f.write_text("# origin models\n/models/a   # local\n\npretrained=org/b,dtype=bfloat16\n")
    assert read_models_file(f) == ["pretrained=/models/a", "pretrained=org/b,dtype=bfloat16"]
    f.write_text("# nothing\n")
    with pytest.raises(KarmaError, match="lists no model"):
        read_models_file(f)
    with pytest.raises(KarmaError, match="models file not found"):
        read_models_file(tmp_path / "missing.txt")
    assert check_model(f"pretrained={tmp_path},dtype=float32") == str(tmp_path)
    with pytest.raises(KarmaError, match="is a file"):
        check_model(f"pretrained={f}")
    with pytest.raises(KarmaError, match="has no pretrained="):
        check_model("dtype=float32")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for hub_id in ("karma-test-org/absent-model", "absent-legacy-model"):
        with pytest.raises(KarmaError, match="neither a local folder nor in the Hub cache"):
            check_model(f"pretrained={hub_id}")
