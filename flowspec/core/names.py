"""The one name resolver's "did you mean": similarity ≥ 0.75, at most two candidates."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: the similarity a candidate needs
CUTOFF = 0.75


def close_matches(word: str, candidates: Iterable[str], n: int = 2) -> list[str]:
    # a ratio is at most 2·min(len) / (sum of lengths): candidates of very different
    # length cannot match, and dropping them first keeps a megabyte-long word cheap
    near = [c for c in candidates if 2 * min(len(c), len(word)) >= CUTOFF * (len(c) + len(word))]
    if not near:
        return []
    return difflib.get_close_matches(word, near, n=n, cutoff=CUTOFF)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A hint such as "did you mean `repeat`?", or None when nothing is near."""
    near = close_matches(word, candidates)
    if not near:
        return None
    return "did you mean " + " or ".join(f"`{c}`" for c in near) + "?"


def visible(text: str, limit: int | None = None) -> str:
    """``text`` as a message may quote it: cut to ``limit`` characters (with "…"), and
    every invisible character written as its code point, ``<U+200B>``.

    Invisible is what :meth:`str.isprintable` rejects: controls (NUL, ``\\r``), format
    characters (zero-width space, U+202E right-to-left override), separators other
    than the ASCII space (NBSP, U+2028), private-use and unassigned code points.
    """
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else f"<{code_point(ch)}>" for ch in text)


def code_point(ch: str) -> str:
    """``U+0000``: how a message names a character."""
    return f"U+{ord(ch):04X}"
