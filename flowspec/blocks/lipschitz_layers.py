"""Linear layers with a *certified* spectral-norm bound, and the Lipschitz MLP of ``residual``.

The residual block y = x + g(x) is invertible only if Lip(g) < 1, so the bound on every
linear map of g must hold for the weights actually used in ``forward``, not just for an
estimate of them.  Power iteration alone cannot give that: it converges to σ_max from
*below* (uᵀWv ≤ σ_max for unit u, v), so a layer scaled by c/σ_power can exceed c.

What :class:`SpectralLinear` guarantees
---------------------------------------
With W the raw weight, c = ``lipschitz`` and r = min(out, in):

1. σ̂(W) = σ₁(W)·m, where σ₁ is computed by a float64 SVD of W and the margin
   m = 1 + 1e-12 + (8 + √r)·ε covers (a) the float64 SVD's error, at most
   p(n)·2⁻⁵³·σ₁ with p(n) a modest polynomial (≤ 1e-12·σ₁ for any p(n) ≤ 9000), and
   (b) the rounding, in W's dtype with machine epsilon ε, of the scale s = c/σ̂ (computed
   in float64, then rounded once to W's dtype) and of the product fl(s·W) = s·W + E with
   |E_ij| ≤ (ε/2)·|s·W_ij|, so
   ‖E‖₂ ≤ ‖E‖_F ≤ (ε/2)·s·‖W‖_F ≤ (ε/2)·s·√r·σ₁(W).
2. The weight used is W̃ = W if σ̂ ≤ c, else fl(fl(c/σ̂)·W).  By 1., σ_max(W̃) ≤ c
   *exactly* (as a real matrix made of the floating-point numbers used in the matmul).
3. σ̂ is recomputed whenever W's values differ from the values it was certified for
   (an exact element-wise comparison against a stored copy, so in-place edits through
   ``.data`` or ``load_state_dict`` cannot leave a stale certificate).

Gradients do not go through the SVD: the value of σ used is σ̂, but its gradient is that
of the power-iteration estimate uᵀWv, added as a term that is exactly zero in value
(u, v are warm-started buffers, ``power_iters`` steps per weight update, as in Miyato
et al. 2018, arXiv:1802.05957; the gradient tends to u₁v₁ᵀ = ∂σ_max/∂W).  The *value*,
and so the guarantee, never depends on u and v.

:class:`LipschitzMLP` composes such layers with activations; with activations of
Lipschitz constant ≤ 1, Lip(g) ≤ ∏ σ_max(W̃_i) ≤ c^L ≤ c.  Its :meth:`lipschitz_bound`
recomputes that product from the weights in use (SVD in float64) as an independent check.

References: Behrmann, Grathwohl, Chen, Duvenaud, Jacobsen 2019, Invertible Residual
Networks, arXiv:1811.00995; Chen, Behrmann, Duvenaud, Jacobsen 2019, Residual Flows for
Invertible Generative Modeling, arXiv:1906.02735.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from flowspec.blocks.registry import ACTIVATIONS
from flowspec.blocks.types import Choice
from flowspec.nets import make_activation

#: relative slack covering the float64 SVD's error on σ₁
SVD_MARGIN = 1e-12


def sigma_max(weight: Tensor) -> float:
    """σ₁ of a matrix by a float64 SVD (the exact value up to ~1e-15 relative)."""
    if weight.numel() == 0:
        return 0.0
    w = weight.detach()
    if w.device.type == "mps":  # no float64 there
        w = w.cpu()
    return float(torch.linalg.matrix_norm(w.double(), ord=2))


def certified_sigma(weight: Tensor) -> float:
    """An upper bound of σ_max(weight) that stays valid after forming ``s·weight`` in
    ``weight``'s dtype (see the module docstring, item 1)."""
    r = min(weight.shape)
    eps = torch.finfo(weight.dtype).eps
    return sigma_max(weight) * (1.0 + SVD_MARGIN + (8.0 + math.sqrt(r)) * eps)


