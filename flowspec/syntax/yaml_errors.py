"""Plain-words messages for the YAML front end (:mod:`flowspec.syntax.yaml`).

- :func:`syntax_error`: a YAML syntax error (bad indentation, a tab, an unclosed bracket
  or quote, a line without ``key:``) said in our words, at the line and column where the
  mistake is, with a ``help:`` hint; PyYAML's own wording ("expected <block end>, but
  found '<block mapping start>'") is never shown.
- :func:`step_key_slip`: a step key written as a near-synonym (``input:`` for ``in:``,
  ``type:`` for ``op:``), so the message is "unknown key `input` … did you mean `in`?"
  rather than a complaint about a keyword used as a name.
- :func:`list_in_a_string`: an option written as a string that reads as a list
  (``hidden: "64, 64"``), reported at the option with the type it expects.
- :func:`kind_as_key`: a net or estimator written ``{mlp: {...}}`` instead of
  ``{kind: mlp, ...}``.
"""

from __future__ import annotations

import re
from typing import Any

import yaml as pyyaml

from flowspec.core.diagnostics import Diagnostic, Label
from flowspec.core.names import code_point, did_you_mean
from flowspec.core.spans import Source, Span

INDENT_HINT = "check the indentation of this line against the one above"

#: step keys and the words people write for them (in `.flow` the tensor is positional,
#: so the YAML key has no `.flow` spelling to recall)
STEP_KEY_SLIPS = {
    "input": "in",
    "inputs": "in",
    "from": "in",
    "src": "in",
    "source": "in",
    "output": "out",
    "outputs": "out",
    "to": "out",
    "into": "out",
    "target": "out",
    "targets": "out",
    "kind": "op",
    "type": "op",
    "block": "op",
    "operation": "op",
}

#: PyYAML's token names in words, for the messages no rule below covers
_TOKENS = {
    "<block end>": "the end of the block",
    "<block mapping start>": "a `key:`",
    "<block sequence start>": "a list item `- `",
    "<block entry>": "a list item `- `",
    "<scalar>": "a value",
    "<stream end>": "the end of the file",
    "<document start>": "`---`",
    "<flow mapping end>": "`}`",
    "<flow sequence end>": "`]`",
    "'?'": "a `key:`",
    "'-'": "a list item `- `",
}
_CLOSERS = {"{": "}", "[": "]"}
_TOKEN_AT = re.compile(r"[^\s:,\[\]{}#]+|\S")


# ------------------------------------------------------------------ syntax errors


def syntax_error(source: Source, error: pyyaml.MarkedYAMLError) -> Diagnostic:
    """The diagnostic for a YAML syntax error (a scanner, parser or composer error)."""
    return _Explain(source, error).diagnostic()


