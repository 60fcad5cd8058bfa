"""``flowspec.check``: the torch-free half of the Python API.

Kept apart from :mod:`flowspec.compiler` (``flowspec.compile``, which imports torch) so
that ``import flowspec`` and ``flowspec check`` never load torch.
"""

from __future__ import annotations

from pathlib import Path

from flowspec.core.diagnostics import Diagnostic
from flowspec.core.spans import Span
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
    counted from shapes and options without building anything, is E501.  A path that
    cannot be read is one E206.
    """
    limits = Limits.of(max_bytes, max_statements, max_params)
    try:
        return Compilation.of(spec, limits).diagnostics
    except (OSError, UnicodeDecodeError) as e:
        return [unreadable(spec, e)]


def unreadable(spec: str | Path, error: OSError | UnicodeDecodeError) -> Diagnostic:
    """E206 for a spec path that cannot be read (missing, a directory, not UTF-8)."""
    path = str(spec)
    if isinstance(error, UnicodeDecodeError):
        why = "is not UTF-8 text"
    elif isinstance(error, FileNotFoundError):
        why = "does not exist"
    elif isinstance(error, IsADirectoryError):
        why = "is a directory (flowspec check DIR on the command line checks the specs in it)"
    else:
        why = f"cannot be read ({error.strerror or type(error).__name__})"
    return Diagnostic(
        "E206",
        f"spec file `{path}` {why}",
        Span(path, 0, 0, 1, 1, 1, 1),
        hint="pass a path to a .flow or YAML file, or the spec's text itself",
    )
