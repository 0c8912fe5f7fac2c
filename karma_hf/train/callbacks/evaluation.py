"""``EvalCallback``: the karma lm-eval tasks on the saved model (and optionally every checkpoint).

Results are standard lm-eval results files (read them with :func:`karma_hf.scores.load_scores`):
``OUTPUT_DIR/karma_eval/`` for the final model, ``OUTPUT_DIR/karma_eval_checkpoints/checkpoint-N/``
for checkpoints with ``on_save``. Evaluation runs lm-eval in a child process
(:func:`karma_hf.evaluation.run.evaluate_model`), never inside the training job's process group.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

EVAL_DIR = "karma_eval"
CKPT_EVAL_DIR = "karma_eval_checkpoints"


class EvalCallback(TrainerCallback):
    """Evaluate with lm-eval on the karma tasks; ``eval_files`` lists the results files written."""

    def __init__(
        self,
        tasks: Sequence[str],
        *,
        limit: float | None = None,
        on_save: bool = False,
        at_train_end: bool = True,
        batch_size: int | str = 1,
        apply_chat_template: bool = True,
        extra_args: Sequence[str] = (),
    ) -> None:
        self.tasks = list(tasks)
        self.limit = limit
        self.eval_on_save = on_save
        self.at_train_end = at_train_end
        self.batch_size = batch_size
        self.apply_chat_template = apply_chat_template
        self.extra_args = tuple(extra_args)
        self.eval_files: list[Path] = []
        self._evaluated: set[str] = set()

    def settings(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "limit": self.limit, "on_save": self.eval_on_save}

    def evaluate(self, model_dir: Path, output_path: Path) -> list[Path]:
        """lm-eval on ``model_dir`` into ``output_path`` (each model folder once)."""
        from karma_hf.evaluation.run import evaluate_model

        key = str(model_dir.resolve())
        if not self.tasks or key in self._evaluated:
            return []
        self._evaluated.add(key)
        logger.info("karma eval of %s -> %s", model_dir, output_path)
        files = [
            Path(f)
            for f in evaluate_model(
                str(model_dir),
                tasks=tuple(self.tasks),
                output_path=output_path,
                limit=self.limit,
                batch_size=self.batch_size,
                apply_chat_template=self.apply_chat_template,
                extra_args=self.extra_args,
            )
        ]
        self.eval_files.extend(files)
        return files

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero and self.eval_on_save:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                self.evaluate(ckpt, Path(args.output_dir) / CKPT_EVAL_DIR / ckpt.name)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero or not self.at_train_end:
            return control
        final = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if final.is_dir():
            self.evaluate(final, Path(args.output_dir) / EVAL_DIR)
        return control
