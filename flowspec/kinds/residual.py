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
from flowspec.kinds.words import (
    ACTIVATIONS,
    EVAL_LOGDET,
    FIXEDPOINT,
    GRAD,
    LOGDET,
    RESIDUAL_NET,
    TRACE,
)


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


def estimators(opts: Opts) -> tuple[Choice, Choice]:
    """The log-det estimators of training and of eval mode (``eval_logdet=same``: the
    training one)."""
    train = opts["logdet"]
    evaluation = opts.get("eval_logdet")
    if not isinstance(evaluation, Choice) or evaluation.kind == "same":
        return train, train
    return train, evaluation


def expected_terms(logdet: Choice) -> float:
    """The mean number of power-series terms an estimator computes: ``series``'s
    ``terms``, ``roulette``'s exact_terms + 1/p (N ~ Geometric(p) on {1, 2, …})."""
    if logdet.kind == "series":
        return float(logdet["terms"])
    if logdet.kind == "roulette":
        return logdet["exact_terms"] + 1.0 / logdet["p"]
    return 0.0


def variance_proven_finite(c: float, logdet: Choice) -> bool:
    """Whether a roulette estimate has a finite variance for every g with Lip(g) ≤ c:
    term k (past the exact ones) carries |tr(J^k)|/P(reached) ≤ d·c^k/(1 − p)^k, so the
    second moment is finite when c² < 1 − p (Chen et al. 2019, appendix); other
    estimators are bounded."""
    return logdet.kind != "roulette" or c * c < 1.0 - logdet["p"]


def _estimator_word(logdet: Choice) -> str:
    if logdet.kind == "series":
        return f"series(terms={logdet['terms']})"
    if logdet.kind == "roulette":
        return f"roulette(p={logdet['p']:g}, exact_terms={logdet['exact_terms']})"
    return logdet.kind


def describe_estimators(opts: Opts) -> str:
    """One line on a residual block's log-det estimators, for ``flowspec summary``: each
    one's mean number of terms and, for roulette, whether its variance is proven finite."""
    c = opts["lipschitz"]
    parts = []
    for mode, logdet in zip(("training", "eval"), estimators(opts), strict=True):
        if mode == "eval" and logdet is opts["logdet"]:
            parts.append("eval: the same")
            continue
        text = f"{mode}: {_estimator_word(logdet)}"
        if logdet.kind != "exact":
            text += f", {expected_terms(logdet):g} terms on average"
        if logdet.kind == "roulette":
            q = 1.0 - logdet["p"]
            text += (
                f", variance proven finite (c² = {c * c:.3g} < 1 − p)"
                if variance_proven_finite(c, logdet)
                else f", variance finite if ρ(J_g)² < 1 − p = {q:g} (not proven: c² = {c * c:.3g})"
            )
        parts.append(text)
    return "; ".join(parts)


def _residual_advice(opts: Opts, given: frozenset[str]) -> list[Problem]:
    """W103: ``trace=`` with ``logdet=exact``, which computes the whole Jacobian and
    estimates no trace.  W107: a roulette estimator whose variance no allowed ``p`` can
    keep finite: ``lipschitz`` so close to 1 that 1/(1 − c²), the mean number of terms a
    proven-finite variance needs, is over 1/p_min (c > 0.995)."""
    out = []
    if opts["logdet"].kind == "exact" and "trace" in given:
        out.append(
            Problem(
                "W103",
                "`trace` has no effect with logdet=exact: the log-det comes from the full "
                "Jacobian, no trace is estimated",
                "trace",
                "remove `trace`, or use logdet=series(...) or logdet=roulette(...), which "
                "estimate traces",
            )
        )
    c = opts["lipschitz"]
    roulette = any(e.kind == "roulette" for e in estimators(opts))
    if roulette and c < 1 and 1.0 - c * c <= L.MIN_ROULETTE_P:
        out.append(
            Problem(
                "W107",
                f"lipschitz={c:g} is so close to 1 that the roulette log-det estimator's "
                "variance is not proven finite for any allowed p: that needs "
                f"p < 1 − c² = {1.0 - c * c:.3g}, a mean of more than "
                f"{1.0 / (1.0 - c * c):,.0f} terms per call (p ≥ {L.MIN_ROULETTE_P:g})",
                "lipschitz" if "lipschitz" in given else None,
                "lower lipschitz to 0.99 or less (Residual Flows use 0.98), or use "
                "logdet=series(terms=...) (biased, bounded)",
            )
        )
    return out


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
    else:
        terms = math.ceil(expected_terms(logdet))
    trace = opts["trace"]
    probes = trace["samples"] if trace.kind == "hutchinson" and logdet.kind != "exact" else 1
    return g * (1 + terms * probes)


def _residual_logdet(opts: Opts) -> str:
    """Exact only when both the training and the eval-mode estimator are."""
    exact = all(e.kind == "exact" for e in estimators(opts))
    return "exact-bruteforce" if exact else "stochastic"


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
    if any(e.kind == "exact" for e in estimators(opts)):
        return (
            f"its exact log-det (logdet or eval_logdet = exact) takes torch.linalg.slogdet, "
            f"which has no {dtype} kernel"
        )
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
            Option(
                "eval_logdet",
                EVAL_LOGDET,
                "same",
                doc="the log-det estimator in eval mode (module.eval()): `same` keeps "
                "`logdet`; residual-flows evaluate with roulette(exact_terms=20)",
            ),
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
