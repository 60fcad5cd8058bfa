"""Elementwise bijections: affine, leaky_relu, logit, sigmoid.

Each transforms every feature on its own, so the bounds are exact suprema of a scalar
derivative.  The logit preprocessing is Real NVP's (Dinh, Sohl-Dickstein, Bengio 2017,
arXiv:1605.08803).
"""

from __future__ import annotations

from flowspec.kinds.base import (
    _R,
    BlockKind,
    Bound,
    Example,
    Opts,
    Problem,
    Shape,
    _same,
    _unbounded,
)
from flowspec.kinds.options import Float, Option
from flowspec.kinds.sizes import no_parameters, numel


def _leaky_problems(opts: Opts, shapes: list[Shape]) -> list[Problem]:
    if opts["slope"] <= 0:
        return [
            Problem(
                "E302",
                f"leaky_relu with slope={opts['slope']:g} is not invertible",
                "slope",
                "use a slope > 0, such as 0.01",
            )
        ]
    return []


def _logit_problems(opts: Opts, shapes: list[Shape]) -> list[Problem]:
    if opts["alpha"] >= 0.5:
        return [
            Problem(
                "E302",
                f"logit with alpha={opts['alpha']:g} squeezes every input to "
                "one point and is not invertible",
                "alpha",
                "use an alpha in [0, 0.5), such as 0.05",
            )
        ]
    return []


def _logit_lipschitz(opts: Opts, shapes: list[Shape]) -> Bound:
    # y = logit(α + (1 − 2α)x): |dy/dx| = (1 − 2α)/(u(1 − u)), largest at u = α
    a = opts["alpha"]
    if a <= 0:
        return Bound.unbounded("logit with alpha=0 has an unbounded slope near 0 and 1")
    return Bound((1 - 2 * a) / (a * (1 - a)))


def _logit_inverse_lipschitz(opts: Opts, shapes: list[Shape]) -> Bound:
    return Bound(0.25 / (1 - 2 * opts["alpha"]))


ENTRIES: tuple[BlockKind, ...] = (
    BlockKind(
        "affine",
        "elementwise scale and shift",
        "",
        (),
        _same,
        f"{_R}.elementwise:Affine",
        parameters=lambda opts, shapes: 2 * numel(shapes[0]),  # s and t per feature
        inverse="analytic",
        logdet="analytic",
        lipschitz=_unbounded("its learned scale has no bound"),
        inverse_lipschitz=_unbounded("its learned scale has no bound"),
        features="elementwise",
        math=(
            "y = x·exp(s) + t, s and t learned with the full per-sample shape, both zero at the "
            "start; ladj = Σ s"
        ),
        examples=(Example(((3,),)), Example(((2, 2, 2),))),
    ),
    BlockKind(
        "leaky_relu",
        "y = x for x ≥ 0, slope·x otherwise",
        "",
        (Option("slope", Float(), 0.01),),
        _same,
        f"{_R}.elementwise:LeakyReLU",
        parameters=no_parameters,
        inverse="analytic",
        logdet="analytic",
        lipschitz=lambda opts, shapes: Bound(max(1.0, opts["slope"])),
        inverse_lipschitz=lambda opts, shapes: (
            Bound(max(1.0, 1.0 / opts["slope"]))
            if opts["slope"] > 0
            else Bound.unbounded("slope <= 0")
        ),
        features="elementwise",
        problems=_leaky_problems,
        math="y = x for x ≥ 0, a·x otherwise (a = `slope` > 0); ladj = log(a)·#{i : x_i < 0}",
        bounds_doc="Lip = max(1, a); Lip⁻¹ = max(1, 1/a)",
        examples=(Example(((4,),), {"slope": 0.2}),),
    ),
    BlockKind(
        "logit",
        "y = logit(α + (1 − 2α)x), for data in [0, 1]",
        "Dinh, Sohl-Dickstein, Bengio 2017, Real NVP, arXiv:1605.08803",
        (Option("alpha", Float(0.0), 0.05),),
        _same,
        f"{_R}.elementwise:Logit",
        parameters=no_parameters,
        inverse="analytic",
        logdet="analytic",
        lipschitz=_logit_lipschitz,
        inverse_lipschitz=_logit_inverse_lipschitz,
        features="elementwise",
        problems=_logit_problems,
        math="y = logit(u) with u = α + (1 − 2α)·x; ladj = Σ [log(1 − 2α) − log u − log(1 − u)]",
        bounds_doc="Lip = (1 − 2α)/(α(1 − α)) (unbounded for α = 0); Lip⁻¹ = 1/(4(1 − 2α))",
        examples=(Example(((4,),), {"alpha": 0.05}),),
    ),
    BlockKind(
        "sigmoid",
        "y = σ(x)",
        "",
        (),
        _same,
        f"{_R}.elementwise:Sigmoid",
        parameters=no_parameters,
        inverse="analytic",
        logdet="analytic",
        lipschitz=lambda opts, shapes: Bound(0.25),
        inverse_lipschitz=_unbounded("logit, the inverse of sigmoid, has an unbounded slope"),
        features="elementwise",
        math="y = σ(x) = 1/(1 + e^(−x)); ladj = −Σ [softplus(x) + softplus(−x)]",
        bounds_doc="Lip = 1/4; its inverse, logit, is unbounded",
        examples=(Example(((4,),)),),
    ),
)
