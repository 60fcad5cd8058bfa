"""Resources known before anything is allocated: parameters and memory per sample.

Every block kind counts its learned parameters from its options and shapes
(``BlockKind.parameters``, :mod:`flowspec.kinds.sizes`), so a flow's size is known
to the checker, without torch and without building a module.  ``flowspec check
--max-params N`` and ``flowspec.compile(..., max_params=N)`` refuse a flow over the
limit (E501) at its largest contributor (a typo'd input before a ``linear``; the
same block on 1,000 features is clean):

    >>> from flowspec.checks.examples import diagnose
    >>> diagnose("x = linear(x)", shape="[1000000]")
    E501 3:9 flow `f` has 2,000,001,000,000 parameters (8.0 TB in float32), over the
        limit of 2,000,000,000; the largest is this `linear`: 2,000,001,000,000
        parameters (100.0%)
    >>> diagnose("x = linear(x)", shape="[1000]")
    clean

The memory estimate (``flowspec summary``), in float32 numbers, is a model, not a
measurement:

- *parameters*: 4 bytes each; training adds their gradients and Adam's two moments,
  16 bytes per parameter in all;
- *training, per sample*: what autograd keeps for the backward pass: the input, every
  block's outputs, and every block's ``activations`` (its nets' layers);
- *inference, per sample* (no gradients): the peak over the blocks of the tensors live
  while a block runs (those made earlier and still to be used, and its outputs) plus
  that block's ``activations``.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowspec.core.diagnostics import Diagnostic, Label
from flowspec.ir.graph import FlowGraph, Node
from flowspec.ir.resolved import Resolved, ResolvedFlow
from flowspec.kinds import REGISTRY
from flowspec.kinds.sizes import format_bytes, numel

#: how many contributors an E501 points at, the largest as its primary span
MAX_CONTRIBUTORS = 4


@dataclass(frozen=True)
class Resources:
    """A flow's sizes, from the registry's formulas: per block (in ``fg.blocks()``
    order) its parameters and activations per sample; for the flow the numbers per
    sample training keeps and inference peaks at."""

    parameters: tuple[int, ...]
    activations: tuple[int, ...]
    training_per_sample: int
    inference_per_sample: int

    @property
    def total(self) -> int:
        return sum(self.parameters)


def flow_resources(flow: FlowGraph | ResolvedFlow) -> Resources | None:
    """The sizes of an elaborated flow, or None when a block has no options or shapes
    (an error elsewhere left it unresolved)."""
    rf = flow if isinstance(flow, ResolvedFlow) else ResolvedFlow.of(flow)
    fg, blocks = rf.graph, list(rf.blocks)
    if len(blocks) != len(fg.blocks()):
        return None
    params, acts = [], []
    for node in blocks:
        kind = REGISTRY[node.kind]
        params.append(kind.count_parameters(node.options, node.in_shapes))
        acts.append(int(kind.activations(node.options, node.in_shapes)))
    return Resources(tuple(params), tuple(acts), _training(fg, acts), _inference(fg, blocks, acts))


def _size(fg: FlowGraph, tid: str) -> int:
    shape = fg.tensors[tid].shape
    return numel(shape) if shape is not None else 0


def _training(fg: FlowGraph, acts: list[int]) -> int:
    kept = _size(fg, fg.input) if fg.input is not None else 0
    for node, a in zip(fg.blocks(), acts):
        kept += a + sum(_size(fg, t) for t in node.outputs)
    return kept


def _inference(fg: FlowGraph, blocks: list[Resolved], acts: list[int]) -> int:
    position = {n.id: i for i, n in enumerate(blocks)}
    last_use: dict[str, int] = {}
    for tid, uses in fg.uses.items():
        at = [position[u.node] for u in uses if u.node in position]
        last_use[tid] = max(at) if at else len(blocks)  # an output: live to the end
    live = {t for t in (fg.input, fg.context) if t is not None}
    peak = sum(_size(fg, t) for t in live)
    for i, (node, a) in enumerate(zip(blocks, acts)):
        live.update(node.outputs)
        peak = max(peak, a + sum(_size(fg, t) for t in live))
        live = {t for t in live if last_use.get(t, len(blocks)) > i}
    return peak


def device_memory(fg: FlowGraph, res: Resources) -> dict[str | None, tuple[int, int]]:
    """Per device (``None``: the input's own), numbers per sample for training and for
    inference, by the model above applied to the blocks on that device: a tensor lives
    on the device of the block that made it (the input at home), and a copy a transfer
    makes lives, and is kept for backward, on the device it was moved to."""
    home = _size(fg, fg.input) if fg.input is not None else 0
    training: dict[str | None, int] = {None: home}
    where: dict[str, str | None] = {t: None for t in (fg.input, fg.context) if t is not None}
    blocks = fg.blocks()
    position = {n.id: i for i, n in enumerate(blocks)}
    last_use = {
        tid: max((position[u.node] for u in uses if u.node in position), default=len(blocks))
        for tid, uses in fg.uses.items()
    }
    live: dict[str, str | None] = dict(where)
    peak: dict[str | None, int] = {}
    for i, (node, a) in enumerate(zip(blocks, res.activations)):
        kept = a + sum(_size(fg, t) for t in node.outputs)
        for tid in (*node.inputs, *node.reads.values()):
            if where.get(tid) != node.device:  # a copy on this block's device
                kept += _size(fg, tid)
                live[tid] = node.device
        training[node.device] = training.get(node.device, 0) + kept
        for tid in node.outputs:
            where[tid] = live[tid] = node.device
        here = a + sum(_size(fg, t) for t, d in live.items() if d == node.device)
        peak[node.device] = max(peak.get(node.device, 0), here)
        live = {t: d for t, d in live.items() if last_use.get(t, len(blocks)) > i}
    devices = [d for d in training if training[d] or d in peak]
    return {d: (training[d], peak.get(d, home if d is None else 0)) for d in devices}


def contributors(fg: FlowGraph, res: Resources) -> list[tuple[Node, int, int]]:
    """(first node, blocks, parameters) per source statement, largest first: the
    iterations of a ``repeat`` and the calls of a ``block`` add up at their statement."""
    by_span: dict[object, list] = {}
    for node, n in zip(fg.blocks(), res.parameters):
        entry = by_span.setdefault(node.span, [node, 0, 0])
        entry[1] += 1
        entry[2] += n
    return sorted((tuple(e) for e in by_span.values()), key=lambda e: -e[2])


def _what(node: Node, count: int, n: int, total: int) -> str:
    times = f" ×{count}" if count > 1 else ""
    return f"`{node.kind}`{times}: {n:,} parameters ({100 * n / total:.1f}%)"


def check_parameters(fg: FlowGraph, max_params: int | None) -> list[Diagnostic]:
    """E501 when the flow's parameters exceed ``max_params`` (None: no limit), at the
    statement contributing most, with the next largest as labels."""
    if max_params is None:
        return []
    res = flow_resources(fg)
    if res is None or res.total <= max_params:
        return []
    total = res.total
    top = [c for c in contributors(fg, res) if c[2] > 0][:MAX_CONTRIBUTORS]
    node, count, n = top[0]
    return [
        Diagnostic(
            "E501",
            f"flow `{fg.name}` has {total:,} parameters ({format_bytes(4 * total)} in "
            f"float32), over the limit of {max_params:,}; the largest is this "
            + _what(node, count, n, total),
            node.span,
            hint="use smaller hidden widths or a smaller input, or raise the limit "
            "(`--max-params N`, `flowspec.compile(..., max_params=N)`; 0 or None: no limit)",
            labels=tuple(Label(m.span, _what(m, c, k, total)) for m, c, k in top[1:]),
        )
    ]
