"""Everything the CLI shows: rich tables of each command, and the JSON / CSV views of kinship."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import numpy as np

from karma_hf.kinship import JSON_MATRIX_LIMIT, SELECTORS, Kinship, NoPair
from karma_hf.layout import DROP_REASONS, PAIR_SPLITS, mode_help
from karma_hf.scores import ScoreTable


def kinship_payload(table: ScoreTable, kin: Kinship) -> dict[str, Any]:
    """Everything ``karma kinship --format json`` prints: table, ranking, matrix, global pairs."""
    pairs = kin.global_pairs_dict()
    below: list[list[Any]] | None = None
    if len(kin.models) <= JSON_MATRIX_LIMIT:
        cos = kin.cosine
        below = [
            [kin.models[i], kin.models[j], round(float(cos[i, j]), 6)]
            for i, j in np.argwhere(np.triu(cos < kin.tau, k=1)).tolist()
        ]
    return {
        "scores": table.to_dict(),
        "kinship": kin.to_dict(),
        "ranking": kin.ranking(),
        "pairs": pairs,
        "not_kin": below,
    }


def kinship_json(table: ScoreTable, kin: Kinship) -> str:
    return json.dumps(kinship_payload(table, kin), indent=2, sort_keys=False) + "\n"


def kinship_csv(kin: Kinship) -> str:
    """One row per model: rank, S_pref, normalised scores, then its cosine with every model."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    matrix = len(kin.models) <= JSON_MATRIX_LIMIT  # above it: no n columns of cosines per row
    cos_head = [f"cos:{m}" for m in kin.models] if matrix else []
    w.writerow(["rank", "model", "s_pref", *(f"norm:{b}" for b in kin.benchmarks), *cos_head])
    for rank, m in enumerate(kin.ranking(), start=1):
        i = kin.index[m]
        cos = [f"{v:.6f}" for v in kin.cosine[i]] if matrix else []
        w.writerow([rank, m, f"{kin.s_pref[i]:.6f}", *(f"{v:.6f}" for v in kin.normalized[i]), *cos])
    return buf.getvalue()


#: The terminal shows the top RANKING_ROWS of the ranking and the matrix up to MATRIX_ROWS models.
RANKING_ROWS = 50
MATRIX_ROWS = 40


def _short(name: str) -> str:
    return name.removeprefix("karma_")


def kinship_renderables(table: ScoreTable, kin: Kinship) -> list[Any]:
    """Rich renderables: S_pref ranking with scores, kinship matrix, pair per mode."""
    from rich import box
    from rich.table import Table

    ranking = Table(title=f"S_pref ranking ({len(kin.models)} models, {table.source})", box=box.SIMPLE_HEAD)
    ranking.add_column("#", justify="right")
    ranking.add_column("model", no_wrap=True)
    ranking.add_column("S_pref", justify="right", style="bold")
    for b in table.benchmarks:
        ranking.add_column(_short(b), justify="right", no_wrap=True)
    order = kin.ranking()
    row_of = {m: i for i, m in enumerate(table.models)}
    shown = order if len(order) <= RANKING_ROWS else order[:RANKING_ROWS]
    for r, m in enumerate(shown, start=1):
        i = row_of[m]
        ranking.add_row(
            str(r), kin.display_names.get(m, m), f"{kin.s_pref_of(m):.2f}", *(f"{v:.4g}" for v in table.values[i])
        )
    if len(shown) < len(order):
        ranking.caption = f"top {len(shown)} of {len(order)} models (all of them: --format csv or json)"
    out: list[Any] = [ranking]
    if len(order) <= MATRIX_ROWS:
        out.append(_matrix(kin, order))
    else:
        out.append(
            f"(kinship matrix not shown for {len(order)} models; --format csv writes it up to "
            f"{JSON_MATRIX_LIMIT} models)"
        )

    pairs = Table(title="Pair each mode picks over the whole pool", box=box.SIMPLE_HEAD)
    for col in ("mode", "chosen", "rejected", "kinship", "S_pref chosen", "S_pref rejected"):
        pairs.add_column(col)
    for mode, res in kin.global_pairs().items():
        if isinstance(res, NoPair):
            pairs.add_row(mode, f"(none: {res.reason})", "", "", "", "")
        else:
            pairs.add_row(
                mode,
                kin.display_names.get(res.chosen, res.chosen),
                kin.display_names.get(res.rejected, res.rejected),
                f"{res.kinship:.3f}",
                f"{res.s_pref_chosen:.3f}",
                f"{res.s_pref_rejected:.3f}",
            )
    legend = "\n".join(f"  {m}: {mode_help(m)}" for m in kin.global_pairs() if m in SELECTORS)
    return [*out, pairs, legend]


