"""``karma report``: the Markdown + JSON + PNG report of a KARMA set (numbers in :mod:`.quality`).

For each mode of a built dataset (``score``, ``sim``, ``score_sim``, ...) side by side with the
``rlaif`` baseline, from the pair columns the builder writes:

* **Response Quality Gap** (KARMA paper, §1): ``|score_chosen - score_rejected|`` on the source's
  own per-instance ratings (mean, median, distribution), and the share of pairs where those
  ratings *agree* with the pair's label (chosen rated higher), *disagree* (chosen rated lower)
  or *tie*. The ``rlaif`` baseline's ``argilla`` recipe picks chosen by these very ratings, so it
  agrees by construction; its ``h4`` recipe ranks by ``overall_score`` (and keeps ties), so under
  ``--rating aspects`` it can tie or disagree; for kinship modes agreement is an independent check
  of the S_pref label.
* **Kinship** of the pairs (cosine; mean, histogram) and the **S_pref gap** (chosen - rejected).
* **Factors** (PROFILE-style, :mod:`karma_hf.factors`): chosen-vs-rejected differences in length,
  list items, headers, code blocks, bold spans, refusal and hedging phrases, and for each factor
  the share of pairs where chosen has more of it, so a user sees whether a set teaches
  "longer wins" rather than "better wins".
* **Model pairs**: how often each (chosen model, rejected model) pair is used, as a heatmap.

Output: ``report.md`` (Markdown with embedded PNG charts under ``figures/``), ``report.json``
(every number, deterministic) and a rich terminal summary (:func:`summary_table`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from karma_hf.analysis.factors import FACTOR_LABELS, FACTORS
from karma_hf.analysis.figures import write_figures
from karma_hf.analysis.quality import BASELINE, ModePairs, load_pairs, quality_report
from karma_hf.layout import PAIR_SPLITS
from karma_hf.markdown import markdown_table


@dataclass
class ReportResult:
    """What :func:`run_report` wrote: the Markdown, the JSON, the figures, and the numbers."""

    out_dir: Path
    markdown: Path
    json: Path
    figures: list[Path]
    report: dict[str, Any]


# --------------------------------------------------------------------------- text
def _fmt(v: float | None, spec: str = ".2f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def summary_rows(report: dict[str, Any], *, top_pair: bool = True) -> list[tuple[str, list[str]]]:
    """(metric, one value per mode) rows shared by the terminal table and the Markdown."""
    modes = report["modes"]
    rows: list[tuple[str, list[str]]] = []

    def add(label: str, fn) -> None:
        rows.append((label, [fn(r) for r in modes.values()]))

    add("pairs", lambda r: str(r["pairs"]))
    add("mean |rating gap|", lambda r: _fmt(r["rating_gap"]["mean"]))
    add("median |rating gap|", lambda r: _fmt(r["rating_gap"]["median"]))
    add("pairs with gap >= 1", lambda r: _pct(r["rating_gap"]["share_at_least_1"]))
    add("ratings agree with label", lambda r: _pct(r["agreement"]["share_agree"]))
    add("ratings tie", lambda r: _pct(r["agreement"]["share_tie"]))
    add("ratings disagree with label", lambda r: _pct(r["agreement"]["share_disagree"]))
    add("mean kinship", lambda r: _fmt(r["kinship"]["mean"], ".3f"))
    add("mean S_pref gap", lambda r: _fmt(r["s_pref_gap"]["mean"], ".3f"))
    add("chosen longer (words)", lambda r: _pct(r["factors"]["words"]["share_chosen_more"]))
    add(
        "mean words chosen / rejected",
        lambda r: (
            f"{_fmt(r['factors']['words']['mean_chosen'], '.0f')} / "
            f"{_fmt(r['factors']['words']['mean_rejected'], '.0f')}"
        ),
    )
    add("chosen more list items", lambda r: _pct(r["factors"]["list_items"]["share_chosen_more"]))
    add("chosen more refusal phrases", lambda r: _pct(r["factors"]["refusals"]["share_chosen_more"]))
    add("distinct model pairs", lambda r: str(r["model_pairs"]["distinct"]))
    if not top_pair:
        return rows
    add(
        "top pair",
        lambda r: (
            (
                f"{r['model_pairs']['top'][0]['chosen']} > {r['model_pairs']['top'][0]['rejected']} "
                f"({_pct(r['model_pairs']['top'][0]['share'])})"
            )
            if r["model_pairs"]["top"]
            else "-"
        ),
    )
    return rows


def _findings(report: dict[str, Any]) -> list[str]:
    """Plain-language sentences about what the numbers show."""
    out = []
    base = report.get("baseline")
    for m, c in report["comparison_with_baseline"].items():
        if c["gap_ratio"] is None:
            continue
        word = "smaller" if c["smaller_gap_than_baseline"] else "not smaller"
        out.append(
            f"`{m}`: mean rating gap {c['mean_gap']:.2f} vs {c['baseline_mean_gap']:.2f} for `{base}` "
            f"({word}, ratio {c['gap_ratio']:.2f})."
        )
    for m, r in report["modes"].items():
        w = r["factors"]["words"]
        if w["share_chosen_more"] is not None and not math.isnan(w["share_chosen_more"]):
            out.append(
                f"`{m}`: chosen is longer in {_pct(w['share_chosen_more'])} of pairs "
                f"({w['mean_chosen']:.0f} vs {w['mean_rejected']:.0f} words on average)"
                + ('; a strong length signal ("longer wins").' if w["share_chosen_more"] >= 0.7 else ".")
            )
        a = r["agreement"]
        if m != base and a["share_disagree"] is not None:
            out.append(
                f"`{m}`: the instance ratings disagree with the S_pref label in {_pct(a['share_disagree'])} "
                f"of pairs and tie in {_pct(a['share_tie'])}."
            )
    return out


def render_markdown(report: dict[str, Any], figures: dict[str, str]) -> str:
    """The Markdown report; ``figures`` maps figure name -> relative path."""
    modes = list(report["modes"])
    base = report.get("baseline")
    L: list[str] = []
    L.append("# karma report: Response Quality Gap and preference factors\n")
    L.append(
        f"Dataset: `{report['dataset']}` · modes: {', '.join(f'`{m}`' for m in modes)}"
        + (f" · baseline: `{base}`" if base else " · no `rlaif` baseline in this dataset")
        + f" · karma-hf {report['karma_hf_version']}\n"
    )
    L.append(
        "Pairs are the `train` and `test` splits together. Ratings are the source's own per-instance "
        "ratings (`score_chosen`, `score_rejected`).\n"
    )
    L.append("## Summary\n")
    L.append(
        markdown_table(
            ["metric", *(f"{m}{' (baseline)' if m == base else ''}" for m in modes)],
            [[label, *vals] for label, vals in summary_rows(report)],
            align="l" + "r" * len(modes),
        )
    )
    L.append("")
    findings = _findings(report)
    if findings:
        L.append("**What this shows**\n")
        L.extend(f"- {s}" for s in findings)
        L.append("")
    L.append("## Response Quality Gap\n")
    L.append(
        "The KARMA paper (§1) calls the disparity in quality between the two responses of a pair the "
        "*Response Quality Gap*: a large gap makes the preference trivial. Here it is measured as "
        "|score_chosen − score_rejected| on the source's own ratings.\n"
    )
    L.append(f"![Response Quality Gap]({figures['rating_gap']})\n")
    gaps = [(m, report["modes"][m]["rated_pairs"], report["modes"][m]["rating_gap"]) for m in modes]
    L.append(
        markdown_table(
            ["mode", "pairs", "mean", "median", "p90", "gap ≥ 1", "gap ≥ 2"],
            [
                [
                    m,
                    n,
                    _fmt(g["mean"]),
                    _fmt(g["median"]),
                    _fmt(g["p90"]),
                    _pct(g["share_at_least_1"]),
                    _pct(g["share_at_least_2"]),
                ]
                for m, n, g in gaps
            ],
            align="l" + "r" * 6,
        )
    )
    L.append("")
    L.append("### Agreement of instance ratings with the label\n")
    L.append(
        "*Agree*: the chosen response was also rated higher by the source. For `rlaif` with the argilla "
        "recipe this holds by construction (chosen is picked by those ratings, ties dropped); the h4 recipe "
        "ranks by `overall_score` and keeps ties, so it agrees only as far as `overall_score` and these "
        "ratings do; for kinship modes the label comes from S_pref alone, so agreement is an independent check.\n"
    )
    L.append(f"![Agreement]({figures['agreement']})\n")
    agreement = [(m, report["modes"][m]["agreement"]) for m in modes]
    L.append(
        markdown_table(
            ["mode", "agree", "tie", "disagree"],
            [[m, *(f"{a[k]} ({_pct(a['share_' + k])})" for k in ("agree", "tie", "disagree"))] for m, a in agreement],
            align="lrrr",
        )
    )
    L.append("")
    L.append("## Kinship and S_pref gap\n")
    L.append(f"![Kinship and S_pref gap]({figures['kinship']})\n")
    kin_rows = []
    for m in modes:
        k, s = report["modes"][m]["kinship"], report["modes"][m]["s_pref_gap"]
        kin_rows.append(
            [
                m,
                _fmt(k["mean"], ".3f"),
                _fmt(k["min"], ".3f"),
                _fmt(s["mean"], ".3f"),
                _fmt(s["median"], ".3f"),
                max(k["missing"], s["missing"]),
            ]
        )
    L.append(
        markdown_table(
            [
                "mode",
                "mean kinship",
                "min kinship",
                "mean S_pref gap",
                "median S_pref gap",
                "pairs with an unscored model",
            ],
            kin_rows,
            align="l" + "r" * 5,
        )
    )
    L.append("")
    L.append(
        "A negative S_pref gap means the chosen model is the weaker one by benchmarks (possible only for `rlaif`, "
        "whose label comes from the per-instance rating). Pairs with a model that has no benchmark scores "
        "(e.g. `ultralm-65b`) have no kinship or S_pref and are left out of these statistics."
    )
    L.append("")
    L.append("## Factors: what does the chosen response have more of?\n")
    L.append(
        "Surface factors in the spirit of PROFILE, counted with regular expressions (see "
        "`karma_hf/factors.py`). If chosen has more of a factor in most pairs, a model trained on the set "
        'can learn that factor (e.g. "longer wins") instead of quality.\n'
    )
    L.append(f"![Factors]({figures['factors']})\n")
    L.append("Share of pairs where chosen has more of the factor (mean chosen − rejected in brackets):\n")
    factor_rows = [
        [
            FACTOR_LABELS[f],
            *(
                f"{_pct(x['share_chosen_more'])} ({_fmt(x['mean_diff'], '+.2f')})"
                for x in (report["modes"][m]["factors"][f] for m in modes)
            ),
        ]
        for f in FACTORS
    ]
    L.append(markdown_table(["factor", *modes], factor_rows, align="l" + "r" * len(modes)))
    L.append("")
    L.append("## Model pairs\n")
    L.append(f"![Model pairs]({figures['model_pairs']})\n")
    for m in modes:
        top = report["modes"][m]["model_pairs"]["top"][:5]
        L.append(f"- **{m}**: " + ", ".join(f"{e['chosen']} > {e['rejected']} ({e['count']})" for e in top))
    L.append("")
    L.append("All numbers are in `report.json`.\n")
    return "\n".join(L)


def _json_safe(o: Any) -> Any:
    if isinstance(o, float):
        return None if math.isnan(o) or math.isinf(o) else o
    if isinstance(o, dict):
        return {k: _json_safe(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_json_safe(v) for v in o]
    return o


def write_report(report: dict[str, Any], pairs: dict[str, ModePairs], out_dir: str | Path) -> ReportResult:
    """Write ``report.md``, ``report.json`` and ``figures/*.png`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = write_figures(report, pairs, out / "figures")
    rel = {p.stem: f"figures/{p.name}" for p in figs}
    md = out / "report.md"
    md.write_text(render_markdown(report, rel), encoding="utf-8")
    js = out / "report.json"
    js.write_text(json.dumps(_json_safe(report), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return ReportResult(out_dir=out, markdown=md, json=js, figures=figs, report=report)


def default_out_dir(dataset: str | Path) -> Path:
    """``DIR/report`` for a local folder, ``./karma-report-<name>`` for a Hub id."""
    p = Path(dataset)
    return p / "report" if p.exists() else Path(f"karma-report-{str(dataset).replace('/', '--')}")


def run_report(
    dataset: str | Path,
    *,
    modes: Sequence[str] | None = None,
    out: str | Path | None = None,
    baseline: str | None = BASELINE,
    splits: Sequence[str] = PAIR_SPLITS,
    revision: str | None = None,
    require_baseline: bool = False,
) -> ReportResult:
    """Load, analyse and write the report for a dataset folder or Hub id (the ``karma report`` API).

    ``require_baseline``: a ``baseline`` mode the set does not have is an error (else the report
    simply has no baseline column).
    """
    pairs = load_pairs(
        dataset, modes, baseline=baseline, splits=splits, revision=revision, require_baseline=require_baseline
    )
    report = quality_report(pairs, dataset=str(dataset), baseline=baseline)
    return write_report(report, pairs, out if out is not None else default_out_dir(dataset))
