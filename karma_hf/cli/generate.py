"""`karma generate`: responses of a pool of models to a prompt set, in the common multi-model schema."""

from __future__ import annotations

from pathlib import Path

import click

from karma_hf.cli.common import CONTEXT_SETTINGS


@click.command("generate", context_settings=CONTEXT_SETTINGS)
@click.option("--model", default="hf", show_default=True, help="Backend of the models: hf (transformers) or vllm.")
@click.option(
    "--model_args",
    "--model-args",
    "model_args",
    multiple=True,
    metavar="ARGS",
    help="lm-eval model arguments, e.g. pretrained=org/name,dtype=bfloat16; repeat for several models.",
)
@click.option(
    "--models-file",
    "--models_file",
    "models_file",
    type=click.Path(dir_okay=False),
    help="One model_args per line (as for karma eval), or a YAML/JSON pool with per-model names and "
    "generation settings.",
)
@click.option(
    "--prompts",
    "prompts_source",
    required=True,
    metavar="HUB_ID|PATH",
    help="Prompt set: Hub id, or a local .parquet/.jsonl/.arrow file or folder (any datasets source).",
)
@click.option(
    "--prompt-column",
    "--prompt_column",
    "prompt_column",
    default=None,
    metavar="COL",
    help="Column with the prompt (text or messages); default: read the set as a known source schema "
    "(e.g. UltraFeedback's instruction).",
)
@click.option("--split", default="train", show_default=True, help="Split of the prompt set.")
@click.option("--revision", default=None, metavar="REV", help="Hub revision of the prompt set.")
@click.option("--limit", type=click.IntRange(1, None), default=None, help="Use the first N distinct prompts.")
@click.option(
    "--per-prompt",
    "--per_prompt",
    "per_prompt",
    type=click.IntRange(1, None),
    default=None,
    help="Models per prompt: a seeded choice of K models for each prompt (default: all).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --per-prompt and of sampling.")
@click.option(
    "--max-new-tokens",
    "--max_new_tokens",
    "max_new_tokens",
    type=int,
    default=256,
    show_default=True,
    help="Most tokens generated per response.",
)
@click.option("--temperature", type=float, default=0.0, show_default=True, help="0 = greedy decoding (the default).")
@click.option(
    "--top-p",
    "--top_p",
    "top_p",
    type=float,
    default=1.0,
    show_default=True,
    help="Nucleus sampling: keep the smallest token set with this probability mass (1.0 = off).",
)
@click.option(
    "--batch-size", "--batch_size", "batch_size", type=click.IntRange(1, None), default=8, show_default=True,
    help="Prompts per forward pass (hf backend).",
)  # fmt: skip
@click.option(
    "--shard-size", "--shard_size", "shard_size", type=click.IntRange(1, None), default=64, show_default=True,
    help="Prompts per block; work is sharded by (model, block) and resumable.",
)  # fmt: skip
@click.option("--device", default=None, help="hf backend device (default: cuda if available, else cpu).")
@click.option(
    "--output",
    "--out",
    "-o",
    "output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder (rerun the same command into it to continue an interrupted run).",
)
@click.option("--overwrite", is_flag=True, help="Replace a run of another configuration in --output.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def generate_cmd(
    model,
    model_args,
    models_file,
    prompts_source,
    prompt_column,
    split,
    revision,
    limit,
    per_prompt,
    seed,
    max_new_tokens,
    temperature,
    top_p,
    batch_size,
    shard_size,
    device,
    output,
    overwrite,
    quiet,
):
    """Responses of a pool of models to a prompt set, for `karma build --source OUTPUT`.

    \b
    karma generate --model_args pretrained=HuggingFaceTB/SmolLM2-135M-Instruct \\
                   --model_args pretrained=google/gemma-3-270m \\
                   --prompts openbmb/UltraFeedback --limit 1000 --per-prompt 2 -o out/responses
    karma generate --model vllm --models-file pool.yaml --prompts prompts.jsonl --prompt-column text -o out/r
    accelerate launch -m karma_hf.cli generate ...     # hf backend, data parallel
    karma build --source out/responses --scores results/ --modes score,sim,score_sim -o out/karma-set
    """
    from rich.console import Console

    from karma_hf.cli.render import generate_summary
    from karma_hf.generation.config import GenerateConfig, SamplingSettings, check_pool, make_spec, read_pool_file
    from karma_hf.generation.prompts import load_prompts
    from karma_hf.generation.run import check_models, generate

    settings = SamplingSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    specs = [make_spec(m, backend=model, settings=settings) for m in model_args]
    if models_file:
        specs += read_pool_file(models_file, backend=model, settings=settings)
    check_pool(specs)
    config = GenerateConfig(
        models=tuple(specs),
        output=str(output),
        per_prompt=per_prompt,
        seed=seed,
        shard_size=shard_size,
        batch_size=batch_size,
        device=device,
    )
    check_models(config.models)  # before the prompts load: a missing model or vLLM fails at once
    prompts = load_prompts(prompts_source, prompt_column=prompt_column, split=split, revision=revision, limit=limit)
    notes = []
    if prompts.skipped:
        notes.append(f"{prompts.skipped} row(s) without a usable prompt skipped (e.g. {prompts.examples[0]})")
    if prompts.duplicates:
        notes.append(f"{prompts.duplicates} repeated prompt(s) answered once")
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo(
        f"[karma generate] {len(prompts)} prompts from {prompts_source} ({prompts.schema}), {len(specs)} model(s)"
        + (f", {per_prompt} per prompt" if per_prompt else ""),
        err=True,
    )
    result = generate(config, prompts, overwrite=overwrite, progress=not quiet)
    if not result.complete:  # a non-main process of a distributed launch
        return
    Console().print(generate_summary(result))
    click.echo(f"wrote {output}/ ({result.rows} prompts; data/, karma_generate.json)")
    click.echo(f"next:  karma build --source {output} --scores RESULTS --modes score,sim,score_sim -o SET")
