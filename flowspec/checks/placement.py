"""Device placement (E500): the devices named by ``on`` blocks.

>>> from flowspec.checks.examples import diagnose
>>> diagnose('on "cuda:1" { x = actnorm(x) }')
clean
>>> diagnose("on gpu { x = actnorm(x) }")
E500 3:8 unknown device `gpu`

W106: a ``cond=`` tensor or a split output that is moved back to a device it already
left (``on A {...} on B {...} on A {...}`` all reading it) costs a transfer per call in
each direction; one region boundary placed differently would avoid it.
"""

from __future__ import annotations

import re

from flowspec.core.diagnostics import Diagnostic
from flowspec.core.names import did_you_mean
from flowspec.ir.graph import FlowGraph
from flowspec.ir.resolved import ResolvedFlow

DEVICE_TYPES = ("cpu", "cuda", "mps", "meta")
_DEVICE = re.compile(r"(cpu|cuda|mps|meta)(:(0|[1-9][0-9]*))?\Z")


def valid_device(text: str) -> bool:
    m = _DEVICE.match(text)
    return m is not None and not (
        m.group(2) and m.group(1) in ("meta", "cpu") and m.group(3) != "0"
    )


def check_placement(rf: ResolvedFlow) -> list[Diagnostic]:
    fg = rf.graph
    diags: list[Diagnostic] = check_ping_pong(fg)
    reported = set()
    for node in fg.blocks():
        if node.device is None or node.device_span is None or node.device_span in reported:
            continue
        if not valid_device(node.device):
            reported.add(node.device_span)
            kind = node.device.split(":")[0]
            if kind in DEVICE_TYPES:
                hint = (
                    f"`{kind}` takes no index other than 0; only cuda has several devices, "
                    "such as cuda:1"
                    if kind != "cuda"
                    else "a cuda device index is a number without leading zeros: cuda:1"
                )
            else:
                hint = did_you_mean(kind, DEVICE_TYPES) or (
                    "devices are cpu, cuda, cuda:N, mps and meta"
                )
            diags.append(
                Diagnostic("E500", f"unknown device `{node.device}`", node.device_span, hint=hint)
            )
    return diags


def check_ping_pong(fg: FlowGraph) -> list[Diagnostic]:
    """W106 for a ``cond=`` tensor or split output moved back to a device it left (the
    same ``where`` tracking as codegen: a tensor moves when a consumer is elsewhere)."""
    watched = {tid for node in fg.blocks() for tid in node.reads.values()}
    watched |= {t for node in fg.blocks() if node.kind == "split" for t in node.outputs}
    where: dict[str, str | None] = {}
    visited: dict[str, set[str | None]] = {}
    diags: list[Diagnostic] = []
    for node in fg.blocks():
        for tid in (*node.inputs, *node.reads.values()):
            if tid not in watched or where.get(tid) == node.device:
                continue
            seen = visited.setdefault(tid, {where.get(tid)})
            if node.device in seen and tid in fg.tensors:
                name = fg.tensors[tid].name
                diags.append(
                    Diagnostic(
                        "W106",
                        f"`{name}` moves back to `{node.device or 'the input device'}` "
                        "here: a transfer each way on every call",
                        node.span,
                        hint="put the blocks that read it in one `on` region",
                    )
                )
                watched.discard(tid)  # once per tensor
            seen.add(node.device)
            where[tid] = node.device
        for tid in node.outputs:
            where[tid] = node.device
    return diags
