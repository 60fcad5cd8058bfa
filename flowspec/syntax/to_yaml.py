"""AST → the YAML form (LANGUAGE.md §7), for ``flowspec convert --to yaml``.

The YAML this writes lowers back to the same AST (spans aside); only comments are
lost.  How each construct is written:

- a step ``a, b = kind(x, y, k=v)`` is ``{op: kind, in: [x, y], out: [a, b], k: v}``;
  ``out`` is left out when it repeats ``in``, a single name is written bare;
- a flow's leading ``input``, ``latent`` and ``dequantize`` and its final ``output``
  become the flow's own keys, and the statements between them its ``body``; any of
  these statements found elsewhere stays in the body in its statement form
  (``{input: x, shape: [2]}``, ``{latent: normal}``, ``{output: [z]}``), so the order
  is kept;
- a block's final ``return`` becomes its ``return`` key; a parameter with a default is
  a one-pair mapping ``{hidden: 512}``;
- values: numbers, ``true``/``false``, lists as YAML; a name (tensor, constant, enum
  word) as a bare string; a net or estimator ``mlp(hidden=[64])`` as
  ``{kind: mlp, hidden: [64]}``; an integer expression as a string in ``.flow``
  syntax (``"2 * h + 1"``); a negative literal as a YAML number (``-1``); a ``.flow``
  string as a YAML string holding its quotes (``'"cuda:0"'``);
- top-level blocks and flows go in ``blocks:`` and ``flows:``, the one written first
  being the kind the program starts with (a program that interleaves them comes back
  grouped, the one reordering; the order of definitions has no meaning).

Constructs that have no YAML form raise :class:`ConversionError` with a diagnostic:
an option named ``op``, ``in`` or ``out`` on a step, ``kind`` on a net, an option
given twice, a tensor argument after an option, or a positional argument inside a
net.  The checker rejects all of these in ``.flow`` too, except the option names of a
user's own block.
"""

from __future__ import annotations

import math
import re
from typing import Any, NoReturn, TypeVar

from flowspec.core.diagnostics import Diagnostic
from flowspec.syntax import ast
from flowspec.syntax.fmt import string_text, value_text

_S = TypeVar("_S")

WIDTH = 99
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
#: words other YAML readers (YAML 1.1) take for booleans or null: always quoted
_SPECIAL = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
#: characters YAML reads as line breaks inside a scalar (and folds)
_BREAKS = re.compile("[\x85\u2028\u2029]")
_PRINTABLE = re.compile("[\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*\\Z")


class ConversionError(Exception):
    """A construct with no YAML form; ``diagnostic`` says where."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


class _Block(dict):
    """A mapping always written in block style (it holds statements)."""


class _Body(list):
    """A list of statements: always written in block style, one per line."""


def to_yaml(program: ast.Program) -> str:
    """The YAML text of ``program``."""
    return "\n".join(_lines(to_data(program), 0)) + "\n"


# ------------------------------------------------------------------ AST → data


def _fail(message: str, node, hint: str | None = None) -> NoReturn:
    raise ConversionError(Diagnostic("E201", message, node.span, hint=hint))


def to_data(program: ast.Program) -> dict:
    """The plain data (dicts, lists, scalars) of the YAML form of ``program``."""
    out = _Block(flowspec=1)
    groups = {
        "lets": [_statement(s) for s in program.lets],
        "blocks": [_block(b) for b in program.blocks],
        "flows": [_flow(f) for f in program.flows],
    }
    # the groups in the order their first item comes in the file
    first = {"lets": ast.LetStmt, "blocks": ast.BlockDef, "flows": ast.Flow}
    order = sorted(
        groups,
        key=lambda g: next(
            (i for i, item in enumerate(program.items) if isinstance(item, first[g])),
            len(program.items),
        ),
    )
    for key in order:
        if groups[key]:
            out[key] = groups[key]
    return out


def _names(names) -> Any:
    ids = [n.id for n in names]
    return ids[0] if len(ids) == 1 else ids


def _take(body: list, kind: type[_S]) -> _S | None:
    """``body``'s first statement if it is a ``kind``, removed from ``body``."""
    if body and isinstance(body[0], kind):
        return body.pop(0)
    return None


