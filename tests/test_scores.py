"""ScoreTable readers: real lm-eval output, older 0.4.x files, leaderboard files, CSV, presets, errors."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

from karma_hf.errors import KarmaError
from karma_hf.scores import ScoreTable, load_scores

FIXTURES = Path(__file__).parent / "fixtures" / "lm_eval"
PROBE = {"probe_arc": "exact_match,strict-match"}

PROBE_TASK = """\
task: probe_arc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "Question: {{{{question}}}}\\nA. {{{{choices.text[0]}}}}\\nB. {{{{choices.text[1]}}}}\\nAnswer:"
doc_to_target: "{{{{answerKey}}}}"
generation_kwargs:
  until: ["\\n\\n"]
  max_gen_toks: 4
  do_sample: false
filter_list:
  - name: strict-match
    filter:
      - function: regex
        regex_pattern: "answer is \\\\(?([AB])\\\\)?"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


@pytest.fixture(scope="session")
def real_results_dir(tiny_model_dir: Path, tmp_path_factory) -> Path:
    """Results written by the real lm-eval (Python API + its EvaluationTracker) for the tiny model."""
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    root = tmp_path_factory.mktemp("lm-eval-real")
    data = root / "probe.jsonl"
    rows = [
        {
            "id": f"q{i}",
            "question": f"Is {i} even?",
            "answerKey": "AB"[i % 2],
            "choices": {"text": ["yes", "no"], "label": ["A", "B"]},
        }
        for i in range(4)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "tasks").mkdir()
    (root / "tasks" / "probe_arc.yaml").write_text(PROBE_TASK.format(data=data))
    tracker = EvaluationTracker(output_path=str(root / "out"))
    results = simple_evaluate(
        model="hf",
        model_args={"pretrained": str(tiny_model_dir), "device": "cpu"},
        tasks=["probe_arc"],
        limit=3,
        batch_size=1,
        log_samples=False,
        evaluation_tracker=tracker,
        task_manager=TaskManager(include_path=[str(root / "tasks")], include_defaults=False),
    )
    results.pop("samples", None)
    tracker.save_results_aggregated(results=results, samples=None)
    return root / "out"


def test_real_lm_eval_file_parses(real_results_dir: Path, tiny_model_dir: Path) -> None:
    files = list(real_results_dir.rglob("results_*.json"))
    assert len(files) == 1
    raw = json.loads(files[0].read_text())
    assert isinstance(raw["config"]["model_args"], dict)  # 0.4.13 layout
    table = load_scores(real_results_dir, benchmarks=PROBE)
    assert table.models == [str(tiny_model_dir)]
    assert table.benchmarks == ["probe_arc"]
    prov = table.provenance[(str(tiny_model_dir), "probe_arc")]
    assert prov.metric == "exact_match,strict-match" and prov.limit == 3
    assert prov.lm_eval_version and prov.file == str(files[0])
    assert 0.0 <= table.values[0, 0] <= 1.0


def test_old_format_parses_to_same_shape(real_results_dir: Path) -> None:
    new = load_scores(real_results_dir, benchmarks=PROBE)
    old = load_scores(FIXTURES / "old_format" / "results.json", benchmarks=PROBE)
    assert old.models == ["old-org/old-model"]  # from the "k=v,..." model_args string
    assert (old.benchmarks, old.values.shape) == (new.benchmarks, new.values.shape)
    assert old.values[0, 0] == 0.25
    assert old.provenance[("old-org/old-model", "probe_arc")].lm_eval_version is None
    # the group row is read too, by its name
    grp = load_scores(FIXTURES / "old_format" / "results.json", benchmarks={"probe_group": None})
    assert grp.values[0, 0] == 0.5


def test_leaderboard_files_with_benchmark_selection() -> None:
    table = load_scores(
        FIXTURES / "leaderboard",
        benchmarks=["leaderboard_ifeval", "leaderboard_mmlu_pro", "hellaswag", "arc_challenge", "mmlu_stem"],
    )
    assert table.models == ["org/model-a", "org/model-b"]
    assert table.score("org/model-a", "hellaswag") == 0.80  # acc_norm by default
    assert table.score("org/model-b", "leaderboard_ifeval") == 0.42
    assert table.score("org/model-a", "mmlu_stem") == 0.45  # group row, alias " - stem"
    explicit = load_scores(FIXTURES / "leaderboard", benchmarks={"hellaswag": "acc,none"})
    assert explicit.score("org/model-a", "hellaswag") == pytest.approx(0.60)
    # names from NAME=PATH override the file's model_name
    named = load_scores([f"A={FIXTURES / 'leaderboard' / 'org__model-a'}"], benchmarks=["hellaswag"])
    assert named.models == ["A"]


