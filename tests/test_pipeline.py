"""`karma run PIPELINE.yaml` on tiny random models, offline.

One real run (module fixture, through the installed CLI in a child process) goes through every
stage: lm-eval of two tiny models on two karma tasks (KARMA_DATA_DIR fixtures), generation,
kinship, build, a one-step SFT student, its evaluation and the comparison. Tiny random models
score 0 everywhere, so the pipeline's own ``kinship.score_overrides`` (and a reference model from
``kinship.scores``) give them distinct scores after the evaluation really ran. The other tests
work on copies of that output folder (stage hashes do not depend on where the folder is): a rerun
skips everything and touches no file, a new tau reruns kinship and build only, --dry-run creates
nothing, and bad pipeline files stop with one `error:` line and exit 2 before any work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from karma_hf.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
KARMA_DATA = FIXTURES / "karma_data"
ALL_STAGES = ["evaluate", "generate", "kinship", "build", "train", "evaluate-students", "compare"]
MAX_NEW_TOKENS = 6
N_PROMPTS = 6


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _files(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its mtime (ns)."""
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def _lines(err: str) -> dict[str, str]:
    """``{stage: "run (why)" | "skip (why)"}`` from the ``[i/n] stage: ...`` progress lines."""
    out = {}
    for line in err.splitlines():
        if line.startswith("[") and "] " in line and ": " in line:
            stage, _, rest = line.split("] ", 1)[1].partition(": ")
            out[stage] = rest
    return out


@pytest.fixture(scope="module")
def workspace(tiny_model_dir, tmp_path_factory) -> dict:
    """Two tiny models, a prompt file, a reference score CSV and the pipeline (as a dict)."""
    from tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("pipeline")
    second = build_tiny_model(root / "tiny-b", seed=1)
    prompts = root / "prompts.jsonl"
    rows = [{"text": f"Question {i}: what is {i} plus {i + 1}?"} for i in range(N_PROMPTS)]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    reference = root / "reference.csv"
    reference.write_text("model,karma_arc_easy,karma_mmlu_stem\nreference,0.3,0.5\n", encoding="utf-8")
    pipeline = {
        "description": "tiny test pool",
        "output": str(root / "out"),
        "pool": {
            "model": "hf",
            "models": [
                {"model_args": f"pretrained={tiny_model_dir}", "name": "tiny-a", "apply_chat_template": True},
                {"model_args": f"pretrained={second},dtype=float32", "name": "tiny-b"},
            ],
        },
        "evaluate": {
            "benchmarks": ["karma_arc_easy", "karma_mmlu_stem"],
            "limit": 1,
            "gen_kwargs": {"max_gen_toks": 4},
        },
        "prompts": {"source": str(prompts), "column": "text"},
        # the tiny models emit newlines under greedy decoding: sample (seeded) to get non-empty responses
        "generate": {"seed": 3, "generation": {"max_new_tokens": MAX_NEW_TOKENS, "temperature": 1.0}, "batch_size": 3},
        "kinship": {
            "tau": 0.1,
            "scores": [str(reference)],
            "score_overrides": {
                "tiny-a": {"karma_arc_easy": 0.8, "karma_mmlu_stem": 0.7},
                "tiny-b": {"karma_arc_easy": 0.6, "karma_mmlu_stem": 0.65},
            },
        },
        "build": {"modes": ["score", "sim"], "test_size": 0},
        "train": {
            "students": [
                {
                    "name": "sft-sim",
                    "stage": "sft",
                    "recipe": "tiny/sft.yaml",
                    "model": str(tiny_model_dir),
                    "mode": "sim",
                    "args": {"max_steps": 1, "max_length": 64},
                },
            ],  # fmt: skip
            "evaluate": {"benchmarks": ["karma_arc_easy"], "limit": 1, "gen_kwargs": {"max_gen_toks": 4}},
        },
    }
    return {"root": root, "pipeline": pipeline, "models": [Path(tiny_model_dir), second]}


