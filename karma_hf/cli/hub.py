"""`karma push`: publish a build folder as one Hub commit."""

from __future__ import annotations

from pathlib import Path

import click

from karma_hf.cli.common import CONTEXT_SETTINGS


# --- hub ---
@click.command("push", context_settings=CONTEXT_SETTINGS)
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--repo", "repo_id", required=True, metavar="USER/NAME", help="Dataset repo to publish to (created if missing)."
)
@click.option("--private", is_flag=True, help="Create the repo as private (ignored if it already exists).")
@click.option("--revision", default=None, metavar="BRANCH", help="Branch to commit to (created from main if missing).")
@click.option("--message", "-m", "commit_message", default=None, help="Commit message (default: names the configs).")
def push(folder: Path, repo_id: str, private: bool, revision: str | None, commit_message: str | None) -> None:
    """Publish a `karma build` output folder to the Hub as ONE commit (all configs + card).

    \b
    Token: HF_TOKEN or `hf auth login`. A failed push leaves the repo unchanged.
    Example:  karma push out/karma-uf --repo me/karma-ultrafeedback
    """
    from karma_hf.hub import push_folder, scan_folder

    plan = scan_folder(folder)
    result = push_folder(
        folder, repo_id, private=private, revision=revision, token=None, commit_message=commit_message
    )
    where = f"datasets/{result.repo_id}@{result.revision}"
    configs = f"{len(plan.configs)} configs: {', '.join(plan.configs)}"
    if result.changed:
        gone = f", deleted {len(result.deleted)} stale shard(s): {', '.join(result.deleted)}" if result.deleted else ""
        click.echo(f"pushed {len(result.files)} files ({configs}) to {where} in one commit{gone}")
    else:
        click.echo(f"unchanged: {where} already holds these {len(result.files)} files ({configs}); no commit made")
    click.echo(f"commit: {result}")
    click.echo(
        f'load:   datasets.load_dataset("{result.repo_id}", "{plan.configs[0]}"'
        + (f', revision="{revision}")' if revision else ")")
    )
    if plan.skipped:
        click.echo(f"not pushed (outside the karma layout): {', '.join(plan.skipped)}")
