"""Invertible residual blocks: residual.

y = x + g(x) with Lip(g) ≤ c < 1, inverted by fixed-point iteration.  Papers:
Behrmann et al. 2019, Invertible Residual Networks, arXiv:1811.00995; Chen et al.
2019, Residual Flows, arXiv:1906.02735 (the unbiased roulette log-det estimator).
"""

from __future__ import annotations

import math

from flowspec.kinds import limits as L
from flowspec.kinds import sizes
from flowspec.kinds.base import (
    _R,
    BlockKind,
    Bound,
    Example,
    Opts,
    Problem,
    Shape,
    _residual_shape,
)
from flowspec.kinds.options import Choice, Float, Int, Option
from flowspec.kinds.words import ACTIVATIONS, FIXEDPOINT, GRAD, LOGDET, RESIDUAL_NET, TRACE


def _residual_problems(opts: Opts, shapes: list[Shape]) -> list[Problem]:
    out = []
    net = opts["net"].kind
    if net not in ("mlp", "conv"):
        # the runtime certifies dense layers (SVD) and convolutions (the circular-convolution
        # bound), not resnet's skip connections (flowspec.runtime.lipschitz_layers)
        out.append(
            Problem(
                "E303",
                f"residual block with net={net} is not provably contractive: a certified "
                "Lipschitz bound is implemented for net=mlp and net=conv only",
                "net",
                "use net=conv(hidden=..., act=lipswish) or net=mlp(hidden=[...], act=lipswish)",
            )
        )
    c = opts["lipschitz"]
    if c >= 1:
        out.append(
            Problem(
                "E303",
                f"residual block needs lipschitz < 1 to be invertible, got {c:g}",
                "lipschitz",
                "use a value in (0, 1), such as 0.97",
            )
        )
    act = opts["net"]["act"].kind
    lip, _ = ACTIVATIONS[act]
    if lip > 1:
        out.append(
            Problem(
                "E303",
                f"activation `{act}` has Lipschitz constant {lip:g} > 1, so the residual "
                "branch is not provably contractive",
                "net",
                "use a 1-Lipschitz activation such as lipswish, elu or tanh",
            )
        )
    return out


def _residual_advice(opts: Opts, given: frozenset[str]) -> list[Problem]:
    """W103: ``trace=`` with ``logdet=exact``, which computes the whole Jacobian and
    estimates no trace."""
    if opts["logdet"].kind != "exact" or "trace" not in given:
        return []
    return [
        Problem(
            "W103",
            "`trace` has no effect with logdet=exact: the log-det comes from the full "
            "Jacobian, no trace is estimated",
            "trace",
            "remove `trace`, or use logdet=series(...) or logdet=roulette(...), which "
            "estimate traces",
        )
    ]


def _residual_parameters(opts: Opts, shapes: list[Shape]) -> int:
    return sizes.lipschitz_net_parameters(opts["net"], shapes[0])


def _residual_activations(opts: Opts, shapes: list[Shape]) -> int:
    """g's layers once for y, and once more per term of the log-det estimate (its
    vector-Jacobian products keep their graphs in training): ``series(terms)`` terms,
    ``roulette(p)`` 1/p on average, ``exact`` d (one per Jacobian row); each Hutchinson
    probe is another copy."""
    g = sizes.lipschitz_net_activations(opts["net"], shapes[0])
    logdet = opts["logdet"]
    if logdet.kind == "exact":
        terms = sizes.numel(shapes[0])
    elif logdet.kind == "series":
        terms = logdet["terms"]
    else:
        terms = math.ceil(1 / logdet["p"])
    trace = opts["trace"]
    probes = trace["samples"] if trace.kind == "hutchinson" and logdet.kind != "exact" else 1
    return g * (1 + terms * probes)


def _residual_logdet(opts: Opts) -> str:
    return "exact-bruteforce" if opts["logdet"].kind == "exact" else "stochastic"


def _residual_lipschitz(opts: Opts, shapes: list[Shape]) -> Bound:
    c = opts["lipschitz"]
    return Bound(1 + c) if c < 1 else Bound.unbounded("lipschitz >= 1")


