"""The ``.flow`` front end: lark (LALR, positions propagated) → AST.

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

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from flowspec.diagnostics import Diagnostic
from flowspec.syntax import ast
from flowspec.syntax.names import did_you_mean
from flowspec.syntax.spans import Source, Span

KEYWORDS = (
    "flow",
    "block",
    "input",
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

_INT = re.compile(r"[0-9]+\Z")
_FLOAT = re.compile(r"([0-9]+\.[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z|[0-9]+[eE][+-]?[0-9]+\Z")


def _retype_number(token: Token) -> Token:
    if _INT.match(token):
        kind = "INT"
    elif _FLOAT.match(token):
        kind = "FLOAT"
    else:
        kind = "BAD_NUMBER"
    return Token.new_borrow_pos(kind, token, token)


class _BracketNewlines:
    """Postlexer: newlines inside ``( )`` and ``[ ]`` do not end a statement."""

    always_accept = ("_NL", "NUMBER")

    def process(self, stream: Iterator[Token]) -> Iterator[Token]:
        depth = 0
        for token in stream:
            if token.type in ("LPAR", "LSQB"):
                depth += 1
            elif token.type in ("RPAR", "RSQB"):
                depth = max(depth - 1, 0)
            elif token.type in ("LBRACE", "RBRACE"):
                depth = 0  # a brace always starts or ends statements: resynchronise
            elif token.type == "_NL" and depth:
                continue
            elif token.type == "NUMBER":
                token = _retype_number(token)
            yield token


@lru_cache(maxsize=1)
def parser() -> Lark:
    grammar = resources.files("flowspec.grammar").joinpath("flow.lark").read_text("utf-8")
    return Lark(
        grammar,
        start="program",
        parser="lalr",
        lexer="basic",
        propagate_positions=True,
        maybe_placeholders=True,
        postlex=_BracketNewlines(),
        cache=True,
    )


# --------------------------------------------------------------------- transformer


def _binop(op: str):
    @v_args(meta=True)
    def build(self, meta, children):
        left, right = children
        return ast.BinOp(op, left, right, self._span(meta))

    return build


class _ToAst(Transformer):
    def __init__(self, source: Source) -> None:
        super().__init__()
        self.source = source

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return self.source.span(0, 0)
        return self.source.span(meta.start_pos, meta.end_pos)

    def _tok(self, token: Token) -> Span:
        return self.source.span(token.start_pos, token.end_pos)

    @v_args(meta=True)
    def name(self, meta, children):
        (tok,) = children
        return ast.Name(str(tok), self._tok(tok))

    @v_args(meta=True)
    def program(self, meta, children):
        return ast.Program(tuple(c for c in children if c is not None), self._span(meta))

    @v_args(meta=True)
    def flow(self, meta, children):
        name, *body = children
        return ast.Flow(name, tuple(body), self._span(meta))

    @v_args(meta=True)
    def block_def(self, meta, children):
        name, *rest = children
        params = tuple(c for c in rest if isinstance(c, ast.Param))
        body = tuple(c for c in rest if c is not None and not isinstance(c, ast.Param))
        return ast.BlockDef(name, params, body, self._span(meta))

    @v_args(meta=True)
    def param(self, meta, children):
        name, default = children
        return ast.Param(name, default, self._span(meta))

    @v_args(meta=True)
    def input_stmt(self, meta, children):
        name, shape = children
        return ast.InputStmt(name, shape, self._span(meta))

    def shape(self, children):
        return tuple(c for c in children if c is not None)

    @v_args(meta=True)
    def latent_stmt(self, meta, children):
        return ast.LatentStmt(_as_value(children[0]), self._span(meta))

    @v_args(meta=True)
    def dequantize_stmt(self, meta, children):
        return ast.DequantizeStmt(_as_value(children[0]), self._span(meta))

    @v_args(meta=True)
    def let_stmt(self, meta, children):
        name, value = children
        return ast.LetStmt(name, value, self._span(meta))

    @v_args(meta=True)
    def assign(self, meta, children):
        *targets, call = children
        return ast.Assign(tuple(targets), call, self._span(meta))

    @v_args(meta=True)
    def repeat_stmt(self, meta, children):
        count, index, *body = children
        return ast.RepeatStmt(count, index, tuple(body), self._span(meta))

    @v_args(meta=True)
    def on_stmt(self, meta, children):
        device, *body = children
        return ast.OnStmt(device, tuple(body), self._span(meta))

    @v_args(meta=True)
    def device(self, meta, children):
        name, index = children
        text = name.id if index is None else f"{name.id}:{index}"
        return ast.String(text, self._span(meta))

    @v_args(meta=True)
    def device_string(self, meta, children):
        (tok,) = children
        return ast.String(_unquote(tok), self._tok(tok))

    @v_args(meta=True)
    def require_stmt(self, meta, children):
        prop, _le, bound = children
        return ast.RequireStmt(prop, bound, self._span(meta))

    @v_args(meta=True)
    def output_stmt(self, meta, children):
        return ast.OutputStmt(tuple(children), self._span(meta))

    @v_args(meta=True)
    def return_stmt(self, meta, children):
        return ast.ReturnStmt(tuple(children), self._span(meta))

    @v_args(meta=True)
    def call(self, meta, children):
        kind, *args = children
        return ast.Call(kind, tuple(a for a in args if a is not None), self._span(meta))

    @v_args(meta=True)
    def kind(self, meta, children):
        return ast.Name(".".join(n.id for n in children), self._span(meta))

    @v_args(meta=True)
    def positional(self, meta, children):
        return ast.Arg(None, children[0], self._span(meta))

    @v_args(meta=True)
    def keyword(self, meta, children):
        key, value = children
        return ast.Arg(key, value, self._span(meta))

    @v_args(meta=True)
    def string(self, meta, children):
        (tok,) = children
        return ast.String(_unquote(tok), self._tok(tok))

    @v_args(meta=True)
    def true(self, meta, children):
        return ast.Bool(True, self._span(meta))

    @v_args(meta=True)
    def false(self, meta, children):
        return ast.Bool(False, self._span(meta))

    @v_args(meta=True)
    def list(self, meta, children):
        return ast.ListValue(tuple(c for c in children if c is not None), self._span(meta))

    add = _binop("+")
    sub = _binop("-")
    mul = _binop("*")
    div = _binop("/")
    mod = _binop("%")

    @v_args(meta=True)
    def neg(self, meta, children):
        return ast.Neg(children[0], self._span(meta))

    def pos(self, children):
        return children[0]

    @v_args(meta=True)
    def int(self, meta, children):
        (tok,) = children
        return ast.Int(int(tok), self._tok(tok))

    @v_args(meta=True)
    def float(self, meta, children):
        (tok,) = children
        return ast.Float(float(tok), self._tok(tok))

    @v_args(meta=True)
    def ref(self, meta, children):
        (name,) = children
        return ast.Ref(name.id, name.span)


def _as_value(node):
    return ast.Ref(node.id, node.span) if isinstance(node, ast.Name) else node


def _unquote(tok: str) -> str:
    body = tok[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m[1], m[1]), body)


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
                parser().parse(snippet)
            except UnexpectedToken as e:
                out.append((message, e.state, e.token.type))
            except UnexpectedInput:
                pass
    return out


_TERMINAL_WORDS = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
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
    "PLUS": "`+`",
    "MINUS": "`-`",
    "STAR": "`*`",
    "SLASH": "`/`",
    "PERCENT": "`%`",
    "LE": "`<=`",
    "$END": "the end of the file",
}


def _describe_terminal(name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    if name.upper() == name and name.lower() in KEYWORDS:
        return f"`{name.lower()}`"
    return name


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "the end of the file"
    if token.type == "_NL":
        return "the end of the line"
    if token.type == "BAD_NUMBER":
        return f"the malformed number `{token}`"
    if str(token).lower() in KEYWORDS:
        return f"the keyword `{token}`"
    return f"`{token}`"


def syntax_error(source: Source, err: UnexpectedInput) -> Diagnostic:
    """Turn a lark error into an E100 diagnostic."""
    text = source.text
    hint = None
    if isinstance(err, UnexpectedCharacters):
        start = err.pos_in_stream
        end = start + 1
        ch = text[start : start + 1]
        message = f"unexpected character `{ch}`"
        if ch == '"':
            message = "unterminated string"
            end = text.find("\n", start)
            end = len(text) if end < 0 else end
        expected = sorted(_describe_terminal(t) for t in (err.allowed or ()))
        if expected and ch != '"':
            message += "; expected " + _join(expected)
        return Diagnostic("E100", message, source.span(start, end))

    token: Token = err.token if isinstance(err, (UnexpectedToken, UnexpectedEOF)) else None
    if token is None or token.type == "$END" or token.start_pos is None:
        start = end = len(text.rstrip())
    else:
        start, end = token.start_pos, token.end_pos
        if token.type == "_NL":  # point at the end of the line, not at the newline
            end = start + 1
    expected_names = sorted(getattr(err, "expected", None) or getattr(err, "accepts", ()) or ())
    expected = sorted({_describe_terminal(t) for t in expected_names})
    found = _describe_token(token) if token is not None else "the end of the file"

    message = None
    if token is not None and token.type == "BAD_NUMBER":
        message = f"bad number `{token}`"
        hint = "numbers look like `16`, `0.97` or `1e-5`"
    elif str(token).lower() in KEYWORDS and "NAME" in expected_names:
        message = f"`{token}` is a keyword and cannot be used as a name"
        hint = f"rename it, for example `{token}_`"
    else:
        state = getattr(err, "state", None)
        for example_message, example_state, token_type in _example_states():
            if state == example_state and (token is None or token.type == token_type):
                message = f"{example_message}; found {found}"
                break
    if message is None:
        message = f"unexpected {found}"
        if expected:
            message += "; expected " + _join(expected)
    if hint is None:
        hint = _keyword_hint(text, token)
    if message.startswith("unclosed"):
        opener = _unclosed_opener(text, start, "(" if "parenthesis" in message else "{")
        if opener is not None:
            return Diagnostic(
                "E100",
                message,
                source.span(opener, opener + 1),
                hint="close it before " + found,
            )
    return Diagnostic("E100", message, source.span(start, max(end, start)), hint=hint)


def _join(items: list[str]) -> str:
    if len(items) > 8:
        items = [*items[:8], "…"]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _keyword_hint(text: str, token: Token | None) -> str | None:
    """'did you mean' for a misspelt keyword: the offending word or the one before it."""
    if token is None or token.start_pos is None:
        return None
    words = [str(token)] if token.type == "NAME" else []
    before = re.findall(
        r"[A-Za-z_][A-Za-z0-9_]*", text[max(0, token.start_pos - 40) : token.start_pos]
    )
    if before:
        words.append(before[-1])
    for word in words:
        if word in KEYWORDS:
            continue
        near = did_you_mean(word, KEYWORDS)
        if near:
            return near
    return None


def _unclosed_opener(text: str, upto: int, opener: str) -> int | None:
    """Offset of the last unmatched ``opener`` before ``upto`` (comments skipped)."""
    closer = {"(": ")", "{": "}"}[opener]
    stack: list[int] = []
    i = 0
    while i < min(upto, len(text)):
        ch = text[i]
        if ch == "#":
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl
            continue
        if ch == opener:
            stack.append(i)
        elif ch == closer and stack:
            stack.pop()
        i += 1
    return stack[-1] if stack else None


def parse(source: Source) -> tuple[ast.Program | None, list[Diagnostic]]:
    """Parse ``.flow`` text; on a syntax error return ``(None, [E100])``."""
    try:
        tree = parser().parse(source.text)
    except UnexpectedInput as err:
        return None, [syntax_error(source, err)]
    return _ToAst(source).transform(tree), []
