"""Source files and spans.

A :class:`Span` stores character offsets into a :class:`Source` together with the
1-based line and column of its two ends, as the parser reports them (raw characters,
tabs counted as one).  Renderers turn columns into display columns after tab expansion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Source:
    """A spec's text and the path it is reported under."""

    path: str
    text: str
    line_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts = [0, *(m.end() for m in re.finditer("\n", self.text))]
        object.__setattr__(self, "line_starts", tuple(starts))

    def line_text(self, line: int) -> str:
        """The text of 1-based ``line`` without its newline ('' past the end)."""
        if line < 1 or line > len(self.line_starts):
            return ""
        start = self.line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start : end if end >= 0 else len(self.text)].rstrip("\r")

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        import bisect

        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

    def span(self, start: int, end: int) -> Span:
        """The span of characters ``[start, end)``."""
        line, column = self.position(start)
        end_line, end_column = self.position(end)
        return Span(self.path, start, end, line, column, end_line, end_column)


@dataclass(frozen=True)
class Span:
    """A half-open character range ``[start, end)`` of one file.

    ``end_column`` is exclusive, like ``end``: a one-character span at column 5 has
    ``end_column == 6``.
    """

    file: str
    start: int
    end: int
    line: int
    column: int
    end_line: int
    end_column: int

    def to(self, other: Span) -> Span:
        """The span from the start of ``self`` to the end of ``other``."""
        return Span(
            self.file,
            self.start,
            other.end,
            self.line,
            self.column,
            other.end_line,
            other.end_column,
        )

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NOWHERE = Span("<builtin>", 0, 0, 0, 0, 0, 0)

_new = object.__new__
_set = object.__setattr__


def span_between(file: str, first: Any, last: Any) -> Span:
    """The span from the start of token ``first`` to the end of token ``last``: the
    same value as ``Span(file, first.start_pos, last.end_pos, first.line, ...)``, made
    without the frozen dataclass's seven ``object.__setattr__`` calls (half the cost;
    the ``.flow`` front end makes one per name and per node, several per statement).
    The tokens are anything with lark's position attributes."""
    span = _new(Span)
    _set(
        span,
        "__dict__",
        {
            "file": file,
            "start": first.start_pos,
            "end": last.end_pos,
            "line": first.line,
            "column": first.column,
            "end_line": last.end_line,
            "end_column": last.end_column,
        },
    )
    return span
