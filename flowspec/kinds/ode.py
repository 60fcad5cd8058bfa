"""Continuous-time flows: ode.

FFJORD (Grathwohl et al. 2019, arXiv:1810.01367) on neural ODEs (Chen et al. 2018,
arXiv:1806.07366): dx/dt = f(x, t), with the log-det the integral of the trace.
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
from flowspec.kinds.options import Bool, Choice, Float, Int, Option
from flowspec.kinds.words import (
    ADAPTIVE_SOLVERS,
    ODE_NET,
    REGULARIZE,
    SOLVER,
    TIME,
    TRACE,
)


def _ode_advice(opts: Opts, given: frozenset[str]) -> list[Problem]:
    """W103: ``steps`` with an adaptive solver, ``rtol``/``atol`` with a fixed-step one
    (implicit_adams' corrector does iterate to rtol/atol)."""
    solver = opts["solver"].kind
    if solver in ADAPTIVE_SOLVERS:
        ignored = {"steps"}
        why = "its error is set by rtol and atol"
        hint = "remove `{}`, or use a fixed-step solver such as rk4 (its error shrinks with steps)"
    else:
        ignored = set() if solver == "implicit_adams" else {"rtol", "atol"}
        why = f"it takes steps={opts['steps']} equal steps and controls no error"
        hint = "remove `{}` and raise `steps` for a smaller error, or use an adaptive solver"
    kind = "adaptive" if solver in ADAPTIVE_SOLVERS else "fixed-step"
    return [
        Problem(
            "W103",
            f"`{name}` has no effect with the {kind} solver `{solver}`: {why}",
            name,
            hint.format(name),
        )
        for name in sorted(ignored & given)
    ]


#: evaluations of f per step of each fixed-step solver (implicit_adams: its usual two)
_STAGES = {
    "euler": 1,
    "midpoint": 2,
    "heun2": 2,
    "heun3": 3,
    "rk4": 4,
    "explicit_adams": 1,
    "implicit_adams": 2,
}


def time_features(opts: Opts) -> int:
    """Inputs the time embedding adds to the dynamics net's first layer: 1 for ``concat``,
    2K for ``fourier(features=K)``, 0 for ``concatsquash`` (t enters every layer's gate)."""
    time = opts["time"]
    if time.kind == "fourier":
        return 2 * time["features"]
    return 1 if time.kind == "concat" else 0


def _net_shapes(opts: Opts, shape: Shape) -> tuple[Shape, Shape]:
    """f's (input, output) shapes: the time embedding is more features (mlp) or channels."""
    k = time_features(opts)
    if opts["net"].kind == "mlp":
        return (sizes.numel(shape) + k,), (sizes.numel(shape),)
    return (shape[0] + k, *shape[1:]), shape


def _ode_parameters(opts: Opts, shapes: list[Shape]) -> int:
    """The net's; ``concatsquash`` adds per layer of width w a gate (w weights, w biases)
    and a shift (w weights).  A Lipschitz-constrained net splits its first layer into the
    x columns and the time columns, the same numbers."""
    count = sizes.net_parameters(opts["net"], *_net_shapes(opts, shapes[0]))
    if opts["time"].kind == "concatsquash" and opts["net"].kind == "mlp":
        count += 3 * (sum(opts["net"]["hidden"]) + sizes.numel(shapes[0]))
    return count


def _ode_problems(opts: Opts, shapes: list[Shape]) -> list[Problem]:
    """E201: the certified Lipschitz net and ConcatSquash layers exist for net=mlp only."""
    net = opts["net"].kind
    out = []
    if net != "mlp" and opts["time"].kind == "concatsquash":
        out.append(
            Problem(
                "E201",
                f"time=concatsquash is implemented for net=mlp, not net={net}",
                "time",
                "use time=concat or time=fourier(features=...) with a conv or resnet net",
            )
        )
    if net != "mlp" and opts["lipschitz"] is not None:
        out.append(
            Problem(
                "E201",
                f"`lipschitz` on an ode block certifies net=mlp, not net={net}",
                "lipschitz",
                "remove `lipschitz`, or use net=mlp(hidden=[...])",
            )
        )
    return out


def _ode_lipschitz(opts: Opts, shapes: list[Shape]) -> Bound:
    """Lip(F) ≤ exp(L·t) when f(·, s) is L-Lipschitz in x for every s (Grönwall: two
    solutions part at most at rate L); the same bound holds for F⁻¹, the flow of −f."""
    lip = opts["lipschitz"]
    if lip is None:
        return Bound.unbounded("the dynamics net is not Lipschitz-constrained (no `lipschitz=`)")
    exponent = lip * opts["t"]
    if exponent > 700.0:  # exp overflows a float
        return Bound.unbounded(f"exp(lipschitz·t) = exp({exponent:g}) overflows")
    return Bound(math.exp(exponent))


def _ode_activations(opts: Opts, shapes: list[Shape]) -> int:
    """f's layers per evaluation kept for the backward pass: one evaluation with the
    adjoint method (the backward pass integrates again); without it, every evaluation of
    a fixed-step solver (steps × stages), and for an adaptive solver one step's — a lower
    bound, since the number of steps depends on the data."""
    per_eval = sizes.net_activations(opts["net"], *_net_shapes(opts, shapes[0]))
    solver = opts["solver"].kind
    if opts["adjoint"]:
        evals = 1
    elif solver in _STAGES:
        evals = opts["steps"] * _STAGES[solver]
    else:
        evals = {"dopri5": 6, "dopri8": 13, "bosh3": 3, "fehlberg2": 3}.get(solver, 2)
    trace = opts["trace"]
    probes = trace["samples"] if trace.kind == "hutchinson" else sizes.numel(shapes[0])
    return per_eval * evals * (1 + probes)


def _ode_low_precision(opts: Opts, dtype: str, eps: float) -> str | None:
    """An adaptive solver's step-size control compares local errors with rtol and atol;
    below the type's rounding it shrinks the step without end."""
    if opts["solver"].kind not in ADAPTIVE_SOLVERS:
        return None
    tol = min(opts["rtol"], opts["atol"])
    if tol < 4 * eps:
        return (
            f"its adaptive solver controls its error to rtol={opts['rtol']:g}, "
            f"atol={opts['atol']:g}, below what {dtype} resolves (machine epsilon {eps:.3g}): "
            f"give rtol and atol of {4 * eps:.2g} or more, or a fixed-step solver"
        )
    return None


#: every example's: the exact trace, no adjoint and tight tolerances, since the harness
#: compares the log-det with brute force at 1e-4
_CHECKED_EXACTLY = {"trace": "exact", "adjoint": False, "rtol": 1e-8, "atol": 1e-8}


ENTRIES: tuple[BlockKind, ...] = (
    BlockKind(
        "ode",
        "FFJORD continuous flow: dx/dt = f(x, t)",
        "Grathwohl et al. 2019, FFJORD, arXiv:1810.01367",
        (
            ODE_NET,
            Option("t", Float(0.0, min_open=True), 1.0),
            Option("solver", SOLVER, "dopri5"),
            Option(
                "steps",
                Int(min=1, max=L.MAX_ODE_STEPS),
                20,
                doc="equal steps over [0, t] of a fixed-step solver (euler, midpoint, heun2, "
                "heun3, rk4, explicit_adams, implicit_adams); its round-trip error shrinks "
                "with steps; adaptive solvers ignore it",
            ),
            Option(
                "rtol",
                Float(0.0, min_open=True),
                1e-5,
                doc="relative tolerance of an adaptive solver (and of implicit_adams' "
                "corrector); fixed-step solvers ignore it",
            ),
            Option(
                "atol",
                Float(0.0, min_open=True),
                1e-5,
                doc="absolute tolerance, as rtol",
            ),
            Option("trace", TRACE, "hutchinson"),
            Option("adjoint", Bool(), True),
            Option(
                "time",
                TIME,
                "concat",
                doc="how the dynamics net reads t: appended (`concat`), as Fourier features "
                "(`fourier`), or gating every layer (`concatsquash`, net=mlp)",
            ),
            Option(
                "regularize",
                REGULARIZE,
                "none",
                doc="extra loss terms of the forward pass (block.regularization(), "
                "flow.regularization(); flowspec train adds them to the loss)",
            ),
            Option(
                "lipschitz",
                Float(0.0, min_open=True),
                None,
                doc="L: build f with certified spectral norms so that f(·, t) is "
                "L-Lipschitz in x for every t (net=mlp), proving Lip(F), Lip(F⁻¹) ≤ exp(L·t); "
                "default none (unbounded)",
            ),
        ),
        _residual_shape,
        f"{_R}.ode:ODE",
        parameters=_ode_parameters,
        activations=_ode_activations,
        inverse="integrated",
        low_precision=_ode_low_precision,
        logdet=lambda opts: "exact" if opts["trace"].kind == "exact" else "stochastic",
        lipschitz=_ode_lipschitz,
        inverse_lipschitz=_ode_lipschitz,
        problems=_ode_problems,
        advice=_ode_advice,
        math=(
            "dx/dt = f(x, t) from 0 to `t`, y = x(t); ladj = ∫ tr(∂f/∂x) dt, the trace exact or "
            "Hutchinson's estimate (`trace`); inverse: integrate from `t` back to 0 with the "
            "same solver"
        ),
        shape_doc="output shape = input shape ([C, H, W] with net=conv or resnet)",
        bounds_doc="Lip ≤ exp(L·t); Lip⁻¹ ≤ exp(L·t) with L = `lipschitz` (unbounded without it)",
        examples=(
            Example(
                ((2,),),
                {
                    **_CHECKED_EXACTLY,
                    "net": Choice("mlp", {"hidden": [8], "act": "tanh"}),
                },
            ),
            Example(
                ((3,),),
                {
                    **_CHECKED_EXACTLY,
                    "time": Choice("fourier", {"features": 2}),
                    "net": Choice("mlp", {"hidden": [8], "act": "tanh", "init": "default"}),
                },
            ),
            Example(
                ((3,),),
                {
                    **_CHECKED_EXACTLY,
                    "time": "concatsquash",
                    "lipschitz": 1.5,
                    "net": Choice("mlp", {"hidden": [8], "act": "elu", "init": "default"}),
                },
            ),
        ),
    ),
)
