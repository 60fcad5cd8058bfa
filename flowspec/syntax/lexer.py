"""The ``.flow`` lexer: lark's basic lexer, with its token loop and the postlexer fused.

The terminals, their order and the keyword retyping are lark's own (this is a
:class:`lark.lexer.BasicLexer`, built from the grammar's terminals); only the loop that
produces tokens is ours.  Per token it does what lark's ``next_token`` and the old
postlexer did in three generator layers, in one:

- match the terminals at the current offset, in lark's order (one regex of named
  groups; lark builds the same alternation), and skip the ignored ones (``WS``,
  ``COMMENT``);
- retype a ``NAME`` that spells a keyword (``flow`` → ``FLOW``), as lark's
  ``unless`` callbacks do;
- drop newlines inside ``( )`` and ``[ ]`` (they do not end a statement), and let a
  brace resynchronise the depth;
- retype ``NUMBER`` to ``INT``, ``FLOAT`` or ``BAD_NUMBER`` (so ``1.2.3`` and ``1e``
  are reported as bad numbers, and integers of over :data:`MAX_INT_DIGITS` digits are
  refused before anything converts them);
- count lines and columns only across the terminals that can hold a newline.

Tokens are lark :class:`~lark.Token` objects with every position set (start and end
offset, line and column), as the AST builder and the syntax errors read them.  Lexing
a 20,000-statement spec this way costs about a third of lark's loop.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from lark import Token
from lark.exceptions import UnexpectedCharacters
from lark.lexer import BasicLexer, LexerState

#: integer literals longer than this are refused: they would overflow a float (and
#: Python refuses to convert strings of over 4300 digits)
MAX_INT_DIGITS = 300

INT = re.compile(r"[0-9]+\Z")
FLOAT = re.compile(r"([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z|[0-9]+[eE][+-]?[0-9]+\Z")

_OPENERS = frozenset(("LPAR", "LSQB"))
_CLOSERS = frozenset(("RPAR", "RSQB"))
_BRACES = frozenset(("LBRACE", "RBRACE"))


def number_type(text: str) -> str:
    """The terminal a ``NUMBER`` lexeme stands for: ``INT``, ``FLOAT`` or ``BAD_NUMBER``."""
    if INT.match(text) and len(text) <= MAX_INT_DIGITS:
        return "INT"
    if FLOAT.match(text):
        return "FLOAT"
    return "BAD_NUMBER"


class FlowLexer(BasicLexer):
    """lark's basic lexer for ``grammar/flow.lark`` with one fused token loop."""

    __future_interface__ = 2

    def _compile(self) -> tuple[re.Pattern[str], dict[str, str], frozenset[str]]:
        """The alternation of the terminals in lark's order, the keywords a ``NAME``
        may spell (value → terminal), and the terminals that may hold a newline."""
        cached = getattr(self, "_compiled", None)
        if cached is not None:
            return cached
        patterns = {t.name: t.pattern.to_regexp() for t in self.terminals}
        words = [
            t
            for t in self.terminals
            if t.pattern.type == "str" and re.fullmatch(patterns["NAME"], t.pattern.value)
        ]
        keywords = {t.pattern.value: t.name for t in words}
        alternation = "|".join(
            f"(?P<{t.name}>{patterns[t.name]})" for t in self.terminals if t not in words
        )
        compiled = (re.compile(alternation, self.g_regex_flags), keywords, self.newline_types)
        self._compiled = compiled
        return compiled

    def lex(self, lexer_state: LexerState, parser_state: Any) -> Iterator[Token]:
        regex, keywords, newline_types = self._compile()
        ignore = self.ignore_types
        text_slice = lexer_state.text
        text, pos, end = text_slice.text, text_slice.start, text_slice.end
        match = regex.match
        new = str.__new__
        line, line_start = 1, 0
        depth = 0
        while pos < end:
            m = match(text, pos)
            if m is None:
                raise UnexpectedCharacters(
                    text,
                    pos,
                    line,
                    pos - line_start + 1,
                    allowed=set(self.terminals_by_name) - ignore,
                    state=parser_state,
                    terminals_by_name=self.terminals_by_name,
                )
            kind = m.lastgroup
            assert kind is not None  # every alternative is a named group
            stop = m.end()
            value = m.group()
            start_line, column = line, pos - line_start + 1
            if kind in newline_types:
                newlines = value.count("\n")
                if newlines:
                    line += newlines
                    line_start = pos + value.rindex("\n") + 1
            if kind in ignore:
                pos = stop
                continue
            if kind == "NAME":
                kind = keywords.get(value, "NAME")
            elif kind in _OPENERS:
                depth += 1
            elif kind in _CLOSERS:
                depth = depth - 1 if depth else 0
            elif kind in _BRACES:
                depth = 0  # a brace always starts or ends statements: resynchronise
            elif kind == "_NL" and depth:
                pos = stop
                continue
            elif kind == "NUMBER":
                kind = number_type(value)
            token = new(Token, value)
            token.type = kind
            token.value = value
            token.start_pos = pos
            token.line = start_line
            token.column = column
            token.end_line = line
            token.end_column = stop - line_start + 1
            token.end_pos = stop
            yield token
            pos = stop


class KeepTerminals:
    """The postlexer slot, used only to keep the terminals the lexer retypes from: lark
    drops terminals that no rule uses unless a postlexer ``always_accept``\\ s them
    (``NUMBER`` becomes ``INT``/``FLOAT``; ``_NL`` is filtered inside brackets).  The
    work itself is fused into :class:`FlowLexer`."""

    always_accept = ("_NL", "NUMBER")

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        return stream
