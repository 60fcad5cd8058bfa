"""Planar and radial flows, reparametrised so that every parameter value is invertible.

Both treat the per-sample tensor as one flat vector of d entries (any input shape).
Rezende, Mohamed 2015, Variational Inference with Normalizing Flows, arXiv:1505.05770.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.functional import softplus

from flowspec.kinds.options import Choice
from flowspec.runtime.base import Bijection

#: the negative slope of ``act=leaky_relu`` (torch's default, as in the nets)
LEAKY_SLOPE = 0.01


def _tolerance(dtype: torch.dtype) -> float:
    """Relative tolerance of the root finding: 1e-12 in float64, a few ulps above the
    rounding floor in lower precisions."""
    return max(1e-12, 16 * torch.finfo(dtype).eps)


class Planar(Bijection):
    """Planar flow: ``y = x + û·h(wᵀx + b)``, with ``wᵀû ≥ −1`` so that it is invertible.

    ``û = u + (m(wᵀu) − wᵀu)·w/‖w‖²`` with ``m(a) = −1 + softplus(a)``, so that
    ``wᵀû = m(wᵀu) > −1`` whatever u and w are; h is tanh or leaky ReLU (slope 0.01), whose
    slopes lie in (0, 1], so ``1 + h'·wᵀû > 0``.
    ladj = log(1 + h'(wᵀx + b)·wᵀû), computed as ``(1 − h') + h'·softplus(wᵀu)`` to avoid
    the cancellation near wᵀû = −1.

    Inverse: with z = wᵀx + b, the data satisfies ``wᵀy + b = z + wᵀû·h(z)``, a strictly
    increasing function of the scalar z; solve it per sample (closed form for leaky ReLU,
    which is piecewise linear; bracketed Newton with bisection for tanh, whose root lies
    in ``[r − |wᵀû|, r + |wᵀû|]``), then ``x = y − û·h(z)``.  The solve runs without
    autograd; one Newton step with autograd from the root gives the gradient of the
    implicit function.  Not converging within ``max_iter`` iterations raises
    :class:`RuntimeError`.
    Rezende, Mohamed 2015, Variational Inference with Normalizing Flows, arXiv:1505.05770.

    Args:
        in_shapes: ``[shape]``; the flow acts on the ``d = prod(shape)`` entries.
        act: ``tanh`` or ``leaky_relu``.
    """

    #: iterations of the tanh root finding before giving up
    max_iter = 100

    def __init__(self, in_shapes: list[tuple[int, ...]], act: Choice | str = "tanh") -> None:
        super().__init__(in_shapes)
        self.act = act.kind if isinstance(act, Choice) else act
        if self.act not in ("tanh", "leaky_relu"):
            raise ValueError(f"planar: unknown activation {self.act!r}")
        d = math.prod(self.in_shapes[0])
        self.features = d
        bound = 1 / math.sqrt(d)
        # random, not zero: at u = w = 0 (and b = 0) the gradient of both vanishes
        self.w = nn.Parameter(torch.empty(d).uniform_(-bound, bound))
        self.u = nn.Parameter(torch.empty(d).uniform_(-bound, bound))
        self.b = nn.Parameter(torch.zeros(()))

    def constrained(self) -> tuple[Tensor, Tensor]:
        """``(û, softplus(wᵀu))``: the constrained vector and ``1 + wᵀû`` (> 0)."""
        w, u = self.w, self.u
        a = w @ u
        norm2 = w @ w
        nonzero = norm2 > 0
        # clamp: softplus underflows to 0 for very negative wᵀu, and 1 + wᵀû must stay > 0
        sp = softplus(a).clamp_min(torch.finfo(a.dtype).tiny)
        # with w = 0 (or ‖w‖² underflowing) no correction is possible or needed: wᵀû = 0;
        # the guarded division keeps 0/0 (and NaN gradients) out
        u_hat = u + ((sp - 1 - a) / torch.where(nonzero, norm2, torch.ones_like(norm2))) * w
        return u_hat, torch.where(nonzero, sp, torch.ones_like(sp))

    def _h(self, z: Tensor) -> Tensor:
        if self.act == "tanh":
            return torch.tanh(z)
        return torch.where(z >= 0, z, z * LEAKY_SLOPE)

    def _slope_term(self, z: Tensor, sp: Tensor) -> Tensor:
        """``1 + h'(z)·wᵀû = (1 − h'(z)) + h'(z)·sp``, positive."""
        if self.act == "tanh":
            t2 = torch.tanh(z).square()
            return t2 + (1 - t2) * sp
        return torch.where(z >= 0, sp, (1 - LEAKY_SLOPE) + LEAKY_SLOPE * sp)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        flat = x.reshape(x.shape[0], -1)
        u_hat, sp = self.constrained()
        z = flat @ self.w + self.b
        y = flat + self._h(z)[:, None] * u_hat
        return y.reshape(x.shape), torch.log(self._slope_term(z, sp))

    def transform(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        u_hat, _ = self.constrained()
        z = flat @ self.w + self.b
        return (flat + self._h(z)[:, None] * u_hat).reshape(x.shape)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        flat = y.reshape(y.shape[0], -1)
        u_hat, sp = self.constrained()
        z = self._solve(flat @ self.w + self.b, sp)
        x = flat - self._h(z)[:, None] * u_hat
        return x.reshape(y.shape), -torch.log(self._slope_term(z, sp))

    def inverse_transform(self, y: Tensor) -> Tensor:
        flat = y.reshape(y.shape[0], -1)
        u_hat, sp = self.constrained()
        z = self._solve(flat @ self.w + self.b, sp)
        return (flat - self._h(z)[:, None] * u_hat).reshape(y.shape)

    def _solve(self, r: Tensor, sp: Tensor) -> Tensor:
        """z with ``z + m·h(z) = r`` per sample, ``m = sp − 1 = wᵀû``."""
        if self.act == "leaky_relu":
            # z and z + m·h(z) have the same sign, and each half-line is linear
            return torch.where(r >= 0, r / sp, r / ((1 - LEAKY_SLOPE) + LEAKY_SLOPE * sp))
        with torch.no_grad():
            z = self._solve_tanh(r.detach(), sp.detach())
        # one Newton step with autograd at the root: the value stays, and the gradient is
        # that of the implicit function, −(∂g/∂θ)/(∂g/∂z)
        m = sp - 1
        g = z + m * torch.tanh(z) - r
        return z - g / self._slope_term(z, sp)

    def _solve_tanh(self, r: Tensor, sp: Tensor) -> Tensor:
        if r.is_meta:  # shapes only (`on meta`): nothing to iterate on
            return r
        m = sp - 1
        eps = torch.finfo(r.dtype).eps
        tol = _tolerance(r.dtype)
        # |m·tanh(z)| ≤ |m| puts the root in [r − |m|, r + |m|]
        lo, hi = r - m.abs(), r + m.abs()
        z = torch.clamp(r / sp, lo, hi)
        previous_step = hi - lo
        done = torch.zeros_like(r, dtype=torch.bool)
        g = r
        for _ in range(self.max_iter):
            t = torch.tanh(z)
            g = z + m * t - r
            # below this the residual is rounding noise and no step can improve z
            at_floor = g.abs() <= 4 * eps * (z.abs() + (m * t).abs() + r.abs())
            lo = torch.where(g < 0, z, lo)
            hi = torch.where(g > 0, z, hi)
            newton = z - g / (t * t + (1 - t * t) * sp)
            # bisect when Newton leaves the bracket or stops halving its steps (it can
            # crawl near the inflection point at z = 0 when m is close to −1)
            use_newton = (newton > lo) & (newton < hi)
            use_newton &= (newton - z).abs() <= 0.5 * previous_step.abs()
            step = torch.where(use_newton, newton, 0.5 * (lo + hi)) - z
            step = torch.where(done | at_floor, torch.zeros_like(step), step)
            z = z + step
            done |= at_floor | (step.abs() <= tol * (1 + z.abs()))
            previous_step = torch.where(step == 0, previous_step, step)
            if bool(done.all()):
                return z
        worst = g.abs().max().item()
        raise RuntimeError(
            f"{self.name}: the inverse did not "
            f"converge in {self.max_iter} iterations; largest residual |z + wᵀû·tanh(z) − r| "
            f"= {worst:.3g}"
        )

    def extra_repr(self) -> str:
        return f"in_shapes={self.in_shapes}, act={self.act}"


class Radial(Bijection):
    """Radial flow: ``y = x + β·h(α, r)·(x − x₀)`` with ``h = 1/(α + r)``, ``r = ‖x − x₀‖``.

    α = softplus(α_raw) > 0 and β = −α + softplus(β_raw) ≥ −α, which keeps the map
    invertible.  ladj = (d − 1)·log(1 + βh) + log(1 + βh + βh'·r), computed in the
    cancellation-free forms ``1 + βh = (r + softplus(β_raw))/(α + r)`` and
    ``1 + βh + βh'r = (r² + 2αr + α·softplus(β_raw))/(α + r)²``.

    Inverse in closed form: ``ρ = ‖y − x₀‖ = r·(1 + βh)`` gives
    ``r² + (α + β − ρ)·r − αρ = 0``, whose one non-negative root is r; then
    ``x = x₀ + (y − x₀)·(α + r)/(α + r + β)``.
    Rezende, Mohamed 2015, Variational Inference with Normalizing Flows, arXiv:1505.05770.

    Args:
        in_shapes: ``[shape]``; the flow acts on the ``d = prod(shape)`` entries.
    """

    def __init__(self, in_shapes: list[tuple[int, ...]]) -> None:
        super().__init__(in_shapes)
        d = math.prod(self.in_shapes[0])
        self.features = d
        self.x0 = nn.Parameter(torch.randn(d) / math.sqrt(d))
        self.alpha_raw = nn.Parameter(torch.randn(()))
        self.beta_raw = nn.Parameter(torch.randn(()))

    def _coefficients(self) -> tuple[Tensor, Tensor]:
        """(α, softplus(β_raw) = α + β)."""
        return softplus(self.alpha_raw), softplus(self.beta_raw)

    def _ladj(self, r: Tensor, alpha: Tensor, sp_beta: Tensor) -> Tensor:
        log_a_r = torch.log(alpha + r)
        radial = torch.log(r * (r + 2 * alpha) + alpha * sp_beta) - 2 * log_a_r
        return (self.features - 1) * (torch.log(r + sp_beta) - log_a_r) + radial

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        diff = x.reshape(x.shape[0], -1) - self.x0
        r = torch.linalg.vector_norm(diff, dim=1)
        alpha, sp_beta = self._coefficients()
        # 1 + β·h = (α + r + β)/(α + r) = (r + softplus(β_raw))/(α + r)
        y = self.x0 + diff * ((r + sp_beta) / (alpha + r))[:, None]
        return y.reshape(x.shape), self._ladj(r, alpha, sp_beta)

    def transform(self, x: Tensor) -> Tensor:
        diff = x.reshape(x.shape[0], -1) - self.x0
        r = torch.linalg.vector_norm(diff, dim=1)
        alpha, sp_beta = self._coefficients()
        return (self.x0 + diff * ((r + sp_beta) / (alpha + r))[:, None]).reshape(x.shape)

    def _radius(self, rho: Tensor, alpha: Tensor, sp_beta: Tensor) -> Tensor:
        """The r ≥ 0 with ``r·(r + α + β)/(α + r) = ρ``."""
        # r² + p·r − αρ = 0 with p = α + β − ρ = softplus(β_raw) − ρ; take the root
        # ≥ 0 in whichever form does not subtract nearly equal numbers
        p = sp_beta - rho
        root = torch.sqrt(p * p + 4 * alpha * rho)
        return torch.where(p > 0, 2 * alpha * rho / (p + root), 0.5 * (root - p))

    def _invert(self, y: Tensor) -> tuple[Tensor, Tensor]:
        diff = y.reshape(y.shape[0], -1) - self.x0
        rho = torch.linalg.vector_norm(diff, dim=1)
        alpha, sp_beta = self._coefficients()
        r = self._radius(rho, alpha, sp_beta)
        x = self.x0 + diff * ((alpha + r) / (r + sp_beta))[:, None]
        return x.reshape(y.shape), r

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x, r = self._invert(y)
        alpha, sp_beta = self._coefficients()
        return x, -self._ladj(r, alpha, sp_beta)

    def inverse_transform(self, y: Tensor) -> Tensor:
        return self._invert(y)[0]


__all__ = ["Planar", "Radial"]