def _flow(flow: ast.Flow) -> dict:
    out = _Block(name=flow.name.id)
    body = list(flow.body)
    if (inp := _take(body, ast.InputStmt)) is not None:
        out["input"] = {"name": inp.name.id, "shape": [_value(d) for d in inp.shape]}
    if (ctx := _take(body, ast.ContextStmt)) is not None:
        out["context"] = {"name": ctx.name.id, "shape": [_value(d) for d in ctx.shape]}
    if (direction := _take(body, ast.DirectionStmt)) is not None:
        out["direction"] = direction.word.id
    if (latent := _take(body, ast.LatentStmt)) is not None:
        out["latent"] = _value(latent.kind)
    if (deq := _take(body, ast.DequantizeStmt)) is not None:
        out["dequantize"] = _value(deq.kind)
    last = body[-1] if body else None
    output = body.pop() if isinstance(last, ast.OutputStmt) else None
    if body:
        out["body"] = _Body(_statement(s) for s in body)
    if isinstance(output, ast.OutputStmt):
        out["output"] = [n.id for n in output.names]
    return out


def _block(block: ast.BlockDef) -> dict:
    out = _Block(name=block.name.id)
    if block.params:
        out["params"] = [
            p.name.id if p.default is None else {p.name.id: _value(p.default)}
            for p in block.params
        ]
    body = list(block.body)
    last = body[-1] if body else None
    returned = body.pop() if isinstance(last, ast.ReturnStmt) else None
    if body:
        out["body"] = _Body(_statement(s) for s in body)
    if isinstance(returned, ast.ReturnStmt):
        out["return"] = [n.id for n in returned.names]
    return out


def _statement(stmt) -> dict:
    if isinstance(stmt, ast.Assign):
        return _step(stmt)
    if isinstance(stmt, ast.LetStmt):
        return {"let": stmt.name.id, "value": _value(stmt.value)}
    if isinstance(stmt, ast.RepeatStmt):
        out = _Block(repeat=_value(stmt.count))
        if stmt.index is not None:
            out["as"] = stmt.index.id
        out["body"] = _Body(_statement(s) for s in stmt.body)
        return out
    if isinstance(stmt, ast.OnStmt):
        return _Block(on=stmt.device.value, body=_Body(_statement(s) for s in stmt.body))
    if isinstance(stmt, ast.InputStmt):
        return {"input": stmt.name.id, "shape": [_value(d) for d in stmt.shape]}
    if isinstance(stmt, ast.ContextStmt):
        return {"context": stmt.name.id, "shape": [_value(d) for d in stmt.shape]}
    if isinstance(stmt, ast.DirectionStmt):
        return {"direction": stmt.word.id}
    if isinstance(stmt, ast.LatentStmt):
        return {"latent": _value(stmt.kind)}
    if isinstance(stmt, ast.DequantizeStmt):
        return {"dequantize": _value(stmt.kind)}
    if isinstance(stmt, ast.RequireStmt):
        required: dict[str, Any] = {"require": stmt.property.id}
        if stmt.bound is not None:
            required["max"] = _value(stmt.bound)
        return required
    if isinstance(stmt, ast.OutputStmt):
        return {"output": [n.id for n in stmt.names]}
    if isinstance(stmt, ast.ReturnStmt):
        return {"return": [n.id for n in stmt.names]}
    raise TypeError(f"not a statement: {stmt!r}")


def _step(stmt: ast.Assign) -> dict:
    call = stmt.call
    inputs: list[str] = []
    options: dict[str, Any] = {}
    for arg in call.args:
        if arg.key is None:
            if options:
                _fail(
                    "a tensor argument after an option has no YAML form",
                    arg,
                    hint="pass tensors first, then key=value options",
                )
            if not isinstance(arg.value, ast.Ref):
                _fail("a tensor argument must be a tensor name", arg)
            else:
                inputs.append(arg.value.name)
            continue
        if arg.key.id in ("op", "in", "out"):
            _fail(
                f"an option named `{arg.key.id}` has no YAML form: `op`, `in` and `out` "
                "are the keys of a step",
                arg.key,
                hint="rename the block's parameter",
            )
        _once(arg, options)
        options[arg.key.id] = _value(arg.value)
    if not inputs:
        _fail("a step with no tensor argument has no YAML form", call)
    out: dict[str, Any] = {"op": call.kind.id, "in": inputs[0] if len(inputs) == 1 else inputs}
    targets = [t.id for t in stmt.targets]
    if targets != inputs:
        out["out"] = targets[0] if len(targets) == 1 else targets
    out.update(options)
    return out


