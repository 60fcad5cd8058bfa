"""Invertibility as configured (E302, E303).

Each kind's registry entry lists the problems of a configuration (a zero slope, a
residual branch that is not contractive).  A ``cond=`` tensor must also be
recoverable before the block that reads it is inverted.

    >>> from flowspec.checks.examples import diagnose
    >>> diagnose("x = leaky_relu(x, slope=0)")
    E302 3:23 leaky_relu with slope=0 is not invertible
    >>> diagnose("x = residual(x, net=mlp(hidden=[64]), lipschitz=1.2)")
    E303 3:43 residual block needs lipschitz < 1 to be invertible, got 1.2
"""

from __future__ import annotations

from flowspec.core.diagnostics import Diagnostic
from flowspec.ir.graph import FlowGraph
from flowspec.ir.queries import inverse_dependencies
from flowspec.ir.resolved import Resolved, ResolvedFlow
from flowspec.kinds import REGISTRY


def check_invertibility(rf: ResolvedFlow) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    for node in rf.configured:
        spec = REGISTRY[node.kind]
        shapes = node.in_shapes if isinstance(node, Resolved) else []
        for p in spec.problems(node.options, shapes):
            span = node.arg_span(p.option) if p.option else node.span
            diags.append(Diagnostic(p.code, p.message, span, hint=p.hint))
    diags.extend(_inverse_order_problems(rf.graph))
    return diags


def _inverse_order_problems(fg: FlowGraph) -> list[Diagnostic]:
    if not any(n.reads for n in fg.nodes()):
        return []
    out = []
    for node in fg.blocks():
        for key, tid in node.reads.items():
            if tid in node.inputs:
                out.append(
                    Diagnostic(
                        "E302",
                        f"a block cannot condition on the tensor it transforms "
                        f"(`{key}={fg.tensors[tid].name}`)",
                        node.arg_span(key),
                        hint="condition on another tensor",
                    )
                )
    if out:
        return out
    import networkx as nx

    deps = inverse_dependencies(fg)
    try:
        nx.find_cycle(deps)
    except nx.NetworkXNoCycle:
        return []
    for node in fg.blocks():
        for key, tid in node.reads.items():
            consumer = next((u.node for u in fg.uses[tid] if not u.read_only), None)
            if consumer is not None and nx.has_path(deps, node.id, consumer):
                name = fg.tensors[tid].name
                out.append(
                    Diagnostic(
                        "E302",
                        f"`{key}={name}` cannot be recovered before this block is "
                        "inverted: it is consumed by a block that needs this block's result",
                        node.arg_span(key),
                        hint="condition on a tensor that reaches `output` unchanged, or on "
                        f"`{name}` after the blocks that transform it",
                    )
                )
    return out
