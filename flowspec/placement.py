"""Device maps and the transfer plan (issue 13), torch-free.

A spec's ``on DEVICE { ... }`` regions name devices; a *device map* rewrites those
names before code generation, so a spec written for two GPUs runs on one or on the
CPU: ``{"cuda:1": "cuda:0"}`` or ``{"cuda": "cpu"}`` (a bare type maps every index
of that type; an exact name wins over its type).  Codegen then emits a ``.to(...)``
exactly where a consumer's (mapped) device differs from where its input lives, so
after mapping every region to ``cpu`` the module has no transfer at all.

:func:`parse_device_map` is the one parser of the CLI's ``--device-map A=B``
(repeatable, or a comma list ``A=B,C=D``); ``compile``, ``verify``, ``summary`` and
``train`` call it on the option's values and pass the dict as
``flowspec.compile(..., device_map=...)``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowspec.checks.placement import valid_device

if TYPE_CHECKING:
    from flowspec.driver import Compilation
    from flowspec.ir.graph import FlowGraph

#: bound on the number of entries of one device map
MAX_ENTRIES = 64

#: the float types a flow may be built in, with their bytes per number
ITEMSIZE = {"float32": 4, "float64": 8, "bfloat16": 2, "float16": 2}
#: machine epsilon of the 16-bit ones, which some blocks refuse (``low_precision``)
LOW_PRECISION_EPS = {"bfloat16": 2.0**-7, "float16": 2.0**-10}


@dataclass(frozen=True)
class Transfer:
    """One device-crossing edge of one generated method."""

    method: str
    tensor: str
    source: str | None  # None: the input's own device ("home")
    dest: str | None


def parse_device_map(items: list[str] | tuple[str, ...] | str | None) -> dict[str, str]:
    """``["cuda:1=cpu", "cuda:0=cpu,mps=cpu"]`` → ``{"cuda:1": "cpu", ...}``; a
    ValueError with a message naming the bad entry (the CLI turns it into exit 2)."""
    if items is None:
        return {}
    if isinstance(items, str):
        items = [items]
    mapping: dict[str, str] = {}
    for item in items:
        for entry in item.split(","):
            entry = entry.strip()
            if not entry:
                continue
            src, sep, dst = (part.strip() for part in entry.partition("="))
            if not sep:
                raise ValueError(f"--device-map {entry!r}: expected FROM=TO, e.g. cuda:1=cpu")
            for name in (src, dst):
                if not valid_device(name):
                    raise ValueError(
                        f"--device-map {entry!r}: {name!r} is not a device "
                        "(cpu, cuda, cuda:N, mps, meta)"
                    )
            mapping[src] = dst
            if len(mapping) > MAX_ENTRIES:
                raise ValueError(f"--device-map: more than {MAX_ENTRIES} entries")
    return mapping


def map_device(device: str | None, mapping: dict[str, str] | None) -> str | None:
    """``device`` under ``mapping``: the exact name first, then its type (``cuda``)."""
    if device is None or not mapping:
        return device
    if device in mapping:
        return mapping[device]
    return mapping.get(device.split(":")[0], device)


def check_map(mapping: dict[str, str] | None) -> dict[str, str]:
    """A ``device_map=`` argument validated (every key and value a device name)."""
    if mapping is None:
        return {}
    if not isinstance(mapping, dict) or len(mapping) > MAX_ENTRIES:
        raise ValueError(f"device_map= must be a dict of at most {MAX_ENTRIES} entries")
    for src, dst in mapping.items():
        for name in (src, dst):
            if not isinstance(name, str) or not valid_device(name):
                raise ValueError(
                    f"device_map={{{src!r}: {dst!r}}}: {name!r} is not a device "
                    "(cpu, cuda, cuda:N, mps, meta)"
                )
    return dict(mapping)


def apply_map(fg: FlowGraph, mapping: dict[str, str] | None) -> None:
    """Rewrite the devices of ``fg``'s blocks in place (before codegen)."""
    if not mapping:
        return
    for node in fg.blocks():
        node.device = map_device(node.device, mapping)


def apply_defaults(fg: FlowGraph, device: str | None, dtype: str | None) -> None:
    """Record ``--device`` (for blocks outside every ``on`` region) and ``--dtype`` on
    ``fg``, so the generated module builds itself there; a ValueError for a malformed
    device or a dtype a block cannot run in."""
    if device is not None and not valid_device(device):
        raise ValueError(f"--device {device!r}: not a device (cpu, cuda, cuda:N, mps, meta)")
    if dtype is not None:
        problem = dtype_problem(fg, dtype)
        if problem is not None:
            raise ValueError(f"--dtype {dtype}: {problem}")
    fg.default_device, fg.dtype = device, dtype


