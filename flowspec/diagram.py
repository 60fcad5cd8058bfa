"""``flowspec graph``: a flow as a Graphviz diagram.

Blocks are boxes showing their kind, the options that tell them apart (those written,
those off their default, and always ``mask`` and ``order``) and their spec line; edges
are tensors with their shapes, dashed where a tensor is read but not consumed
(``cond=``, a ``context``).  ``repeat`` bodies and ``block`` calls are clusters, from
each node's ``origin`` (:class:`flowspec.ir.graph.Frame`).

A large flow is drawn *collapsed*: each ``repeat`` shows its body once in a cluster
labelled ``× N``, an option that changes between iterations is shown as the values it
takes, and the tensor carried from one iteration to the next is a dotted edge back to
the start of the body.  Iterations that differ in structure (a nested repeat whose
count depends on the index) are all drawn, or as many as make up the smallest period.

Spec text never reaches the output unquoted: every label goes through :func:`quote`,
and option values are cut to :data:`MAX_VALUE` characters.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from flowspec.ir.graph import FlowGraph, Frame, Node
from flowspec.kinds import REGISTRY
from flowspec.kinds.options import Choice, Raw

#: flows with more blocks than this are drawn collapsed unless ``expand=True``
COLLAPSE_ABOVE = 40
#: options always shown on a block that has them (they tell couplings and MADEs apart)
ALWAYS_SHOWN = ("mask", "order")
#: an option value is cut to this many characters in a label
MAX_VALUE = 40
#: a label line is wrapped after this many characters
LINE_WIDTH = 36

#: node kinds that are not blocks: drawn as ovals
_TERMINALS = ("input", "output", "context")
_FILL = {"repeat": "#eef3fb", "block": "#fbf6e6", "iteration": "#ffffff"}
_BORDER = {"repeat": "#5b7fb5", "block": "#b59a5b", "iteration": "#a0a0a0"}


class GraphvizMissing(Exception):
    """Rendering .svg/.png needs graphviz's ``dot`` program."""


