"""Lowering: AST → IR graph.

Expands ``let`` constants (a flow's, and the file's top-level ones, which every flow
and block sees and a flow's or block's own ``let`` or option of the same name shadows),
``repeat`` (with its index usable in expressions) and
``block`` calls (with defaults and a scope of their own), SSA-renames tensors, and
records every use of every tensor.  Problems found on the way (an unknown tensor or
constant, a bad repeat count, a recursive block, an unroll over :data:`MAX_NODES`)
are diagnostics; lowering never raises for a user's mistake.
"""

from __future__ import annotations

import math
from collections import ChainMap

from flowspec.core.diagnostics import Diagnostic, Label, has_errors
from flowspec.core.names import did_you_mean
from flowspec.core.spans import Span
from flowspec.ir.evaluate import EvalError, evaluate
from flowspec.ir.expand import BlockExpansion
from flowspec.ir.graph import (
    CONTEXT,
    INPUT,
    OUTPUT,
    FlowGraph,
    Frame,
    Node,
    RawArg,
    Requirement,
    Tensor,
    Use,
)
from flowspec.ir.scope import (
    DIRECTIONS,
    MAX_ITERATIONS,
    MAX_NODES,
    _Abort,
    _Scope,
)
from flowspec.kinds import REGISTRY
from flowspec.kinds.limits import MAX_FEATURES, MAX_RANK
from flowspec.kinds.options import TensorName, describe
from flowspec.syntax import ast


