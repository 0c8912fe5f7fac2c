"""`karma generate` on tiny random models: the common schema, per-prompt choice, chat templates,
resumption after SIGKILL (byte-identical to an uninterrupted greedy run), and the errors.

The tiny random Llama emits newlines under greedy decoding (responses empty once stripped), so the
tests that build pairs sample (temperature 1, seeded: still reproducible on one machine).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from karma_hf.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
UF = FIXTURES / "ultrafeedback_mini.jsonl"


def _run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)


@pytest.fixture(scope="module")
def pool(tiny_model_dir, tmp_path_factory) -> list[Path]:
    """Three tiny models: the session one, another seed, and one without a chat template."""
    from tiny_model import build_tiny_model

    root = tmp_path_factory.mktemp("pool")
    second = build_tiny_model(root / "tiny-b", seed=1)
    plain = root / "tiny-plain"
    shutil.copytree(build_tiny_model(root / "tiny-c", seed=2), plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((plain / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(cfg))
    return [Path(tiny_model_dir), second, plain]


def _prompts_file(tmp: Path, n: int) -> Path:
    path = tmp / "prompts.jsonl"
    rows = [{"text": f"Question {i}: what is {i} plus {i + 1}?", "source": "arith"} for i in range(n)]
    rows.append({"text": "Question 0: what is 0 plus 1?", "source": "arith"})  # a repeat
    rows.append({"text": "   ", "source": "arith"})  # no usable prompt
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_generate_writes_the_common_schema_and_builds(pool, tmp_path):
    from datasets import load_dataset

    out = tmp_path / "responses"
    args = [x for p in pool[:2] for x in ("--model_args", f"pretrained={p}")]
    code = _run(["generate", *args, "--prompts", str(UF), "--max-new-tokens", "6", "--temperature", "1.0",
                 "--seed", "3", "--shard-size", "4", "--batch-size", "3", "--quiet", "-o", str(out)])  # fmt: skip
    assert code == 0
    ds = load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))  # data/ only
    assert ds.column_names == ["prompt_id", "prompt", "completions", "source"]
    assert len(ds) == 12  # 16 rows: 3 malformed, 1 repeated instruction
    manifest = json.loads((out / "karma_generate.json").read_text())
    assert manifest["complete"] and manifest["prompts"]["skipped"] == 3 and manifest["prompts"]["duplicates"] == 1
    raw = [json.loads(line) for line in UF.read_text().splitlines()]
    first = ds[0]
    assert first["prompt"] == [{"role": "user", "content": raw[0]["instruction"]}]
    assert first["prompt_id"] == hashlib.sha256(raw[0]["instruction"].encode()).hexdigest()  # UltraFeedback's
    assert first["source"] == raw[0]["source"]
    assert [c["model"] for c in first["completions"]] == [str(p) for p in pool[:2]]
    config = json.loads(first["completions"][0]["generation_config"])
    assert config == {"backend": "hf", "chat_template": True, "do_sample": True, "max_new_tokens": 6, "seed": 3,
                      "temperature": 1.0, "top_p": 1.0}  # fmt: skip
    assert sum(bool(c["response"].strip()) for r in ds for c in r["completions"]) > 12

    csv = tmp_path / "scores.csv"
    csv.write_text(f"model,b1,b2\n{pool[0]},0.8,0.7\n{pool[1]},0.6,0.65\nreference,0.4,0.5\n", encoding="utf-8")
    code = _run(["build", "--source", str(out), "--scores", str(csv), "--modes", "score,sim", "--test-size", "0",
                 "-o", str(tmp_path / "set")])  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "set" / "build_report.json").read_text())
    assert report["source"]["format"] == "generated" and report["rating"] == "none"
    pairs = load_dataset(str(tmp_path / "set"), "score", cache_dir=str(tmp_path / "cache"))["train"]
    assert len(pairs) == report["modes"]["score"]["kept"] > 0
    assert set(pairs["chosen_model"]) == {str(pool[0])}  # the higher S_pref


def test_per_prompt_choice_pool_file_and_plain_prompt(pool, tmp_path):
    from datasets import load_dataset

    from karma_hf.generation.shards import assignment

    pool_file = tmp_path / "pool.yaml"
    pool_file.write_text(
        "generation: {max_new_tokens: 4, temperature: 1.0}\n"
        "models:\n"
        f"  - pretrained={pool[0]}\n"
        f"  - model_args: pretrained={pool[1]}\n    name: second\n    generation: {{max_new_tokens: 3, seed: 9}}\n"
        f"  - model_args: pretrained={pool[2]}\n    name: plain\n",
        encoding="utf-8",
    )
    prompts = _prompts_file(tmp_path, 10)
    out = tmp_path / "r"
    code = _run(["generate", "--models-file", str(pool_file), "--prompts", str(prompts), "--prompt-column", "text",
                 "--per-prompt", "2", "--seed", "5", "--shard-size", "3", "--quiet", "-o", str(out)])  # fmt: skip
    assert code == 0
    ds = load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 10
    names = [str(pool[0]), "second", "plain"]
    want = assignment(ds["prompt_id"], names, 2, 5)
    assert [[c["model"] for c in r["completions"]] for r in ds] == [[names[i] for i in w] for w in want]
    assert len({tuple(w) for w in want}) > 1  # the choice differs between prompts
    configs = {c["model"]: json.loads(c["generation_config"]) for r in ds for c in r["completions"]}
    assert configs["second"]["max_new_tokens"] == 3 and configs["second"]["seed"] == 9
    assert configs[str(pool[0])]["max_new_tokens"] == 4 and configs[str(pool[0])]["seed"] == 5
    assert configs["plain"]["chat_template"] is False and configs["second"]["chat_template"] is True
    assert set(ds["source"]) == {"arith"}


def test_resume_after_sigkill_is_byte_identical(pool, tmp_path):
    prompts = _prompts_file(tmp_path, 12)
    argv = [sys.executable, "-m", "karma_hf.cli", "generate", "--model_args", f"pretrained={pool[0]}",
            "--model_args", f"pretrained={pool[1]}", "--prompts", str(prompts), "--prompt-column", "text",
            "--max-new-tokens", "8", "--shard-size", "2", "--batch-size", "1", "--quiet"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    whole = tmp_path / "whole"
    assert _run([*argv[3:], "-o", str(whole)]) == 0  # uninterrupted, in this process

    killed = tmp_path / "killed"
    proc = subprocess.Popen([*argv, "-o", str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and len(list(killed.glob(".shards/*/*.parquet"))) < 2:
            assert proc.poll() is None, "the run finished before it could be killed"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = {p: p.stat().st_mtime_ns for p in killed.glob(".shards/*/*.parquet")}
    assert 2 <= len(done) < 12  # 6 blocks x 2 models
    assert not (killed / "data").exists()
    assert json.loads((killed / "karma_generate.json").read_text())["complete"] is False

    res = subprocess.run([*argv, "-o", str(killed)], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in done} == done  # completed shards were not redone
    assert _digests(killed) == _digests(whole)  # byte-identical, shards and manifest included
    assert _run([*argv[3:], "-o", str(killed)]) == 0
    assert _digests(killed) == _digests(whole)  # a finished run is left as it is


def test_errors(pool, tmp_path, capsys):
    prompts = _prompts_file(tmp_path, 3)
    base = ["generate", "--prompts", str(prompts), "--prompt-column", "text", "--max-new-tokens", "2", "--quiet"]
    code = _run([*base, "--model", "vllm", "--model_args", "pretrained=org/some-model", "-o", str(tmp_path / "v")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "pip install vllm" in err[0] and err[0].startswith("error:")
    assert not (tmp_path / "v").exists()

    out = tmp_path / "o"
    assert _run([*base, "--model_args", f"pretrained={pool[0]}", "-o", str(out)]) == 0
    code = _run([*base, "--model_args", f"pretrained={pool[0]}", "--temperature", "0.5", "-o", str(out)])
    assert code == 2 and "another configuration" in capsys.readouterr().err
    assert _run([*base, "--model_args", f"pretrained={pool[0]}", "--temperature", "0.5", "--overwrite",
                 "-o", str(out)]) == 0  # fmt: skip
    code = _run([*base, "--model_args", f"pretrained={tmp_path / 'nope'}", "-o", str(tmp_path / "n")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    code = _run(
        [*base, "--prompt-column", "missing", "--model_args", f"pretrained={pool[0]}", "-o", str(tmp_path / "m")]
    )
    assert code == 2 and "'missing' is not a column" in capsys.readouterr().err


def test_prompt_columns_with_messages(tmp_path):
    from karma_hf.generation.prompts import load_prompts
    from karma_hf.sources.messages import prompt_id_of

    path = tmp_path / "chat.jsonl"
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"}]  # fmt: skip
    path.write_text(json.dumps({"messages": conv}) + "\n" + json.dumps({"messages": conv[:1]}) + "\n")
    got = load_prompts(path, prompt_column="messages")
    assert [p.messages for p in got.prompts] == [conv[:2]]  # cut after the last user turn
    assert got.prompts[0].prompt_id == prompt_id_of(conv[:2]) and got.skipped == 1
    nectar = load_prompts(FIXTURES / "nectar_mini.jsonl", limit=2)  # a known source schema
    assert nectar.schema == "nectar" and len(nectar) == 2 and len(nectar.prompts[1].messages) == 3


def test_torchrun_two_cpu_processes_share_the_shards(pool, tmp_path):
    """Data parallel on CPU: two torchrun processes split the shards (one writer, one summary) and the
    folder is byte-identical to a one-process run. accelerate's default PartialState() ignores a CPU
    launch, which left every process doing all the work as its own main process."""
    prompts = _prompts_file(tmp_path, 4)
    args = ["generate", "--model_args", f"pretrained={pool[0]}", "--prompts", str(prompts), "--prompt-column",
            "text", "--max-new-tokens", "4", "--temperature", "1.0", "--shard-size", "1", "--quiet"]  # fmt: skip
    assert _run([*args, "-o", str(tmp_path / "one")]) == 0
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone", "-m",
           "karma_hf.cli", *args, "-o", str(tmp_path / "two")]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, start_new_session=True)  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"torchrun job hung; stderr tail: {stderr[-2000:]}")
    assert proc.returncode == 0, stderr[-3000:]
    assert stdout.count("wrote ") == 1, stdout  # one main process (each process was its own main before)
    assert _digests(tmp_path / "two") == _digests(tmp_path / "one")
