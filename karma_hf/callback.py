"""``KarmaCallback``: ties a TRL/transformers training run to the KARMA set it trains on.

Usable on its own with any ``transformers.Trainer`` (TRL's ``SFTTrainer``, ``DPOTrainer``...)::

    from karma_hf.callback import KarmaCallback
    cb = KarmaCallback(dataset_name="me/uf-karma", dataset_config="sim", eval_tasks=["karma"])
    trainer = DPOTrainer(model=..., args=..., train_dataset=ds, callbacks=[cb])
    cb.attach(trainer)          # optional: exact per-batch kinship statistics, metrics in TRL's logs
    trainer.train(); trainer.save_model()
    cb.finalize(trainer.args.output_dir)   # model-card section + karma eval of the saved model

What it does (all files are written by the main process only, ``state.is_world_process_zero``):

* **train start**: ``OUTPUT_DIR/karma_provenance.json`` — dataset repo or folder, config (the
  KARMA mode), requested and resolved revision, content fingerprint, τ and the origin-model score
  table read from the set's ``build_report.json`` / dataset card, package and library versions,
  world size, and the full resolved training config.
* **every logging step**: kinship statistics of the rows in the batches seen since the last log
  (``karma/kinship_mean``, ``karma/rows``, ``karma/pair_share/<chosen>><rejected>`` for the most
  frequent pairs), gathered over all processes and written next to TRL's ``rewards/*`` metrics
  (in ``trainer.state.log_history``; reporters and the console see them when the callback runs
  before them, which :meth:`attach` arranges). Rows are identified by dataset index: the
  callback records the indices each batch is fetched with and looks ``kinship``,
  ``chosen_model`` and ``rejected_model`` up in a per-index table built from the trainer's
  prepared train dataset (so TRL dropping unused columns does not matter). Needs
  ``dataloader_num_workers=0`` (the default) and no packing; otherwise the statistics are off and
  the reason is logged once and recorded in ``karma_batch_stats.json``.
* **save / finalize**: a "KARMA provenance" section (same facts) in the model card
  ``OUTPUT_DIR/README.md``, run totals in ``OUTPUT_DIR/karma_batch_stats.json``.
* **evaluation** (``eval_tasks`` set): lm-eval on the saved model through
  :func:`karma_hf.evaluate.evaluate_model`, standard results files under
  ``OUTPUT_DIR/karma_eval/`` (read them with ``karma_hf.scores.load_scores``); with
  ``eval_on_save`` each checkpoint too, under ``OUTPUT_DIR/karma_eval_checkpoints/checkpoint-N/``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from karma_hf.errors import KarmaError
from karma_hf.karma_set import dataset_provenance, is_local

logger = logging.getLogger(__name__)

PROVENANCE_FILE = "karma_provenance.json"
BATCH_STATS_FILE = "karma_batch_stats.json"
EVAL_DIR = "karma_eval"
CKPT_EVAL_DIR = "karma_eval_checkpoints"
META_COLUMNS = ("kinship", "chosen_model", "rejected_model")
CARD_BEGIN = "<!-- karma-provenance:begin -->"
CARD_END = "<!-- karma-provenance:end -->"
VERSIONED = ("karma-hf", "torch", "transformers", "trl", "datasets", "accelerate", "peft",
             "lm-eval", "huggingface-hub", "deepspeed")
# Launcher variables a child lm-eval process must not inherit (it would try to join the job).
_DIST_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK",
             "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "GROUP_WORLD_SIZE")


# ====================================================================== dataset provenance
def library_versions() -> dict[str, str | None]:
    """Installed versions of the packages a run depends on (``None`` = not installed)."""
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


# ====================================================================== batch statistics
@dataclass
class _PairStats:
    rows: int = 0
    kinship_sum: float = 0.0
    pairs: Counter = field(default_factory=Counter)

    def add(self, other: _PairStats) -> None:
        self.rows += other.rows
        self.kinship_sum += other.kinship_sum
        self.pairs.update(other.pairs)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "kinship_sum": self.kinship_sum, "pairs": dict(self.pairs)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> _PairStats:
        return cls(int(d["rows"]), float(d["kinship_sum"]), Counter(d["pairs"]))


def _gather(obj: Any) -> list[Any]:
    """All processes' ``obj`` (just ``[obj]`` outside torch.distributed)."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return [obj]
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


