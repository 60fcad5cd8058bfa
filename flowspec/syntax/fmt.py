"""``flowspec fmt``: the canonical layout of a ``.flow`` program.

The layout is a function of the AST and the comments only, so formatting is
idempotent, and parsing the output gives the same AST (spans aside):

- 4-space indentation, one statement per line, one blank line between top-level
  items; inside a body, a blank line the author left between statements is kept
  (several collapse to one), none at the start or end of a body;
- ``key=value`` without spaces, a space after every comma, spaces around binary
  operators, the fewest parentheses that keep an expression's tree;
- numbers in their shortest form (``1e-5``, ``0.97``), strings with double quotes;
- a call, list, shape or parameter list longer than 99 columns (its trailing comment
  included, when wrapping makes room for it) is wrapped one item per line with a
  trailing comma, outermost first; items that still do not fit wrap in turn; a
  wrapped group that fits again is joined.

Comments are not in the AST; they are attached by position.  A comment on its own
line belongs to the statement (or argument, list item, parameter) that follows it,
or closes the body, call or list it ends; a comment after code on a line belongs to
the last statement or item that ends on that line, or, right after an opening
``{``/``(``/``[``, to that opener.  A call or list holding a comment is always
wrapped, so every comment keeps a line of its own.  Nothing is dropped: the tests
check that the output holds the same comments, in the same order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from flowspec.core.diagnostics import Diagnostic
from flowspec.core.spans import Source
from flowspec.syntax import ast
from flowspec.syntax.limits import DEFAULT_LIMITS, Limits

WIDTH = 99
INDENT = "    "

#: binding strength of an expression node (atoms bind tightest)
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2, "%": 2}
_NEG, _ATOM = 3, 4
_DEVICE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(:[0-9]+)?\Z")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TOKENS = re.compile(r'"(?:[^"\\\n]|\\.)*"?|#[^\n]*')
BLANK = None  # a blank line kept between statements


def format_source(
    source: Source, limits: Limits = DEFAULT_LIMITS
) -> tuple[str | None, list[Diagnostic]]:
    """Format ``.flow`` text; on a syntax error return ``(None, [E100])`` (E205 for a
    spec over the size ``limits``)."""
    from flowspec.syntax import dsl

    program, diags = dsl.parse(source, limits)
    if program is None:
        return None, diags
    return format_program(program, source), []


def format_program(program: ast.Program, source: Source | None = None) -> str:
    """The canonical text of ``program``; with ``source``, its comments kept."""
    comments = _Comments()
    if source is not None:
        _Attacher(source, comments).program(program)
    return _Printer(comments).program(program)


# ----------------------------------------------------------------------- literals


def float_text(value: float) -> str:
    """The shortest text that reads back as ``value``: ``0.97``, ``1e-5``, ``2.0``."""
    text = repr(float(value))
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = "-" if exponent.startswith("-") else ""
        text = f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"
    return text


def string_text(value: str) -> str:
    """A ``.flow`` string literal for ``value``."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\t", "\\t") + '"'


def device_text(device: str) -> str:
    from flowspec.syntax.dsl import KEYWORDS

    m = _DEVICE.match(device)
    if m and m[1] not in KEYWORDS:
        return device
    return string_text(device)


def _precedence(value: ast.Value) -> int:
    if isinstance(value, ast.BinOp):
        return _PRECEDENCE[value.op]
    if isinstance(value, ast.Neg):
        return _NEG
    return _ATOM


def value_text(value: ast.Value) -> str:
    """A value on one line."""
    if isinstance(value, ast.Bool):
        return "true" if value.value else "false"
    if isinstance(value, ast.Int):
        return str(value.value)
    if isinstance(value, ast.Float):
        return float_text(value.value)
    if isinstance(value, ast.String):
        return string_text(value.value)
    if isinstance(value, ast.Ref):
        return value.name
    if isinstance(value, ast.BinOp):
        p = _PRECEDENCE[value.op]
        left, right = value_text(value.left), value_text(value.right)
        if _precedence(value.left) < p:
            left = f"({left})"
        if _precedence(value.right) <= p:  # every operator associates to the left
            right = f"({right})"
        return f"{left} {value.op} {right}"
    if isinstance(value, ast.Neg):
        operand = value_text(value.operand)
        if _precedence(value.operand) < _NEG:
            operand = f"({operand})"
        return f"-{operand}"
    if isinstance(value, ast.ListValue):
        return "[" + ", ".join(value_text(v) for v in value.items) + "]"
    if isinstance(value, ast.Call):
        return f"{value.kind.id}(" + ", ".join(arg_text(a) for a in value.args) + ")"
    raise TypeError(f"not a value: {value!r}")


