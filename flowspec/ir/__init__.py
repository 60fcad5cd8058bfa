"""The intermediate representation: lowering (AST → :class:`~flowspec.ir.graph.FlowGraph`),
the graph's types, and graph queries several stages share (:mod:`flowspec.ir.queries`)."""
