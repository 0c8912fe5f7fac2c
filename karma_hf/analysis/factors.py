"""Surface factors of a response, in the spirit of PROFILE (factor-level preference analysis).

Each factor is a count computed with plain regular expressions (no tokenizer download, no
model), so it runs offline and fast on hundreds of thousands of responses. Comparing the
factors of chosen and rejected responses shows what a preference set rewards: if chosen
responses are almost always longer, a model trained on it learns "longer wins" rather than
"better wins".

Factors (all integers >= 0):

``words``        whitespace-separated words.
``tokens``       a tokenizer-free approximation of subword tokens: runs of letters/digits
                 plus each punctuation mark (``\\w+|[^\\w\\s]``).
``list_items``   lines starting with ``-``, ``*``, ``+``, ``•`` or ``1.`` / ``1)`` (outside code blocks).
``headers``      Markdown headers: ``# ...`` to ``###### ...`` lines and setext headers
                 (a text line underlined by ``===`` or ``---``), outside code blocks.
``code_blocks``  fenced code blocks (```` ``` ```` or ``~~~``); an unclosed fence counts as one.
``bold``         bold spans ``**...**`` / ``__...__`` (outside code blocks).
``refusals``     refusal phrases ("I'm sorry, but I cannot", "as an AI language model", ...).
``hedges``       hedging phrases ("might", "it depends", "I'm not sure", "generally", ...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

FACTORS: tuple[str, ...] = ("words", "tokens", "list_items", "headers", "code_blocks", "bold", "refusals", "hedges")

FACTOR_LABELS: dict[str, str] = {
    "words": "length (words)",
    "tokens": "length (tokens)",
    "list_items": "list items",
    "headers": "headers",
    "code_blocks": "code blocks",
    "bold": "bold spans",
    "refusals": "refusal phrases",
    "hedges": "hedging phrases",
}

_TOKEN = re.compile(r"\w+|[^\w\s]")
_FENCE = re.compile(r"^[ \t]{0,3}(```|~~~)", re.MULTILINE)
_FENCED_BLOCK = re.compile(r"^[ \t]{0,3}(```|~~~)[^\n]*\n.*?(?:^[ \t]{0,3}\1[ \t]*$|\Z)", re.MULTILINE | re.DOTALL)
_LIST_ITEM = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+\S", re.MULTILINE)
_ATX = re.compile(r"^[ \t]{0,3}#{1,6}[ \t]+\S", re.MULTILINE)
_SETEXT = re.compile(r"^[ \t]{0,3}[^\s#>*+-].*\n[ \t]{0,3}(?:=+|-{2,})[ \t]*$", re.MULTILINE)
_BOLD = re.compile(r"\*\*(?=\S)[^\n]+?(?<=\S)\*\*|__(?=\S)[^\n]+?(?<=\S)__")
_REFUSAL = re.compile(
    r"\b(?:(?:i(?:'|’)m sorry|i am sorry|i apologi[sz]e),? but|"
    r"i (?:cannot|can(?:'|’)t|am unable to|(?:'|’)m unable to|"
    r"am not able to|(?:'|’)m not able to|won(?:'|’)t be able to) "
    r"(?:help|assist|answer|provide|fulfill|comply|do that)|"
    r"as an ai(?: language model)?|as a responsible ai|it is not appropriate for me|"
    r"i must (?:point out|decline))",
    re.IGNORECASE,
)
_HEDGE = re.compile(
    r"\b(?:might|may|perhaps|possibly|probably|likely|it depends|depends on|generally(?: speaking)?|"
    r"i(?:'|’)m not (?:entirely )?sure|i am not (?:entirely )?sure|not entirely sure|could be|"
    r"it is important to note|it(?:'|’)s important to note|in some cases|to some extent|typically|"
    r"confidence: \d{1,3}%)\b",
    re.IGNORECASE,
)


def _strip_code(text: str) -> str:
    return _FENCED_BLOCK.sub("\n", text)


def factors_of(text: str | None) -> dict[str, int]:
    """All factors of one response (``None`` counts as the empty string)."""
    text = text or ""
    prose = _strip_code(text)
    fences = len(_FENCE.findall(text))
    return {
        "words": len(text.split()),
        "tokens": len(_TOKEN.findall(text)),
        "list_items": len(_LIST_ITEM.findall(prose)),
        "headers": len(_ATX.findall(prose)) + len(_SETEXT.findall(prose)),
        "code_blocks": (fences + 1) // 2,
        "bold": len(_BOLD.findall(prose)),
        "refusals": len(_REFUSAL.findall(prose)),
        "hedges": len(_HEDGE.findall(prose)),
    }


def factor_arrays(texts: Iterable[str | None]) -> dict[str, np.ndarray]:
    """Factors of many responses, one int64 array per factor (same order as ``texts``)."""
    rows = [factors_of(t) for t in texts]
    return {f: np.fromiter((r[f] for r in rows), dtype=np.int64, count=len(rows)) for f in FACTORS}


def compare(chosen: dict[str, np.ndarray], rejected: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Chosen-vs-rejected statistics per factor.

    For each factor: ``mean_chosen``, ``mean_rejected``, ``mean_diff`` (chosen - rejected),
    ``share_chosen_more`` / ``share_equal`` / ``share_chosen_less`` (fractions of pairs; they
    sum to 1) and ``n`` pairs. Shares are ``nan`` when there are no pairs.
    """
    out: dict[str, dict[str, float]] = {}
    for f in FACTORS:
        c = np.asarray(chosen[f], dtype=np.float64)
        r = np.asarray(rejected[f], dtype=np.float64)
        n = int(c.size)
        if n == 0:
            nan = float("nan")
            out[f] = dict(
                n=0,
                mean_chosen=nan,
                mean_rejected=nan,
                mean_diff=nan,
                share_chosen_more=nan,
                share_equal=nan,
                share_chosen_less=nan,
            )
            continue
        out[f] = dict(
            n=n,
            mean_chosen=float(c.mean()),
            mean_rejected=float(r.mean()),
            mean_diff=float((c - r).mean()),
            share_chosen_more=float((c > r).mean()),
            share_equal=float((c == r).mean()),
            share_chosen_less=float((c < r).mean()),
        )
    return out


def last_assistant_text(messages: Sequence[dict] | str | None) -> str:
    """The content of the last assistant message of a conversational column value.

    Accepts a plain string too (standard, non-conversational datasets).
    """
    if messages is None:
        return ""
    if isinstance(messages, str):
        return messages
    for m in reversed(list(messages)):
        if m.get("role") == "assistant":
            return m.get("content") or ""
    return (messages[-1].get("content") or "") if len(messages) else ""
