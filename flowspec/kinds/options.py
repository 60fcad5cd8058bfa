"""Option types: what a block option, net option or enum word accepts.

The registry declares each option with one of these types; the arguments pass
validates the values lowering evaluated against them.  Everything here is plain
Python (no torch), so ``flowspec check`` stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowspec.core.names import close_matches, did_you_mean


class OptionError(Exception):
    """A value an option does not accept.  ``code`` is E200 (unknown word) or E201.

    ``span`` is where the problem is, when the resolver knows it (an option of a net
    written in the spec); ``None`` lets the caller point at the value it passed.
    ``key_only``: the problem is the option's name, so the caller underlines the key.
    """

    def __init__(
        self,
        message: str,
        code: str = "E201",
        hint: str | None = None,
        *,
        span: Any = None,
        key_only: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint
        self.span = span
        self.key_only = key_only


def one_of(word: str, candidates: Iterable[str], what: str = "expected one of") -> str:
    """The hint for an unknown ``word``: "did you mean …", else the candidates."""
    candidates = tuple(candidates)
    return did_you_mean(str(word), candidates) or f"{what} " + ", ".join(
        f"`{c}`" for c in candidates
    )


def options_hint(owner: str, names: Iterable[str]) -> str:
    """The options ``owner`` has, or that it has none (never an empty list)."""
    names = tuple(names)
    if not names:
        return f"{owner} takes no options"
    return "options: " + ", ".join(f"`{o}`" for o in names)


@dataclass(frozen=True)
class Word:
    """A bare enum word as written (``relu``, ``checkerboard``), before resolution."""

    name: str


class Choice:
    """A resolved enum word with its own options: ``mlp(hidden=[64, 64], act=relu)``,
    ``roulette(p=0.5)``, ``random(seed=0)``, or a bare word such as ``half``.

    ``repr`` is valid Python given ``Choice`` in scope (``Choice('mlp', hidden=[64])``),
    so generated code embeds it as it is.
    """

    __slots__ = ("kind", "options")
    kind: str
    options: dict[str, Any]

    def __init__(self, kind: str, options: Mapping[str, Any] | None = None, **kw: Any):
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "options", {**(options or {}), **kw})

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Choice is immutable")

    def __getitem__(self, key: str) -> Any:
        return self.options[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return not self.options and self.kind == other
        return isinstance(other, Choice) and (self.kind, self.options) == (
            other.kind,
            other.options,
        )

    def __hash__(self) -> int:
        return hash((self.kind, repr(sorted(self.options.items()))))

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"Choice({self.kind!r}{args})"

    def __str__(self) -> str:
        if not self.options:
            return self.kind
        args = ", ".join(f"{k}={_show(v)}" for k, v in self.options.items())
        return f"{self.kind}({args})"


def word(value: Choice | str) -> str:
    """The word of an option that is either a :class:`Choice` or a bare word
    (``Choice('half')`` → ``half``); the runtime reads enum options this way."""
    return value.kind if isinstance(value, Choice) else str(value)


@dataclass(frozen=True)
class Raw:
    """An unresolved ``kind(key=value, ...)`` value, as lowering evaluated it."""

    kind: str
    options: tuple[tuple[str, Any, Any], ...]  # (key, value, span)
    span: Any = None


@dataclass(frozen=True)
class TensorName:
    """A tensor passed to a tensor-typed option such as ``cond=``."""

    name: str
    id: str


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    if isinstance(v, str):
        return v
    return str(v)


def describe(value: Any) -> str:
    """How a value is named in a message: "the integer 3", "a list", ..."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {_show(value)}"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        # an integral float keeps its point: "the number 2.0", not "the number 2"
        return f"the number {value!r}" if value.is_integer() else f"the number {value:g}"
    if isinstance(value, str):
        return f'the string "{value}"'
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Word):
        return f"the word `{value.name}`"
    if isinstance(value, Raw):
        return f"`{value.kind}(...)`"
    if isinstance(value, TensorName):
        return f"the tensor `{value.name}`"
    if isinstance(value, Mapping):
        return "a mapping"
    return repr(value)


class OptionType:
    """Base: ``resolve(value)`` returns the normalised value or raises OptionError."""

    name = "value"

    def resolve(self, value: Any) -> Any:
        raise NotImplementedError

    def wrong(self, value: Any) -> OptionError:
        return OptionError(f"expected {self.name}, got {describe(value)}")