def arg_text(arg: ast.Arg) -> str:
    if arg.key is None:
        return value_text(arg.value)
    return f"{arg.key.id}={value_text(arg.value)}"


def param_text(param: ast.Param) -> str:
    if param.default is None:
        return param.name.id
    return f"{param.name.id}={value_text(param.default)}"


# ------------------------------------------------------------------------ comments


@dataclass
class _Comments:
    """Comments attached to nodes (by ``id``) and to containers (by ``(id, role)``)."""

    leading: dict[int, list] = field(default_factory=dict)  # texts and BLANKs
    trailing: dict[int, list[tuple[int, str]]] = field(default_factory=dict)  # (offset, text)
    header: dict[tuple, list[str]] = field(default_factory=dict)
    dangling: dict[tuple, list] = field(default_factory=dict)
    #: containers (by key) that hold a comment anywhere inside: they must wrap
    holding: set[tuple] = field(default_factory=set)


@dataclass(frozen=True)
class _Comment:
    start: int
    line: int
    text: str
    own_line: bool


@dataclass
class _Container:
    key: tuple
    start: int  # offset of the opener
    end: int  # offset just past the closer
    open_line: int
    close_line: int
    children: list
    body: bool  # statements (blank lines are kept) rather than items


def _key(node, role: str) -> tuple:
    return (id(node), role)


