"""Evaluation of spec values during lowering: numbers, integer expressions, lists,
``let`` constants and ``kind(key=value)`` calls.

Bare words become :class:`~flowspec.kinds.options.Word` and calls
:class:`~flowspec.kinds.options.Raw`, resolved later against the registry.  Integer
expressions divide exactly and may not grow past :data:`MAX_INT_BITS`, so no spec can
make the checker compute with huge numbers.

    let h = 2 * 32 + 1        # 65
    x = coupling.affine(x, net=mlp(hidden=[h / 2]))   # E201 65 / 2 is not a whole number
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowspec.core.diagnostics import Diagnostic
from flowspec.core.names import did_you_mean
from flowspec.core.spans import Span
from flowspec.kinds.options import Raw, Word
from flowspec.syntax import ast

#: integers beyond this many bits do not fit a float; expressions may not make them
MAX_INT_BITS = 1000


class EvalError(Exception):
    """A value that cannot be evaluated; carries its diagnostic."""

    def __init__(self, code: str, message: str, span: Span, hint: str | None = None):
        super().__init__(message)
        self.diagnostic = Diagnostic(code, message, span, hint=hint)


def evaluate(value: ast.Value, consts: Mapping[str, Any], numeric: bool = False) -> Any:
    """Evaluate a value: numbers, lists, constants; bare words become ``Word``."""
    if isinstance(value, (ast.Int, ast.Float, ast.Bool, ast.String)):
        return value.value
    if isinstance(value, ast.Ref):
        if value.name in consts:
            return consts[value.name]
        if numeric:
            hint = did_you_mean(value.name, consts)
            raise EvalError("E200", f"unknown constant `{value.name}`", value.span, hint)
        return Word(value.name)
    if isinstance(value, ast.Neg):
        v = evaluate(value.operand, consts, numeric=True)
        _number(v, value.operand.span)
        return -v
    if isinstance(value, ast.BinOp):
        left = evaluate(value.left, consts, numeric=True)
        right = evaluate(value.right, consts, numeric=True)
        _number(left, value.left.span)
        _number(right, value.right.span)
        if value.op in "/%" and right == 0:
            raise EvalError("E201", "division by zero", value.span)
        if value.op in "+-*%":
            result = {
                "+": lambda: left + right,
                "-": lambda: left - right,
                "*": lambda: left * right,
                "%": lambda: left % right,
            }[value.op]()
            if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
                raise EvalError("E201", "integer too large", value.span)
            return result
        both_int = isinstance(left, int) and isinstance(right, int)
        if both_int and left % right:
            raise EvalError(
                "E201",
                f"{left} / {right} is not a whole number",
                value.span,
                hint="integer expressions divide exactly; use % for the remainder",
            )
        return left // right if both_int else left / right
    if isinstance(value, ast.ListValue):
        return [evaluate(v, consts) for v in value.items]
    if isinstance(value, ast.Call):
        options = []
        for arg in value.args:
            if arg.key is None:
                raise EvalError(
                    "E201", f"`{value.kind.id}(...)` takes options as key=value", arg.span
                )
            options.append((arg.key.id, evaluate(arg.value, consts), arg.span))
        return Raw(value.kind.id, tuple(options), value.span)
    raise EvalError("E201", "unsupported value", value.span)


def _number(v: Any, span: Span) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise EvalError("E201", "expected a number in this expression", span)
