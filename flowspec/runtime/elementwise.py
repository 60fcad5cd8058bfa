"""Elementwise bijections: learned affine, learned scale, Glow's learned prior
(``gaussianize``), leaky ReLU, logit and sigmoid.

Each maps every entry on its own, so the Jacobian is diagonal and
ladj = Σ_i log|f'(x_i)| over all entries of the per-sample tensor.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.functional import softplus

from flowspec.kinds.options import Choice
from flowspec.runtime.base import Bijection, sum_except_batch
from flowspec.runtime.nets import build_net
from flowspec.runtime.validate import check_interval, domain_checks_on


def _per_sample(total: Tensor, n: int) -> Tensor:
    """A 0-d log-det ``total`` (the same for every sample) as a batch of ``n``."""
    return total.expand(n).clone()


class _LearnedScale(Bijection):
    """Shared by :class:`Affine` and :class:`Scale`: a learned log-scale s of the full
    per-sample shape, starting at 0, so ladj = Σ s for every sample (−Σ s inverse).
    Subclasses implement ``transform`` and ``inverse_transform``."""

    def __init__(self, in_shapes: list[tuple[int, ...]]) -> None:
        super().__init__(in_shapes)
        self.log_scale = nn.Parameter(torch.zeros(self.in_shapes[0]))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.transform(x), _per_sample(self.log_scale.sum(), x.shape[0])

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.inverse_transform(y), _per_sample(-self.log_scale.sum(), y.shape[0])


class Affine(_LearnedScale):
    """A learned elementwise scale and shift: ``y = x·exp(s) + t``.

    s and t have the full per-sample shape and start at 0 (the identity).
    ladj = Σ s; inverse ``x = (y − t)·exp(−s)``.

    Args:
        in_shapes: ``[shape]``; s and t have this shape.
    """

    def __init__(self, in_shapes: list[tuple[int, ...]]) -> None:
        super().__init__(in_shapes)
        self.shift = nn.Parameter(torch.zeros(self.in_shapes[0]))

    def transform(self, x: Tensor) -> Tensor:
        return torch.addcmul(self.shift, x, self.log_scale.exp())

    def inverse_transform(self, y: Tensor) -> Tensor:
        return (y - self.shift) * torch.exp(-self.log_scale)


class Scale(_LearnedScale):
    """A learned elementwise scale, NICE's diagonal scaling layer: ``z = x·exp(s)``.

    s is a per-feature log-scale of the full per-sample shape, starting at 0 (the
    identity).  ladj = Σ s; inverse ``x = z·exp(−s)``.  Dinh, Krueger, Bengio 2015,
    NICE: Non-linear Independent Components Estimation, arXiv:1410.8516 (its top layer
    multiplies output i by S_ii; here S_ii = exp(s_i), so it stays invertible).

    Args:
        in_shapes: ``[shape]``; s has this shape.
    """

    def transform(self, x: Tensor) -> Tensor:
        return x * self.log_scale.exp()

    def inverse_transform(self, y: Tensor) -> Tensor:
        return y * torch.exp(-self.log_scale)


class Gaussianize(Bijection):
    """Glow's learned prior as a map onto the standard normal:
    ``z' = (z − μ)·exp(−log σ)``.

    Without ``cond``, μ and log σ are per-feature parameters of the full per-sample
    shape (Glow's learned top prior).  With ``cond=h``, ``(μ, log σ) = net(h)``: a
    ``mlp`` reads h flattened, a ``conv``/``resnet`` reads h as [C', H, W] and gives
    2·C channels, channel p·C + c being parameter p (μ, then log σ) of channel c, as
    in the couplings.  Everything starts at 0 (the net's last layer is zero), so the
    block starts at the identity and z ~ N(μ, σ²) exactly when z' ~ N(0, 1).
    ladj = −Σ log σ; inverse ``z = z'·exp(log σ) + μ``.

    Reference: Kingma, Dhariwal 2018, Glow: Generative Flow with Invertible 1x1
    Convolutions, arXiv:1807.03039 (the split prior, a zero-initialised convolution of
    the half kept, and the learned top prior).

    Args:
        in_shapes: ``[shape]`` of z.
        net: the net of ``cond`` (``Choice('conv', ...)``, ``mlp``, ``resnet``), or None.
        cond: the shape of h, or None.
    """

    def __init__(
        self,
        in_shapes: list[tuple[int, ...]],
        *,
        net: Choice | None = None,
        cond: tuple[int, ...] | None = None,
        **options: object,
    ) -> None:
        super().__init__(in_shapes)
        shape = self.in_shapes[0]
        self.cond_shape = None if cond is None else tuple(cond)
        self.param_shape = (2, *shape)
        if cond is None:
            self.loc = nn.Parameter(torch.zeros(shape))
            self.log_scale = nn.Parameter(torch.zeros(shape))
            self.prior = None
        else:
            if net is None:
                raise ValueError("gaussianize with cond= needs a net")
            out: tuple[int, ...]
            if net.kind == "mlp":
                out = (2 * math.prod(shape),)
            else:
                out = (2 * shape[0], *shape[1:])
            self.prior = build_net(net, tuple(cond), out)

    def _loc_log_scale(self, n: int, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.prior is None:
            if cond is not None:
                raise ValueError("gaussianize was built without cond= but got one")
            return self.loc, self.log_scale
        if cond is None:
            raise ValueError("gaussianize was built with cond= but got none")
        h = self.prior(cond).reshape(n, *self.param_shape)
        return h[:, 0], h[:, 1]

    def _ladj(self, log_scale: Tensor, n: int) -> Tensor:
        if log_scale.dim() == len(self.in_shapes[0]):  # per-feature parameters
            return _per_sample(-log_scale.sum(), n)
        return -sum_except_batch(log_scale)

    def forward(self, z: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        loc, log_scale = self._loc_log_scale(z.shape[0], cond)
        return (z - loc) * torch.exp(-log_scale), self._ladj(log_scale, z.shape[0])

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        loc, log_scale = self._loc_log_scale(y.shape[0], cond)
        return torch.addcmul(loc, y, log_scale.exp()), -self._ladj(log_scale, y.shape[0])

    def transform(self, z: Tensor, cond: Tensor | None = None) -> Tensor:
        loc, log_scale = self._loc_log_scale(z.shape[0], cond)
        return (z - loc) * torch.exp(-log_scale)

    def inverse_transform(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        loc, log_scale = self._loc_log_scale(y.shape[0], cond)
        return torch.addcmul(loc, y, log_scale.exp())

    def extra_repr(self) -> str:
        cond = "" if self.cond_shape is None else f", cond={list(self.cond_shape)}"
        return f"{super().extra_repr()}{cond}"


class LeakyReLU(Bijection):
    """``y = x`` for x ≥ 0 and ``y = a·x`` for x < 0, with slope a > 0.

    ladj = log(a)·#{i : x_i < 0}; inverse ``x = y`` for y ≥ 0 and ``y/a`` otherwise.

    Args:
        in_shapes: ``[shape]``.
        slope: the slope a of the negative part (the checker rejects a ≤ 0, E302).
    """

    def __init__(self, in_shapes: list[tuple[int, ...]], slope: float = 0.01) -> None:
        super().__init__(in_shapes)
        self.slope = slope
        self.log_slope = math.log(slope)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        negative = x < 0
        ladj = sum_except_batch(negative.to(x.dtype)) * self.log_slope
        return torch.where(negative, x * self.slope, x), ladj

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        negative = y < 0
        ladj = sum_except_batch(negative.to(y.dtype)) * -self.log_slope
        return torch.where(negative, y / self.slope, y), ladj

    def transform(self, x: Tensor) -> Tensor:
        return torch.where(x < 0, x * self.slope, x)

    def inverse_transform(self, y: Tensor) -> Tensor:
        return torch.where(y < 0, y / self.slope, y)

    def extra_repr(self) -> str:
        return f"in_shapes={self.in_shapes}, slope={self.slope}"


class Logit(Bijection):
    """Map data in [0, 1] to the real line: ``y = logit(α + (1 − 2α)·x)``.

    With ``u = α + (1 − 2α)·x``: ladj = Σ [log(1 − 2α) − log u − log(1 − u)]; inverse
    ``x = (σ(y) − α)/(1 − 2α)``.  α > 0 keeps y finite at x = 0 and x = 1.
    Dinh, Sohl-Dickstein, Bengio 2017, Density estimation using Real NVP, arXiv:1605.08803.

    Args:
        in_shapes: ``[shape]``.
        alpha: α in [0, 0.5) (the checker rejects α ≥ 0.5, E302).
    """

    #: the data lives in the unit box (the test harness draws its inputs there)
    input_domain = (0.0, 1.0)

    def __init__(self, in_shapes: list[tuple[int, ...]], alpha: float = 0.05) -> None:
        super().__init__(in_shapes)
        self.alpha = alpha
        self.width = 1.0 - 2.0 * alpha
        self.log_width = math.log(self.width)

    def check_domain(self, x: Tensor) -> None:
        """Data in [0, 1] (in (0, 1) when α = 0: logit(0) is −∞)."""
        if domain_checks_on(self):
            check_interval(self, "logit", x, 0.0, 1.0, closed=self.alpha > 0)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self.check_domain(x)
        u = self.alpha + self.width * x
        log_u, log_1mu = torch.log(u), torch.log1p(-u)
        ladj = sum_except_batch(self.log_width - log_u - log_1mu)
        return log_u - log_1mu, ladj

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        # log σ'(y) = −softplus(−y) − softplus(y), finite for every y
        ladj = sum_except_batch(-softplus(-y) - softplus(y) - self.log_width)
        return self.inverse_transform(y), ladj

    def transform(self, x: Tensor) -> Tensor:
        self.check_domain(x)
        u = self.alpha + self.width * x
        return torch.log(u) - torch.log1p(-u)

    def inverse_transform(self, y: Tensor) -> Tensor:
        return (torch.sigmoid(y) - self.alpha) / self.width

    def extra_repr(self) -> str:
        return f"in_shapes={self.in_shapes}, alpha={self.alpha}"


class Sigmoid(Bijection):
    """The logistic sigmoid, ``y = σ(x) = 1/(1 + e^{−x})``, onto (0, 1).

    ladj = Σ log σ'(x) = −Σ [softplus(x) + softplus(−x)]; inverse
    ``x = logit(y) = log y − log(1 − y)`` with ladj Σ [−log y − log(1 − y)].

    Args:
        in_shapes: ``[shape]``.
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        ladj = -sum_except_batch(softplus(x) + softplus(-x))
        return torch.sigmoid(x), ladj

    def check_domain(self, y: Tensor) -> None:
        """The inverse, logit(y), needs y in (0, 1)."""
        if domain_checks_on(self):
            check_interval(self, "the inverse of sigmoid", y, 0.0, 1.0, closed=False)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        self.check_domain(y)
        log_y, log_1my = torch.log(y), torch.log1p(-y)
        return log_y - log_1my, -sum_except_batch(log_y + log_1my)

    def transform(self, x: Tensor) -> Tensor:
        return torch.sigmoid(x)

    def inverse_transform(self, y: Tensor) -> Tensor:
        self.check_domain(y)
        return torch.log(y) - torch.log1p(-y)


__all__ = ["Affine", "Gaussianize", "LeakyReLU", "Logit", "Scale", "Sigmoid"]