def _matrix(kin: Kinship, order: list[str]) -> Any:
    from rich import box
    from rich.table import Table

    matrix = Table(
        title=f"Cosine kinship x 100 (tau = {kin.tau}; [red]red[/] = not kin); columns = ranks",
        box=box.SIMPLE_HEAD,
        padding=(0, 0),
        pad_edge=False,
    )
    matrix.add_column("model", no_wrap=True, style="bold")
    for r in range(1, len(order) + 1):
        matrix.add_column(str(r), justify="right", min_width=4, no_wrap=True)
    for r, a in enumerate(order, start=1):
        cells = []
        for b in order:
            v = kin.kinship_of(a, b)
            txt = f"{round(v * 100):d}"
            cells.append(f"[red]{txt}[/]" if v < kin.tau else txt)
        matrix.add_row(f"{r:>2} {kin.display_names.get(a, a)} ", *cells)
    return matrix


def build_summary(report: dict[str, Any], *, top: int = 3) -> list[Any]:
    """Rich tables for the terminal: rows kept/dropped by reason per mode, and the top pairs."""
    from rich.table import Table

    modes = report["modes"]
    counts = Table(
        title=f"karma build: {report['source']['rows']} source rows "
        f"(tau {report['tau']}, seed {report['seed']}, rating {report['rating']})"
    )
    counts.add_column("rows", style="bold")
    for mode in modes:
        counts.add_column(mode, justify="right")
    counts.add_row("[green]kept[/]", *[f"[green]{info['kept']}[/]" for info in modes.values()])
    for split in PAIR_SPLITS:
        counts.add_row(f"  {split}", *[str(info["splits"][split]) for info in modes.values()])
    for reason in DROP_REASONS:
        values = [info["dropped"][reason] for info in modes.values()]
        counts.add_row(f"dropped: {reason}", *[str(v) if v else "[dim]0[/]" for v in values])
    pairs = Table(title=f"most frequent pairs (chosen > rejected), top {top}")
    pairs.add_column("mode", style="bold")
    pairs.add_column("pair")
    pairs.add_column("count", justify="right")
    pairs.add_column("share", justify="right")
    for mode, info in modes.items():
        for i, p in enumerate(info["top_pairs"][:top]):
            share = p["count"] / info["kept"] if info["kept"] else 0.0
            pairs.add_row(mode if i == 0 else "", f"{p['chosen']} > {p['rejected']}", str(p["count"]), f"{share:.1%}")
        if not info["top_pairs"]:
            pairs.add_row(mode, "[dim](no pairs)[/]", "0", "")
    configs = report.get("configs") or {}
    if set(configs) == set(modes):  # the best form only: the first table says it all
        return [counts, pairs]
    forms = Table(title=f"configs written (forms: {', '.join(report.get('forms', []))})")
    forms.add_column("config", style="bold")
    forms.add_column("form")
    forms.add_column("rows", justify="right")
    forms.add_column("train", justify="right")
    forms.add_column("test", justify="right")
    forms.add_column("rows / source row", justify="right")
    for name, info in configs.items():
        per = info["rows"] / info["source_rows"] if info.get("source_rows") else 0.0
        forms.add_row(
            name,
            info["form"],
            str(info["rows"]),
            str(info["splits"]["train"]),
            str(info["splits"]["test"]),
            f"{per:.2f}",
        )
    return [counts, pairs, forms]


def report_summary(report: dict[str, Any]):
    """A rich Table of the headline numbers, one column per mode."""
    from rich.table import Table

    base = report.get("baseline")
    t = Table(
        title="Response Quality Gap and preference factors",
        title_justify="left",
        caption=f"{base}* = baseline (chosen by the per-instance ratings)" if base else None,
        caption_justify="left",
    )
    t.add_column("metric", style="bold", no_wrap=True)
    for m in report["modes"]:
        t.add_column(f"{m}*" if m == base else m, justify="right", no_wrap=True, style="red" if m == base else None)
    from karma_hf.analysis.report import summary_rows

    for label, vals in summary_rows(report, top_pair=False):
        t.add_row(label, *vals)
    return t


