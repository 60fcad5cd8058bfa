"""Continuous-time flows: ode.

FFJORD (Grathwohl et al. 2019, arXiv:1810.01367) on neural ODEs (Chen et al. 2018,
arXiv:1806.07366): dx/dt = f(x, t), with the log-det the integral of the trace.
"""

from __future__ import annotations

from flowspec.kinds import limits as L
from flowspec.kinds import sizes
from flowspec.kinds.base import (
    _R,
    BlockKind,
    Example,
    Opts,
    Problem,
    Shape,
    _residual_shape,
    _unbounded,
)
from flowspec.kinds.options import Bool, Choice, Float, Int, Option
from flowspec.kinds.words import ADAPTIVE_SOLVERS, ODE_NET, SOLVER, TRACE


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


def _net_shapes(opts: Opts, shape: Shape) -> tuple[Shape, Shape]:
    """f's (input, output) shapes: time is one more feature (mlp) or channel."""
    if opts["net"].kind == "mlp":
        return (sizes.numel(shape) + 1,), (sizes.numel(shape),)
    return (shape[0] + 1, *shape[1:]), shape


def _ode_parameters(opts: Opts, shapes: list[Shape]) -> int:
    return sizes.net_parameters(opts["net"], *_net_shapes(opts, shapes[0]))


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
        ),
        _residual_shape,
        f"{_R}.ode:ODE",
        parameters=_ode_parameters,
        activations=_ode_activations,
        inverse="integrated",
        low_precision=_ode_low_precision,
        logdet=lambda opts: "exact" if opts["trace"].kind == "exact" else "stochastic",
        lipschitz=_unbounded("the dynamics net is not Lipschitz-constrained"),
        inverse_lipschitz=_unbounded("the dynamics net is not Lipschitz-constrained"),
        advice=_ode_advice,
        math=(
            "dx/dt = f(x, t) from 0 to `t`, y = x(t); ladj = ∫ tr(∂f/∂x) dt, the trace exact or "
            "Hutchinson's estimate (`trace`); inverse: integrate from `t` back to 0 with the "
            "same solver"
        ),
        shape_doc="output shape = input shape ([C, H, W] with net=conv or resnet)",
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