@pytest.fixture(scope="module")
def first_run(workspace) -> dict:
    """The whole pipeline once, through the installed CLI (`python -m karma_hf.cli run`)."""
    path = _write(workspace["root"] / "pipeline.yaml", workspace["pipeline"])
    env = {**os.environ, "KARMA_DATA_DIR": str(KARMA_DATA), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "karma_hf.cli", "run", str(path), "--quiet"],
        env=env, cwd=workspace["root"], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return {"out": Path(workspace["pipeline"]["output"]), "stdout": proc.stdout, "stderr": proc.stderr}


def _copy(workspace, first_run, tmp_path: Path, **changes) -> tuple[Path, Path]:
    """A copy of the first run's output and a pipeline file pointing at it (with ``changes``)."""
    out = tmp_path / "out"
    shutil.copytree(first_run["out"], out)  # copy2: mtimes kept
    data = json.loads(json.dumps(workspace["pipeline"]))
    data["output"] = str(out)
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if value is None:
            data.pop(section, None)
        elif field:
            data[section][field] = value
        else:
            data[section] = value
    return _write(tmp_path / "pipeline.yaml", data), out


# ============================================================================ the real run
def test_first_run_runs_every_stage(first_run, workspace) -> None:
    from datasets import load_dataset

    out = first_run["out"]
    lines = _lines(first_run["stderr"])
    assert list(lines) == ALL_STAGES
    assert all(v == "run (no previous run)" for v in lines.values()), lines
    assert f"[3/{len(ALL_STAGES)}] kinship: run (no previous run)" in first_run["stderr"]
    # every stage recorded a complete state with its hash
    for stage in ALL_STAGES:
        state = json.loads((out / "state" / f"{stage}.json").read_text())
        assert state["complete"] and len(state["hash"]) == 64 and state["stage"] == stage
    assert [p.name for p in (out / "state").iterdir() if p.name.startswith(".")] == [".lock"]  # no temporary files
    # evaluate: lm-eval really ran each model on both tasks
    evaluate = json.loads((out / "state" / "evaluate.json").read_text())
    assert sorted(evaluate["items"]) == ["tiny-a", "tiny-b"]
    for name, files in evaluate["item_outputs"].items():
        [results] = files
        data = json.loads((out / results).read_text())
        assert {"karma_arc_easy", "karma_mmlu_stem"} <= set(data["results"]) and data["config"]["limit"] == 1
        assert bool(data.get("chat_template")) == (name == "tiny-a")  # the pool entry's own setting
    # generate: every model answered every prompt
    manifest = json.loads((out / "generate" / "karma_generate.json").read_text())
    assert manifest["complete"] and manifest["counts"]["rows"] == N_PROMPTS
    # kinship: measured results + reference CSV + overrides
    kin = json.loads((out / "kinship" / "kinship.json").read_text())
    assert kin["ranking"] == ["tiny-a", "tiny-b", "reference"]
    assert kin["scores"]["scores"]["tiny-a"] == {"karma_arc_easy": 0.8, "karma_mmlu_stem": 0.7}
    assert kin["pairs"]["score"]["chosen"] == "tiny-a" and kin["kinship"]["tau"] == 0.1
    # build: the KARMA pairs follow the kinship (the reference model has no responses)
    report = json.loads((out / "dataset" / "build_report.json").read_text())
    assert report["source"]["format"] == "generated" and set(report["modes"]) == {"score", "sim"}
    pairs = load_dataset(str(out / "dataset"), "score", cache_dir=str(workspace["root"] / "cache"))["train"]
    assert len(pairs) == report["modes"]["score"]["kept"] > 0
    assert set(pairs["chosen_model"]) == {"tiny-a"} and set(pairs["rejected_model"]) == {"tiny-b"}
    # train -> evaluate-students -> compare
    student = out / "train" / "sft-sim"
    assert (student / "config.json").is_file()
    assert json.loads((student / "karma_provenance.json").read_text())["dataset"]["config"] == "sim"
    assert list((student / "karma_eval").glob("*/results_*.json"))
    cmp = json.loads((out / "compare" / "compare.json").read_text())
    assert [r["label"] for r in cmp["runs"]] == ["sft-sim"] and cmp["benchmarks"] == ["karma_arc_easy"]
    # the final summary table
    assert "karma run" in first_run["stdout"] and f"output: {out}/" in first_run["stdout"]