class _Lowerer(BlockExpansion):
    def __init__(self, program: ast.Program) -> None:
        self.blocks = {b.name.id: b for b in program.blocks}
        #: ``id`` of every block definition whose body some call has lowered
        self.expanded: set[int] = set()
        #: the repeat iterations and block calls being lowered (``Node.origin``)
        self.origin: list[Frame] = []
        self.diagnostics: list[Diagnostic] = []
        self._counter = 0
        self._iterations = 0
        #: the top-level ``let`` constants, visible in every flow and block of the file
        self.globals: dict = {}
        first: dict[str, ast.LetStmt] = {}
        for let in program.lets:
            if let.name.id in first:
                self.defined_twice(
                    "top-level constant",
                    let.name,
                    first[let.name.id].name,
                    hint="rename one of them; a flow's own `let` may shadow a top-level one",
                )
                continue
            first[let.name.id] = let
            ok, v = self.try_evaluate(let.value, _Scope({}, ChainMap(self.globals), None, ()))
            if ok:
                self.globals[let.name.id] = v

    def constants(self, own: dict | None = None) -> ChainMap:
        """A scope of constants: ``own`` (written first) over the top-level ones."""
        return ChainMap({} if own is None else own, self.globals)

    # ---------------------------------------------------------------- helpers

    def defined_twice(
        self, what: str, name: ast.Name, first: ast.Name, hint: str | None = None
    ) -> None:
        """E201 at a second definition of ``name``, pointing at the first."""
        self.error(
            "E201",
            f"{what} `{name.id}` is defined twice",
            name.span,
            labels=(Label(first.span, "first defined here"),),
            hint=hint,
        )

    def error(
        self,
        code: str,
        message: str,
        span: Span,
        hint: str | None = None,
        labels: tuple[Label, ...] = (),
    ) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, hint=hint, labels=labels))

    def new_node(self, fg: FlowGraph, node: Node) -> Node:
        if len(fg.node_table) >= MAX_NODES + 2:
            self.error(
                "E203",
                f"flow `{fg.name}` unrolls to more than {MAX_NODES} blocks",
                node.span,
                hint="lower a `repeat` count",
            )
            raise _Abort
        return fg.add_node(node)

    def fresh(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}{self._counter}"

    def bind(self, fg: FlowGraph, scope: _Scope, name: ast.Name, producer: str) -> str:
        tid = f"{name.id}#{len(fg.tensors)}"
        fg.tensors[tid] = Tensor(tid, name.id, name.span, producer)
        fg.uses[tid] = []
        scope.tensors[name.id] = tid
        return tid

    def consume(
        self, fg: FlowGraph, scope: _Scope, ref: ast.Value, node_id: str, read_only: bool = False
    ) -> str | None:
        """Resolve a tensor reference and record its use by ``node_id``."""
        if not isinstance(ref, ast.Ref):
            self.error(
                "E201",
                "expected a tensor name here",
                ref.span,
                hint="tensors are passed first, by name; options as key=value",
            )
            return None
        tid = scope.tensors.get(ref.name)
        if tid is None:
            hint = did_you_mean(ref.name, scope.tensors)
            what = "constant" if ref.name in scope.consts else "tensor"
            msg = (
                f"`{ref.name}` is a {what}, not a tensor"
                if what == "constant"
                else f"unknown tensor `{ref.name}`"
            )
            self.error("E201" if what == "constant" else "E200", msg, ref.span, hint=hint)
            return None
        if tid == fg.context and not read_only:
            context = fg.tensors[tid]
            subject = f"the context `{ref.name}`"
            if ref.name != context.name:  # a block's tensor parameter
                subject = f"`{ref.name}` (bound to the context `{context.name}`)"
            self.error(
                "E304",
                f"{subject} is read-only: it conditions blocks but is never "
                "transformed or consumed",
                ref.span,
                hint=f"pass it as `cond={ref.name}` to condition a block on it",
                labels=(Label(context.span, f"`{context.name}` is the flow's context"),),
            )
            return None
        fg.uses[tid].append(Use(node_id, ref.span, read_only))
        producer = fg.tensors[tid].producer
        fg.add_edge(producer, node_id, tid, read_only)
        return tid

    # ------------------------------------------------------------- evaluation

    def evaluate(self, value: ast.Value, scope: _Scope, numeric: bool = False):
        return evaluate(value, scope.consts, numeric)

    def try_evaluate(self, value: ast.Value, scope: _Scope, numeric: bool = False):
        try:
            return True, evaluate(value, scope.consts, numeric)
        except EvalError as e:
            self.diagnostics.append(e.diagnostic)
            return False, None

    # ---------------------------------------------------------------- flows

    def lower_flow(self, flow: ast.Flow) -> FlowGraph | None:
        """The flow's graph, or None when its expansion was cut short (E203): the
        passes would only report the damage of the cut."""
        fg = FlowGraph(flow.name.id, flow.span)
        scope = _Scope({}, self.constants(), None, ())
        body = flow.body
        if not body or not isinstance(body[0], ast.InputStmt):
            where = body[0].span if body else flow.name.span
            self.error(
                "E204",
                f"flow `{flow.name.id}` must start with an `input` statement",
                where,
                hint="add `input x: [d]` as the first statement",
            )
        if not body or not isinstance(body[-1], ast.OutputStmt):
            where = body[-1].span if body else flow.name.span
            self.error(
                "E204",
                f"flow `{flow.name.id}` must end with an `output` statement",
                where,
                hint="add `output x` as the last statement",
            )
        try:
            self.lower_body(fg, body, scope, in_block=False)
        except _Abort:
            return None
        if fg.direction == "generative" and len(fg.outputs) > 1 and fg.direction_span:
            self.error(
                "E204",
                f"a generative flow maps its latent to one data tensor, but `output` lists "
                f"{len(fg.outputs)}",
                body[-1].span,
                labels=(Label(fg.direction_span, "generative here"),),
                hint="concatenate the outputs into one tensor, or write the flow in the "
                "normalizing direction",
            )
        return fg

    def lower_body(self, fg: FlowGraph, body: tuple, scope: _Scope, in_block: bool):
        returned = None
        for stmt in body:
            if returned is not None:
                self.error("E204", "statements after `return` are never run", stmt.span)
                break
            r = self.lower_stmt(fg, stmt, scope, in_block)
            if r is not None:
                returned = r
        return returned

    def lower_stmt(self, fg: FlowGraph, stmt, scope: _Scope, in_block: bool):
        if isinstance(stmt, ast.InputStmt):
            self.lower_input(fg, stmt, scope, in_block)
        elif isinstance(stmt, ast.ContextStmt):
            self.lower_context(fg, stmt, scope, in_block)
        elif isinstance(stmt, ast.DirectionStmt):
            self.flow_level(fg, stmt, in_block, "direction")
            if not in_block:
                self.lower_direction(fg, stmt)
        elif isinstance(stmt, (ast.LatentStmt, ast.DequantizeStmt)):
            # both name a distribution-like value the flow keeps with its span
            what = "latent" if isinstance(stmt, ast.LatentStmt) else "dequantize"
            self.flow_level(fg, stmt, in_block, what)
            if not in_block:
                ok, v = self.try_evaluate(stmt.kind, scope)
                if ok:
                    setattr(fg, what, v)
                    setattr(fg, f"{what}_span", stmt.kind.span)
        elif isinstance(stmt, ast.LetStmt):
            ok, v = self.try_evaluate(stmt.value, scope)
            if ok:
                scope.consts[stmt.name.id] = v
        elif isinstance(stmt, ast.Assign):
            self.lower_assign(fg, stmt, scope)
        elif isinstance(stmt, ast.RepeatStmt):
            self.lower_repeat(fg, stmt, scope, in_block)
        elif isinstance(stmt, ast.OnStmt):
            inner = _Scope(
                scope.tensors,
                scope.consts.new_child(),
                (stmt.device.value, stmt.device.span),
                scope.stack,
            )
            return self.lower_body(fg, stmt.body, inner, in_block)
        elif isinstance(stmt, ast.RequireStmt):
            self.flow_level(fg, stmt, in_block, "require")
            bound = None
            if stmt.bound is not None:
                ok, bound = self.try_evaluate(stmt.bound, scope, numeric=True)
                if ok and (isinstance(bound, bool) or not isinstance(bound, (int, float))):
                    self.error(
                        "E201", f"a bound must be a number, got {describe(bound)}", stmt.bound.span
                    )
                    ok = False
                if not ok:
                    return None
            fg.requirements.append(
                Requirement(stmt.property.id, bound, stmt.span, stmt.property.span)
            )
        elif isinstance(stmt, ast.OutputStmt):
            if in_block:
                self.error(
                    "E204", "`output` belongs in a flow; a block ends with `return`", stmt.span
                )
                return None
            node = self.new_node(fg, Node(self.fresh("out"), OUTPUT, stmt.span, stmt.span))
            ids = []
            for name in stmt.names:
                tid = self.consume(fg, scope, ast.Ref(name.id, name.span), node.id)
                if tid is not None:
                    ids.append(tid)
            node.inputs = tuple(ids)
            node.input_spans = tuple(n.span for n in stmt.names)
            fg.outputs = fg.outputs + tuple(ids)
        elif isinstance(stmt, ast.ReturnStmt):
            if not in_block:
                self.error(
                    "E204", "`return` belongs in a block; a flow ends with `output`", stmt.span
                )
                return None
            return stmt
        return None

    def flow_level(self, fg: FlowGraph, stmt, in_block: bool, what: str) -> None:
        if in_block:
            self.error("E204", f"`{what}` belongs in a flow, not in a block", stmt.span)

    def lower_input(
        self, fg: FlowGraph, stmt: ast.InputStmt, scope: _Scope, in_block: bool
    ) -> None:
        if in_block or fg.input is not None:
            self.error("E204", "a flow has exactly one `input`, as its first statement", stmt.span)
            return
        fg.input, fg.input_shape = self.source_tensor(fg, stmt, scope, INPUT)

    def lower_context(
        self, fg: FlowGraph, stmt: ast.ContextStmt, scope: _Scope, in_block: bool
    ) -> None:
        """``context y: [d]``: a tensor every ``cond=`` may read and nothing consumes."""
        self.flow_level(fg, stmt, in_block, "context")
        if in_block:
            return
        if fg.context is not None:
            first = fg.tensors[fg.context]
            self.error(
                "E204",
                "a flow has at most one `context`",
                stmt.span,
                labels=(Label(first.span, f"`{first.name}` is the context"),),
                hint="concatenate the conditioning variables into one context tensor",
            )
            return
        if stmt.name.id in scope.tensors:
            self.error(
                "E201",
                f"the context cannot take the name `{stmt.name.id}` of a tensor",
                stmt.name.span,
                hint="give the context a name of its own, such as `y`",
            )
            return
        fg.context, fg.context_shape = self.source_tensor(fg, stmt, scope, CONTEXT)

    def source_tensor(
        self, fg: FlowGraph, stmt: ast.InputStmt | ast.ContextStmt, scope: _Scope, kind: str
    ) -> tuple[str, tuple[int, ...] | None]:
        """The node of an ``input`` or ``context`` and the tensor it binds, with its
        shape (None, reported, when the shape is bad: the tensor is bound anyway, so its
        uses are not unknown tensors)."""
        dims = self.shape(stmt, scope, kind)
        node = self.new_node(fg, Node(self.fresh(kind), kind, stmt.span, stmt.span))
        tid = self.bind(fg, scope, stmt.name, node.id)
        node.outputs = (tid,)
        if dims is not None:
            node.out_shapes = [dims]
            fg.tensors[tid].shape = dims
        return tid, dims

    def lower_direction(self, fg: FlowGraph, stmt: ast.DirectionStmt) -> None:
        word = stmt.word.id
        if fg.direction_span is not None:
            self.error("E204", "a flow states its `direction` once", stmt.span)
        elif word not in DIRECTIONS:
            self.error(
                "E200",
                f"unknown direction `{word}`: a flow is `normalizing` (data → latent, the "
                "default) or `generative` (latent → data)",
                stmt.word.span,
                hint=did_you_mean(word, DIRECTIONS),
            )
        else:
            fg.direction, fg.direction_span = word, stmt.span

    def shape(
        self, stmt: ast.InputStmt | ast.ContextStmt, scope: _Scope, what: str
    ) -> tuple[int, ...] | None:
        """The dimensions of an ``input`` or ``context`` shape, or None (reported)."""
        dims: list[int] = []
        for d in stmt.shape:
            ok, v = self.try_evaluate(d, scope, numeric=True)
            if not ok:
                return None
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                got = f"the float {v!r}" if isinstance(v, float) else v
                self.error("E201", f"a shape entry must be a positive integer, got {got}", d.span)
                return None
            if v > MAX_FEATURES:
                self.error("E201", f"shape entry {v} is too large: at most {MAX_FEATURES}", d.span)
                return None
            dims.append(v)
        if dims and len(dims) > MAX_RANK:
            self.error(
                "E201",
                f"the {what} shape has too many axes: {len(dims)}, at most {MAX_RANK}",
                stmt.shape[0].span.to(stmt.shape[-1].span),
            )
            return None
        if dims and math.prod(dims) > MAX_FEATURES:
            self.error(
                "E201",
                f"the {what} has too many features per sample: "
                f"{' × '.join(map(str, dims))} = {math.prod(dims)}, at most {MAX_FEATURES}",
                stmt.shape[0].span.to(stmt.shape[-1].span),
            )
            return None
        if not dims:
            self.error(
                "E201",
                f"the {what} shape needs at least one axis",
                stmt.span,
                hint="write the shape without the batch axis, such as [2]",
            )
            return None
        return tuple(dims)

    def lower_repeat(
        self, fg: FlowGraph, stmt: ast.RepeatStmt, scope: _Scope, in_block: bool
    ) -> None:
        ok, count = self.try_evaluate(stmt.count, scope, numeric=True)
        if not ok:
            return
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            # a number as written; anything else (a word, a call) described, never its repr
            number = isinstance(count, (int, float)) and not isinstance(count, bool)
            shown = count if number else describe(count)
            self.error(
                "E201", f"repeat needs a non-negative integer count, got {shown}", stmt.count.span
            )
            return
        if count > MAX_NODES:
            self.error(
                "E203",
                f"repeat {count} unrolls past the limit of {MAX_NODES} blocks",
                stmt.count.span,
                hint="lower the count",
            )
            raise _Abort
        for i in range(count):
            self._iterations += 1
            if self._iterations > MAX_ITERATIONS:
                self.error(
                    "E203",
                    f"flow `{fg.name}` runs more than {MAX_ITERATIONS} repeat iterations",
                    stmt.count.span,
                    hint="lower a `repeat` count",
                )
                raise _Abort
            consts = scope.consts.new_child()
            if stmt.index is not None:
                consts[stmt.index.id] = i
            inner = _Scope(scope.tensors, consts, scope.device, scope.stack)
            index_name = stmt.index.id if stmt.index is not None else None
            self.origin.append(Frame("repeat", stmt.span, i, count, index_name))
            try:
                self.lower_body(fg, stmt.body, inner, in_block)
            finally:
                self.origin.pop()

    # -------------------------------------------------------------- assignments

    def lower_assign(self, fg: FlowGraph, stmt: ast.Assign, scope: _Scope) -> None:
        call = stmt.call
        kind = call.kind.id
        if kind in self.blocks:
            self.expand_block(fg, stmt, scope)
            return
        node = Node(
            self.fresh("n"),
            kind,
            call.span,
            call.kind.span,
            expanded_from=tuple(s for _, s in scope.stack),
            origin=tuple(self.origin),
        )
        if scope.device is not None:
            node.device, node.device_span = scope.device
        self.new_node(fg, node)
        spec = REGISTRY.get(kind)
        tensor_opts = spec.tensor_options if spec else frozenset()
        inputs, input_spans, args = [], [], []
        seen_keyword = False
        for arg in call.args:
            if arg.key is None:
                if seen_keyword:
                    self.error(
                        "E201",
                        "a tensor argument after an option",
                        arg.span,
                        hint="pass tensors first, then key=value options",
                    )
                    continue
                tid = self.consume(fg, scope, arg.value, node.id)
                if tid is not None:
                    inputs.append(tid)
                    input_spans.append(arg.value.span)
                continue
            seen_keyword = True
            key = arg.key.id
            if key in tensor_opts:
                tid = self.consume(fg, scope, arg.value, node.id, read_only=True)
                if tid is not None:
                    node.reads[key] = tid
                    value = TensorName(fg.tensors[tid].name, tid)
                    args.append(RawArg(key, value, arg.span, arg.key.span, arg.value.span))
                continue
            ok, value = self.try_evaluate(arg.value, scope)
            if ok:
                args.append(RawArg(key, value, arg.span, arg.key.span, arg.value.span))
        node.inputs, node.input_spans, node.args = tuple(inputs), tuple(input_spans), tuple(args)
        node.n_positional = sum(1 for a in call.args if a.key is None)
        node.outputs = tuple(self.bind(fg, scope, t, node.id) for t in stmt.targets)


