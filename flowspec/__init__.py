"""flowspec — a compiler for normalizing flows.

``flowspec.check(spec)`` returns diagnostics; ``flowspec.compile(spec)`` returns a
:class:`flowspec.Flow` (an ``nn.Module``); ``flowspec.save(flow, path)`` and
``flowspec.load(path, spec=...)`` write and read checkpoints bound to their spec.
Importing ``flowspec`` does not import torch: the runtime loads on first use of
``compile`` or ``Flow``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowspec.api import check
from flowspec.core.diagnostics import CODES, Diagnostic, SpecError

__version__ = "0.1.0"
__all__ = [
    "CODES",
    "CheckpointError",
    "CheckpointMismatch",
    "Diagnostic",
    "Flow",
    "SpecError",
    "check",
    "compile",
    "exact",
    "load",
    "save",
    "verify",
]

if TYPE_CHECKING:
    from flowspec.checkpoint import CheckpointError, CheckpointMismatch, load, save
    from flowspec.compiler import compile
    from flowspec.runtime.exact import exact
    from flowspec.runtime.flow import Flow


def __getattr__(name: str) -> Any:
    if name == "compile":
        from flowspec.compiler import compile

        return compile
    if name == "Flow":
        from flowspec.runtime.flow import Flow

        return Flow
    if name == "exact":
        from flowspec.runtime.exact import exact

        return exact
    if name == "verify":
        import flowspec.verify as verify

        return verify
    if name in ("save", "load", "CheckpointError", "CheckpointMismatch"):
        from flowspec import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'flowspec' has no attribute {name!r}")