def test_newest_file_per_task_wins(tmp_path: Path) -> None:
    src = FIXTURES / "leaderboard" / "org__model-a" / "results_2024-03-09T16-00-00.000000.json"
    data = json.loads(src.read_text())
    data["date"] = 1720000000.0
    data["results"]["hellaswag"]["acc_norm,none"] = 0.99
    shutil.copy(src, tmp_path / "results_2024-03-09T16-00-00.000000.json")
    (tmp_path / "results_2024-07-01T00-00-00.000000.json").write_text(json.dumps(data))
    table = load_scores(tmp_path, benchmarks=["hellaswag"])
    assert table.score("org/model-a", "hellaswag") == 0.99
    assert any("newest" in n for n in table.notes)


def test_non_karma_tasks_ignored_with_note() -> None:
    with pytest.raises(KarmaError, match="missing benchmark results"):
        load_scores(FIXTURES / "leaderboard")  # defaults = karma tasks; none present
    table = load_scores(FIXTURES / "leaderboard", benchmarks=["hellaswag"])
    assert any("ignored results for tasks not selected" in n and "arc_challenge" in n for n in table.notes)


def test_missing_benchmark_error_and_allow_missing(tmp_path: Path) -> None:
    for d in ("org__model-a", "org__model-b"):
        shutil.copytree(FIXTURES / "leaderboard" / d, tmp_path / d)
    f = next((tmp_path / "org__model-b").glob("*.json"))
    data = json.loads(f.read_text())
    del data["results"]["hellaswag"]
    f.write_text(json.dumps(data))
    with pytest.raises(KarmaError, match=r"org/model-b: hellaswag"):
        load_scores(tmp_path, benchmarks=["hellaswag", "arc_challenge"])
    table = load_scores(tmp_path, benchmarks=["hellaswag", "arc_challenge"], allow_missing=True)
    assert table.benchmarks == ["arc_challenge"]
    assert any("dropped" in n and "hellaswag" in n for n in table.notes)


def test_csv_and_roundtrip(tmp_path: Path) -> None:
    p = tmp_path / "s.csv"
    p.write_text("model,b1,b2\nm1,1,2\nm2,3.5,4\n")
    t = load_scores(p)
    assert t.models == ["m1", "m2"] and t.values.tolist() == [[1, 2], [3.5, 4]]
    again = ScoreTable.from_dict(json.loads(json.dumps(t.to_dict())))
    assert again.models == t.models and np.array_equal(again.values, t.values)
    assert load_scores(_write(tmp_path / "t.csv", t.to_csv())).values.tolist() == t.values.tolist()
    assert "| m1 |" in t.to_markdown()


def test_preset_aliases() -> None:
    t = load_scores("ultrafeedback-paper")
    assert len(t.models) == 16 and "gpt-4" in t.models and "ultralm-65b" not in t.models
    assert t.display("gpt-4") == "GPT-4"
    assert t.known_unscored == ("ultralm-65b",)
    assert set(t.models) == {
        "gpt-4",
        "gpt-3.5-turbo",
        "bard",
        "llama-2-7b-chat",
        "llama-2-13b-chat",
        "llama-2-70b-chat",
        "ultralm-13b",
        "wizardlm-7b",
        "wizardlm-13b",
        "wizardlm-70b",
        "vicuna-33b",
        "alpaca-7b",
        "falcon-40b-instruct",
        "mpt-30b-chat",
        "starchat",
        "pythia-12b",
    }


