"""Issue 10, language gaps: ``net=`` is required where LANGUAGE.md §3 lists it.

The couplings, ``residual`` and ``ode`` take ``net`` without a default (§3 writes
``coupling.affine(x, net, ...)``), so leaving it out is E201 "missing option `net`" at
the block call, with a typical net as the hint, in both syntaxes, never a silent
default mlp.  The autoregressive kinds build their own MADE (``hidden=``) and take no
``net``.
"""

from __future__ import annotations

import pytest

from flowspec.core.spans import Source
from flowspec.driver import Compilation
from flowspec.kinds import REGISTRY
from flowspec.syntax import dsl
from flowspec.syntax.to_yaml import to_yaml

#: every kind LANGUAGE.md §3 lists with a bare `net`
NET_KINDS = ("coupling.additive", "coupling.affine", "coupling.spline", "residual", "ode")


def flow(body: str, shape: str = "[4]") -> str:
    return f"flow f {{\n    input x: {shape}\n    {body}\n    output x\n}}\n"


def diagnose(text: str, path: str = "t.flow") -> list[tuple[str, int, int, str, str | None]]:
    diags = Compilation(Source(path, text)).diagnostics
    return [(d.code, d.line, d.column, d.message, d.hint) for d in diags]


def test_the_registry_requires_net_exactly_where_the_language_lists_it():
    with_net = {k.name for k in REGISTRY.values() if any(o.name == "net" for o in k.options)}
    assert with_net >= set(NET_KINDS)
    for name in NET_KINDS:
        (net,) = [o for o in REGISTRY[name].options if o.name == "net"]
        assert net.required and net.default is None, name
    for name in ("autoregressive.affine", "autoregressive.spline"):
        assert "net" not in {o.name for o in REGISTRY[name].options}


@pytest.mark.parametrize("kind", NET_KINDS)
def test_a_missing_net_is_e201_at_the_call_with_a_typical_net(kind):
    (d,) = diagnose(flow(f"x = {kind}(x)"))
    code, line, column, message, hint = d
    assert (code, line, column) == ("E201", 3, 9)
    assert message == f"`{kind}` is missing option `net`"
    assert "`net=mlp(hidden=[64, 64]" in hint and "`net=conv(" in hint


def test_the_residual_hint_shows_a_1_lipschitz_activation():
    (d,) = diagnose(flow("x = residual(x, lipschitz=0.9)"))
    assert "act=lipswish" in d[4]


def test_the_same_spec_in_yaml_gets_the_same_diagnostic_at_the_step():
    text = flow("x = coupling.affine(x, mask=alternate)")
    program, errors = dsl.parse(Source("t.flow", text))
    assert errors == []
    yaml_text = to_yaml(program)
    (from_flow,) = diagnose(text)
    (from_yaml,) = diagnose(yaml_text, "t.yaml")
    assert from_yaml[0] == from_flow[0] and from_yaml[3:] == from_flow[3:]
    step_line = next(i for i, s in enumerate(yaml_text.splitlines(), 1) if "coupling" in s)
    assert from_yaml[1] == step_line


def test_a_missing_net_in_a_block_nobody_calls_is_reported_too():
    text = "block b(x) {\n    x = ode(x)\n    return x\n}\n" + flow("x = affine(x)")
    assert [d[:4] for d in diagnose(text)] == [("E201", 2, 9, "`ode` is missing option `net`")]


def test_a_misspelt_net_is_one_did_you_mean_not_also_a_missing_net():
    (d,) = diagnose(flow("x = coupling.affine(x, nett=mlp)"))
    assert d[0] == "E200" and d[4] == "did you mean `net`?"


def test_a_missing_net_does_not_hide_the_other_blocks_errors():
    text = flow("x = coupling.affine(x)\n    x = shuffle(x, seed=-1)")
    assert [d[:3] for d in diagnose(text)] == [("E201", 3, 9), ("E201", 4, 25)]


def test_with_a_net_the_same_call_is_clean():
    body = "x = coupling.affine(x, net=mlp(hidden=[8]))\n    x = reverse(x)\n    " * 2
    assert diagnose(flow(body.strip())) == []