class _Explain:
    def __init__(self, source: Source, error: pyyaml.MarkedYAMLError) -> None:
        self.source = source
        self.text = source.text
        self.problem = (error.problem or "").strip()
        self.context = (error.context or "").strip()
        mark = error.problem_mark or error.context_mark
        self.at = self._clamp(mark.index if mark is not None else 0)
        cm = error.context_mark
        self.context_at = None if cm is None else self._clamp(cm.index)

    # ------------------------------------------------------------- positions

    def _clamp(self, offset: int) -> int:
        return max(0, min(offset, len(self.text)))

    def point(self, offset: int, length: int = 1) -> Span:
        end = min(offset + max(length, 1), len(self.text))
        return self.source.span(offset, max(end, offset))

    def token(self, offset: int) -> Span:
        """The word or character at ``offset`` (a key, a value, a bracket)."""
        m = _TOKEN_AT.match(self.text, offset)
        return self.point(offset, len(m.group()) if m else 1)

    def line_start(self, offset: int) -> int:
        return self.text.rfind("\n", 0, offset) + 1

    def column(self, offset: int) -> int:
        """1-based column after tab expansion, as diagnostics report it."""
        start = self.line_start(offset)
        return len(self.text[start:offset].expandtabs(4)) + 1

    def indent(self, line_start: int, key: bool = False) -> int:
        """The 1-based column of a line's first character that is not a space or tab;
        with ``key``, of its first key (after any list-item dashes: `- name: f` → name)."""
        end = self.text.find("\n", line_start)
        line = self.text[line_start : len(self.text) if end < 0 else end]
        m = re.match(r"[ \t]*(?:-[ \t]+)*" if key else r"[ \t]*", line)
        return len(m.group().expandtabs(4) if m else "") + 1

    def indent_above(self, offset: int) -> int | None:
        """The column to compare the line at ``offset`` with: the dash of the line above
        if this line is a list item, its first key otherwise."""
        above = self.line_above(offset)
        if above is None:
            return None
        start = self.line_start(offset)
        item = self.text[start + self.indent(start) - 1 : start + self.indent(start) + 1]
        return self.indent(above, key=not item.startswith("-"))

    def line_above(self, offset: int) -> int | None:
        """The start of the nearest line above with content (not blank, not a comment)."""
        start = self.line_start(offset)
        while start > 0:
            start = self.line_start(start - 1)
            end = self.text.find("\n", start)
            content = self.text[start : len(self.text) if end < 0 else end].strip()
            if content and not content.startswith("#"):
                return start
        return None

    def first_on_line(self, offset: int) -> bool:
        start = self.line_start(offset)
        return not self.text[start:offset].strip(" \t")

    # ------------------------------------------------------------- the rules

    def diagnostic(self) -> Diagnostic:
        p, c = self.problem, self.context
        if "'\\t'" in p or "tab" in p:
            return self.tab()
        if p.startswith("found character"):
            return self.bad_character()
        if p.startswith("expected <block end>, but found"):
            return self.block_end(p.split("but found ", 1)[1])
        if p == "mapping values are not allowed here":
            return self.colon()
        if p == "could not find expected ':'":
            return self.no_colon()
        if re.match(r"expected ',' or '[\]}]', but got", p):
            return self.flow_collection(p.rsplit("but got ", 1)[1])
        if p == "found unexpected end of stream" and "quoted scalar" in c:
            return self.unclosed_quote()
        if p.startswith("found unknown escape character"):
            return self.error(
                "unknown escape in a double-quoted string",
                self.point(max(self.at - 1, 0), 2),
                "write `\\\\` for a backslash, or quote the value with single quotes: 'a\\b'",
            )
        if p.startswith("found undefined alias"):
            name = p.split("alias", 1)[1].strip(" '")
            return self.error(
                f"unknown alias `*{name}`: no anchor `&{name}` is defined before it",
                self.token(self.at),
                "define the anchor (`&name`) on a node above, or write the value out",
            )
        if "duplicate anchor" in c:
            labels: tuple[Label, ...] = ()
            if self.context_at is not None:
                labels = (Label(self.token(self.context_at), "first defined here"),)
            return self.error(
                "this anchor is defined twice",
                self.token(self.at),
                "give the second anchor another name",
                labels,
            )
        if "single document" in c:
            return self.error(
                "a second YAML document starts here: a spec is one document",
                self.token(self.at),
                "remove the `---` line (and merge the two documents), or split the file",
            )
        return self.fallback()

    def error(
        self, message: str, span: Span, hint: str | None = None, labels: tuple = ()
    ) -> Diagnostic:
        return Diagnostic("E100", message, span, hint=hint, labels=labels)

    def tab(self) -> Diagnostic:
        end = self.at
        while end < len(self.text) and self.text[end] == "\t":
            end += 1
        span = self.point(self.at, end - self.at)
        if self.first_on_line(self.at):
            return self.error(
                "a tab in the indentation: YAML indents with spaces only",
                span,
                f"replace the tab with spaces, then {INDENT_HINT}",
            )
        return self.error(
            "a tab where YAML expects a space",
            span,
            "replace the tab with a space",
        )

    def bad_character(self) -> Diagnostic:
        char = self.text[self.at] if self.at < len(self.text) else ""
        shown = code_point(char) if char and not char.isprintable() else f"`{char}`"
        if char == "`":
            shown = "a backquote"
        return self.error(
            f"{shown} cannot start a plain YAML value",
            self.point(self.at),
            "quote the value: 'like this'",
        )

    def block_end(self, found: str) -> Diagnostic:
        found = found.strip()
        span = self.token(self.at)
        if found in ("']'", "'}'"):
            char = found.strip("'")
            opener = "[" if char == "]" else "{"
            return self.error(
                f"`{char}` closes nothing: no `{opener}` is open here",
                span,
                f"remove it, or add the `{opener}` it should close",
            )
        if not self.first_on_line(self.at):
            return self.error(
                "unexpected text after a complete value on this line",
                span,
                "put each `key: value` on its own line, or quote a value that has spaces "
                "and `:` in it",
            )
        col = self.column(self.at)
        col_above = self.indent_above(self.at)
        in_list = "block collection" in self.context and not self.context.endswith("mapping")
        above = self.line_above(self.at)
        dash_above = None if above is None else self.indent(above)
        if found == "'?'" and in_list and col == dash_above:
            return self.error(
                "a `key:` among the items of a list",
                span,
                f"{INDENT_HINT}: a list item starts with `- `; a key of an item is "
                "indented under the item's first key",
            )
        if found == "'-'" and col == col_above:
            return self.error(
                "a list item `- ` among the keys of a mapping",
                span,
                f"{INDENT_HINT}: a list is the value of a key (`body:`) and its items are "
                "indented under it",
            )
        return self.indentation(span, col, col_above)

    def indentation(self, span: Span, col: int, col_above: int | None) -> Diagnostic:
        if col_above is None or col == col_above:
            message = f"bad indentation: this line (column {col}) does not fit the block it is in"
        elif col > col_above:
            message = (
                f"bad indentation: this line is indented more (column {col}) than the line "
                f"above (column {col_above}), which does not open a block"
            )
        else:
            message = (
                f"bad indentation: this line is indented less (column {col}) than the line "
                f"above (column {col_above}) but lines up with no key or list item before it"
            )
        return self.error(
            message,
            span,
            f"{INDENT_HINT}: the keys of one mapping, and the `- ` items of one list, "
            "start in the same column",
        )

    def colon(self) -> Diagnostic:
        start = self.line_start(self.at)
        before = self.text[start : self.at]
        key_alone = bool(re.fullmatch(r"[ \t]*(- )?[^\s:#{}\[\],]+[ \t]*", before))
        col = self.indent(start)
        col_above = self.indent_above(self.at)
        if key_alone and col_above is not None and col > col_above:
            return self.error(
                f"bad indentation: this line is indented more (column {col}) than the line "
                f"above (column {col_above}), whose value is already written",
                self.token(self.indent(start) - 1 + start),
                f"{INDENT_HINT}: a nested `key:` belongs under a key with no value after its `:`",
            )
        return self.error(
            "a `: ` inside a value: YAML reads it as a second `key:` on this line",
            self.point(self.at),
            "quote the value ('a: b'), or put each `key: value` on its own line",
        )

    def no_colon(self) -> Diagnostic:
        at = self.context_at if self.context_at is not None else self.at
        end = self.text.find("\n", at)
        line = self.text[at : len(self.text) if end < 0 else end].rstrip()
        return self.error(
            "this line has no `:`: every line of a mapping is `key: value`",
            self.point(at, len(line)),
            f"add the `:` after the key, or {INDENT_HINT} (a value continued on the next "
            "line is indented more than its key)",
        )

    def flow_collection(self, got: str) -> Diagnostic:
        opener_at = self.context_at
        opener = self.text[opener_at] if opener_at is not None else "{"
        opener = opener if opener in _CLOSERS else ("{" if "mapping" in self.context else "[")
        closer = _CLOSERS[opener]
        what = "mapping" if opener == "{" else "list"
        got = got.strip("'")
        same_line = opener_at is not None and "\n" not in self.text[opener_at : self.at]
        labels: tuple[Label, ...]
        if got == "<stream end>" or not same_line:
            labels = (Label(self.token(self.at), f"expected `,` or `{closer}` before this"),)
            span = self.point(opener_at) if opener_at is not None else self.token(self.at)
            return self.error(
                f"this `{opener}` is never closed",
                span,
                f"close the {what} with `{closer}` where it ends",
                labels,
            )
        labels = ()
        if opener_at is not None:
            labels = (Label(self.point(opener_at), f"the {what} opened here"),)
        if got in ("}", "]"):
            return self.error(
                f"`{got}` does not close the `{opener}` opened before it",
                self.point(self.at),
                f"a {what} opened with `{opener}` ends with `{closer}`",
                labels,
            )
        key = re.search(r"[^\s,{}\[\]:]+[ \t]*\Z", self.text[: self.at]) if got == ":" else None
        if key is not None and key.start() > (opener_at or 0):
            # `{name: x shape: [2]}`: the key after a missing comma ran into the value
            word = key.group().rstrip()
            return self.error(
                f"missing `,` before `{word}`",
                self.point(key.start(), len(word)),
                f"separate the entries of a `{opener}…{closer}` {what} with commas",
                labels,
            )
        return self.error(
            f"expected `,` or `{closer}` before this",
            self.token(self.at),
            f"separate the entries of a `{opener}…{closer}` {what} with commas",
            labels,
        )

    def unclosed_quote(self) -> Diagnostic:
        at = self.context_at if self.context_at is not None else self.at
        quote = self.text[at] if at < len(self.text) else '"'
        return self.error(
            "this quoted string is never closed",
            self.point(at),
            f"add the closing `{quote}`",
        )

    def fallback(self) -> Diagnostic:
        message = self.problem or self.context or "malformed YAML"
        for token, words in _TOKENS.items():
            message = message.replace(token, words)
        message = message.replace("but found", "found").replace("but got", "found")
        return self.error(f"malformed YAML: {message}", self.token(self.at), INDENT_HINT)


