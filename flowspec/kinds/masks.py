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
    # built from ranges (each a C-level extend), and ``flip`` as the other half of the
    # partition rather than a set difference: 16 million features take a second
    flat: list[int] = []
    if mask in ("half", "channel", "alternate"):
        if mask == "alternate":
            rows = range(0, d, 2) if flip else range(1, d, 2)
        else:
            rows = range(d // 2) if flip else range(d // 2, d)
        for r in rows:
            flat.extend(range(r * inner, (r + 1) * inner))
    elif mask == "checkerboard":
        _, h, w = shape
        for c in range(d):
            for i in range(h):
                base = (c * h + i) * w
                # (i + j) odd is transformed; flip takes (i + j) even
                flat.extend(range(base + (i % 2 if flip else 1 - i % 2), base + w, 2))
    else:
        raise ValueError(f"unknown mask {mask}")
    return flat


def axis0_split(mask: str, flip: bool, d: int) -> tuple[range, range]:
    """(conditioning rows, transformed rows) of axis 0 for the row masks (ranges, not
    lists: a coupling on 16 million features builds no 16-million-item list)."""
    if mask in ("half", "channel"):
        a, b = range(d // 2), range(d // 2, d)
    elif mask == "alternate":
        a, b = range(0, d, 2), range(1, d, 2)
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
