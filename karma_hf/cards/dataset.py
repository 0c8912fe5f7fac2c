"""Dataset card (``README.md``) of a KARMA build, rendered with huggingface_hub's card API.

The YAML metadata is a :class:`huggingface_hub.DatasetCardData`: license, language,
task_categories, tags, source_datasets, size_categories, ``configs`` (one per mode, with the
parquet file of each split, which is what ``load_dataset(repo, "<mode>")`` reads) and
``dataset_info`` (features and split sizes). The body comes from ``hub_cards/dataset_card.md``
(a Jinja template) and is filled only from ``build_report.json``'s content, so the card's
counts always equal the report's. Rendering is deterministic: same report, same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from karma_hf.layout import (
    CARD_FILE,
    DEFAULT_FORM,
    DROP_REASON_HELP,
    DROP_REASONS,
    FORMS,
    form_schema,
    order_modes,
    shard_name,
    shard_split,
)
from karma_hf.markdown import markdown_table
from karma_hf.resources import hub_cards_dir
from karma_hf.sources.registry import get_source, known_license

if TYPE_CHECKING:  # pragma: no cover
    from huggingface_hub import DatasetCard

    from karma_hf.scores import ScoreTable

DATASET_TEMPLATE = "dataset_card.md"


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` rows."""
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ):
        if n < limit:
            return label
    return "10M<n<100M"


def _features_yaml(schema) -> list[dict[str, Any]]:
    from datasets import Features

    return Features.from_arrow_schema(schema)._to_yaml_list()  # the exact form datasets reads back


def dataset_card_metadata(report: dict[str, Any], *, license: str | None = None) -> dict[str, Any]:
    """The card's YAML metadata as a plain dict (also used by tests and the Hub push)."""
    source_id = report["source"]["id"]
    configs, infos = [], []
    total = 0
    for name, info in report_configs(report).items():
        form = info.get("form", DEFAULT_FORM)
        present = [s for s in FORMS[form].splits if info["splits"].get(s, 0) > 0]  # empty splits are not written
        if not present:
            continue
        configs.append(
            {
                "config_name": name,
                "data_files": [{"split": s, "path": f"{name}/{shard_name(shard_split(s))}"} for s in present],
            }
        )
        sizes: dict[str, dict[str, int]] = info.get("bytes", {})
        splits: list[dict[str, Any]] = [
            {"name": s, "num_bytes": int(sizes.get(s, {}).get("num_bytes", 0)), "num_examples": int(info["splits"][s])}
            for s in present
        ]
        total = max(total, int(info["rows"]))
        infos.append(
            {
                "config_name": name,
                "features": _features_yaml(form_schema(form)),
                "splits": splits,
                # train_sft reads train's file: its bytes are downloaded once
                "download_size": sum(
                    int(sizes.get(s, {}).get("download_size", 0)) for s in present if shard_split(s) == s
                ),
                "dataset_size": sum(int(sp["num_bytes"]) for sp in splits),
            }
        )
    hub_source = source_id.count("/") == 1 and not Path(source_id).exists()
    return {
        "license": license or known_license(source_id) or "other",
        "language": ["en"],
        "task_categories": ["text-generation"],
        "tags": ["dpo", "preference", "karma", "rlhf"],
        "pretty_name": _pretty_name(report),
        "size_categories": [size_category(total)],
        "source_datasets": [source_id] if hub_source else ["original"],
        "configs": configs,
        "dataset_info": infos,
    }


