r"""Lipschitz bounds (E400): ``require lipschitz <= L`` / ``inverse_lipschitz <= L``.

The bound is proven from the registry's per-block bounds.  Because every tensor is
consumed once, the live tensors at any point are functions of disjoint groups of
input coordinates, so a tensor's constant is the block's bound times the largest
constant of its inputs (for f(u) ⊕ g(v) on disjoint u, v:
‖·‖² ≤ L_f²‖Δu‖² + L_g²‖Δv‖² ≤ max(L_f, L_g)²‖Δ(u, v)‖²), and Lip(F) is the largest
constant among the outputs.  The inverse is bounded the same way from the outputs
back.  A block that reads ``cond=`` breaks disjointness; all such blocks are
unbounded in the registry.

    >>> from flowspec.checks.examples import diagnose
    >>> diagnose("require lipschitz <= 2.0\nx = affine(x)")
    E400 3:5 `require lipschitz <= 2` is not proven: Lip(F) has no bound because
        `affine` is unbounded: its learned scale has no bound
    >>> diagnose("require lipschitz <= 2.0\nx = residual(x, net=mlp(hidden=[8]), lipschitz=0.9)")
    clean
"""

from __future__ import annotations

from dataclasses import dataclass

from flowspec.core.diagnostics import Diagnostic, Label
from flowspec.ir.graph import FlowGraph
from flowspec.ir.resolved import Configured, ResolvedFlow
from flowspec.kinds import REGISTRY


@dataclass(frozen=True)
class Proof:
    """A bound and, when it is infinite, the block and reason that make it so."""

    value: float | None
    node: Configured | None = None
    reason: str = ""


def _combine(parts: list[Proof], factor: Proof) -> Proof:
    # an input already unbounded keeps its reason: E400 names the first unbounded block
    for p in (*parts, factor):
        if p.value is None:
            return p
    return Proof((factor.value or 0.0) * max((p.value or 0.0 for p in parts), default=1.0))


def lipschitz_bound(flow: FlowGraph | ResolvedFlow, inverse: bool = False) -> Proof:
    """A proven upper bound of Lip(F) (or of Lip(F⁻¹) with ``inverse=True``) of an
    elaborated flow."""
    rf = flow if isinstance(flow, ResolvedFlow) else ResolvedFlow.of(flow)
    if len(rf.blocks) != len(rf.graph.blocks()):
        raise ValueError("lipschitz_bound needs an elaborated flow")
    fg = rf.graph
    consts: dict[str, Proof] = {}
    blocks = list(rf.blocks)
    if inverse:
        for tid in fg.outputs:
            consts[tid] = Proof(1.0)
        blocks.reverse()
    elif fg.input is not None:
        consts[fg.input] = Proof(1.0)
    for node in blocks:
        spec = REGISTRY[node.kind]
        fn = spec.inverse_lipschitz if inverse else spec.lipschitz
        b = fn(node.options, node.in_shapes)
        factor = Proof(b.value, node, b.reason)
        if node.reads and b.value is not None:
            factor = Proof(None, node, "it reads a `cond=` tensor")
        sources, targets = (node.outputs, node.inputs) if inverse else (node.inputs, node.outputs)
        proof = _combine([consts.get(t, Proof(1.0)) for t in sources], factor)
        for t in targets:
            consts[t] = proof
    final = [fg.input] if inverse else list(fg.outputs)
    return _combine([consts.get(t, Proof(1.0)) for t in final if t is not None], Proof(1.0))


def check_lipschitz(rf: ResolvedFlow) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    if len(rf.blocks) != len(rf.graph.blocks()):
        return diags  # an earlier error already explains the flow; no cascade
    for req in rf.graph.requirements:
        if req.property not in ("lipschitz", "inverse_lipschitz") or req.bound is None:
            continue
        proof = lipschitz_bound(rf, inverse=req.property == "inverse_lipschitz")
        what = "Lip(F⁻¹)" if req.property == "inverse_lipschitz" else "Lip(F)"
        if proof.value is None:
            labels: tuple[Label, ...] = ()
            if proof.node is not None:
                labels = (
                    Label(proof.node.span, f"`{proof.node.kind}` is unbounded: {proof.reason}"),
                )
            diags.append(
                Diagnostic(
                    "E400",
                    f"`require {req.property} <= {req.bound:g}` is not proven: {what} has "
                    f"no bound because `{proof.node.kind if proof.node else '?'}` "
                    f"{'is unbounded' if proof.node else ''}: {proof.reason}",
                    req.span,
                    labels=labels,
                    hint="only blocks with a static bound (permutations, residual blocks, "
                    "fixed elementwise maps) can be proven",
                )
            )
        elif proof.value > req.bound * (1 + 1e-12):
            diags.append(
                Diagnostic(
                    "E400",
                    f"`require {req.property} <= {req.bound:g}` is not proven: the best "
                    f"proven bound of {what} is {proof.value:.6g}",
                    req.span,
                )
            )
    return diags