def _write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda d: d / "nope.csv", "does not exist"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "no lm-eval results files"),
        (lambda d: _write(d / "results_x.json", '{"hello": 1}'), "not an lm-eval results file"),
        (lambda d: _write(d / "results_y.json", "{not json"), "not valid JSON"),
        (lambda d: _write(d / "nan.csv", "model,b1\nm1,nan\n"), "not finite"),
        (lambda d: _write(d / "txt.csv", "model,b1\nm1,high\n"), "not a number: 'high'"),
        (lambda d: _write(d / "dup.csv", "model,b1\nm1,1\nm1,2\n"), "duplicate model name 'm1'"),
        (lambda d: _write(d / "hdr.csv", "name,b1\nm1,1\n"), "first header must be 'model'"),
    ],
)
def test_bad_inputs(tmp_path: Path, make, pattern: str) -> None:
    with pytest.raises(KarmaError, match=pattern):
        load_scores(make(tmp_path))


def test_nan_in_results_and_unknown_preset(tmp_path: Path) -> None:
    src = FIXTURES / "old_format" / "results.json"
    data = json.loads(src.read_text())
    data["results"]["probe_arc"]["exact_match,strict-match"] = "N/A"
    bad = _write(tmp_path / "results_nan.json", json.dumps(data))
    with pytest.raises(KarmaError, match="not a finite number: 'N/A'"):
        load_scores(bad, benchmarks=PROBE)
    with pytest.raises(KarmaError, match="unknown preset or missing path 'ultrafeedback-papr'"):
        load_scores("ultrafeedback-papr")


def test_alias_map_naming_a_model_twice(tmp_path: Path) -> None:
    t = load_scores(_write(tmp_path / "s.csv", "model,b1\nA,1\nB,2\n"))
    with pytest.raises(KarmaError, match="names model 'x' twice"):
        load_scores(tmp_path / "s.csv", aliases={"A": "x", "B": "x"})
    dup = _write(tmp_path / "aliases.json", '{"A": "x", "A": "y"}')
    with pytest.raises(KarmaError, match="names model 'A' twice"):
        load_scores(tmp_path / "s.csv", aliases=dup)
    ok = load_scores(tmp_path / "s.csv", aliases={"A": "a-model"})
    assert ok.models == ["a-model", "B"] and ok.display("a-model") == "A" and t.models == ["A", "B"]


# ---------------------------------------------------------------------------------- units and metrics
def _results_file(folder: Path, model: str, scores: dict[str, dict[str, float]], limit: float | None = None) -> Path:
    """A results file in lm-eval 0.4.13's layout: {task: {metric_key: value}}."""
    out = folder / model.replace("/", "__")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results_2026-11-30T10-00-00.000000.json"
    path.write_text(
        json.dumps(
            {
                "results": {t: {"alias": t, **m} for t, m in scores.items()},
                "config": {"model": "hf", "model_args": {"pretrained": model}, "limit": limit},
                "model_name": model,
                "date": 1_790_000_000.0,
                "lm_eval_version": "0.4.13",
            }
        )
    )
    return path


def test_preset_percentages_and_lm_eval_fractions_share_one_scale(tmp_path):
    """A model whose lm-eval fractions equal GPT-4's printed percentages lands next to GPT-4."""
    from karma_hf.kinship import Kinship
    from karma_hf.score_table import KARMA_TASKS

    preset = load_scores("ultrafeedback-paper")
    gpt4 = preset.values[preset.models.index("gpt-4")]
    scores = {}
    for j, bench in enumerate(preset.benchmarks):
        value = gpt4[j] / 100 if preset.units[bench] == "percent" else gpt4[j]
        scores[bench] = {KARMA_TASKS[bench]: float(value) - 1e-4}  # a hair below GPT-4
    _results_file(tmp_path / "res", "org/new-model", scores)
    table = load_scores(["ultrafeedback-paper", str(tmp_path / "res")])
    assert set(table.units.values()) == {"fraction"}
    assert any("converted" in n and "percent to fraction" in n for n in table.notes)
    ranking = Kinship.from_table(table).ranking()
    assert ranking[:2] == ["gpt-4", "org/new-model"]
    kin = Kinship.from_table(table)
    assert kin.kinship_of("gpt-4", "org/new-model") > 0.999


