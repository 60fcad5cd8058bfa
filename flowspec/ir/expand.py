"""Expanding ``block`` calls during lowering: a call's tensors bound to the block's
tensor parameters, its options over the block's defaults (which see the file's
top-level constants), its body lowered in a scope of its own and its ``return``
bound to the caller's names.  A recursive block, or one nested deeper than
:data:`~flowspec.ir.scope.MAX_BLOCK_DEPTH`, is E203.

A mixin of :class:`flowspec.ir.lower._Lowerer`, which supplies the helpers used here
(``error``, ``consume``, ``try_evaluate``, ``constants``, ``lower_body``).
"""

from __future__ import annotations

from typing import Any

from flowspec.core.diagnostics import Label
from flowspec.core.names import did_you_mean
from flowspec.ir.graph import FlowGraph, Frame
from flowspec.ir.scope import MAX_BLOCK_DEPTH, _Abort, _Scope
from flowspec.syntax import ast


class BlockExpansion:
    """Lowering of calls of user-defined ``block``s (mixed into the lowerer)."""

    blocks: dict[str, ast.BlockDef]
    expanded: set[int]
    origin: list[Frame]
    # supplied by the lowerer
    error: Any
    consume: Any
    try_evaluate: Any
    constants: Any
    lower_body: Any

    def expand_block(self, fg: FlowGraph, stmt: ast.Assign, scope: _Scope) -> None:
        call = stmt.call
        block = self.blocks[call.kind.id]
        if any(name == block.name.id for name, _ in scope.stack):
            self.error(
                "E203",
                f"block `{block.name.id}` calls itself; recursion would unroll without end",
                call.kind.span,
                labels=(Label(block.name.span, "defined here"),),
            )
            return
        if len(scope.stack) >= MAX_BLOCK_DEPTH:
            self.error(
                "E203",
                f"block calls nest deeper than {MAX_BLOCK_DEPTH} levels",
                call.kind.span,
            )
            raise _Abort
        tensor_params = [p for p in block.params if p.default is None]
        option_params = [p.name.id for p in block.params if p.default is not None]
        positional = [a for a in call.args if a.key is None]
        keywords = [(a.key, a) for a in call.args if a.key is not None]
        if len(positional) != len(tensor_params):
            self.error(
                "E201",
                f"block `{block.name.id}` takes {len(tensor_params)} tensor(s), "
                f"got {len(positional)}",
                call.span,
                labels=(Label(block.name.span, "defined here"),),
            )
            return
        consts = self.defaults(block)
        given: set[str] = set()
        for key, a in keywords:
            if key.id in given:
                self.error("E201", f"option `{key.id}` given twice", a.span)
                continue
            given.add(key.id)
            if key.id not in option_params:
                self.error(
                    "E200",
                    f"block `{block.name.id}` has no option `{key.id}`",
                    key.span,
                    hint=did_you_mean(key.id, option_params),
                )
                continue
            ok, v = self.try_evaluate(a.value, scope)
            if ok:
                consts[key.id] = v
        # the block's own scope: its tensor parameters bound to the caller's tensors
        inner = _Scope(
            {},
            self.constants(consts),
            scope.device,
            (*scope.stack, (block.name.id, call.span)),
        )
        for param, arg in zip(tensor_params, positional):
            if not isinstance(arg.value, ast.Ref) or arg.value.name not in scope.tensors:
                self.consume(fg, scope, arg.value, "<unused>")  # reports the error
                return
            inner.tensors[param.name.id] = scope.tensors[arg.value.name]
        written = tuple((key.id, consts[key.id]) for key, _ in keywords if key.id in consts)
        self.origin.append(Frame("block", call.span, name=block.name.id, args=written))
        try:
            returned = self.block_body(fg, block, inner)
        finally:
            self.origin.pop()
        if returned is None:
            return
        if len(returned.names) != len(stmt.targets):
            self.error(
                "E201",
                f"block `{block.name.id}` returns {len(returned.names)} "
                f"tensor(s), but {len(stmt.targets)} name(s) are bound",
                stmt.span,
                labels=(Label(returned.span, "returned here"),),
            )
            return
        for target, tid in zip(stmt.targets, self.returned_tensors(returned, inner)):
            if tid is not None:  # the caller's name now refers to the block's result
                scope.tensors[target.id] = tid
        # tensors passed in are consumed by the block body; the caller's old bindings
        # of the passed names are gone (they were consumed inside)

    def defaults(self, block: ast.BlockDef) -> dict:
        """The block's option parameters at their defaults (evaluated in no scope)."""
        consts: dict = {}
        for p in block.params:
            if p.default is not None:
                ok, v = self.try_evaluate(p.default, _Scope({}, self.constants(), None, ()))
                if ok:
                    consts[p.name.id] = v
        return consts

    def block_body(
        self, fg: FlowGraph, block: ast.BlockDef, inner: _Scope
    ) -> ast.ReturnStmt | None:
        """Lower a block's body in its own scope; its ``return``, or None (E204)."""
        self.expanded.add(id(block))
        returned = self.lower_body(fg, block.body, inner, in_block=True)
        if returned is None:
            self.error("E204", f"block `{block.name.id}` has no `return`", block.name.span)
        return returned

    def returned_tensors(self, returned: ast.ReturnStmt, inner: _Scope) -> list[str | None]:
        """The tensor ids a ``return`` names (None, and E200, for an unknown name)."""
        out: list[str | None] = []
        for name in returned.names:
            tid = inner.tensors.get(name.id)
            if tid is None:
                self.error(
                    "E200",
                    f"unknown tensor `{name.id}`",
                    name.span,
                    hint=did_you_mean(name.id, inner.tensors),
                )
            out.append(tid)
        return out
