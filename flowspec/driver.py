"""The driver: one object owning the stages, one cached step per stage.

    parse → lower → check → generate

The API (``flowspec.check``, ``flowspec.compile``), the CLI and the pytest plugin all
go through :class:`Compilation`, so no path re-implements a stage.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path

from flowspec.core.collector import gc_paused
from flowspec.core.diagnostics import Diagnostic, SpecError, has_errors, sort_key
from flowspec.core.spans import Source
from flowspec.ir.graph import FlowGraph
from flowspec.ir.resolved import ResolvedFlow
from flowspec.syntax import ast
from flowspec.syntax.limits import DEFAULT_LIMITS, Limits

SPEC_SUFFIXES = (".flow", ".yaml", ".yml")

#: a YAML file is a flow spec when it has the top-level key ``flowspec`` (the format
#: version), wherever it stands: after comments, a ``---`` or other keys
_YAML_SPEC_KEY = re.compile(r"""^(?:flowspec|"flowspec"|'flowspec')[ \t]*:""", re.MULTILINE)


def is_spec_file(path: Path) -> bool:
    """A ``.flow`` file, or a YAML file with a top-level ``flowspec:`` key (so that CI
    configuration and other YAML in a repository is not taken for a spec).  Reads at
    most the input size limit."""
    if path.suffix == ".flow":
        return True
    if path.suffix not in SPEC_SUFFIXES:
        return False
    with path.open("rb") as f:
        head = f.read(DEFAULT_LIMITS.max_bytes or 1 << 20)
    return _YAML_SPEC_KEY.search(head.decode("utf-8", errors="replace")) is not None


def spec_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files named, with every directory replaced by the specs below it (sorted;
    hidden directories such as ``.git`` and ``.venv`` skipped).  A file named
    explicitly is kept whatever it holds: checking it says what is wrong."""
    out: list[Path] = []
    for name in paths:
        path = Path(name)
        if not path.is_dir():
            out.append(path)
            continue
        for found in sorted(path.rglob("*")):
            hidden = any(part.startswith(".") for part in found.relative_to(path).parts)
            if not hidden and found.is_file() and is_spec_file(found):
                out.append(found)
    return out


class FlowNotFound(Exception):
    """``flow=`` names no flow of the spec, or the choice is ambiguous."""


def load_source(spec: str | Path, limits: Limits = DEFAULT_LIMITS) -> Source:
    """A path to a spec file, or the spec's text itself.

    A file is read up to one character past the byte limit: enough for the front end
    to report it as too large (E205), without reading a huge file whole.
    """
    if isinstance(spec, Path):
        return Source(str(spec), _read_text(spec, limits))
    if "\n" not in spec and "{" not in spec and (spec.endswith(SPEC_SUFFIXES) or _is_file(spec)):
        return Source(spec, _read_text(Path(spec), limits))
    return Source("<string>", spec)


def _read_text(path: Path, limits: Limits) -> str:
    # text mode, as read_text: universal newlines, so a bare \r ends a line
    with path.open(encoding="utf-8") as f:
        return f.read() if limits.max_bytes is None else f.read(limits.max_bytes + 1)


def _is_file(text: str) -> bool:
    """Does ``text`` name an existing file?  Spec text that cannot be a path (too long
    for the file system, a NUL character) is not one."""
    try:
        return Path(text).is_file()
    except (OSError, ValueError):
        return False


def is_yaml(source: Source) -> bool:
    if source.path.endswith((".yaml", ".yml")):
        return True
    if source.path.endswith(".flow"):
        return False
    return source.text.lstrip().startswith("flowspec:")


