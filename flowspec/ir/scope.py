"""The limits of lowering and the scope it lowers statements in."""

from __future__ import annotations

from collections import ChainMap
from dataclasses import dataclass

from flowspec.core.spans import Span

#: the most block instances one flow may unroll to
MAX_NODES = 10_000
#: the most ``repeat`` iterations one flow may run, blocks or not (nested empty
#: repeats would otherwise spin for ever without creating a node)
MAX_ITERATIONS = 100_000
#: the words of ``direction``
DIRECTIONS = ("normalizing", "generative")
#: the deepest chain of ``block`` calls (a block calling a block calling ...)
MAX_BLOCK_DEPTH = 50


class _Abort(Exception):
    """Stop lowering this flow (the diagnostic is already recorded)."""


@dataclass
class _Scope:
    tensors: dict[str, str]  # name → current tensor id
    consts: ChainMap  # name → value
    device: tuple[str, Span] | None
    stack: tuple[tuple[str, Span], ...]  # block calls being expanded


__all__ = ["DIRECTIONS", "MAX_BLOCK_DEPTH", "MAX_ITERATIONS", "MAX_NODES"]
