"""Paths of the data shipped inside the package (tasks, card templates, presets)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def _package_dir(name: str) -> Path:
    return Path(str(resources.files(name)))


def tasks_dir() -> Path:
    """The installed lm-eval tasks folder (``--include_path`` for ``lm_eval``)."""
    return _package_dir("karma_hf.tasks")


def hub_cards_dir() -> Path:
    """The installed dataset / model card templates."""
    return _package_dir("karma_hf.hub_cards")


def presets_dir() -> Path:
    return _package_dir("karma_hf.presets")
