"""Normalisation layers as bijections: activation normalisation and batch normalisation.

Both act per feature (per entry of axis 0), broadcasting over any further axes (H, W),
so a ``[C, H, W]`` input has C scales, each applied at H·W positions.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from flowspec.runtime.base import Bijection
from flowspec.runtime.validate import BlockError


def _feature_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The parameter shape that broadcasts one value per feature over the other axes."""
    return (shape[0],) + (1,) * (len(shape) - 1)


class ActNorm(Bijection):
    """Per-feature scale and shift with data-dependent initialisation.

    ``y = (x − μ)·exp(s)``, per feature, broadcast over the other axes;
    ladj = (H·W)·Σ_c s_c (the product of the non-feature axes, 1 for ``[d]``);
    inverse ``x = y·exp(−s) + μ``.  On the first forward call in training mode, μ and s
    are set from that batch so that its output has zero mean and unit variance per
    feature.  Whether that has happened is the persistent buffer ``initialized``, so a
    loaded ``state_dict`` of a trained model is not re-initialised.
    Kingma, Dhariwal 2018, Glow: Generative Flow with Invertible 1x1 Convolutions,
    arXiv:1807.03039.

    Args:
        in_shapes: ``[shape]``; ``shape[0]`` features.
    """

    initialized: Tensor

    #: added to the standard deviation at initialisation: a constant feature gets a
    #: large but finite scale
    eps = 1e-6

    def __init__(self, in_shapes: list[tuple[int, ...]]) -> None:
        super().__init__(in_shapes)
        shape = self.in_shapes[0]
        self.loc = nn.Parameter(torch.zeros(_feature_shape(shape)))
        self.log_scale = nn.Parameter(torch.zeros(_feature_shape(shape)))
        self.register_buffer("initialized", torch.tensor(False))
        self.positions = math.prod(shape[1:])
        self.reduce_dims = (0, *range(2, len(shape) + 1))
        # mirrors ``initialized`` once read, so forward does not sync with the device
        # to read a buffer on every call
        self._known_initialized = False

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._known_initialized = False

    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        if x.is_meta:  # shapes only (`on meta`): there is no data to initialise from
            return
        if not bool(self.initialized):
            mean = x.mean(self.reduce_dims, keepdim=True)[0]
            std = x.std(self.reduce_dims, correction=0, keepdim=True)[0]
            self.loc.copy_(mean)
            self.log_scale.copy_(-torch.log(std + self.eps))
            self.initialized.fill_(True)
        self._known_initialized = True

    def _ladj(self, x: Tensor) -> Tensor:
        return (self.log_scale.sum() * self.positions).expand(x.shape[0]).clone()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not self._known_initialized:
            self._initialize(x)
        return (x - self.loc) * self.log_scale.exp(), self._ladj(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return y * torch.exp(-self.log_scale) + self.loc, -self._ladj(y)

    def transform(self, x: Tensor) -> Tensor:
        if self.training and not self._known_initialized:
            self._initialize(x)
        return (x - self.loc) * self.log_scale.exp()

    def inverse_transform(self, y: Tensor) -> Tensor:
        return y * torch.exp(-self.log_scale) + self.loc


class BatchNorm(Bijection):
    """Batch normalisation as a bijection, with a learned log-scale and shift.

    ``y = (x − m)/√(v + ε)·exp(γ) + β`` per feature, with ladj =
    (H·W)·Σ_c [γ_c − ½·log(v_c + ε)].  In training mode m and v are the batch's mean and
    (biased) variance over the batch and the non-feature axes, and the running
    statistics are updated (``r ← (1 − momentum)·r + momentum·batch``, unbiased variance);
    the ladj treats the batch statistics as constants, as Real NVP does.  In eval mode m
    and v are the running statistics, so the block is an ordinary per-sample bijection.

    The inverse ``x = (y − β)·exp(−γ)·√(v + ε) + m`` always uses the running statistics,
    in training mode too (the batch statistics of the unknown x cannot be recovered from
    y): it is the exact inverse of the eval-mode forward, and it never updates the
    running statistics.
    Dinh, Sohl-Dickstein, Bengio 2017, Density estimation using Real NVP, arXiv:1605.08803.

    Args:
        in_shapes: ``[shape]``; ``shape[0]`` features.
        momentum: weight of the batch in the running statistics' update.
        eps: added to the variance.
    """

    running_mean: Tensor
    running_var: Tensor

    def __init__(
        self, in_shapes: list[tuple[int, ...]], momentum: float = 0.1, eps: float = 1e-5
    ) -> None:
        super().__init__(in_shapes)
        shape = self.in_shapes[0]
        self.momentum = momentum
        self.eps = eps
        self.log_gamma = nn.Parameter(torch.zeros(_feature_shape(shape)))
        self.beta = nn.Parameter(torch.zeros(_feature_shape(shape)))
        self.register_buffer("running_mean", torch.zeros(_feature_shape(shape)))
        self.register_buffer("running_var", torch.ones(_feature_shape(shape)))
        self.positions = math.prod(shape[1:])
        self.reduce_dims = (0, *range(2, len(shape) + 1))

    def _statistics(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.training:
            return self.running_mean, self.running_var
        if x.numel() == x.shape[1]:
            raise BlockError(
                self,
                f"batchnorm in training mode estimates each feature's mean and variance "
                f"from the batch, and a batch of {x.shape[0]} has one value per feature "
                "(variance 0, so the log-det is meaningless); train on batches of 2 or "
                "more, or call flow.eval() to use the running statistics",
            )
        mean = x.mean(self.reduce_dims, keepdim=True)[0]
        var = x.var(self.reduce_dims, correction=0, keepdim=True)[0]
        with torch.no_grad():
            n = x.numel() // x.shape[1]
            unbiased = var * (n / (n - 1)) if n > 1 else var
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(unbiased.detach(), self.momentum)
        return mean, var

    def _log_scale(self, var: Tensor) -> Tensor:
        return self.log_gamma - 0.5 * torch.log(var + self.eps)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, var = self._statistics(x)
        log_scale = self._log_scale(var)
        ladj = (log_scale.sum() * self.positions).expand(x.shape[0]).clone()
        return (x - mean) * log_scale.exp() + self.beta, ladj

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        log_scale = self._log_scale(self.running_var)
        ladj = (log_scale.sum() * -self.positions).expand(y.shape[0]).clone()
        return (y - self.beta) * torch.exp(-log_scale) + self.running_mean, ladj

    def transform(self, x: Tensor) -> Tensor:
        mean, var = self._statistics(x)
        return (x - mean) * self._log_scale(var).exp() + self.beta

    def inverse_transform(self, y: Tensor) -> Tensor:
        log_scale = self._log_scale(self.running_var)
        return (y - self.beta) * torch.exp(-log_scale) + self.running_mean

    def extra_repr(self) -> str:
        return f"in_shapes={self.in_shapes}, momentum={self.momentum}, eps={self.eps}"


__all__ = ["ActNorm", "BatchNorm"]
