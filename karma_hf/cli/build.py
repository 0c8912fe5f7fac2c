"""`karma build`: responses -> kin-pair preference sets + card (+ push)."""

from __future__ import annotations

from pathlib import Path

import click

from karma_hf.cli.common import CONTEXT_SETTINGS, load_table, parse_test_size, score_options


@click.command("build", context_settings=CONTEXT_SETTINGS)
@click.option(
    "--source",
    default="openbmb/UltraFeedback",
    show_default=True,
    metavar="HUB_ID|PATH",
    help="Response dataset: Hub id, or a local .parquet/.jsonl/.arrow file or save_to_disk folder.",
)
@click.option(
    "--source-format",
    "--source_format",
    "source_format",
    default="auto",
    show_default=True,
    metavar="NAME",
    help="Source schema (a module of karma_hf.sources, e.g. ultrafeedback); auto = detected from the columns.",
)
@click.option(
    "--revision",
    default=None,
    metavar="REV",
    help="Hub revision (default for openbmb/UltraFeedback: the pinned overall_score-fix revision).",
)
@click.option(
    "--split",
    "source_split",
    default="train",
    show_default=True,
    help="Split of the source to read (Hub ids, DatasetDict folders, folders of data files; a single file has none).",
)
@score_options
@click.option(
    "--modes",
    default=None,
    metavar="M1,M2",
    help="Comma-separated modes (default: all registered: score, sim, score_sim (KARMA) and rlaif "
    "(instance-rating baseline)).",
)
@click.option(
    "--tau",
    type=click.FloatRange(0.0, 1.0),
    default=0.1,
    show_default=True,
    help="Kinship threshold: pairs with cosine below it are never paired.",
)
@click.option(
    "--form",
    "forms",
    default="best",
    show_default=True,
    metavar="F1,F2",
    help="Comma-separated pair forms, one config per mode and form (sim, sim-all, ...): best (one pair per "
    "prompt), all (every kin pair, with pair_rank), ranked (all scored completions by S_pref, listwise), "
    "unpaired (prompt/completion/label for KTO). all and ranked are for the KARMA modes only.",
)
@click.option(
    "--max-pairs-per-prompt",
    "--max_pairs_per_prompt",
    "max_pairs_per_prompt",
    type=click.IntRange(1, None),
    default=None,
    metavar="N",
    help="--form all: keep at most the first N kin pairs of each prompt (by the mode's criterion).",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the test split and rlaif draws.")
@click.option(
    "--test-size",
    "--test_size",
    "test_size",
    default="2000",
    show_default=True,
    metavar="N|FRACTION",
    help="Test split of every mode: an integer = distinct prompts held out (0 = none), a float in (0, 1) = that "
    "fraction of them, rounded up (as datasets' train_test_split).",
)
@click.option(
    "--rating",
    default="aspects",
    show_default=True,
    help="Per-instance rating (score_* columns of every mode; the rlaif argilla recipe's label); UltraFeedback: "
    "aspects (mean of the 4 aspect ratings) or overall_score.",
)
@click.option(
    "--rlaif-recipe",
    "--rlaif_recipe",
    "rlaif_recipe",
    type=click.Choice(["h4", "argilla"]),
    default="h4",
    show_default=True,
    help="How the rlaif baseline binarizes: h4 = HuggingFaceH4/ultrafeedback_binarized (highest overall_score vs "
    "a random other completion, ties kept, TruthfulQA dropped); argilla = best --rating vs a random strictly "
    "lower-rated one, ties dropped.",
)
@click.option(
    "--truthfulqa-questions",
    "--truthfulqa_questions",
    "truthfulqa_questions",
    default=None,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    metavar="FILE",
    help="rlaif h4: also drop rows whose instruction is one of these TruthfulQA questions (one per line, or a "
    ".jsonl/.csv/.parquet with a 'question' column).",
)
@click.option(
    "--include-ultralm-65b",
    "--include_ultralm_65b",
    "include_ultralm_65b",
    is_flag=True,
    help="Use ultralm-65b's completions (excluded from every mode by default, as in §3.1 of the paper).",
)
@click.option(
    "--ignore-unknown-models",
    "--ignore_unknown_models",
    "ignore_unknown_models",
    is_flag=True,
    help="Skip (and count) completions of models missing from the score table instead of failing.",
)
@click.option("--strict", is_flag=True, help="Fail on the first malformed row instead of counting it.")
@click.option(
    "--num-proc",
    "--num_proc",
    "num_proc",
    type=click.IntRange(1, None),
    default=None,
    help="Threads that parse the source when every row is parsed first (--strict, unknown models...).",
)
@click.option(
    "--output",
    "--out",
    "-o",
    "output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: <mode>/<split>-00000-of-00001.parquet, README.md, build_report.json.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace a previous build in --output (only once the new one is complete)."
)
@click.option(
    "--push-to",
    "--push_to",
    "push_to",
    default=None,
    metavar="USER/NAME",
    help="Publish the folder to this Hub dataset repo (offline mode, the repo id and the token are checked first).",
)
@click.option("--private", is_flag=True, help="With --push-to: create the repo as private.")
def build_cmd(
    source,
    source_format,
    revision,
    source_split,
    scores,
    benchmarks,
    allow_missing,
    aliases,
    modes,
    tau,
    forms,
    max_pairs_per_prompt,
    seed,
    test_size,
    rating,
    rlaif_recipe,
    truthfulqa_questions,
    include_ultralm_65b,
    ignore_unknown_models,
    strict,
    num_proc,
    output,
    overwrite,
    push_to,
    private,
):
    """Multi-model responses -> kin-pair preference sets (one config per mode and form) + card.

    \b
    karma build --scores ultrafeedback-paper --output out/karma-uf
    karma build --source data.jsonl --scores results/ --modes sim,rlaif --test-size 500 -o out/sim
    karma build --scores ultrafeedback-paper -o out/karma-uf --push-to me/karma-ultrafeedback
    karma build --source data.jsonl --scores results/ --modes sim --form best,all,unpaired -o out/sim-forms
    """
    from rich.console import Console

    from karma_hf.cli.render import build_summary
    from karma_hf.layout import modes as registered_modes
    from karma_hf.pairs.builder import run_build
    from karma_hf.pairs.config import BuildConfig

    if private and not push_to:
        raise click.BadParameter("--private needs --push-to", param_hint="--private")
    size = parse_test_size(test_size)
    if push_to:  # offline mode, the repo id and the token, before any work
        from karma_hf.hub import check_push_target

        push_to = check_push_target(push_to)
    config = BuildConfig(
        source=str(source),
        source_format=source_format,
        revision=revision,
        split=source_split,
        scores=tuple(scores),
        benchmarks=tuple(benchmarks),
        allow_missing=allow_missing,
        aliases=aliases,
        modes=modes or registered_modes(),
        tau=tau,
        forms=forms,
        max_pairs_per_prompt=max_pairs_per_prompt,
        seed=seed,
        test_size=size,
        rating=rating,
        rlaif_recipe=rlaif_recipe,
        truthfulqa_questions=str(truthfulqa_questions) if truthfulqa_questions else None,
        include_ultralm_65b=include_ultralm_65b,
        ignore_unknown_models=ignore_unknown_models,
        strict=strict,
        num_proc=num_proc,
        output=str(output),
        overwrite=overwrite,
        push_to=push_to,
        private=private,
    )
    table = load_table(scores, benchmarks, allow_missing, aliases)
    result = run_build(config, table=table, progress=True, repo_id=push_to)
    console = Console(stderr=False)
    for renderable in build_summary(result.report):
        console.print(renderable)
    malformed = result.report["malformed_examples"]
    if malformed:
        first = malformed[0]
        count = next(iter(result.report["modes"].values()))["dropped"]["malformed"]
        click.echo(
            f"note: {count} malformed row(s) dropped, e.g. row {first['row']}: {first['reason']} "
            "(all in build_report.json; --strict makes them an error)",
            err=True,
        )
    skipped = result.report["skipped_completions"]["unknown_model"]
    if skipped:
        click.echo(
            "note: skipped completions of unknown models: " + ", ".join(f"{k} ({v})" for k, v in skipped.items()),
            err=True,
        )
    click.echo(f"wrote {output}/ ({', '.join(result.configs)}; README.md, build_report.json)")
    if push_to:
        from karma_hf.hub import push_folder

        url = push_folder(output, push_to, private=private)
        click.echo(f"pushed to datasets/{push_to}: {url}")
        click.echo(f'load:   datasets.load_dataset("{push_to}", "{result.modes[0]}")')
