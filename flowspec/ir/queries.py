"""Questions about a lowered flow that more than one stage asks (graph utilities).

The invertibility check asks :func:`inverse_dependencies` whether the ``cond=`` reads
leave an order to invert in; codegen asks it for that order.  networkx is imported
only here, when one of these is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowspec.ir.graph import FlowGraph

if TYPE_CHECKING:
    import networkx as nx


def inverse_dependencies(fg: FlowGraph) -> nx.DiGraph:
    """Which block must be inverted before which: inverting a block needs its outputs
    and its ``cond=`` tensors, each recovered by inverting the block that consumes it."""
    import networkx as nx

    deps = nx.DiGraph()
    consumer: dict[str, str] = {}
    for node in fg.nodes():
        deps.add_node(node.id)
        for tid in node.inputs:
            consumer.setdefault(tid, node.id)
    for node in fg.nodes():
        for tid in (*node.outputs, *node.reads.values()):
            if tid in consumer and consumer[tid] != node.id:
                deps.add_edge(consumer[tid], node.id)
    return deps


__all__ = ["inverse_dependencies"]
