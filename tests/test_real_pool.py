"""KARMA on a real pool, on CPU: generate -> evaluate -> build, through the `karma` CLI (subprocesses).

The pool: SmolLM2-135M-Instruct (its chat template) and Gemma 3 270M (a base model: no chat
template, so `karma generate` gives it the plain prompt and records ``chat_template: false``),
the real models of the real tier (tests/real_models.py), plus the tiny random Llama of
tests/tiny_model.py.

1. `karma generate` answers the 8 instructions of ``tests/fixtures/instructions_mini.jsonl``
   (``--prompt-column instruction``) with every model, from a YAML pool file that names the
   models and sets generation per model: the two real models greedy, the tiny model sampled
   (temperature 1, seeded), because its greedy output is only whitespace (see
   tests/test_generate.py), which would make it no candidate at all.
2. Scores: the real models' `karma eval` runs are the session fixture ``real_runs``
   (tests/conftest.py, shared with tests/test_real_models.py: 5 multiple-choice karma tasks,
   ``--limit 8``); only the tiny model is evaluated here, on the same tasks and limit.
3. `karma build --source GENERATED --scores NAME=RESULTS ...` (the names of the pool file, so
   score-table models and the ``model`` strings generate wrote match without an alias map).

The test recomputes S_pref (mean of min-max normalised scores) and the cosine kinship with numpy
from the same lm-eval JSON files, and the pair each mode must pick for each prompt among its
candidates (the completions with a non-empty response), and checks the build made exactly those.

Budget: at most 6 minutes on a 2-core CPU beyond the shared ``real_runs`` (measured figures in
docs/generate.md). ``KARMA_REAL_TIER_OUT=DIR`` keeps the outputs under ``DIR/pool``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_LIMIT, REAL_TASKS, karma_subprocess_env, real_eval_command

pytestmark = [pytest.mark.real, pytest.mark.slow]

PROMPTS = Path(__file__).parent / "fixtures" / "instructions_mini.jsonl"
KARMA = str(Path(sys.executable).parent / "karma")
METRIC = "exact_match,robust-extract"  # the default metric of the five multiple-choice karma tasks
TAU = 0.1
MODES = ("score", "sim", "score_sim")
MAX_NEW_TOKENS = 24
TINY = "tiny-random"


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


@pytest.fixture(scope="module")
def pool_run(real_models, real_data_dir, real_runs, tiny_model_dir, tmp_path_factory) -> dict:
    keep = os.environ.get("KARMA_REAL_TIER_OUT", "").strip()
    root = Path(keep) / "pool" if keep else tmp_path_factory.mktemp("real-pool")
    root.mkdir(parents=True, exist_ok=True)
    env = karma_subprocess_env(real_data_dir)
    seconds: dict[str, float] = {}
    start = time.perf_counter()

    tiny_eval = root / "tiny-eval"
    _run(real_eval_command(Path(tiny_model_dir), tiny_eval, chat=True), env, root)
    seconds["karma eval (tiny model)"] = time.perf_counter() - start

    models = [
        {"model_args": f"pretrained={m.path},dtype=float32", "name": m.name} for m in real_models
    ] + [
        {"model_args": f"pretrained={tiny_model_dir},dtype=float32", "name": TINY,
         "generation": {"temperature": 1.0, "seed": 7}},
    ]  # fmt: skip
    pool_file = root / "pool.yaml"
    pool_file.write_text(json.dumps({"models": models}, indent=1) + "\n", encoding="utf-8")  # JSON is YAML
    generated = root / "generated"
    step = time.perf_counter()
    _run([KARMA, "generate", "--models-file", str(pool_file), "--prompts", str(PROMPTS), "--prompt-column",
          "instruction", "--max-new-tokens", str(MAX_NEW_TOKENS), "--quiet", "--overwrite", "-o", str(generated)],
         env, root)  # fmt: skip
    seconds["karma generate (3 models x 8 prompts)"] = time.perf_counter() - step

    results = {**real_runs, TINY: tiny_eval}
    scores = [x for name, path in results.items() for x in ("--scores", f"{name}={path}")]
    benchmarks = [x for task in REAL_TASKS for x in ("--benchmark", task)]
    built = root / "set"
    step = time.perf_counter()
    build = _run([KARMA, "build", "--source", str(generated), *scores, *benchmarks, "--modes", ",".join(MODES),
                  "--tau", str(TAU), "--test-size", "0", "--overwrite", "-o", str(built)], env, root)  # fmt: skip
    seconds["karma build"] = time.perf_counter() - step
    seconds["total (beyond the shared real_runs)"] = time.perf_counter() - start
    (root / "timings.json").write_text(json.dumps(seconds, indent=1) + "\n")
    return {
        "root": root,
        "generated": generated,
        "built": built,
        "results": results,
        "names": [m["name"] for m in models],
        "build_output": build.stdout + build.stderr,
        "seconds": seconds,
    }


# ------------------------------------------------------------------ the independent recomputation
def _measured_scores(results: dict[str, Path]) -> tuple[list[str], np.ndarray]:
    """models, scores[model, task] read straight from each model's lm-eval results JSON."""
    names = list(results)
    values = np.zeros((len(names), len(REAL_TASKS)))
    for i, name in enumerate(names):
        [file] = sorted(Path(results[name]).glob("**/results_*.json"))
        data = json.loads(file.read_text())
        for j, task in enumerate(REAL_TASKS):
            assert data["n-samples"][task]["effective"] == REAL_LIMIT
            values[i, j] = data["results"][task][METRIC]
    return names, values


