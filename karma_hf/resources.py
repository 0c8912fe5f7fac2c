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


def recipes_dir() -> Path:
    """The installed training recipes (``recipes/<model>/{sft,dpo}.yaml``, ``recipes/accelerate/``)."""
    return _package_dir("karma_hf.recipes")


def resolve_recipe(path: str | Path) -> Path:
    """``path`` if it exists, else the shipped recipe of that name (``recipes/tiny/dpo.yaml`` or
    ``tiny/dpo.yaml`` both work from any directory with a non-editable install)."""
    p = Path(path).expanduser()
    if p.exists():
        return p
    parts = p.parts[1:] if p.parts and p.parts[0] == "recipes" else p.parts
    shipped = recipes_dir().joinpath(*parts) if parts else recipes_dir()
    return shipped if shipped.is_file() else p
