"""A plain hand-written PyTorch Real NVP: the reference the compiled module is timed
against.  Same architecture and math as

    repeat 8 {
        x = coupling.affine(x, net=mlp(hidden=[128, 128], act=relu))   # softclamp scale
        x = reverse(x)
    }

written the way a careful user would: an nn.Sequential conditioner per coupling, a
ModuleList, and a Python loop over the layers.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

SOFTCLAMP = 2.0


class AffineCoupling(nn.Module):
    def __init__(self, d: int, hidden: list[int]) -> None:
        super().__init__()
        self.d_a = d // 2
        self.d_b = d - self.d_a
        layers: list[nn.Module] = []
        width = self.d_a
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        last = nn.Linear(width, 2 * self.d_b)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def _log_scale_shift(self, x_a: Tensor) -> tuple[Tensor, Tensor]:
        h = self.net(x_a).view(-1, 2, self.d_b)
        return SOFTCLAMP * torch.tanh(h[:, 0] / SOFTCLAMP), h[:, 1]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x_a, x_b = x[:, : self.d_a], x[:, self.d_a :]
        log_s, t = self._log_scale_shift(x_a)
        return torch.cat([x_a, x_b * log_s.exp() + t], dim=1), log_s.sum(dim=1)

    def inverse(self, y: Tensor) -> Tensor:
        y_a, y_b = y[:, : self.d_a], y[:, self.d_a :]
        log_s, t = self._log_scale_shift(y_a)
        return torch.cat([y_a, (y_b - t) * torch.exp(-log_s)], dim=1)


class RealNVP(nn.Module):
    def __init__(self, d: int = 16, couplings: int = 8, hidden: list[int] | None = None):
        super().__init__()
        self.d = d
        self.layers = nn.ModuleList(
            AffineCoupling(d, hidden or [128, 128]) for _ in range(couplings)
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        ladj = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, l = layer(x)
            ladj = ladj + l
            x = x.flip(1)
        return x, ladj

    def inverse(self, z: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z.flip(1))
        return z

    def log_prob(self, x: Tensor) -> Tensor:
        z, ladj = self(x)
        return -0.5 * (z * z).sum(1) - 0.5 * self.d * math.log(2 * math.pi) + ladj

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        return self.inverse(torch.randn(n, self.d))
