"""Continuous-time flows: ode.

FFJORD (Grathwohl et al. 2019, arXiv:1810.01367) on neural ODEs (Chen et al. 2018,
arXiv:1806.07366): dx/dt = f(x, t), with the log-det the integral of the trace.
"""

from __future__ import annotations

from flowspec.kinds.base import _R, BlockKind, Example, _residual_shape, _unbounded
from flowspec.kinds.options import Bool, Choice, Float, Option
from flowspec.kinds.words import NET, SOLVER, TRACE

ENTRIES: tuple[BlockKind, ...] = (
    BlockKind(
        "ode",
        "FFJORD continuous flow: dx/dt = f(x, t)",
        "Grathwohl et al. 2019, FFJORD, arXiv:1810.01367",
        (
            NET,
            Option("t", Float(0.0, min_open=True), 1.0),
            Option("solver", SOLVER, "dopri5"),
            Option("rtol", Float(0.0, min_open=True), 1e-5),
            Option("atol", Float(0.0, min_open=True), 1e-5),
            Option("trace", TRACE, "hutchinson"),
            Option("adjoint", Bool(), True),
        ),
        _residual_shape,
        f"{_R}.ode:ODE",
        inverse="integrated",
        logdet=lambda opts: "exact" if opts["trace"].kind == "exact" else "stochastic",
        lipschitz=_unbounded("the dynamics net is not Lipschitz-constrained"),
        inverse_lipschitz=_unbounded("the dynamics net is not Lipschitz-constrained"),
        examples=(
            Example(
                ((2,),),
                {
                    "trace": "exact",
                    "adjoint": False,
                    "rtol": 1e-8,  # the harness compares to brute force at 1e-4
                    "atol": 1e-8,
                    "net": Choice("mlp", {"hidden": [8], "act": "tanh"}),
                },
            ),
        ),
    ),
)
