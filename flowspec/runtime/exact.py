"""Exact evaluation of stochastic blocks: ``with flowspec.exact(flow): ...``.

A residual block with ``logdet=series|roulette`` and an ``ode`` block with
``trace=hutchinson`` estimate their log-determinant; the estimate is random (roulette,
Hutchinson) or biased (a short series) in ``eval()`` mode too.  Inside ``exact(flow)``
every such block of ``flow`` computes its log-determinant deterministically instead:

- ``residual``: the d×d Jacobian of g by d vector-Jacobian products and
  ``slogdet(I + J_g)`` when d ≤ :data:`flowspec.runtime.residual.EXACT_MAX_FEATURES`;
  above it the power series Σ_{k=1}^{n} (−1)^{k+1}/k · tr(J_g^k) with n the block's
  ``eval_terms`` and each trace computed exactly (Σ_i e_iᵀ J_g^k e_i, probes in chunks),
  whose truncation error is at most Σ_{k>n} d·c^k/k ≤ d·c^{n+1}/((n+1)(1 − c)) for
  c = Lip(g) (``Residual.series_tail_bound``).
- ``ode``: the exact trace tr(∂f/∂x) integrated along the trajectory, so the log-det is
  exact up to the solver's tolerance.

The switch is a per-module attribute, ``exact_eval``, of the blocks that have one; the
context manager sets it on every submodule of ``flow`` and restores the previous values
on exit (so contexts nest, and other flows are not affected).  Gradients still flow.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def exact(flow: nn.Module, enabled: bool = True) -> Iterator[nn.Module]:
    """Evaluate every stochastic block of ``flow`` exactly inside the ``with`` body.

    ``enabled=False`` turns exact evaluation off inside the body (for a nested scope).
    """
    blocks = [m for m in flow.modules() if hasattr(m, "exact_eval")]
    saved = [m.exact_eval for m in blocks]
    try:
        for m in blocks:
            setattr(m, "exact_eval", bool(enabled))  # noqa: B010 (a duck-typed flag)
        yield flow
    finally:
        for m, value in zip(blocks, saved):
            m.exact_eval = value


__all__ = ["exact"]
