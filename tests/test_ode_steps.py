"""Fixed-step ODE solvers: ``steps=`` sets the grid, rtol/atol with them is W103.

- ``steps=N`` is N equal steps per solve: euler evaluates the dynamics N times, rk4 4N
  (counted), also where torchdiffeq's own ``step_size`` would take one step too many.
- The error falls with ``steps`` at the method's order, in float64: against a tight
  dopri5 solution as steps^-p, and the round trip as steps^-p for odd p and
  steps^-(p+1) for even p (integrating back with the same method cancels the leading
  error term when p is even).
- W103 for an option the solver ignores, at the option's line and column, in both
  front ends; a default is never reported; ``steps`` out of range is E201.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import flowspec
from flowspec.core.spans import Source
from flowspec.driver import Compilation
from flowspec.kinds.options import Choice
from flowspec.runtime.ode import ODE
from flowspec.syntax import dsl
from flowspec.syntax.to_yaml import to_yaml

F64 = torch.float64
MLP = Choice("mlp", hidden=[16], act=Choice("tanh"), init=Choice("zero"))


def block(solver: str, t: float = 1.0, seed: int = 0, **options) -> ODE:
    """A float64 block with perturbed weights (the zero-initialised net is f ≡ 0)."""
    torch.manual_seed(seed)
    b = ODE(
        [(3,)],
        net=MLP,
        t=t,
        solver=Choice(solver),
        trace=Choice("exact"),
        adjoint=False,
        **options,
    ).double()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return b


def evaluations(b: ODE, run) -> int:
    calls = []
    hook = b.dynamics.register_forward_hook(lambda *_: calls.append(1))
    try:
        with torch.no_grad():
            run()
    finally:
        hook.remove()
    return len(calls)


@pytest.mark.parametrize(
    ("solver", "per_step"), [("euler", 1), ("midpoint", 2), ("heun2", 2), ("heun3", 3), ("rk4", 4)]
)
@pytest.mark.parametrize("steps", [1, 7, 20])
def test_steps_is_the_number_of_steps_per_solve(solver: str, per_step: int, steps: int) -> None:
    # t = 0.3: torchdiffeq's step_size = t/20 would take 21 steps, the last a sliver
    b = block(solver, t=0.3, steps=steps)
    x = torch.randn(4, 3, dtype=F64)
    assert evaluations(b, lambda: b.transform(x)) == per_step * steps
    assert evaluations(b, lambda: b.inverse(x)) == per_step * steps


def test_the_spec_sets_steps() -> None:
    spec = """flow f {
    input x: [2]
    x = ode(x, net=mlp(hidden=[8], act=tanh), solver=euler, steps=7, adjoint=false)
    output x
}
"""
    flow = flowspec.compile(spec)
    (b,) = (m for m in flow.modules() if isinstance(m, ODE))
    assert b.steps == 7 and "steps=7" in repr(b)
    assert evaluations(b, lambda: flow.transform(torch.randn(3, 2))) == 7


def test_default_is_twenty_steps() -> None:
    b = block("euler")
    assert evaluations(b, lambda: b.transform(torch.randn(2, 3, dtype=F64))) == 20


def _order(errors: list[float]) -> list[float]:
    """Observed orders for steps doubling: log2 of successive error ratios."""
    return [math.log2(a / b) for a, b in itertools.pairwise(errors)]


@pytest.fixture(scope="module")
def reference() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs and the flow's value and log-det there, by dopri5 at 1e-10."""
    x = torch.randn(4, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return (x, *block("dopri5", rtol=1e-10, atol=1e-10)(x))


@pytest.mark.parametrize(
    ("solver", "order", "round_trip_order"),
    [("euler", 1, 1), ("midpoint", 2, 3), ("heun3", 3, 3), ("rk4", 4, 5)],
)
def test_error_falls_with_steps_at_the_methods_order(
    solver: str, order: int, round_trip_order: int, reference
) -> None:
    x, want_y, want_ladj = reference
    forward, trip, trip_ladj = [], [], []
    for steps in (8, 16, 32):
        b = block(solver, steps=steps)
        with torch.no_grad():
            y, ladj = b(x)
            back, ladj_inv = b.inverse(y)
        forward.append(max((y - want_y).abs().max().item(), (ladj - want_ladj).abs().max().item()))
        trip.append((back - x).abs().max().item())
        trip_ladj.append((ladj + ladj_inv).abs().max().item())
    assert trip[-1] < trip[0]
    for observed in _order(forward):
        assert abs(observed - order) < 0.4, (forward, _order(forward))
    for observed in _order(trip) + _order(trip_ladj):
        assert abs(observed - round_trip_order) < 0.4, (trip, trip_ladj)


# ------------------------------------------------------------------ diagnostics

FLOW = """flow f {{
    input x: [2]
    x = ode(x, net=mlp(hidden=[8], act=tanh), {options})
    output x
}}
"""
CALL = "    x = ode(x, net=mlp(hidden=[8], act=tanh), "


def diagnose(options: str) -> list[tuple[str, int, int, int]]:
    return [
        (d.code, d.line, d.column, d.span.end_column)
        for d in flowspec.check(FLOW.format(options=options))
    ]


def col(options: str, written: str) -> tuple[int, int]:
    """Columns of ``written`` (``key=value``) in the call line: start and end."""
    start = len(CALL) + options.index(written) + 1
    return start, start + len(written)


@pytest.mark.parametrize(
    ("options", "written"),
    [
        ("solver=euler, rtol=1e-6", "rtol=1e-6"),
        ("solver=rk4, steps=40, atol=1e-9", "atol=1e-9"),
        ("solver=midpoint, adjoint=false, rtol=0.001", "rtol=0.001"),
        ("steps=50", "steps=50"),  # dopri5 by default
        ("solver=bosh3, steps=5", "steps=5"),
    ],
)
def test_an_ignored_option_is_w103_at_the_option(options: str, written: str) -> None:
    assert diagnose(options) == [("W103", 3, *col(options, written))]


def test_rtol_and_atol_with_euler_are_two_warnings() -> None:
    options = "solver=euler, rtol=1e-6, atol=1e-6"
    assert diagnose(options) == [
        ("W103", 3, *col(options, "rtol=1e-6")),
        ("W103", 3, *col(options, "atol=1e-6")),
    ]
    (d, _) = flowspec.check(FLOW.format(options=options))
    assert d.message == (
        "`rtol` has no effect with the fixed-step solver `euler`: it takes steps=20 equal "
        "steps and controls no error"
    )
    assert "raise `steps`" in d.hint


@pytest.mark.parametrize(
    "options",
    [
        "solver=dopri5, rtol=1e-6, atol=1e-8",
        "solver=adaptive_heun, rtol=1e-3",
        "solver=euler",  # defaults are never reported
        "solver=rk4, steps=100",
        "solver=implicit_adams, steps=10, rtol=1e-7",  # its corrector iterates to rtol
    ],
)
def test_no_warning_when_every_option_is_used(options: str) -> None:
    assert diagnose(options) == []


def test_w103_inside_a_block_points_at_the_body() -> None:
    spec = """block step(x, tol=1e-6) {
    x = ode(x, net=mlp(hidden=[8], act=tanh), solver=rk4, rtol=tol)
    return x
}
flow f {
    input x: [2]
    x = step(x)
    output x
}
"""
    (d,) = flowspec.check(spec)
    assert (d.code, d.line, d.column) == ("W103", 2, spec.splitlines()[1].index("rtol=") + 1)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "`steps` must be at least 1, got 0"),
        ("10001", "10000"),  # the bound is named, whatever the wording
        ("2.5", None),
    ],
)
def test_steps_out_of_range_is_e201_at_the_value(value: str, message: str | None) -> None:
    options = f"solver=rk4, steps={value}"
    (d,) = flowspec.check(FLOW.format(options=options))
    start = col(options, value)[0]
    assert (d.code, d.line, d.column, d.span.end_column) == ("E201", 3, start, start + len(value))
    if message is not None:
        assert d.message.startswith("`steps`") and message in d.message, d.message


@pytest.mark.parametrize(
    "options",
    [
        "solver=euler, rtol=1e-6, atol=1e-6",
        "solver=dopri5, steps=50",
        "solver=rk4, steps=0",
        "solver=implicit_adams, rtol=1e-7",
    ],
)
def test_the_yaml_form_reports_the_same(options: str) -> None:
    text = FLOW.format(options=options)
    flow_diags = flowspec.check(text)
    program, diags = dsl.parse(Source("t.flow", text))
    assert diags == []
    yaml_text = to_yaml(program)
    yaml_diags = Compilation(Source("t.yaml", yaml_text)).diagnostics
    assert [(d.code, d.message, d.hint) for d in yaml_diags] == [
        (d.code, d.message, d.hint) for d in flow_diags
    ]
    lines = yaml_text.splitlines()
    for d in yaml_diags:  # at the option in the YAML text
        key = d.message.split("`")[1]
        assert lines[d.line - 1][d.column - 1 :].startswith(
            key if d.code == "W103" else d.message.split()[-1]
        ), (lines[d.line - 1], d.column)
