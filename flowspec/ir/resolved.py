"""The elaborated flow: what the checks, the code generator and ``summary`` read.

Lowering gives a :class:`~flowspec.ir.graph.FlowGraph` whose blocks hold the options
as written; elaboration (:mod:`flowspec.elaborate`) resolves them against the registry
and infers every tensor's shape.  Its result is read through the types here, whose
fields are never ``None``:

- :class:`Configured`: a block whose options resolved (defaults filled in);
- :class:`Resolved`: a configured block whose input and output shapes are known too;
- :class:`ResolvedFlow`: the flow with its configured and resolved blocks in program
  order, and whether nothing is missing (``complete``).

After an error some blocks are configured but not resolved (a shape error) or neither
(an unknown option): a check that reads options iterates ``configured``, one that
needs shapes iterates ``blocks``, and one that needs the whole flow asks ``complete``.

    >>> from flowspec.driver import Compilation
    >>> from flowspec.core.spans import Source
    >>> spec = "flow f {\\n input x: [4]\\n x = reverse(x)\\n output x\\n}\\n"
    >>> rf = Compilation(Source("f.flow", spec)).resolved()
    >>> [(b.kind, b.in_shapes, b.out_shapes) for b in rf.blocks]
    [('reverse', [(4,)], [(4,)])]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowspec.core.spans import Span
from flowspec.ir.graph import FlowGraph, Node, RawArg

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Configured:
    """A block instance with its options resolved: every option of its kind has a value
    (given, or the default); ``node`` is the lowered instance it comes from."""

    node: Node
    options: dict[str, Any]

    @property
    def id(self) -> str:
        return self.node.id

    @property
    def kind(self) -> str:
        return self.node.kind

    @property
    def span(self) -> Span:
        return self.node.span

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.node.inputs

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.node.outputs

    @property
    def reads(self) -> dict[str, str]:
        return self.node.reads

    @property
    def args(self) -> tuple[RawArg, ...]:
        return self.node.args

    def arg_span(self, key: str | None) -> Span:
        return self.node.arg_span(key)


@dataclass(frozen=True)
class Resolved(Configured):
    """A configured block whose shapes are known: ``in_shapes`` lists the consumed
    tensors' shapes, then those of the tensors it reads (``cond=``)."""

    in_shapes: list[Shape]
    out_shapes: list[Shape]

    @property
    def consumed_shapes(self) -> list[Shape]:
        """The shapes of the tensors it consumes (``cond=`` left out)."""
        return self.in_shapes[: len(self.node.inputs)]


@dataclass(frozen=True)
class ResolvedFlow:
    """A flow after elaboration: ``configured`` and ``blocks`` in program order."""

    graph: FlowGraph
    configured: tuple[Configured, ...]
    blocks: tuple[Resolved, ...]

    @classmethod
    def of(cls, fg: FlowGraph) -> ResolvedFlow:
        """The view of ``fg`` as elaboration left it."""
        configured: list[Configured] = []
        blocks: list[Resolved] = []
        for node in fg.blocks():
            if node.options is None:
                continue
            if node.in_shapes is None or node.out_shapes is None:
                configured.append(Configured(node, node.options))
                continue
            block = Resolved(node, node.options, node.in_shapes, node.out_shapes)
            configured.append(block)
            blocks.append(block)
        return cls(fg, tuple(configured), tuple(blocks))

    @property
    def name(self) -> str:
        return self.graph.name

    @property
    def lowered(self) -> bool:
        """Lowering reached every statement (no hole left by an error)."""
        return self.graph.complete

    @property
    def complete(self) -> bool:
        """Lowered completely, and every block resolved (options and shapes)."""
        return self.graph.complete and len(self.blocks) == len(self.graph.blocks())

    def shape(self, tensor: str) -> Shape | None:
        """A tensor's shape, or None where an error left it unknown."""
        return self.graph.tensors[tensor].shape
