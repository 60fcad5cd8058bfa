"""The fused ``.flow`` lexer against lark's own: same tokens, same positions, same errors.

The oracle is lark's stock basic lexer over the same grammar, followed by the postlexer
the fused loop replaced (brackets swallow newlines, braces resynchronise, ``NUMBER`` is
retyped), written here the plain way.  Both run on programs derived from the grammar,
on arbitrary text over the characters specs use (so unexpected characters, unclosed
strings and stray brackets are compared too), and on hand-picked corners.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters
from test_grammar_fuzz import GRAMMAR_FAST, grammar_programs

from flowspec.core.spans import Span, span_between
from flowspec.syntax import dsl
from flowspec.syntax.lexer import number_type


class _ReferencePostlexer:
    always_accept = ("_NL", "NUMBER")

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        depth = 0
        for token in stream:
            if token.type in ("LPAR", "LSQB"):
                depth += 1
            elif token.type in ("RPAR", "RSQB"):
                depth = max(depth - 1, 0)
            elif token.type in ("LBRACE", "RBRACE"):
                depth = 0
            elif token.type == "_NL" and depth:
                continue
            elif token.type == "NUMBER":
                token = Token.new_borrow_pos(number_type(token), token, token)
            yield token


def _reference() -> Lark:
    grammar = resources.files("flowspec.grammar").joinpath("flow.lark").read_text("utf-8")
    return Lark(
        grammar,
        start=["program", "expr"],
        parser="lalr",
        lexer="basic",
        keep_all_tokens=True,
        maybe_placeholders=True,
        postlex=_ReferencePostlexer(),
    )


REFERENCE = _reference()
FIELDS = ("type", "start_pos", "end_pos", "line", "column", "end_line", "end_column")


def _tokens(lex, text: str):
    """Every token with all its positions, and the lexing error (if any) it ends with."""
    out = []
    try:
        for token in lex(text):
            out.append((str(token), *(getattr(token, f) for f in FIELDS)))
    except UnexpectedCharacters as err:
        return out, (err.pos_in_stream, err.line, err.column, err.char)
    return out, None


def assert_same_tokens(text: str) -> None:
    assert _tokens(dsl.tokens, text) == _tokens(REFERENCE.lex, text)


FUZZ = settings(GRAMMAR_FAST, max_examples=60)


@FUZZ
@given(grammar_programs())
def test_same_tokens_on_grammar_programs(text):
    assert_same_tokens(text)


#: the characters specs are made of, and a few they must not contain
_ALPHABET = st.sampled_from(
    list('abxyz_019.eE+-*/%()[]{},;:=<"\\# \t\f\r\n') + ["flow", "input", "\x00", "é", "\u2028"]
)


@FUZZ
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_same_tokens_and_errors_on_any_text(text):
    assert_same_tokens(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "flow f {\n    input x: [2]\n    x = reverse(x)\n    output x\n}\n",
        "flow f {\r\n  x = coupling.affine(x,\n    net=mlp(hidden=[8,\n 8]))\r\n}",
        "flowx inputs as_ on1 true false truex",
        "1 1.5 .5 1e-5 1.2.3 1e 00012 " + "9" * 301 + " 2e0",
        'x = "a\\"b" # comment \x0c with "quote\n"unterminated\n',
        "x = (((\n\n)))]]]\n{[\n}\n",
        "a <= b < c",
        "x\u2028y",
        "x\x00y",
    ],
)
def test_same_tokens_on_corners(text):
    assert_same_tokens(text)


def test_positions_count_lines_inside_brackets():
    tokens = list(dsl.tokens("f(\n\n  a)\nb"))
    a = next(t for t in tokens if t == "a")
    b = next(t for t in tokens if t == "b")
    assert (a.line, a.column) == (3, 3)
    assert (b.line, b.column, b.start_pos) == (4, 1, 9)
    assert [t.type for t in tokens].count("_NL") == 1  # the one after `)`


def test_span_between_is_the_span_the_constructor_makes():
    first, *_, last = dsl.tokens("x = reverse(\n  x)")
    made = span_between("t.flow", first, last)
    plain = Span("t.flow", 0, 17, 1, 1, 2, 5)
    assert made == plain and hash(made) == hash(plain) and repr(made) == repr(plain)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.start = 3  # type: ignore[misc]
