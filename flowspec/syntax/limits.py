"""Size limits on a spec, checked before it is parsed (E205).

A spec is untrusted input: without a bound, a large enough file keeps ``check``
busy for minutes.  Two limits, both overridable (``max_bytes=`` / ``max_statements=``
in the API, ``--max-bytes`` / ``--max-statements`` on the command line; ``0`` turns
a limit off):

- **bytes**: the spec's text in UTF-8, checked first, before anything reads the
  text (a file larger than the limit is not even read whole);
- **statements**: every statement and every ``flow``/``block`` header, as newlines
  (outside brackets) and ``;`` separate them in ``.flow``, counted by a scan of the
  text before parsing; in YAML, every item of a ``body`` list, counted after loading
  (the byte limit bounds the loading).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flowspec.core.diagnostics import Diagnostic
from flowspec.core.spans import Source
from flowspec.kinds.limits import MAX_PARAMS

#: the default largest spec, in bytes of UTF-8 text (1 MiB)
MAX_BYTES = 1 << 20
#: the default most statements of a spec
MAX_STATEMENTS = 20_000


@dataclass(frozen=True)
class Limits:
    """The limits a spec is checked against; ``None`` (or 0) means no limit.

    ``max_params`` is not a front-end limit: the checker applies it after the shapes
    are known (E501, :mod:`flowspec.checks.resources`); it travels here so that every
    path through the driver carries it."""

    max_bytes: int | None = MAX_BYTES
    max_statements: int | None = MAX_STATEMENTS
    max_params: int | None = MAX_PARAMS

    @classmethod
    def of(
        cls,
        max_bytes: int | None = MAX_BYTES,
        max_statements: int | None = MAX_STATEMENTS,
        max_params: int | None = MAX_PARAMS,
    ):
        """Limits from user-facing values, where 0 (or None) turns a limit off."""
        return cls(max_bytes or None, max_statements or None, max_params or None)


DEFAULT_LIMITS = Limits()


def utf8_size_over(text: str, limit: int) -> bool:
    """Is ``text`` longer than ``limit`` bytes in UTF-8?  (Encodes only when the
    length in characters leaves it open.)"""
    if len(text) > limit:
        return True
    if 4 * len(text) <= limit:
        return False
    return len(text.encode("utf-8", "surrogatepass")) > limit


def check_bytes(source: Source, limits: Limits) -> Diagnostic | None:
    """E205 at line 1, column 1 when the spec is over the byte limit."""
    limit = limits.max_bytes
    if limit is None or not utf8_size_over(source.text, limit):
        return None
    return Diagnostic(
        "E205",
        f"the spec is larger than the limit of {limit:,} bytes",
        source.span(0, 0),
        hint="split it into smaller specs, or raise the limit "
        "(`--max-bytes`, or `max_bytes=` in the API)",
    )


def too_many_statements(source: Source, limits: Limits, at: int) -> Diagnostic:
    """E205 at the first statement over the limit, which starts at offset ``at``."""
    return Diagnostic(
        "E205",
        f"the spec has more than {limits.max_statements:,} statements",
        source.span(at, at),
        hint="split it into smaller specs, use `repeat` or `block`s, or raise the limit "
        "(`--max-statements`, or `max_statements=` in the API)",
    )


#: a string, a comment, an opening or closing bracket, a separator, or a run of
#: other code (words, numbers, operators and the blanks between them)
_SCAN = re.compile(
    r'(?P<code>"[^"\\\n]*(?:\\.[^"\\\n]*)*"?|[^\s"#()\[\]{};]+(?:[ \t\f\r]+[^\s"#()\[\]{};]+)*)'
    r"|#[^\n]*"
    r"|(?P<open>[(\[])|(?P<close>[)\]])|(?P<sep>[;{}\n])"
)


def check_flow_statements(source: Source, limits: Limits) -> Diagnostic | None:
    """E205 when ``.flow`` text holds more statements than the limit, found by a scan
    that skips strings and comments and, like the parser, ignores newlines inside
    ``( )`` and ``[ ]``."""
    limit = limits.max_statements
    text = source.text
    if limit is None:
        return None
    # every statement ends at a separator (or the end): most specs stop here
    if sum(text.count(c) for c in "\n;{}") + 1 <= limit:
        return None
    count, depth, start = 0, 0, None
    for m in _SCAN.finditer(text):
        kind = m.lastgroup
        if kind is None:  # a comment
            continue
        if kind == "sep":
            if m[0] in "{}":
                depth = 0  # braces always delimit statements, as in the parser
            elif m[0] == "\n" and depth:
                continue
            if start is not None:
                count += 1
                if count > limit:
                    return too_many_statements(source, limits, start)
                start = None
            continue
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth = max(depth - 1, 0)
        if start is None:
            start = m.start()
    if start is not None and count + 1 > limit:
        return too_many_statements(source, limits, start)
    return None


def yaml_statement_over(root, limit: int | None):
    """The first item of a YAML ``body`` list past the statement limit (its node), or
    None.  ``root`` is a composed node tree whose alias expansion is already bounded
    (``syntax/yaml.py`` refuses documents of over 200,000 nodes and alias cycles), so
    the walk visits aliased bodies as often as the spec uses them."""
    if limit is None:
        return None
    import yaml

    count = 0
    stack = [(root, False)]
    while stack:
        node, is_statement = stack.pop()
        if is_statement:
            count += 1
            if count > limit:
                return node
        if isinstance(node, yaml.MappingNode):
            children: list[tuple[Any, bool]] = []
            for key, value in node.value:
                if getattr(key, "value", None) == "body" and isinstance(value, yaml.SequenceNode):
                    children.extend((item, True) for item in value.value)
                else:
                    children.append((value, False))
            stack.extend(reversed(children))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, False) for item in reversed(node.value))
    return None