@dataclass(frozen=True)
class Int(OptionType):
    min: int | None = None
    max: int | None = None
    name: str = "an integer"

    def resolve(self, value: Any) -> int:
        if isinstance(value, float):
            # even an integral float: 1e308 is "integral" and no size
            raise OptionError(
                f"expected {self.name}, got the float {value!r}", hint=_integer_hint(value)
            )
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong(value)
        if self.min is not None and value < self.min:
            raise OptionError(f"must be at least {self.min}, got {value}")
        if self.max is not None and value > self.max:
            raise OptionError(f"{value} is too large: at most {self.max}")
        return value


def _integer_hint(value: float) -> str:
    if value.is_integer() and abs(value) <= 2**53:
        return f"write `{int(value)}`: integers have no decimal point or exponent"
    return "write a whole number without a decimal point or exponent"


@dataclass(frozen=True)
class Float(OptionType):
    min: float | None = None
    max: float | None = None
    min_open: bool = False
    max_open: bool = False
    name: str = "a number"

    def resolve(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.wrong(value)
        value = float(value)
        if not math.isfinite(value):
            raise OptionError(f"must be finite, got {value}")
        lo, hi = self.min, self.max
        if lo is not None and (value < lo or (self.min_open and value == lo)):
            raise OptionError(
                f"must be {'>' if self.min_open else '>='} {lo:g}, got {value:g}",
                hint=self.range_hint(),
            )
        if hi is not None and (value > hi or (self.max_open and value == hi)):
            raise OptionError(
                f"must be {'<' if self.max_open else '<='} {hi:g}, got {value:g}",
                hint=self.range_hint(),
            )
        return value

    def range_hint(self) -> str | None:
        if self.min is None or self.max is None:
            return None
        left = "(" if self.min_open else "["
        right = ")" if self.max_open else "]"
        return f"use a value in {left}{self.min:g}, {self.max:g}{right}"


@dataclass(frozen=True)
class Bool(OptionType):
    name: str = "`true` or `false`"

    def resolve(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.wrong(value)
        return value


@dataclass(frozen=True)
class Str(OptionType):
    name: str = "a string"

    def resolve(self, value: Any) -> str:
        if isinstance(value, Word):
            return value.name
        if not isinstance(value, str):
            raise self.wrong(value)
        return value


@dataclass(frozen=True)
class IntList(OptionType):
    min_len: int = 0
    max_len: int | None = None
    item_min: int | None = None
    item_max: int | None = None
    name: str = "a list of integers"
    #: what one item is, in "too large" messages ("`hidden` width 70000 is too large")
    item: str = "item"
    items: str = "items"

    def resolve(self, value: Any) -> list[int]:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]  # `hidden=64` means one hidden layer of 64
        if not isinstance(value, list):
            raise self.wrong(value)
        if self.max_len is not None and len(value) > self.max_len:
            raise OptionError(f"has too many {self.items}: {len(value)}, at most {self.max_len}")
        item = Int(min=self.item_min)
        out = []
        for v in value:
            try:
                v = item.resolve(v)
            except OptionError as e:
                raise OptionError(f"list item: {e.message}", hint=e.hint) from None
            if self.item_max is not None and v > self.item_max:
                raise OptionError(f"{self.item} {v} is too large: at most {self.item_max}")
            out.append(v)
        if len(out) < self.min_len:
            raise OptionError(f"needs at least {self.min_len} item(s), got {len(out)}")
        return out


@dataclass(frozen=True)
class Tensor(OptionType):
    """A tensor read (not consumed) by the block: ``cond=``."""

    name: str = "a tensor"

    def resolve(self, value: Any) -> TensorName:
        if not isinstance(value, TensorName):
            raise self.wrong(value)
        return value


@dataclass(frozen=True)
class Option:
    """A block option, net option or enum-word option."""

    name: str
    type: OptionType
    default: Any = None
    required: bool = False
    doc: str = ""
    #: what the E201 for a missing required option suggests ("add `net=mlp(...)`")
    hint: str = ""


@dataclass(frozen=True)
class Enum(OptionType):
    """A choice among words, each with options of its own (nets, estimators, orders)."""

    words: Mapping[str, tuple[Option, ...]]
    what: str = "value"  # "activation", "net", "mask", ...
    #: word → what it means, for the block reference (docs/blocks.md)
    docs: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"one of {', '.join(f'`{w}`' for w in self.words)}"

    def resolve(self, value: Any) -> Choice:
        if isinstance(value, Choice):
            # a Choice given directly (examples, the YAML front end): resolve its options
            value = Raw(value.kind, tuple((k, v, None) for k, v in value.options.items()))
        given: tuple[tuple[str, Any, Any], ...]
        if isinstance(value, Word):
            kind, given = value.name, ()
        elif isinstance(value, Raw):
            kind, given = value.kind, value.options
        elif isinstance(value, str) and value in self.words:
            kind, given = value, ()
        else:
            raise self.wrong(value)
        if kind not in self.words:
            raise OptionError(
                f"unknown {self.what} `{kind}`", code="E200", hint=one_of(kind, self.words)
            )
        found = resolve_options(
            self.words[kind], [Given(k, v, span) for k, v, span in given], f"`{kind}`"
        )
        if found.problems:  # a nested value reports its first problem
            raise found.problems[0]
        return Choice(kind, found.options)


@dataclass(frozen=True)
class Given:
    """An option as written: ``key=value``, with the spans a message points at (``None``
    where the value did not come from a spec: registry examples, a ``Choice`` in code)."""

    key: str
    value: Any
    span: Any = None  # the whole ``key=value``
    key_span: Any = None
    value_span: Any = None


@dataclass
class Resolution:
    """What :func:`resolve_options` found: the options with defaults filled in, and
    every problem (an :class:`OptionError` each, in the order written)."""

    options: dict[str, Any]
    problems: list[OptionError]
    #: options an unknown option looks like a misspelling of: its "did you mean" says
    #: so, so a missing one of them is not reported a second time
    misspelt: set[str] = field(default_factory=set)


def resolve_options(table: Sequence[Option], given: Sequence[Given], owner: str) -> Resolution:
    """Resolve options as written against an option table, filling defaults: the one
    option resolver, for a block's options (the arguments check, both front ends) and
    for the options of a net or estimator word (:meth:`Enum.resolve`).

    Collects every problem instead of stopping at the first: an unknown option (E200,
    at its key, with a "did you mean"), an option given twice, a value its type refuses
    (E201, prefixed with the option's name), a required option that is missing.
    """
    by_name = {o.name: o for o in table}
    out: dict[str, Any] = {}
    problems: list[OptionError] = []
    seen: set[str] = set()
    misspelt: set[str] = set()
    for g in given:
        if g.key in seen:
            problems.append(OptionError(f"option `{g.key}` given twice", span=g.span))
            continue
        seen.add(g.key)
        option = by_name.get(g.key)
        if option is None:
            misspelt.update(close_matches(g.key, by_name))
            problems.append(
                OptionError(
                    f"{owner} has no option `{g.key}`",
                    code="E200",
                    hint=did_you_mean(g.key, by_name) or options_hint(owner, by_name),
                    span=g.key_span or g.span,
                    key_only=g.key_span is None,
                )
            )
            continue
        try:
            out[g.key] = option.type.resolve(g.value)
        except OptionError as e:
            if e.span is None:
                if e.code == "E201" and not e.message.startswith(f"`{g.key}`"):
                    e.message = f"`{g.key}` {e.message}"
                e.span = g.value_span or g.span
            problems.append(e)
    for opt in table:
        if opt.name in out or opt.name in seen or opt.name in misspelt:
            continue
        if opt.required:
            problems.append(
                OptionError(
                    f"{owner} is missing option `{opt.name}`",
                    hint=opt.hint or f"add `{opt.name}=...`",
                )
            )
            continue
        default = opt.default
        if default is not None:  # a registry default that does not resolve is our bug
            default = opt.type.resolve(Word(default) if isinstance(default, str) else default)
        out[opt.name] = default
    return Resolution(out, problems, misspelt)


def resolved(table: Sequence[Option], options: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """``options`` (no spans: registry examples, a ``Choice`` built in code) resolved
    against ``table``; raises the first problem."""
    found = resolve_options(table, [Given(k, v) for k, v in options.items()], owner)
    if found.problems:
        raise found.problems[0]
    return found.options