class _Attacher:
    """Attach each comment of the source to one place of the AST."""

    def __init__(self, source: Source, comments: _Comments) -> None:
        self.source = source
        self.text = source.text
        self.c = comments
        self.stack: list[_Container] = []

    def comments(self) -> list[_Comment]:
        out = []
        for m in _TOKENS.finditer(self.text):
            if not m[0].startswith("#"):
                continue
            line, column = self.source.position(m.start())
            before = self.source.line_text(line)[: column - 1]
            out.append(_Comment(m.start(), line, m[0].rstrip(), not before.strip()))
        return out

    def find(self, pos: int, char: str) -> int:
        """The offset of the next ``char`` at or after ``pos``, outside comments."""
        for m in re.compile(r'#[^\n]*|"(?:[^"\\\n]|\\.)*"?|' + re.escape(char)).finditer(
            self.text, pos
        ):
            if m[0] == char:
                return m.start()
        return len(self.text)

    def line(self, offset: int) -> int:
        return self.source.position(offset)[0]

    def container(self, key, start: int, end: int, children, body: bool = False):
        return _Container(
            key, start, end, self.line(start), self.line(max(end - 1, start)), children, body
        )

    # ---------------------------------------------------------- the tree

    def program(self, program: ast.Program) -> None:
        n = len(self.text)
        root = _Container(
            _key(program, "items"), 0, n, 0, self.line(n) + 1, list(program.items), True
        )
        self.attach(root, self.comments())

    def containers(self, node) -> list[_Container]:
        """The bracketed groups directly inside a node."""
        if isinstance(node, ast.Flow):
            return [self.braces(node, node.name.span.end, node.body)]
        if isinstance(node, ast.BlockDef):
            opener = self.find(node.name.span.end, "(")
            after = node.params[-1].span.end if node.params else opener + 1
            closer = self.find(after, ")")
            params = self.container(_key(node, "params"), opener, closer + 1, list(node.params))
            return [params, self.braces(node, closer + 1, node.body)]
        if isinstance(node, ast.RepeatStmt):
            after = node.index.span.end if node.index is not None else node.count.span.end
            return [self.braces(node, after, node.body)]
        if isinstance(node, ast.OnStmt):
            return [self.braces(node, node.device.span.end, node.body)]
        if isinstance(node, (ast.InputStmt, ast.ContextStmt)):
            opener = self.find(node.name.span.end, "[")
            return [self.container(_key(node, "shape"), opener, node.span.end, list(node.shape))]
        if isinstance(node, ast.Assign):
            return self.value_containers(node.call)
        if isinstance(node, ast.Arg):
            return self.value_containers(node.value)
        if isinstance(node, ast.Param):
            return self.value_containers(node.default)
        if isinstance(node, ast.LetStmt):
            return self.value_containers(node.value)
        if isinstance(node, (ast.LatentStmt, ast.DequantizeStmt)):
            return self.value_containers(node.kind)
        if isinstance(node, ast.RequireStmt):
            return self.value_containers(node.bound)
        return self.value_containers(node)  # a list item or a shape entry

    def braces(self, node, after: int, body) -> _Container:
        opener = self.find(after, "{")
        return self.container(_key(node, "body"), opener, node.span.end, list(body), body=True)

    def value_containers(self, value) -> list[_Container]:
        if isinstance(value, ast.Call):
            opener = self.find(value.kind.span.end, "(")
            return [self.container(_key(value, "args"), opener, value.span.end, list(value.args))]
        if isinstance(value, ast.ListValue):
            return [
                self.container(
                    _key(value, "items"), value.span.start, value.span.end, list(value.items)
                )
            ]
        return []

    # ---------------------------------------------------------- attaching

    def attach(self, box: _Container, comments: list[_Comment]) -> None:
        self.stack.append(box)
        by_child: dict[int, list[_Comment]] = {}
        leading: dict[int, list[_Comment]] = {}
        dangling: list[_Comment] = []
        for c in comments:
            child = next(
                (ch for ch in box.children if ch.span.start <= c.start < ch.span.end), None
            )
            if child is not None:
                by_child.setdefault(id(child), []).append(c)
                continue
            self.hold()
            if c.own_line:
                after = next((ch for ch in box.children if ch.span.start > c.start), None)
                if after is None:
                    dangling.append(c)
                else:
                    leading.setdefault(id(after), []).append(c)
                continue
            before = [ch for ch in box.children if ch.span.end <= c.start]
            prev = before[-1] if before else None
            if prev is not None and (prev.span.end_line == c.line or c.line != box.open_line):
                self.c.trailing.setdefault(id(prev), []).append((c.start, c.text))
            else:
                self.c.header.setdefault(box.key, []).append(c.text)
        previous_line = box.open_line
        for child in box.children:
            own = leading.get(id(child), [])
            self.c.leading[id(child)] = self.gap(previous_line, child.span.line, own, box.body)
            if id(child) in by_child or box.body:  # bodies keep their blank lines
                self.slot(child, by_child.get(id(child), []))
            previous_line = child.span.end_line
        if dangling or box.body:
            self.c.dangling[box.key] = self.gap(previous_line, box.close_line, dangling, box.body)
        self.stack.pop()

    def slot(self, node, comments: list[_Comment]) -> None:
        boxes = self.containers(node)
        inner: dict[int, list[_Comment]] = {}
        for c in comments:
            box = next((b for b in boxes if b.start <= c.start < b.end), None)
            if box is None:
                self.hold()
                self.c.trailing.setdefault(id(node), []).append((c.start, c.text))
            else:
                inner.setdefault(id(box), []).append(c)
        for box in boxes:
            if id(box) in inner or box.body:
                self.attach(box, inner.get(id(box), []))

    def hold(self) -> None:
        for box in self.stack:
            self.c.holding.add(box.key)

    def gap(self, after_line: int, before_line: int, comments, body: bool) -> list:
        """Comments (and, in a body, blank lines) between two lines, in order."""
        entries: list = []
        by_line = {c.line: c.text for c in comments}
        if body:
            for line in range(after_line + 1, before_line):
                if line in by_line:
                    entries.append(by_line.pop(line))
                elif not self.source.line_text(line).strip() and entries[-1:] != [BLANK]:
                    entries.append(BLANK)
        entries.extend(text for _, text in sorted(by_line.items()))
        return entries


# ------------------------------------------------------------------------- printer


