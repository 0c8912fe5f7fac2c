"""The `karma` CLI: common error path, kinship/plot commands, light imports, --help everywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from karma_hf import __version__
from karma_hf.cli import cli, main

FIXTURES = Path(__file__).parent / "fixtures" / "lm_eval"


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "karma_hf.cli", *args], capture_output=True, text=True, timeout=120)


def test_version_and_help_on_every_command() -> None:
    runner = CliRunner()
    assert __version__ in runner.invoke(cli, ["--version"]).output

    def walk(group, path):
        for name, cmd in group.commands.items():
            res = runner.invoke(cli, [*path, name, "--help"])
            assert res.exit_code == 0, (path, name, res.output)
            assert "Usage:" in res.output
            if hasattr(cmd, "commands"):
                walk(cmd, [*path, name])

    walk(cli, [])
    assert {"kinship", "plot"} <= set(cli.commands)


def test_kinship_table_json_csv(tmp_path: Path) -> None:
    res = run(["kinship", "--scores", "ultrafeedback-paper"])
    assert res.returncode == 0, res.stderr
    assert "S_pref ranking" in res.stdout and "GPT-4" in res.stdout and "Llama-2-13b-chat" in res.stdout
    out = tmp_path / "k.json"
    res = run(["kinship", "--scores", "ultrafeedback-paper", "--format", "json", "--output", str(out)])
    assert res.returncode == 0, res.stderr
    data = json.loads(out.read_text())
    assert data["ranking"][0] == "gpt-4" and data["pairs"]["score"]["chosen"] == "gpt-4"
    assert data["not_kin"] == [["starchat", "pythia-12b", pytest.approx(0.0207, abs=1e-3)]]
    res = run(["kinship", "--scores", "ultrafeedback-paper", "--format", "csv", "--tau", "0.5"])
    lines = res.stdout.splitlines()
    assert lines[0].startswith("rank,model,s_pref") and lines[1].startswith("1,gpt-4,")
    assert len(lines) == 17


def test_kinship_does_not_import_heavy_libraries() -> None:
    code = (
        "import sys\nfrom karma_hf.cli import main\n"
        "try:\n    main(['kinship', '--scores', 'ultrafeedback-paper', '--format', 'json'])\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'lm_eval', 'datasets', 'matplotlib') "
        "if m in sys.modules]\nprint('HEAVY', heavy, file=sys.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in res.stderr, res.stderr


@pytest.mark.parametrize(
    "args, needle",
    [
        (["kinship", "--scores", "/no/such/dir"], "scores path does not exist: /no/such/dir"),
        (["kinship", "--scores", "ultrafeedback-papr"], "unknown preset or missing path 'ultrafeedback-papr'"),
        (["kinship", "--scores", "ultrafeedback-paper", "--tau", "2"], "--tau"),
        (["kinship", "--scores", "ultrafeedback-paper", "--format", "xml"], "'xml'"),
        (["kinship", "--scores", str(FIXTURES / "leaderboard")], "missing benchmark results"),
        (
            ["kinship", "--scores", str(FIXTURES / "leaderboard"), "--benchmark", "hellaswag:nope,none"],
            "has no metric 'nope,none'",
        ),
    ],
)
def test_user_errors_are_one_line_exit_2(args: list[str], needle: str) -> None:
    res = run(args)
    assert res.returncode == 2, res
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert needle in lines[0]
    assert "Traceback" not in res.stderr


def test_errors_from_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "results_bad.json").write_text('{"foo": 1}')
    (tmp_path / "dup.csv").write_text("model,b1,b2\nm,1,2\nm,2,3\n")
    (tmp_path / "nan.csv").write_text("model,b1,b2\nm,1,nan\nn,2,3\n")
    (tmp_path / "aliases.json").write_text('{"m": "x", "n": "x"}')
    (tmp_path / "ok.csv").write_text("model,b1,b2\nm,1,2\nn,2,1\n")
    cases = [
        ([str(tmp_path / "empty")], "no lm-eval results files"),
        ([str(tmp_path / "results_bad.json")], "not an lm-eval results file"),
        ([str(tmp_path / "dup.csv")], "duplicate model name 'm'"),
        ([str(tmp_path / "nan.csv")], "not finite"),
        ([str(tmp_path / "ok.csv"), "--aliases", str(tmp_path / "aliases.json")], "names model 'x' twice"),
    ]
    for extra, needle in cases:
        res = run(["kinship", "--scores", *extra])
        assert res.returncode == 2 and res.stderr.startswith("error: ") and needle in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1


def test_verbose_shows_traceback() -> None:
    res = run(["--verbose", "kinship", "--scores", "/no/such/dir"])
    assert res.returncode == 2 and "Traceback" in res.stderr and "error: scores path" in res.stderr


def test_main_exit_codes(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["kinship", "--scores", "ultrafeedback-paper", "--format", "json"])
    assert exc.value.code == 0
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_plot_writes_valid_files(tmp_path: Path) -> None:
    res = run(["plot", "--scores", "ultrafeedback-paper", "--out", str(tmp_path / "plots")])
    assert res.returncode == 0, res.stderr
    for name in ("pca", "dendrograms", "kinship_heatmap"):
        png = tmp_path / "plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        assert (tmp_path / "plots" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    svg = (tmp_path / "plots" / "dendrograms.svg").read_text()
    assert "average linkage on 1 - cosine" in svg and "cut at 0.4" in svg
    # clusters against hand-computed ones: tests/test_kinship_plots.py


def test_plot_distance_and_linkage_options(tmp_path: Path) -> None:
    res = run(
        [
            "plot",
            "--scores",
            "ultrafeedback-paper",
            "--out",
            str(tmp_path),
            "--formats",
            "svg",
            "--distance",
            "euclidean",
            "--linkage",
            "ward",
        ]
    )
    assert res.returncode == 0, res.stderr
    svg = (tmp_path / "dendrograms.svg").read_text()
    assert "ward linkage on Euclidean distance" in svg and "ward linkage on |n_i - n_j|" in svg
    res = run(["plot", "--scores", "ultrafeedback-paper", "--out", str(tmp_path), "--linkage", "single"])
    assert res.returncode == 2 and "'single'" in res.stderr


def test_plot_is_deterministic(tmp_path: Path) -> None:
    for d in ("a", "b"):
        assert (
            run(["plot", "--scores", "ultrafeedback-paper", "--out", str(tmp_path / d), "--formats", "png"]).returncode
            == 0
        )
    for name in ("pca", "dendrograms", "kinship_heatmap"):
        assert (tmp_path / "a" / f"{name}.png").read_bytes() == (tmp_path / "b" / f"{name}.png").read_bytes()


def test_plot_bad_format(tmp_path: Path) -> None:
    res = run(["plot", "--scores", "ultrafeedback-paper", "--out", str(tmp_path), "--formats", "gif"])
    assert res.returncode == 2 and "unsupported format" in res.stderr
