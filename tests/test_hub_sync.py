"""`karma push` makes the repo's KARMA files equal to the build's: stale shards go in the same single commit."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from test_hub import _push, write_karma_folder

from karma_hf.hub import stale_files


def _drop_split(folder: Path, mode: str, split: str) -> None:
    """Remove one split of one mode from a folder and from its card's configs."""
    (folder / mode / f"{split}-00000-of-00001.parquet").unlink()
    text = (folder / "README.md").read_text()
    _, head, body = text.split("---", 2)
    meta = yaml.safe_load(head)
    for config in meta["configs"]:
        if config["config_name"] == mode:
            config["data_files"] = [f for f in config["data_files"] if f["split"] != split]
    (folder / "README.md").write_text(f"---\n{yaml.safe_dump(meta, sort_keys=False)}---{body}")


def test_push_deletes_stale_shards_in_the_same_single_commit(hub_server, tmp_path):
    repo = "testuser/karma-sync"
    hub_server.hub.seed_folder(repo, write_karma_folder(tmp_path / "v1", tag="v1"))  # 4 modes x 3 splits
    hub_server.hub.seed(repo, {"notes.md": b"uploaded by hand\n"}, message="a file outside the layout")
    before = hub_server.hub.snapshot(repo)
    v2 = write_karma_folder(tmp_path / "v2", modes=("score", "sim"), tag="v2")
    _drop_split(v2, "sim", "test")

    proc = _push(hub_server, tmp_path, v2, repo)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "in one commit, deleted 7 stale shard(s)" in proc.stdout
    after = hub_server.hub.snapshot(repo)
    assert after["n_commits"] == before["n_commits"] + 1  # uploads and deletions: one commit
    local = {str(p.relative_to(v2)): hashlib.sha256(p.read_bytes()).hexdigest() for p in v2.rglob("*") if p.is_file()}
    remote = after["files"]["main"]
    assert {p: h for p, h in remote.items() if p not in ("notes.md", ".gitattributes")} == local
    assert "notes.md" in remote and not any(p.startswith(("score_sim/", "rlaif/")) for p in remote)
    assert "sim/test-00000-of-00001.parquet" not in remote

    again = _push(hub_server, tmp_path, v2, repo)  # nothing changed: no commit at all
    assert again.returncode == 0 and again.stdout.startswith("unchanged:"), again.stdout + again.stderr[-2000:]
    assert hub_server.hub.snapshot(repo)["n_commits"] == after["n_commits"]


def test_stale_files_are_karma_shards_only():
    repo = [
        ".gitattributes",
        "README.md",
        "notes.md",
        "plots/pca.png",
        "sim/train-00000-of-00001.parquet",
        "rlaif/test-00000-of-00001.parquet",
        "a/b/train-00000-of-00001.parquet",
        ".x/train-00000-of-00001.parquet",
    ]
    assert stale_files(repo, ["README.md", "sim/train-00000-of-00001.parquet"]) == [
        "rlaif/test-00000-of-00001.parquet"
    ]