def lower(program: ast.Program) -> tuple[list[FlowGraph], list[Diagnostic]]:
    """Lower every flow of a program.  Returns the graphs and lowering diagnostics."""
    lowerer = _Lowerer(program)
    seen: dict[str, ast.Flow] = {}
    first_block: dict[str, ast.BlockDef] = {}
    for item in program.items:
        name = item.name.id
        if isinstance(item, ast.BlockDef):
            if name in first_block:
                lowerer.defined_twice(
                    "block", item.name, first_block[name].name, hint="rename one of them"
                )
            else:
                first_block[name] = item
            params: dict[str, ast.Param] = {}
            for p in item.params:
                if p.name.id in params:
                    lowerer.error(
                        "E201",
                        f"block `{name}` has two parameters named `{p.name.id}`",
                        p.name.span,
                        labels=(Label(params[p.name.id].name.span, "first here"),),
                    )
                params.setdefault(p.name.id, p)
        if isinstance(item, ast.BlockDef) and name in REGISTRY:
            lowerer.error(
                "E201",
                f"block `{name}` shadows the built-in block kind `{name}`",
                item.name.span,
                hint="choose another name",
            )
    graphs = []
    for flow in program.flows:
        if flow.name.id in seen:
            lowerer.defined_twice("flow", flow.name, seen[flow.name.id].name)
            continue
        seen[flow.name.id] = flow
        fg = lowerer.lower_flow(flow)
        if fg is not None:
            graphs.append(fg)
    complete = not has_errors(lowerer.diagnostics)
    for fg in graphs:
        fg.complete = complete
    # after `complete`: an unused block's errors are no holes in any flow's graph
    from flowspec.ir.unused import check_unused_blocks

    check_unused_blocks(lowerer, program)
    return graphs, lowerer.diagnostics
