"""Training callbacks: provenance, kinship batch statistics, karma evaluation, and ``KarmaCallback``.

Each concern is its own ``TrainerCallback`` (:class:`ProvenanceCallback`,
:class:`KinshipStatsCallback`, :class:`EvalCallback`); :class:`KarmaCallback` bundles the three
for any ``transformers.Trainer`` (TRL's ``SFTTrainer``, ``DPOTrainer``...)::

    from karma_hf.train.callbacks import KarmaCallback
    cb = KarmaCallback(dataset_name="me/uf-karma", dataset_config="sim", eval_tasks=["karma"])
    trainer = DPOTrainer(model=..., args=..., train_dataset=ds, callbacks=[cb])
    cb.attach(trainer)          # optional: exact per-batch kinship statistics, metrics in TRL's logs
    trainer.train(); trainer.save_model()
    cb.finalize(trainer.args.output_dir)   # model-card section + karma eval of the saved model

All files are written by the main process only (``state.is_world_process_zero``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from karma_hf.cards.model import PROVENANCE_FILE
from karma_hf.train.callbacks.evaluation import CKPT_EVAL_DIR, EVAL_DIR, EvalCallback
from karma_hf.train.callbacks.provenance import ProvenanceCallback, library_versions
from karma_hf.train.callbacks.stats import BATCH_STATS_FILE, KinshipStatsCallback

__all__ = [
    "BATCH_STATS_FILE",
    "CKPT_EVAL_DIR",
    "EVAL_DIR",
    "PROVENANCE_FILE",
    "EvalCallback",
    "KarmaCallback",
    "KinshipStatsCallback",
    "ProvenanceCallback",
    "library_versions",
]


class KarmaCallback(TrainerCallback):
    """Provenance, kinship statistics, model-card section and karma evaluation for a run.

    Args:
        dataset_name: Hub dataset id or local folder of the KARMA set.
        dataset_config: the config (KARMA mode: ``score``, ``sim``, ``score_sim``, ``rlaif``).
        dataset_revision: the revision asked for (the resolved commit is recorded too).
        train_dataset: the dataset given to the trainer (fingerprint, row count, and the
            per-index metadata table when :meth:`attach` is not used).
        run_config: extra resolved configuration to record; the trainer's ``args`` are always recorded.
        eval_tasks: karma lm-eval tasks or groups to run on the saved model (``None`` = none).
        eval_limit: lm-eval ``--limit`` (items per task, or a fraction below 1).
        eval_on_save: also evaluate every checkpoint when it is saved.
        eval_at_train_end: evaluate the final checkpoint at train end when one was saved
            (``karma train`` instead calls :meth:`finalize` after ``save_model``).
        eval_batch_size / eval_apply_chat_template / eval_extra_args: passed to
            :func:`karma_hf.evaluation.run.evaluate_model`.
        top_pairs: how many model pairs get their own ``karma/pair_share/...`` metric per log.
        facts: more top-level facts for ``karma_provenance.json`` (``karma train`` records the
            train-row ``order`` here, :mod:`karma_hf.train.order`).
    """

    def __init__(
        self,
        dataset_name: str | None = None,
        dataset_config: str | None = None,
        *,
        dataset_revision: str | None = None,
        train_dataset: Any = None,
        run_config: Mapping[str, Any] | None = None,
        eval_tasks: Sequence[str] | None = None,
        eval_limit: float | None = None,
        eval_on_save: bool = False,
        eval_at_train_end: bool = True,
        eval_batch_size: int | str = 1,
        eval_apply_chat_template: bool = True,
        eval_extra_args: Sequence[str] = (),
        top_pairs: int = 8,
        facts: Mapping[str, Any] | None = None,
    ) -> None:
        self.facts = dict(facts or {})
        self.stats = KinshipStatsCallback(train_dataset, top_pairs=top_pairs)
        self.evaluation = EvalCallback(
            eval_tasks or (),
            limit=eval_limit,
            on_save=eval_on_save,
            at_train_end=eval_at_train_end,
            batch_size=eval_batch_size,
            apply_chat_template=eval_apply_chat_template,
            extra_args=eval_extra_args,
        )
        self.provenance_cb = ProvenanceCallback(
            dataset_name,
            dataset_config,
            dataset_revision=dataset_revision,
            train_dataset=train_dataset,
            run_config=run_config,
            extra=self._extra_facts,
            batch_totals=lambda: (self.stats.total.rows, self.stats.total.kinship_mean),
        )
        # provenance first (it records the others' state), statistics, then evaluation
        self.parts: tuple[TrainerCallback, ...] = (self.provenance_cb, self.stats, self.evaluation)

    def _extra_facts(self) -> dict[str, Any]:
        return {
            "karma_eval": self.evaluation.settings() if self.evaluation.tasks else None,
            "batch_stats": None if self.stats.disabled is None else {"disabled": self.stats.disabled},
            **self.facts,
        }

    @property
    def provenance(self) -> dict[str, Any] | None:
        return self.provenance_cb.provenance

    @property
    def eval_files(self) -> list[Path]:
        return self.evaluation.eval_files

    def attach(self, trainer: Any) -> KarmaCallback:
        """Register on ``trainer`` ahead of the reporting callbacks and bind its prepared dataset.

        The prepared train dataset still holds the ``kinship``/model columns, index-aligned with
        what the dataloader reads, so the batch statistics are exact; running before the
        printer/reporters puts the ``karma/*`` metrics into their output too.
        """
        handler = trainer.callback_handler
        if self in handler.callbacks:
            handler.callbacks.remove(self)
        handler.callbacks.insert(1 if handler.callbacks else 0, self)
        self.stats.trainer_dataset = trainer.train_dataset
        return self

    def _dispatch(self, event: str, args, state, control, **kwargs):
        # statistics must be set up before provenance records their state
        parts = (self.stats, self.provenance_cb, self.evaluation) if event == "on_train_begin" else self.parts
        for part in parts:
            control = getattr(part, event)(args, state, control, **kwargs) or control
        return control

    def on_train_begin(self, args, state, control, **kwargs):
        return self._dispatch("on_train_begin", args, state, control, **kwargs)

    def on_step_end(self, args, state, control, **kwargs):
        return self._dispatch("on_step_end", args, state, control, **kwargs)

    def on_log(self, args, state, control, **kwargs):
        return self._dispatch("on_log", args, state, control, **kwargs)

    def on_save(self, args, state, control, **kwargs):
        return self._dispatch("on_save", args, state, control, **kwargs)

    def on_train_end(self, args, state, control, **kwargs):
        # totals first, so the card written at train end carries them
        for part in (self.stats, self.provenance_cb, self.evaluation):
            control = part.on_train_end(args, state, control, **kwargs) or control
        return control

    def finalize(self, output_dir: str | Path, *, is_main_process: bool = True) -> list[Path]:
        """After ``trainer.save_model(output_dir)``: card section, batch stats, karma eval.

        Returns the lm-eval results files written (empty without ``eval_tasks``). Call it on
        every process; only the main one writes.
        """
        if not is_main_process:
            return []
        out = Path(output_dir)
        self.stats.write(out)
        self.provenance_cb.write_card(out, create=True)
        return self.evaluation.evaluate(out, out / EVAL_DIR)
