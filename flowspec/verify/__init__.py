"""``flowspec verify``: check the numbers of a compiled (or trained) flow.

    report = flowspec.verify("specs/glow.flow")      # or verify(flow) for a built Flow
    report.ok, report.rows, print(report)

The package (and only it, of the checking side) imports torch.  ``flowspec.verify`` is
this module, and calling it calls :func:`~flowspec.verify.run.verify`, so both
``flowspec.verify(spec)`` and ``from flowspec.verify import verify`` work.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from flowspec.verify.report import BlockReport, Check, VerifyReport
from flowspec.verify.run import prepare, verify


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> VerifyReport:
        return verify(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["BlockReport", "Check", "VerifyReport", "prepare", "verify"]