def test_second_run_skips_every_stage_and_touches_nothing(first_run, workspace, tmp_path, capsys) -> None:
    path, out = _copy(workspace, first_run, tmp_path)
    before = _files(out)
    states = {s: (out / "state" / f"{s}.json").read_text() for s in ALL_STAGES}
    code, stdout, err = _run(["run", str(path), "--quiet"], capsys)
    assert code == 0, err
    assert _lines(err) == dict.fromkeys(ALL_STAGES, "skip (up to date)")
    assert _files(out) == before  # no file written, none added
    assert {s: (out / "state" / f"{s}.json").read_text() for s in ALL_STAGES} == states
    assert "skipped" in stdout
    import fcntl

    with open(out / "state" / ".lock", "a") as held:  # another karma run holds the folder
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = _run(["run", str(path), "--quiet"], capsys)
    assert (
        code == 2
        and err.splitlines()[-1] == f"error: output {out} is in use by another karma run (state/.lock is locked)"
    )


def test_new_tau_reruns_kinship_and_build_only(first_run, workspace, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("KARMA_DATA_DIR", str(KARMA_DATA))
    kinship = dict(workspace["pipeline"]["kinship"], tau=0.3)
    # with students, everything downstream of the build reruns too (the plan says so)
    path, out = _copy(workspace, first_run, tmp_path, kinship=kinship)
    code, stdout, err = _run(["run", str(path), "--dry-run"], capsys)
    assert code == 0, err
    assert "skip" in stdout and "tau changed" in stdout and "kinship changed" in stdout
    # without the train section: evaluate and generate skipped, kinship and build rerun
    shutil.rmtree(out)
    path, out = _copy(workspace, first_run, tmp_path, kinship=kinship, train=None)
    before = _files(out)
    code, stdout, err = _run(["run", str(path), "--quiet"], capsys)
    assert code == 0, err
    assert _lines(err) == {
        "evaluate": "skip (up to date)",
        "generate": "skip (up to date)",
        "kinship": "run (tau changed)",
        "build": "run (kinship changed)",
    }
    assert "[3/4] kinship: run (tau changed)" in err
    after = _files(out)
    unchanged = [f for f in before if f.startswith(("eval/", "generate/", "state/evaluate", "state/generate"))]
    assert unchanged and all(after[f] == before[f] for f in unchanged)
    assert after["kinship/kinship.json"] != before["kinship/kinship.json"]
    assert after["dataset/build_report.json"] != before["dataset/build_report.json"]
    assert json.loads((out / "kinship" / "kinship.json").read_text())["kinship"]["tau"] == 0.3
    assert json.loads((out / "dataset" / "build_report.json").read_text())["tau"] == 0.3
    code, _, err = _run(["run", str(path), "--quiet"], capsys)  # and now all up to date again
    assert code == 0 and set(_lines(err).values()) == {"skip (up to date)"}


def test_dry_run_plans_and_creates_nothing(first_run, workspace, tmp_path, capsys) -> None:
    data = json.loads(json.dumps(workspace["pipeline"]))
    data["output"] = str(tmp_path / "new" / "out")
    path = _write(tmp_path / "p.yaml", data)
    code, stdout, err = _run(["run", str(path), "--dry-run"], capsys)
    assert code == 0, err
    assert not (tmp_path / "new").exists()
    for stage in ALL_STAGES:
        assert stage in stdout
    assert stdout.count("no previous run") == len(ALL_STAGES)
    tokens = N_PROMPTS * 2 * MAX_NEW_TOKENS  # prompts x models per prompt x max_new_tokens
    assert f"{tokens}" in stdout and "6 prompts" in stdout and "est. generated tokens" in stdout
    # on a finished run: all skipped; a forced stage runs with everything downstream of it
    path, out = _copy(workspace, first_run, tmp_path)
    before = _files(out)
    code, stdout, err = _run(["run", str(path), "--dry-run", "--force", "kinship"], capsys)
    assert code == 0, err
    assert stdout.count("up to date") == 2 and "forced" in stdout and stdout.count("kinship reruns") == 1
    assert _files(out) == before
    # a model whose results are gone is evaluated again, alone
    evaluate = json.loads((out / "state" / "evaluate.json").read_text())
    shutil.rmtree(out / Path(evaluate["item_outputs"]["tiny-b"][0]).parents[1])
    from karma_hf.pipeline.run import plan_pipeline

    plan = {sp.name: sp for sp in plan_pipeline(path).stages}
    assert plan["evaluate"].run and plan["evaluate"].todo == ["tiny-b"]
    assert plan["evaluate"].reason == "outputs missing: tiny-b"
    assert not plan["generate"].run and plan["kinship"].reason == "evaluate reruns"
    # an evaluation stopped after its first model: the second one only
    evaluate.update(complete=False, hash="", items={"tiny-a": evaluate["items"]["tiny-a"]})
    evaluate["item_outputs"].pop("tiny-b")
    (out / "state" / "evaluate.json").write_text(json.dumps(evaluate))
    plan = {sp.name: sp for sp in plan_pipeline(path).stages}
    assert plan["evaluate"].reason == "interrupted (1 of 2 done)" and plan["evaluate"].todo == ["tiny-b"]


def test_hub_push_stage_publishes_the_set(first_run, workspace, tmp_path, hub_server) -> None:
    """A Hub repo added to a finished pipeline: the build reruns (the card names the repo), then the push."""
    import uuid

    from karma_hf.pipeline.run import plan_pipeline

    repo = f"testuser/karma-pipeline-{uuid.uuid4().hex[:8]}"
    path, out = _copy(workspace, first_run, tmp_path, hub={"repo": repo}, train=None)
    proc = subprocess.run(
        [sys.executable, "-m", "karma_hf.cli", "run", str(path), "--quiet"],
        env=hub_server.env(tmp_path / "home"), cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert _lines(proc.stderr) == {
        "evaluate": "skip (up to date)",
        "generate": "skip (up to date)",
        "kinship": "skip (up to date)",
        "build": "run (repo changed)",
        "push": "run (no previous run)",
    }
    snapshot = hub_server.hub.snapshot(repo)
    assert snapshot is not None
    files = set(snapshot["files"]["main"])
    assert {"README.md", "build_report.json", "score/train-00000-of-00001.parquet"} <= files
    assert repo in (out / "dataset" / "README.md").read_text()
    assert not [sp.name for sp in plan_pipeline(path).stages if sp.run]  # and now up to date


# ============================================================================ user errors
def _bad(tmp_path: Path, workspace, mutate) -> Path:
    data = json.loads(json.dumps(workspace["pipeline"]))
    data["output"] = str(tmp_path / "never")
    mutate(data)
    return _write(tmp_path / "bad.yaml", data)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(evalute={}), "unknown key 'evalute'; did you mean 'evaluate'?"),
        (lambda d: d["evaluate"].update(limt=2), "unknown key 'evaluate.limt'; did you mean 'evaluate.limit'?"),
        (lambda d: d["evaluate"].update(limit="many"), "evaluate.limit: expected an integer or a number"),
        (lambda d: d["pool"].update(model="tgi"), "pool.model: unknown model backend 'tgi'"),
        (lambda d: d["pool"]["models"][1].update(model="tgi"), "models[1].model: unknown model backend 'tgi'"),
        (lambda d: d["build"].update(modes=["score", "best"]), "build: unknown mode(s) 'best'"),
        (lambda d: d["kinship"].update(tau=1.5), "kinship.tau: must be within [0, 1]"),
        (lambda d: d["generate"]["generation"].update(top_k=5), "unknown generation setting(s) top_k"),
        (lambda d: d.pop("prompts"), "missing key 'prompts'"),
        (lambda d: d["train"]["students"][0].update(stage="ppo"), "train.students[0].stage: unknown stage 'ppo'"),
        (lambda d: d["train"]["students"][0].update(mode="rlaif"), "train.students[0].mode: 'rlaif' is not built"),
        (
            lambda d: d["prompts"].update(source="${KARMA_NO_SUCH_VARIABLE}/p.jsonl"),
            "prompts.source: environment variable KARMA_NO_SUCH_VARIABLE is not set",
        ),  # fmt: skip
        (
            lambda d: d["pool"]["models"].append("pretrained=/no/such/model"),
            "model path does not exist: /no/such/model",
        ),  # fmt: skip
        (
            lambda d: d["kinship"]["score_overrides"].update(nobody={"karma_arc_easy": 1}),
            "kinship.score_overrides: 'nobody' is not a model of the pool",
        ),  # fmt: skip
    ],
)
def test_bad_pipeline_is_one_error_line(mutate, message, workspace, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("KARMA_DATA_DIR", str(KARMA_DATA))
    path = _bad(tmp_path, workspace, mutate)
    code, stdout, err = _run(["run", str(path)], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert message in err, err
    assert not (tmp_path / "never").exists()


def test_bad_files_and_outputs(workspace, tmp_path, capsys) -> None:
    code, _, err = _run(["run", str(tmp_path / "missing.yaml")], capsys)
    assert code == 2 and err == f"error: pipeline file not found: {tmp_path / 'missing.yaml'}\n"
    broken = tmp_path / "broken.yaml"
    broken.write_text("output: x\npool: [unclosed\n", encoding="utf-8")
    code, _, err = _run(["run", str(broken)], capsys)
    assert code == 2 and err.startswith(f"error: {broken}: not valid YAML at line 3") and err.count("\n") == 1
    (tmp_path / "a-file").write_text("x")
    for output, message in (
        (tmp_path / "a-file" / "out", "is a file, not a folder"),  # unwritable: its parent is a file
        (tmp_path / "a-file", "exists and is not a folder"),
        (tmp_path, "is not empty and holds no karma run state/ folder"),
    ):
        path = _bad(tmp_path, workspace, lambda d, o=output: d.update(output=str(o)))
        code, _, err = _run(["run", str(path), "--dry-run"], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err
    path = _bad(tmp_path, workspace, lambda d: None)
    code, _, err = _run(["run", str(path), "--force", "nonsense"], capsys)
    assert code == 2 and "--force nonsense: unknown stage" in err
    path = _bad(tmp_path, workspace, lambda d: d.pop("train"))
    code, _, err = _run(["run", str(path), "--force", "train"], capsys)
    assert code == 2 and "this pipeline has no train stage" in err


def test_a_failing_stage_stops_with_one_line_and_the_rerun_retries(workspace, tmp_path, capsys, monkeypatch) -> None:
    from karma_hf.pipeline.run import plan_pipeline

    monkeypatch.setenv("KARMA_DATA_DIR", str(KARMA_DATA))
    out = tmp_path / "out"
    path = _bad(tmp_path, workspace, lambda d: d.update(output=str(out)))
    data = yaml.safe_load(path.read_text())
    data["evaluate"]["lm_eval_args"] = ["--no-such-option"]  # lm-eval itself refuses it, after the start
    _write(path, data)
    code, _, err = _run(["run", str(path), "--quiet"], capsys)
    refused = "error: unknown lm-eval option(s): --no-such-option (see `lm_eval run --help`)"
    assert code == 2 and err.splitlines()[-1] == refused
    assert [p.name for p in (out / "state").iterdir()] == [".lock"]  # nothing completed
    plan = plan_pipeline(path)  # the folder is the pipeline's: the next run retries everything
    assert [sp.reason for sp in plan.stages][:2] == ["no previous run", "no previous run"]


# ============================================================================ shipped examples
def test_shipped_pipelines_parse(monkeypatch, tmp_path) -> None:
    from karma_hf.pipeline.config import find_pipeline, load_pipeline
    from karma_hf.resources import recipes_dir

    for var in ("KARMA_SMOLLM2", "KARMA_GEMMA3", "KARMA_TINY"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("HF_USER", "someone")
    tiny = load_pipeline("tiny-cpu.yaml")  # found among the shipped pipelines from any directory
    assert tiny.path == find_pipeline("pipelines/tiny-cpu.yaml") == recipes_dir() / "pipelines" / "tiny-cpu.yaml"
    assert [m.name for m in tiny.models] == ["SmolLM2-135M-Instruct", "gemma-3-270m", "tiny-random"]
    assert tiny.models[0].args["pretrained"] == str(tmp_path / "karma_smollm2") and tiny.train is not None
    gpu = load_pipeline("recipes/pipelines/gpu-pool.yaml")
    assert {m.backend for m in gpu.models} == {"vllm"} and len(gpu.models) == 6
    assert gpu.hub is not None and gpu.hub.repo == "someone/karma-gpu-pool"
    assert gpu.generate.per_prompt == 4 and gpu.generate.settings().max_new_tokens == 1024
