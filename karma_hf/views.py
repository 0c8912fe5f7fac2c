"""Human- and machine-readable views of a kinship analysis (terminal tables, JSON, CSV)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from karma_hf.kinship import MODE_DESCRIPTIONS, Kinship, NoPair
from karma_hf.scores import ScoreTable


def kinship_payload(table: ScoreTable, kin: Kinship) -> dict[str, Any]:
    """Everything ``karma kinship --format json`` prints: table, ranking, matrix, global pairs."""
    pairs = {}
    for mode, res in kin.global_pairs().items():
        pairs[mode] = ({"pair": None, "reason": res.reason} if isinstance(res, NoPair) else
                       {"chosen": res.chosen, "rejected": res.rejected, "kinship": round(res.kinship, 6),
                        "s_pref_chosen": round(res.s_pref_chosen, 6),
                        "s_pref_rejected": round(res.s_pref_rejected, 6)})
    below = [[a, b, round(float(kin.cosine[i, j]), 6)] for i, a in enumerate(kin.models)
             for j, b in enumerate(kin.models) if i < j and kin.cosine[i, j] < kin.tau]
    return {"scores": table.to_dict(), "kinship": kin.to_dict(), "ranking": kin.ranking(),
            "pairs": pairs, "not_kin": below}


def kinship_json(table: ScoreTable, kin: Kinship) -> str:
    return json.dumps(kinship_payload(table, kin), indent=2, sort_keys=False) + "\n"


def kinship_csv(kin: Kinship) -> str:
    """One row per model: rank, S_pref, normalised scores, then its cosine with every model."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "model", "s_pref", *(f"norm:{b}" for b in kin.benchmarks),
                *(f"cos:{m}" for m in kin.models)])
    for rank, m in enumerate(kin.ranking(), start=1):
        i = kin.index[m]
        w.writerow([rank, m, f"{kin.s_pref[i]:.6f}", *(f"{v:.6f}" for v in kin.normalized[i]),
                    *(f"{v:.6f}" for v in kin.cosine[i])])
    return buf.getvalue()


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
    for r, m in enumerate(kin.ranking(), start=1):
        i = table.models.index(m)
        ranking.add_row(str(r), kin.display_names.get(m, m), f"{kin.s_pref_of(m):.2f}",
                        *(f"{v:.4g}" for v in table.values[i]))

    order = kin.ranking()
    matrix = Table(title=f"Cosine kinship x 100 (tau = {kin.tau}; [red]red[/] = not kin); columns = ranks",
                   box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False)
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

    pairs = Table(title="Pair each mode picks over the whole pool", box=box.SIMPLE_HEAD)
    for col in ("mode", "chosen", "rejected", "kinship", "S_pref chosen", "S_pref rejected"):
        pairs.add_column(col)
    for mode, res in kin.global_pairs().items():
        if isinstance(res, NoPair):
            pairs.add_row(mode, f"(none: {res.reason})", "", "", "", "")
        else:
            pairs.add_row(mode, kin.display_names.get(res.chosen, res.chosen),
                          kin.display_names.get(res.rejected, res.rejected), f"{res.kinship:.3f}",
                          f"{res.s_pref_chosen:.3f}", f"{res.s_pref_rejected:.3f}")
    legend = "\n".join(f"  {m}: {d}" for m, d in MODE_DESCRIPTIONS.items())
    return [ranking, matrix, pairs, legend]
