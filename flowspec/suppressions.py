"""Inline suppressions: ``# flowspec: ignore[W101]`` silences warnings on its own line.

A comment holding ``flowspec: ignore[CODE, ...]`` (anywhere in the comment, so it can
follow other text) drops every warning with one of those codes whose span starts on
the comment's line, and nothing else: a warning of the same code on another line is
still reported.  It works in ``.flow`` files and in YAML comments alike; ``#`` inside a
string (or a quoted YAML scalar) is not a comment.

Only warnings can be silenced: an error stays an error (the spec is wrong, and
``compile`` refuses it whatever a comment says).  A suppression naming a code that
does not exist, an error code, or nothing at all is itself a warning, W105, at the
code it names; W105 is reported after suppressions apply, so it cannot silence itself.

The driver (:class:`flowspec.driver.Compilation`) applies this after the checks, so
``flowspec check``, ``flowspec.check`` and the pytest plugin all honour it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from flowspec.core.diagnostics import CODES, Diagnostic, Severity, sort_key
from flowspec.core.names import did_you_mean, visible
from flowspec.core.spans import Source

#: the marker inside a comment
_MARK = re.compile(r"flowspec[ \t]*:[ \t]*ignore\b")
#: the bracketed list right after it
_LIST = re.compile(r"[ \t]*\[([^\]\n]*)\]")
_ITEM = re.compile(r"[^,\s](?:[^,]*[^,\s])?")
#: .flow tokens that may hold a ``#``: comments, and strings (whose ``#`` is no comment)
_FLOW_TOKENS = re.compile(r'#[^\n]*|"(?:[^"\\\n]|\\.)*"?')
#: a quick test: the text holds no suppression at all (the usual case costs one search)
_ANY = re.compile(r"flowspec[ \t]*:[ \t]*ignore")
_SHOWN = 40  # longest item quoted in a W105 message


@dataclass
class Suppressions:
    """The codes silenced per line, and the W105s for the suppressions that are wrong."""

    by_line: dict[int, set[str]] = field(default_factory=dict)
    problems: list[Diagnostic] = field(default_factory=list)


def _flow_comments(text: str) -> Iterator[tuple[int, str]]:
    for m in _FLOW_TOKENS.finditer(text):
        if m[0].startswith("#"):
            yield m.start(), m[0]


def _yaml_comments(text: str) -> Iterator[tuple[int, str]]:
    """Comments of a YAML text holding a marker: a ``#`` at a line start or after a
    blank that no token (a scalar, quoted or block) covers.  Tokens come from PyYAML's
    scanner; after a scanning error nothing more is taken for a comment."""
    import yaml as pyyaml

    covered: list[tuple[int, int]] = []
    scanned_to = len(text)
    try:
        for token in pyyaml.scan(text, Loader=pyyaml.SafeLoader):
            start, end = token.start_mark.index, token.end_mark.index
            if end > start:
                covered.append((start, end))
    except pyyaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        scanned_to = mark.index if mark is not None else 0
    for m in re.finditer(r"(?:^|(?<=[ \t]))#[^\n]*", text, re.MULTILINE):
        start = m.start()
        if start >= scanned_to or any(a <= start < b for a, b in covered):
            continue
        yield start, m[0]


def find(source: Source, yaml: bool) -> Suppressions:
    """Every suppression comment of ``source``."""
    found = Suppressions()
    text = source.text
    if not _ANY.search(text):
        return found
    comments = _yaml_comments(text) if yaml else _flow_comments(text)
    for offset, comment in comments:
        for mark in _MARK.finditer(comment):
            _parse(source, offset, comment, mark, found)
    return found


def _problem(source: Source, start: int, end: int, message: str, hint: str) -> Diagnostic:
    return Diagnostic("W105", message, source.span(start, end), hint=hint)


def _parse(source: Source, offset: int, comment: str, mark: re.Match, found: Suppressions):
    line = source.position(offset + mark.start())[0]
    listed = _LIST.match(comment, mark.end())
    form = "write `# flowspec: ignore[W101]`, or several codes: `ignore[W101, W100]`"
    if listed is None:
        found.problems.append(
            _problem(
                source,
                offset + mark.start(),
                offset + mark.end(),
                "this suppression names no code in brackets",
                form,
            )
        )
        return
    items = list(_ITEM.finditer(listed[1]))
    if not items:
        start = offset + listed.start(1) - 1
        found.problems.append(
            _problem(source, start, start + len(listed[1]) + 2, "this suppression is empty", form)
        )
        return
    codes = found.by_line.setdefault(line, set())
    warnings = [c for c, entry in CODES.items() if entry.severity is Severity.WARNING]
    for item in items:
        word = item[0]
        start, end = offset + listed.start(1) + item.start(), offset + listed.start(1) + item.end()
        upper = word.upper()
        if upper in CODES and CODES[upper].severity is Severity.WARNING:
            codes.add(upper)
            continue
        shown = visible(word, _SHOWN)
        if upper in CODES:
            found.problems.append(
                _problem(
                    source,
                    start,
                    end,
                    f"`{shown}` is an error, and errors cannot be suppressed",
                    "fix the spec; only warnings (W…) can be silenced on a line",
                )
            )
            continue
        slugs = {CODES[c].slug: c for c in warnings}
        if word in slugs:
            hint = f"suppressions name codes: did you mean `{slugs[word]}`?"
        else:
            hint = did_you_mean(upper, warnings) or f"the warnings are {', '.join(warnings)}"
        found.problems.append(
            _problem(source, start, end, f"unknown code `{shown}` in a suppression", hint)
        )


def apply(source: Source, diagnostics: list[Diagnostic], yaml: bool) -> list[Diagnostic]:
    """``diagnostics`` without the warnings ``source``'s suppressions silence, with a
    W105 for each suppression that is wrong (sorted by position)."""
    found = find(source, yaml)
    if not found.by_line and not found.problems:
        return diagnostics
    kept = [
        d
        for d in diagnostics
        if d.is_error
        or d.span.file != source.path
        or d.code not in found.by_line.get(d.span.line, ())
    ]
    return sorted(kept + found.problems, key=sort_key)


__all__ = ["Suppressions", "apply", "find"]