# ====================================================================== the callback
class KarmaCallback(TrainerCallback):
    """Provenance, kinship statistics, model-card section and karma evaluation for a run.

    Args:
        dataset_name: Hub dataset id or local folder of the KARMA set.
        dataset_config: the config (KARMA mode: ``score``, ``sim``, ``score_sim``, ``rlaif``).
        dataset_revision: the revision asked for (the resolved commit is recorded too).
        train_dataset: the dataset given to the trainer (fingerprint, row count, and the
            per-index metadata table when :meth:`attach` is not used).
        run_config: extra resolved configuration to record (e.g. the script/model/karma
            arguments of ``karma train``); the trainer's ``args`` are always recorded.
        eval_tasks: karma lm-eval tasks or groups to run on the saved model (``None`` = none).
        eval_limit: lm-eval ``--limit`` (items per task, or a fraction below 1).
        eval_on_save: also evaluate every checkpoint when it is saved.
        eval_at_train_end: evaluate the final checkpoint at train end when one was saved
            (``karma train`` instead calls :meth:`finalize` after ``save_model``).
        eval_batch_size / eval_apply_chat_template / eval_extra_args: passed to
            :func:`karma_hf.evaluate.evaluate_model`.
        top_pairs: how many model pairs get their own ``karma/pair_share/...`` metric per log.
    """

    def __init__(self, dataset_name: str | None = None, dataset_config: str | None = None, *,
                 dataset_revision: str | None = None, train_dataset: Any = None,
                 run_config: Mapping[str, Any] | None = None,
                 eval_tasks: Sequence[str] | None = None, eval_limit: float | None = None,
                 eval_on_save: bool = False, eval_at_train_end: bool = True,
                 eval_batch_size: int | str = 1, eval_apply_chat_template: bool = True,
                 eval_extra_args: Sequence[str] = (), top_pairs: int = 8) -> None:
        self.dataset_name = dataset_name
        self.dataset_config = dataset_config
        self.dataset_revision = dataset_revision
        self.train_dataset = train_dataset
        self.run_config = dict(run_config or {})
        self.eval_tasks = list(eval_tasks) if eval_tasks else []
        self.eval_limit = eval_limit
        self.eval_on_save = eval_on_save
        self.eval_at_train_end = eval_at_train_end
        self.eval_batch_size = eval_batch_size
        self.eval_apply_chat_template = eval_apply_chat_template
        self.eval_extra_args = tuple(eval_extra_args)
        self.top_pairs = top_pairs
        self.provenance: dict[str, Any] | None = None
        self.eval_files: list[Path] = []
        self._trainer_dataset: Any = None
        self._meta: tuple[list[float], list[str], list[str]] | None = None
        self._stats_off: str | None = None
        self._fetched: deque[list[int]] = deque()
        self._window = _PairStats()
        self._total = _PairStats()
        self._evaluated: set[str] = set()

    # ------------------------------------------------------------------ wiring
    def attach(self, trainer: Any) -> KarmaCallback:
        """Register on ``trainer`` ahead of the reporting callbacks and bind its prepared dataset.

        The prepared train dataset still holds the ``kinship``/model columns, index-aligned
        with what the dataloader reads, so the batch statistics are exact; running before the
        printer/reporters puts the ``karma/*`` metrics into their output too.
        """
        handler = trainer.callback_handler
        if self in handler.callbacks:
            handler.callbacks.remove(self)
        handler.callbacks.insert(1 if handler.callbacks else 0, self)
        self._trainer_dataset = trainer.train_dataset
        return self

    # ------------------------------------------------------------------ train start
    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self._setup_batch_recording(args, train_dataloader)
        self.provenance = self._build_provenance(args, state)
        if state.is_world_process_zero:
            out = Path(args.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / PROVENANCE_FILE).write_text(json.dumps(self.provenance, indent=2, sort_keys=True,
                                                          default=str) + "\n", encoding="utf-8")
        return control

    def _build_provenance(self, args, state) -> dict[str, Any]:
        from karma_hf import __version__

        dataset = (dataset_provenance(self.dataset_name, self.dataset_config, self.dataset_revision,
                                      self.train_dataset)
                   if self.dataset_name else {"notes": ["no dataset_name given to KarmaCallback"]})
        return {
            "karma_hf_version": __version__,
            "stage": _stage_of(args),
            "dataset": dataset,
            "versions": library_versions(),
            "world_size": args.world_size,
            "resumed_from_step": state.global_step or 0,
            "training_args": json.loads(args.to_json_string()),
            "run_config": self.run_config,
            "karma_eval": {"tasks": self.eval_tasks, "limit": self.eval_limit,
                           "on_save": self.eval_on_save} if self.eval_tasks else None,
            "batch_stats": None if self._stats_off is None else {"disabled": self._stats_off},
        }

    def _setup_batch_recording(self, args, dataloader) -> None:
        self._fetched.clear()
        self._meta, self._stats_off = None, None
        ds = getattr(dataloader, "dataset", None)
        if args.dataloader_num_workers:
            self._stats_off = "dataloader_num_workers > 0 (indices are fetched in worker processes)"
        elif ds is None or not hasattr(ds, "__getitems__") or not hasattr(ds, "column_names"):
            self._stats_off = "the train dataloader does not read a datasets.Dataset"
        elif getattr(args, "packing", False):
            self._stats_off = "packing merges rows, so batches have no per-row metadata"
        else:
            source = next((d for d in (ds, self._trainer_dataset, self.train_dataset)
                           if d is not None and all(c in getattr(d, "column_names", ()) for c in META_COLUMNS)),
                          None)
            if source is None:
                self._stats_off = f"no dataset with columns {', '.join(META_COLUMNS)}"
            elif len(source) != len(ds):
                self._stats_off = (f"the trainer kept {len(ds)} of {len(source)} rows; pass the trainer "
                                   "to KarmaCallback.attach() for an exact index table")
            else:
                cols = source.select_columns(list(META_COLUMNS))[:]
                self._meta = ([float(k) for k in cols["kinship"]], list(cols["chosen_model"]),
                              list(cols["rejected_model"]))
                original = type(ds).__getitems__
                fetched = self._fetched

                def recording_getitems(keys, _ds=ds, _orig=original):
                    fetched.append([int(k) for k in keys])
                    return _orig(_ds, keys)

                ds.__getitems__ = recording_getitems  # instance attribute; torch's fetcher calls it
        if self._stats_off:
            logger.warning("karma batch statistics are off: %s", self._stats_off)

    # ------------------------------------------------------------------ per step / log
    def on_step_end(self, args, state, control, **kwargs):
        if self._meta is None:
            return control
        kin, chosen, rejected = self._meta
        for _ in range(min(args.gradient_accumulation_steps, len(self._fetched))):
            for i in self._fetched.popleft():
                self._window.rows += 1
                self._window.kinship_sum += kin[i]
                self._window.pairs[f"{chosen[i]}>{rejected[i]}"] += 1
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs or self._stats_off is not None:
            return control
        window = _PairStats()
        for part in _gather(self._window.to_dict()):
            window.add(_PairStats.from_dict(part))
        self._total.add(window)
        self._window = _PairStats()
        if window.rows == 0:
            return control
        extra: dict[str, float] = {"karma/kinship_mean": round(window.kinship_sum / window.rows, 6),
                                   "karma/rows": float(window.rows)}
        for pair, n in sorted(window.pairs.items(), key=lambda kv: (-kv[1], kv[0]))[: self.top_pairs]:
            extra[f"karma/pair_share/{pair}"] = round(n / window.rows, 6)
        logs.update(extra)
        if state.log_history and state.log_history[-1].get("step") == state.global_step:
            state.log_history[-1].update(extra)
        return control

    # ------------------------------------------------------------------ save / end
    def on_save(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return control
        self._write_card_section(Path(args.output_dir), only_if_exists=True)
        if self.eval_tasks and self.eval_on_save:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                self._evaluate(ckpt, Path(args.output_dir) / CKPT_EVAL_DIR / ckpt.name)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return control
        out = Path(args.output_dir)
        self._write_batch_stats(out)
        self._write_card_section(out, only_if_exists=True)
        final_ckpt = out / f"checkpoint-{state.global_step}"
        if self.eval_tasks and self.eval_at_train_end and final_ckpt.is_dir():
            self._evaluate(final_ckpt, out / EVAL_DIR)
        return control

    def finalize(self, output_dir: str | Path, *, is_main_process: bool = True) -> list[Path]:
        """After ``trainer.save_model(output_dir)``: card section, batch stats, karma eval.

        Returns the lm-eval results files written (empty without ``eval_tasks``). Call it on
        every process; only the main one writes.
        """
        if not is_main_process:
            return []
        out = Path(output_dir)
        self._write_batch_stats(out)
        self._write_card_section(out, only_if_exists=False)
        if self.eval_tasks:
            return self._evaluate(out, out / EVAL_DIR)
        return []

    def _write_batch_stats(self, out: Path) -> None:
        total = self._total
        body = {"disabled": self._stats_off, "rows": total.rows,
                "kinship_mean": (total.kinship_sum / total.rows) if total.rows else None,
                "pair_counts": dict(sorted(total.pairs.items(), key=lambda kv: (-kv[1], kv[0])))}
        out.mkdir(parents=True, exist_ok=True)
        (out / BATCH_STATS_FILE).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")

    # ------------------------------------------------------------------ model card
    def card_section(self) -> str:
        """The markdown section added to the model card (also usable on its own)."""
        p = self.provenance or {}
        d = p.get("dataset") or {}
        v = p.get("versions") or {}
        name = d.get("name") or self.dataset_name
        lines = [CARD_BEGIN, "## KARMA provenance", "",
                 f"Trained with `karma-hf` {p.get('karma_hf_version', '')} ({p.get('stage') or 'trainer'}) on the "
                 f"KARMA preference set **{name}**, config/mode **`{d.get('config') or self.dataset_config}`**.", "",
                 "| fact | value |", "| --- | --- |"]
        base = ((p.get("run_config") or {}).get("model") or {}).get("model_name_or_path")
        facts = [("base model", base), ("dataset", name), ("mode", d.get("config")), ("revision", d.get("revision")),
                 ("resolved revision", d.get("resolved_revision")),
                 ("content sha256", d.get("content_sha256")), ("fingerprint", d.get("fingerprint")),
                 ("train rows", d.get("num_train_rows")), ("tau", d.get("tau")),
                 ("world size", p.get("world_size")),
                 ("versions", ", ".join(f"{k} {val}" for k, val in v.items() if val))]
        lines += [f"| {k} | {'' if val is None else f'`{val}`'} |" for k, val in facts]
        table = d.get("score_table")
        if isinstance(table, Mapping) and table.get("models") and (table.get("scores") or table.get("values")):
            lines += ["", "Origin-model score table the pairs were mapped with:", "", _score_markdown(table)]
        elif isinstance(table, Mapping) and table.get("source"):
            lines += ["", f"Origin-model scores: `{table['source']}`."]
        if d.get("s_pref"):
            lines += ["", "Preference score S_pref of each origin model:", "", "| model | S_pref |", "| --- | ---: |",
                      *[f"| {m} | {v:.4f} |" for m, v in sorted(d["s_pref"].items(), key=lambda kv: -kv[1])]]
        if self._total.rows:
            lines += ["", f"Batches seen: {self._total.rows} rows, mean kinship "
                          f"{self._total.kinship_sum / self._total.rows:.4f}."]
        lines += ["", f"Full record: `{PROVENANCE_FILE}`.", CARD_END]
        return "\n".join(lines)

    def _write_card_section(self, out: Path, *, only_if_exists: bool) -> None:
        from huggingface_hub import ModelCard

        path = out / "README.md"
        if not path.is_file():
            if only_if_exists:
                return
            out.mkdir(parents=True, exist_ok=True)
            path.write_text("---\n---\n\n# Model trained with karma-hf\n", encoding="utf-8")
        card = ModelCard.load(path)
        text = card.text
        if CARD_BEGIN in text and CARD_END in text:
            head, _, rest = text.partition(CARD_BEGIN)
            text = head + self.card_section() + rest.partition(CARD_END)[2]
        else:
            text = text.rstrip() + "\n\n" + self.card_section() + "\n"
        card.text = text
        tags = list(card.data.get("tags") or [])
        for tag in ("karma", "karma-hf"):
            if tag not in tags:
                tags.append(tag)
        card.data.tags = tags
        if self.dataset_name and not is_local(self.dataset_name):
            datasets = card.data.get("datasets") or []
            datasets = [datasets] if isinstance(datasets, str) else list(datasets)
            card.data.datasets = datasets + ([] if self.dataset_name in datasets else [self.dataset_name])
        card.save(path)

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, model_dir: Path, output_path: Path) -> list[Path]:
        key = str(model_dir.resolve())
        if key in self._evaluated:
            return []
        self._evaluated.add(key)
        kwargs = dict(tasks=tuple(self.eval_tasks), output_path=str(output_path), limit=self.eval_limit,
                      batch_size=self.eval_batch_size, apply_chat_template=self.eval_apply_chat_template,
                      extra_args=self.eval_extra_args)
        logger.info("karma eval of %s -> %s", model_dir, output_path)
        if _in_distributed_job():
            files = _evaluate_in_subprocess(str(model_dir), kwargs)
        else:
            from karma_hf.evaluate import evaluate_model

            files = [Path(f) for f in evaluate_model(str(model_dir), **kwargs)]
        self.eval_files.extend(files)
        return files