def _once(arg: ast.Arg, options: dict) -> None:
    """A YAML mapping holds each key once: an option given twice cannot be written
    (silently keeping one of them would change the program)."""
    if arg.key is not None and arg.key.id in options:
        _fail(
            f"option `{arg.key.id}` given twice; a YAML mapping has each key once",
            arg,
            hint="remove one of them",
        )


def _value(value: ast.Value) -> Any:
    if isinstance(value, ast.Bool):
        return value.value
    if isinstance(value, ast.Int):
        return value.value
    if isinstance(value, ast.Float) and math.isfinite(value.value):
        return value.value
    if isinstance(value, ast.Neg):
        operand = value.operand
        if isinstance(operand, ast.Int) and operand.value > 0:
            return -operand.value  # YAML -1 reads back as Neg(Int(1))
        if (
            isinstance(operand, ast.Float)
            and math.isfinite(operand.value)
            and math.copysign(1.0, operand.value) > 0
        ):
            return -operand.value
    if isinstance(value, ast.Ref):
        return value.name
    if isinstance(value, ast.String):
        return string_text(value.value)  # the quotes tell a string from a name
    if isinstance(value, ast.ListValue):
        return [_value(v) for v in value.items]
    if isinstance(value, ast.Call):
        out = {"kind": value.kind.id}
        for arg in value.args:
            if arg.key is None:
                _fail(
                    f"`{value.kind.id}(...)` takes options as key=value; a positional "
                    "argument has no YAML form",
                    arg,
                )
            if arg.key.id == "kind":
                _fail("an option named `kind` has no YAML form", arg.key)
            _once(arg, out)
            out[arg.key.id] = _value(arg.value)
        return out
    return value_text(value)  # an expression (or -0): its .flow text


# ------------------------------------------------------------------ data → text


def _scalar(value: Any, key: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    text = str(value)
    if _PLAIN.match(text) and (text.lower() not in _SPECIAL or (key and text == "on")):
        return text
    if _PRINTABLE.match(text) and not _BREAKS.search(text) and text.startswith('"'):
        return "'" + text.replace("'", "''") + "'"
    return _double_quoted(text)


def _float(value: float) -> str:
    """A float as every YAML reader reads it: a dot, and a signed exponent."""
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        if exponent[0] not in "+-":
            exponent = "+" + exponent
        text = f"{mantissa}e{exponent}"
    return text


def _double_quoted(text: str) -> str:
    out = []
    for ch in text:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif _PRINTABLE.match(ch) and not _BREAKS.match(ch):
            out.append(ch)
        elif ord(ch) <= 0xFF:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def _holds_block(value: Any) -> bool:
    if isinstance(value, (_Block, _Body)):
        return bool(value)  # an empty body is written `[]`
    if isinstance(value, dict):
        return any(_holds_block(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_block(v) for v in value)
    return False


def _flow_style(value: Any) -> str | None:
    """The one-line form of a value, or None if it must be written in block style."""
    return None if _holds_block(value) else _inline(value)


def _inline(value: Any) -> str:
    """The one-line form of a value that holds no statements."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar(k, True)}: {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return _scalar(value)


def _lines(value: Any, indent: int) -> list[str]:
    """A mapping or a list in block style, at ``indent`` spaces."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            head = f"{pad}{_scalar(k, True)}:"
            flat = _flow_style(v)
            if flat is not None and (
                len(head) + 1 + len(flat) <= WIDTH or not isinstance(v, (dict, list)) or not v
            ):
                lines.append(f"{head} {flat}")
            else:
                lines.append(head)
                lines.extend(_lines(v, indent + 2))
        return lines
    for item in value:
        flat = _flow_style(item)
        if flat is not None and (
            indent + 2 + len(flat) <= WIDTH or not isinstance(item, (dict, list)) or not item
        ):
            lines.append(f"{pad}- {flat}")
        elif isinstance(item, dict):
            inner = _lines(item, indent + 2)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines.extend(inner[1:])
        else:
            lines.append(f"{pad}-")
            lines.extend(_lines(item, indent + 2))
    return lines
