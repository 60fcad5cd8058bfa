"""Options that have no effect as configured (W103), from each kind's registry ``advice``,
and dense nets on images (W104).

The hook sees the resolved options and the names the call wrote, so a default is never
reported, only an option the user gave:

    >>> from flowspec.checks.examples import diagnose
    >>> diagnose("x = ode(x, net=mlp(hidden=[8], act=tanh), solver=euler, rtol=1e-6)")
    W103 3:61 `rtol` has no effect with the fixed-step solver `euler`: it takes steps=20
        equal steps and controls no error
    >>> diagnose("x = residual(x, net=mlp(hidden=[8], act=lipswish))", "[1, 2, 2]")
    W104 3:21 `mlp` on a [1, 2, 2] tensor flattens it: it ignores which pixels are
        neighbours
"""

from __future__ import annotations

from flowspec.core.diagnostics import Diagnostic
from flowspec.ir.resolved import ResolvedFlow
from flowspec.kinds import REGISTRY
from flowspec.kinds.options import Choice


def check_advice(rf: ResolvedFlow) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    for node in rf.configured:
        given = frozenset(a.key for a in node.args)
        for p in REGISTRY[node.kind].advice(node.options, given):
            span = node.arg_span(p.option) if p.option else node.span
            diags.append(Diagnostic(p.code, p.message, span, hint=p.hint))
    return diags


def check_dense_nets(rf: ResolvedFlow) -> list[Diagnostic]:
    """W104: ``net=mlp(...)`` written on a [C, H, W] tensor flattens it, the usual slip
    when an image flow is written from a 2-D one (``conv`` keeps the layout)."""
    diags: list[Diagnostic] = []
    for node in rf.blocks:
        net = node.options.get("net")
        if not isinstance(net, Choice) or net.kind != "mlp":
            continue
        if not any(a.key == "net" for a in node.args):
            continue  # a defaulted net: whether `net` may be omitted is the arguments' call
        shape = tuple(node.in_shapes[0])
        if len(shape) != 3:
            continue
        diags.append(
            Diagnostic(
                "W104",
                f"`mlp` on a {list(shape)} tensor flattens it: it ignores which pixels "
                "are neighbours",
                node.arg_span("net"),
                hint="use net=conv(hidden=...) for images, or `flatten(x)` first if a dense "
                "net is meant",
            )
        )
    return diags
