"""Write a small KARMA preference set in the published layout, offline and deterministically.

Layout (the builder's contract): ``DIR/<mode>/<split>-00000-of-00001.parquet`` for the pairs
splits ``train``/``test`` and the SFT split ``train_sft``, a ``DIR/README.md`` card whose YAML
``configs`` declares one config per mode, and ``DIR/build_report.json``. Used by the train and
compare tests and by ``benchmarks/train_overhead.py``; independent of the real builder.
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path

MODELS = ["gpt-4", "bard", "wizardlm-70b", "llama-2-7b-chat"]
BENCHMARKS = ["ifeval", "mmlu_stem", "mmlu_pro", "hellaswag", "arc_easy", "arc_challenge"]
SCORES = [  # rows follow MODELS
    [0.79, 0.86, 0.72, 0.95, 0.96, 0.96],
    [0.55, 0.60, 0.37, 0.70, 0.88, 0.80],
    [0.60, 0.52, 0.33, 0.74, 0.86, 0.76],
    [0.45, 0.35, 0.20, 0.57, 0.70, 0.55],
]
# Pairs each mode draws from (chosen first); the kinship values are fixed, not recomputed here.
MODE_PAIRS = {
    "score": [("gpt-4", "bard", 0.97), ("gpt-4", "wizardlm-70b", 0.95)],
    "sim": [("bard", "wizardlm-70b", 0.99), ("wizardlm-70b", "llama-2-7b-chat", 0.98)],
    "score_sim": [("gpt-4", "bard", 0.97)],
    "rlaif": [("gpt-4", "llama-2-7b-chat", 0.91), ("bard", "gpt-4", 0.97)],
}
S_PREF = {"gpt-4": 0.99, "bard": 0.62, "wizardlm-70b": 0.55, "llama-2-7b-chat": 0.0}
TAU = 0.1
WORDS = ["cat", "dog", "tree", "river", "stone", "light", "music", "window", "garden", "paper", "cloud", "bread"]


def _rows(mode: str, n: int, seed: int, offset: int) -> list[dict]:
    rng = random.Random(f"{mode}-{seed}-{offset}")
    pairs = MODE_PAIRS[mode]
    rows = []
    for i in range(n):
        topic = " ".join(rng.sample(WORDS, 3))
        instruction = f"Write one sentence about {topic} (item {offset + i})."
        chosen_model, rejected_model, kinship = pairs[i % len(pairs)]
        good = f"Sure. Here is a sentence about {topic}: the {topic} are calm today."
        bad = f"{topic}? No."
        prompt = [{"role": "user", "content": instruction}]
        chosen = [{"role": "assistant", "content": good}]
        rejected = [{"role": "assistant", "content": bad}]
        rows.append(
            {
                "prompt": prompt,
                "chosen": chosen,
                "rejected": rejected,
                "prompt_id": hashlib.sha256(instruction.encode()).hexdigest(),
                "chosen_model": chosen_model,
                "rejected_model": rejected_model,
                "kinship": kinship,
                "s_pref_chosen": S_PREF[chosen_model],
                "s_pref_rejected": S_PREF[rejected_model],
                "score_chosen": 8.0,
                "score_rejected": 3.0,
                "source": "fixture",
            }
        )
    return rows


def write_karma_set(
    out: Path, *, modes=("score", "sim", "score_sim", "rlaif"), n_train: int = 32, n_test: int = 8, seed: int = 42
) -> Path:
    """Write the set to ``out`` (created) and return it."""
    from datasets import Dataset

    out = Path(out)
    configs = []
    report = {
        "tau": TAU,
        "seed": seed,
        "source": "tests/karma_set.py",
        "scores": {
            "source": "fixture",
            "models": MODELS,
            "benchmarks": BENCHMARKS,
            "known_unscored": [],
            "scores": {m: dict(zip(BENCHMARKS, row, strict=False)) for m, row in zip(MODELS, SCORES, strict=False)},
        },
        "kinship": {"models": MODELS, "s_pref": [S_PREF[m] for m in MODELS], "tau": TAU},
        "modes": {},
    }
    for mode in modes:
        (out / mode).mkdir(parents=True, exist_ok=True)
        train = _rows(mode, n_train, seed, 0)
        test = _rows(mode, n_test, seed, n_train)
        for r in train + test:  # one schema for every split, as the builder writes it
            r["messages"] = r["prompt"] + r["chosen"]
        sft = train
        files = []
        for split, rows in (("train", train), ("test", test), ("train_sft", sft)):
            path = f"{mode}/{split}-00000-of-00001.parquet"
            Dataset.from_list(rows).to_parquet(str(out / path))
            files.append({"split": split, "path": path})
        configs.append({"config_name": mode, "data_files": files})
        report["modes"][mode] = {"kept": n_train + n_test, "dropped": {}}
    import yaml

    header = yaml.safe_dump(
        {"configs": configs, "tags": ["karma", "dpo"], "karma": {"tau": TAU, "score_table": "fixture"}},
        sort_keys=False,
    )
    (out / "README.md").write_text(f"---\n{header}---\n\n# Fixture KARMA set\n\nTau = {TAU}.\n")
    (out / "build_report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return out


if __name__ == "__main__":  # python tests/karma_set.py OUT_DIR
    print(write_karma_set(Path(sys.argv[1])))
