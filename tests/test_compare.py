"""`karma compare`: run folders with standard lm-eval results files side by side, and the chart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from karma_hf.cli import main
from karma_hf.errors import KarmaError
from karma_hf.evaluation.compare import compare_runs, comparison_figure, plot_comparison
from karma_hf.scores import KARMA_TASKS


def write_run(root: Path, name: str, mode: str | None, scores: dict[str, float], stage: str = "dpo") -> Path:
    """A run folder as `karma train` leaves it: karma_provenance.json + karma_eval/<model>/results_*.json."""
    run = root / name
    res = run / "karma_eval" / f"__runs__{name}"
    res.mkdir(parents=True)
    results = {t: {"alias": t, KARMA_TASKS[t]: v} for t, v in scores.items()}
    (res / "results_2026-11-27T10-00-00.000000.json").write_text(
        json.dumps(
            {
                "results": results,
                "config": {"model": "hf", "model_args": {"pretrained": str(run)}, "limit": 2},
                "model_name": str(run),
                "date": 1_790_000_000.0,
                "lm_eval_version": "0.4.13",
            }
        )
    )
    if mode is not None:
        (run / "karma_provenance.json").write_text(
            json.dumps(
                {
                    "stage": stage,
                    "dataset": {"name": "me/uf-karma", "config": mode},
                    "run_config": {"model": {"model_name_or_path": "Qwen/Qwen2.5-3B-Instruct"}},
                }
            )
        )
    return run


SIX = list(KARMA_TASKS)


@pytest.fixture
def runs(tmp_path) -> dict[str, Path]:
    base = {t: 0.5 for t in SIX}
    return {
        "rlaif": write_run(tmp_path, "dpo-rlaif", "rlaif", base),
        "score": write_run(tmp_path, "dpo-score", "score", {**base, "karma_ifeval": 0.6}),
        "sim": write_run(tmp_path, "dpo-sim", "sim", {**base, "karma_mmlu_pro": 0.4}),
    }


def test_compare_groups_by_mode_and_marks_the_baseline(runs):
    cmp = compare_runs([runs["sim"], runs["score"]], baseline=runs["rlaif"])
    assert [r.mode for r in cmp.runs] == ["rlaif", "score", "sim"]
    assert cmp.baseline.label == "dpo-rlaif" and cmp.benchmarks == SIX
    score, sim = cmp.runs[1], cmp.runs[2]
    assert cmp.delta(score, "karma_ifeval") == pytest.approx(0.1)
    assert cmp.delta(sim, "karma_mmlu_pro") == pytest.approx(-0.1)
    assert cmp.value(score, "average") == pytest.approx(0.5 + 0.1 / 6)
    assert cmp.delta(cmp.baseline, "average") is None
    md = cmp.to_markdown()
    assert "dpo-rlaif (baseline)" in md and "0.6000 (+0.1000)" in md
    data = cmp.to_dict()
    assert data["runs"][0]["baseline"]
    assert data["runs"][2]["delta_vs_baseline"]["karma_mmlu_pro"] == pytest.approx(-0.1)


def test_compare_keeps_common_benchmarks_and_says_which_were_dropped(tmp_path, runs):
    partial = write_run(tmp_path, "dpo-partial", "score_sim", {"karma_ifeval": 0.7, "karma_arc_easy": 0.9})
    cmp = compare_runs([runs["score"], partial])
    assert cmp.benchmarks == ["karma_ifeval", "karma_arc_easy"] and cmp.baseline is None
    assert any("dpo-score" in n and "karma_mmlu_pro" in n for n in cmp.notes)


def test_compare_errors_are_one_line(tmp_path, runs):
    with pytest.raises(KarmaError, match="run directory not found"):
        compare_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(KarmaError, match="no karma_eval/ folder"):
        compare_runs([tmp_path / "empty"])


def test_compare_cli_table_json_and_png(runs, tmp_path, capsys):
    png = tmp_path / "cmp.png"
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(runs["score"]), str(runs["sim"]), "--baseline", str(runs["rlaif"]), "--plot", str(png)])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "dpo-rlaif" in out and "(baseline)" in out and "+0.100" in out
    assert png.stat().st_size > 10_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit):
        main(["compare", str(runs["score"]), "--format", "json"])
    assert json.loads(capsys.readouterr().out)["runs"][0]["mode"] == "score"
    with pytest.raises(SystemExit) as exc:
        main(["compare", str(tmp_path / "missing")])
    assert exc.value.code == 2 and capsys.readouterr().err.startswith("error: run directory not found")


def test_plot_without_provenance_still_labels_runs(tmp_path):
    run = write_run(tmp_path, "plain", None, {t: 0.3 for t in SIX})
    cmp = compare_runs([run])
    assert cmp.runs[0].mode is None
    assert plot_comparison(cmp, tmp_path / "c.svg").read_text().startswith("<?xml")
    fig = comparison_figure(cmp)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["plain — ?"]  # the run's folder name, mode unknown
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][:2] == ["ifeval", "mmlu_stem"]
