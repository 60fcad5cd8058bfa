"""Code generation: a checked IR graph → Python source of a ``Flow`` subclass.

The generated ``forward``/``inverse`` are straight-line code — one line per block,
with the spec line it came from in a comment — so the module runs without a graph
interpreter or per-call dictionary lookups, and ``torch.compile`` sees plain Python.
The same source is what ``flowspec compile -o model.py`` writes; importing that file
rebuilds the same module (same parameter names, same construction order).

Spec text is untrusted, so the generated source is built from data, never from spec
text: every value goes through :func:`literal` (``repr`` of plain Python data), every
name through an identifier check, and the one piece of spec text that is copied — the
source line in each provenance comment — through :func:`safe_comment`, which escapes
every character that is not printable (so no ``\\r``, NUL or Unicode line separator can
end the comment early).  :func:`generate` checks that the result holds no such character.
"""

from __future__ import annotations

import hashlib
import keyword
import math
import re
from dataclasses import dataclass
from typing import Any

from flowspec import __version__
from flowspec.core.spans import Source
from flowspec.ir.graph import FlowGraph, Node
from flowspec.ir.resolved import Resolved, ResolvedFlow
from flowspec.kinds import REGISTRY
from flowspec.kinds.options import Choice, TensorName
from flowspec.syntax import ast

