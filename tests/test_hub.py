"""Publishing to the Hub: `karma push` against the loopback minihub, loaded back in a fresh process.

The round trip runs the real CLI and the real huggingface_hub / datasets clients in subprocesses
(HF_ENDPOINT = the session's minihub, empty HF_HOME each time). Folder checks, repo ids, the
no-token path and the backoff schedule are tested in-process.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from karma_hf.errors import KarmaError
from karma_hf.hub import _with_retries, normalize_repo_id, push_folder, scan_folder

MODES = ("score", "sim", "score_sim", "rlaif")
KARMA = [sys.executable, "-m", "karma_hf.cli"]


# -- a karma dataset folder in the layout contract (independent of the builder) --------------
def write_karma_folder(out: Path, *, modes=MODES, n_train: int = 6, n_test: int = 2, tag: str = "v1") -> Path:
    """Write ``out/<mode>/<split>-00000-of-00001.parquet``, ``README.md`` and ``build_report.json``."""
    import yaml
    from datasets import Dataset

    out.mkdir(parents=True, exist_ok=True)
    configs, report = [], {"tag": tag, "modes": {}}
    for m, mode in enumerate(modes):
        rows = []
        for i in range(n_train + n_test):
            instruction = f"[{tag}] Question {i} for {mode}: name a colour."
            rows.append(
                {
                    "prompt": [{"role": "user", "content": instruction}],
                    "chosen": [{"role": "assistant", "content": f"Blue, since item {i} asks for one colour."}],
                    "rejected": [{"role": "assistant", "content": "No."}],
                    "prompt_id": hashlib.sha256(instruction.encode()).hexdigest(),
                    "chosen_model": "gpt-4",
                    "rejected_model": "bard",
                    "kinship": 0.9 - 0.01 * m,
                    "s_pref_chosen": 1.0,
                    "s_pref_rejected": 0.25 + i / 100,
                    "score_chosen": 8.5,
                    "score_rejected": 3.0,
                    "source": "tests/test_hub.py",
                }
            )
            rows[-1]["messages"] = rows[-1]["prompt"] + rows[-1]["chosen"]
        # one schema for every split (load_dataset needs that per config); train_sft = train rows
        train, test, sft = rows[:n_train], rows[n_train:], rows[:n_train]
        (out / mode).mkdir(exist_ok=True)
        files = []
        for split, split_rows in (("train", train), ("test", test), ("train_sft", sft)):
            rel = f"{mode}/{split}-00000-of-00001.parquet"
            Dataset.from_list(split_rows).to_parquet(str(out / rel))
            files.append({"split": split, "path": rel})
        configs.append({"config_name": mode, "data_files": files})
        report["modes"][mode] = {"kept": n_train + n_test, "dropped": {}}
    meta = {"license": "mit", "language": ["en"], "tags": ["dpo", "preference", "karma"], "configs": configs}
    (out / "README.md").write_text(f"---\n{yaml.safe_dump(meta, sort_keys=False)}---\n\n# KARMA test set {tag}\n")
    (out / "build_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return out


def local_rows(folder: Path) -> dict[str, dict[str, list[dict]]]:
    """Every shard of the folder, read with pyarrow: ``{mode: {split: rows}}``."""
    import pyarrow.parquet as pq

    out: dict[str, dict[str, list[dict]]] = {}
    for shard in sorted(folder.glob("*/*-00000-of-00001.parquet")):
        split = shard.name.split("-00000-of-")[0]
        out.setdefault(shard.parent.name, {})[split] = pq.read_table(shard).to_pylist()
    for splits in out.values():  # a build declares train_sft on train's file (karma_hf.layout.SPLIT_FILES)
        splits.setdefault("train_sft", splits["train"])
    return out


def run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def files_containing(root: Path, needle: str) -> list[str]:
    data = needle.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and not p.is_symlink() and data in p.read_bytes()]


LOAD_SCRIPT = r"""
import json, sys
from datasets import load_dataset
from huggingface_hub import DatasetCard

repo, out = sys.argv[1], sys.argv[2]
rows = {}
for mode in ("score", "sim", "score_sim", "rlaif"):
    dd = load_dataset(repo, mode)
    rows[mode] = {split: dd[split].to_list() for split in dd}
card = DatasetCard.load(repo, repo_type="dataset")
with open(out, "w") as f:
    json.dump({"rows": rows, "card_content": card.content, "card_data": card.data.to_dict()}, f)