class Compilation:
    """One spec through the stages; each stage runs once, on first use."""

    def __init__(self, source: Source, limits: Limits = DEFAULT_LIMITS) -> None:
        self.source = source
        self.limits = limits

    @classmethod
    def of(cls, spec: str | Path, limits: Limits = DEFAULT_LIMITS) -> Compilation:
        return cls(load_source(spec, limits), limits)

    @property
    def sources(self) -> dict[str, Source]:
        return {self.source.path: self.source}

    # -------------------------------------------------------------- stages

    @cached_property
    def parsed(self) -> tuple[ast.Program | None, list[Diagnostic]]:
        if is_yaml(self.source):
            from flowspec.syntax import yaml as yaml_front

            return yaml_front.parse(self.source, self.limits)
        from flowspec.syntax import dsl

        return dsl.parse(self.source, self.limits)

    @property
    def program(self) -> ast.Program | None:
        return self.parsed[0]

    @cached_property
    def lowered(self) -> tuple[list[FlowGraph], list[Diagnostic]]:
        from flowspec.ir.lower import lower

        program = self.program
        if program is None:
            return [], []
        with gc_paused():
            return lower(program)

    @cached_property
    def elaborated(self) -> tuple[list[ResolvedFlow], list[Diagnostic]]:
        """Every lowered flow with its options and shapes resolved (the stage the
        checks, codegen and ``summary`` read), and the problems found doing so."""
        from flowspec.elaborate import elaborate

        flows: list[ResolvedFlow] = []
        diags: list[Diagnostic] = []
        with gc_paused():
            for fg in self.lowered[0]:
                rf, found = elaborate(fg)
                flows.append(rf)
                diags.extend(found)
        return flows, diags

    def resolved(self, flow: str | None = None) -> ResolvedFlow:
        """The elaborated view of one flow; raises SpecError if the spec has errors."""
        fg = self.flow_graph(flow)
        return next(rf for rf in self.elaborated[0] if rf.graph is fg)

    @cached_property
    def diagnostics(self) -> list[Diagnostic]:
        """Every diagnostic of every stage, sorted by position, less the warnings that a
        ``# flowspec: ignore[CODE]`` comment silences (:mod:`flowspec.suppressions`)."""
        from flowspec.checks import CHECKS, FLOW_CHECKS
        from flowspec.checks.resources import check_parameters

        diags = list(self.parsed[1])
        if self.program is None:
            return diags
        diags.extend(self.lowered[1])
        flows, elaboration = self.elaborated
        diags.extend(elaboration)
        # collect, then decide: a lowering error leaves holes in the graph, so the
        # flow-wide checks would only report their echo
        with gc_paused():
            for rf in flows:
                for check in CHECKS:
                    if rf.lowered or check not in FLOW_CHECKS:
                        diags.extend(check(rf))
                if rf.lowered:  # the one check that takes a limit (E501)
                    diags.extend(check_parameters(rf.graph, self.limits.max_params))
        graphs = self.lowered[0]
        if not graphs and not has_errors(diags) and self.program is not None:
            from flowspec.core.spans import Span

            diags.append(
                Diagnostic(
                    "E204",
                    "the spec defines no flow",
                    Span(self.source.path, 0, 0, 1, 1, 1, 1),
                    hint="add `flow NAME { input x: [d] ... output x }`",
                )
            )
        from flowspec.suppressions import apply

        # `# flowspec: ignore[W101]` comments silence warnings on their line
        return apply(self.source, sorted(_dedupe(diags), key=sort_key), is_yaml(self.source))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    def raise_for_errors(self) -> None:
        if self.errors:
            raise SpecError(self.diagnostics, self.sources)

    def flow_names(self) -> list[str]:
        return [fg.name for fg in self.lowered[0]]

    def flow_graph(self, flow: str | None = None) -> FlowGraph:
        """The checked graph of one flow; raises SpecError if the spec has errors."""
        self.raise_for_errors()
        graphs = self.lowered[0]
        if flow is None:
            if len(graphs) != 1:
                raise FlowNotFound(
                    f"the spec defines {len(graphs)} flows ({', '.join(self.flow_names())}); "
                    "choose one with flow="
                )
            return graphs[0]
        for fg in graphs:
            if fg.name == flow:
                return fg
        raise FlowNotFound(
            f"no flow named {flow!r}; the spec defines: {', '.join(self.flow_names())}"
        )

    def generate(self, flow: str | None = None) -> str:
        """Python source of the flow's module (the ``generate`` stage)."""
        return self._generated(self.flow_graph(flow).name)

    def _generated(self, name: str) -> str:
        cache = self.__dict__.setdefault("_generated_cache", {})
        if name not in cache:
            from flowspec.codegen import generate

            cache[name] = generate(self.resolved(name), self.source, self.program)
        return cache[name]


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen, out = set(), []
    for d in diags:
        key = (d.code, d.span.file, d.span.start, d.span.end, d.message)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out