# ------------------------------------------------------------ spec text → source, safely


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safe_comment(text: str) -> str:
    """``text`` made safe to follow ``#`` in generated source: every character that is not
    printable is replaced by its escape (``\\x00``, ``\\u2028``).

    ``str.isprintable`` is false for every line terminator Python or ``str.splitlines``
    knows (``\\r``, ``\\n``, ``\\x0b``, ``\\x0c``, ``\\x1c``-``\\x1e``, ``\\x85``, ``\\u2028``,
    ``\\u2029``), for NUL, tab and every other control character, for format characters
    such as the bidi override U+202E and for every separator but the ASCII space, so the
    comment ends where the generated line ends and reads as it will be shown.  Printable
    text (``→``, ``≤``) is kept as written."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def identifier(name: str) -> str:
    """``name`` if it is a plain ASCII Python identifier (and not a keyword), else a
    ``ValueError``: the front ends only make such names, so this is an internal check."""
    if not (name.isascii() and name.isidentifier()) or keyword.iskeyword(name):
        raise ValueError(f"codegen: {name!r} is not a Python identifier")
    return name


def literal(value: Any) -> str:
    """Python source for an option value, built from its type: ``None``, booleans,
    integers, floats (``float('inf')`` for the non-finite ones), strings (``repr``), lists,
    tuples, dicts with string keys and :class:`Choice` (kind as a string, option keys as
    identifiers).  Anything else is an internal error, never ``str()``-ed into the code."""
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        text = float.__repr__(value)
        return text if math.isfinite(value) else f"float({text!r})"
    if isinstance(value, str):
        return str.__repr__(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        items = [literal(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(str(k))}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Choice):
        args = "".join(f", {identifier(k)}={literal(v)}" for k, v in value.options.items())
        return f"Choice({literal(value.kind)}{args})"
    raise TypeError(f"codegen: no Python literal for a {type(value).__name__}")


def _check_lines(lines: list[str]) -> None:
    """The defensive last step: every generated line is one line of printable text, so no
    comment or string can end early and let spec text run as code."""
    for i, line in enumerate(lines, 1):
        if not line.isprintable():
            bad = next(ch for ch in line if not ch.isprintable())
            raise AssertionError(f"codegen: generated line {i} holds {_escape(bad)}: {line!r}")


def _local_name(name: str) -> str:
    """A spec tensor name as a Python local: itself when it is a plain identifier (the
    grammar's names always are), else its ASCII letters, digits and ``_``."""
    if name.isascii() and name.isidentifier():
        return name
    name = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return name if name[:1].isalpha() or name[:1] == "_" else "t_" + name


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
    block: Resolved
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
            for tid in (*takes, *block.block.reads.values()):
                self.last[tid] = i
        for tid in results:
            self.last[tid] = len(steps)
        self.var: dict[str, str] = {}
        self.live: dict[str, str] = {}  # name → tensor id

    def bind(self, tid: str) -> str:
        base = _local_name(self.fg.tensors[tid].name)
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


def _shape(fg: FlowGraph, tid: str) -> tuple[int, ...]:
    """A tensor's shape; elaboration has inferred every shape of a flow that checked."""
    shape = fg.tensors[tid].shape
    assert shape is not None, f"codegen ran on an unresolved tensor {tid}"
    return tuple(shape)


def _runtime_options(block: Resolved, fg: FlowGraph) -> str:
    parts = []
    for key, value in block.options.items():
        if isinstance(value, TensorName):
            value = _shape(fg, value.id)
        parts.append(f"{identifier(key)}={literal(value)}")
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
    block_inverse: bool,
) -> list[str]:
    """One straight-line method running ``steps`` in order: each block's own map, or
    with ``block_inverse`` each block's inverse.  ``inverse``/``inverse_transform`` take
    the latents ``z`` (a tuple when there are several); a flow with a ``context`` takes
    it as a second argument, passed to the blocks that read it."""
    names = _Names(fg, steps, results)
    lines: list[str] = []
    w = lines.append
    extra = ", context" if fg.context is not None else ""
    if method.startswith("inverse"):
        w(f"    def {method}(self, z{extra}):")
        unpacked = [names.bind(t) for t in args]
        w(f"        {', '.join(unpacked)} = z")
    else:
        w(f"    def {method}(self, {names.bind(args[0])}{extra}):")
    if fg.context is not None:
        w(f"        {names.bind(fg.context)} = context")
    if placed:
        w(f"        home = {names[args[0]]}.device")
    where: dict[str, str | None] = {}  # tensor id → device it lives on (None: home)
    have_ladj = False
    for i, (block, takes, gives) in enumerate(steps):
        node = block.block.node
        w(f"        # {line_of(node)}")
        for tid in (*takes, *node.reads.values()):
            if where.get(tid) != node.device:
                dest = literal(node.device) if node.device is not None else "home"
                w(f"        {names[tid]} = {names[tid]}.to({dest})")
                where[tid] = node.device
        call_args = [names[t] for t in takes]
        call_args += [f"{identifier(key)}={names[tid]}" for key, tid in node.reads.items()]
        names.release(i)
        targets = ", ".join(names.bind(t) for t in gives)
        call = ", ".join(call_args)
        if value_only or block.zero_ladj:
            fn = "inverse_transform" if block_inverse else "transform"
            w(f"        {targets} = self.{block.attr}.{fn}({call})")
        else:
            fn = ".inverse" if block_inverse else ""
            # ladj accumulates on the output device (home), each term moved there once
            moved = ".to(home)" if placed and node.device is not None else ""
            if not have_ladj:
                w(f"        {targets}, ladj = self.{block.attr}{fn}({call})")
                if moved:
                    w(f"        ladj = ladj{moved}")
                have_ladj = True
            else:
                w(f"        {targets}, l = self.{block.attr}{fn}({call})")
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
    rf: ResolvedFlow, source: Source | None = None, program: ast.Program | None = None
) -> str:
    """Python source for the elaborated flow ``rf``, which checked clean (so every block
    is resolved: options and shapes known)."""
    if not rf.complete:
        raise ValueError(f"flow `{rf.name}` is not fully elaborated; check it first")
    fg = rf.graph
    blocks: list[_Block] = []
    imports: dict[str, set[str]] = {}
    for i, block in enumerate(rf.blocks):
        spec = REGISTRY[block.kind]
        module, _, name = spec.runtime.partition(":")
        imports.setdefault(module, set()).add(name)
        zero = spec.logdet_class(block.options) == "zero"
        blocks.append(_Block(block, f"b{i}", name, module, zero))
    cls = class_name(fg.name)
    taken = {"Flow", "Choice", "Model", "torch"}.union(*imports.values())
    while cls in taken:  # `flow planar` must not shadow the runtime class Planar
        cls += "Flow"
    by_node = {b.block.id: b for b in blocks}

    def line_of(node: Node) -> str:
        """``line 6: x = actnorm(x)``, with the call sites of the ``block``s it came from;
        the spec's text only through :func:`safe_comment`."""
        text = f"line {int(node.span.line)}"
        if node.expanded_from:
            calls = " → ".join(str(int(s.line)) for s in node.expanded_from)
            text += f" (called at line {calls})"
        if source:
            text += ": " + safe_comment(source.line_text(node.span.line).strip())
        return text

    def located(node: Node) -> str:
        """``line 6`` or ``line 6 (called at line 3)``, for run-time errors that name a
        block (:mod:`flowspec.runtime.validate`); no spec text, which stays in comments."""
        return line_of(node).partition(": ")[0]

    placed = any(b.block.node.device is not None for b in blocks)

    out: list[str] = []
    w = out.append
    origin = safe_comment(source.path if source else "<spec>")
    w(f"# Generated by flowspec {__version__} from {origin}, flow `{safe_comment(fg.name)}`.")
    w("# Regenerate it with `flowspec compile`; edits are lost.")
    w("from __future__ import annotations")
    w("")
    w("import torch")
    w("")
    imports.setdefault("flowspec.kinds.options", set()).add("Choice")
    imports.setdefault("flowspec.runtime.flow", set()).add("Flow")
    for module in sorted(imports):
        imported = ", ".join(identifier(n) for n in sorted(imports[module]))
        w(f"from {'.'.join(identifier(p) for p in module.split('.'))} import {imported}")
    w("")
    w("")
    w(f"class {identifier(cls)}(Flow):")
    # the docstring shows the name as a comment would, with \\ and " escaped too
    doc_name = safe_comment(fg.name).replace("\\", "\\\\").replace('"', '\\"')
    w(f'    """Flow `{doc_name}` ({len(blocks)} blocks)."""')
    w("")
    w(f"    FLOW_NAME = {literal(fg.name)}")
    w(f"    SPEC_HASH = {literal(spec_hash(program, fg.name))}")
    generative = fg.direction == "generative"
    assert fg.input is not None  # a flow that checked has its input
    first: tuple[str, ...] = (fg.input,)
    # the module is always data → latent; a generative flow's blocks run backwards
    data, latents = (fg.outputs, first) if generative else (first, fg.outputs)
    w(f"    INPUT_SHAPE = {literal(_shape(fg, data[0]))}")
    w(f"    OUTPUT_SHAPES = {literal(tuple(_shape(fg, t) for t in latents))}")
    context = None if fg.context is None else _shape(fg, fg.context)
    w(f"    CONTEXT_SHAPE = {literal(context)}")
    w(f"    DIRECTION = {literal(fg.direction)}")
    w(f"    LATENT = {literal(fg.latent_choice)}")
    w(f"    DEQUANTIZE = {literal(fg.dequantize_choice)}")
    # the kind of the block that reads the data (for the trainer's domain checks)
    readers = [b.block.kind for b in blocks if data[0] in b.block.inputs]
    w(f"    DATA_READER = {literal(readers[0] if len(readers) == 1 and not generative else None)}")
    devices = {b.attr: b.block.node.device for b in blocks if b.block.node.device is not None}
    w(f"    DEVICES = {literal(devices)}")
    if fg.default_device is not None or fg.dtype is not None:  # --device / --dtype
        w(f"    DEFAULT_DEVICE = {literal(fg.default_device)}")
        w(f"    DTYPE = {literal(fg.dtype)}")
    w(f"    BLOCK_LINES = {literal({b.attr: located(b.block.node) for b in blocks})}")
    w("")
    w("    def __init__(self) -> None:")
    w("        super().__init__()")
    for b in blocks:
        node = b.block.node
        w(f"        # {line_of(node)}")
        shapes = [tuple(s) for s in b.block.consumed_shapes]
        opts = _runtime_options(b.block, fg)
        w(f"        self.{b.attr} = {b.cls}({literal(shapes)}{', ' if opts else ''}{opts})")
        if REGISTRY[node.kind].inverse_class(b.block.options) == "iterative":
            where_ = f"{node.kind} at {node.span}"
            w(f"        self.{b.attr}.name = {literal(where_)}  # named in run-time errors")
    if fg.default_device is not None or fg.dtype is not None:
        w("        self.place(self.DEFAULT_DEVICE, self.DTYPE)")
    elif placed:
        w("        for name, device in self.DEVICES.items():")
        w("            getattr(self, name).to(device)")
    w("")

    forward = [(b, b.block.inputs, b.block.outputs) for b in blocks]
    inverse = [
        (by_node[i], by_node[i].block.outputs, by_node[i].block.inputs) for i in _inverse_order(fg)
    ]
    # (module method, value only, runs the blocks' inverses)
    for method, value_only, backwards in (
        ("forward", False, generative),
        ("transform", True, generative),
        ("inverse", False, not generative),
        ("inverse_transform", True, not generative),
    ):
        steps = inverse if backwards else forward
        args, results = (fg.outputs, first) if backwards else (first, fg.outputs)
        out.extend(
            _method(fg, method, steps, args, results, value_only, placed, line_of, backwards)
        )
        out.append("")
    w("")
    w(f"Model = {cls}")
    w("")
    _check_lines(out)
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


__all__ = [
    "Choice",
    "class_name",
    "generate",
    "identifier",
    "literal",
    "safe_comment",
    "spec_hash",
]
