"""Elementwise bijections: learned affine, leaky ReLU, logit and sigmoid.

Each maps every entry on its own, so the Jacobian is diagonal and
ladj = Σ_i log|f'(x_i)| over all entries of the per-sample tensor.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.functional import softplus

from flowspec.runtime.base import Bijection, sum_except_batch
from flowspec.runtime.validate import check_interval, domain_checks_on


class Affine(Bijection):
    """A learned elementwise scale and shift: ``y = x·exp(s) + t``.

    s and t have the full per-sample shape and start at 0 (the identity).
    ladj = Σ s; inverse ``x = (y − t)·exp(−s)``.

    Args:
        in_shapes: ``[shape]``; s and t have this shape.
    """

    def __init__(self, in_shapes: list[tuple[int, ...]]) -> None:
        super().__init__(in_shapes)
        self.log_scale = nn.Parameter(torch.zeros(self.in_shapes[0]))
        self.shift = nn.Parameter(torch.zeros(self.in_shapes[0]))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.transform(x), self.log_scale.sum().expand(x.shape[0]).clone()

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self.inverse_transform(y), (-self.log_scale.sum()).expand(y.shape[0]).clone()

    def transform(self, x: Tensor) -> Tensor:
        return torch.addcmul(self.shift, x, self.log_scale.exp())

    def inverse_transform(self, y: Tensor) -> Tensor:
        return (y - self.shift) * torch.exp(-self.log_scale)


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


__all__ = ["Affine", "LeakyReLU", "Logit", "Sigmoid"]
