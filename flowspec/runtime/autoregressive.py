"""Autoregressive flows with a MADE conditioner: MAF / IAF (affine) and NSF-AR (spline).

Germain, Gregor, Murray, Larochelle 2015, *MADE: Masked Autoencoder for Distribution
Estimation*, arXiv:1502.03509; Papamakarios, Pavlakou, Murray 2017, *Masked Autoregressive
Flow for Density Estimation*, arXiv:1705.07057; Kingma et al. 2016, *Improved Variational
Inference with Inverse Autoregressive Flow*, arXiv:1606.04934; Durkan, Bekasov, Murray,
Papamakarios 2019, *Neural Spline Flows*, arXiv:1906.04032.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from flowspec.kinds import masks
from flowspec.kinds.options import Choice, word
from flowspec.runtime.base import Bijection
from flowspec.runtime.nets import make_activation
from flowspec.runtime.spline import rational_quadratic_spline, spline_params

#: the log-scale of the affine MAF is α = B·tanh(h / B): |α| < B keeps every step's scale
#: in (e^−B, e^B), so neither direction can overflow, and α ≈ h for small h
LOG_SCALE_BOUND = 3.0


def order_degrees(order: Choice | str, d: int) -> list[int]:
    """MADE degree (1..d) of each feature: feature ``o[k]`` is the k-th of the order.

    ``natural``: 0, 1, …, d−1; ``reverse``: d−1, …, 0; ``random(seed)``:
    :func:`flowspec.kinds.masks.random_order`.
    """
    kind = word(order)
    if kind == "natural":
        seq = list(range(d))
    elif kind == "reverse":
        seq = list(range(d - 1, -1, -1))
    elif kind == "random":
        seed = order.get("seed", 0) if isinstance(order, Choice) else 0
        seq = masks.random_order(d, seed)
    else:
        raise ValueError(f"unknown order {kind}")
    degrees = [0] * d
    for k, i in enumerate(seq):
        degrees[i] = k + 1
    return degrees


class MaskedLinear(nn.Linear):
    """A linear layer whose weight is multiplied by a fixed 0/1 mask."""

    mask: Tensor

    def __init__(self, in_features: int, out_features: int, mask: Tensor) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """Masked autoencoder: output block i (``params`` units) depends on x_j only for
    features j before i in the order, and on every entry of ``cond``.

    Degrees: inputs carry their order position m(j) ∈ 1..d; hidden unit k of every layer
    gets 1 + (k mod max(d − 1, 1)); a hidden unit sees units of degree ≤ its own, an
    output of feature i sees hidden units of degree < m(i) (Germain et al. 2015).  The
    conditioning input feeds the first layer unmasked.  With ``init="zero"`` (the
    default) the last layer is zero-initialised, so every output starts at 0; with
    ``"random"`` it keeps PyTorch's default initialisation, as nflows' and zuko's do.
    """

    def __init__(
        self,
        degrees: list[int],
        params: int,
        hidden: list[int],
        act: Choice | str,
        cond_features: int = 0,
        init: Choice | str = "zero",
    ) -> None:
        super().__init__()
        d = len(degrees)
        self.features, self.params = d, params
        in_deg = torch.tensor(degrees)
        prev = in_deg
        layers: list[nn.Module] = []
        width_in = d + cond_features
        for i, h in enumerate(hidden):
            deg = torch.arange(h) % max(d - 1, 1) + 1
            mask = (deg[:, None] >= prev[None, :]).float()
            if i == 0:
                mask = torch.cat([mask, torch.ones(h, cond_features)], dim=1)
            layers += [MaskedLinear(width_in, h, mask), make_activation(act)]
            prev, width_in = deg, h
        out_deg = in_deg.repeat_interleave(params)  # output unit i·params + j is feature i's
        mask = (out_deg[:, None] > prev[None, :]).float()
        if not hidden:
            mask = torch.cat([mask, torch.ones(d * params, cond_features)], dim=1)
        last = MaskedLinear(width_in, d * params, mask)
        if (init.kind if isinstance(init, Choice) else init) == "zero":
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        layers.append(last)
        self.net = nn.Sequential(*layers)
        self.has_cond = cond_features > 0

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """``[B, d]`` (and ``[B, c]``) → ``[B, d, params]``."""
        if self.has_cond:
            if cond is None:
                raise ValueError("this autoregressive block was built with cond= and needs it")
            x = torch.cat([x, cond.reshape(cond.shape[0], -1)], dim=1)
        return self.net(x).reshape(x.shape[0], self.features, self.params)


class _Autoregressive(Bijection):
    """Shared structure: an elementwise map u ↦ τ(u; θ) with θ = MADE(u_<i) per feature.

    ``_pass(v, θ, inverse)`` applies τ or τ⁻¹ elementwise and returns the elementwise
    log|dτ|.  MAF direction (``iaf=false``): z = τ(x; θ(x)) in one pass; its inverse solves
    x = τ⁻¹(z; θ(x)) by d passes, pass k fixing the k-th feature of the order.  ``iaf=true``
    uses the same map the other way round: the normalizing direction is the sequential
    one and generation takes one pass.
    """

    params: int

    def __init__(
        self,
        in_shapes: list[tuple[int, ...]],
        hidden: list[int],
        act: Choice | str,
        order: Choice | str,
        iaf: bool,
        cond: tuple[int, ...] | None,
        params: int,
        init: Choice | str = "zero",
    ) -> None:
        super().__init__(in_shapes)
        (shape,) = self.in_shapes
        if len(shape) != 1:
            raise ValueError(f"autoregressive blocks need a [d] tensor, got {list(shape)}")
        d = shape[0]
        cond_features = 0
        if cond is not None:
            cond_features = 1
            for n in cond:
                cond_features *= n
        self.features = d
        self.iaf = bool(iaf)
        self.made = MADE(order_degrees(order, d), params, list(hidden), act, cond_features, init)

    def _pass(self, v: Tensor, theta: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _one_pass(self, u: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        """τ(u; θ(u)) and Σ log|dτ|."""
        out, ladj = self._pass(u, self.made(u, cond), inverse=False)
        return out, ladj.sum(-1)

    def _sequential(self, v: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        """u with τ(u; θ(u)) = v, by d passes, and Σ log|dτ⁻¹| at that u."""
        u = v
        ladj = v.new_zeros(v.shape)
        for _ in range(self.features):
            # θ of the pass that fixes the k-th feature reads only the k − 1 fixed ones,
            # so the last pass's θ, and its ladj, are those of the final u
            u, ladj = self._pass(v, self.made(u, cond), inverse=True)
        return u, ladj.sum(-1)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._sequential(x, cond) if self.iaf else self._one_pass(x, cond)

    def inverse(self, z: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self._one_pass(z, cond) if self.iaf else self._sequential(z, cond)

    def extra_repr(self) -> str:
        return f"in_shapes={self.in_shapes}, iaf={self.iaf}"


class AutoregressiveAffine(_Autoregressive):
    """Masked autoregressive affine flow (MAF; IAF with ``iaf=true``).

    Math (``iaf=false``, data x → latent z, one pass):
    z_i = x_i·exp(s_i(x_<i)) + b_i(x_<i), ladj = Σ_i s_i; inverse (d sequential passes)
    x_i = (z_i − b_i(x_<i))·exp(−s_i(x_<i)).  With ``iaf=true`` the block is the inverse
    of that map: z_i = (x_i − b_i(z_<i))·exp(−s_i(z_<i)) (sequential), ladj = −Σ s_i, and
    x = z·exp(s(z)) + b(z) in one pass.  "x_<i" is "earlier in ``order``".  Scaling
    before shifting (as zuko does) rather than Papamakarios et al.'s (x − μ)·exp(−α)
    is the same family of maps, b = −μ·exp(−α), but trains better: the shift's
    gradient is not rescaled by exp(−α) (benchmarks/bench_maf_seeds.py).  The
    log-scale is soft-clamped, s = B·tanh(h/B) with B = ``LOG_SCALE_BOUND`` = 3, for
    stability; with ``init=zero`` (the default) the MADE's zero-initialised last layer
    makes the block start at the identity.  ``cond`` (any shape, flattened) feeds every
    first-layer hidden unit.

    References: Papamakarios, Pavlakou, Murray 2017, Masked Autoregressive Flow for
    Density Estimation, arXiv:1705.07057; Germain et al. 2015, MADE, arXiv:1502.03509;
    Kingma et al. 2016, Improved Variational Inference with Inverse Autoregressive Flow,
    arXiv:1606.04934.

    Args:
        in_shapes: ``[(d,)]``.
        hidden: MADE hidden widths.
        act: activation word.
        order: ``natural`` | ``reverse`` | ``random(seed)``.
        iaf: swap the one-pass and the sequential direction.
        cond: the conditioning tensor's shape, or None.
        init: ``zero`` (start as the identity) | ``random`` (PyTorch's default).
    """

    def __init__(
        self,
        in_shapes: list[tuple[int, ...]],
        hidden: list[int] | None = None,
        act: Choice | str = "relu",
        order: Choice | str = "natural",
        iaf: bool = False,
        cond: tuple[int, ...] | None = None,
        init: Choice | str = "zero",
        **options: Any,
    ) -> None:
        hidden = [64, 64] if hidden is None else hidden
        super().__init__(in_shapes, hidden, act, order, iaf, cond, params=2, init=init)

    def _pass(self, v: Tensor, theta: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        shift = theta[..., 0]
        log_scale = LOG_SCALE_BOUND * torch.tanh(theta[..., 1] * (1.0 / LOG_SCALE_BOUND))
        if inverse:
            return (v - shift) * torch.exp(-log_scale), -log_scale
        return v * torch.exp(log_scale) + shift, log_scale


class AutoregressiveSpline(_Autoregressive):
    """Autoregressive rational-quadratic spline flow (NSF-AR).

    Math (``iaf=false``): z_i = RQS(x_i; θ_i(x_<i)), a monotone rational-quadratic spline
    on [−bound, bound] (identity outside) with ``bins`` bins whose 3·bins − 1 parameters
    come from the MADE; ladj = Σ_i log RQS'(x_i); inverse: x_i = RQS⁻¹(z_i; θ_i(x_<i)) by
    d sequential passes.  ``iaf=true`` swaps the two directions as for
    :class:`AutoregressiveAffine`.  The zero-initialised MADE gives equal bins and unit
    derivatives: the identity.

    Reference: Durkan, Bekasov, Murray, Papamakarios 2019, Neural Spline Flows,
    arXiv:1906.04032.

    Args:
        in_shapes: ``[(d,)]``.
        hidden, act, order, iaf, cond, init: as for :class:`AutoregressiveAffine`.
        bins: number of spline bins.
        bound: half-width of the spline's interval.
    """

    def __init__(
        self,
        in_shapes: list[tuple[int, ...]],
        hidden: list[int] | None = None,
        act: Choice | str = "relu",
        bins: int = 8,
        bound: float = 3.0,
        order: Choice | str = "natural",
        iaf: bool = False,
        cond: tuple[int, ...] | None = None,
        init: Choice | str = "zero",
        **options: Any,
    ) -> None:
        hidden = [64, 64] if hidden is None else hidden
        params = spline_params(bins)
        super().__init__(in_shapes, hidden, act, order, iaf, cond, params=params, init=init)
        self.bins = int(bins)
        self.bound = float(bound)

    def _pass(self, v: Tensor, theta: Tensor, inverse: bool) -> tuple[Tensor, Tensor]:
        k = self.bins
        return rational_quadratic_spline(
            v, theta[..., :k], theta[..., k : 2 * k], theta[..., 2 * k :], self.bound, inverse
        )

    def extra_repr(self) -> str:
        return f"in_shapes={self.in_shapes}, bins={self.bins}, bound={self.bound}, iaf={self.iaf}"


__all__ = ["MADE", "AutoregressiveAffine", "AutoregressiveSpline", "MaskedLinear", "order_degrees"]
