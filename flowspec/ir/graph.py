"""Types of the IR: a flow is a networkx MultiDiGraph of block instances.

Nodes are block instances (:class:`Node`, stored under the ``"node"`` attribute);
edges carry the tensor (``key`` is the tensor's SSA id) from the block that produces
it to the block that consumes it.  The ``input`` and ``output`` statements are nodes
of kinds ``"input"`` and ``"output"``, and a flow's ``context`` a node of kind
``"context"`` whose tensor is only ever read.  Flow-level facts (name, latent, requirements,
tensors) live in :class:`FlowGraph`.

Lowering records nodes and edges; the networkx graph is built from them on first use
of :attr:`FlowGraph.graph` (importing networkx costs ~80 ms, more than the whole
check of a small spec, and most passes only walk the nodes in program order).

Lowering builds the graph; passes annotate it (the arguments pass sets
``Node.options``, the shapes pass sets ``Node.in_shapes`` / ``out_shapes`` and
``Tensor.shape``) and later passes read those annotations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from flowspec.core.spans import Span

if TYPE_CHECKING:
    import networkx as nx

INPUT, OUTPUT, CONTEXT = "input", "output", "context"


@dataclass
class Tensor:
    """One SSA value: a name bound once."""

    id: str
    name: str
    span: Span  # where it is bound
    producer: str  # node id
    shape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Use:
    """A tensor consumed (or, for ``cond=``, read) by a node at ``span``."""

    node: str
    span: Span
    read_only: bool = False


@dataclass(frozen=True)
class RawArg:
    """A keyword argument as lowering evaluated it."""

    key: str
    value: Any
    span: Span  # the whole ``key=value``
    key_span: Span
    value_span: Span


@dataclass(frozen=True)
class Frame:
    """One step of where a node came from: an iteration of a ``repeat``, or a ``block``
    call.  ``Node.origin`` lists them outermost first, so the frames a node shares with
    another say which repeat bodies and block expansions hold both (``flowspec graph``
    draws them as clusters)."""

    kind: str  # "repeat" | "block"
    span: Span  # the ``repeat`` statement, or the block call
    index: int = 0  # repeat: this iteration, 0 … count − 1
    count: int = 1  # repeat: the number of iterations
    name: str | None = None  # block: its name; repeat: its ``as`` index name, if any
    #: block: the options the call wrote, evaluated, in the order written
    args: tuple[tuple[str, Any], ...] = ()


@dataclass
class Node:
    id: str
    kind: str
    span: Span  # the call, or the statement for input / output
    kind_span: Span
    inputs: tuple[str, ...] = ()  # tensors consumed, in order
    n_positional: int = 0  # positional arguments written, resolved or not
    input_spans: tuple[Span, ...] = ()
    outputs: tuple[str, ...] = ()
    args: tuple[RawArg, ...] = ()
    reads: dict[str, str] = field(default_factory=dict)  # option → tensor id (cond=)
    device: str | None = None
    device_span: Span | None = None
    #: spans of the ``block`` calls this node was expanded from, outermost first
    expanded_from: tuple[Span, ...] = ()
    #: the repeat iterations and block calls this node was lowered in, outermost first
    origin: tuple[Frame, ...] = ()
    # ---- annotations set by passes
    options: dict[str, Any] | None = None
    in_shapes: list[tuple[int, ...]] | None = None
    out_shapes: list[tuple[int, ...]] | None = None

    def arg_span(self, key: str | None) -> Span:
        for a in self.args:
            if a.key == key:
                return a.span
        return self.span

    @property
    def is_block(self) -> bool:
        return self.kind not in (INPUT, OUTPUT, CONTEXT)


@dataclass(frozen=True)
class Requirement:
    property: str
    bound: Any  # a number or None
    span: Span
    property_span: Span


@dataclass
class FlowGraph:
    """A lowered flow: the graph plus flow-level facts."""

    name: str
    span: Span
    #: block instances in program order (a topological order of the graph)
    node_table: dict[str, Node] = field(default_factory=dict)
    #: (producer, consumer, tensor id, read_only)
    edges: list[tuple[str, str, str, bool]] = field(default_factory=list)
    tensors: dict[str, Tensor] = field(default_factory=dict)
    uses: dict[str, list[Use]] = field(default_factory=dict)
    input: str | None = None  # tensor id
    input_shape: tuple[int, ...] | None = None
    outputs: tuple[str, ...] = ()  # tensor ids
    context: str | None = None  # tensor id of the `context`, read by cond= only
    context_shape: tuple[int, ...] | None = None
    #: "normalizing" (blocks map data → latent) or "generative" (latent → data)
    direction: str = "normalizing"
    direction_span: Span | None = None
    latent: Any = None  # raw value (Word / Raw) and its span
    latent_span: Span | None = None
    dequantize: Any = None
    dequantize_span: Span | None = None
    requirements: list[Requirement] = field(default_factory=list)
    #: lowering recorded no error: the passes that need a whole graph run on it
    complete: bool = True
    # ---- annotations set by passes
    latent_choice: Any = None
    dequantize_choice: Any = None
    # ---- set by the CLI's --device / --dtype (flowspec.placement.apply_defaults)
    #: the device blocks outside every `on` region are built on (None: torch's default)
    default_device: str | None = None
    #: the float type the module is built in (None: torch's default, float32)
    dtype: str | None = None

    def add_node(self, node: Node) -> Node:
        self.node_table[node.id] = node
        self.__dict__.pop("graph", None)
        return node

    def add_edge(self, producer: str, consumer: str, tensor: str, read_only: bool) -> None:
        self.edges.append((producer, consumer, tensor, read_only))
        self.__dict__.pop("graph", None)

    @cached_property
    def graph(self) -> nx.MultiDiGraph:
        """The IR as a networkx MultiDiGraph: node attribute ``node``, edge key = tensor."""
        import networkx as nx

        g = nx.MultiDiGraph(name=self.name)
        for node_id, node in self.node_table.items():
            g.add_node(node_id, node=node)
        for producer, consumer, tid, read_only in self.edges:
            if producer in self.node_table and consumer in self.node_table:
                g.add_edge(
                    producer,
                    consumer,
                    key=tid,
                    tensor=tid,
                    read_only=read_only,
                    shape=self.tensors[tid].shape,
                )
        return g

    def node(self, node_id: str) -> Node:
        return self.node_table[node_id]

    def nodes(self) -> list[Node]:
        """All nodes in program order (the order lowering created them)."""
        return list(self.node_table.values())

    def blocks(self) -> list[Node]:
        return [n for n in self.nodes() if n.is_block]
