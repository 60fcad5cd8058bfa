"""The YAML front end: YAML (LANGUAGE.md §7) → the same AST as ``.flow``.

Three stages, each stopping at its first problems, as a syntax error stops ``.flow``:

1. **Load** (:mod:`flowspec.syntax.yaml_load`) with PyYAML's safe loader, composing
   the node tree (never constructing objects), so every node keeps its line and
   column.  A tag outside YAML's core schema (``!!python/object/apply:...``,
   ``!custom``) is E100: nothing is executed.  Booleans are YAML 1.2's
   ``true``/``false`` only; ``yes``, ``no``, ``on`` and ``off`` are plain words (so a
   statement key ``on:`` stays the string "on").
2. **Validate** (:mod:`flowspec.syntax.yaml_schema_errors`) against
   ``grammar/flow.schema.json`` (generated from the block registry).  Each error is
   mapped back to the YAML node at its path.  Only *structure* errors stop here — the
   YAML counterpart of a ``.flow`` syntax error: E100 (an unknown key, a statement that
   is no statement, a keyword used as a name) or E201 (a missing key, a wrong type
   where the AST has no room for the value).  Errors in values the AST can hold (a
   registry block's options and arity, a ``require`` property or bound, a repeat
   count, a shape entry) are left to the checker, which reports them exactly as for the
   same ``.flow`` program.
3. **Lower** to the AST (this module).  A string where a value belongs is read with the
   ``.flow`` expression grammar: ``x`` is a name (tensor, constant or enum word),
   ``"2*h + 1"`` an integer expression, ``'"cuda:0"'`` (a ``.flow`` string, quotes
   included) a string.  A negative YAML number lowers to ``Neg`` of a positive
   literal, as ``-1`` parses in ``.flow``.  An unknown ``op`` is the checker's E200,
   as in ``.flow``.

The plain-words messages of all three stages (YAML syntax errors, step keys written as
synonyms, option values) are built in :mod:`flowspec.syntax.yaml_errors`.  Everything
after the AST (lowering, the passes, codegen) is shared with ``.flow``, so a shape or
consumption error points at the YAML node through the AST's spans.
"""

from __future__ import annotations

import math
from dataclasses import fields, is_dataclass, replace
from typing import Any

import yaml as pyyaml

from flowspec.core.collector import gc_paused
from flowspec.core.diagnostics import Diagnostic
from flowspec.core.spans import Source, Span
from flowspec.syntax import ast, dsl, yaml_errors
from flowspec.syntax.limits import (
    DEFAULT_LIMITS,
    Limits,
    check_bytes,
    too_many_statements,
    yaml_statement_over,
)
from flowspec.syntax.yaml_load import (
    _CORE,
    _NAME,
    _STRING,
    MAX_DEPTH,
    MAX_NODES,
    _is_name,
    _Reader,
    _Stop,
)
from flowspec.syntax.yaml_schema_errors import _SchemaErrors

__all__ = ["MAX_DEPTH", "MAX_EXPRESSION", "MAX_NODES", "parse"]

#: the longest expression string accepted
MAX_EXPRESSION = 2_000


def parse(
    source: Source, limits: Limits = DEFAULT_LIMITS
) -> tuple[ast.Program | None, list[Diagnostic]]:
    """Parse a YAML spec; on a structure error return ``(None, diagnostics)``.  With a
    program, the diagnostics are errors the checker reports too (deduplicated), with
    hints about the YAML form.  The byte limit is checked before loading, the statement
    limit right after."""
    too_large = check_bytes(source, limits)
    if too_large is not None:
        return None, [too_large]
    with gc_paused():  # as the .flow front end: see flowspec.core.collector
        return _parse(source, limits)


def _parse(source: Source, limits: Limits) -> tuple[ast.Program | None, list[Diagnostic]]:
    reader = _Reader(source)
    try:
        root = reader.compose()
        instance = reader.data(root)
    except _Stop:
        return None, reader.diagnostics
    if reader.diagnostics:
        return None, reader.diagnostics
    over = yaml_statement_over(root, limits.max_statements)
    if over is not None:
        return None, [too_many_statements(source, limits, reader.span(over).start)]
    schema = _SchemaErrors(reader, root, instance)
    diags = schema.diagnostics()
    if diags:
        return None, diags
    lowerer = _Lowerer(reader)
    try:
        program = lowerer.program(root)
    except _Stop:
        return None, _by_position(lowerer.errors + lowerer.diagnostics)
    if lowerer.diagnostics:
        return None, _by_position(lowerer.errors + lowerer.diagnostics)
    # the checker reports the advice too; said first, it keeps its YAML hints
    return program, _by_position(schema.advice + lowerer.errors)


