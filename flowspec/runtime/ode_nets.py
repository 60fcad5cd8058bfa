"""The dynamics nets f(x, t) of ``ode`` blocks: how f reads the time, and the net whose
Lipschitz constant in x is certified.

``time=concat`` appends t to the input (one feature, or one channel for conv and resnet);
``time=fourier(features=K)`` appends cos(kπt), sin(kπt) for k = 1 … K, as zuko's CNF
does; both then call a net of :func:`flowspec.runtime.nets.build_net` on the wider
input.  ``time=concatsquash`` (FFJORD's ConcatSquashLinear, Grathwohl et al. 2019,
arXiv:1810.01367) gates every linear layer: h ↦ (W·h + b)·σ(W_g·t + b_g) + W_b·t.

With ``lipschitz=L`` every x-weight of the mlp is a
:class:`~flowspec.runtime.lipschitz_layers.SpectralLinear` with certified σ_max ≤ c,
c = (L / Lip(a)^m)^(1/n) for n layers and m activations, so Lip_x f(·, t) ≤ c^n·Lip(a)^m
≤ L for every t: the time enters the first layer through weights of its own (which move
f, not its slope in x), and a ConcatSquash gate σ(·) ∈ (0, 1) scales a layer's rows by
less than 1 while its shift does not depend on x.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import cast

import torch
from torch import Tensor, nn

from flowspec.kinds.options import Choice, word
from flowspec.runtime.lipschitz_layers import SVD_MARGIN, SpectralLinear, activation_lipschitz
from flowspec.runtime.lipschitz_layers import sigma_max as _sigma_max
from flowspec.runtime.nets import make_activation

#: the layers' share of L is rounded down by this much, so c^n·Lip(a)^m ≤ L in floats too
_SHARE_MARGIN = 1e-12


class ConcatTime(nn.Module):
    """t as one feature: e(t) = [t]."""

    features = 1

    def forward(self, t: Tensor) -> Tensor:
        return t.reshape(1)


class FourierTime(nn.Module):
    """Fourier features of t: e(t) = [cos(πt), …, cos(Kπt), sin(πt), …, sin(Kπt)]
    (the frequencies of zuko's ``FFJTransform``)."""

    freqs: Tensor  # a buffer: kπ for k = 1 … K

    def __init__(self, frequencies: int) -> None:
        super().__init__()
        self.features = 2 * int(frequencies)
        freqs = torch.arange(1, int(frequencies) + 1, dtype=torch.get_default_dtype()) * math.pi
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        angle = self.freqs * t.to(self.freqs.dtype)
        return torch.cat([angle.cos(), angle.sin()])


def time_embedding(time: Choice | str) -> ConcatTime | FourierTime:
    """The embedding of ``time=concat`` or ``time=fourier(features=K)``."""
    if word(time) == "fourier":
        assert isinstance(time, Choice)
        return FourierTime(int(time.get("features", 3)))
    return ConcatTime()


class DynamicsMLP(nn.Module):
    """f(x, t) = W_n·a(…a(W_1·x + U·e(t) + b_1)…) + b_n, or with every layer ConcatSquash-
    gated; the W_i certified (``lipschitz``) or plain ``nn.Linear``.

    Math: ∂f/∂x = W_n·D_{n−1}·…·D_1·W_1 with D_i diagonal, |D_i| ≤ Lip(a) (times the gates
    σ(·) < 1 under concatsquash), so ‖∂f/∂x‖₂ ≤ ∏ σ_max(W_i)·Lip(a)^m: a bound in x alone
    (U, the time columns, and the gates' and shifts' weights do not enter it).

    Args:
        features: d, the size of x (flat [B, d]).
        hidden: widths of the hidden layers.
        act: activation word.
        init: ``zero`` (last layer and its shift zero: f ≡ 0 at the start) or ``default``.
        time: ``concat`` | ``fourier(features=K)`` | ``concatsquash``.
        lipschitz: L, or ``None`` for plain layers.
    """

    def __init__(
        self,
        features: int,
        hidden: list[int],
        act: Choice | str,
        init: Choice | str,
        time: Choice | str,
        lipschitz: float | None = None,
        power_iters: int = 5,
    ) -> None:
        super().__init__()
        widths = [features, *hidden, features]
        n = len(widths) - 1
        zero = word(init) == "zero"
        self.act_lipschitz = activation_lipschitz(act)
        self.lipschitz = None if lipschitz is None else float(lipschitz)
        layers: list[nn.Module] = []
        for i in range(n):
            last = i == n - 1
            if self.lipschitz is not None:
                share = (self.lipschitz / self.act_lipschitz ** len(hidden)) ** (1.0 / n)
                c = share * (1.0 - _SHARE_MARGIN)
                layers.append(
                    SpectralLinear(widths[i], widths[i + 1], c, power_iters, zero=zero and last)
                )
            else:
                layer = nn.Linear(widths[i], widths[i + 1])
                if zero and last:
                    nn.init.zeros_(layer.weight)
                    nn.init.zeros_(layer.bias)
                layers.append(layer)
        self.layers = nn.ModuleList(layers)
        self.acts = nn.ModuleList(make_activation(act) for _ in hidden)
        self.squash = word(time) == "concatsquash"
        if self.squash:
            self.gates = nn.ModuleList(nn.Linear(1, w) for w in widths[1:])
            shifts = [nn.Linear(1, w, bias=False) for w in widths[1:]]
            if zero:
                nn.init.zeros_(shifts[-1].weight)
            self.shifts = nn.ModuleList(shifts)
        else:
            self.embed = time_embedding(time)
            self.time = nn.Linear(self.embed.features, widths[1], bias=False)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        tt = t.to(x.dtype).reshape(1, 1)
        h = x
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if self.squash:
                h = h * torch.sigmoid(self.gates[i](tt)) + self.shifts[i](tt)
            elif i == 0:
                h = h + self.time(self.embed(t).to(x.dtype))
            if i < len(self.acts):
                h = self.acts[i](h)
        return h

    def certify(self) -> None:
        """Bring every certified layer's σ̂ up to date with its weight (an SVD and power
        iteration when the weight changed): done once per solve, outside the functional
        transforms of the exact trace, which refuse the power iteration's in-place update."""
        for layer in self.layers:
            if isinstance(layer, SpectralLinear):
                layer.sigma_hat()

    def x_weights(self) -> list[Tensor]:
        """The weights acting on x as used in forward (certified ones normalised)."""
        # nn.ModuleList yields nn.Module; __init__ fills it with these two kinds only
        layers = cast("Iterable[SpectralLinear | nn.Linear]", self.layers)
        return [
            layer.normalized_weight() if isinstance(layer, SpectralLinear) else layer.weight
            for layer in layers
        ]

    def lipschitz_bound(self) -> float:
        """A proven bound of sup_t Lip_x f(·, t) for the current weights: ∏ σ_max(W_i) by
        float64 SVDs of the weights used, times (1 + 1e-12) each, times Lip(a)^m."""
        with torch.no_grad():
            bound = 1.0
            for w in self.x_weights():
                bound *= _sigma_max(w) * (1.0 + SVD_MARGIN)
        return bound * self.act_lipschitz ** len(self.acts)


__all__ = ["ConcatTime", "DynamicsMLP", "FourierTime", "time_embedding"]