# --------------------------------------------------------------------- step keys


def step_key_slip(key: str, present: set[str] | frozenset[str] = frozenset()) -> str | None:
    """The step key ``key`` most likely stands for (``input`` → ``in``), or None."""
    from flowspec.syntax.schema import STEP_KEYS

    target = STEP_KEY_SLIPS.get(key.lower())
    if target is None:
        near = did_you_mean(key, STEP_KEYS)
        if not near:
            return None
        target = next(k for k in STEP_KEYS if f"`{k}`" in near)
    return target


def unknown_step_key(key: str, target: str, present: set[str]) -> tuple[str, str]:
    """The message and hint for a step key written as ``key`` where ``target`` is meant."""
    message = f"unknown key `{key}` in a step"
    if target in present:
        return message, f"`{target}` is given already: remove `{key}`"
    return message, f"did you mean `{target}`?"


# ---------------------------------------------------------------- option values


def looks_like_a_list(text: str) -> bool:
    """Does this string read as the items of a list (``"64, 64"``)?"""
    if "," not in text or text.lstrip().startswith(("[", '"')):
        return False
    from lark.exceptions import LarkError

    from flowspec.syntax import dsl

    items = text.split(",")
    if items[-1].strip() == "":
        items.pop()  # a trailing comma, as `[64, 64,]` allows
    try:
        for item in items:
            dsl.parser().parse(item, start="expr")
    except (LarkError, RecursionError):
        return False
    return True


