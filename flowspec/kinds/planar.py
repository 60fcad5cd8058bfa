"""Planar and radial flows.

Rezende, Mohamed 2015, Variational Inference with Normalizing Flows, arXiv:1505.05770.
"""

from __future__ import annotations

from flowspec.kinds.base import _R, BlockKind, Example, _same, _unbounded
from flowspec.kinds.options import Enum, Option

ENTRIES: tuple[BlockKind, ...] = (
    BlockKind(
        "planar",
        "y = x + u·h(wᵀx + b), with wᵀu ≥ −1 enforced",
        "Rezende, Mohamed 2015, Variational Inference with Normalizing Flows, arXiv:1505.05770",
        (Option("act", Enum({"tanh": (), "leaky_relu": ()}, what="activation"), "tanh"),),
        _same,
        f"{_R}.planar:Planar",
        inverse="iterative",
        logdet="analytic",
        lipschitz=_unbounded("its learned vectors u and w have no bound"),
        inverse_lipschitz=_unbounded("its learned vectors u and w have no bound"),
        examples=(
            Example(((3,),)),
            Example(((3,),), {"act": "leaky_relu"}),
            Example(((1, 2, 2),)),
        ),
    ),
    BlockKind(
        "radial",
        "y = x + β·(x − x₀)/(α + ‖x − x₀‖), with β ≥ −α enforced",
        "Rezende, Mohamed 2015, Variational Inference with Normalizing Flows, arXiv:1505.05770",
        (),
        _same,
        f"{_R}.planar:Radial",
        inverse="analytic",
        logdet="analytic",
        lipschitz=_unbounded("its learned β has no bound"),
        inverse_lipschitz=_unbounded("its learned α, β have no bound"),
        examples=(Example(((3,),)),),
    ),
)
