r"""Consumption (E300, E301): every tensor is consumed exactly once.

``cond=`` reads a tensor without consuming it.  E301 points at the second use and
labels the first.  A flow's ``context`` is only ever read; lowering reports passing it
as a tensor (E304).

    >>> from flowspec.checks.examples import diagnose
    >>> diagnose("a, b = split(x)\nx = actnorm(a)")
    W100 2:5 2 of the 4 features of `x` [4] are never transformed by a
        non-volume-preserving or coupling block (flat indices 2..3)
    E300 3:8 tensor `b` is bound but never consumed (information dropped)
    >>> diagnose("a, b = split(x)\nx = concat(a, a)\nx = actnorm(x)")
    W100 2:5 2 of the 4 features of `x` [4] are never transformed by a
        non-volume-preserving or coupling block (flat indices 2..3)
    E300 3:8 tensor `b` is bound but never consumed (information dropped)
    E301 4:19 tensor `a` is consumed twice
"""

from __future__ import annotations

from flowspec.core.diagnostics import Diagnostic, Label
from flowspec.ir.graph import FlowGraph
from flowspec.ir.resolved import ResolvedFlow


def check_consumption(rf: ResolvedFlow) -> list[Diagnostic]:
    fg = rf.graph
    diags: list[Diagnostic] = []
    for tid, tensor in fg.tensors.items():
        uses = [u for u in fg.uses[tid] if not u.read_only]
        if tid == fg.context:  # only ever read: lowering reports a consuming use (E304)
            continue
        if not uses:
            rebound = _rebinding(fg, tid)
            labels = (Label(rebound, f"`{tensor.name}` is bound again here"),) if rebound else ()
            diags.append(
                Diagnostic(
                    "E300",
                    f"tensor `{tensor.name}` is bound but never consumed (information dropped)",
                    tensor.span,
                    hint="pass it to a block or list it in `output`",
                    labels=labels,
                )
            )
        for extra in uses[1:]:
            diags.append(
                Diagnostic(
                    "E301",
                    f"tensor `{tensor.name}` is consumed twice",
                    extra.span,
                    hint="a flow must use each tensor once; pass it as `cond=` to read it, or "
                    "split it first",
                    labels=(Label(uses[0].span, "first consumed here"),),
                )
            )
    return diags


def _rebinding(fg: FlowGraph, tid: str):
    """Where the same name is bound next, if it is (the usual way a tensor is dropped)."""
    tensor = fg.tensors[tid]
    ids = list(fg.tensors)
    for later in ids[ids.index(tid) + 1 :]:
        if fg.tensors[later].name == tensor.name:
            return fg.tensors[later].span
    return None