def _stage_of(args: Any) -> str:
    name = type(args).__name__
    return {"DPOConfig": "dpo", "SFTConfig": "sft"}.get(name, name)


def _score_markdown(table: Mapping[str, Any]) -> str:
    models, benches = list(table["models"]), list(table.get("benchmarks") or [])
    scores = table.get("scores")
    values = table.get("values")
    head = "| model | " + " | ".join(benches) + " |"
    sep = "| --- |" + " ---: |" * len(benches)
    rows = []
    for i, m in enumerate(models):
        if isinstance(scores, Mapping):
            cells = [scores.get(m, {}).get(b) for b in benches]
        elif isinstance(values, list) and i < len(values):
            cells = list(values[i])
        else:
            cells = [None] * len(benches)
        rows.append(f"| {m} | " + " | ".join("" if c is None else f"{float(c):.4g}" for c in cells) + " |")
    return "\n".join([head, sep, *rows])


def _in_distributed_job() -> bool:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return True
    except ImportError:  # pragma: no cover
        pass
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _evaluate_in_subprocess(model_dir: str, kwargs: Mapping[str, Any]) -> list[Path]:
    """Run lm-eval in a fresh single process (the launcher's rank variables removed)."""
    env = {k: v for k, v in os.environ.items() if k not in _DIST_ENV and not k.startswith("TORCHELASTIC_")}
    code = ("import json,sys; from karma_hf.evaluate import evaluate_model; "
            "a=json.loads(sys.argv[1]); a['tasks']=tuple(a['tasks']); a['extra_args']=tuple(a['extra_args']); "
            "print(json.dumps([str(p) for p in evaluate_model(sys.argv[2], **a)]))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(dict(kwargs)), model_dir],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise KarmaError(f"karma eval of {model_dir} failed: {tail}")
    return [Path(p) for p in json.loads(proc.stdout.strip().splitlines()[-1])]