class SpectralLinear(nn.Module):
    """A linear map y = W̃x + b whose weight W̃ has a certified σ_max(W̃) ≤ c.

    Math: W̃ = W·min(1, c/σ̂(W)) with σ̂(W) ≥ σ_max(W) from a float64 SVD plus a rounding
    margin (module docstring); the gradient of σ̂ is that of the power-iteration estimate.

    Reference: Behrmann et al. 2019, Invertible Residual Networks, arXiv:1811.00995.

    Args:
        in_features, out_features: sizes of x and y.
        lipschitz: c, the bound on σ_max(W̃).
        power_iters: power-iteration steps per weight update (gradient only).
        zero: zero-initialise W and b (the last layer of a net that starts at 0).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        lipschitz: float,
        power_iters: int = 5,
        zero: bool = False,
    ) -> None:
        super().__init__()
        self.lipschitz = float(lipschitz)
        self.power_iters = int(power_iters)
        layer = nn.Linear(in_features, out_features)  # PyTorch's default initialisation
        self.weight = nn.Parameter(layer.weight.detach().clone())
        self.bias = nn.Parameter(layer.bias.detach().clone())
        if zero:
            nn.init.zeros_(self.weight)
            nn.init.zeros_(self.bias)
        self.register_buffer("u", F.normalize(torch.randn(out_features), dim=0))
        self.register_buffer("v", F.normalize(torch.randn(in_features), dim=0))
        self._certified_for: Tensor | None = None  # the W that σ̂ was computed for
        self._sigma_hat = 0.0

    def _apply(self, fn, recurse=True):  # .to(), .double(), ...: the certificate is stale
        self._certified_for = None
        return super()._apply(fn, recurse)

    def sigma_hat(self) -> float:
        """σ̂(W), the certified upper bound of σ_max of the raw weight (cached per value)."""
        w = self.weight.detach()
        cached = self._certified_for
        if (
            cached is None
            or cached.dtype != w.dtype
            or cached.device != w.device
            or not torch.equal(cached, w)
        ):
            self._sigma_hat = certified_sigma(w)
            self._certified_for = w.clone()
            if self.power_iters > 0 and self.weight.requires_grad:
                self._power_iteration(w)
        return self._sigma_hat

    @torch.no_grad()
    def _power_iteration(self, w: Tensor) -> None:
        u, v = self.u, self.v
        for _ in range(self.power_iters):
            wv = w @ v
            n = wv.norm()
            if n == 0:  # W v = 0 (e.g. W = 0): keep the old vectors rather than divide by 0
                return
            u = wv / n
            wu = w.t() @ u
            v = wu / wu.norm().clamp_min(torch.finfo(w.dtype).tiny)
        self.u.copy_(u)
        self.v.copy_(v)

    def normalized_weight(self) -> Tensor:
        """W̃, the weight used in forward, with σ_max(W̃) ≤ c certified."""
        sigma = self.sigma_hat()
        w = self.weight
        if sigma <= self.lipschitz:
            return w
        scaled = w * (self.lipschitz / sigma)
        if torch.is_grad_enabled() and w.requires_grad:
            # d(c·W/σ) = (c/σ)·dW − (c·W/σ²)·dσ with dσ from uᵀWv; the added term is
            # exactly zero in value (est − est.detach() == 0), so W̃ stays the certified one
            est = torch.dot(self.u, torch.mv(w, self.v))
            scaled = scaled - scaled * ((est - est.detach()) / sigma)
        return scaled

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)

    def extra_repr(self) -> str:
        out, inp = self.weight.shape
        return f"in_features={inp}, out_features={out}, lipschitz={self.lipschitz}"


def activation_lipschitz(act: Choice | str) -> float:
    """The Lipschitz constant of an activation word (the registry's table)."""
    name = act.kind if isinstance(act, Choice) else act
    return ACTIVATIONS[name][0]


class LipschitzMLP(nn.Module):
    """g(x) = W̃_L·a(…a(W̃_1 x + b_1)…) + b_L with each σ_max(W̃_i) ≤ c certified.

    Math: Lip(g) ≤ ∏ σ_max(W̃_i) · ∏ Lip(a) ≤ c^L when Lip(a) ≤ 1.

    Reference: Chen et al. 2019, Residual Flows, arXiv:1906.02735.

    Callers that evaluate g many times with fixed weights (a fixed-point inverse, a
    power series of vector-Jacobian products) take ``weights()`` once and pass them to
    ``forward``, so the normalisation is not redone per evaluation.

    Args:
        features: size of x and g(x) (a flat [B, d] input).
        hidden: widths of the hidden layers.
        act: activation word.
        lipschitz: c.
        power_iters: power-iteration steps per weight update.
        zero_last: zero-initialise the last layer (g ≡ 0 at the start).
    """

    def __init__(
        self,
        features: int,
        hidden: list[int],
        act: Choice | str,
        lipschitz: float,
        power_iters: int = 5,
        zero_last: bool = True,
    ) -> None:
        super().__init__()
        widths = [features, *hidden, features]
        self.layers = nn.ModuleList(
            SpectralLinear(
                widths[i],
                widths[i + 1],
                lipschitz,
                power_iters,
                zero=zero_last and i == len(widths) - 2,
            )
            for i in range(len(widths) - 1)
        )
        self.acts = nn.ModuleList(make_activation(act) for _ in hidden)
        self.act_lipschitz = activation_lipschitz(act)

    def weights(self) -> list[Tensor]:
        return [layer.normalized_weight() for layer in self.layers]

    def forward(self, x: Tensor, weights: list[Tensor] | None = None) -> Tensor:
        if weights is None:
            weights = self.weights()
        h = x
        for i, layer in enumerate(self.layers):
            h = F.linear(h, weights[i], layer.bias)
            if i < len(self.acts):
                h = self.acts[i](h)
        return h

    def lipschitz_bound(self) -> float:
        """A proven upper bound of Lip(g) for the current weights: ∏ σ_max(W̃_i)·∏ Lip(a),
        each σ_max by a float64 SVD of the weight actually used, times (1 + 1e-12)."""
        with torch.no_grad():
            bound = 1.0
            for w in self.weights():
                bound *= sigma_max(w) * (1.0 + SVD_MARGIN)
        return bound * self.act_lipschitz ** len(self.acts)

    def layer_bound(self) -> float:
        """∏ min(c, σ̂(W_i))·∏ Lip(a), from the cached certificates (no new SVD)."""
        bound = 1.0
        for layer in self.layers:
            bound *= min(layer.lipschitz, layer.sigma_hat())
        return bound * self.act_lipschitz ** len(self.acts)


__all__ = [
    "LipschitzMLP",
    "SpectralLinear",
    "activation_lipschitz",
    "certified_sigma",
    "sigma_max",
]