"""


SOURCE = Path(__file__).parent / "fixtures" / "ultrafeedback_mini.jsonl"


@pytest.fixture(scope="module", params=["karma push", "karma build --push-to"])
def roundtrip(request, tmp_path_factory, hub_session):
    """Publish with the real CLI (``--verbose``, huggingface_hub debug logging, the write token in
    HF_TOKEN), then load the repo back in a fresh process with an empty cache.

    ``karma push``: a hand-made folder in the layout contract. ``karma build --push-to``: the
    builder on the UltraFeedback-format fixture, pushed by the same command.
    """
    hub = hub_session
    root = tmp_path_factory.mktemp("hub-roundtrip")
    push_env = hub.env(root / "home-push", HF_HUB_VERBOSITY="debug")
    if request.param == "karma push":
        folder = write_karma_folder(root / "karma-set")
        repo = "testuser/karma-roundtrip"
        cmd = [*KARMA, "--verbose", "push", str(folder), "--repo", repo]
    else:
        folder = root / "built"
        repo = "testuser/karma-built"
        cmd = [
            *KARMA,
            "--verbose",
            "build",
            "--source",
            str(SOURCE),
            "--scores",
            "ultrafeedback-paper",
            "--ignore-unknown-models",
            "--test-size",
            "3",
            "--output",
            str(folder),
            "--push-to",
            repo,
        ]
    push = run(cmd, push_env, root)
    load_env = hub.env(root / "home-load", HF_HUB_VERBOSITY="debug")
    (root / "load.py").write_text(LOAD_SCRIPT)
    load = run([sys.executable, str(root / "load.py"), repo, str(root / "loaded.json")], load_env, root)
    return {
        "kind": request.param,
        "root": root,
        "folder": folder,
        "repo": repo,
        "push": push,
        "load": load,
        "hub": hub,
    }


@pytest.mark.slow
def test_push_then_load_in_fresh_process_returns_same_rows(roundtrip):
    push, load = roundtrip["push"], roundtrip["load"]
    assert push.returncode == 0, push.stderr[-2000:]
    if roundtrip["kind"] == "karma push":
        assert "pushed 14 files (4 configs: score, sim, score_sim, rlaif)" in push.stdout
    else:
        assert f"pushed to datasets/{roundtrip['repo']}" in push.stdout
    assert load.returncode == 0, load.stderr[-2000:]
    loaded = json.loads((roundtrip["root"] / "loaded.json").read_text())
    local = local_rows(roundtrip["folder"])
    assert sorted(local) == sorted(MODES) and all(local[m]["train"] for m in MODES)
    assert loaded["rows"] == local
    # one commit on top of the repo's initial commit, holding every file of the folder
    snap = roundtrip["hub"].hub.snapshot(roundtrip["repo"])
    assert snap["n_commits"] == 2
    folder = roundtrip["folder"]
    expected = {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }
    assert {k: v for k, v in snap["files"]["main"].items() if k != ".gitattributes"} == expected


@pytest.mark.slow
def test_dataset_card_metadata_survives_the_round_trip(roundtrip):
    assert roundtrip["load"].returncode == 0, roundtrip["load"].stderr[-2000:]
    loaded = json.loads((roundtrip["root"] / "loaded.json").read_text())
    from huggingface_hub import metadata_load

    card = roundtrip["folder"] / "README.md"
    assert loaded["card_content"] == card.read_text()
    assert loaded["card_data"] == metadata_load(card)
    assert {"dpo", "preference", "karma"} <= set(loaded["card_data"]["tags"])
    assert [c["config_name"] for c in loaded["card_data"]["configs"]] == list(MODES)


@pytest.mark.slow
def test_loaded_rows_have_what_dpo_and_sft_trainers_need(roundtrip, tiny_model_dir):
    """TRL's own helpers accept the loaded rows: conversational format, chat template, prompt prefix;
    the KARMA metadata columns are there and typed."""
    from transformers import AutoTokenizer
    from trl.data_utils import apply_chat_template, is_conversational

    assert roundtrip["load"].returncode == 0, roundtrip["load"].stderr[-2000:]
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = json.loads((roundtrip["root"] / "loaded.json").read_text())["rows"]
    for mode in MODES:
        for row in rows[mode]["train"] + rows[mode]["test"]:
            assert is_conversational(row)
            assert [m["role"] for m in row["prompt"]] == ["user"]
            assert [m["role"] for m in row["chosen"]] == [m["role"] for m in row["rejected"]] == ["assistant"]
            assert row["chosen"][0]["content"].strip() and row["rejected"][0]["content"].strip()
            assert row["chosen"] != row["rejected"]
            assert len(row["prompt_id"]) == 64 and row["chosen_model"] and row["rejected_model"]
            # rlaif may pair a model without benchmark scores (ultralm-65b): its kinship/S_pref are null
            allowed = (float, type(None)) if mode == "rlaif" else float
            assert all(isinstance(row[k], allowed) for k in ("kinship", "s_pref_chosen", "s_pref_rejected"))
            text = apply_chat_template({k: row[k] for k in ("prompt", "chosen", "rejected")}, tok)
            full = tok.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False)
            assert full.startswith(text["prompt"])  # DPO splits prompt/completion at this prefix
            assert text["chosen"] and text["rejected"]
        for row in rows[mode]["train_sft"]:
            assert is_conversational(row)
            assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
            assert row["messages"] == row["prompt"] + row["chosen"]


@pytest.mark.slow
def test_token_never_appears_in_output_logs_or_files(roundtrip):
    """The write token (the canary) is set in the environment of both processes with debug logging."""
    canary = roundtrip["hub"].token
    for proc in (roundtrip["push"], roundtrip["load"]):
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert canary not in proc.stdout and canary not in proc.stderr
    assert roundtrip["push"].stderr.strip(), "debug logging produced no output: the check would be vacuous"
    assert files_containing(roundtrip["root"], canary) == []
    assert not any(canary in path for _, path, _ in roundtrip["hub"].hub.log)


def _push(
    hub, tmp_path: Path, folder: Path, repo: str, *args: str, token: str | None = "default", **extra: str
) -> subprocess.CompletedProcess:
    env = hub.env(tmp_path / "home", token=token, KARMA_HUB_RETRIES="1", KARMA_HUB_BACKOFF="0.05", **extra)
    return run([*KARMA, "push", str(folder), "--repo", repo, *args], env, tmp_path)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["wrong", "read_only"])
def test_bad_token_fails_cleanly_and_creates_nothing(hub_server, tmp_path, kind):
    folder = write_karma_folder(tmp_path / "set", modes=("score",))
    token = "hf_wrong_canary_0123456789" if kind == "wrong" else hub_server.read_token
    proc = _push(hub_server, tmp_path, folder, f"testuser/karma-{kind}-token", token=token)
    line = _one_error_line(proc)
    assert ("401" in line and "rejected the token" in line) if kind == "wrong" else ("403" in line)
    assert token not in proc.stdout + proc.stderr
    assert hub_server.hub.snapshot(f"testuser/karma-{kind}-token") is None


@pytest.mark.slow
def test_repo_existing_only_as_a_model_is_refused_unless_datasets_prefix(hub_server, tmp_path):
    repo = "testuser/karma-is-a-model"
    hub_server.hub.seed(repo, {"config.json": b"{}"}, repo_type="model")
    folder = write_karma_folder(tmp_path / "set", modes=("score",))
    line = _one_error_line(_push(hub_server, tmp_path, folder, repo))
    assert f"--repo {repo}: exists on the Hub as a model repo" in line
    assert hub_server.hub.snapshot(repo) is None  # no dataset repo was created
    proc = _push(hub_server, tmp_path, folder, f"datasets/{repo}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "README.md" in hub_server.hub.snapshot(repo)["files"]["main"]


@pytest.mark.slow
def test_server_down_is_a_network_error_after_retries(hub_server, tmp_path):
    folder = write_karma_folder(tmp_path / "set", modes=("score",))
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = hub_server.env(tmp_path / "home", KARMA_HUB_RETRIES="2", KARMA_HUB_BACKOFF="0.05")
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{port}"
    proc = run([*KARMA, "push", str(folder), "--repo", "testuser/karma-down"], env, tmp_path)
    line = _one_error_line(proc)
    assert "network failure" in line and f"127.0.0.1:{port}" in line and "after 3 attempt(s)" in line
    assert proc.stderr.count("retry ") == 2  # two backoff waits were logged


@pytest.mark.slow
@pytest.mark.parametrize("kind,mode,times", [("lfs_put", "truncate", 1), ("commit", "drop", 5), ("commit", 503, 5)])
def test_interrupted_push_leaves_repo_unchanged(hub_server, tmp_path, kind, mode, times):
    repo = f"testuser/karma-interrupted-{kind}-{mode}"
    hub_server.hub.seed_folder(repo, write_karma_folder(tmp_path / "v1", tag="v1"))
    before = hub_server.hub.snapshot(repo)
    hub_server.hub.fail(kind, times=times, mode=mode)
    v2 = write_karma_folder(tmp_path / "v2", tag=f"v2-{kind}-{mode}")  # new content: uploads really happen
    proc = _push(hub_server, tmp_path, v2, repo)
    line = _one_error_line(proc)
    assert "nothing was committed" in line
    assert len(hub_server.hub.failures.get(kind, [])) < times  # the injected failure did fire
    assert hub_server.hub.snapshot(repo) == before


@pytest.mark.slow
def test_transient_failures_are_retried_and_the_push_lands_once(hub_server, tmp_path):
    repo = "testuser/karma-transient"
    hub_server.hub.seed_folder(repo, write_karma_folder(tmp_path / "v1", tag="v1"))
    n_before = hub_server.hub.snapshot(repo)["n_commits"]
    log_start = len(hub_server.hub.log)
    hub_server.hub.fail("lfs_put", times=1, mode="drop")  # one shard upload is cut (huggingface_hub retries it)
    hub_server.hub.fail("commit", times=1, mode="drop")  # the commit request is cut once (karma retries)
    v2 = write_karma_folder(tmp_path / "v2", tag="v2-transient")  # content new to the hub's LFS store
    proc = _push(hub_server, tmp_path, v2, repo)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "retry 1/1" in proc.stderr
    puts = [status for method, path, status in hub_server.hub.log[log_start:] if method == "PUT"]
    assert puts.count(0) == 1 and 200 in puts  # one upload dropped, the retry stored it
    snap = hub_server.hub.snapshot(repo)
    assert snap["n_commits"] == n_before + 1
    assert (
        snap["files"]["main"]["score/train-00000-of-00001.parquet"]
        == hashlib.sha256((v2 / "score/train-00000-of-00001.parquet").read_bytes()).hexdigest()
    )


@pytest.mark.slow
def test_push_to_a_branch_leaves_main_alone_and_repush_is_a_no_op(hub_server, tmp_path):
    repo = "testuser/karma-branch"
    hub_server.hub.seed_folder(repo, write_karma_folder(tmp_path / "v1", tag="v1"))
    main_before = hub_server.hub.snapshot(repo)["files"]["main"]
    v2 = write_karma_folder(tmp_path / "v2", tag="v2")
    for first in (True, False):
        proc = _push(hub_server, tmp_path, v2, repo, "--revision", "dev")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert 'revision="dev"' in proc.stdout
        assert proc.stdout.startswith("pushed 14 files" if first else "unchanged: datasets/testuser/karma-branch@dev")
    snap = hub_server.hub.snapshot(repo)
    assert snap["files"]["main"] == main_before
    assert snap["files"]["dev"]["README.md"] == hashlib.sha256((v2 / "README.md").read_bytes()).hexdigest()
    assert snap["n_commits"] == 3  # initial, seed, one push (the second push changed nothing)


# -- in-process: folder layout, repo ids, token, backoff ----------------------------------------
def test_scan_folder_lists_card_report_and_every_shard(tmp_path):
    folder = write_karma_folder(tmp_path / "set")
    (folder / "kinship.png").write_bytes(b"\x89PNG")
    plan = scan_folder(folder)
    assert plan.configs == MODES
    assert plan.files[:2] == ("README.md", "build_report.json")
    assert len(plan.files) == 2 + 3 * len(MODES)
    assert plan.skipped == ("kinship.png",)


@pytest.mark.parametrize(
    "breakage,message",
    [
        ("no_card", "missing README.md"),
        ("no_report", "missing build_report.json"),
        ("bad_report", "not valid JSON"),
        ("stray_file", "unexpected entry in a config folder"),
        ("not_parquet", "not a readable parquet file"),
        ("missing_column", "missing column(s) rejected"),
        ("empty_split", "has no rows"),
        ("split_schemas_differ", "columns differ from score/test-00000-of-00001.parquet"),
        ("undeclared_mode", "does not declare mode folder(s) sim"),
        ("card_points_nowhere", "not in the folder"),
        ("no_configs", "no `configs` list"),
        ("empty", "missing README.md"),
    ],
)
def test_scan_folder_rejects_what_is_not_a_karma_folder(tmp_path, breakage, message):
    import pyarrow as pa
    import pyarrow.parquet as pq
    import yaml

    folder = write_karma_folder(tmp_path / "set", modes=("score", "sim"))
    card = folder / "README.md"
    meta = yaml.safe_load(card.read_text().split("---")[1])
    if breakage == "no_card":
        card.unlink()
    elif breakage == "no_report":
        (folder / "build_report.json").unlink()
    elif breakage == "bad_report":
        (folder / "build_report.json").write_text("{oops")
    elif breakage == "stray_file":
        (folder / "score" / "notes.txt").write_text("x")
    elif breakage == "not_parquet":
        (folder / "score" / "test-00000-of-00001.parquet").write_bytes(b"PAR1 truncated")
    elif breakage == "missing_column":
        pq.write_table(pa.table({"prompt": [1], "chosen": [2]}), folder / "sim" / "train-00000-of-00001.parquet")
    elif breakage == "empty_split":
        table = pq.read_table(folder / "sim" / "test-00000-of-00001.parquet")
        pq.write_table(table.slice(0, 0), folder / "sim" / "test-00000-of-00001.parquet")
    elif breakage == "split_schemas_differ":
        table = pq.read_table(folder / "score" / "train_sft-00000-of-00001.parquet").drop_columns(["kinship"])
        pq.write_table(table, folder / "score" / "train_sft-00000-of-00001.parquet")
    elif breakage in ("undeclared_mode", "card_points_nowhere", "no_configs"):
        if breakage == "undeclared_mode":
            meta["configs"] = meta["configs"][:1]
        elif breakage == "card_points_nowhere":
            meta["configs"][0]["data_files"][0]["path"] = "score/train-00001-of-00002.parquet"
        else:
            del meta["configs"]
        card.write_text(f"---\n{yaml.safe_dump(meta)}---\n")
    elif breakage == "empty":
        folder = tmp_path / "empty"
        folder.mkdir()
    with pytest.raises(KarmaError, match=None) as err:
        scan_folder(folder)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_scan_folder_rejects_a_missing_folder(tmp_path):
    with pytest.raises(KarmaError, match="not a folder"):
        scan_folder(tmp_path / "nope")


@pytest.mark.parametrize(
    "given,expected",
    [
        ("user/name", "user/name"),
        ("datasets/user/name", "user/name"),
        ("https://huggingface.co/datasets/user/name", "user/name"),
        ("  org/x.y-z_1/ ", "org/x.y-z_1"),
    ],
)
def test_repo_ids_accepted(given, expected):
    assert normalize_repo_id(given) == expected


@pytest.mark.parametrize(
    "given,message",
    [
        ("models/user/name", "that is a model repo"),
        ("spaces/user/name", "that is a space repo"),
        ("https://huggingface.co/user/name", "that is a model repo"),
        ("https://huggingface.co/spaces/user/app", "that is a space repo"),
        ("name-only", "expected a dataset repo id"),
        ("a/b/c", "expected a dataset repo id"),
        ("user/../x", "expected a dataset repo id"),
    ],
)
def test_repo_ids_of_other_types_or_malformed_are_rejected(given, message):
    with pytest.raises(KarmaError, match="--repo") as err:
        normalize_repo_id(given)
    assert message in str(err.value)


def test_no_token_is_a_clear_error_before_any_request(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token-here"))
    folder = write_karma_folder(tmp_path / "set", modes=("score",))
    with pytest.raises(KarmaError, match="no Hugging Face token: set HF_TOKEN or run `hf auth login`"):
        push_folder(folder, "testuser/karma-no-token")


def test_backoff_doubles_and_only_transient_errors_are_retried(monkeypatch):
    monkeypatch.setenv("KARMA_HUB_RETRIES", "3")
    monkeypatch.setenv("KARMA_HUB_BACKOFF", "0.5")
    waits: list[float] = []
    calls = iter([ConnectionRefusedError("down"), TimeoutError("slow"), "ok"])

    def flaky():
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    assert _with_retries(flaky, describe=lambda e, n: f"{n}", sleep=waits.append) == "ok"
    assert waits == [0.5, 1.0]

    def broken():
        raise ValueError("not transient")

    waits.clear()
    with pytest.raises(KarmaError, match="^1$"):
        _with_retries(broken, describe=lambda e, n: f"{n}", sleep=waits.append)
    assert waits == []

    with pytest.raises(KarmaError, match="^4$"):
        _with_retries(
            lambda: (_ for _ in ()).throw(ConnectionResetError()), describe=lambda e, n: f"{n}", sleep=waits.append
        )
    assert waits == [0.5, 1.0, 2.0]


def test_cli_push_reports_a_bad_folder_as_one_line(tmp_path):
    from click.testing import CliRunner

    from karma_hf.cli import cli

    result = CliRunner().invoke(cli, ["push", str(tmp_path), "--repo", "testuser/x"])
    assert result.exit_code != 0 and isinstance(result.exception, KarmaError)
    assert "missing README.md" in str(result.exception)


# -- minihub protocol details the clients rely on (stdlib HTTP, no HF client) -------------------
def _http(hub, method: str, path: str, body: bytes | None = None, headers: dict | None = None, chunked: bool = False):
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(hub.url if path.startswith("/") else path)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    target = path if path.startswith("/") else url.path
    if chunked:
        conn.request(method, target, body=iter([body[:3], body[3:]]), headers=headers or {}, encode_chunked=True)
    else:
        conn.request(method, target, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), data


def test_minihub_resolve_sends_commit_etag_linked_size_and_ranges(hub_server):
    data = b"PAR1" + bytes(range(40)) + b"PAR1"
    oid = hub_server.hub.seed("testuser/mh-resolve", {"d/x.parquet": data, "README.md": b"# hi\n"})
    base = "/datasets/testuser/mh-resolve/resolve/main"
    status, headers, _ = _http(hub_server, "HEAD", f"{base}/d/x.parquet")
    assert status == 200 and headers["X-Repo-Commit"] == oid
    assert headers["X-Linked-Etag"].strip('"') == hashlib.sha256(data).hexdigest()
    assert headers["X-Linked-Size"] == str(len(data))
    status, headers, body = _http(hub_server, "GET", f"{base}/d/x.parquet", headers={"Range": "bytes=4-9"})
    assert status == 206 and body == data[4:10] and headers["Content-Range"] == f"bytes 4-9/{len(data)}"
    status, headers, _ = _http(hub_server, "HEAD", f"{base}/missing.json")
    assert status == 404 and headers["X-Error-Code"] == "EntryNotFound"


def test_minihub_commit_needs_token_checks_parent_and_is_all_or_nothing(hub_server):
    repo = "testuser/mh-commit"
    hub_server.hub.seed(repo, {"a.txt": b"a"})
    before = hub_server.hub.snapshot(repo)

    def commit(lines: list[dict], token: str | None = hub_server.token):
        body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        headers = {"Content-Type": "application/x-ndjson"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return _http(hub_server, "POST", f"/api/datasets/{repo}/commit/main", body, headers)

    add_b = {"key": "file", "value": {"path": "b.txt", "content": "Yg==", "encoding": "base64"}}
    ghost = {"key": "lfsFile", "value": {"path": "c.parquet", "algo": "sha256", "oid": "0" * 64, "size": 3}}
    assert commit([{"key": "header", "value": {"summary": "x"}}, add_b], token=None)[0] == 401
    assert commit([{"key": "header", "value": {"summary": "x", "parentCommit": "f" * 40}}, add_b])[0] == 412
    assert commit([{"key": "header", "value": {"summary": "x"}}, add_b, ghost])[0] == 422
    assert hub_server.hub.snapshot(repo) == before
    status, _, body = commit([{"key": "header", "value": {"summary": "x"}}, add_b])
    assert (
        status == 200 and hub_server.hub.snapshot(repo)["files"]["main"]["b.txt"] == hashlib.sha256(b"b").hexdigest()
    )


def test_minihub_lfs_upload_takes_a_chunked_body_and_checks_its_sha256(hub_server):
    repo = "testuser/mh-lfs"
    hub_server.hub.seed(repo, {})
    data = b"chunked body for lfs"
    sha = hashlib.sha256(data).hexdigest()
    auth = {"Authorization": f"Bearer {hub_server.token}", "Content-Type": "application/vnd.git-lfs+json"}
    batch = {
        "operation": "upload",
        "transfers": ["basic"],
        "hash_algo": "sha256",
        "objects": [{"oid": sha, "size": len(data)}],
    }
    status, _, body = _http(
        hub_server, "POST", f"/datasets/{repo}.git/info/lfs/objects/batch", json.dumps(batch).encode(), auth
    )
    actions = json.loads(body)["objects"][0]["actions"]
    assert status == 200
    assert _http(hub_server, "PUT", actions["upload"]["href"], b"tampered body!", {})[0] == 400
    assert _http(hub_server, "PUT", actions["upload"]["href"], data, {}, chunked=True)[0] == 200
    assert _http(hub_server, "POST", actions["verify"]["href"], b"{}", {})[0] == 200
