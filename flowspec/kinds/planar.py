"""Planar and radial flows.

Rezende, Mohamed 2015, Variational Inference with Normalizing Flows, arXiv:1505.05770.
"""

from __future__ import annotations

from flowspec.kinds.base import _R, BlockKind, Example, _same, _unbounded
from flowspec.kinds.options import Enum, Option
from flowspec.kinds.sizes import numel

_PAPER = "Rezende, Mohamed 2015, Variational Inference with Normalizing Flows, arXiv:1505.05770"


ENTRIES: tuple[BlockKind, ...] = (
    BlockKind(
        "planar",
        "y = x + u·h(wᵀx + b), with wᵀu ≥ −1 enforced",
        _PAPER,
        (Option("act", Enum({"tanh": (), "leaky_relu": ()}, what="activation"), "tanh"),),
        _same,
        f"{_R}.planar:Planar",
        parameters=lambda opts, shapes: 2 * numel(shapes[0]) + 1,  # w, u, b
        inverse="iterative",
        logdet="analytic",
        lipschitz=_unbounded("its learned vectors u and w have no bound"),
        inverse_lipschitz=_unbounded("its learned vectors u and w have no bound"),
        math=(
            "y = x + û·h(wᵀx + b), û the learned u adjusted so that wᵀû > −1; ladj = log(1 + "
            "h′(wᵀx + b)·wᵀû); inverse: a 1-D root per sample"
        ),
        examples=(
            Example(((3,),)),
            Example(((3,),), {"act": "leaky_relu"}),
            Example(((1, 2, 2),)),
        ),
    ),
    BlockKind(
        "radial",
        "y = x + β·(x − x₀)/(α + ‖x − x₀‖), with β ≥ −α enforced",
        _PAPER,
        (),
        _same,
        f"{_R}.planar:Radial",
        parameters=lambda opts, shapes: numel(shapes[0]) + 2,  # x₀, α, β
        inverse="analytic",
        logdet="analytic",
        lipschitz=_unbounded("its learned β has no bound"),
        inverse_lipschitz=_unbounded("its learned α, β have no bound"),
        math=(
            "y = x + β·h·(x − x₀) with h = 1/(α + r), r = ‖x − x₀‖, α > 0, β ≥ −α; ladj = (d − "
            "1)·log(1 + βh) + log(1 + βh + βh′r); inverse in closed form"
        ),
        examples=(Example(((3,),)),),
    ),
)
