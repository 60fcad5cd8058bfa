"""Code generation: a checked IR graph → Python source of a ``Flow`` subclass.

The generated ``forward``/``inverse`` are straight-line code — one line per block,
with the spec line it came from in a comment — so the module runs without a graph
interpreter or per-call dictionary lookups, and ``torch.compile`` sees plain Python.
The same source is what ``flowspec compile -o model.py`` writes; importing that file
rebuilds the same module (same parameter names, same construction order).
"""

from __future__ import annotations

import hashlib
import keyword
import re
from dataclasses import dataclass

from flowspec import __version__
from flowspec.core.spans import Source
from flowspec.ir.graph import FlowGraph, Node
from flowspec.kinds import REGISTRY
from flowspec.kinds.options import Choice, TensorName
from flowspec.syntax import ast


def class_name(flow_name: str) -> str:
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", flow_name) if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts) or "Flow"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = "Flow" + name
    return name


def spec_hash(program: ast.Program | None, flow_name: str) -> str:
    """A layout-independent hash of the spec: the span-free AST dump and the flow name."""
    text = (ast.dump(program) if program is not None else "") + "\n" + flow_name
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class _Block:
    node: Node
    attr: str  # self.<attr>
    cls: str
    module: str
    zero_ladj: bool


#: names generated code uses for itself
_RESERVED = frozenset({"self", "torch", "ladj", "l", "z", "home", "Choice", "Flow"})


class _Names:
    """Python names for tensors in one generated method.

    A tensor takes its spec name (``x``) when that name is free, and gives it back after
    its last use, so ``x = coupling(x)`` rebinds ``x`` and the previous tensor is freed as
    in hand-written code (SSA names would keep every intermediate alive to the end of
    the method, which costs memory traffic at large batches)."""

    def __init__(self, fg: FlowGraph, steps, results: tuple[str, ...]) -> None:
        self.fg = fg
        self.last: dict[str, int] = {}
        for i, (block, takes, _gives) in enumerate(steps):
            for tid in (*takes, *block.node.reads.values()):
                self.last[tid] = i
        for tid in results:
            self.last[tid] = len(steps)
        self.var: dict[str, str] = {}
        self.live: dict[str, str] = {}  # name → tensor id

    def bind(self, tid: str) -> str:
        base = self.fg.tensors[tid].name
        if keyword.iskeyword(base) or base in _RESERVED:
            base += "_"
        name, k = base, 2
        while name in self.live:
            name, k = f"{base}_{k}", k + 1
        self.live[name] = tid
        self.var[tid] = name
        return name

    def release(self, step: int) -> None:
        for name, tid in list(self.live.items()):
            if self.last.get(tid, -1) <= step:
                del self.live[name]

    def __getitem__(self, tid: str) -> str:
        return self.var[tid]


def _runtime_options(node: Node, fg: FlowGraph) -> str:
    parts = []
    for key, value in node.options.items():
        if isinstance(value, TensorName):
            value = fg.tensors[value.id].shape
        parts.append(f"{key}={value!r}")
    return ", ".join(parts)


def _method(
    fg: FlowGraph,
    method: str,
    steps,
    args: tuple[str, ...],
    results: tuple[str, ...],
    value_only: bool,
    placed: bool,
    line_of,
) -> list[str]:
    """One straight-line method: ``forward``/``transform`` run the blocks in program
    order, ``inverse``/``inverse_transform`` run their inverses in ``steps``' order."""
    is_inverse = method.startswith("inverse")
    names = _Names(fg, steps, results)
    lines: list[str] = []
    w = lines.append
    if is_inverse:
        w(f"    def {method}(self, z):")
        unpacked = [names.bind(t) for t in args]
        w(f"        {', '.join(unpacked)} = z")
    else:
        w(f"    def {method}(self, {names.bind(args[0])}):")
    if placed:
        w(f"        home = {names[args[0]]}.device")
    where: dict[str, str | None] = {}  # tensor id → device it lives on (None: home)
    have_ladj = False
    for i, (block, takes, gives) in enumerate(steps):
        node = block.node
        w(f"        # {line_of(node)}")
        for tid in (*takes, *node.reads.values()):
            if where.get(tid) != node.device:
                dest = repr(node.device) if node.device is not None else "home"
                w(f"        {names[tid]} = {names[tid]}.to({dest})")
                where[tid] = node.device
        call_args = [names[t] for t in takes]
        call_args += [f"{key}={names[tid]}" for key, tid in node.reads.items()]
        names.release(i)
        targets = ", ".join(names.bind(t) for t in gives)
        call = ", ".join(call_args)
        if value_only or block.zero_ladj:
            fn = "inverse_transform" if is_inverse else "transform"
            w(f"        {targets} = self.{block.attr}.{fn}({call})")
        else:
            fn = ".inverse" if is_inverse else ""
            if not have_ladj:
                w(f"        {targets}, ladj = self.{block.attr}{fn}({call})")
                have_ladj = True
            else:
                w(f"        {targets}, l = self.{block.attr}{fn}({call})")
                moved = ".to(ladj.device)" if placed and node.device is not None else ""
                w(f"        ladj = ladj + l{moved}")
        for t in gives:
            where[t] = node.device
    for tid in results:
        if where.get(tid) is not None:
            w(f"        {names[tid]} = {names[tid]}.to(home)")
    value = ", ".join(names[t] for t in results)
    if len(results) > 1:
        value = f"({value})"
    if value_only:
        w(f"        return {value}")
    else:
        if not have_ladj:
            first = names[args[0]]
            w(f"        ladj = {first}.new_zeros({first}.shape[0])")
        w(f"        return {value}, ladj")
    return lines


