"""Elementwise bijections: affine, scale, gaussianize, leaky_relu, logit, sigmoid.

Each transforms every feature on its own, so the bounds are exact suprema of a scalar
derivative.  The logit preprocessing is Real NVP's (Dinh, Sohl-Dickstein, Bengio 2017,
arXiv:1605.08803); the scale-only ``scale`` is NICE's final diagonal scaling (Dinh,
Krueger, Bengio 2015, arXiv:1410.8516); ``gaussianize`` is Glow's learned prior as a
map onto the standard normal (Kingma, Dhariwal 2018, arXiv:1807.03039).
"""

from __future__ import annotations

from flowspec.kinds import limits as L
from flowspec.kinds.base import (
    _R,
    LEARNED_SCALE,
    BlockKind,
    Bound,
    Example,
    Opts,
    Problem,
    Shape,
    _image_net_input,
    _unbounded,
    elementwise_kind,
)
from flowspec.kinds.options import Choice, Enum, Float, Int, Option
from flowspec.kinds.sizes import net_parameters, no_parameters, numel
from flowspec.kinds.words import COND, NETS

#: the nets of ``gaussianize``: the nets of the couplings, except that a ``conv`` may
#: have ``depth=0``, one k×k convolution from cond to (μ, log σ): Glow's split prior
PRIOR_NETS = Enum(
    {
        **NETS.words,
        "conv": tuple(
            Option(
                "depth",
                Int(min=0, max=L.MAX_LAYERS),
                2,
                doc="number of hidden convolutions; 0: one k×k convolution (Glow's prior)",
            )
            if o.name == "depth"
            else o
            for o in NETS.words["conv"]
        ),
    },
    what="net",
)
#: needed with ``cond=`` only (``needs``), so no default
PRIOR_NET = Option(
    "net",
    PRIOR_NETS,
    None,
    doc="the net of `cond` giving μ and log σ (last layer zero); needed with cond= only",
    hint="add a net of the tensor kept, such as `net=conv(depth=0)` (Glow's zero-initialised "
    "3×3 convolution) for a [C, H, W] tensor, or `net=mlp(hidden=[64])` for flat features",
)


def _gaussianize_shape(opts: Opts, shapes: list[Shape]) -> list[Shape]:
    if len(shapes) > 1:  # without cond= there is no prior net to read anything
        net = opts["net"].kind if opts["net"] is not None else None
        _image_net_input(net, shapes[0], shapes[1])
    return [shapes[0]]


def _gaussianize_parameters(opts: Opts, shapes: list[Shape]) -> int:
    """μ and log σ per feature, or the prior net of cond= giving both."""
    shape = shapes[0]
    if opts["cond"] is None or opts["net"] is None:
        return 2 * numel(shape)
    net = opts["net"]
    out = (2 * numel(shape),) if net.kind == "mlp" else (2 * shape[0], *shape[1:])
    return net_parameters(net, shapes[1], out)


