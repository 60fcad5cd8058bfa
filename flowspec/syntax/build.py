"""Parse tree → AST for the ``.flow`` front end: builders only build nodes and convert
literals.

The parser keeps every token (``keep_all_tokens``) and does not propagate positions:
a node's span is computed here, from its first to its last token, punctuation and
keywords included, as lark's ``propagate_positions`` would (a parenthesised
expression keeps its own span, and its parentheses count towards its parent's).
Propagating positions inside lark cost as much as the parse itself.

The walk recurses once per level of the tree and stops at ``max_depth`` levels
(parentheses are not a level, and are unwrapped in a loop), reporting where the tree
is too deep instead of building it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from lark import Token, Tree

from flowspec.core.spans import Source, Span, span_between
from flowspec.syntax import ast

#: one child's result: (value, first token, last token) — the tokens are None for
#: an empty subtree
_Result = tuple[Any, Any, Any]


def _nodes(values: list) -> list:
    """The built children, without the parser's tokens and placeholders."""
    return [v for v in values if v is not None and not isinstance(v, Token)]


def _unquote(tok: str) -> str:
    body = tok[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), body)


def _as_value(node):
    return ast.Ref(node.id, node.span) if isinstance(node, ast.Name) else node


def _program(v, s):
    return ast.Program(tuple(_nodes(v)), s)


def _flow(v, s):
    name, *body = _nodes(v)
    return ast.Flow(name, tuple(body), s)


def _block_def(v, s):
    name, *rest = _nodes(v)
    params = tuple(c for c in rest if isinstance(c, ast.Param))
    body = tuple(c for c in rest if not isinstance(c, ast.Param))
    return ast.BlockDef(name, params, body, s)


def _repeat_stmt(v, s):
    return ast.RepeatStmt(v[1], v[3], tuple(_nodes(v[4:])), s)


def _on_stmt(v, s):
    return ast.OnStmt(v[1], tuple(_nodes(v[2:])), s)


def _device(v, s):
    name, index = v[0], v[2]
    return ast.String(name.id if index is None else f"{name.id}:{index}", s)


def _assign(v, s):
    *targets, call = _nodes(v)
    return ast.Assign(tuple(targets), call, s)


def _call(v, s):
    kind, *args = _nodes(v)
    return ast.Call(kind, tuple(args), s)


def _binop(op: str) -> Callable:
    return lambda v, s: ast.BinOp(op, v[0], v[2], s)


#: rule (or alias) name → builder(children values, span)
_BUILDERS: dict[str, Callable[[list, Span], Any]] = {
    "program": _program,
    "flow": _flow,
    "block_def": _block_def,
    "param": lambda v, s: ast.Param(v[0], v[2], s),
    "input_stmt": lambda v, s: ast.InputStmt(v[1], v[3], s),
    "context_stmt": lambda v, s: ast.ContextStmt(v[1], v[3], s),
    "direction_stmt": lambda v, s: ast.DirectionStmt(v[1], s),
    "shape": lambda v, s: tuple(_nodes(v)),
    "latent_stmt": lambda v, s: ast.LatentStmt(_as_value(v[1]), s),
    "dequantize_stmt": lambda v, s: ast.DequantizeStmt(_as_value(v[1]), s),
    "let_stmt": lambda v, s: ast.LetStmt(v[1], v[3], s),
    "assign": _assign,
    "repeat_stmt": _repeat_stmt,
    "on_stmt": _on_stmt,
    "device": _device,
    "device_string": lambda v, s: ast.String(_unquote(v[0]), s),
    "require_stmt": lambda v, s: ast.RequireStmt(v[1], v[3], s),
    "output_stmt": lambda v, s: ast.OutputStmt(tuple(_nodes(v)), s),
    "return_stmt": lambda v, s: ast.ReturnStmt(tuple(_nodes(v)), s),
    "call": _call,
    "kind": lambda v, s: ast.Name(".".join(n.id for n in _nodes(v)), s),
    "positional": lambda v, s: ast.Arg(None, v[0], s),
    "keyword": lambda v, s: ast.Arg(v[0], v[2], s),
    "string": lambda v, s: ast.String(_unquote(v[0]), s),
    "true": lambda v, s: ast.Bool(True, s),
    "false": lambda v, s: ast.Bool(False, s),
    "list": lambda v, s: ast.ListValue(tuple(_nodes(v)), s),
    "add": _binop("+"),
    "sub": _binop("-"),
    "mul": _binop("*"),
    "div": _binop("/"),
    "mod": _binop("%"),
    "neg": lambda v, s: ast.Neg(v[1], s),
    "pos": lambda v, s: v[1],
    "int": lambda v, s: ast.Int(int(v[0]), s),
    "float": lambda v, s: ast.Float(float(v[0]), s),
    "ref": lambda v, s: ast.Ref(v[0].id, v[0].span),
    "atom": lambda v, s: v[1],  # `( expr )`: the expression itself
}


class _TooDeep(Exception):
    pass


def build(tree: Tree, source: Source, max_depth: int) -> tuple[Any, tuple[int, int] | None]:
    """The AST of ``tree``, or ``(None, (start, end))`` of a subtree deeper than
    ``max_depth`` levels (the first one a depth-first search finds that visits the
    last children first)."""
    path = source.path
    builders = _BUILDERS
    Name = ast.Name

    def visit(tree: Tree, depth: int) -> _Result:
        if depth > max_depth:
            raise _TooDeep
        values: list = []
        append = values.append
        # lark types every position of a token optional; the parser always sets them
        first: Any = None
        last: Any = None
        cfirst: Any
        clast: Any
        value: Any
        for child in tree.children:
            if child is None:
                append(None)
                continue
            if type(child) is Token:
                cfirst = clast = child
                if child.type == "NAME":  # a name is a token, not a level of the tree
                    value = Name(str(child), span_between(path, child, child))
                else:
                    value = child
            elif child.data == "atom":  # `( expr )`: no level of its own
                cfirst, clast = child.children[0], child.children[-1]
                while child.data == "atom":
                    child = child.children[1]
                value = visit(child, depth + 1)[0]
            else:
                value, cfirst, clast = visit(child, depth + 1)
            append(value)
            if cfirst is not None:
                if first is None:
                    first = cfirst
                last = clast
        span = source.span(0, 0) if first is None else span_between(path, first, last)
        return builders[tree.data](values, span), first, last

    while tree.data == "atom":
        tree = tree.children[1]
    try:
        return visit(tree, 1)[0], None
    except _TooDeep:
        return None, _deepest(tree, max_depth)


def _deepest(tree: Tree, max_depth: int) -> tuple[int, int]:
    """Offsets of the first subtree below ``max_depth`` levels in a depth-first search
    that visits the last children first; parentheses are not a level."""
    stack: list[tuple[Tree, int, tuple[int, int]]] = [(tree, 1, (0, 0))]
    while stack:
        node, depth, where = stack.pop()
        while node.data == "atom":
            node = node.children[1]
        tokens = _tokens(node)
        if tokens is not None:
            where = tokens
        if depth > max_depth:
            return where
        stack.extend((c, depth + 1, where) for c in node.children if isinstance(c, Tree))
    return (0, 0)


def _tokens(tree: Tree) -> tuple[int, int] | None:
    """Start and end offsets of a subtree's first and last tokens."""
    ends: list[int] = []
    for step in (iter, reversed):
        node = tree
        while True:
            child = next((c for c in step(node.children) if c is not None), None)
            if child is None:
                return None
            if isinstance(child, Token):
                offset = child.start_pos if step is iter else child.end_pos
                ends.append(offset or 0)
                break
            node = child
    return ends[0], ends[1]
