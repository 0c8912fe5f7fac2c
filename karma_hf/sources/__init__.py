"""Response-dataset schemas ("sources"): one module per schema, found through a registry.

A source module parses rows of its dataset into the builder's common columns and hands the
writer the texts of a batch; nothing else in karma-hf knows a source's column names. Built-in:
:mod:`~karma_hf.sources.ultrafeedback`, :mod:`~karma_hf.sources.generated` (what ``karma generate``
writes), :mod:`~karma_hf.sources.nectar`, :mod:`~karma_hf.sources.arena` and
:mod:`~karma_hf.sources.openhermes` (shared helpers: :mod:`~karma_hf.sources.messages`). Add one with
:func:`karma_hf.sources.registry.register_source`.
"""

from karma_hf.sources.registry import (
    SourceSchema,
    SourceTexts,
    detect_source,
    get_source,
    parsed_schema,
    register_source,
    source_names,
    unregister_source,
)

__all__ = [
    "SourceSchema",
    "SourceTexts",
    "detect_source",
    "get_source",
    "parsed_schema",
    "register_source",
    "source_names",
    "unregister_source",
]
