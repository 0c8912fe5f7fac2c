"""The "KARMA provenance" section of a trained model's card, from ``hub_cards/model_card_section.md``.

The section is rendered from a run's provenance record (``karma_provenance.json``) and placed
between HTML comment markers, so re-rendering replaces it in place; the card's own YAML gains the
``karma`` tags and, for a Hub dataset, its id under ``datasets``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from karma_hf.layout import CARD_FILE
from karma_hf.markdown import markdown_table
from karma_hf.resources import hub_cards_dir

MODEL_SECTION_TEMPLATE = "model_card_section.md"
CARD_BEGIN = "<!-- karma-provenance:begin -->"
CARD_END = "<!-- karma-provenance:end -->"
PROVENANCE_FILE = "karma_provenance.json"


def _score_markdown(table: Mapping[str, Any]) -> str | None:
    models, benches = list(table.get("models") or []), list(table.get("benchmarks") or [])
    scores, values = table.get("scores"), table.get("values")
    if not models or not (scores or values):
        return None
    rows = []
    for i, m in enumerate(models):
        if isinstance(scores, Mapping):
            cells = [scores.get(m, {}).get(b) for b in benches]
        elif isinstance(values, list) and i < len(values):
            cells = list(values[i])
        else:
            cells = [None] * len(benches)
        rows.append([m, *("" if c is None else f"{float(c):.4g}" for c in cells)])
    return markdown_table(["model", *benches], rows, align="l" + "r" * len(benches))


def render_model_card_section(
    provenance: Mapping[str, Any],
    *,
    dataset_name: str | None = None,
    dataset_config: str | None = None,
    batch_rows: int = 0,
    batch_kinship_mean: float | None = None,
) -> str:
    """The Markdown section (markers included) for a model trained on a KARMA set."""
    from jinja2 import Template

    p = provenance
    d = p.get("dataset") or {}
    v = p.get("versions") or {}
    name = d.get("name") or dataset_name
    base = ((p.get("run_config") or {}).get("model") or {}).get("model_name_or_path")
    facts = [
        ("base model", base),
        ("dataset", name),
        ("mode", d.get("config")),
        ("revision", d.get("revision")),
        ("resolved revision", d.get("resolved_revision")),
        ("content sha256", d.get("content_sha256")),
        ("fingerprint", d.get("fingerprint")),
        ("train rows", d.get("num_train_rows")),
        ("tau", d.get("tau")),
        ("world size", p.get("world_size")),
        ("versions", ", ".join(f"{k} {val}" for k, val in v.items() if val)),
    ]
    facts_md = markdown_table(["fact", "value"], [(k, "" if val is None else f"`{val}`") for k, val in facts])
    table = d.get("score_table")
    score_table = _score_markdown(table) if isinstance(table, Mapping) else None
    s_pref = d.get("s_pref") or {}
    s_pref_md = (
        markdown_table(
            ["model", "S_pref"],
            [(m, f"{val:.4f}") for m, val in sorted(s_pref.items(), key=lambda kv: -kv[1])],
            align="lr",
        )
        if s_pref
        else None
    )
    mode_report = d.get("build_report_mode") or {}
    text = (hub_cards_dir() / MODEL_SECTION_TEMPLATE).read_text(encoding="utf-8")
    return (
        Template(text, keep_trailing_newline=True)
        .render(
            version=p.get("karma_hf_version", ""),
            stage=p.get("stage") or "trainer",
            dataset=name,
            mode=d.get("config") or dataset_config,
            mode_help=mode_report.get("description"),
            facts=facts_md,
            score_table=score_table,
            scores_source=table.get("source") if isinstance(table, Mapping) and not score_table else None,
            s_pref_table=s_pref_md,
            batch_rows=batch_rows,
            batch_kinship_mean=batch_kinship_mean,
            provenance_file=PROVENANCE_FILE,
        )
        .strip()
    )


def update_model_card(
    folder: str | Path, section: str, *, hub_dataset: str | None = None, create: bool = True
) -> Path | None:
    """Put ``section`` into ``folder/README.md`` (replacing an earlier one); add tags and the dataset.

    Without a card: write a minimal one when ``create``, else do nothing and return None.
    """
    from huggingface_hub import ModelCard

    path = Path(folder) / CARD_FILE
    if not path.is_file():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("---\n---\n\n# Model trained with karma-hf\n", encoding="utf-8")
    card = ModelCard.load(path)
    text = card.text
    if CARD_BEGIN in text and CARD_END in text:
        head, _, rest = text.partition(CARD_BEGIN)
        text = head + section + rest.partition(CARD_END)[2]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    card.text = text
    tags = list(card.data.get("tags") or [])
    tags += [t for t in ("karma", "karma-hf") if t not in tags]
    card.data.tags = tags
    if hub_dataset:
        datasets = card.data.get("datasets") or []
        datasets = [datasets] if isinstance(datasets, str) else list(datasets)
        card.data.datasets = datasets + ([] if hub_dataset in datasets else [hub_dataset])
    card.save(path)
    return path