def report_configs(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's configs (a mode in a form); a report older than ``--form`` has the modes only."""
    if "configs" in report:
        return report["configs"]
    return {
        mode: {"mode": mode, "form": DEFAULT_FORM, "rows": info["kept"], "splits": info["splits"], **info}
        for mode, info in report["modes"].items()
    }


def _pretty_name(report: dict[str, Any]) -> str:
    name = report["source"]["id"].rstrip("/").split("/")[-1] or "responses"
    return f"KARMA kin-pair preferences from {name}"


def render_dataset_card(
    report: dict[str, Any],
    *,
    table: ScoreTable | None = None,
    repo_id: str | None = None,
    license: str | None = None,
    note: str | None = None,
) -> DatasetCard:
    """Render the dataset card of a build from its report (and score table, for the table)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    meta = dataset_card_metadata(report, license=license)
    card_data = DatasetCardData(**meta)
    kin = report["kinship"]
    s_pref = kin["s_pref"]
    ranking = sorted(s_pref.items(), key=lambda kv: (-kv[1], kv[0]))
    source = report["source"]
    modes = [{"name": m, **info} for m, info in report["modes"].items()]
    for m in modes:
        m["train"], m["test"] = m["splits"]["train"], m["splits"]["test"]
    present = order_modes(list(report["modes"]))
    example = "sim" if "sim" in present else (present[0] if present else "sim")
    extra_forms = [
        {"name": name, **info, "train": info["splits"]["train"], "test": info["splits"]["test"]}
        for name, info in report_configs(report).items()
        if info.get("form", DEFAULT_FORM) != DEFAULT_FORM and info["rows"]
    ]
    is_hub = source["id"].count("/") == 1 and not Path(source["id"]).exists()
    command = report.get("command") or "karma build"
    return DatasetCard.from_template(
        card_data,
        template_path=str(hub_cards_dir() / DATASET_TEMPLATE),
        pretty_name=meta["pretty_name"],
        repo_id=repo_id or "<user>/<repo>",
        source_id=source["id"],
        source_url=f"https://huggingface.co/datasets/{source['id']}" if is_hub else source["id"],
        source_revision=source.get("revision"),
        source_rows=source["rows"],
        source_format=source.get("format", "ultrafeedback"),
        source_description=source.get("description"),
        version=report["karma_hf_version"],
        tau=report["tau"],
        seed=report["seed"],
        rating=report["rating"],
        rating_help=_rating_help(source.get("format", "ultrafeedback"), report["rating"]),
        test_prompts=report["test_prompts"],
        modes=modes,
        has_best=DEFAULT_FORM in report.get("forms", [DEFAULT_FORM]),
        extra_forms=extra_forms,
        forms={name: FORMS[name].help for name in report.get("forms", [DEFAULT_FORM])},
        max_pairs_per_prompt=report.get("max_pairs_per_prompt"),
        example_mode=example,
        reasons=[{"name": r, "help": DROP_REASON_HELP[r]} for r in DROP_REASONS],
        skipped_unknown=report["skipped_completions"]["unknown_model"],
        excluded_models=report["skipped_completions"].get("excluded_model", {}),
        rlaif=report.get("rlaif"),
        scores_source=report["scores"]["source"] or "score table",
        score_table=table.to_markdown() if table is not None else _score_fallback(report),
        ranking=[{"model": m, "s_pref": v} for m, v in ranking],
        known_unscored=report["scores"]["known_unscored"],
        command=command,
        note=note,
    )


def _rating_help(source_format: str, rating: str) -> str:
    try:
        return get_source(source_format).rating_help.get(rating, rating)
    except Exception:  # noqa: BLE001 - a report of a source schema that is not installed here
        return rating


def _score_fallback(report: dict[str, Any]) -> str:
    kin = report["kinship"]
    rows = [[f"`{m}`", *(f"{x:.3f}" for x in vals)] for m, vals in kin["normalized"].items()]
    return "Normalised scores:\n\n" + markdown_table(
        ["model", *kin["benchmarks"]], rows, align="l" + "r" * len(kin["benchmarks"])
    )


def write_dataset_card(
    output: str | Path,
    report: dict[str, Any],
    *,
    table: ScoreTable | None = None,
    repo_id: str | None = None,
    license: str | None = None,
    note: str | None = None,
) -> Path:
    """Render the card and write it to ``output/README.md``; return the path. ``note``: a Markdown
    paragraph shown under the title (e.g. "synthetic data")."""
    card = render_dataset_card(report, table=table, repo_id=repo_id, license=license, note=note)
    path = Path(output) / CARD_FILE
    path.write_text(str(card), encoding="utf-8")
    return path
