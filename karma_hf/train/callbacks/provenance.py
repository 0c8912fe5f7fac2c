"""``ProvenanceCallback``: ties a training run to the KARMA set it trains on.

At train start the main process writes ``OUTPUT_DIR/karma_provenance.json``: the dataset repo or
folder, config (the KARMA mode), requested and resolved revision, content fingerprint, τ, the
origin-model score table, S_pref and the normalised scores (from the set's ``build_report.json``
/ card, :meth:`karma_hf.karma_set.KarmaSet.provenance`), package versions, world size, and the
full resolved training configuration. At every save and at the end it puts a "KARMA provenance"
section into the model card (:mod:`karma_hf.cards.model`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from karma_hf.cards.model import PROVENANCE_FILE, render_model_card_section, update_model_card
from karma_hf.karma_set import is_local
from karma_hf.set_provenance import dataset_provenance
from karma_hf.train.stages import stage_of_config

VERSIONED = (
    "karma-hf",
    "torch",
    "transformers",
    "trl",
    "datasets",
    "accelerate",
    "peft",
    "lm-eval",
    "huggingface-hub",
    "deepspeed",
)


def library_versions() -> dict[str, str | None]:
    """Installed versions of the packages a run depends on (``None`` = not installed)."""
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


class ProvenanceCallback(TrainerCallback):
    """Writes ``karma_provenance.json`` and the model-card section (see the module docstring).

    ``extra`` returns more top-level facts to record (the composite :class:`KarmaCallback` adds
    the evaluation settings and the batch-statistics state); ``batch_totals`` returns
    ``(rows, mean kinship or None)`` for the card.
    """

    def __init__(
        self,
        dataset_name: str | None = None,
        dataset_config: str | None = None,
        *,
        dataset_revision: str | None = None,
        train_dataset: Any = None,
        run_config: Mapping[str, Any] | None = None,
        extra: Callable[[], Mapping[str, Any]] | None = None,
        batch_totals: Callable[[], tuple[int, float | None]] | None = None,
    ) -> None:
        self.dataset_name = dataset_name
        self.dataset_config = dataset_config
        self.dataset_revision = dataset_revision
        self.train_dataset = train_dataset
        self.run_config = dict(run_config or {})
        self.extra = extra
        self.batch_totals = batch_totals
        self.provenance: dict[str, Any] | None = None

    def build(self, args: Any, state: Any) -> dict[str, Any]:
        from karma_hf import __version__

        dataset = (
            dataset_provenance(self.dataset_name, self.dataset_config, self.dataset_revision, self.train_dataset)
            if self.dataset_name
            else {"notes": ["no dataset_name given to KarmaCallback"]}
        )
        record = {
            "karma_hf_version": __version__,
            "stage": self.run_config.get("stage") or stage_of_config(args),
            "dataset": dataset,
            "versions": library_versions(),
            "world_size": args.world_size,
            "resumed_from_step": state.global_step or 0,
            "training_args": json.loads(args.to_json_string()),
            "run_config": self.run_config,
        }
        record.update(self.extra() if self.extra else {})
        return record

    def on_train_begin(self, args, state, control, **kwargs):
        self.provenance = self.build(args, state)
        if state.is_world_process_zero:
            out = Path(args.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / PROVENANCE_FILE).write_text(
                json.dumps(self.provenance, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8"
            )
        return control

    def card_section(self) -> str:
        rows, mean = self.batch_totals() if self.batch_totals else (0, None)
        return render_model_card_section(
            self.provenance or {},
            dataset_name=self.dataset_name,
            dataset_config=self.dataset_config,
            batch_rows=rows,
            batch_kinship_mean=mean,
        )

    def write_card(self, out: Path, *, create: bool) -> None:
        hub = self.dataset_name if self.dataset_name and not is_local(self.dataset_name) else None
        update_model_card(out, self.card_section(), hub_dataset=hub, create=create)

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.write_card(Path(args.output_dir), create=False)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.write_card(Path(args.output_dir), create=False)
        return control
