"""Rows and scores the ``h4`` recipe of the ``rlaif`` baseline needs beyond the parsed columns.

``HuggingFaceH4/ultrafeedback_binarized`` drops TruthfulQA before binarizing: every row whose
``source`` is ``truthful_qa``, and every row whose instruction equals a TruthfulQA question (copies
of TruthfulQA inside other sources; H4 matches against the ``generation`` and
``multiple_choice`` validation questions of ``truthful_qa``). karma-hf ships no TruthfulQA copy
and reads nothing from the network for it, so the second filter needs a question file
(``--truthfulqa-questions``): one question per line, or a ``.jsonl`` / ``.csv`` / ``.parquet``
file with a ``question`` column. Matching is exact after whitespace normalisation (runs of
whitespace become one space, ends trimmed, on both sides); H4 matched the raw strings, our choice
also catches copies that differ only in spacing or a trailing newline.

The source label and the prompt come from the source's ``texts`` (the one place that knows the
source's columns), so any registered source with a per-row label works.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from karma_hf.errors import KarmaError
from karma_hf.pairs.decide import STATUS

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from karma_hf.sources.registry import SourceSchema

#: Source labels the ``h4`` recipe drops (``excluded_source``).
EXCLUDED_LABELS: tuple[str, ...] = ("truthful_qa",)


def normalise(values: pa.Array) -> pa.Array:
    """Whitespace-normalised strings: runs of (Unicode) whitespace -> one space, ends trimmed."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = values.cast(pa.string())
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(text, pattern=r"[\s\p{Z}]+", replacement=" "))


def read_questions(path: str | Path) -> list[str]:
    """The questions of a TruthfulQA question file, in file order, blank ones skipped."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise KarmaError(f"--truthfulqa-questions: no such file: {path}")
    suffix = file.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(file)
            if "question" not in table.column_names:
                raise KarmaError(f"--truthfulqa-questions {file.name}: no 'question' column ({table.column_names})")
            raw = table.column("question").to_pylist()
        elif suffix in (".jsonl", ".json"):
            raw = []
            for i, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                record = json.loads(line)
                if not isinstance(record, dict) or "question" not in record:
                    raise KarmaError(f"--truthfulqa-questions {file.name}: line {i} has no 'question' field")
                raw.append(record["question"])
        elif suffix == ".csv":
            with file.open(encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(fh)
                if "question" not in (reader.fieldnames or []):
                    raise KarmaError(f"--truthfulqa-questions {file.name}: no 'question' column")
                raw = [r["question"] for r in reader]
        else:
            raw = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as exc:
        raise KarmaError(f"--truthfulqa-questions {file.name}: cannot read it ({exc})") from exc
    questions = [q for q in raw if isinstance(q, str) and q.strip()]
    if not questions:
        raise KarmaError(f"--truthfulqa-questions {file.name}: holds no questions")
    return questions


def row_exclusions(table: pa.Table, source: SourceSchema, questions: list[str] | None, batch_size: int) -> np.ndarray:
    """Per source row: 0, ``STATUS["excluded_source"]`` (label ``truthful_qa``) or
    ``STATUS["truthfulqa_copy"]`` (instruction in ``questions``), in source order."""
    question_set = question_values(questions)
    table = table.select([c for c in source.text_columns if c in table.column_names])
    parts = [batch_exclusions(batch, source, question_set) for batch in table.to_batches(max_chunksize=batch_size)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int8)


def question_values(questions: list[str] | None) -> pa.Array | None:
    """The normalised distinct ``questions`` (what :func:`batch_exclusions` matches against)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not questions:
        return None
    return pc.unique(normalise(pa.array(questions, type=pa.string())))


def batch_exclusions(batch: pa.RecordBatch, source: SourceSchema, question_set: pa.Array | None) -> np.ndarray:
    """:func:`row_exclusions` of one batch (``question_set``: :func:`question_values`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = np.zeros(batch.num_rows, dtype=np.int8)
    texts = source.texts(batch)
    if question_set is not None and len(question_set):
        copy = pc.is_in(normalise(texts.prompt), value_set=question_set).fill_null(False)
        out[np.asarray(copy.to_numpy(zero_copy_only=False), dtype=bool)] = STATUS["truthfulqa_copy"]
    if texts.label is not None:
        labelled = pc.is_in(texts.label.cast(pa.string()), value_set=pa.array(EXCLUDED_LABELS)).fill_null(False)
        out[np.asarray(labelled.to_numpy(zero_copy_only=False), dtype=bool)] = STATUS["excluded_source"]
    return out


def overall_scores(table: pa.Table, source: SourceSchema, batch_size: int) -> np.ndarray:
    """Per completion (rows concatenated, as :class:`~karma_hf.pairs.decide.Rows`): the source's
    ``overall_score`` rating, NaN where null or not a number."""
    from karma_hf.sources.registry import completion_ratings

    check_overall_score(source)
    parts = [
        completion_ratings(source, rb, "overall_score")
        for rb in table.to_batches(max_chunksize=batch_size)
        if rb.num_rows
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)


def check_overall_score(source: SourceSchema) -> None:
    """The ``h4`` recipe ranks by ``overall_score``: a source without one is an error."""
    if "overall_score" not in source.rating_methods:
        raise KarmaError(
            f"--rlaif-recipe h4 needs an overall_score rating, which {source.name} sources do not have; "
            "use --rlaif-recipe argilla"
        )