def print_quickstart(res: Any, console: Any) -> None:
    """Rows per mode, top pairs, Response Quality Gap, file locations and the next commands."""
    from rich.table import Table

    modes = res.build["modes"]
    t = Table(title="Preference sets built from the embedded synthetic sample", title_justify="left")
    t.add_column("mode", no_wrap=True)
    t.add_column("train", justify="right")
    t.add_column("test", justify="right")
    t.add_column("dropped rows (reason)", no_wrap=True)
    t.add_column("mean gap", justify="right")
    for m, v in modes.items():
        dropped = "\n".join(f"{n} {k}" for k, n in v["dropped"].items() if n) or "-"
        gap = res.report["modes"].get(m, {}).get("rating_gap", {}).get("mean")
        t.add_row(
            m + ("*" if m == "rlaif" else ""),
            str(v["splits"]["train"]),
            str(v["splits"]["test"]),
            dropped,
            "-" if gap is None else f"{gap:.2f}",
        )
    t.caption = "rlaif* = baseline; mean gap = mean |rating gap| (source ratings, chosen vs rejected)"
    t.caption_justify = "left"
    console.print(t)
    console.print("[bold]Top pairs[/bold] (chosen > rejected: count)")
    for m, v in modes.items():
        top = ", ".join(f"{p['chosen']} > {p['rejected']}: {p['count']}" for p in v["top_pairs"][:3])
        console.print(f"  {m:<10} {top}", soft_wrap=True)
    sim_gap = res.report["modes"].get("sim", {}).get("rating_gap", {}).get("mean")
    base_gap = res.report["modes"].get("rlaif", {}).get("rating_gap", {}).get("mean")
    if sim_gap is not None and base_gap is not None:
        console.print(
            f"\nKinship pairs have a smaller Response Quality Gap: mean |rating gap| {sim_gap:.2f} (sim) "
            f"vs {base_gap:.2f} (rlaif). The sample is synthetic; see the report for what this means."
        )
    d = res.dataset_dir
    files = Table(show_header=False, box=None, padding=(0, 2))
    files.add_column(no_wrap=True)
    files.add_column(overflow="fold")
    files.add_row("dataset", f"{d}/<mode>/*.parquet  (modes: {', '.join(modes)})")
    files.add_row("card", str(res.card))
    files.add_row("build report", str(res.build_report))
    files.add_row("kinship plots", ", ".join(str(p) for p in res.plots))
    files.add_row("report", f"{res.report_md}  (+ report.json, figures/)")
    console.print("\n[bold]Files[/bold]")
    console.print(files)
    console.print("\n[bold]Next[/bold]")
    for cmd, what in (
        (f"python -c \"import datasets; print(datasets.load_dataset('{d}', 'sim'))\"", "load a preference set"),
        (f"karma report {d} --modes sim,score", "re-run the report on chosen modes"),
        (f"karma push {d} --repo you/karma-uf-sample", "publish all four configs + card in one Hub commit"),
        (
            f"karma train dpo --config recipes/qwen2.5-3b-instruct/dpo.yaml --dataset_name {d} --dataset_config sim",
            "train with TRL (needs a GPU for real models)",
        ),
        (
            "karma build --source openbmb/UltraFeedback --scores ultrafeedback-paper --output karma-uf",
            "the real thing: all 64k instructions",
        ),
    ):
        console.print(f"  [dim]# {what}[/dim]")
        console.print(f"  [cyan]{cmd}[/cyan]", soft_wrap=True)


def compare_table(cmp: Any) -> Any:
    """``karma compare``: one column per run, deltas against the baseline coloured."""
    from rich.table import Table

    table = Table(title="karma compare" + (" (delta vs baseline)" if cmp.baseline else ""))
    table.add_column("benchmark")
    for r in cmp.runs:
        head = f"{r.label}\n{r.mode or '?'} {r.stage or ''}".rstrip()
        table.add_column(head + ("\n(baseline)" if r.is_baseline else ""), justify="right")
    for c in cmp.columns:
        cells = []
        for r in cmp.runs:
            d = cmp.delta(r, c)
            tail = "" if d is None else (f" [green]{d:+.3f}[/]" if d >= 0 else f" [red]{d:+.3f}[/]")
            cells.append(f"{cmp.value(r, c):.3f}{tail}")
        table.add_row(c.removeprefix("karma_"), *cells, end_section=c == cmp.benchmarks[-1])
    return table


def train_result_table(stage: str, result: Any) -> Any:
    """``karma train``: where the run went, its steps, loss, time and evaluation files."""
    from rich.table import Table

    table = Table(title=f"karma train {stage}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("output_dir", str(result.output_dir))
    table.add_row("steps", str(result.global_step))
    if "train_loss" in result.metrics:
        table.add_row("train loss", f"{result.metrics['train_loss']:.4f}")
    table.add_row("train time", f"{result.train_seconds:.1f} s")
    table.add_row("provenance", str(result.output_dir / "karma_provenance.json"))
    for f in result.eval_files:
        table.add_row("karma eval", str(f))
    return table


def generate_summary(result: Any) -> Any:
    """``karma generate``: per model, prompts answered now / before, tokens, throughput, chat template."""
    from rich.table import Table

    table = Table(title=f"karma generate -> {result.output}")
    for name, justify in (("model", "left"), ("prompts", "right"), ("resumed", "right"), ("new tokens", "right"),
                          ("prompts/s", "right"), ("tokens/s", "right"), ("chat template", "left")):  # fmt: skip
        table.add_column(name, justify="right" if justify == "right" else "left", overflow="fold")
    for r in result.models:
        template = "yes" if r.chat_template else ("no (plain prompt)" if r.chat_template is False else "?")
        table.add_row(
            r.name,
            str(r.prompts),
            str(r.resumed),
            str(r.new_tokens),
            f"{r.prompts_per_s:.2f}" if r.generated else "-",
            f"{r.tokens_per_s:.1f}" if r.generated else "-",
            template,
        )
    return table