def _by_position(diags: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(diags, key=lambda d: (d.span.start, d.span.end))


# -------------------------------------------------------------------------- lowering


def _options_of(kind: str) -> dict[str, Any] | None:
    """A registry block's options (name → option type), or None for other kinds."""
    from flowspec.kinds import REGISTRY

    entry = REGISTRY.get(kind)
    return None if entry is None else {o.name: o.type for o in entry.options}


def _relocate(node, move):
    """A copy of an AST with every span passed through ``move``."""
    if isinstance(node, tuple):
        return tuple(_relocate(n, move) for n in node)
    if isinstance(node, Span):
        return move(node)
    if is_dataclass(node):
        return replace(
            node, **{f.name: _relocate(getattr(node, f.name), move) for f in fields(node)}
        )
    return node


def _empty(node) -> bool:
    """A ``key:`` with nothing written after it."""
    return isinstance(node, pyyaml.ScalarNode) and node.tag == _CORE + "null" and not node.value


class _Lowerer:
    """YAML nodes (already validated) → AST nodes with the YAML spans."""

    def __init__(self, reader: _Reader) -> None:
        self.reader = reader
        self.source = reader.source
        self.diagnostics: list[Diagnostic] = []
        #: errors that do not stop lowering (a net written `{mlp: {...}}`), so the
        #: checker still reports what is wrong inside
        self.errors: list[Diagnostic] = []

    def span(self, node) -> Span:
        return self.reader.span(node)

    def pair_span(self, key_node, value_node) -> Span:
        return self.span(key_node).to(self.span(value_node))

    def get(self, node, key: str):
        return self.reader.get(node, key)

    def name(self, node, text: str | None = None, dotted: bool = False) -> ast.Name:
        text = node.value if text is None else text
        # the schema's `$` also matches before a final newline, so check again
        if not all(_is_name(part) for part in (text.split(".") if dotted else [text])):
            self.diagnostics.append(
                Diagnostic("E100", f"`{text}` is not a valid name", self.span(node))
            )
        return ast.Name(text, self.span(node))

    def names(self, node) -> tuple[ast.Name, ...]:
        if isinstance(node, pyyaml.SequenceNode):
            return tuple(self.name(n) for n in node.value)
        return (self.name(node),)

    # ------------------------------------------------------------- program

    def program(self, root) -> ast.Program:
        items: list = []
        blocks = self.get(root, "blocks")
        for key in self.reader.pairs(root):  # keep the order the file gives
            if key == "lets":
                items.extend(self.statement(n) for n in self.get(root, "lets").value)
            elif key == "blocks":
                items.extend(self.block(n) for n in blocks.value)
            elif key == "flows":
                items.extend(self.flow(n) for n in self.get(root, "flows").value)
        return ast.Program(tuple(items), self.span(root))

    def flow(self, node) -> ast.Flow:
        body: list = []
        pairs = self.reader.pairs(node)
        # `input:` and `context:` are both {name, shape}
        declarations: tuple[tuple[str, Any], ...] = (
            ("input", ast.InputStmt),
            ("context", ast.ContextStmt),
        )
        for key, statement in declarations:
            if key in pairs:
                key_node, value = pairs[key]
                shape = self.get(value, "shape")
                body.append(
                    statement(
                        self.name(self.get(value, "name")),
                        tuple(self.value(n) for n in shape.value),
                        self.pair_span(key_node, value),
                    )
                )
        if "direction" in pairs:
            key_node, value = pairs["direction"]
            body.append(ast.DirectionStmt(self.name(value), self.pair_span(key_node, value)))
        for key, stmt in (("latent", ast.LatentStmt), ("dequantize", ast.DequantizeStmt)):
            if key in pairs:
                key_node, value = pairs[key]
                body.append(stmt(self.value(value), self.pair_span(key_node, value)))
        if "body" in pairs:
            body.extend(self.body(pairs["body"][1]))
        if "output" in pairs:
            key_node, value = pairs["output"]
            body.append(ast.OutputStmt(self.names(value), self.pair_span(key_node, value)))
        return ast.Flow(self.name(self.get(node, "name")), tuple(body), self.span(node))

    def block(self, node) -> ast.BlockDef:
        params = []
        for p in getattr(self.get(node, "params"), "value", ()):
            if isinstance(p, pyyaml.ScalarNode):
                params.append(ast.Param(self.name(p), None, self.span(p)))
            else:
                ((key, (key_node, value)),) = self.reader.pairs(p).items()
                params.append(
                    ast.Param(
                        self.name(key_node, key),
                        self.value(value),
                        self.pair_span(key_node, value),
                    )
                )
        body = list(self.body(self.get(node, "body")))
        pairs = self.reader.pairs(node)
        if "return" in pairs:
            key_node, value = pairs["return"]
            body.append(ast.ReturnStmt(self.names(value), self.pair_span(key_node, value)))
        return ast.BlockDef(
            self.name(self.get(node, "name")), tuple(params), tuple(body), self.span(node)
        )

    def body(self, node) -> tuple:
        if node is None:
            return ()
        return tuple(self.statement(n) for n in node.value)

    # ---------------------------------------------------------- statements

    def statement(self, node):
        from flowspec.syntax.schema import STATEMENT_KEYS

        pairs = self.reader.pairs(node)
        key = next(k for k in STATEMENT_KEYS if k in pairs)
        value = pairs[key][1]
        span = self.span(node)
        if key == "op":
            return self.step(node)
        if key == "let":
            return ast.LetStmt(self.name(value), self.value(self.get(node, "value")), span)
        if key == "repeat":
            index = self.get(node, "as")
            return ast.RepeatStmt(
                self.value(value),
                None if index is None else self.name(index),
                self.body(self.get(node, "body")),
                span,
            )
        if key == "on":
            device = ast.String(str(value.value), self.span(value))
            return ast.OnStmt(device, self.body(self.get(node, "body")), span)
        if key == "input":
            shape = self.get(node, "shape")
            return ast.InputStmt(self.name(value), tuple(self.value(n) for n in shape.value), span)
        if key == "context":
            shape = self.get(node, "shape")
            dims = tuple(self.value(n) for n in shape.value)
            return ast.ContextStmt(self.name(value), dims, span)
        if key == "direction":
            return ast.DirectionStmt(self.name(value), span)
        if key == "latent":
            return ast.LatentStmt(self.value(value), span)
        if key == "dequantize":
            return ast.DequantizeStmt(self.value(value), span)
        if key == "require":
            bound = self.get(node, "max")
            return ast.RequireStmt(
                self.name(value), None if bound is None else self.value(bound), span
            )
        if key == "output":
            return ast.OutputStmt(self.names(value), span)
        return ast.ReturnStmt(self.names(value), span)

    def step(self, node) -> ast.Assign:
        from flowspec.syntax.schema import STEP_KEYS

        # an unknown kind is the checker's E200
        kind = self.name(self.get(node, "op"), dotted=True)
        inputs = self.names(self.get(node, "in"))
        args = [ast.Arg(None, ast.Ref(n.id, n.span), n.span) for n in inputs]
        args += self.keyword_args(node, skip=STEP_KEYS, table=_options_of(kind.id))
        out = self.get(node, "out")
        targets = inputs if out is None else self.names(out)
        span = self.span(node)
        return ast.Assign(targets, ast.Call(kind, tuple(args), span), span)

    # --------------------------------------------------------------- values

    def keyword_args(self, node, skip, table=None) -> list[ast.Arg]:
        """``key=value`` arguments from a mapping's pairs, except the keys in ``skip``;
        ``table`` (name → option type) says what each option expects, for messages."""
        table = table or {}
        return [
            ast.Arg(
                ast.Name(key, self.span(key_node)),
                self.value(value, key_node, table.get(key)),
                self.pair_span(key_node, value),
            )
            for key, (key_node, value) in self.reader.pairs(node).items()
            if key not in skip
        ]

    def value(self, node, key_node=None, otype=None) -> ast.Value:
        span = self.span(node)
        if isinstance(node, pyyaml.SequenceNode):
            return ast.ListValue(tuple(self.value(n) for n in node.value), span)
        if isinstance(node, pyyaml.MappingNode):
            words: Any = getattr(otype, "words", None)
            pairs = {k: v for k, (_, v) in self.reader.pairs(node).items()}
            word = yaml_errors.kind_as_key(pairs, words or ())
            if word is not None:  # `net: {mlp: {hidden: [64]}}`: say so, read it anyway
                word_node, inner = self.reader.pairs(node)[word]
                message, hint = yaml_errors.kind_as_key_message(word, otype.what)
                self.errors.append(Diagnostic("E201", message, self.span(word_node), hint=hint))
                table: dict[str, Any] | None = {o.name: o.type for o in words[word]}
                args = self.keyword_args(inner, skip=(), table=table) if inner.value else []
                return ast.Call(ast.Name(word, self.span(word_node)), tuple(args), span)
            kind = self.get(node, "kind")
            word = self.reader.scalar(kind) if isinstance(kind, pyyaml.ScalarNode) else None
            table = None
            if words is not None and isinstance(word, str) and word in words:
                table = {o.name: o.type for o in words[word]}
            args = self.keyword_args(node, skip=("kind",), table=table)
            if not isinstance(kind, pyyaml.ScalarNode) or not isinstance(
                self.reader.scalar(kind), str
            ):  # a mapping without `kind` has no AST form
                self.fail("E201", "a net or estimator needs `kind`", node)
            return ast.Call(self.name(kind, dotted=True), tuple(args), span)
        value = self.reader.scalar(node)
        if isinstance(value, bool):
            return ast.Bool(value, span)
        if isinstance(value, int):
            if value < 0:
                return ast.Neg(ast.Int(-value, span), span)
            return ast.Int(value, span)
        if isinstance(value, float):
            if not math.isfinite(value):
                self.fail("E201", f"`{node.value}`: numbers must be finite", node)
            if math.copysign(1.0, value) < 0:
                return ast.Neg(ast.Float(-value, span), span)
            return ast.Float(value, span)
        if value is None:  # `key:` left empty points at the key
            where = key_node if key_node is not None and _empty(node) else node
            self.fail("E201", "expected a value, got nothing (null)", where)
        return self.text_value(str(value), node, key_node, otype)

    def fail(self, code: str, message: str, node, hint: str | None = None):
        self.diagnostics.append(Diagnostic(code, message, self.span(node), hint=hint))
        raise _Stop

    def text_value(self, text: str, node, key_node=None, otype=None) -> ast.Value:
        """A string where a value belongs, read as ``.flow`` would read it."""
        from flowspec.syntax.build import _unquote, build
        from flowspec.syntax.dsl import KEYWORDS, syntax_error

        span = self.span(node)
        if _NAME.match(text) and text not in KEYWORDS:
            return ast.Ref(text, self._inner(node, text, 0, len(text)) or span)
        if text.startswith('"'):
            if not _STRING.match(text):
                self.fail(
                    "E100",
                    f'`{text}` is not a string: it starts with `"` but does not end with one',
                    node,
                    hint="a string value is written with its .flow quotes: '\"cuda:0\"'",
                )
            return ast.String(_unquote(text), span)
        if not text.strip():
            self.fail("E201", "expected a value, got an empty string", node)
        if len(text) > MAX_EXPRESSION:
            self.fail("E100", f"expression longer than {MAX_EXPRESSION} characters", node)
        from lark.exceptions import UnexpectedInput

        inner = Source(self.source.path, text)
        base = self._base(node, text)

        def move(s: Span) -> Span:
            if base is None:
                return span
            return self.source.span(base + s.start, base + s.end)

        try:
            tree = dsl.parser().parse(text, start="expr")
            value, too_deep = build(tree, inner, dsl.MAX_DEPTH)
            if too_deep is not None:
                self.fail("E100", "the expression nests too deeply", node)
        except UnexpectedInput as err:
            if key_node is not None and yaml_errors.looks_like_a_list(text):
                # `hidden: "64, 64"`: a list written as a string, said at the option
                message, hint = yaml_errors.list_in_a_string(
                    key_node.value, text, getattr(otype, "name", None)
                )
                self.diagnostics.append(
                    Diagnostic("E201", message, self.pair_span(key_node, node), hint=hint)
                )
                raise _Stop from None
            d = syntax_error(inner, err)
            message = d.message.replace("end of file", "end of the value")
            self.diagnostics.append(
                Diagnostic(
                    "E100",
                    f"cannot read `{text}` as a value: {message}",
                    move(d.span),
                    hint=(d.hint or "").replace("end of file", "the end of the value")
                    or 'a value here is a name, an integer expression such as "2*h + 1", '
                    "or a string in .flow quotes such as '\"cuda:0\"'",
                )
            )
            raise _Stop from None
        except RecursionError:
            self.fail("E100", "the expression nests too deeply", node)
        return _relocate(value, move)

    def _base(self, node, text: str) -> int | None:
        """Where a scalar's text starts in the file, if it is written as it reads."""
        start, end = node.start_mark.index, node.end_mark.index
        raw = self.source.text[start:end]
        if raw == text:
            return start
        if len(raw) >= 2 and raw[0] in "'\"" and raw[1:-1] == text:
            return start + 1
        return None

    def _inner(self, node, text: str, start: int, end: int) -> Span | None:
        base = self._base(node, text)
        return None if base is None else self.source.span(base + start, base + end)
