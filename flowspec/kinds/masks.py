"""Coupling masks and fixed permutations, computed without torch.

The checker (W100/W101 need to know which features a coupling transforms) and the
runtime (which builds index tensors from these lists) share these functions, so the
two can never disagree.  Indices are flat, row-major, over the shape without the
batch axis.
"""

from __future__ import annotations

import math
import random


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def transformed_indices(mask: str, flip: bool, shape: tuple[int, ...]) -> list[int]:
    """Flat indices a coupling with ``mask`` transforms; the rest condition it.

    ``half``/``channel``: the first ``d // 2`` entries of axis 0 condition, the rest are
    transformed; ``alternate``: even entries of axis 0 condition, odd are transformed;
    ``checkerboard``: over ``[C, H, W]``, positions with ``(h + w)`` even condition.
    ``flip=true`` swaps the two roles.
    """
    d = shape[0]
    inner = numel(shape[1:])
    if mask in ("half", "channel"):
        rows = range(d // 2, d)
        flat = [r * inner + k for r in rows for k in range(inner)]
    elif mask == "alternate":
        flat = [r * inner + k for r in range(1, d, 2) for k in range(inner)]
    elif mask == "checkerboard":
        _, h, w = shape
        flat = [
            c * h * w + i * w + j
            for c in range(d)
            for i in range(h)
            for j in range(w)
            if (i + j) % 2 == 1
        ]
    else:
        raise ValueError(f"unknown mask {mask}")
    if flip:
        chosen = set(flat)
        flat = [i for i in range(numel(shape)) if i not in chosen]
    return flat


def axis0_split(mask: str, flip: bool, d: int) -> tuple[list[int], list[int]]:
    """(conditioning rows, transformed rows) of axis 0 for the row masks."""
    if mask in ("half", "channel"):
        a, b = list(range(d // 2)), list(range(d // 2, d))
    elif mask == "alternate":
        a, b = list(range(0, d, 2)), list(range(1, d, 2))
    else:
        raise ValueError(f"{mask} is not a row mask")
    return (b, a) if flip else (a, b)


def shuffle_permutation(d: int, seed: int) -> list[int]:
    """The fixed permutation of ``shuffle(seed=...)``: output ``i`` is input ``perm[i]``."""
    perm = list(range(d))
    random.Random(seed).shuffle(perm)
    return perm


def random_order(d: int, seed: int) -> list[int]:
    """The autoregressive order of ``order=random(seed=...)``."""
    return shuffle_permutation(d, seed)
