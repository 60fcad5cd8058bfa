"""The AST: frozen dataclasses named after the grammar rules they come from.

Both front ends (``dsl.py`` for ``.flow`` text, ``yaml.py`` for YAML) build these
nodes; nothing after the AST knows which syntax a spec came from.  Every node carries
a :class:`~flowspec.core.spans.Span`.  Spans are excluded from equality, so two ASTs
that differ only in layout compare equal (``fmt`` and ``convert`` rely on that).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Union

from flowspec.core.spans import NOWHERE, Span


def _span() -> Span:
    return field(default=NOWHERE, compare=False, repr=False)


# ------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Name:
    """An identifier occurrence: a tensor, constant, option key or enum word."""

    id: str
    span: Span = _span()


@dataclass(frozen=True)
class Int:
    value: int
    span: Span = _span()


@dataclass(frozen=True)
class Float:
    value: float
    span: Span = _span()


@dataclass(frozen=True)
class Bool:
    value: bool
    span: Span = _span()


@dataclass(frozen=True)
class String:
    value: str
    span: Span = _span()


@dataclass(frozen=True)
class Ref:
    """A bare name used as a value: a tensor, a ``let`` constant, a repeat index, a
    block parameter or an enum word, depending on where it stands."""

    name: str
    span: Span = _span()


@dataclass(frozen=True)
class BinOp:
    """``left op right`` with ``op`` one of ``+ - * / %``."""

    op: str
    left: Value
    right: Value
    span: Span = _span()


@dataclass(frozen=True)
class Neg:
    operand: Value
    span: Span = _span()


@dataclass(frozen=True)
class ListValue:
    items: tuple[Value, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Arg:
    """A call argument: positional (``key is None``) or ``key=value``."""

    key: Name | None
    value: Value
    span: Span = _span()


@dataclass(frozen=True)
class Call:
    """``kind(args)``: a block application, a net such as ``mlp(hidden=[64])``, or an
    enum word with options such as ``roulette(p=0.5)``."""

    kind: Name  # dotted kinds keep their dots: ``coupling.affine``
    args: tuple[Arg, ...]
    span: Span = _span()


Value = Union[Int, Float, Bool, String, Ref, BinOp, Neg, ListValue, Call]


# --------------------------------------------------------------------- statements


@dataclass(frozen=True)
class InputStmt:
    name: Name
    shape: tuple[Value, ...]
    span: Span = _span()


@dataclass(frozen=True)
class ContextStmt:
    """``context y: [1]``: an external conditioning tensor, read by ``cond=`` only."""

    name: Name
    shape: tuple[Value, ...]
    span: Span = _span()


@dataclass(frozen=True)
class DirectionStmt:
    """``direction generative`` (the blocks map latent → data) or ``normalizing``."""

    word: Name
    span: Span = _span()


@dataclass(frozen=True)
class LatentStmt:
    kind: Value  # a Ref (``normal``) or a Call (``normal()``)
    span: Span = _span()


@dataclass(frozen=True)
class LetStmt:
    name: Name
    value: Value
    span: Span = _span()


@dataclass(frozen=True)
class Assign:
    targets: tuple[Name, ...]
    call: Call
    span: Span = _span()


@dataclass(frozen=True)
class RepeatStmt:
    count: Value
    index: Name | None
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True)
class OnStmt:
    device: String  # normalised to its text: ``cuda:1`` whether bare or quoted
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True)
class DequantizeStmt:
    kind: Value  # ``uniform(bits=8)``
    span: Span = _span()


@dataclass(frozen=True)
class RequireStmt:
    property: Name
    bound: Value | None
    span: Span = _span()


@dataclass(frozen=True)
class OutputStmt:
    names: tuple[Name, ...]
    span: Span = _span()


@dataclass(frozen=True)
class ReturnStmt:
    names: tuple[Name, ...]
    span: Span = _span()


Stmt = Union[
    InputStmt,
    ContextStmt,
    DirectionStmt,
    LatentStmt,
    LetStmt,
    Assign,
    RepeatStmt,
    OnStmt,
    DequantizeStmt,
    RequireStmt,
    OutputStmt,
    ReturnStmt,
]


# ---------------------------------------------------------------------- top level


@dataclass(frozen=True)
class Param:
    """A ``block`` parameter: a tensor (no default) or an option (with a default)."""

    name: Name
    default: Value | None
    span: Span = _span()


@dataclass(frozen=True)
class Flow:
    name: Name
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True)
class BlockDef:
    name: Name
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span = _span()


@dataclass(frozen=True)
class Program:
    #: flows, block definitions and top-level ``let`` constants, in file order
    items: tuple[Flow | BlockDef | LetStmt, ...]
    span: Span = _span()

    @property
    def lets(self) -> tuple[LetStmt, ...]:
        return tuple(i for i in self.items if isinstance(i, LetStmt))

    @property
    def flows(self) -> tuple[Flow, ...]:
        return tuple(i for i in self.items if isinstance(i, Flow))

    @property
    def blocks(self) -> tuple[BlockDef, ...]:
        return tuple(i for i in self.items if isinstance(i, BlockDef))


def dump(node: object, indent: int = 0) -> str:
    """A stable, span-free text dump of an AST (used by the golden snapshots)."""
    pad = "  " * indent
    if isinstance(node, tuple):
        if not node:
            return "()"
        inner = "\n".join(pad + "  " + dump(n, indent + 1) for n in node)
        return "(\n" + inner + "\n" + pad + ")"
    if is_dataclass(node):
        parts = [
            f"{f.name}={dump(getattr(node, f.name), indent + 1)}"
            for f in fields(node)
            if f.name != "span"
        ]
        simple = f"{type(node).__name__}({', '.join(parts)})"
        if len(simple) + len(pad) <= 99 and "\n" not in simple:
            return simple
        inner = ",\n".join(pad + "  " + p for p in parts)
        return f"{type(node).__name__}(\n{inner}\n{pad})"
    return repr(node)