def test_a_value_outside_its_unit_is_an_error_naming_model_benchmark_and_value(tmp_path):
    from karma_hf.score_table import KARMA_TASKS

    bad = {b: {m: 0.5} for b, m in KARMA_TASKS.items()}
    bad["karma_arc_easy"] = {KARMA_TASKS["karma_arc_easy"]: 0.5}
    csv = tmp_path / "s.csv"
    csv.write_text(
        "model," + ",".join(KARMA_TASKS) + "\nunit," + ",".join(["percent"] * 6) + "\na,1,2,3,4,5,6\nb,2,3,4,5,6,170\n"
    )
    with pytest.raises(KarmaError, match=r"karma_arc_challenge of model 'b' is 170, outside the percent range"):
        load_scores(str(csv))
    raw = tmp_path / "raw.csv"
    raw.write_text("model," + ",".join(KARMA_TASKS) + "\na,1,2,3,4,5,1200\nb,2,3,4,5,6,1300\n")
    assert load_scores(str(raw)).units["karma_arc_challenge"] == "raw"
    with pytest.raises(KarmaError, match=r"cannot put karma_\w+ of .*raw.csv on one scale.*model 'a'"):
        load_scores(["ultrafeedback-paper", str(raw)])


def test_repeated_benchmark_keeps_every_metric_and_limit_is_flagged(tmp_path):
    metrics = {"arc_easy": {"acc,none": 0.7, "acc_norm,none": 0.8}, "hellaswag": {"acc_norm,none": 0.5}}
    _results_file(tmp_path / "r", "m1", metrics, limit=16)
    _results_file(
        tmp_path / "r",
        "m2",
        {"arc_easy": {"acc,none": 0.6, "acc_norm,none": 0.65}, "hellaswag": {"acc_norm,none": 0.4}},
    )
    table = load_scores(str(tmp_path / "r"), benchmarks=["arc_easy:acc,none", "arc_easy:acc_norm,none", "hellaswag"])
    assert table.benchmarks == ["arc_easy:acc,none", "arc_easy:acc_norm,none", "hellaswag"]
    assert table.score("m1", "arc_easy:acc,none") == 0.7 and table.score("m1", "arc_easy:acc_norm,none") == 0.8
    assert table.provenance[("m1", "arc_easy:acc_norm,none")].metric == "acc_norm,none"
    assert table.provenance[("m1", "hellaswag")].limit == 16 and table.provenance[("m2", "hellaswag")].limit is None
    assert [n for n in table.notes if "--limit 16" in n and "'m1'" in n]
    with pytest.raises(KarmaError, match="given several times: name the metric"):
        load_scores(str(tmp_path / "r"), benchmarks=["arc_easy", "arc_easy:acc,none"])


def test_small_pools_and_single_benchmarks_warn():
    from karma_hf.kinship import Kinship

    with pytest.warns(UserWarning, match="only 2 models: .*zero vector that is never kin"):
        Kinship.from_values(["a", "b"], ["x", "y"], [[0.1, 0.2], [0.3, 0.4]])
    with pytest.warns(UserWarning, match="only one informative benchmark"):
        Kinship.from_values(["a", "b", "c"], ["x"], [[0.1], [0.3], [0.2]])


def test_task_aliases_are_not_reported_as_ignored_tasks(tmp_path):
    """lm-eval writes each task's display alias (karma_arc_easy -> "ARC-Easy"); the reader also indexes
    results by alias (older files), but the "ignored" note names only tasks that were not selected."""
    path = _results_file(tmp_path, "org/m", {"karma_arc_easy": {"exact_match,robust-extract": 0.5},
                                             "karma_ifeval": {"inst_level_loose_acc,none": 0.3}})  # fmt: skip
    data = json.loads(path.read_text())
    data["results"]["karma_arc_easy"]["alias"] = "ARC-Easy"
    data["results"]["karma_ifeval"]["alias"] = "IFEval"
    path.write_text(json.dumps(data))
    table = load_scores(tmp_path, benchmarks=["karma_arc_easy"])
    assert table.score("org/m", "karma_arc_easy") == 0.5
    assert [n for n in table.notes if "ignored" in n] == ["ignored results for tasks not selected: karma_ifeval"]
    both = load_scores(tmp_path, benchmarks=["karma_arc_easy", "karma_ifeval"])
    assert not [n for n in both.notes if "ignored" in n]
