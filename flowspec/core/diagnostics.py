"""Diagnostics as data, the code registry, and the renderers.

A :class:`Diagnostic` is a code, a severity, a message, a primary span, secondary
labels and a hint.  ``CODES`` is the one registry of codes: the README table, the JSON
output and the tests all read it.  Sibling renderers (``text``, ``concise``, ``json``,
``sarif``, ``junit``) read the same list of diagnostics.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from flowspec.core.names import visible
from flowspec.core.spans import Source, Span


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Code:
    code: str
    slug: str
    description: str

    @property
    def severity(self) -> Severity:
        return Severity.WARNING if self.code.startswith("W") else Severity.ERROR


CODES: dict[str, Code] = {
    c.code: c
    for c in (
        Code("E100", "syntax", "syntax error: what was expected, and a near keyword"),
        Code(
            "E200",
            "unknown-name",
            "unknown name: tensor, constant, block kind, net, option or enum word",
        ),
        Code(
            "E201", "bad-argument", "bad argument: missing, duplicate, wrong type or out of range"
        ),
        Code(
            "E202",
            "shape-mismatch",
            "shape mismatch (split sizes, concat, squeeze of odd sizes, mask on too few features)",
        ),
        Code(
            "E203",
            "unbounded-expansion",
            "unbounded expansion: a recursive block, or an unroll over the node limit",
        ),
        Code(
            "E204",
            "bad-flow-structure",
            "a flow without exactly one input first and one output last, or an unknown flow name",
        ),
        Code(
            "E205",
            "input-too-large",
            "spec over the size limits (bytes, statements), refused before parsing",
        ),
        Code(
            "E206",
            "unreadable-spec",
            "the spec file cannot be read: missing, a directory, or not UTF-8 text",
        ),
        Code("E300", "unconsumed", "tensor bound but never consumed (information dropped)"),
        Code("E301", "consumed-twice", "tensor consumed twice"),
        Code("E302", "not-invertible", "block not invertible as configured"),
        Code("E303", "not-contractive", "residual block not provably contractive"),
        Code(
            "E304",
            "context-consumed",
            "a flow's `context` passed as a tensor or output: it may only be read by `cond=`",
        ),
        Code("E400", "lipschitz-unproven", "`require lipschitz` / `inverse_lipschitz` not proven"),
        Code(
            "E401", "requirement-violated", "`require exact_logdet` / `analytic_inverse` violated"
        ),
        Code(
            "E500",
            "bad-device",
            "bad device placement, or a module whose parameters and buffers exceed `max_params` "
            "or that cannot be allocated",
        ),
        Code(
            "E501",
            "too-many-parameters",
            "flow over `max_params` parameters, counted from shapes and options before "
            "anything is allocated",
        ),
        Code(
            "W100",
            "untransformed-features",
            "some features are never transformed by any non-volume-preserving or coupling block",
        ),
        Code(
            "W101",
            "repeated-coupling",
            "consecutive couplings update the same features with no permutation between",
        ),
        Code("W102", "non-smooth-ode", "non-smooth activation inside an `ode` net"),
        Code(
            "W103",
            "ignored-option",
            "an option the configuration ignores (`rtol`/`atol` with a fixed-step ODE solver, "
            "`trace` with `logdet=exact`)",
        ),
        Code(
            "W104",
            "flattened-image",
            "an `mlp` net flattens a [C, H, W] tensor (its spatial layout is ignored)",
        ),
        Code(
            "W105",
            "bad-suppression",
            "a `# flowspec: ignore[...]` comment naming an unknown code, an error, or no code",
        ),
        Code(
            "W106",
            "device-ping-pong",
            "a `cond=` tensor or a split output moved back to a device it already left: a "
            "transfer per call that a different region boundary would avoid",
        ),
        Code(
            "W107",
            "roulette-variance",
            "a residual block's `lipschitz` so close to 1 that no allowed roulette `p` "
            "proves the log-det estimator's variance finite",
        ),
    )
}


#: the longest source text a message quotes between backticks (longer: cut, "…")
MAX_QUOTED = 100
#: the longest message, hint or note (a backstop: quoted text is cut first)
MAX_MESSAGE = 1000
_QUOTED = re.compile(r"`([^`]*)`")


def clean_message(text: str) -> str:
    """A message as it is stored and shown: quoted source text cut to
    :data:`MAX_QUOTED` characters, invisible characters written ``<U+200B>``, and
    the whole at most :data:`MAX_MESSAGE` characters.  Messages are built from spec
    text, which may hold anything: this keeps every renderer's output readable and
    bounded."""
    if len(text) <= MAX_QUOTED and text.isprintable():
        return text
    text = _QUOTED.sub(lambda m: f"`{visible(m[1], MAX_QUOTED)}`", text)
    return visible(text, MAX_MESSAGE)


@dataclass(frozen=True)
class Label:
    """A secondary location, such as the first use of a tensor consumed twice."""

    span: Span
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "message", clean_message(self.message))


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    hint: str | None = None
    labels: tuple[Label, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unregistered diagnostic code {self.code}")
        object.__setattr__(self, "message", clean_message(self.message))
        if self.hint is not None:
            object.__setattr__(self, "hint", clean_message(self.hint))
        object.__setattr__(self, "notes", tuple(clean_message(n) for n in self.notes))

    @property
    def severity(self) -> Severity:
        return CODES[self.code].severity

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    # convenient accessors used by tests and renderers
    @property
    def line(self) -> int:
        return self.span.line

    @property
    def column(self) -> int:
        return self.span.column


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.is_error for d in diagnostics)


def sort_key(d: Diagnostic) -> tuple:
    return (d.span.file, d.span.start, d.span.end, d.code)


# ---------------------------------------------------------------- rendering helpers


def display_column(line_text: str, column: int, tabsize: int = 4) -> int:
    """1-based display column of the 1-based character ``column`` after tab expansion."""
    return len(line_text[: max(column - 1, 0)].expandtabs(tabsize)) + 1


#: source lines wider than this (display columns) are shown cut around the span
MAX_SHOWN_LINE = 120
#: how much of a cut line is shown before the span starts
_CONTEXT = 40


def _caret_block(
    source: Source | None, span: Span, gutter: int, marker: str, message: str = ""
) -> list[str]:
    pad = " " * gutter
    if source is None or span.line < 1:
        return []
    text = source.line_text(span.line)
    shown = text.expandtabs(4)
    start = display_column(text, span.column)
    if span.end_line == span.line:
        end = display_column(text, span.end_column)
    else:  # a multi-line span: underline to the end of its first line
        end = len(shown) + 1
    width, cut = max(end - start, 1), False
    if len(shown) > MAX_SHOWN_LINE:
        shown, start, width, cut = _cut_line(shown, start, width)
    underline = " " * (start - 1) + marker * width + ("…" if cut else "")
    if message:
        underline += " " + message
    return [f"{str(span.line).rjust(gutter)} | {shown}", f"{pad} | {underline}"]


def _cut_line(shown: str, start: int, width: int) -> tuple[str, int, int, bool]:
    """A window of at most :data:`MAX_SHOWN_LINE` columns of a long line, from a
    little before display column ``start``, with "…" where text is cut; the span's
    start and width in the window, and whether the underline is cut short."""
    s0 = start - 1
    lo = max(0, min(s0 - _CONTEXT, len(shown) - (MAX_SHOWN_LINE - 1)))
    prefix = "…" if lo else ""
    hi = lo + MAX_SHOWN_LINE - len(prefix)
    suffix = ""
    if hi < len(shown):
        hi, suffix = hi - 1, "…"
    hi = min(hi, len(shown))
    room = max(hi - s0, 1)
    return (
        prefix + shown[lo:hi] + suffix,
        s0 - lo + len(prefix) + 1,
        min(width, room),
        width > room,
    )


def render_text(
    diagnostics: Iterable[Diagnostic], sources: Mapping[str, Source] | None = None
) -> str:
    """Render diagnostics in the layout of LANGUAGE.md §6."""
    sources = sources or {}
    out: list[str] = []
    for d in diagnostics:
        spans = [d.span, *(label.span for label in d.labels)]
        # LANGUAGE.md §6: one blank column before the widest line number
        gutter = max(len(str(s.line)) for s in spans) + 1
        pad = " " * gutter
        out.append(f"{d.severity.value}[{d.code}]: {d.message}")
        out.append(f"{pad}--> {d.span.file}:{d.span.line}:{d.span.column}")
        src = sources.get(d.span.file)
        if src is not None and d.span.line >= 1:
            out.append(f"{pad} |")
            out.extend(_caret_block(src, d.span, gutter, "^"))
            shown = (d.span.file, d.span.line)
            for label in d.labels:
                lsrc = sources.get(label.span.file)
                block = _caret_block(lsrc, label.span, gutter, "-", label.message)
                if (label.span.file, label.span.line) == shown:
                    block = block[1:]  # the line is already on screen: underline it again
                out.extend(block)
                shown = (label.span.file, label.span.line)
        for note in d.notes:
            out.append(f"{pad} = note: {note}")
        if d.hint:
            out.append(f"{pad} = help: {d.hint}")
        out.append("")
    return "\n".join(out)


def render_concise(diagnostics: Iterable[Diagnostic]) -> str:
    """One line per diagnostic: ``path:line:col: severity[code]: message``."""
    return "".join(
        f"{d.span.file}:{d.span.line}:{d.span.column}: {d.severity.value}[{d.code}]: {d.message}\n"
        for d in diagnostics
    )


def to_dict(d: Diagnostic) -> dict:
    return {
        "path": d.span.file,
        "code": d.code,
        "slug": CODES[d.code].slug,
        "severity": d.severity.value,
        "message": d.message,
        "line": d.span.line,
        "column": d.span.column,
        "end_line": d.span.end_line,
        "end_column": d.span.end_column,
        "hint": d.hint,
        "labels": [
            {
                "message": label.message,
                "path": label.span.file,
                "line": label.span.line,
                "column": label.span.column,
                "end_line": label.span.end_line,
                "end_column": label.span.end_column,
            }
            for label in d.labels
        ],
        "notes": list(d.notes),
    }


def render_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([to_dict(d) for d in diagnostics], indent=2)


def _region(span: Span) -> dict:
    # SARIF regions are 1-based with an exclusive end column, as spans are
    return {
        "startLine": span.line,
        "startColumn": span.column,
        "endLine": span.end_line,
        "endColumn": span.end_column,
    }


def render_sarif(diagnostics: Iterable[Diagnostic]) -> str:
    """SARIF 2.1.0, for code-scanning tools: one rule per code of ``CODES``."""
    from flowspec import __version__

    rules = [
        {
            "id": c.code,
            "name": c.slug,
            "shortDescription": {"text": c.description},
            "defaultConfiguration": {"level": c.severity.value},
        }
        for c in CODES.values()
    ]
    results = []
    for d in diagnostics:
        text = d.message + (f"\nhelp: {d.hint}" if d.hint else "")
        results.append(
            {
                "ruleId": d.code,
                "level": d.severity.value,
                "message": {"text": text},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": d.span.file},
                            "region": _region(d.span),
                        }
                    }
                ],
                "relatedLocations": [
                    {
                        "id": i,
                        "message": {"text": label.message},
                        "physicalLocation": {
                            "artifactLocation": {"uri": label.span.file},
                            "region": _region(label.span),
                        },
                    }
                    for i, label in enumerate(d.labels)
                ],
            }
        )
    log = {
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [
            {
                "tool": {"driver": {"name": "flowspec", "version": __version__, "rules": rules}},
                "results": results,
            }
        ],
    }
    return json.dumps(log, indent=2)


def render_junit(
    diagnostics: Iterable[Diagnostic],
    files: list[str],
    sources: Mapping[str, Source] | None = None,
    strict: bool = False,
) -> str:
    """JUnit XML: one test case per checked file, failed by its errors (and by its
    warnings with ``strict``), the failure text rendered as ``check`` renders it."""
    from xml.etree import ElementTree as ET

    by_file: dict[str, list[Diagnostic]] = {f: [] for f in files}
    for d in diagnostics:
        by_file.setdefault(d.span.file, []).append(d)
    suite = ET.Element("testsuite", name="flowspec check", tests=str(len(by_file)))
    failures = 0
    for path, diags in by_file.items():
        case = ET.SubElement(suite, "testcase", classname="flowspec.check", name=path)
        failing = [d for d in diags if d.is_error or strict]
        if failing:
            failures += 1
            first = failing[0]
            failure = ET.SubElement(
                case, "failure", type=first.code, message=f"{first.code}: {first.message}"
            )
            failure.text = render_text(diags, sources)
        elif diags:
            ET.SubElement(case, "system-out").text = render_text(diags, sources)
    suite.set("failures", str(failures))
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


class SpecError(Exception):
    """A spec with errors: carries the diagnostics and renders them as ``check`` does."""

    def __init__(
        self, diagnostics: list[Diagnostic], sources: Mapping[str, Source] | None = None
    ) -> None:
        self.diagnostics = list(diagnostics)
        self.sources = dict(sources or {})
        super().__init__(self.render())

    def render(self) -> str:
        return render_text(self.diagnostics, self.sources).rstrip()

    def __str__(self) -> str:
        return self.render()
