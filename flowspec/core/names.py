"""The one name resolver's "did you mean": similarity ≥ 0.75, at most two candidates."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(word: str, candidates: Iterable[str], n: int = 2) -> list[str]:
    return difflib.get_close_matches(word, list(candidates), n=n, cutoff=0.75)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A hint such as "did you mean `repeat`?", or None when nothing is near."""
    near = close_matches(word, candidates)
    if not near:
        return None
    return "did you mean " + " or ".join(f"`{c}`" for c in near) + "?"
