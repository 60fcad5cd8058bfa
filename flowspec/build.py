"""Building a flow's module without letting a spec exhaust the machine.

Every size a spec can ask for is bounded (:mod:`flowspec.kinds.limits`, checked by
``flowspec check``), but bounded sizes still multiply: an mlp of width 65,536 on
16 million features is a trillion weights.  The checker counts every flow's learned
parameters from the registry and refuses one over ``max_params`` (E501,
:mod:`flowspec.checks.resources`) before codegen.  Buffers (a residual block's d×d
identity) are not in that count, so before allocating anything :func:`check_size`
also builds the module on PyTorch's ``meta`` device (shapes only, no memory) and
refuses one whose parameters and buffers exceed ``max_params`` numbers with an E500
diagnostic at its largest block; :func:`construct` then builds the real module and
turns an allocation failure that still happens (the machine has less memory than the
limit allows) into a :class:`~flowspec.core.diagnostics.SpecError` naming the block,
never a raw ``RuntimeError`` / ``MemoryError``.
"""

from __future__ import annotations

import torch
from torch import nn

from flowspec.core.diagnostics import Diagnostic, SpecError
from flowspec.core.spans import Source
from flowspec.ir.graph import FlowGraph, Node
from flowspec.kinds.sizes import format_bytes
from flowspec.runtime.flow import Flow

#: what a failed allocation raises: torch's ``RuntimeError`` (``DefaultCPUAllocator:
#: not enough memory``, ``torch.OutOfMemoryError``), ``MemoryError`` from Python-level
#: buffers, ``OverflowError`` for sizes beyond an index type
ALLOCATION_ERRORS = (MemoryError, OverflowError, RuntimeError)


def _numbers(module: nn.Module) -> int:
    return sum(t.numel() for t in (*module.parameters(), *module.buffers()))


def shapes_only(cls: type[Flow]) -> Flow | None:
    """The module built on the ``meta`` device: every parameter and buffer with its
    shape and no memory, placements (``on cuda:1``) ignored.  None when a block cannot
    be built on ``meta`` (its constructor computes with real values)."""
    unplaced = type(cls.__name__, (cls,), {"DEVICES": {}})
    try:
        with torch.device("meta"):
            return unplaced()
    except Exception:  # no estimate, not an error: construct() still guards
        return None


def block_sizes(cls: type[Flow], fg: FlowGraph) -> list[int] | None:
    """Parameters and buffers of each block, exact, with nothing allocated (None when
    unknown, see :func:`shapes_only`)."""
    module = shapes_only(cls)
    if module is None:
        return None
    return [_numbers(getattr(module, f"b{i}")) for i in range(len(fg.blocks()))]


def check_size(
    cls: type[Flow], fg: FlowGraph, sources: dict[str, Source], max_params: int | None
) -> list[int] | None:
    """Refuse (E500) a flow whose blocks need more than ``max_params`` numbers;
    returns the per-block sizes (None when unknown).  ``max_params=None``: no limit."""
    if max_params is None:
        return None
    sizes = block_sizes(cls, fg)
    if sizes is None or sum(sizes) <= max_params:
        return sizes
    blocks = fg.blocks()
    big = max(range(len(blocks)), key=sizes.__getitem__)
    total = sum(sizes)
    message = (
        f"flow `{fg.name}` needs {total:,} parameters and buffers "
        f"({format_bytes(4 * total)} in float32), over the limit of {max_params:,}"
    )
    if len(blocks) > 1:
        message += f"; this `{blocks[big].kind}` block needs {sizes[big]:,}"
    raise SpecError(
        [
            Diagnostic(
                "E500",
                message,
                blocks[big].span,
                hint="use smaller hidden widths or a smaller input, or raise the limit with "
                "flowspec.compile(..., max_params=N)",
            )
        ],
        sources,
    )


def _failure(
    node: Node, size: int | None, error: BaseException, sources: dict[str, Source]
) -> SpecError:
    lines = str(error).strip().splitlines()
    reason = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    needs = (
        f" ({size:,} parameters and buffers, {format_bytes(4 * size)} in float32)" if size else ""
    )
    return SpecError(
        [
            Diagnostic(
                "E500",
                f"could not allocate this `{node.kind}` block{needs}: {reason}",
                node.span,
                hint="use smaller hidden widths or a smaller input, or a machine with more memory",
            )
        ],
        sources,
    )


def construct(
    cls: type[Flow], fg: FlowGraph, sources: dict[str, Source], sizes: list[int] | None = None
) -> Flow:
    """``cls()``, with an allocation failure turned into a SpecError at the block whose
    constructor failed (the first block the half-built module does not have)."""
    module = cls.__new__(cls)
    try:
        cls.__init__(module)
    except ALLOCATION_ERRORS as e:
        built = module.__dict__.get("_modules", {})
        blocks = fg.blocks()
        i = next((i for i in range(len(blocks)) if f"b{i}" not in built), len(blocks) - 1)
        raise _failure(blocks[i], sizes[i] if sizes else None, e, sources) from e
    return module


def place(
    module: Flow,
    fg: FlowGraph,
    sources: dict[str, Source],
    device: str | torch.device | None,
    dtype: torch.dtype | None,
    sizes: list[int] | None = None,
) -> None:
    """Move the blocks no ``on`` places to ``device`` / ``dtype``, an allocation failure
    (a copy to a full GPU) reported as for :func:`construct`."""
    blocks = fg.blocks()
    for attr, _ in module.named_children():
        try:
            module.place_block(attr, device, dtype)
        except ALLOCATION_ERRORS as e:
            i = int(attr[1:]) if attr[1:].isdigit() and int(attr[1:]) < len(blocks) else 0
            raise _failure(blocks[i], sizes[i] if sizes else None, e, sources) from e
    module._probe = module._probe.to(device=device, dtype=dtype)