def _residual_inverse_lipschitz(opts: Opts, shapes: list[Shape]) -> Bound:
    c = opts["lipschitz"]
    return Bound(1 / (1 - c)) if c < 1 else Bound.unbounded("lipschitz >= 1")


def iterations_for(c: float, scale: float, tol: float) -> int:
    """The smallest n ≥ 1 with cⁿ·scale/(1 − c) ≤ tol: the fixed-point iterations the
    a-priori bound ‖x* − x_n‖ ≤ cⁿ/(1 − c)·‖x₁ − x₀‖ of a c-contraction needs when its
    first step moves by ``scale`` (the a-posteriori rule the runtime uses stops no later)."""
    if scale <= 0.0 or c <= 0.0:
        return 1
    return max(1, math.ceil(math.log(tol * (1.0 - c) / scale) / math.log(c)))


def _residual_low_precision(opts: Opts, dtype: str, eps: float) -> str | None:
    """``logdet=exact`` takes slogdet of the Jacobian (no 16-bit kernel); the fixed-point
    inverse cannot move by less than the type's rounding, so a ``tol`` below a few
    epsilons never converges."""
    if opts["logdet"].kind == "exact":
        return f"logdet=exact takes torch.linalg.slogdet, which has no {dtype} kernel"
    tol = opts["inverse"]["tol"]
    if tol < 4 * eps:
        return (
            f"its fixed-point inverse stops at tol={tol:g}, below what {dtype} resolves "
            f"(machine epsilon {eps:.3g}): give inverse=fixedpoint(tol={4 * eps:.2g}) or more"
        )
    return None


ENTRIES: tuple[BlockKind, ...] = (
    BlockKind(
        "residual",
        "i-ResNet / Residual Flow: y = x + g(x), Lip(g) ≤ c < 1",
        "Behrmann et al. 2019, Invertible Residual Networks, arXiv:1811.00995; Chen et al. "
        "2019, Residual Flows, arXiv:1906.02735",
        (
            RESIDUAL_NET,
            Option("lipschitz", Float(0.0, min_open=True), 0.97),
            Option("power_iters", Int(min=1, max=L.MAX_POWER_ITERS), 5),
            Option("logdet", LOGDET, "roulette"),
            Option("trace", TRACE, "hutchinson"),
            Option("grad", GRAD, "backprop"),
            Option("inverse", FIXEDPOINT, "fixedpoint"),
            Option(
                "eval_terms",
                Int(min=1, max=L.MAX_EVAL_TERMS),
                100,
                doc="terms of the power series, each trace exact, that exact evaluation "
                "(flow.log_prob(x, exact=True), flowspec.exact(flow)) sums when the block "
                "has more than 256 features (up to 256 it takes slogdet of the Jacobian); "
                "the error is at most d·c^(n+1)/((n+1)(1 − c)) for n terms and Lip(g) ≤ c",
            ),
        ),
        _residual_shape,
        f"{_R}.residual:Residual",
        parameters=_residual_parameters,
        activations=_residual_activations,
        inverse="iterative",
        logdet=_residual_logdet,
        lipschitz=_residual_lipschitz,
        inverse_lipschitz=_residual_inverse_lipschitz,
        problems=_residual_problems,
        low_precision=_residual_low_precision,
        math=(
            "y = x + g(x), g a net whose linear maps have a certified spectral norm ≤ c = "
            "`lipschitz`; ladj = log det(I + J_g) = Σ_{k≥1} (−1)^(k+1)/k·tr(J_g^k), computed as "
            "`logdet` and `trace` say; inverse: the fixed point of x ← y − g(x)"
        ),
        shape_doc="output shape = input shape ([C, H, W] with net=conv)",
        bounds_doc="Lip ≤ 1 + c; Lip⁻¹ ≤ 1/(1 − c), for c = `lipschitz` < 1",
        advice=_residual_advice,
        examples=(
            Example(
                ((3,),),
                {"logdet": "exact", "net": Choice("mlp", {"hidden": [8], "act": "lipswish"})},
            ),
            Example(
                ((1, 3, 3),),
                {
                    "logdet": "exact",
                    "net": Choice(
                        "conv", {"hidden": 4, "kernel": 3, "depth": 1, "act": "lipswish"}
                    ),
                },
            ),
        ),
    ),
)
