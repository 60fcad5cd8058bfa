"""Random valid `.flow` programs compile to correct bijections, end to end.

A hypothesis strategy writes programs over the flat-vector block kinds — couplings
(additive, affine with every scale, spline) with either mask and ``flip``, the
permutations, actnorm, affine, linear (LU or not), leaky_relu, planar, radial and the
autoregressive blocks — and the structural pieces: ``split`` into parts that each get
their own blocks and are concatenated again (in any order), couplings conditioned with
``cond=`` on another part of the split, ``repeat N { ... }`` and a top-level ``block``
called at least twice.  Every tensor is consumed exactly once, so each program checks
with no errors.

Each program is compiled in float64 with its parameters moved off their (identity)
initialisation and actnorm initialised on a batch; then, in eval mode: the inverse
round trip, ladj against log|det| of the brute-force Jacobian, inverse ladj =
−forward ladj, the value-only paths against the fused ones, ``log_prob`` = base +
ladj, and the written source exec'd as a module reproducing the outputs bit for bit
from the state_dict.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowspec
from flowspec.driver import Compilation

# ---------------------------------------------------------------------- the generator

ACTS = ("relu", "tanh", "elu", "softplus")
#: tensor names: plain ones, names the generated code uses for itself, Python keywords
#: and builtins, and names like those the code generator makes up to avoid clashes
NAMES = (
    *"xyzab",
    "l",
    "ladj",
    "self",
    "torch",
    "home",
    "Choice",
    "Flow",
    "Model",
    "lambda",
    "in",
    "None",
    "True",
    "super",
    "__class__",
    "l_",
    "z_",
    "z_2",
    "b0",
)
#: flow names: some make class names that clash with runtime classes or imports
FLOW_NAMES = ("f", "planar", "split", "concat", "affine_coupling", "model", "torch", "Flow")


@dataclass
class Writer:
    """The program being written: its lines, fresh names, and how many blocks so far
    (a budget keeps each example fast)."""

    lines: list[str] = field(default_factory=list)
    fresh: int = 0
    blocks: int = 0
    planar: bool = False
    used: set[str] = field(default_factory=set)

    def name(self, draw) -> str:
        """A tensor name not used before in the program, often one the generated Python
        itself needs (``ladj``, ``self``, ``z``) or a Python keyword."""
        base = draw(st.sampled_from(NAMES))
        name = base
        while name in self.used:
            self.fresh += 1
            name = f"{base}_{self.fresh}"
        self.used.add(name)
        return name


def _net(draw) -> str:
    act = draw(st.sampled_from((None, *ACTS)))
    return "mlp(hidden=[8])" if act is None else f"mlp(hidden=[8], act={act})"


def _order(draw) -> str:
    order = draw(st.sampled_from(("natural", "reverse", "random")))
    return f"random(seed={draw(st.integers(0, 50))})" if order == "random" else order


def _coupling(draw, v: str, cond: str | None = None) -> str:
    kind = draw(st.sampled_from(("additive", "affine", "spline")))
    args = [v, f"net={_net(draw)}", f"mask={draw(st.sampled_from(('half', 'alternate')))}"]
    if draw(st.booleans()):
        args.append(f"flip={'true' if draw(st.booleans()) else 'false'}")
    if kind == "affine":
        args.append(f"scale={draw(st.sampled_from(('exp', 'sigmoid', 'softclamp')))}")
    elif kind == "spline":
        args.append(f"bins={draw(st.integers(2, 4))}")
        args.append(f"bound={draw(st.sampled_from(('2.0', '3.0')))}")
    if cond is not None:
        args.append(f"cond={cond}")
    return f"coupling.{kind}({', '.join(args)})"


def _autoregressive(draw, v: str, cond: str | None = None) -> str:
    kind = draw(st.sampled_from(("affine", "spline")))
    args = [v, "hidden=[8]", f"order={_order(draw)}"]
    if draw(st.booleans()):
        args.append(f"iaf={'true' if draw(st.booleans()) else 'false'}")
    if kind == "spline":
        args.append(f"bins={draw(st.integers(2, 4))}")
    if cond is not None:
        args.append(f"cond={cond}")
    return f"autoregressive.{kind}({', '.join(args)})"


def _block(draw, w: Writer, v: str, n: int) -> str:
    """One block applied to ``v`` of ``n`` features, as the right-hand side."""
    kinds = [
        "reverse",
        "shuffle",
        "permute",
        "actnorm",
        "affine",
        "linear",
        "leaky_relu",
        "planar",
        "radial",
        "autoregressive",
    ]
    if n >= 2:
        kinds += ["coupling"] * 6
    kind = draw(st.sampled_from(kinds))
    w.blocks += 1
    if kind == "coupling":
        return _coupling(draw, v)
    if kind == "autoregressive":
        return _autoregressive(draw, v)
    if kind == "shuffle":
        return f"shuffle({v}, seed={draw(st.integers(0, 99))})"
    if kind == "permute":
        order = draw(st.permutations(range(n)))
        return f"permute({v}, order=[{', '.join(map(str, order))}])"
    if kind == "linear":
        return f"linear({v}, lu={draw(st.sampled_from(('true', 'false')))})"
    if kind == "leaky_relu":
        # not 0.01: a few of those in a row with an actnorm shift between make the map
        # so ill-conditioned that rounding alone breaks a 1e-7 round trip
        slope = draw(st.sampled_from(("0.1", "0.2", "0.5", "2.0")))
        return f"leaky_relu({v}, slope={slope})"
    if kind == "planar":
        w.planar = True
        return f"planar({v}, act={draw(st.sampled_from(('tanh', 'leaky_relu')))})"
    return f"{kind}({v})"


def _compositions(n: int) -> st.SearchStrategy[list[int]]:
    """Sizes of 2 or 3 positive parts adding up to n: cut 0..n at distinct points."""
    return (
        st.integers(2, min(3, n))
        .flatmap(
            lambda k: st.lists(st.integers(1, n - 1), min_size=k - 1, max_size=k - 1, unique=True)
        )
        .map(lambda cuts: [b - a for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), n])])
    )


BUDGET = 14  # blocks per program, repeats unrolled


def _statements(
    draw, w: Writer, v: str, n: int, indent: str, depth: int, step: int | None, count: int
) -> int:
    """Write ``count`` statements on tensor ``v`` of ``n`` features (each leaves ``v``
    bound to a tensor of ``n`` features); returns how many ``step`` calls were written.
    ``step`` is the feature count of the top-level block, if it may be called here."""
    calls = 0
    for _ in range(count):
        options = ["block"] * 4
        if w.blocks < BUDGET and depth < 2:
            if n >= 2:
                options += ["split"] * 2
            options.append("repeat")
        if step == n and w.blocks < BUDGET:
            options.append("call")
        what = draw(st.sampled_from(options))
        if what == "block" or w.blocks >= BUDGET:
            w.lines.append(f"{indent}{v} = {_block(draw, w, v, n)}")
        elif what == "call":
            w.lines.append(f"{indent}{v} = step({v})")
            w.blocks += 3
            calls += 1
        elif what == "repeat":
            times = draw(st.integers(1, 3))
            w.lines.append(f"{indent}repeat {times} {{")
            before = w.blocks
            k = _statements(
                draw, w, v, n, indent + "    ", depth + 1, step, draw(st.integers(1, 2))
            )
            calls += k * times
            w.blocks += (w.blocks - before) * (times - 1)
            w.lines.append(f"{indent}}}")
        else:
            calls += _split(draw, w, v, n, indent, depth, step)
    return calls


def _split(draw, w: Writer, v: str, n: int, indent: str, depth: int, step: int | None) -> int:
    sizes = draw(_compositions(n))
    parts = [w.name(draw) for _ in sizes]
    w.lines.append(
        f"{indent}{', '.join(parts)} = split({v}, sizes=[{', '.join(map(str, sizes))}])"
    )
    calls = 0
    # a conditioned block on one part, reading another part (read, not consumed)
    conditioned = None
    if draw(st.booleans()):
        i = draw(st.integers(0, len(parts) - 1))
        j = draw(st.integers(0, len(parts) - 2))
        j = j if j < i else j + 1
        conditioned = (i, j, draw(st.integers(0, len(parts))))
    for k, (p, s) in enumerate(zip(parts, sizes)):
        if conditioned is not None and conditioned[2] == k:
            _conditioned(draw, w, parts, sizes, conditioned, indent)
        calls += _statements(draw, w, p, s, indent, depth + 1, step, draw(st.integers(0, 2)))
    if conditioned is not None and conditioned[2] == len(parts):
        _conditioned(draw, w, parts, sizes, conditioned, indent)
    order = draw(st.permutations(parts))
    w.lines.append(f"{indent}{v} = concat({', '.join(order)})")
    return calls


def _conditioned(draw, w: Writer, parts, sizes, conditioned, indent: str) -> None:
    i, j, _ = conditioned
    p, c = parts[i], parts[j]
    w.blocks += 1
    if sizes[i] >= 2 and draw(st.booleans()):
        rhs = _coupling(draw, p, cond=c)
    else:
        rhs = _autoregressive(draw, p, cond=c)
    w.lines.append(f"{indent}{p} = {rhs}")


@st.composite
def programs(draw) -> tuple[str, bool]:
    """A valid `.flow` program over flat vectors, and whether it uses planar (whose
    inverse is iterative)."""
    d = draw(st.integers(2, 6))
    w = Writer()
    out: list[str] = []
    step = None
    if draw(st.booleans()):
        # a reusable block over d features, called at least twice below
        p = w.name(draw)
        w.lines.append(f"block step({p}) {{")
        _statements(draw, w, p, d, "    ", 1, None, draw(st.integers(1, 3)))
        w.lines.append(f"    return {p}")
        w.lines.append("}")
        out, w.lines = w.lines, []
        step = d
        w.blocks = 0
    x = w.name(draw)
    w.lines += [f"flow {draw(st.sampled_from(FLOW_NAMES))} {{", f"    input {x}: [{d}]"]
    calls = _statements(draw, w, x, d, "    ", 0, step, draw(st.integers(1, 6)))
    if step is not None:
        for _ in range(max(0, 2 - calls)):
            # at the top level only, where the input's name is bound: first or last
            w.lines.insert(draw(st.sampled_from((2, len(w.lines)))), f"    {x} = step({x})")
    w.lines += [f"    output {x}", "}"]
    return "\n".join([*out, *w.lines]) + "\n", w.planar


# ----------------------------------------------------------------------- the checks


def prepared(text: str, seed: int = 0) -> flowspec.Flow:
    """The compiled float64 module, parameters perturbed, actnorm initialised, in eval."""
    torch.manual_seed(seed)
    flow = flowspec.compile(text, dtype=torch.float64)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
        flow.train()
        flow(torch.randn(64, *flow.input_shape, dtype=torch.float64))
    return flow.eval()


def brute_force_ladj(flow: flowspec.Flow, x: torch.Tensor) -> torch.Tensor:
    def logdet(xi: torch.Tensor) -> torch.Tensor:
        jac = torch.autograd.functional.jacobian(lambda v: flow.transform(v[None])[0], xi)
        return torch.linalg.slogdet(jac)[1]

    return torch.stack([logdet(xi) for xi in x])


def from_written_source(text: str, flow: flowspec.Flow) -> flowspec.Flow:
    """The generated source exec'd as a module of its own, loaded from ``flow``'s
    state_dict."""
    source = Compilation.of(text).generate()
    namespace: dict = {"__name__": "written_flow"}
    exec(builtins.compile(source, "<written_flow>", "exec"), namespace)
    module = namespace["Model"]().to(torch.float64)
    module.load_state_dict(flow.state_dict())
    return module.eval()


def assert_correct_bijection(text: str, planar: bool) -> None:
    errors = [d for d in flowspec.check(text) if d.is_error]
    assert not errors, [(d.code, d.message) for d in errors]
    flow = prepared(text)
    x = torch.randn(
        8, *flow.input_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        z, ladj = flow(x)
        assert z.shape == x.shape and ladj.shape == (8,)
        x_back, ladj_inv = flow.inverse(z)
        # planar's inverse solves a 1-D root finding problem, to its tolerance
        tol = 1e-6 if planar else 1e-7
        # the inverse may amplify rounding by up to 1/|det J| (twelve leaky_relus of slope
        # 0.1 contract a negative input by 1e-12): the error in x is allowed that much,
        # sample by sample, and the forward of the round trip must land on z regardless
        allowed = tol * torch.exp((-ladj).clamp(min=0.0))
        error = (x_back - x).abs().flatten(1).max(dim=1).values
        assert (error < allowed).all(), (error, allowed)
        assert (flow.transform(x_back) - z).abs().max() < tol
        assert (ladj_inv + ladj).abs().max() < 1e-6, (ladj_inv + ladj).abs().max()

        assert (flow.transform(x) - z).abs().max() < 1e-10
        assert (flow.inverse_transform(z) - x_back).abs().max() < 1e-10
        expected = flow.base_log_prob(z) + ladj
        assert (flow.log_prob(x) - expected).abs().max() < 1e-10

    exact = brute_force_ladj(flow, x[:3])
    assert (ladj[:3] - exact).abs().max() < 1e-6, (ladj[:3], exact)

    written = from_written_source(text, flow)
    with torch.no_grad():
        z2, ladj2 = written(x)
        assert torch.equal(z2, z) and torch.equal(ladj2, ladj)
        x2, ladj_inv2 = written.inverse(z)
        assert torch.equal(x2, x_back) and torch.equal(ladj_inv2, ladj_inv)
        assert torch.equal(written.transform(x), flow.transform(x))
        assert torch.equal(written.inverse_transform(z), flow.inverse_transform(z))


FAST = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = settings(FAST, max_examples=300, derandomize=False)


@FAST
@given(programs())
def test_random_programs_compile_to_correct_bijections(program):
    assert_correct_bijection(*program)


@pytest.mark.slow
@LONG
@given(programs())
def test_random_programs_compile_to_correct_bijections_long(program):
    assert_correct_bijection(*program)