def generate(
    fg: FlowGraph, source: Source | None = None, program: ast.Program | None = None
) -> str:
    """Python source for the flow ``fg`` (checked, with options and shapes annotated)."""
    blocks: list[_Block] = []
    imports: dict[str, set[str]] = {}
    for i, node in enumerate(fg.blocks()):
        spec = REGISTRY[node.kind]
        module, _, name = spec.runtime.partition(":")
        imports.setdefault(module, set()).add(name)
        blocks.append(
            _Block(node, f"b{i}", name, module, spec.logdet_class(node.options) == "zero")
        )
    cls = class_name(fg.name)
    taken = {"Flow", "Choice", "Model", "torch"}.union(*imports.values())
    while cls in taken:  # `flow planar` must not shadow the runtime class Planar
        cls += "Flow"
    by_node = {b.node.id: b for b in blocks}

    def line_of(node: Node) -> str:
        """``line 6: x = actnorm(x)``, with the call sites of the ``block``s it came from."""
        text = f"line {node.span.line}"
        if node.expanded_from:
            text += " (called at line " + " → ".join(str(s.line) for s in node.expanded_from) + ")"
        return text + (": " + source.line_text(node.span.line).strip() if source else "")

    placed = any(b.node.device is not None for b in blocks)

    out: list[str] = []
    w = out.append
    w(
        f"# Generated by flowspec {__version__} from {source.path if source else '<spec>'}, "
        f"flow `{fg.name}`."
    )
    w("# Regenerate it with `flowspec compile`; edits are lost.")
    w("from __future__ import annotations")
    w("")
    w("import torch")
    w("")
    imports.setdefault("flowspec.kinds.options", set()).add("Choice")
    imports.setdefault("flowspec.runtime.flow", set()).add("Flow")
    for module in sorted(imports):
        w(f"from {module} import {', '.join(sorted(imports[module]))}")
    w("")
    w("")
    w(f"class {cls}(Flow):")
    w(f'    """Flow `{fg.name}` ({len(blocks)} blocks)."""')
    w("")
    w(f"    FLOW_NAME = {fg.name!r}")
    w(f"    SPEC_HASH = {spec_hash(program, fg.name)!r}")
    w(f"    INPUT_SHAPE = {tuple(fg.input_shape)!r}")
    out_shapes = tuple(tuple(fg.tensors[t].shape) for t in fg.outputs)
    w(f"    OUTPUT_SHAPES = {out_shapes!r}")
    w(f"    LATENT = {fg.latent_choice!r}")
    w(f"    DEQUANTIZE = {fg.dequantize_choice!r}")
    w(
        "    DEVICES = {"
        + ", ".join(f"{b.attr!r}: {b.node.device!r}" for b in blocks if b.node.device is not None)
        + "}"
    )
    w("")
    w("    def __init__(self) -> None:")
    w("        super().__init__()")
    for b in blocks:
        node = b.node
        w(f"        # {line_of(node)}")
        shapes = [tuple(s) for s in node.in_shapes[: len(node.inputs)]]
        opts = _runtime_options(node, fg)
        w(f"        self.{b.attr} = {b.cls}({shapes!r}{', ' if opts else ''}{opts})")
        if REGISTRY[node.kind].inverse_class(node.options) == "iterative":
            where_ = f"{node.kind} at {node.span}"
            w(f"        self.{b.attr}.name = {where_!r}  # named in run-time errors")
    if placed:
        w("        for name, device in self.DEVICES.items():")
        w("            getattr(self, name).to(device)")
    w("")

    forward = [(by_node[n.id], n.inputs, n.outputs) for n in fg.blocks()]
    inverse = [
        (by_node[i], by_node[i].node.outputs, by_node[i].node.inputs) for i in _inverse_order(fg)
    ]
    for method, steps, value_only in (
        ("forward", forward, False),
        ("transform", forward, True),
        ("inverse", inverse, False),
        ("inverse_transform", inverse, True),
    ):
        is_inverse = method.startswith("inverse")
        args, results = (fg.outputs, (fg.input,)) if is_inverse else ((fg.input,), fg.outputs)
        out.extend(_method(fg, method, steps, args, results, value_only, placed, line_of))
        out.append("")
    w("")
    w(f"Model = {cls}")
    w("")
    return "\n".join(out)


def _inverse_order(fg: FlowGraph) -> list[str]:
    """Blocks in the order the inverse runs them: reverse program order, unless a
    ``cond=`` read forces another (a topological order of the inverse dependencies)."""
    blocks = [n.id for n in fg.blocks()]
    if not any(n.reads for n in fg.blocks()):
        return list(reversed(blocks))
    import networkx as nx

    from flowspec.ir.queries import inverse_dependencies

    deps = inverse_dependencies(fg)
    rank = {nid: -i for i, nid in enumerate(blocks)}
    order = nx.lexicographical_topological_sort(deps, key=lambda n: rank.get(n, 1))
    return [n for n in order if n in rank]


__all__ = ["Choice", "class_name", "generate", "spec_hash"]