def dtype_problem(fg: FlowGraph, dtype: str) -> str | None:
    """Why ``fg`` cannot be built in ``dtype`` (a name: ``"bfloat16"``), naming the first
    block that cannot run in it, where, and why; ``None`` when it can."""
    from flowspec.kinds import REGISTRY

    if dtype not in ITEMSIZE:
        return f"not one of {', '.join(ITEMSIZE)}"
    eps = LOW_PRECISION_EPS.get(dtype)
    if eps is None:
        return None
    for node in fg.blocks():
        if node.options is None:  # not elaborated: an error elsewhere
            continue
        why = REGISTRY[node.kind].low_precision(node.options, dtype, eps)
        if why is not None:
            return (
                f"block `{node.kind}` at {node.span} cannot run in {dtype}: "
                f"{why}; use float32 or float64, or wrap a float32 flow in torch.autocast"
            )
    return None


def transfers(fg: FlowGraph) -> list[Transfer]:
    """The transfers codegen emits in ``forward`` (the same edges, reversed, in
    ``inverse``): a block's input or ``cond=`` tensor not already on the block's device,
    and every result left off the input's device moved back to it."""
    where: dict[str, str | None] = {}
    out: list[Transfer] = []
    for node in fg.blocks():
        for tid in (*node.inputs, *node.reads.values()):
            if where.get(tid) != node.device:
                out.append(Transfer("forward", tid, where.get(tid), node.device))
                where[tid] = node.device
        for tid in node.outputs:
            where[tid] = node.device
    for tid in fg.outputs:
        if where.get(tid) is not None:
            out.append(Transfer("forward", tid, where[tid], None))
    return out


def add_arguments(
    parser: argparse.ArgumentParser, *, device: bool = True, dtype: bool = True
) -> None:
    """``--device-map FROM=TO`` (repeatable or a comma list), ``--device D`` and
    ``--dtype T`` on a subcommand; read back with :func:`device_map_of` and
    ``args.device`` / ``args.dtype``.  ``compile``, ``summary``, ``verify`` and
    ``train`` register them here (``verify`` and ``train`` their own ``--dtype``)."""
    parser.add_argument(
        "--device-map",
        action="append",
        metavar="FROM=TO",
        help="rename a spec device, e.g. cuda:1=cpu or cuda=cpu (repeatable, or a comma list)",
    )
    if device:
        parser.add_argument(
            "--device", metavar="D", help="where blocks outside every `on` region are built"
        )
    if dtype:
        parser.add_argument(
            "--dtype",
            choices=tuple(ITEMSIZE),
            help="the float type of the module (default float32); float16 and bfloat16 "
            "only where every block allows it",
        )


def device_map_of(args: argparse.Namespace) -> dict[str, str]:
    """The parsed ``--device-map`` of ``args`` (a ValueError for a malformed entry)."""
    return parse_device_map(getattr(args, "device_map", None))


def plan_text(fg: FlowGraph, dtype: str | None = None) -> str:
    """The placement plan as text: per device its blocks, parameters and memory per
    sample (training, inference; ``flowspec.checks.resources.device_memory``), then each
    forward transfer with its tensor's shape and bytes per sample (``inverse`` crosses
    the same edges the other way), in ``dtype`` numbers (default float32)."""
    from flowspec.checks.resources import device_memory, flow_resources
    from flowspec.kinds.sizes import format_bytes

    size = ITEMSIZE[dtype or "float32"]
    res = flow_resources(fg)
    if res is None:
        return "placement: unknown (a block is not resolved)"
    memory = device_memory(fg, res)
    per_device: dict[str | None, list[int]] = {}
    for node, params in zip(fg.blocks(), res.parameters, strict=True):
        blocks, total = per_device.get(node.device, [0, 0])
        per_device[node.device] = [blocks + 1, total + params]
    default = fg.default_device or "(default)"
    lines = ["placement:"]
    for d in sorted(set(per_device) | set(memory), key=lambda d: (d is not None, d or "")):
        n, p = per_device.get(d, [0, 0])
        train, infer = memory.get(d, (0, 0))
        lines.append(
            f"  {d or default}: {n} block{'s' if n != 1 else ''}, {p:,} parameters; per "
            f"sample: training {format_bytes(size * train)}, inference "
            f"{format_bytes(size * infer)}"
        )
    moves = transfers(fg)
    if not moves:
        lines.append("transfers: none")
    for t in moves:
        tensor = fg.tensors.get(t.tensor)
        shape = tensor.shape if tensor is not None else None
        label = tensor.name if tensor is not None else t.tensor
        numel = 1
        for s in shape or ():
            numel *= int(s)
        where = f"{t.source or '(input device)'} -> {t.dest or '(input device)'}"
        shown = "x".join(str(s) for s in shape) if shape else "?"
        lines.append(f"transfer {label} [{shown}] {where}, {size * numel} bytes/sample")
    return "\n".join(lines)


def meta_text(comp: Compilation, flow: str | None) -> str:
    """``summary --meta``: build the module on the meta device (no parameter memory) and
    report its parameter count beside the static one (imports torch)."""
    from flowspec.compiler import compile_compilation
    from flowspec.summary import parameter_counts

    fg = comp.flow_graph(flow)
    module = compile_compilation(comp, flow=fg.name, device="meta", max_params=None)
    built = sum(p.numel() for p in module.parameters() if p.requires_grad)
    static = sum(parameter_counts(fg))
    same = "equal to" if built == static else "DIFFERENT from"
    return f"meta build: {built:,} parameters, {same} the static count {static:,}"