def _gaussianize_advice(opts: Opts, given: frozenset[str]) -> list[Problem]:
    if "net" in given and opts["cond"] is None:
        return [
            Problem(
                "W103",
                "`net` has no effect without `cond=`: gaussianize then learns one μ and "
                "log σ per feature",
                "net",
                "remove `net`, or give the tensor the prior depends on as `cond=`",
            )
        ]
    return []


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
    elementwise_kind(
        "affine",
        "elementwise scale and shift",
        "",
        (),
        f"{_R}.elementwise:Affine",
        parameters=lambda opts, shapes: 2 * numel(shapes[0]),  # s and t per feature
        bounds=LEARNED_SCALE,
        math=(
            "y = x·exp(s) + t, s and t learned with the full per-sample shape, both zero at the "
            "start; ladj = Σ s"
        ),
        examples=(Example(((3,),)), Example(((2, 2, 2),))),
    ),
    elementwise_kind(
        "scale",
        "z = x · exp(s), a learned per-feature log-scale s (zero init); ladj = Σ s",
        "Dinh, Krueger, Bengio 2015, NICE (the diagonal scaling layer), arXiv:1410.8516",
        (),
        f"{_R}.elementwise:Scale",
        parameters=lambda opts, shapes: numel(shapes[0]),  # s per feature
        bounds=LEARNED_SCALE,
        examples=(Example(((3,),)), Example(((2, 2, 2),))),
    ),
    elementwise_kind(
        "gaussianize",
        "z' = (z − μ) · exp(−log σ), μ and log σ learned per feature, or from a net of cond=",
        "Kingma, Dhariwal 2018, Glow (learned prior), arXiv:1807.03039",
        (PRIOR_NET, COND),
        f"{_R}.elementwise:Gaussianize",
        shape=_gaussianize_shape,
        parameters=_gaussianize_parameters,
        bounds=LEARNED_SCALE,
        advice=_gaussianize_advice,
        needs=lambda opts: ("net",) if opts["cond"] is not None else (),
        examples=(
            Example(((3,),)),
            Example(((2, 2, 2),)),
            Example(((3,),), {"net": Choice("mlp", {"hidden": [8]})}, cond=(2,)),
            Example(((2, 2, 2),), {"net": Choice("mlp", {"hidden": [8]})}, cond=(1, 2, 2)),
            Example(
                ((2, 4, 4),), {"net": Choice("conv", {"hidden": 8, "depth": 1})}, cond=(3, 4, 4)
            ),
            Example(((2, 4, 4),), {"net": Choice("resnet", {"hidden": 8})}, cond=(2, 4, 4)),
            Example(((2, 3, 3),), {"net": Choice("conv", {"depth": 0})}, cond=(2, 3, 3)),
        ),
    ),
    elementwise_kind(
        "leaky_relu",
        "y = x for x ≥ 0, slope·x otherwise",
        "",
        (Option("slope", Float(), 0.01),),
        f"{_R}.elementwise:LeakyReLU",
        parameters=no_parameters,
        bounds=(
            lambda opts, shapes: Bound(max(1.0, opts["slope"])),
            lambda opts, shapes: (
                Bound(max(1.0, 1.0 / opts["slope"]))
                if opts["slope"] > 0
                else Bound.unbounded("slope <= 0")
            ),
        ),
        problems=_leaky_problems,
        math="y = x for x ≥ 0, a·x otherwise (a = `slope` > 0); ladj = log(a)·#{i : x_i < 0}",
        bounds_doc="Lip = max(1, a); Lip⁻¹ = max(1, 1/a)",
        examples=(Example(((4,),), {"slope": 0.2}),),
    ),
    elementwise_kind(
        "logit",
        "y = logit(α + (1 − 2α)x), for data in [0, 1]",
        "Dinh, Sohl-Dickstein, Bengio 2017, Real NVP, arXiv:1605.08803",
        (Option("alpha", Float(0.0), 0.05),),
        f"{_R}.elementwise:Logit",
        parameters=no_parameters,
        bounds=(_logit_lipschitz, _logit_inverse_lipschitz),
        problems=_logit_problems,
        math="y = logit(u) with u = α + (1 − 2α)·x; ladj = Σ [log(1 − 2α) − log u − log(1 − u)]",
        bounds_doc="Lip = (1 − 2α)/(α(1 − α)) (unbounded for α = 0); Lip⁻¹ = 1/(4(1 − 2α))",
        examples=(Example(((4,),), {"alpha": 0.05}),),
    ),
    elementwise_kind(
        "sigmoid",
        "y = σ(x)",
        "",
        (),
        f"{_R}.elementwise:Sigmoid",
        parameters=no_parameters,
        bounds=(
            lambda opts, shapes: Bound(0.25),
            _unbounded("logit, the inverse of sigmoid, has an unbounded slope"),
        ),
        math="y = σ(x) = 1/(1 + e^(−x)); ladj = −Σ [softplus(x) + softplus(−x)]",
        bounds_doc="Lip = 1/4; its inverse, logit, is unbounded",
        examples=(Example(((4,),)),),
    ),
)