def quote(text: str) -> str:
    """A DOT string: backslashes and quotes escaped, a newline as DOT's ``\\n`` break."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped + '"'


def _shape(s) -> str:
    return "[" + ", ".join(map(str, s)) + "]"


def _cut(text: str) -> str:
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _plain(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_plain(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, Choice):
        return str(v)
    return str(v)


def _value(value: Any, raw: Any) -> str:
    """An option's resolved value as a label shows it.  A word with options shows the
    options its call wrote (``conv(hidden=512, kernel=3)``), and a net its widths."""
    if not isinstance(value, Choice):
        return _cut(_plain(value))
    written = [k for k, _, _ in raw.options] if isinstance(raw, Raw) else []
    keys = [k for k in value.options if k in written or k == "hidden"]
    if not keys:
        return _cut(value.kind)
    inner = ", ".join(f"{k}={_plain(value.options[k])}" for k in keys)
    return _cut(f"{value.kind}({inner})")


def _is_default(option, value: Any) -> bool:
    default = option.default
    if isinstance(value, Choice):
        return isinstance(default, str) and value.kind == default
    return value == default and type(value) is type(default)


def _node_options(node: Node) -> list[tuple[str, str]]:
    """(key, shown value) for the options of a block worth showing."""
    spec = REGISTRY.get(node.kind)
    if spec is None or not node.options:
        return []
    written = {a.key: a.value for a in node.args}
    shown = []
    for option in spec.options:
        key = option.name
        if key in spec.tensor_options or key not in node.options:
            continue
        value = node.options[key]
        if key in written or key in ALWAYS_SHOWN or not _is_default(option, value):
            shown.append((key, _value(value, written.get(key))))
    return shown


def _varying(values: list[str]) -> str:
    """The values one option takes over the iterations a collapsed node stands for."""
    distinct = list(dict.fromkeys(values))
    if len(distinct) == 1:
        return distinct[0]
    try:
        ints = [int(v) for v in values]
    except ValueError:
        ints = None
    if ints is not None and len(ints) > 2:
        step = ints[1] - ints[0]
        if all(b - a == step for a, b in pairwise(ints)):
            return f"{ints[0]}, {ints[1]}, …, {ints[-1]}"
    if len(distinct) <= 3:
        return " | ".join(distinct)
    return f"{distinct[0]} … {distinct[-1]} ({len(distinct)} values)"


def _wrap(parts: list[str]) -> list[str]:
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 2 + len(part) <= LINE_WIDTH:
            lines[-1] += "  " + part
        else:
            lines.append(part)
    return lines


def _line(node: Node) -> str:
    """``8``, or ``6@31`` for line 6 of a ``block`` called at line 31."""
    return "@".join(str(s.line) for s in (node.span, *reversed(node.expanded_from)))


@dataclass(eq=False)
class _Group:
    """A cluster: the whole flow, one execution of a ``repeat`` (its items are its
    iterations), one iteration, or one ``block`` call."""

    kind: str  # "flow" | "repeat" | "iteration" | "block"
    frame: Frame | None = None
    items: list = field(default_factory=list)  # _Group | Node, in program order
    shown: list = field(default_factory=list)
    #: repeat: how many iterations are drawn (all, or one period when collapsed)
    drawn: int = 0

    @property
    def origin(self) -> Frame:
        """The frame of a repeat, iteration or block cluster (the flow has none)."""
        assert self.frame is not None, "the flow cluster has no frame"
        return self.frame


def _tree(fg: FlowGraph) -> _Group:
    root = _Group("flow")
    groups: dict[tuple, _Group] = {}
    for node in fg.nodes():
        current = root
        path: tuple = ()
        for frame in node.origin:
            if frame.kind == "repeat":
                path = (*path, ("repeat", frame.span.start, frame.span.end))
                current = _child(groups, current, path, "repeat", frame)
                path = (*path, frame.index)
                current = _child(groups, current, path, "iteration", frame)
            else:
                path = (*path, ("block", frame.span.start, frame.span.end))
                current = _child(groups, current, path, "block", frame)
        current.items.append(node)
    return root


def _child(groups: dict, parent: _Group, path: tuple, kind: str, frame: Frame) -> _Group:
    group = groups.get(path)
    if group is None:
        group = groups[path] = _Group(kind, frame)
        parent.items.append(group)
    return group


def _preorder(group: _Group) -> list:
    out = []
    for item in group.items:
        out.append(item)
        if isinstance(item, _Group):
            out.extend(_preorder(item))
    return out


def _period(seq: list[int]) -> int:
    """The smallest p with seq[i] == seq[i % p] for every i (Knuth–Morris–Pratt's
    failure function: p = n − the longest proper border), in O(n)."""
    border = [0] * len(seq)
    k = 0
    for i in range(1, len(seq)):
        while k and seq[i] != seq[k]:
            k = border[k - 1]
        if seq[i] == seq[k]:
            k += 1
        border[i] = k
    return len(seq) - border[-1] if seq else 0


def _key(item) -> Any:
    return item.id if isinstance(item, Node) else item


class _Drawing:
    def __init__(self, fg: FlowGraph, collapse: bool) -> None:
        self.fg = fg
        self.collapse = collapse
        self.order = {node_id: i for i, node_id in enumerate(fg.node_table)}
        self.incoming: dict[str, list[tuple[str, bool]]] = {}
        for producer, consumer, _tid, read_only in fg.edges:
            self.incoming.setdefault(consumer, []).append((producer, read_only))
        self.root = _tree(fg)
        self.parent: dict[Any, Any] = {}  # item key → the item it is drawn as
        self._plan(self.root)
        self.members: dict[Any, list] = {}
        for item in _preorder(self.root):
            self.members.setdefault(self.rep(item), []).append(item)
        self.clusters = 0
        self.back_edges = False
        self.read_edges = False
        self.has_context = any(n.kind == "context" for n in fg.nodes())

    # ------------------------------------------------------------- collapsing

    def rep(self, item) -> Any:
        """The key of the drawn item that ``item`` is drawn as (itself if drawn)."""
        key = _key(item)
        while key in self.parent:
            key = self.parent[key]
        return key

    def _signature(self, iteration: _Group) -> tuple:
        """The structure of one iteration: items, nested frames, edges between them."""
        items = _preorder(iteration)
        local = {item.id: j for j, item in enumerate(items) if isinstance(item, Node)}
        sig: list[tuple] = []
        for j, item in enumerate(items):
            if isinstance(item, _Group):
                f = item.origin
                sig.append(("G", item.kind, f.span.start, f.count, f.name))
                continue
            sig.append(("N", item.kind, len(item.inputs), len(item.outputs)))
            for producer, read_only in self.incoming.get(item.id, ()):
                sig.append(("E", j, local.get(producer, -1), read_only))
        return tuple(sig)

    def _plan(self, group: _Group) -> None:
        group.shown = group.items
        if group.kind == "repeat":
            group.drawn = len(group.items)
            if self.collapse:
                ids: dict[tuple, int] = {}
                period = _period(
                    [ids.setdefault(self._signature(it), len(ids)) for it in group.items]
                )
                group.shown, group.drawn = group.items[:period], period
                for i, iteration in enumerate(group.items[period:], period):
                    like = _preorder(group.items[i % period])
                    for a, b in zip(_preorder(iteration), like):
                        self.parent[_key(a)] = _key(b)
        for item in group.shown:
            if isinstance(item, _Group):
                self._plan(item)

    # ----------------------------------------------------------------- labels

    def node_label(self, node: Node) -> str:
        fg = self.fg
        if node.kind in ("input", "context"):
            tid = node.outputs[0] if node.outputs else None
            tensor = fg.tensors.get(tid) if tid else None
            shape = tensor.shape if tensor is not None else None
            label = f"{node.kind} {tensor.name if tensor else ''}".rstrip()
            if shape:
                label += f" {_shape(shape)}"
            if node.kind == "input" and fg.dequantize_choice is not None:
                label += f"\ndequantize {_cut(str(fg.dequantize_choice))}"
            return label
        if node.kind == "output":
            latent = fg.latent_choice
            return "output" + (f"\nlatent {_cut(str(latent))}" if latent is not None else "")
        same = [m for m in self.members.get(node.id, [node]) if isinstance(m, Node)]
        columns: dict[str, list[str]] = {}
        for member in same:
            for key, value in _node_options(member):
                columns.setdefault(key, []).append(value)
        parts = [f"{key}={_varying(values)}" for key, values in columns.items()]
        head = node.kind + (f" @{node.device}" if node.device else "")
        return "\n".join([head, *_wrap(parts), f"line {_line(node)}"])

    def group_label(self, group: _Group) -> str:
        f = group.origin
        if group.kind == "repeat":
            count = f.count
            where = f"line {f.span.line}"
            if len(group.items) < count:  # iterations that lowered to no block
                where += f"; {len(group.items)} of the iterations hold blocks"
            if self.collapse and group.drawn == 1 and count > 1:
                return f"repeat × {count}   ({where}; the body drawn once)"
            if group.drawn < count:
                return f"repeat × {count}   ({where}; {group.drawn} iterations drawn, repeating)"
            return f"repeat × {count}   ({where})"
        if group.kind == "iteration":
            return f"{f.name} = {f.index}" if f.name else f"iteration {f.index}"
        same = [m for m in self.members.get(group, [group]) if isinstance(m, _Group)]
        columns: dict[str, list[str]] = {}
        for member in same:
            for key, value in member.origin.args:
                columns.setdefault(key, []).append(_value(value, None))
        args = ", ".join(f"{k}={_varying(v)}" for k, v in columns.items())
        return f"{f.name}({args})   (line {f.span.line})"

    # ------------------------------------------------------------------ output

    def emit_items(self, group: _Group, indent: str, out: list[str], tag: str = "") -> None:
        """Emit ``group``'s drawn items.  An iteration is a cluster of its own only when
        it holds several items; a lone item carries the iteration in its label."""
        flat = group.kind == "repeat" and group.drawn == 1 and self.collapse
        for item in group.shown:
            if isinstance(item, Node):
                self.emit_node(item, indent, out, tag)
            elif item.kind == "iteration" and (flat or len(item.shown) == 1):
                self.emit_items(item, indent, out, "" if flat else self.group_label(item))
            else:
                self.emit_cluster(item, indent, out, tag)
                tag = ""

    def emit_cluster(self, group: _Group, indent: str, out: list[str], tag: str = "") -> None:
        self.clusters += 1
        out.append(f"{indent}subgraph cluster_{self.clusters} {{")
        inner = indent + "  "
        style = "rounded,dashed" if group.kind == "iteration" else "rounded,filled"
        label = self.group_label(group) + (f"   [{tag}]" if tag else "")
        out.append(
            f"{inner}label={quote(label)}; style={quote(style)}; "
            f"color={quote(_BORDER[group.kind])}; fillcolor={quote(_FILL[group.kind])};"
        )
        self.emit_items(group, inner, out)
        out.append(f"{indent}}}")

    def emit_node(self, node: Node, indent: str, out: list[str], tag: str = "") -> None:
        label = self.node_label(node) + (f"   [{tag}]" if tag else "")
        attrs = f"label={quote(label)}"
        if node.kind in _TERMINALS:
            attrs += ", shape=oval"
            if node.kind == "context":
                attrs += ', style="dashed"'
        out.append(f"{indent}{quote(node.id)} [{attrs}];")

    def emit_edges(self, out: list[str]) -> None:
        fg = self.fg
        drawn: dict[tuple, list] = {}
        for producer, consumer, tid, read_only in fg.edges:
            if producer not in fg.node_table or consumer not in fg.node_table:
                continue
            src, dst = self.rep(fg.node_table[producer]), self.rep(fg.node_table[consumer])
            back = self.order[dst] <= self.order[src]
            name = fg.tensors[tid].name
            drawn.setdefault((src, dst, name, read_only, back), []).append(fg.tensors[tid].shape)
        for (src, dst, name, read_only, back), shapes in drawn.items():
            distinct = list(dict.fromkeys(_shape(s) for s in shapes if s))
            label = name
            if len(distinct) == 1:
                label += f" {distinct[0]}"
            elif distinct:
                label += f" {distinct[0]} … {distinct[-1]}"
            attrs = f"label={quote(label)}"
            if back:  # a collapsed repeat's carried tensor, drawn back to the body's start
                attrs += ', style=dotted, constraint=false, color="#555555"'
                self.back_edges = True
            elif read_only:
                attrs += ", style=dashed"
                self.read_edges = True
            out.append(f"  {quote(src)} -> {quote(dst)} [{attrs}];")

    def emit_legend(self, out: list[str]) -> None:
        entries = [("solid", "tensor [shape]: consumed")]
        if self.read_edges or self.has_context:
            entries.append(("dashed", "read, not consumed: cond= / context"))
        if self.back_edges:
            entries.append(("dotted", "carried to the next iteration"))
        if len(entries) == 1:
            return
        out.append("  subgraph cluster_legend {")
        out.append('    label="edges"; style="rounded"; color="#a0a0a0"; fontsize=10;')
        out.append('    node [shape=point, width=0.06, label=""];')
        ends = [(quote(f"_legend{i}a"), quote(f"_legend{i}b")) for i in range(len(entries))]
        out.append("    { rank=same; " + " ".join(f"{a}; {b};" for a, b in ends) + " }")
        for (a, b), (style, text) in zip(ends, entries):
            out.append(f"    {a} -> {b} [style={style}, label={quote(text)}, minlen=2];")
        for (_, b), (a, _) in pairwise(ends):  # the entries left to right
            out.append(f"    {b} -> {a} [style=invis, minlen=1];")
        out.append("  }")

    def dot(self) -> str:
        out = [
            f"digraph {quote(self.fg.name)} {{",
            "  rankdir=TB; newrank=true; nodesep=0.3; ranksep=0.35;",
            '  fontname="Helvetica"; fontsize=11; labeljust=l;',
            '  node [shape=box, style="rounded", fontname="Helvetica", fontsize=11];',
            '  edge [fontname="Helvetica", fontsize=9];',
        ]
        self.emit_items(self.root, "  ", out)
        self.emit_edges(out)
        self.emit_legend(out)
        out.append("}")
        return "\n".join(out) + "\n"


def to_dot(fg: FlowGraph, collapse: bool | None = None) -> str:
    """The flow as Graphviz DOT.  ``collapse``: draw each repeat's body once (True),
    every iteration (False), or decide by size (None: collapse above
    :data:`COLLAPSE_ABOVE` blocks)."""
    if collapse is None:
        collapse = len(fg.blocks()) > COLLAPSE_ABOVE
    return _Drawing(fg, collapse).dot()


def write_graph(fg: FlowGraph, path: str, collapse: bool | None = None) -> None:
    """Write ``.dot`` directly, ``.svg``/``.png``/``.pdf`` through graphviz's ``dot``."""
    target = Path(path)
    dot = to_dot(fg, collapse)
    fmt = target.suffix.lstrip(".").lower()
    if fmt in ("dot", "gv"):
        target.write_text(dot, encoding="utf-8")
        return
    if fmt not in ("svg", "png", "pdf"):
        raise GraphvizMissing(f"unknown graph format `.{fmt}`: use .dot, .svg, .png or .pdf")
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizMissing(
            f"writing .{fmt} needs graphviz's `dot` program, which is not installed; "
            "write a .dot file instead, or install graphviz (e.g. `apt-get install graphviz`)"
        )
    subprocess.run([exe, f"-T{fmt}", "-o", str(target)], input=dot.encode(), check=True)
