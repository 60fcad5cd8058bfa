"""The ``.flow`` front end: lark (LALR, with the lexer of ``syntax/lexer.py``) → AST.

The transformer only builds nodes and converts literals.  Syntax errors become E100
diagnostics: the parser state is matched against a table of malformed examples
(lark's ``match_examples``), falling back to "expected one of …", with a "did you
mean" where a keyword is near the offending word.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from importlib import resources

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import LexerState
from lark.utils import TextSlice

from flowspec.core.collector import gc_paused
from flowspec.core.diagnostics import Diagnostic, Label
from flowspec.core.names import code_point, did_you_mean
from flowspec.core.spans import Source
from flowspec.syntax import ast
from flowspec.syntax.build import build
from flowspec.syntax.lexer import INT as _INT
from flowspec.syntax.lexer import MAX_INT_DIGITS, FlowLexer, KeepTerminals
from flowspec.syntax.limits import DEFAULT_LIMITS, Limits, check_bytes, check_flow_statements

KEYWORDS = (
    "flow",
    "block",
    "input",
    "context",
    "direction",
    "latent",
    "let",
    "repeat",
    "as",
    "on",
    "dequantize",
    "require",
    "output",
    "return",
    "true",
    "false",
)

#: the deepest parse tree accepted; each level costs a few Python frames in the
#: transformer and in lowering, so this keeps both far from the recursion limit
MAX_DEPTH = 100


@lru_cache(maxsize=1)
def parser() -> Lark:
    grammar = resources.files("flowspec.grammar").joinpath("flow.lark").read_text("utf-8")
    # "expr" is a second start symbol: the YAML front end parses integer expressions
    # written as strings with it
    return Lark(
        grammar,
        start=["program", "expr"],
        parser="lalr",
        lexer=FlowLexer,  # lark's basic lexer with the postlexing fused in
        keep_all_tokens=True,  # positions come from the tokens: see syntax/build.py
        maybe_placeholders=True,
        postlex=KeepTerminals(),
        cache=True,
    )


@lru_cache(maxsize=1)
def _lexer() -> FlowLexer:
    return FlowLexer(parser().lexer_conf)


def tokens(text: str) -> Iterator[Token]:
    """The tokens the parser reads from ``text``.  (``parser().lex`` would not do:
    lark's ``Lark.lex`` builds its stock lexer, without the work :class:`FlowLexer`
    fuses in.)"""
    return _lexer().lex(LexerState(TextSlice.cast_from(text)), None)


# --------------------------------------------------------------------- syntax errors

#: (message, malformed snippets): the parser state at each snippet's error is matched
#: against the state of a user's error.  Every snippet is also a test.
SYNTAX_EXAMPLES: dict[str, list[str]] = {
    "unclosed parenthesis: `(` is never closed": [
        "flow f {\n input x: [2]\n x = reverse(x\n output x\n}",
        "flow f {\n input x: [2]\n x = coupling.affine(x, net=mlp(hidden=[4])\n output x\n}",
    ],
    "unclosed brace: `{` is never closed": [
        "flow f {\n input x: [2]\n output x\n",
        "flow f {\n input x: [2]\n repeat 2 {\n  x = reverse(x)\n output x\n}",
    ],
    "missing `=` between the tensor names and the block": [
        "flow f {\n input x: [2]\n x reverse(x)\n}",
        "flow f {\n input x: [2]\n a, b split(x)\n}",
    ],
    "missing `=` after the option name": [
        "flow f {\n input x: [2]\n x = shuffle(x, seed 3)\n}",
    ],
    "a statement must end at a newline or `;`": [
        "flow f {\n input x: [2] output x\n}",
        "flow f {\n input x: [2]\n x = reverse(x) x = reverse(x)\n}",
    ],
    "expected a value": [
        "flow f {\n input x: [2]\n x = shuffle(x, seed=)\n}",
        "flow f {\n input x: [2]\n let n = \n}",
    ],
}


@lru_cache(maxsize=1)
def _example_states():
    """Pre-parse the example table once: (message, parser state, token type) triples."""
    out = []
    for message, snippets in SYNTAX_EXAMPLES.items():
        for snippet in snippets:
            try:
                parser().parse(snippet, start="program")
            except UnexpectedToken as e:
                out.append((message, e.state, e.token.type))
            except UnexpectedInput:
                pass
    return out


_TERMINAL_WORDS = {
    "NAME": "a name",
    "INT": "a number",
    "FLOAT": "a number",
    "NUMBER": "a number",
    "STRING": "a string",
    "_NL": "a newline",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "COMMA": "`,`",
    "EQUAL": "`=`",
    "COLON": "`:`",
    "SEMICOLON": "`;`",
    "DOT": "`.`",
    "LE": "`<=`",
    "$END": "the end of the file",
}
#: arithmetic terminals, listed together as "an operator" in "expected …"
_OPERATORS = {"PLUS": "+", "MINUS": "-", "STAR": "*", "SLASH": "/", "PERCENT": "%"}
#: words that start a statement inside a flow or block, and at top level
_STATEMENT_KEYWORDS = tuple(k for k in KEYWORDS if k not in ("as", "true", "false"))
#: a string, possibly unterminated (the scanners skip strings)
_STRING_PREFIX = re.compile(r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"?')
_OPENER_OF = {")": "(", "]": "[", "}": "{"}
_CLOSER_OF = {"(": ")", "[": "]", "{": "}"}
_DELIMITER_NAME = {"(": "parenthesis", "[": "bracket", "{": "brace"}


def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    if name.upper() == name and name.lower() in KEYWORDS:
        return f"`{name.lower()}`"
    return name


def _describe_expected(names: set[str]) -> list[str]:
    """Readable, de-duplicated terminal names; operators collapse into one entry."""
    operators = names & _OPERATORS.keys()
    words = {_describe_terminal(n) for n in names - operators}
    if len(operators) > 1:
        words.add("an operator")
    else:
        words |= {f"`{_OPERATORS[o]}`" for o in operators}
    # backquoted symbols first, then keywords, then descriptions
    return sorted(words, key=lambda w: (not w.startswith("`"), w))


def _describe_token(token: Token | None) -> str:
    if token is None or token.type == "$END":
        return "end of file"
    if token.type == "_NL":
        return "end of line"
    if token.type == "BAD_NUMBER":
        return f"malformed number `{token}`"
    if str(token) in KEYWORDS:
        return f"keyword `{token}`"
    return f"`{token}`"


def _skip_to_line_end(text: str, i: int) -> int:
    nl = text.find("\n", i)
    return len(text) if nl < 0 else nl


def _code_chars(text: str, upto: int | None = None):
    """(offset, character) of the code of ``text[:upto]``: comments and strings skipped."""
    i, end = 0, len(text) if upto is None else min(upto, len(text))
    while i < end:
        ch = text[i]
        if ch == "#":
            i = _skip_to_line_end(text, i)
        elif ch == '"':
            m = _STRING_PREFIX.match(text, i)
            i = m.end() if m else i + 1
        else:
            yield i, ch
            i += 1


def _open_delimiters(text: str, upto: int) -> list[int]:
    """Offsets of the ``( [ {`` still open at ``upto``, outermost first.

    Comments and strings are skipped; a closer that matches nothing is ignored (the
    parser reports the first such one itself).
    """
    stack: list[int] = []
    for i, ch in _code_chars(text, upto):
        if ch in _CLOSER_OF:
            stack.append(i)
        elif ch in _OPENER_OF and stack and text[stack[-1]] == _OPENER_OF[ch]:
            stack.pop()
    return stack


def _indent(text: str, pos: int) -> int:
    start = text.rfind("\n", 0, pos) + 1
    line = text[start:pos]
    return len(line) - len(line.lstrip(" \t"))


def _misindented_brace(text: str) -> int | None:
    """The ``{`` most likely left open: the first one whose ``}`` (first on its line) is
    indented less than the line that opened it, so it probably closes an outer brace."""
    suspect = None
    stack: list[int] = []
    for i, ch in _code_chars(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            opener = stack.pop()
            if (
                suspect is None
                and _starts_statement(text, i)
                and _indent(text, i) < _indent(text, opener)
            ):
                suspect = opener
    return suspect


def _starts_statement(text: str, pos: int) -> bool:
    """Is ``pos`` the first token of a line, or right after ``;`` or ``{``?"""
    before = text[:pos].rstrip(" \t\f\r")
    return not before or before[-1] in "\n;{"


def _word_before(text: str, pos: int) -> tuple[str, int] | None:
    """The name directly before ``pos`` on the same line, and its offset."""
    m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)[ \t\f]*\Z", text[:pos])
    return (m[1], m.start(1)) if m else None


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos)


def syntax_error(source: Source, err: UnexpectedInput) -> Diagnostic:
    """Turn a lark error into an E100 diagnostic with what was expected."""
    text = source.text
    if isinstance(err, UnexpectedCharacters):
        return _bad_character(source, err.pos_in_stream or 0)

    token: Token | None = err.token if isinstance(err, (UnexpectedToken, UnexpectedEOF)) else None
    if token is not None and (token.type == "$END" or token.start_pos is None):
        token = None  # the end of the input
    at_end = token is None
    if token is None:
        start = end = len(text.rstrip())
    else:
        start, end = token.start_pos or 0, token.end_pos or 0
        if token.type == "_NL":  # point at the end of the line, not at the newline
            end = start + 1
    expected_names = _acceptable(err)
    found = _describe_token(token)
    here = source.span(start, max(end, start))
    opened = _open_delimiters(text, start)
    innermost = opened[-1] if opened else None

    def unclosed(opener: int) -> Diagnostic:
        ch = text[opener]
        return Diagnostic(
            "E100",
            f"unclosed {_DELIMITER_NAME[ch]}: `{ch}` is never closed; found {found}",
            source.span(opener, opener + 1),
            hint=f"add `{_CLOSER_OF[ch]}` before {found}"
            if ch != "{"
            else "add the missing `}` where the block ends",
        )

    if token is not None and token.type == "BAD_NUMBER":
        if _INT.match(token):
            return Diagnostic(
                "E100",
                f"integer too large ({len(token)} digits)",
                here,
                hint=f"integers have at most {MAX_INT_DIGITS} digits",
            )
        return Diagnostic(
            "E100",
            f"bad number `{token}`",
            here,
            hint="numbers look like `16`, `0.97` or `1e-5`",
        )

    # a closer that closes nothing, or the wrong thing
    if token is not None and str(token) in _OPENER_OF:
        want = _OPENER_OF[str(token)]
        if innermost is None or (text[innermost] == "{" and want != "{"):
            return Diagnostic(
                "E100",
                f"unmatched `{token}`: there is no `{want}` to close",
                here,
                hint=f"remove it, or add the missing `{want}` before it",
            )
        if text[innermost] != want:
            if str(token) == "}":  # a brace ends the statement: the ( or [ was left open
                return unclosed(innermost)
            return Diagnostic(
                "E100",
                f"expected `{_CLOSER_OF[text[innermost]]}` to close "
                f"`{text[innermost]}`, found `{token}`",
                here,
                labels=(Label(source.span(innermost, innermost + 1), "opened here"),),
            )

    # a keyword where a name belongs
    if token is not None and str(token) in KEYWORDS and "NAME" in expected_names:
        return _keyword_as_name(source, start, str(token))
    if token is not None and token.type in ("EQUAL", "COMMA"):
        before = _word_before(text, start)
        if before and before[0] in KEYWORDS and _starts_statement(text, before[1]):
            return _keyword_as_name(source, before[1], before[0])

    # something left open when the file or the statement ends
    if at_end and innermost is not None:
        if text[innermost] == "{":
            return unclosed(_misindented_brace(text) or innermost)
        return unclosed(innermost)
    if (
        innermost is not None
        and text[innermost] in "(["
        and _starts_statement(text, start)
        and _line_of(text, innermost) < _line_of(text, start)
    ):
        return unclosed(innermost)

    # a misspelt statement keyword: `inptu x: [2]`, `ouput x`
    before = None if at_end else _word_before(text, start)
    if (
        before is not None
        and before[0] not in KEYWORDS
        and _starts_statement(text, before[1])
        and token is not None
        and token.type in ("NAME", "COLON", "LSQB", "STRING")
    ):
        near = did_you_mean(before[0], _STATEMENT_KEYWORDS)
        if near:
            return Diagnostic(
                "E100",
                f"unknown statement `{before[0]}`",
                source.span(before[1], before[1] + len(before[0])),
                hint=near,
            )

    message = None
    state = getattr(err, "state", None)
    for example_message, example_state, token_type in _example_states():
        if state == example_state and (token is None or token.type == token_type):
            message = f"{example_message}; found {found}"
            break
    if message is None:
        message = f"unexpected {found}"
        expected = _describe_expected(expected_names)
        if expected:
            message += "; expected " + _join(expected)
    return Diagnostic("E100", message, here, hint=_keyword_hint(text, token))


def _acceptable(err: UnexpectedInput) -> set[str]:
    """The terminals the parser would accept where it failed.

    LALR merges states, so ``err.expected`` lists terminals valid in *some* context
    sharing the state (``as`` and ``{`` after ``seed=3``); feeding each terminal to a
    copy of the parser (``accepts``) gives only those valid here.
    """
    interactive = getattr(err, "interactive_parser", None)
    if interactive is not None:
        try:
            return set(interactive.accepts())
        except Exception:  # a lark corner case: the imprecise set is still useful
            pass
    return set(getattr(err, "expected", None) or getattr(err, "accepts", ()) or ())


def _keyword_as_name(source: Source, start: int, word: str) -> Diagnostic:
    return Diagnostic(
        "E100",
        f"`{word}` is a keyword and cannot be used as a name",
        source.span(start, start + len(word)),
        hint=f"rename it, for example `{word}_`",
    )


def _bad_character(source: Source, start: int) -> Diagnostic:
    text = source.text
    ch = text[start : start + 1]
    if ch == '"':
        end = _skip_to_line_end(text, start)
        return Diagnostic(
            "E100",
            'unterminated string: the closing `"` is missing',
            source.span(start, end),
            hint='strings end on the line they start, such as "cuda:0"',
        )
    hint = None
    if ch == "<" or ch == ">":
        hint = "a bound is written with `<=`, such as `require lipschitz <= 2.0`"
    elif ch == "'":
        hint = 'strings use double quotes: "cuda:0"'
    elif ch in "!&|^~@$`?\\":
        hint = "expressions use only `+ - * / %` and parentheses"
    shown = f"`{ch}`" if ch.isprintable() else code_point(ch)  # `$`, or U+200B
    return Diagnostic(
        "E100", f"unexpected character {shown}", source.span(start, start + 1), hint=hint
    )


def _join(items: list[str]) -> str:
    if len(items) > 8:
        items = [*items[:8], "…"]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _keyword_hint(text: str, token: Token | None) -> str | None:
    """'did you mean' for a misspelt keyword: the offending word or the one before it."""
    if token is None or token.start_pos is None:
        return None
    words = [str(token)] if token.type == "NAME" else []
    before = _word_before(text, token.start_pos)  # on the same line: never in a comment
    if before:
        words.append(before[0])
    for word in words:
        if word in KEYWORDS:
            continue
        near = did_you_mean(word, KEYWORDS)
        if near:
            return near
    return None


def parse(
    source: Source, limits: Limits = DEFAULT_LIMITS
) -> tuple[ast.Program | None, list[Diagnostic]]:
    """Parse ``.flow`` text; on a syntax error return ``(None, [E100])``, and on a spec
    over the size ``limits`` (checked before parsing) ``(None, [E205])``."""
    too_large = check_bytes(source, limits) or check_flow_statements(source, limits)
    if too_large is not None:
        return None, [too_large]
    with gc_paused():
        try:
            tree = parser().parse(source.text, start="program")
        except UnexpectedInput as err:
            return None, [syntax_error(source, err)]
        program, too_deep = build(tree, source, MAX_DEPTH)
    if too_deep is not None:
        return None, [
            Diagnostic(
                "E100",
                f"the spec nests too deeply (more than {MAX_DEPTH} levels)",
                source.span(*too_deep),
                hint="split the expression or the nested blocks into `let` constants "
                "or `block` definitions",
            )
        ]
    return program, []
