"""The monotone rational-quadratic spline and the spline coupling built on it.

Durkan, Bekasov, Murray, Papamakarios 2019, *Neural Spline Flows*, arXiv:1906.04032.

:func:`rational_quadratic_spline` is shared with the autoregressive spline
(``flowspec.runtime.autoregressive``): it maps each element of ``x`` through its own
spline, given the net's unnormalised parameters in a trailing axis.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from flowspec.runtime.coupling import Coupling

#: Smallest bin width and height as a fraction of the interval, and the smallest knot
#: derivative: they keep the spline away from degenerate (flat or vertical) pieces.
MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3

# softplus(u + shift) + MIN_DERIVATIVE == 1 at u = 0, so a zero-initialised conditioner
# gives unit derivatives and equal bins: the identity.
_DERIVATIVE_SHIFT = math.log(math.expm1(1.0 - MIN_DERIVATIVE))


def spline_params(bins: int) -> int:
    """Unnormalised parameters per transformed element: widths, heights, interior
    derivatives (``3·bins − 1``)."""
    return 3 * bins - 1


def _knots(unnormalized: Tensor, bound: float, min_size: float) -> Tensor:
    """Knot positions ``[..., bins + 1]`` from -bound to bound, each bin at least
    ``min_size`` of the interval; the ends are exactly ±bound so the tails join."""
    bins = unnormalized.shape[-1]
    size = torch.softmax(unnormalized, dim=-1)
    size = min_size + (1.0 - min_size * bins) * size
    inner = torch.cumsum(size[..., :-1], dim=-1) * (2.0 * bound) - bound
    return F.pad(F.pad(inner, (1, 0), value=-bound), (0, 1), value=bound)


def _rqs(
    x: Tensor,
    unnormalized_widths: Tensor,
    unnormalized_heights: Tensor,
    unnormalized_derivatives: Tensor,
    bound: float,
    inverse: bool,
    need_ladj: bool,
) -> tuple[Tensor, Tensor | None]:
    inside = (x >= -bound) & (x <= bound)
    # Evaluate every element at its clamped position so tails (even ±1e6, or a batch of
    # tails only) run through the same finite arithmetic; `where` then keeps the
    # identity there, and its gradient never sees a NaN from the unused branch.
    xc = x.clamp(-bound, bound)
    cw = _knots(unnormalized_widths, bound, MIN_BIN_WIDTH)
    ch = _knots(unnormalized_heights, bound, MIN_BIN_HEIGHT)
    d = MIN_DERIVATIVE + F.softplus(unnormalized_derivatives + _DERIVATIVE_SHIFT)
    d = F.pad(d, (1, 1), value=1.0)  # unit slope at ±bound: C¹ join with the identity

    search = ch if inverse else cw
    # bin index = number of interior knots at or below the input: no clamping needed
    idx = (xc.unsqueeze(-1) >= search[..., 1:-1]).sum(dim=-1, keepdim=True)
    idx1 = idx + 1
    xk = cw.gather(-1, idx).squeeze(-1)
    wk = cw.gather(-1, idx1).squeeze(-1) - xk
    yk = ch.gather(-1, idx).squeeze(-1)
    hk = ch.gather(-1, idx1).squeeze(-1) - yk
    dk = d.gather(-1, idx).squeeze(-1)
    dk1 = d.gather(-1, idx1).squeeze(-1)
    s = hk / wk
    delta = dk + dk1 - 2.0 * s

    if inverse:
        dy = xc - yk
        a = hk * (s - dk) + dy * delta
        b = hk * dk - dy * delta
        c = -s * dy
        root = (b * b - 4.0 * a * c).clamp_min(0.0).sqrt()
        # The wanted root is (−b + √disc) / 2a = 2c / (−b − √disc).  Take the form whose
        # denominator adds terms of one sign: for b < 0 the first (then a > 0), else the
        # second (then −b − √disc < 0); both are finite, so `where` passes no NaN grads.
        neg = b < 0
        xi = torch.where(neg, root - b, 2.0 * c) / torch.where(neg, 2.0 * a, -b - root)
        xi = xi.clamp(0.0, 1.0)
        out = xk + xi * wk
    else:
        xi = (xc - xk) / wk
    xi1m = xi * (1.0 - xi)
    denom = s + delta * xi1m
    if not inverse:
        out = yk + hk * (s * xi * xi + dk * xi1m) / denom
    out = torch.where(inside, out, x)
    if not need_ladj:
        return out, None
    one_m = 1.0 - xi
    deriv_num = dk1 * xi * xi + 2.0 * s * xi1m + dk * one_m * one_m
    ladj = 2.0 * torch.log(s) + torch.log(deriv_num) - 2.0 * torch.log(denom)
    if inverse:
        ladj = -ladj
    return out, torch.where(inside, ladj, torch.zeros_like(ladj))


def rational_quadratic_spline(
    x: Tensor,
    unnormalized_widths: Tensor,
    unnormalized_heights: Tensor,
    unnormalized_derivatives: Tensor,
    bound: float,
    inverse: bool = False,
) -> tuple[Tensor, Tensor]:
    """Monotone rational-quadratic spline on ``[-bound, bound]``, identity outside.

    With knots (x_k, y_k), bin width w_k, height h_k, slope s_k = h_k / w_k, knot
    derivatives d_k and ξ = (x − x_k) / w_k ∈ [0, 1]::

        y = y_k + h_k (s_k ξ² + d_k ξ(1−ξ)) / (s_k + (d_k + d_{k+1} − 2 s_k) ξ(1−ξ))
        dy/dx = s_k² (d_{k+1} ξ² + 2 s_k ξ(1−ξ) + d_k (1−ξ)²) / (denominator)²

    The inverse solves the quadratic aξ² + bξ + c = 0 for ξ in closed form, taking the
    cancellation-free form of the root ξ = (−b + √(b² − 4ac)) / 2a, written as
    2c / (−b − √(b² − 4ac)) when b ≥ 0.  Widths and heights are softmaxes (at least
    ``MIN_BIN_WIDTH`` / ``MIN_BIN_HEIGHT`` of the interval); interior derivatives are
    ``MIN_DERIVATIVE + softplus(u + shift)``, 1 at u = 0; the boundary derivatives are 1,
    so the spline joins the identity tails smoothly.  Outside the interval y = x with
    ladj 0, for inputs of any magnitude.

    Args:
        x: ``[...]`` inputs (latents when ``inverse``).
        unnormalized_widths, unnormalized_heights: ``[..., bins]``.
        unnormalized_derivatives: ``[..., bins − 1]`` (interior knots).
        bound: half-width of the spline's interval.
        inverse: evaluate the inverse map.

    Returns:
        ``(y, ladj)``, both ``[...]``; ``ladj`` is the elementwise log|dy/dx| of the
        direction evaluated (so the inverse's is −the forward's at the matching x).

    Reference: Durkan, Bekasov, Murray, Papamakarios 2019, Neural Spline Flows,
    arXiv:1906.04032.
    """
    y, ladj = _rqs(
        x,
        unnormalized_widths,
        unnormalized_heights,
        unnormalized_derivatives,
        bound,
        inverse,
        need_ladj=True,
    )
    assert ladj is not None
    return y, ladj


class SplineCoupling(Coupling):
    """Rational-quadratic spline coupling: x_b ← RQS(x_b; θ(x_a)), identity outside ±bound.

    Math: the conditioner maps x_a (and ``cond``) to ``3·bins − 1`` unnormalised spline
    parameters per element of x_b; y_b = RQS(x_b; θ), ladj = Σ log|RQS'(x_b; θ)| (0 in the
    tails), inverse x_b = RQS⁻¹(y_b; θ) in closed form.  A zero-initialised conditioner
    gives equal bins and unit derivatives, i.e. the identity.

    Reference: Durkan, Bekasov, Murray, Papamakarios 2019, Neural Spline Flows,
    arXiv:1906.04032.

    Args:
        in_shapes, net, mask, flip, cond: as for :class:`~flowspec.runtime.coupling.Coupling`.
        bins: number of spline bins.
        bound: the spline acts on ``[-bound, bound]``.
    """

    def __init__(
        self,
        in_shapes: list[tuple[int, ...]],
        *,
        bins: int = 8,
        bound: float = 3.0,
        **options: Any,
    ) -> None:
        self.bins = int(bins)
        self.bound = float(bound)
        super().__init__(in_shapes, params=spline_params(bins), **options)

    def _spline(self, x_b: Tensor, h: Tensor, inverse: bool, need_ladj: bool):
        k = self.bins
        return _rqs(
            x_b, h[..., :k], h[..., k : 2 * k], h[..., 2 * k :], self.bound, inverse, need_ladj
        )

    def _run(self, x: Tensor, cond: Tensor | None, inverse: bool, need_ladj: bool):
        x_a, x_b = self.split(x)
        h = self.params_of(x_a, cond).movedim(1, -1)  # [B, *x_b.shape, P]
        y_b, ladj = self._spline(x_b, h, inverse, need_ladj)
        if self.checkerboard:
            # the spline ran everywhere; keep it only where the mask transforms
            y_b = torch.where(self.transformed_mask, y_b, x)
            if ladj is not None:
                ladj = ladj * self.transformed
        y = self.merge(x_a, y_b)
        return y, None if ladj is None else ladj.sum(dim=self.feature_dims)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(x, cond, inverse=False, need_ladj=True)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._run(y, cond, inverse=True, need_ladj=True)

    def transform(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        return self._run(x, cond, inverse=False, need_ladj=False)[0]

    def inverse_transform(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        return self._run(y, cond, inverse=True, need_ladj=False)[0]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bins={self.bins}, bound={self.bound:g}"


__all__ = [
    "MIN_BIN_HEIGHT",
    "MIN_BIN_WIDTH",
    "MIN_DERIVATIVE",
    "SplineCoupling",
    "rational_quadratic_spline",
    "spline_params",
]