def list_in_a_string(key: str, text: str, expected: str | None) -> tuple[str, str]:
    """The message and hint for ``key: "64, 64"`` where a list belongs."""
    shown = text if len(text) <= 60 else text[:59] + "…"
    return (
        f'`{key}` expects {expected or "a list"}, got the string "{shown}"',
        f"write a YAML list: `{key}: [{shown}]`",
    )


def kind_as_key(value: dict[str, Any] | None, words: Any) -> str | None:
    """``{mlp: {...}}``: a mapping without ``kind`` whose only key is a kind word of
    ``words`` (a collection of words) and whose value is a mapping (plain data or a
    YAML mapping node)."""
    if not isinstance(value, dict) or "kind" in value or len(value) != 1:
        return None
    ((word, inner),) = value.items()
    if word in words and isinstance(inner, (dict, pyyaml.MappingNode)):
        return word
    return None


def kind_as_key_message(word: str, what: str) -> tuple[str, str]:
    return (
        f"a {what} is written `{{kind: {word}, ...}}`, not `{{{word}: {{...}}}}`",
        f"move `{word}` into `kind: {word}`; its options go beside `kind` in the same mapping",
    )


#: the enum words that take options of their own, for :func:`kind_as_key` where the
#: option is unknown (a step that calls a user's block)
def kind_words() -> dict[str, str]:
    from flowspec.kinds import words as W

    out: dict[str, str] = {}
    for table in (W.NETS, W.LOGDET, W.TRACE, W.FIXEDPOINT, W.ORDER, W.DEQUANTIZERS):
        for word, options in table.words.items():
            if options:
                out.setdefault(word, table.what)
    return out


__all__ = [
    "INDENT_HINT",
    "STEP_KEY_SLIPS",
    "kind_as_key",
    "kind_as_key_message",
    "kind_words",
    "list_in_a_string",
    "looks_like_a_list",
    "step_key_slip",
    "syntax_error",
    "unknown_step_key",
]
