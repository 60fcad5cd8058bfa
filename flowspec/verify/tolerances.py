"""The tolerances of ``flowspec verify``, scaled with the dtype (documented in the README).

Every error is measured *relative*: |a − b| / (1 + |b|) (the largest over samples and
features), so one tolerance serves ladj values of 1 and of 10⁴.  The base tolerance is
τ = 4·√ε of the dtype (6.0e-8 in float64, 1.4e-3 in float32); a block whose inverse is
only as exact as a solver gets the solver's own error on top:

- ``iterative``: a residual block's fixed point stops when every element moves by at
  most tol·(1 + |x|), and is then within c/(1 − c) of that of the fixed point, so
  max(τ, 10·tol·c/(1 − c)); planar's root finding gets max(τ, 1e-6).
- ``integrated`` (ODE): adaptive solvers max(τ, 100·max(rtol, atol)); fixed-step solvers,
  whose error only ``steps`` controls, max(τ, 1e-2).

The stochastic estimators are compared with a confidence interval instead: the mean of N
estimates must be within 4 standard errors of the brute-force value, plus the proven
truncation bias of a ``series`` estimator (Σ_{k>n} d·c^k/k, ``series_tail_bound``), plus τ.
Lipschitz bounds: a measured σ is a failure above bound·(1 + τ).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from flowspec.kinds.base import BlockKind
from flowspec.kinds.options import Choice
from flowspec.kinds.words import ADAPTIVE_SOLVERS

#: standard errors a stochastic estimator's mean may be away from the exact value
SIGMAS = 4.0


def base(dtype: torch.dtype) -> float:
    """τ = 4·√ε of ``dtype``."""
    return 4.0 * math.sqrt(torch.finfo(dtype).eps)


def _option(value: Any, key: str, default: float) -> float:
    if isinstance(value, Choice):
        return float(value.get(key, default))
    return default


def inverse_tolerance(kind: BlockKind, opts: dict[str, Any], dtype: torch.dtype) -> float:
    """The round-trip (and inverse-ladj, fused-vs-value-only) tolerance of one block."""
    tau = base(dtype)
    klass = kind.inverse_class(opts)
    if klass == "iterative":
        if "lipschitz" in opts and "inverse" in opts:
            c = float(opts["lipschitz"])
            tol = _option(opts["inverse"], "tol", 1e-6)
            return max(tau, 10.0 * tol * c / (1.0 - c))
        return max(tau, 1e-6)
    if klass == "integrated":
        solver = opts.get("solver")
        name = solver.kind if isinstance(solver, Choice) else str(solver)
        if name in ADAPTIVE_SOLVERS:
            return max(
                tau, 100.0 * max(float(opts.get("rtol", 1e-5)), float(opts.get("atol", 1e-5)))
            )
        return max(tau, 1e-2)
    return tau


__all__ = ["SIGMAS", "base", "inverse_tolerance"]
