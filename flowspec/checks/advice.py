"""Options that have no effect as configured (W103), from each kind's registry ``advice``.

The hook sees the resolved options and the names the call wrote, so a default is never
reported, only an option the user gave:

    >>> from flowspec.checks.examples import diagnose
    >>> diagnose("x = ode(x, net=mlp(hidden=[8], act=tanh), solver=euler, rtol=1e-6)")
    W103 3:61 `rtol` has no effect with the fixed-step solver `euler`: it takes steps=20
        equal steps and controls no error
"""

from __future__ import annotations

from flowspec.core.diagnostics import Diagnostic
from flowspec.ir.graph import FlowGraph
from flowspec.kinds import REGISTRY


def check_advice(fg: FlowGraph) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    for node in fg.blocks():
        if node.options is None:
            continue
        given = frozenset(a.key for a in node.args)
        for p in REGISTRY[node.kind].advice(node.options, given):
            span = node.arg_span(p.option) if p.option else node.span
            diags.append(Diagnostic(p.code, p.message, span, hint=p.hint))
    return diags
