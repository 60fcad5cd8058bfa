"""Fixed permutations of the features (axis 0): reverse, shuffle, permute.

The permutations placed between couplings since NICE (Dinh, Krueger, Bengio 2015,
arXiv:1410.8516); Glow (Kingma, Dhariwal 2018, arXiv:1807.03039) compares reverse and
shuffle with its learned 1×1 convolution.  ``shuffle``'s permutation is
:func:`flowspec.kinds.masks.shuffle_permutation`, shared with the runtime.
"""

from __future__ import annotations

from flowspec.kinds import limits as L
from flowspec.kinds import masks
from flowspec.kinds.base import (
    _R,
    BlockKind,
    Example,
    Opts,
    Shape,
    ShapeError,
    _same,
    permutation_kind,
)
from flowspec.kinds.options import IntList, Option
from flowspec.kinds.words import SEED


def _axis0_perm_map(perm: list[int], shape: Shape) -> list[list[tuple[int, int]]]:
    inner = masks.numel(shape[1:])
    return [[(0, perm[r] * inner + k) for r in range(shape[0]) for k in range(inner)]]


def _permute_shape(opts: Opts, shapes: list[Shape]) -> list[Shape]:
    order, d = opts["order"], shapes[0][0]
    if sorted(order) != list(range(d)):
        raise ShapeError(
            f"order must be a permutation of 0..{d - 1} for {d} features, got {order}", "order"
        )
    return [shapes[0]]


ENTRIES: tuple[BlockKind, ...] = (
    permutation_kind(
        "reverse",
        "reverse the features (axis 0)",
        "",
        (),
        _same,
        f"{_R}.permute:Reverse",
        feature_map=lambda opts, shapes: _axis0_perm_map(
            list(range(shapes[0][0] - 1, -1, -1)), shapes[0]
        ),
        math="y[i] = x[d − 1 − i] along axis 0; ladj = 0; its own inverse",
        examples=(Example(((5,),)), Example(((3, 2, 2),))),
    ),
    permutation_kind(
        "shuffle",
        "a fixed random permutation of the features",
        "",
        (Option("seed", SEED, 0),),
        _same,
        f"{_R}.permute:Shuffle",
        feature_map=lambda opts, shapes: _axis0_perm_map(
            masks.shuffle_permutation(shapes[0][0], opts["seed"]), shapes[0]
        ),
        math="y[i] = x[π(i)] along axis 0, π a fixed permutation drawn from `seed`; ladj = 0",
        examples=(Example(((6,),), {"seed": 4}),),
    ),
    permutation_kind(
        "permute",
        "an explicit permutation of the features",
        "",
        (
            Option(
                "order",
                IntList(1, L.MAX_FEATURES, 0, L.MAX_FEATURES - 1, item="index", items="indices"),
                None,
                required=True,
            ),
        ),
        _permute_shape,
        f"{_R}.permute:Permute",
        feature_map=lambda opts, shapes: _axis0_perm_map(opts["order"], shapes[0]),
        math="y[i] = x[order[i]] along axis 0; ladj = 0",
        shape_doc=(
            "output shape = input shape; `order` is a permutation of 0 … d − 1 for the d entries "
            "of axis 0"
        ),
        examples=(Example(((4,),), {"order": [2, 0, 3, 1]}),),
    ),
)
