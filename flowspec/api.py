"""``flowspec.check``: the torch-free half of the Python API.

Kept apart from :mod:`flowspec.compiler` (``flowspec.compile``, which imports torch) so
that ``import flowspec`` and ``flowspec check`` never load torch.
"""

from __future__ import annotations

from pathlib import Path

from flowspec.core.diagnostics import Diagnostic
from flowspec.driver import Compilation
from flowspec.kinds.limits import MAX_PARAMS
from flowspec.syntax.limits import MAX_BYTES, MAX_STATEMENTS, Limits


def check(
    spec: str | Path,
    *,
    max_bytes: int | None = MAX_BYTES,
    max_statements: int | None = MAX_STATEMENTS,
    max_params: int | None = MAX_PARAMS,
) -> list[Diagnostic]:
    """Check a spec (a path or the spec's text); never raises for a user's mistake.

    Returns every diagnostic, errors and warnings, sorted by position.  A spec over
    ``max_bytes`` (UTF-8) or ``max_statements`` is refused before parsing (E205);
    ``0`` or ``None`` turns a limit off.  A flow over ``max_params`` learned parameters,
    counted from shapes and options without building anything, is E501.
    """
    return Compilation.of(spec, Limits.of(max_bytes, max_statements, max_params)).diagnostics
