"""The Python API: ``flowspec.check`` and ``flowspec.compile``."""

from __future__ import annotations

from pathlib import Path

from flowspec.core.diagnostics import Diagnostic
from flowspec.driver import Compilation


def check(spec: str | Path) -> list[Diagnostic]:
    """Check a spec (a path or the spec's text); never raises for a user's mistake.

    Returns every diagnostic, errors and warnings, sorted by position.
    """
    return Compilation.of(spec).diagnostics