def _kinship(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(S_pref, cosine) of the KARMA paper: min-max normalise each benchmark over the pool (a benchmark
    with one score for everyone carries nothing and is left out), S_pref = row mean, cosine of the
    rows (a zero row has cosine 0 with every other row)."""
    lo, hi = values.min(axis=0), values.max(axis=0)
    informative = hi > lo
    norm = (values[:, informative] - lo[informative]) / (hi - lo)[informative]
    s_pref = norm.mean(axis=1)
    lengths = np.linalg.norm(norm, axis=1)
    unit = np.array([row / n if n > 0 else row * 0 for row, n in zip(norm, lengths, strict=True)])
    cos = unit @ unit.T
    np.fill_diagonal(cos, 1.0)
    return s_pref, cos


def _expected_pair(mode: str, cands: list[int], names: list[str], s_pref: np.ndarray, cos: np.ndarray):
    """(chosen, rejected) index pair the mode picks among ``cands``, or the reason for none."""
    ranked = sorted(cands, key=lambda i: (-s_pref[i], names[i]))
    kin = {(a, b) for a in ranked for b in ranked if a != b and cos[a, b] >= TAU}
    if len(ranked) < 2:
        return "fewer_than_two"
    if not kin:
        return "no_kin_above_tau"
    if mode == "sim":  # the kin pair with the highest cosine; equal cosines: the better-ranked pair
        pairs = [(a, b) for x, a in enumerate(ranked) for b in ranked[x + 1 :] if (a, b) in kin]
        a, b = max(pairs, key=lambda p: (cos[p], -ranked.index(p[0]), -ranked.index(p[1])))
    else:
        a = next(m for m in ranked if any((m, o) in kin for o in ranked))
        partners = [o for o in ranked if (a, o) in kin]
        b = partners[0] if mode == "score" else max(partners, key=lambda o: (cos[a, o], -ranked.index(o)))
    first, second = sorted((a, b), key=ranked.index)
    return "tie" if s_pref[first] == s_pref[second] else (first, second)


# ------------------------------------------------------------------ the tests
def test_generate_writes_the_common_schema_for_the_pool(pool_run) -> None:
    from datasets import load_dataset

    ds = load_dataset(str(pool_run["generated"]), split="train", cache_dir=str(pool_run["root"] / "hf-cache"))
    assert ds.column_names == ["prompt_id", "prompt", "completions", "source"]
    instructions = [json.loads(line)["instruction"] for line in PROMPTS.read_text().splitlines()]
    assert len(ds) == len(instructions) >= 8
    assert [r["prompt"] for r in ds] == [[{"role": "user", "content": t}] for t in instructions]
    names = pool_run["names"]
    chat = {"SmolLM2-135M-Instruct": True, "gemma-3-270m": False, TINY: True}  # Gemma base: the plain prompt
    for row in ds:
        assert [c["model"] for c in row["completions"]] == names  # every model answers, in pool order
        for c in row["completions"]:
            config = json.loads(c["generation_config"])
            sampled = c["model"] == TINY
            assert config == {"backend": "hf", "chat_template": chat[c["model"]], "do_sample": sampled,
                              "max_new_tokens": MAX_NEW_TOKENS, "seed": 7 if sampled else 0,
                              "temperature": 1.0 if sampled else 0.0, "top_p": 1.0}  # fmt: skip
    manifest = json.loads((pool_run["generated"] / "karma_generate.json").read_text())
    assert manifest["complete"] and manifest["counts"]["rows"] == len(ds)
    for name in names[:2]:  # the real models answer (greedy) with text
        assert manifest["counts"]["models"][name]["empty"] == 0, manifest["counts"]["models"][name]
    smol = [r["completions"][0]["response"] for r in ds]
    assert "Paris" in smol[0]  # "What is the capital of France? ..."


def test_build_pairs_follow_the_kinship_of_the_measured_scores(pool_run, capsys) -> None:
    from datasets import load_dataset

    report = json.loads((pool_run["built"] / "build_report.json").read_text())
    assert report["source"]["format"] == "generated" and report["source"]["rows"] == 8
    assert report["rating"] == "none" and report["tau"] == TAU

    names, values = _measured_scores(pool_run["results"])
    s_pref, cos = _kinship(values)
    assert report["kinship"]["models"] == names
    for i, name in enumerate(names):
        assert report["kinship"]["s_pref"][name] == pytest.approx(s_pref[i], abs=1e-6)
        assert report["kinship"]["cosine"][i] == pytest.approx(list(cos[i]), abs=1e-6)

    generated = load_dataset(str(pool_run["generated"]), split="train", cache_dir=str(pool_run["root"] / "hf-cache"))
    index = {n: i for i, n in enumerate(names)}
    completions = {r["prompt_id"]: r["completions"] for r in generated}
    candidates = {
        pid: [index[c["model"]] for c in comps if c["response"].strip()] for pid, comps in completions.items()
    }
    seen: dict[str, dict[str, tuple[str, str]]] = {}
    for mode in MODES:
        expected = {pid: _expected_pair(mode, cands, names, s_pref, cos) for pid, cands in candidates.items()}
        pairs = load_dataset(str(pool_run["built"]), mode, cache_dir=str(pool_run["root"] / "hf-cache"))["train"]
        got = {r["prompt_id"]: r for r in pairs}
        want = {pid: p for pid, p in expected.items() if isinstance(p, tuple)}
        assert len(got) == len(pairs) == report["modes"][mode]["kept"]
        assert got.keys() == want.keys(), (mode, expected)
        for pid, row in got.items():
            c, r = index[row["chosen_model"]], index[row["rejected_model"]]
            assert (c, r) == want[pid], (mode, pid, row["chosen_model"], row["rejected_model"])
            assert s_pref[c] > s_pref[r]  # chosen: the higher S_pref (Eq. 3)
            assert cos[c, r] >= TAU  # kin
            assert row["kinship"] == pytest.approx(cos[c, r], abs=1e-6)
            assert row["s_pref_chosen"] == pytest.approx(s_pref[c], abs=1e-6)
            assert row["s_pref_rejected"] == pytest.approx(s_pref[r], abs=1e-6)
            if mode == "sim":  # the max-cosine kin pair among the prompt's candidates
                cands = candidates[pid]
                best = max(cos[a, b] for a in cands for b in cands if a != b and cos[a, b] >= TAU)
                assert cos[c, r] == pytest.approx(best)
            responses = {x["model"]: x["response"] for x in completions[pid]}
            assert row["chosen"] == [{"role": "assistant", "content": responses[row["chosen_model"]]}]
            assert row["rejected"] == [{"role": "assistant", "content": responses[row["rejected_model"]]}]
        dropped = report["modes"][mode]["dropped"]
        for reason, count in (("empty_response", "fewer_than_two"), ("no_kin_above_tau", None), ("tie", None)):
            assert dropped[reason] == sum(p == (count or reason) for p in expected.values()), (mode, dropped)
        seen[mode] = {pid: (row["chosen_model"], row["rejected_model"]) for pid, row in got.items()}
    assert any(seen.values()), "no mode kept a pair"

    with capsys.disabled():  # the measured figures (pytest -s not needed)
        print("\nreal pool: scores (exact_match,robust-extract, --limit 8), S_pref, cosine")
        for i, name in enumerate(names):
            cells = " ".join(f"{v:.3f}" for v in values[i])
            print(f"  {name:24s} {cells}  S_pref {s_pref[i]:.3f}  cos {' '.join(f'{x:.3f}' for x in cos[i])}")
        for mode, pairs_ in seen.items():
            counts: dict[tuple[str, str], int] = {}
            for p in pairs_.values():
                counts[p] = counts.get(p, 0) + 1
            print(f"  {mode}: {len(pairs_)} pairs {counts}")
        print(f"  timings: {json.dumps({k: round(v, 1) for k, v in pool_run['seconds'].items()})}")