class _Printer:
    def __init__(self, comments: _Comments) -> None:
        self.c = comments
        #: the width of the comment after the line being laid out (read once)
        self.comment = 0

    # ---------------------------------------------------------- structure

    def program(self, program: ast.Program) -> str:
        lines: list[str] = []
        for i, item in enumerate(program.items):
            lead = _strip_blanks(self.c.leading.get(id(item), []), start=True)
            # consecutive top-level constants stay together, as in a flow's body
            together = isinstance(item, ast.LetStmt) and isinstance(
                program.items[i - 1], ast.LetStmt
            )
            if i and not (together and not lead):
                lines.append("")
            lines.extend(_comment_lines(lead, ""))
            lines.extend(self.with_trailing(item, self.item(item)))
        end = self.c.dangling.get(_key(program, "items"), [])
        end = _strip_blanks(end, start=not program.items, end=True)
        lines.extend(_comment_lines(end, ""))
        return "\n".join(lines).rstrip("\n") + "\n" if lines else ""

    def item(self, item) -> list[str]:
        if isinstance(item, ast.LetStmt):
            return self.statement(item, 0)
        if isinstance(item, ast.Flow):
            head = [f"flow {item.name.id} {{"]
        else:
            head = self.bracketed(
                0,
                f"block {item.name.id}(",
                item.params,
                ") {",
                _key(item, "params"),
                self.param_lines,
                param_text,
            )
        return self.braced(head, item, item.body, 0)

    def braced(self, head: list[str], node, body, indent: int) -> list[str]:
        key = _key(node, "body")
        header = self.c.header.get(key, [])
        head = list(head)
        if header:
            head[-1] += "  " + header[0]
        inner = [*_comment_lines(header[1:], INDENT * (indent + 1))]
        inner += self.body(body, indent + 1)
        end = _strip_blanks(self.c.dangling.get(key, []), start=not body, end=True)
        inner += _comment_lines(end, INDENT * (indent + 1))
        if not inner and not header:
            return [*head[:-1], head[-1] + "}"]
        return [*head, *inner, INDENT * indent + "}"]

    def body(self, statements: Iterable, indent: int) -> list[str]:
        lines: list[str] = []
        pad = INDENT * indent
        for i, stmt in enumerate(statements):
            lead = _strip_blanks(self.c.leading.get(id(stmt), []), start=i == 0)
            lines.extend(_comment_lines(lead, pad))
            self.comment = self.trailing_width(stmt)
            lines.extend(self.with_trailing(stmt, self.statement(stmt, indent)))
        return lines

    def trailing_width(self, node) -> int:
        """The width of the comment that will follow a node's last line."""
        trailing = self.trailing(node)
        return 2 + len(trailing[-1]) if trailing else 0

    def trailing(self, node) -> list[str]:
        return [text for _, text in sorted(self.c.trailing.get(id(node), []))]

    def with_trailing(self, node, lines: list[str]) -> list[str]:
        """Append a node's trailing comment; earlier ones go on lines of their own."""
        trailing = self.trailing(node)
        if not trailing:
            return lines
        pad = lines[0][: len(lines[0]) - len(lines[0].lstrip(" "))]
        return [*(pad + t for t in trailing[:-1]), *lines[:-1], lines[-1] + "  " + trailing[-1]]

    def statement(self, stmt, indent: int) -> list[str]:
        pad = INDENT * indent
        if isinstance(stmt, ast.InputStmt):
            return self.bracketed(
                indent,
                f"input {stmt.name.id}: [",
                stmt.shape,
                "]",
                _key(stmt, "shape"),
                self.item_lines,
                value_text,
            )
        if isinstance(stmt, ast.ContextStmt):
            return self.bracketed(
                indent,
                f"context {stmt.name.id}: [",
                stmt.shape,
                "]",
                _key(stmt, "shape"),
                self.item_lines,
                value_text,
            )
        if isinstance(stmt, ast.DirectionStmt):
            return [f"{pad}direction {stmt.word.id}"]
        if isinstance(stmt, ast.LatentStmt):
            return self.value_lines(stmt.kind, indent, "latent ", "")
        if isinstance(stmt, ast.DequantizeStmt):
            return self.value_lines(stmt.kind, indent, "dequantize ", "")
        if isinstance(stmt, ast.LetStmt):
            return self.value_lines(stmt.value, indent, f"let {stmt.name.id} = ", "")
        if isinstance(stmt, ast.Assign):
            targets = ", ".join(t.id for t in stmt.targets)
            return self.value_lines(stmt.call, indent, f"{targets} = ", "")
        if isinstance(stmt, ast.RepeatStmt):
            head = f"repeat {value_text(stmt.count)}"
            if stmt.index is not None:
                head += f" as {stmt.index.id}"
            return self.braced([pad + head + " {"], stmt, stmt.body, indent)
        if isinstance(stmt, ast.OnStmt):
            head = f"on {device_text(stmt.device.value)} {{"
            return self.braced([pad + head], stmt, stmt.body, indent)
        if isinstance(stmt, ast.RequireStmt):
            if stmt.bound is None:
                return [f"{pad}require {stmt.property.id}"]
            return self.value_lines(stmt.bound, indent, f"require {stmt.property.id} <= ", "")
        if isinstance(stmt, ast.OutputStmt):
            return [f"{pad}output " + ", ".join(n.id for n in stmt.names)]
        if isinstance(stmt, ast.ReturnStmt):
            return [f"{pad}return " + ", ".join(n.id for n in stmt.names)]
        raise TypeError(f"not a statement: {stmt!r}")

    # ------------------------------------------------------------- values

    def value_lines(self, value, indent: int, prefix: str, suffix: str) -> list[str]:
        """``prefix + value + suffix`` at ``indent``, wrapped if it must be."""
        if isinstance(value, ast.Call):
            return self.bracketed(
                indent,
                f"{prefix}{value.kind.id}(",
                value.args,
                ")" + suffix,
                _key(value, "args"),
                self.arg_lines,
                arg_text,
            )
        if isinstance(value, ast.ListValue):
            return self.bracketed(
                indent,
                prefix + "[",
                value.items,
                "]" + suffix,
                _key(value, "items"),
                self.item_lines,
                value_text,
            )
        return [INDENT * indent + prefix + value_text(value) + suffix]

    def bracketed(self, indent, head, items, tail, key, item_lines, flat) -> list[str]:
        pad = INDENT * indent
        one_line = pad + head + ", ".join(flat(i) for i in items) + tail
        # a trailing comment counts, unless wrapping would not make room for it either
        comment, self.comment = self.comment, 0
        if key not in self.c.holding and (
            len(one_line) + comment <= WIDTH
            or (len(one_line) <= WIDTH and len(pad + tail) + comment > WIDTH)
            or not items
        ):
            return [one_line]
        header = self.c.header.get(key, [])
        first = pad + head + ("  " + header[0] if header else "")
        inner_pad = INDENT * (indent + 1)
        lines = [first, *_comment_lines(header[1:], inner_pad)]
        for item in items:
            lines.extend(_comment_lines(self.c.leading.get(id(item), []), inner_pad))
            self.comment = self.trailing_width(item)
            lines.extend(self.with_trailing(item, item_lines(item, indent + 1)))
        lines.extend(_comment_lines(self.c.dangling.get(key, []), inner_pad))
        lines.append(pad + tail)
        return lines

    def arg_lines(self, arg: ast.Arg, indent: int) -> list[str]:
        prefix = "" if arg.key is None else f"{arg.key.id}="
        return self.value_lines(arg.value, indent, prefix, ",")

    def item_lines(self, value, indent: int) -> list[str]:
        return self.value_lines(value, indent, "", ",")

    def param_lines(self, param: ast.Param, indent: int) -> list[str]:
        if param.default is None:
            return [INDENT * indent + param.name.id + ","]
        return self.value_lines(param.default, indent, f"{param.name.id}=", ",")


def _strip_blanks(entries: list, start: bool = False, end: bool = False) -> list:
    entries = list(entries)
    while start and entries and entries[0] is BLANK:
        entries.pop(0)
    while end and entries and entries[-1] is BLANK:
        entries.pop()
    return entries


def _comment_lines(entries: Iterable, pad: str) -> list[str]:
    return ["" if e is BLANK else pad + e for e in entries]
