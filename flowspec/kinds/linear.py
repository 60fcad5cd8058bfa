"""Learned invertible linear maps: linear (dense) and invconv (1×1 convolution).

Both from Glow (Kingma, Dhariwal 2018, arXiv:1807.03039), optionally LU-parametrised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowspec.kinds.base import (
    _R,
    BlockKind,
    Example,
    Opts,
    Shape,
    _flat_only,
    _rank,
    unbounded_both,
)
from flowspec.kinds.options import Bool, Option


def _image_shape_kept(what: str):
    """The shape rule of a block on one ``[C, H, W]`` tensor that keeps its shape."""

    def rule(opts, shapes):
        _rank(shapes[0], 3, what)
        return [shapes[0]]

    return rule


def _matrix(opts, shapes) -> int:
    """A d×d matrix on axis 0: with ``lu=true`` a unit lower and an upper triangle
    (stored as full d×d parameters, masked) and log|s| of the diagonal, 2d² + d."""
    d = shapes[0][0]
    return 2 * d * d + d if opts["lu"] else d * d


def _no_half_solve(opts: Opts, dtype: str, eps: float) -> str | None:
    """Both parametrisations invert through an LU factorisation or triangular solves,
    which torch implements in single and double precision only on the CPU."""
    return (
        "its inverse solves triangular systems (torch.linalg.solve_triangular and the LU "
        f"factorisation have no {dtype} kernel on the CPU)"
    )


def _matrix_kind(
    name: str,
    summary: str,
    shape: Callable[[Opts, list[Shape]], list[Shape]],
    runtime: str,
    **fields: Any,
) -> BlockKind:
    """Both kinds: Glow's learned invertible matrix on axis 0 (``lu``), inverted by
    solves; they differ in the shape they take and in what the reference says."""
    lipschitz, inverse_lipschitz = unbounded_both(
        "its learned matrix has no bound on its spectral norm"
    )
    return BlockKind(
        name,
        summary,
        "Kingma, Dhariwal 2018, Glow, arXiv:1807.03039",
        (Option("lu", Bool(), True),),
        shape,
        runtime,
        parameters=_matrix,
        inverse="analytic",
        logdet="analytic",
        lipschitz=lipschitz,
        inverse_lipschitz=inverse_lipschitz,
        low_precision=_no_half_solve,
        **fields,
    )


ENTRIES: tuple[BlockKind, ...] = (
    _matrix_kind(
        "linear",
        "dense invertible matrix, LU-parametrised",
        _flat_only("linear"),
        f"{_R}.linear:Linear",
        math=(
            "y = W·x, W a learned invertible d×d matrix (LU-parametrised with `lu=true`); ladj = "
            "log|det W|"
        ),
        shape_doc="[d] → [d]",
        examples=(Example(((4,),)), Example(((4,),), {"lu": False})),
    ),
    _matrix_kind(
        "invconv",
        "Glow's invertible 1×1 convolution over channels",
        _image_shape_kept("invconv"),
        f"{_R}.linear:InvConv",
        math="y[:, h, w] = W·x[:, h, w], W a learned invertible C×C matrix; ladj = H·W·log|det W|",
        shape_doc="[C, H, W] → [C, H, W]",
        examples=(Example(((3, 2, 2),)), Example(((3, 2, 2),), {"lu": False})),
    ),
)
