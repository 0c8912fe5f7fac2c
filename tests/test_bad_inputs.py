"""Every command against bad input: exit 2, exactly one ``error:`` line naming the culprit, no traceback.

A parametrized matrix over all commands (kinship, plot, build, push, report, quickstart, train,
compare, eval, data download, the group itself): missing / unreadable / empty / truncated /
corrupt / wrong-schema inputs, wrong types per field, invalid UTF-8, NaN/inf, duplicate names,
degenerate pools, bad option values, output paths whose parent is a regular file or that lie in a
read-only location (``/sys``: writable by nobody, root included), missing models and data, offline
mode. A few rows are the *documented success* of an input that looks bad (a malformed row is
counted, not fatal; a fraction of 0.0001 holds out one prompt; one benchmark warns). Everything
runs in-process through ``karma_hf.cli.main`` (imports are paid once).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from karma_hf.cli import main

TESTS = Path(__file__).parent
FIXTURE = TESTS / "fixtures" / "ultrafeedback_mini.jsonl"
KARMA_DATA = TESTS / "fixtures" / "karma_data"
TINY_DPO = TESTS.parent / "recipes" / "tiny" / "dpo.yaml"
RAW = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
READ_ONLY = Path("/sys/karma-bad-inputs")  # mkdir there fails even for root
UF = "ultrafeedback-paper"


# ------------------------------------------------------------------------------------------ inputs
def write_csv(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


GOOD_CSV = "model,b1,b2,b3\nm1,0.9,0.8,0.7\nm2,0.5,0.6,0.4\nm3,0.2,0.3,0.9\nm4,0.1,0.1,0.1\n"


def jsonl(path: Path, rows: list[Any]) -> Path:
    lines = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in rows]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def mutated(index: int, change: Callable[[dict], None]) -> list[Any]:
    """The fixture rows with row ``index`` changed in place (a deep copy)."""
    rows = json.loads(json.dumps(RAW))
    change(rows[index])
    return rows


def set_key(key: str, value: Any) -> Callable[[dict], None]:
    return lambda row: row.__setitem__(key, value)


def set_completion(key: str, value: Any, comp: int = 0) -> Callable[[dict], None]:
    return lambda row: row["completions"][comp].__setitem__(key, value)


def raw_utf8_row(index: int, field: str) -> list[Any]:
    """Row ``index`` with bytes 0xff 0xfe (never valid UTF-8) at the start of ``field``."""
    rows: list[Any] = [json.dumps(r).encode() for r in RAW]
    needle = f'"{field}": "'.encode()
    assert needle in rows[index], field
    rows[index] = rows[index].replace(needle, needle + b"\xff\xfe", 1)
    return rows


def truncated(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def results_file(path: Path, body: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body if isinstance(body, str) else json.dumps(body), encoding="utf-8")
    return path


def lm_eval_results(model: str, scores: dict[str, float]) -> dict[str, Any]:
    from karma_hf.scores import KARMA_TASKS

    return {
        "results": {t: {"alias": t, KARMA_TASKS[t]: v} for t, v in scores.items()},
        "config": {"model": "hf", "model_args": {"pretrained": model}},
        "model_name": model,
        "date": 1_790_000_000.0,
        "lm_eval_version": "0.4.13",
    }


def write_run(root: Path, name: str, provenance: Any = None, tasks: dict[str, float] | None = None) -> Path:
    from karma_hf.scores import KARMA_TASKS

    run = root / name
    scores = tasks if tasks is not None else {t: 0.5 for t in KARMA_TASKS}
    results_file(run / "karma_eval" / name / "results_2026-01-01T00-00-00.json", lm_eval_results(name, scores))
    if provenance is not None:
        text = provenance if isinstance(provenance, str) else json.dumps(provenance)
        (run / "karma_provenance.json").write_text(text, encoding="utf-8")
    return run


def copy_build(w, tmp: Path) -> Path:
    import shutil

    out = tmp / "set"
    shutil.copytree(w.built, out)
    return out


@pytest.fixture(scope="module")
def w(tmp_path_factory):
    """Inputs shared by the cases: a good CSV, a complete build, a good run folder, a regular file."""
    from karma_hf.pairs.builder import build

    root = tmp_path_factory.mktemp("bad-inputs")
    ws = SimpleNamespace(root=root)
    ws.csv = write_csv(root / "scores.csv", GOOD_CSV)
    ws.file = root / "a-regular-file"
    ws.file.write_text("not a folder\n")
    ws.built = build(
        FIXTURE, scores=UF, test_size=3, output=root / "built", ignore_unknown_models=True, cache_dir=root / "cache"
    ).output
    ws.run = write_run(root, "run-ok", {"stage": "dpo", "dataset": {"name": "x", "config": "sim"}})
    ws.not_a_model = root / "not-a-model"  # a folder: passes the model check, so later checks are reached
    ws.not_a_model.mkdir()
    return ws


# ------------------------------------------------------------------------------------------ runner
def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, out: str, err: str, needles: tuple[str, ...]) -> str:
    assert "Traceback" not in out + err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, f"exit {code}; stderr: {err[-2000:]}; stdout: {out[-500:]}"
    assert len(lines) == 1, err[-2000:]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    return lines[0]


# ------------------------------------------------------------------------------------------ cases
# Each case: id -> (argv builder (ws, tmp) -> argv, needles in the error line, options).
# Options: env {VAR: value or None}, patch (monkeypatch, ws) -> None, ok: a check (out, err, tmp) of a
# documented success (exit 0), root_skip: a read-only case that root bypasses.
Case = tuple[str, Callable[[Any, Path], list], tuple[str, ...], dict[str, Any]]
CASES: list[Case] = []


def case(cid: str, argv: Callable[[Any, Path], list], *needles: str, **opts: Any) -> None:
    CASES.append((cid, argv, needles, opts))


def offline_hub(monkeypatch, ws) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


def online_without_token(monkeypatch, ws) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(ws.root / "no-token-here"))
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)


def no_ifeval_extra(monkeypatch, ws) -> None:
    """As if `pip install karma-hf[ifeval]` had not been run: nltk & co. cannot be imported."""
    import importlib.util

    real = importlib.util.find_spec
    gone = {"nltk", "langdetect", "immutabledict", "punkt"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a, **k: None if n in gone else real(n, *a, **k))
    for name in gone:
        monkeypatch.setitem(sys.modules, name, None)


# --- karma kinship: score tables ---------------------------------------------------------------
def kin(*args):
    return lambda ws, tmp: ["kinship", *[a(ws, tmp) if callable(a) else a for a in args]]


def csv_arg(text):
    return lambda ws, tmp: write_csv(tmp / "s.csv", text)


case("kinship-scores-missing", kin("--scores", lambda ws, tmp: tmp / "nope.csv"), "does not exist", "nope.csv")
case("kinship-unknown-preset", kin("--scores", "nopreset"), "unknown preset", "nopreset")
case("kinship-csv-empty", kin("--scores", csv_arg("")), "empty CSV", "s.csv")
case("kinship-csv-header", kin("--scores", csv_arg("name,b1\nm1,1\nm2,2\n")), "first header must be 'model'")
case("kinship-csv-not-number", kin("--scores", csv_arg("model,b1\nm1,high\nm2,0.2\n")), "s.csv:2", "'high'")
case("kinship-csv-nan", kin("--scores", csv_arg("model,b1,b2\nm1,nan,1\nm2,0.2,2\n")), "not finite", "'nan'")
case("kinship-csv-inf", kin("--scores", csv_arg("model,b1,b2\nm1,1,inf\nm2,0.2,2\n")), "not finite", "'inf'")
case("kinship-csv-neg-inf", kin("--scores", csv_arg("model,b1,b2\nm1,1,-inf\nm2,0.2,2\n")), "not finite")
case("kinship-csv-dup-model", kin("--scores", csv_arg("model,b1\nm1,1\nm1,2\n")), "duplicate model name", "'m1'")
case("kinship-csv-dup-bench", kin("--scores", csv_arg("model,b1,b1\nm1,1,2\nm2,2,1\n")), "duplicate benchmark", "b1")
case("kinship-csv-ragged", kin("--scores", csv_arg("model,b1,b2\nm1,1\nm2,2,1\n")), "s.csv:2", "expected 3 fields")
case("kinship-csv-empty-model", kin("--scores", csv_arg("model,b1\n,1\nm2,2\n")), "empty model name")
case("kinship-csv-header-only", kin("--scores", csv_arg("model,b1,b2\n")), "no model rows")
case("kinship-csv-invalid-utf8", kin("--scores", csv_arg(b"model,b1\nm\xff1,1\nm2,2\n")), "s.csv", "UTF-8")
case("kinship-one-model", kin("--scores", csv_arg("model,b1,b2\nm1,1,2\n")), "at least 2 models")
case("kinship-constant-scores", kin("--scores", csv_arg("model,b1,b2\nm1,1,2\nm2,1,2\n")), "same score")
case("kinship-results-dir-empty", kin("--scores", lambda ws, tmp: tmp), "no lm-eval results files")
case(
    "kinship-results-bad-json",
    kin("--scores", lambda ws, tmp: results_file(tmp / "results_x.json", "{not json")),
    "not valid JSON",
    "results_x.json",
)
case(
    "kinship-results-not-lm-eval",
    kin("--scores", lambda ws, tmp: results_file(tmp / "results_x.json", {"a": 1})),
    "not an lm-eval results file",
)
case(
    "kinship-results-invalid-utf8",
    kin("--scores", lambda ws, tmp: write_csv(tmp / "results_x.json", b'{"results": "\xff"}')),
    "results_x.json",
)
case(
    "kinship-results-no-model-name",
    kin("--scores", lambda ws, tmp: results_file(tmp / "results_x.json", {"results": {}, "config": {}})),
    "cannot tell which model",
)
case("kinship-bad-benchmark", kin("--scores", lambda ws, tmp: ws.csv, "--benchmark", ":acc"), "--benchmark", ":acc")
case(
    "kinship-aliases-missing",
    kin("--scores", lambda ws, tmp: ws.csv, "--aliases", lambda ws, tmp: tmp / "a.json"),
    "alias file does not exist",
)
case(
    "kinship-aliases-bad-json",
    kin("--scores", lambda ws, tmp: ws.csv, "--aliases", lambda ws, tmp: write_csv(tmp / "a.json", "{")),
    "a.json",
    "not valid JSON",
)
case(
    "kinship-aliases-not-object",
    kin("--scores", lambda ws, tmp: ws.csv, "--aliases", lambda ws, tmp: write_csv(tmp / "a.json", "[1]")),
    "must be a JSON object",
)
case(
    "kinship-aliases-unknown-model",
    kin("--scores", lambda ws, tmp: ws.csv, "--aliases", lambda ws, tmp: write_csv(tmp / "a.json", '{"zz": "y"}')),
    "not in the score table",
    "zz",
)
case(
    "kinship-aliases-dup-key",
    kin(
        "--scores",
        lambda ws, tmp: ws.csv,
        "--aliases",
        lambda ws, tmp: write_csv(tmp / "a.json", '{"m1": "x", "m1": "y"}'),
    ),
    "twice",
    "'m1'",
)
case(
    "kinship-aliases-same-target",
    kin(
        "--scores",
        lambda ws, tmp: ws.csv,
        "--aliases",
        lambda ws, tmp: write_csv(tmp / "a.json", '{"m1": "x", "m2": "x"}'),
    ),
    "twice",
    "'x'",
)
case(
    "kinship-aliases-invalid-utf8",
    kin("--scores", lambda ws, tmp: ws.csv, "--aliases", lambda ws, tmp: write_csv(tmp / "a.json", b'{"m1": "\xff"}')),
    "a.json",
)
case("kinship-tau-range", kin("--scores", lambda ws, tmp: ws.csv, "--tau", "1.5"), "--tau", "1.5")
case("kinship-tau-text", kin("--scores", lambda ws, tmp: ws.csv, "--tau", "abc"), "--tau", "abc")
case("kinship-tau-nan", kin("--scores", lambda ws, tmp: ws.csv, "--tau", "nan"), "--tau")
case("kinship-format", kin("--scores", lambda ws, tmp: ws.csv, "--format", "xml"), "--format", "xml")
case("kinship-unknown-option", kin("--scores", lambda ws, tmp: ws.csv, "--nope"), "--nope")
case("kinship-no-scores", kin(), "--scores")
case(
    "kinship-output-parent-is-file",
    kin("--scores", lambda ws, tmp: ws.csv, "--output", lambda ws, tmp: ws.file / "k.json"),
    "a-regular-file",
)
case(
    "kinship-output-is-dir",
    kin("--scores", lambda ws, tmp: ws.csv, "--format", "json", "--output", lambda ws, tmp: tmp),
    "--output",
)
case(
    "kinship-output-read-only",
    kin("--scores", lambda ws, tmp: ws.csv, "--format", "csv", "-o", READ_ONLY / "k.csv"),
    "/sys/karma-bad-inputs",
)
case(
    "kinship-one-benchmark-warns",
    kin("--scores", csv_arg("model,b1\nm1,0.9\nm2,0.5\nm3,0.1\n"), "--format", "json"),
    ok=lambda out, err, tmp: "one informative benchmark" in err and json.loads(out)["kinship"]["benchmarks"] == ["b1"],
)


# --- karma plot ------------------------------------------------------------------------------------
def plot(*args):
    return lambda ws, tmp: ["plot", "--scores", ws.csv, *[a(ws, tmp) if callable(a) else a for a in args]]


case("plot-out-parent-is-file", plot("--out", lambda ws, tmp: ws.file / "plots"), "a-regular-file")
case("plot-out-is-file", plot("--out", lambda ws, tmp: ws.file), "a-regular-file")
case("plot-out-read-only", plot("-o", READ_ONLY / "plots"), "/sys/karma-bad-inputs")
case("plot-formats-unknown", plot("--out", lambda ws, tmp: tmp / "p", "--formats", "bmp"), "--formats", "bmp")
case("plot-formats-empty", plot("--out", lambda ws, tmp: tmp / "p", "--formats", ","), "--formats")
case("plot-cut-range", plot("--out", lambda ws, tmp: tmp / "p", "--cut", "3"), "--cut", "3")
case("plot-tau-range", plot("--out", lambda ws, tmp: tmp / "p", "--tau", "-0.1"), "--tau")
case("plot-no-out", plot(), "--out")
case(
    "plot-scores-missing",
    lambda ws, tmp: ["plot", "--scores", tmp / "missing.csv", "--out", tmp / "p"],
    "does not exist",
    "missing.csv",
)


# --- karma build -----------------------------------------------------------------------------------
def build(source, *args, scores=UF, out=None):
    def argv(ws, tmp):
        src = source(ws, tmp) if callable(source) else source
        dest = out(ws, tmp) if callable(out) else (out or tmp / "out")
        rest = [a(ws, tmp) if callable(a) else a for a in args]
        return ["build", "--source", src, "--scores", scores, "--test-size", "3", "-o", dest, *rest]

    return argv


def src_rows(rows_fn, name="src.jsonl"):
    return lambda ws, tmp: jsonl(tmp / name, rows_fn() if callable(rows_fn) else rows_fn)


def parquet_source(ws, tmp) -> Path:
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    path = tmp / "src.parquet"
    pq.write_table(pj.read_json(str(FIXTURE)), str(path))
    return path


IGN = "--ignore-unknown-models"
STRICT = "--strict"


def malformed_kept(row: int, *words: str):
    """Documented success: the build succeeds, and ``row`` is reported malformed with ``words``."""

    def check(out, err, tmp):
        report = json.loads((tmp / "out" / "build_report.json").read_text())
        reasons = {e["row"]: e["reason"] for e in report["malformed_examples"]}
        return "malformed row(s)" in err and row in reasons and all(x in reasons[row] for x in words)

    return check


case("build-source-missing", build(lambda ws, tmp: tmp / "nope.jsonl"), "does not exist", "nope.jsonl")
case("build-source-empty-dir", build(lambda ws, tmp: tmp), "cannot load source")
case("build-source-empty-file", build(lambda ws, tmp: write_csv(tmp / "e.jsonl", "")), "e.jsonl")
case("build-source-corrupt-parquet", build(lambda ws, tmp: write_csv(tmp / "c.parquet", b"PAR1garbage")), "c.parquet")
case(
    "build-source-truncated-parquet",
    build(lambda ws, tmp: truncated(parquet_source(ws, tmp))),
    "src.parquet",
)
case("build-source-extension", build(lambda ws, tmp: write_csv(tmp / "s.txt", "x")), "unsupported extension", ".txt")
case(
    "build-source-wrong-schema",
    build(src_rows([{"question": "hi", "replies": ["a"]}] * 3)),
    "no known source schema",
    "question",
)
case(
    "build-source-instruction-int-column",
    build(src_rows([{"instruction": i, "completions": RAW[0]["completions"]} for i in range(3)]), IGN),
    "instruction",
    "int64",
)
case(
    "build-source-completions-not-list",
    build(src_rows([{"instruction": "q", "completions": "text"}] * 3)),
    "completions",
    "list of structs",
)
case(
    "build-source-array-json-wrong-schema",
    build(lambda ws, tmp: write_csv(tmp / "a.json", json.dumps([{"x": 1}, {"x": 2}]))),
    "no known source schema",
)
case("build-source-not-hub-id", build("a/b/c"), "neither an existing path nor a Hub dataset id")
case("build-source-hub-offline", build("someone/not-cached"), "someone/not-cached")
case(
    "build-jsonl-truncated-line-strict",
    build(src_rows(lambda: [*RAW[:3], json.dumps(RAW[3]).encode()[:40]]), IGN, STRICT),
    "row 3",
    "JSON",
)
case(
    "build-jsonl-instruction-number-strict",
    build(src_rows(lambda: mutated(2, set_key("instruction", 5))), IGN, STRICT),
    "row 2",
    "instruction",
)
case(
    "build-jsonl-instruction-number-counted",
    build(src_rows(lambda: mutated(2, set_key("instruction", 5))), IGN),
    ok=malformed_kept(2, "instruction"),
)
case(
    "build-jsonl-instruction-list-strict",
    build(src_rows(lambda: mutated(0, set_key("instruction", ["a"]))), IGN, STRICT),
    "row 0",
    "instruction",
)
case(
    "build-jsonl-completions-string-strict",
    build(src_rows(lambda: mutated(1, set_key("completions", "gpt-4 says hi"))), IGN, STRICT),
    "row 1",
    "completions",
)
case(
    "build-jsonl-completions-string-counted",
    build(src_rows(lambda: mutated(1, set_key("completions", "gpt-4 says hi"))), IGN),
    ok=malformed_kept(1, "completions"),
)
case(
    "build-jsonl-completion-not-object-strict",
    build(src_rows(lambda: mutated(0, lambda r: r["completions"].append("loose text"))), IGN, STRICT),
    "row 0",
    "completions[4]",
)
case(
    "build-jsonl-overall-score-string-strict",
    build(
        src_rows(lambda: mutated(0, set_completion("overall_score", "high"))), IGN, STRICT, "--rating", "overall_score"
    ),
    "row 0",
    "overall_score",
)
case(
    "build-jsonl-overall-score-string-counted",
    build(src_rows(lambda: mutated(0, set_completion("overall_score", "high"))), IGN, "--rating", "overall_score"),
    ok=malformed_kept(0, "overall_score"),
)
case(
    "build-jsonl-model-number-strict",
    build(src_rows(lambda: mutated(1, set_completion("model", 7))), IGN, STRICT),
    "row 1",
    "model",
)
case(
    "build-jsonl-response-number-strict",
    build(src_rows(lambda: mutated(1, set_completion("response", 3.5))), IGN, STRICT),
    "row 1",
    "response",
)
case(
    "build-jsonl-rating-object-strict",
    build(
        src_rows(
            lambda: mutated(0, lambda r: r["completions"][0]["annotations"]["honesty"].__setitem__("Rating", {"v": 1}))
        ),
        IGN,
        STRICT,
    ),
    "row 0",
    "Rating",
)
case(
    "build-jsonl-rating-nan-strict",
    build(
        src_rows(lambda: mutated(0, set_completion("overall_score", float("nan")))),
        IGN,
        STRICT,
        "--rating",
        "overall_score",
    ),
    "row 0",
    "overall_score",
)
case(
    "build-jsonl-duplicate-model-strict",
    build(src_rows(lambda: mutated(0, lambda r: r["completions"].append(dict(r["completions"][0])))), IGN, STRICT),
    "row 0",
    "repeats",
)
case(
    "build-jsonl-invalid-utf8-response-strict",
    build(src_rows(lambda: raw_utf8_row(1, "response")), IGN, STRICT),
    "row 1",
    "response",
    "UTF-8",
)
case(
    "build-jsonl-invalid-utf8-response-counted",
    build(src_rows(lambda: raw_utf8_row(1, "response")), IGN),
    ok=malformed_kept(1, "response", "UTF-8"),
)
case(
    "build-jsonl-invalid-utf8-instruction-strict",
    build(src_rows(lambda: raw_utf8_row(0, "instruction")), IGN, STRICT),
    "row 0",
    "instruction",
    "UTF-8",
)
case(
    "build-jsonl-invalid-utf8-model-strict",
    build(src_rows(lambda: raw_utf8_row(0, "model")), IGN, STRICT),
    "row 0",
    "model",
    "UTF-8",
)
case(
    "build-jsonl-not-an-object-strict",
    build(src_rows(lambda: [*RAW[:2], b"[1, 2]", *RAW[2:4]]), IGN, STRICT),
    "row 2",
)
case("build-strict-fixture", build(str(FIXTURE), IGN, STRICT), "row 9", "seven")
case("build-unknown-models", build(str(FIXTURE)), "mystery-7b", "--ignore-unknown-models")
case(
    "build-zero-pairs",
    build(
        src_rows([{"instruction": f"q{i}", "completions": RAW[5]["completions"]} for i in range(4)]),
        "--test-size",
        "0",
    ),
    "no pairs",
)
case(
    "build-degenerate-pool",
    lambda ws, tmp: [
        "build",
        "--source",
        FIXTURE,
        "--scores",
        write_csv(tmp / "s.csv", "model,b1,b2\ngpt-4,1,0\nbard,0,1\n"),
        IGN,
        "--modes",
        "score,sim,score_sim",
        "--test-size",
        "0",
        "-o",
        tmp / "out",
    ],
    "no pairs",
)
case("build-modes-unknown", build(str(FIXTURE), IGN, "--modes", "sim,best"), "unknown mode", "'best'")
case("build-modes-empty", build(str(FIXTURE), IGN, "--modes", ","), "--modes")
case("build-tau-range", build(str(FIXTURE), IGN, "--tau", "-1"), "--tau")
case("build-test-size-text", build(str(FIXTURE), IGN, "--test-size", "abc"), "--test-size", "abc")
case("build-test-size-one-point-zero", build(str(FIXTURE), IGN, "--test-size", "1.0"), "--test-size", "1.0")
case("build-test-size-negative", build(str(FIXTURE), IGN, "--test-size", "-3"), "--test-size", "-3")
case("build-test-size-above-one", build(str(FIXTURE), IGN, "--test-size", "1.5"), "--test-size", "1.5")
case("build-test-size-nan", build(str(FIXTURE), IGN, "--test-size", "nan"), "--test-size", "nan")
case("build-test-size-inf", build(str(FIXTURE), IGN, "--test-size", "inf"), "--test-size", "inf")
case("build-test-size-too-many", build(str(FIXTURE), IGN, "--test-size", "50"), "--test-size", "only 12")
case(
    "build-test-size-tiny-fraction",
    build(str(FIXTURE), IGN, "--test_size", "0.0001"),
    ok=lambda out, err, tmp: json.loads((tmp / "out" / "build_report.json").read_text())["test_prompts"] == 1,
)
case("build-rating-unknown", build(str(FIXTURE), IGN, "--rating", "mean"), "--rating", "'mean'")
case("build-source-format-unknown", build(str(FIXTURE), IGN, "--source-format", "nope"), "--source-format", "nope")
case("build-revision-local", build(str(FIXTURE), IGN, "--revision", "main"), "--revision", "Hub sources only")
case("build-split-local-file", build(str(FIXTURE), IGN, "--split", "test"), "--split", "test")
case("build-split-missing-in-folder", build(lambda ws, tmp: tmp, IGN, "--split", "validation"), "validation")
case("build-num-proc-zero", build(str(FIXTURE), IGN, "--num-proc", "0"), "--num-proc")
case("build-num-proc-alias-zero", build(str(FIXTURE), IGN, "--num_proc", "0"), "--num")
case("build-out-parent-is-file", build(str(FIXTURE), IGN, out=lambda ws, tmp: ws.file / "out"), "a-regular-file")
case("build-out-is-file", build(str(FIXTURE), IGN, out=lambda ws, tmp: ws.file), "a-regular-file")
case("build-out-read-only", build(str(FIXTURE), IGN, out=READ_ONLY / "out"), "/sys/karma-bad-inputs")
case(
    "build-out-not-empty",
    build(str(FIXTURE), IGN, out=lambda ws, tmp: ws.built),
    "not empty",
    "--overwrite",
)
case(
    "build-out-foreign-overwrite",
    build(str(FIXTURE), IGN, "--overwrite", out=lambda ws, tmp: ws.root),
    "build_report.json",
)
case("build-private-without-push", build(str(FIXTURE), IGN, "--private"), "--private", "--push-to")
case("build-push-to-bad-id", build(str(FIXTURE), IGN, "--push-to", "a/b/c"), "a/b/c")
case("build-push-to-model-repo", build(str(FIXTURE), IGN, "--push-to", "models/me/x"), "model repo")
case(
    "build-push-to-offline",
    build(lambda ws, tmp: tmp / "never-read.jsonl", IGN, "--push-to", "me/karma-x"),
    "HF_HUB_OFFLINE",
    patch=offline_hub,
    env={"HF_TOKEN": "hf_not_a_real_token"},
)
case(
    "build-push-to-no-token",
    build(lambda ws, tmp: tmp / "never-read.jsonl", IGN, "--push-to", "me/karma-x"),
    "no Hugging Face token",
    patch=online_without_token,
)
case(
    "build-aliases-unknown-model",
    build(str(FIXTURE), IGN, "--aliases", lambda ws, tmp: write_csv(tmp / "a.json", '{"nobody": "x"}')),
    "nobody",
)
case(
    "build-from-parquet-ok",
    build(parquet_source, IGN),
    ok=lambda out, err, tmp: (tmp / "out" / "sim" / "train-00000-of-00001.parquet").is_file(),
)


# --- karma push ------------------------------------------------------------------------------------
def push(folder, *args):
    return lambda ws, tmp: ["push", folder(ws, tmp), "--repo", *(args or ("me/karma-x",))]


def broken_build(change: Callable[[Path], None]):
    def make(ws, tmp):
        out = copy_build(ws, tmp)
        change(out)
        return out

    return make


case("push-folder-missing", push(lambda ws, tmp: tmp / "nope"), "nope", "not a folder")
case("push-folder-is-file", push(lambda ws, tmp: ws.file), "a-regular-file", "not a folder")
case("push-no-card", push(broken_build(lambda p: (p / "README.md").unlink())), "missing README.md")
case("push-no-report", push(broken_build(lambda p: (p / "build_report.json").unlink())), "missing build_report.json")
case(
    "push-bad-report",
    push(broken_build(lambda p: (p / "build_report.json").write_text("{"))),
    "build_report.json",
    "not valid JSON",
)
case(
    "push-report-invalid-utf8",
    push(broken_build(lambda p: (p / "build_report.json").write_bytes(b'{"a": "\xff"}'))),
    "build_report.json",
)
case(
    "push-card-invalid-utf8",
    push(broken_build(lambda p: (p / "README.md").write_bytes(b"---\nconfigs: \xff\n---\n"))),
    "README.md",
)
case(
    "push-card-invalid-yaml",
    push(broken_build(lambda p: (p / "README.md").write_text("---\nconfigs: [\n---\n"))),
    "README.md",
    "YAML",
)
case(
    "push-truncated-shard",
    push(broken_build(lambda p: truncated(p / "sim" / "train-00000-of-00001.parquet"))),
    "sim/train-00000-of-00001.parquet",
    "parquet",
)
case(
    "push-stray-file-in-mode",
    push(broken_build(lambda p: (p / "sim" / "notes.txt").write_text("x"))),
    "notes.txt",
)
case("push-bad-repo-id", push(lambda ws, tmp: ws.built, "a/b/c"), "a/b/c")
case("push-space-repo", push(lambda ws, tmp: ws.built, "spaces/me/x"), "space repo")
case(
    "push-offline",
    push(lambda ws, tmp: ws.built),
    "HF_HUB_OFFLINE",
    patch=offline_hub,
    env={"HF_TOKEN": "hf_not_a_real_token"},
)
case("push-no-token", push(lambda ws, tmp: ws.built), "no Hugging Face token", patch=online_without_token)


# --- karma report ----------------------------------------------------------------------------------
def report(dataset, *args):
    return lambda ws, tmp: [
        "report",
        dataset(ws, tmp) if callable(dataset) else dataset,
        *[a(ws, tmp) if callable(a) else a for a in args],
    ]


def bad_utf8_shard(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    chosen = table.column("chosen_model").combine_chunks()
    raw = pa.array([b"\xff\xfe" + (chosen[0].as_py() or "").encode()] + [None] * (len(chosen) - 1), pa.binary())
    broken = raw.view(pa.string())
    table = table.set_column(table.schema.get_field_index("chosen_model"), "chosen_model", broken)
    pq.write_table(table, path)


case("report-missing", report(lambda ws, tmp: tmp / "nope"), "nope")
case("report-is-file", report(lambda ws, tmp: ws.file), "a-regular-file")
case("report-empty-dir", report(lambda ws, tmp: tmp), "no")
case("report-modes-unknown", report(lambda ws, tmp: ws.built, "--modes", "nope"), "nope", "not found")
case("report-baseline-unknown", report(lambda ws, tmp: ws.built, "--baseline", "nope"), "--baseline", "nope")
case("report-splits-unknown", report(lambda ws, tmp: ws.built, "--splits", "dev"), "dev")
case(
    "report-out-parent-is-file",
    report(lambda ws, tmp: ws.built, "--out", lambda ws, tmp: ws.file / "r"),
    "a-regular-file",
)
case("report-out-read-only", report(lambda ws, tmp: ws.built, "-o", READ_ONLY / "r"), "/sys/karma-bad-inputs")
case(
    "report-corrupt-shard",
    report(broken_build(lambda p: truncated(p / "sim" / "train-00000-of-00001.parquet")), "--modes", "sim"),
    "train-00000-of-00001.parquet",
)
case(
    "report-shard-missing-columns",
    report(
        broken_build(
            lambda p: __import__("pyarrow.parquet").parquet.write_table(
                __import__("pyarrow").table({"prompt": ["x"]}), p / "sim" / "train-00000-of-00001.parquet"
            )
        ),
        "--modes",
        "sim",
    ),
    "missing column",
)
case(
    "report-invalid-utf8-in-shard",
    report(broken_build(lambda p: bad_utf8_shard(p / "sim" / "train-00000-of-00001.parquet")), "--modes", "sim"),
    "train-00000-of-00001.parquet",
    "UTF-8",
)
case(
    "report-card-declares-missing-file",
    report(broken_build(lambda p: (p / "sim" / "test-00000-of-00001.parquet").unlink()), "--modes", "sim"),
    "test-00000-of-00001.parquet",
)
case("report-hub-offline", report("someone/not-cached"), "someone/not-cached")


# --- karma quickstart ------------------------------------------------------------------------------
case("quickstart-out-is-file", lambda ws, tmp: ["quickstart", "--out", ws.file], "a-regular-file")
case("quickstart-out-parent-is-file", lambda ws, tmp: ["quickstart", "-o", ws.file / "q"], "a-regular-file")
case("quickstart-out-read-only", lambda ws, tmp: ["quickstart", "--out", READ_ONLY / "q"], "/sys/karma-bad-inputs")
case("quickstart-out-foreign", lambda ws, tmp: ["quickstart", "--out", ws.root], "not written by `karma quickstart`")


# --- karma train -----------------------------------------------------------------------------------
def train(*args, stage="dpo", config=True):
    def argv(ws, tmp):
        base = ["train", stage] + (["--config", TINY_DPO] if config else [])
        defaults = {
            "--model_name_or_path": ws.not_a_model,
            "--dataset_name": ws.built,
            "--dataset_config": "sim",
            "--output_dir": tmp / "run",
        }
        rest = [a(ws, tmp) if callable(a) else a for a in args]
        for flag in list(defaults):
            if flag in rest or (flag == "--output_dir" and ("-o" in rest or "--out" in rest)):
                defaults.pop(flag)
        return [*base, *rest, *[x for kv in defaults.items() for x in kv]]

    return argv


case("train-no-args", lambda ws, tmp: ["train", "dpo"], "--config")
case("train-unknown-stage", lambda ws, tmp: ["train", "ppo"], "ppo")
case("train-config-missing", lambda ws, tmp: ["train", "dpo", "--config", tmp / "r.yaml"], "config file not found")
case(
    "train-config-invalid-yaml",
    lambda ws, tmp: ["train", "dpo", "--config", write_csv(tmp / "r.yaml", "a: [\n")],
    "r.yaml",
    "YAML",
)
case(
    "train-config-not-mapping",
    lambda ws, tmp: ["train", "dpo", "--config", write_csv(tmp / "r.yaml", "- 1\n- 2\n")],
    "mapping",
)
case(
    "train-config-invalid-utf8",
    lambda ws, tmp: ["train", "dpo", "--config", write_csv(tmp / "r.yaml", b"beta: \xff\n")],
    "r.yaml",
)
case(
    "train-config-unknown-key",
    lambda ws, tmp: ["train", "dpo", "--config", write_csv(tmp / "r.yaml", TINY_DPO.read_text() + "foo: 1\n")],
    "'foo'",
)
case("train-bad-learning-rate", train("--learning_rate", "fast"), "learning_rate")
case("train-unknown-flag", train("--not_a_field", "1"), "not_a_field")
case("train-model-missing", train("--model_name_or_path", lambda ws, tmp: tmp / "no-such-model"), "no-such-model")
case("train-model-hub-id-offline", train("--model_name_or_path", "someone/not-cached-model"), "someone/not-cached")
case("train-model-is-file", train("--model_name_or_path", lambda ws, tmp: ws.file), "a-regular-file")
case("train-dataset-missing", train("--dataset_name", lambda ws, tmp: tmp / "nope"), "nope")
case("train-dataset-config-unknown", train("--dataset_config", "nope"), "nope", "available")
case("train-dataset-split-unknown", train("--dataset_train_split", "valid"), "valid")
case("train-max-samples-negative", train("--karma_max_train_samples", "-1"), "karma_max_train_samples", "-1")
case("train-max-samples-zero", train("--karma_max_train_samples", "0"), "karma_max_train_samples")
case("train-eval-task-unknown", train("--karma_eval_tasks", "karma_nope"), "karma_nope")
case(
    "train-eval-data-missing",
    train("--karma_eval_tasks", "karma"),
    "KARMA_DATA_DIR",
    env={"KARMA_DATA_DIR": "{tmp}"},
)
case(
    "train-eval-offline-no-data-dir",
    train("--karma_eval_tasks", "karma_arc_easy"),
    "KARMA_DATA_DIR",
    env={"KARMA_DATA_DIR": None, "HF_DATASETS_OFFLINE": "1"},
)
case(
    "train-eval-ifeval-extra-missing",
    train("--karma_eval_tasks", "karma_ifeval"),
    "ifeval",
    env={"KARMA_DATA_DIR": str(KARMA_DATA)},
    patch=no_ifeval_extra,
)
case("train-output-dir-is-file", train("--output_dir", lambda ws, tmp: ws.file), "a-regular-file")
case("train-output-dir-parent-is-file", train("-o", lambda ws, tmp: ws.file / "run"), "a-regular-file")
case("train-output-dir-read-only", train("--out", READ_ONLY / "run"), "/sys/karma-bad-inputs")
case(
    "train-resume-missing",
    train("--resume_from_checkpoint", lambda ws, tmp: tmp / "ckpt"),
    "resume_from_checkpoint",
)
case(
    "train-dataset-corrupt-shard",
    train("--dataset_name", broken_build(lambda p: truncated(p / "sim" / "train-00000-of-00001.parquet"))),
    "sim",
)


# --- karma compare ---------------------------------------------------------------------------------
def compare(*args):
    return lambda ws, tmp: ["compare", *[a(ws, tmp) if callable(a) else a for a in args]]


case("compare-nothing", compare(), "no run directories")
case("compare-run-missing", compare(lambda ws, tmp: tmp / "nope"), "nope")
case("compare-no-karma-eval", compare(lambda ws, tmp: tmp), "karma_eval")
case(
    "compare-bad-results",
    compare(lambda ws, tmp: results_file(tmp / "r" / "karma_eval" / "m" / "results_x.json", "{").parents[2]),
    "results_x.json",
)
case(
    "compare-provenance-bad-json",
    compare(lambda ws, tmp: write_run(tmp, "r", "{oops")),
    "karma_provenance.json",
)
case(
    "compare-provenance-list",
    compare(lambda ws, tmp: write_run(tmp, "r", [1, 2])),
    "karma_provenance.json",
)
case(
    "compare-provenance-dataset-string",
    compare(lambda ws, tmp: write_run(tmp, "r", {"dataset": "sim", "stage": "dpo"})),
    "karma_provenance.json",
    "dataset",
)
case(
    "compare-provenance-invalid-utf8",
    compare(
        lambda ws, tmp: (
            write_run(tmp, "r", None) and (tmp / "r" / "karma_provenance.json").write_bytes(b"\xff") and tmp / "r"
        )
    ),
    "karma_provenance.json",
)
case(
    "compare-plot-parent-is-file",
    compare(lambda ws, tmp: ws.run, "--plot", lambda ws, tmp: ws.file / "c.png"),
    "a-regular-file",
)
case("compare-plot-extension", compare(lambda ws, tmp: ws.run, "--plot", lambda ws, tmp: tmp / "c.xyz"), "c.xyz")
case("compare-plot-read-only", compare(lambda ws, tmp: ws.run, "--plot", READ_ONLY / "c.png"), "/sys/karma-bad")
case("compare-baseline-missing", compare(lambda ws, tmp: ws.run, "--baseline", lambda ws, tmp: tmp / "b"), "b")
case(
    "compare-no-common-benchmark",
    compare(
        lambda ws, tmp: write_run(tmp, "a", None, {"karma_ifeval": 0.5}),
        lambda ws, tmp: write_run(tmp, "b", None, {"karma_mmlu_pro": 0.5}),
    ),
    "no evaluated benchmark",
)
case("compare-format", compare(lambda ws, tmp: ws.run, "--format", "xml"), "--format", "xml")


# --- karma eval ------------------------------------------------------------------------------------
def evaluate(*args, model=True):
    def argv(ws, tmp):
        rest = [a(ws, tmp) if callable(a) else a for a in args]
        margs = ["--model_args", f"pretrained={tmp}"] if model else []
        return ["eval", *margs, "--output_path", tmp / "results", *rest]

    return argv


DATA = {"KARMA_DATA_DIR": str(KARMA_DATA)}
case("eval-no-model", evaluate(model=False), "no model given")
case("eval-models-file-missing", evaluate("--models-file", lambda ws, tmp: tmp / "m.txt", model=False), "m.txt")
case(
    "eval-models-file-empty",
    evaluate("--models-file", lambda ws, tmp: write_csv(tmp / "m.txt", "# none\n"), model=False),
    "lists no model",
)
case(
    "eval-models-file-invalid-utf8",
    evaluate("--models-file", lambda ws, tmp: write_csv(tmp / "m.txt", b"\xff\n"), model=False),
    "m.txt",
)
case("eval-task-unknown", evaluate("--tasks", "karma_nope"), "karma_nope", env=DATA)
case("eval-tasks-empty", evaluate("--tasks", ","), "--tasks")
case("eval-group-and-member", evaluate("--tasks", "karma,karma_ifeval"), "karma_ifeval", env=DATA)
case(
    "eval-model-missing",
    lambda ws, tmp: ["eval", "--model_args", f"pretrained={tmp / 'nope'}", "--output_path", tmp / "r"],
    "nope",
    env=DATA,
)
case(
    "eval-model-hub-offline",
    lambda ws, tmp: ["eval", "--model_args", "pretrained=someone/not-cached", "--output_path", tmp / "r"],
    "someone/not-cached",
    env={**DATA, "HF_HUB_OFFLINE": "1"},
)
case("eval-model-args-no-pretrained", lambda ws, tmp: ["eval", "--model_args", "dtype=float32"], "pretrained")
case("eval-data-dir-missing-files", evaluate(), "KARMA_DATA_DIR", env={"KARMA_DATA_DIR": "{tmp}"})
case(
    "eval-offline-no-data-dir",
    evaluate("--tasks", "karma_arc_easy"),
    "KARMA_DATA_DIR",
    env={"KARMA_DATA_DIR": None, "HF_DATASETS_OFFLINE": "1"},
)
case("eval-ifeval-extra-missing", evaluate("--tasks", "karma_ifeval"), "ifeval", env=DATA, patch=no_ifeval_extra)
case(
    "eval-output-json",
    lambda ws, tmp: ["eval", "--model_args", f"pretrained={tmp}", "--output_path", tmp / "r.json"],
    "must be a folder",
)
case(
    "eval-output-parent-is-file",
    lambda ws, tmp: ["eval", "--model_args", f"pretrained={tmp}", "--out", ws.file / "r"],
    "a-regular-file",
    env=DATA,
)
case(
    "eval-output-read-only",
    lambda ws, tmp: ["eval", "--model_args", f"pretrained={tmp}", "-o", READ_ONLY / "r"],
    "/sys/karma-bad-inputs",
    env=DATA,
)
case("eval-own-option-passed-through", evaluate("--include_path", "x"), "--include_path")


# --- karma data download / tasks-path / the group ---------------------------------------------------
case(
    "data-download-offline",
    lambda ws, tmp: ["data", "download", "--out", tmp / "d", "--source", "ifeval"],
    "offline",
    env={"HF_DATASETS_OFFLINE": "1"},
)
case("data-download-out-is-file", lambda ws, tmp: ["data", "download", "--out", ws.file], "a-regular-file")
case(
    "data-download-out-parent-is-file",
    lambda ws, tmp: ["data", "download", "-o", ws.file / "d"],
    "a-regular-file",
)
case("data-download-unknown-source", lambda ws, tmp: ["data", "download", "--out", tmp, "--source", "x"], "'x'")
case("tasks-path-extra-argument", lambda ws, tmp: ["tasks-path", "extra"], "extra")
case("unknown-command", lambda ws, tmp: ["frobnicate"], "frobnicate")


@pytest.mark.parametrize("cid,argv,needles,opts", CASES, ids=[c[0] for c in CASES])
def test_bad_input(cid, argv, needles, opts, w, tmp_path, capsys, monkeypatch):
    if str(READ_ONLY) in str(argv) and os.path.exists(READ_ONLY):  # pragma: no cover - never on Linux
        pytest.skip("/sys is writable here")
    monkeypatch.chdir(tmp_path)
    for var, value in (opts.get("env") or {}).items():
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, value.format(tmp=tmp_path))
    if opts.get("patch"):
        opts["patch"](monkeypatch, w)
    args = argv(w, tmp_path)
    capsys.readouterr()
    code, out, err = run_cli(args, capsys)
    check = opts.get("ok")
    if check is not None:
        assert "Traceback" not in out + err, err[-3000:]
        assert code == 0, err[-2000:]
        assert not [line for line in err.splitlines() if line.startswith("error:")]
        assert check(out, err, tmp_path), (out[-1500:], err[-1500:])
        return
    line = assert_one_line_error(code, out, err, needles)
    if os.environ.get("KARMA_MATRIX_SHOW"):
        sys.__stderr__.write(f"\nMATRIX {cid}: {line}\n")


def test_matrix_is_large_enough():
    assert len(CASES) >= 100


# ------------------------------------------------------------------------------------------ interface
def _commands():
    import click

    from karma_hf.cli import cli
    from karma_hf.train.stages import stage_names

    ctx = click.Context(cli)
    stack = [("karma", cli)]
    while stack:
        name, cmd = stack.pop()
        yield name, cmd
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(ctx) if name == "karma train" else cmd.commands:
                stack.append((f"{name} {sub}", cmd.get_command(ctx, sub)))
    assert stage_names()


def test_every_option_has_help_and_both_spellings():
    import click

    problems = []
    for name, cmd in _commands():
        for param in cmd.params:
            if not isinstance(param, click.Option) or param.name in ("help", "version"):
                continue
            if not param.help:
                problems.append(f"{name} {param.opts[0]}: no help text")
            longs = [o for o in param.opts + param.secondary_opts if o.startswith("--")]
            for opt in longs:
                body = opt[2:]
                if "-" in body or "_" in body:
                    for other in (body.replace("-", "_"), body.replace("_", "-")):
                        if f"--{other}" not in longs:
                            problems.append(f"{name} {opt}: --{other} is not accepted")
    assert not problems, "\n".join(sorted(set(problems)))


@pytest.mark.parametrize(
    "command,flags",
    [
        ("build", ("--output", "--out", "-o")),
        ("plot", ("--out", "--output", "-o")),
        ("report", ("--out", "--output", "-o")),
        ("quickstart", ("--out", "--output", "-o")),
        ("eval", ("--output_path", "--output-path", "--out", "-o")),
        ("kinship", ("--output", "--out", "-o")),
    ],
)
def test_output_option_spellings(command, flags):
    from karma_hf.cli import cli

    cmd = cli.commands[command]
    opts = {o for p in cmd.params for o in p.opts}
    assert set(flags) <= opts
    if command == "build":
        assert {"--test-size", "--test_size", "--num-proc", "--num_proc"} <= opts


def test_train_output_aliases():
    from karma_hf.cli.train import output_aliases

    assert output_aliases(["-o", "d", "--out=e", "--output", "f", "--beta", "1"]) == [
        "--output_dir",
        "d",
        "--output_dir",
        "e",
        "--output_dir",
        "f",
        "--beta",
        "1",
    ]


def test_recorded_command_keeps_aliases_and_no_absolute_path(w, tmp_path, capsys):
    aliases = write_csv(tmp_path / "names.json", '{"gpt-4": "gpt-4"}')
    code, out, err = run_cli(
        [
            "build",
            "--source",
            FIXTURE.resolve(),
            "--scores",
            UF,
            "--aliases",
            aliases.resolve(),
            "--test-size",
            "3",
            IGN,
            "-o",
            tmp_path / "out",
        ],
        capsys,
    )
    assert code == 0, err[-2000:]
    command = json.loads((tmp_path / "out" / "build_report.json").read_text())["command"]
    assert "--aliases names.json" in command and "--source ultrafeedback_mini.jsonl" in command
    assert str(tmp_path) not in command and "/work/" not in command and "/tmp/" not in command
    card = (tmp_path / "out" / "README.md").read_text()
    assert "--aliases names.json" in card and str(tmp_path) not in card
    report = json.loads((tmp_path / "out" / "build_report.json").read_text())
    assert report["source"]["split"] is None  # a single file: no split was used, none is recorded
