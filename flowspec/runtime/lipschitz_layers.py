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
from collections.abc import Callable, Iterable
from typing import cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from flowspec.kinds import ACTIVATIONS
from flowspec.kinds.options import Choice
from flowspec.runtime.nets import make_activation

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


class _CertifiedLayer(nn.Module):
    """What the certified layers share: σ̂ (a proven bound of the raw weight's operator
    norm) cached per weight value, the weight used in forward scaled so its norm is ≤ c,
    and a term that is exactly zero in value giving that weight the gradient of spectral
    normalisation by a differentiable estimate of σ.  Subclasses say how σ̂ is certified
    (``certify``) and estimated (``sigma_estimate``)."""

    lipschitz: float
    weight: nn.Parameter
    bias: nn.Parameter

    def _reset_certificate(self) -> None:
        self._certified_for: Tensor | None = None  # the weight σ̂ was computed for
        self._sigma_hat = 0.0

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> _CertifiedLayer:
        # .to(), .double(), ...: the certificate is stale
        self._certified_for = None
        return super()._apply(fn, recurse)

    def certify(self, w: Tensor) -> float:
        raise NotImplementedError

    def after_certify(self, w: Tensor) -> None:
        """Called with each newly certified weight."""

    def sigma_estimate(self, w: Tensor) -> Tensor:
        raise NotImplementedError

    def sigma_hat(self) -> float:
        """σ̂, the certified upper bound of the raw weight's norm (cached per value)."""
        w = self.weight.detach()
        cached = self._certified_for
        if (
            cached is None
            or cached.dtype != w.dtype
            or cached.device != w.device
            or not torch.equal(cached, w)
        ):
            self._sigma_hat = self.certify(w)
            self._certified_for = w.clone()
            self.after_certify(w)
        return self._sigma_hat

    def certified_bound(self) -> float:
        """A proven bound of the norm of the weight used in forward: min(c, σ̂)."""
        return min(self.lipschitz, self.sigma_hat())

    def normalized_weight(self) -> Tensor:
        """The weight used in forward, its norm certified ≤ c."""
        sigma = self.sigma_hat()
        w = self.weight
        if sigma <= self.lipschitz:
            return w
        scaled = w * (self.lipschitz / sigma)
        if torch.is_grad_enabled() and w.requires_grad:
            # d(c·W/σ) = (c/σ)·dW − (c·W/σ²)·dσ with dσ from the estimate; the added term
            # is exactly zero in value (est − est.detach() == 0), so the weight stays the
            # certified one
            est = self.sigma_estimate(w)
            scaled = scaled - scaled * ((est - est.detach()) / sigma).to(w.dtype)
        return scaled


class SpectralLinear(_CertifiedLayer):
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

    #: power-iteration vectors (buffers): uᵀWv estimates σ_max for the gradient
    u: Tensor
    v: Tensor

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
        self._reset_certificate()

    def certify(self, w: Tensor) -> float:
        return certified_sigma(w)

    def after_certify(self, w: Tensor) -> None:
        if self.power_iters > 0 and self.weight.requires_grad:
            self._power_iteration(w)

    def sigma_estimate(self, w: Tensor) -> Tensor:
        return torch.dot(self.u, torch.mv(w, self.v))  # uᵀWv from power iteration

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

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)

    def extra_repr(self) -> str:
        out, inp = self.weight.shape
        return f"in_features={inp}, out_features={out}, lipschitz={self.lipschitz}"


def activation_lipschitz(act: Choice | str) -> float:
    """The Lipschitz constant of an activation word (the registry's table)."""
    name = act.kind if isinstance(act, Choice) else act
    return ACTIVATIONS[name][0]


class _LipschitzNet(nn.Module):
    """What the certified nets share: their layers' weights taken once, and the bound
    from the layers' cached certificates."""

    layers: nn.ModuleList
    acts: nn.ModuleList
    act_lipschitz: float

    def _certified_layers(self) -> Iterable[_CertifiedLayer]:
        # nn.ModuleList yields nn.Module; the subclasses fill it with certified layers only
        return cast("Iterable[_CertifiedLayer]", self.layers)

    def weights(self) -> list[Tensor]:
        return [layer.normalized_weight() for layer in self._certified_layers()]

    def layer_bound(self) -> float:
        """∏ min(c, σ̂_i)·∏ Lip(a), from the cached certificates (no new SVD)."""
        bound = 1.0
        for layer in self._certified_layers():
            bound *= layer.certified_bound()
        return bound * self.act_lipschitz ** len(self.acts)


class LipschitzMLP(_LipschitzNet):
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

    def _linear_layers(self) -> Iterable[SpectralLinear]:
        # nn.ModuleList yields nn.Module; __init__ fills it with SpectralLinear only
        return cast("Iterable[SpectralLinear]", self.layers)

    def forward(self, x: Tensor, weights: list[Tensor] | None = None) -> Tensor:
        if weights is None:
            weights = self.weights()
        h = x
        for i, layer in enumerate(self._linear_layers()):
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


# ---------------------------------------------------------------------- convolutions


def conv_padding(kernel: tuple[int, int]) -> tuple[int, int, int, int]:
    """Zero padding (left, right, top, bottom) that keeps H and W: symmetric for odd
    kernels, one more row/column after than before for even ones (as ``flowspec.runtime.nets``)."""
    kh, kw = kernel
    return ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2)


def conv_grid(spatial: tuple[int, int], kernel: tuple[int, int]) -> tuple[int, int]:
    """The circular grid whose convolution restricts to the zero-padded one on ``spatial``:
    (H + kh − 1, W + kw − 1); a 1×1 kernel acts per pixel, so any grid (1×1) is exact."""
    (h, w), (kh, kw) = spatial, kernel
    if kh == 1 and kw == 1:
        return (1, 1)
    return (h + kh - 1, w + kw - 1)


def _twiddles(n: int, taps: int, count: int, device: torch.device) -> Tensor:
    """exp(−2πi·f·a/n) for f < count, a < taps, in complex128; f·a is reduced mod n in
    integers first, so every angle is in [0, 2π) and its cos/sin err by a few ulps."""
    f = torch.arange(count, device=device).unsqueeze(1)
    a = torch.arange(taps, device=device).unsqueeze(0)
    angle = (-2.0 * math.pi / n) * ((f * a) % n).to(torch.float64)
    return torch.polar(torch.ones_like(angle), angle)


def kernel_spectrum(kernel: Tensor, grid: tuple[int, int]) -> Tensor:
    """K̂(f) for every frequency f of the grid up to conjugate symmetry: [N1, N2//2 + 1,
    c_out, c_in] in complex128, by a direct (separable) DFT of the taps rather than an FFT
    of the zero-padded kernel: each entry is then a short sum whose rounding error has the
    plain dot-product bound used in :func:`conv_norm_bound` (and for the usual
    3×3 kernels it is also cheaper).  Differentiable in ``kernel``."""
    n1, n2 = grid
    _, _, kh, kw = kernel.shape
    a1 = _twiddles(n1, kh, n1, kernel.device)  # [N1, kh]
    a2 = _twiddles(n2, kw, n2 // 2 + 1, kernel.device)  # [N2', kw]; K̂(−f) = conj K̂(f)
    k = kernel.to(torch.float64).to(torch.complex128)
    half = k @ a2.transpose(0, 1)  # [o, c, kh, N2']
    full = torch.einsum("fa,ocag->fgoc", a1, half)
    return full


def circular_sigma(kernel: Tensor, grid: tuple[int, int]) -> Tensor:
    """max over the grid's frequencies of σ_max(K̂(f)): the spectral norm of the circular
    convolution with ``kernel`` on ``grid`` (Sedghi et al. 2019), float64, differentiable."""
    if kernel.numel() == 0:
        return kernel.new_zeros((), dtype=torch.float64)
    return torch.linalg.matrix_norm(kernel_spectrum(kernel, grid), ord=2).amax()


def conv_margins(kernel_shape: torch.Size, dtype: torch.dtype) -> tuple[float, float]:
    """(numeric, rounding): the relative slack for the float64 DFT + SVD, 2(1e-12 + δ), and
    for rounding s·K in ``dtype``, (8 + k√r)·ε (see :class:`SpectralConv2d`)."""
    c_out, c_in, kh, kw = kernel_shape
    root_r = math.sqrt(min(c_out, c_in))
    taps = math.sqrt(kh * kw)
    dft = 64.0 * (kh + kw + 2) * taps * root_r * 2.0**-53
    return 2.0 * (SVD_MARGIN + dft), (8.0 + taps * root_r) * torch.finfo(dtype).eps


def conv_norm_bound(kernel: Tensor, grid: tuple[int, int], rescaled: bool = False) -> float:
    """A proven upper bound of the circular-convolution norm of ``kernel`` on ``grid``
    (float64 DFT + SVD, times the numeric margin); ``rescaled``: one that stays valid
    after forming ``s·kernel`` in ``kernel``'s dtype (σ̂ of :class:`SpectralConv2d`)."""
    w = kernel.detach()
    if w.device.type == "mps":  # no float64 there
        w = w.cpu()
    numeric, rounding = conv_margins(w.shape, kernel.dtype)
    return float(circular_sigma(w, grid)) * (1.0 + numeric + (rounding if rescaled else 0.0))


class SpectralConv2d(_CertifiedLayer):
    """A stride-1, zero-padded ("same") 2-D convolution whose operator norm on [C, H, W]
    inputs is certified ≤ c.

    Math.  The zero-padded convolution on H×W is P·C·E, with E the zero-embedding into
    the grid (H + k − 1)×(W + k − 1), C the *circular* convolution with the same kernel on
    that grid and P the crop (on that grid no wrapped-around tap reaches an output pixel
    from an input pixel); ‖E‖, ‖P‖ ≤ 1, so ‖conv‖₂ ≤ ‖C‖₂ = max_f σ_max(K̂(f)), K̂(f) the
    c_out×c_in matrix of the kernel's 2-D DFT at grid frequency f (Sedghi et al. 2019).
    With K the raw kernel, r = min(c_out, c_in), k = √(kh·kw), ε the dtype's epsilon and
    u = 2⁻⁵³:

    1. σ̂(K) = σ₁·m, σ₁ the float64 value of max_f σ_max(K̂(f)) (direct DFT of the taps with
       angles reduced mod N, then batched SVDs) and
       m = 1 + 2(1e-12 + δ) + (8 + k√r)·ε, δ = 64(kh + kw + 2)·k·√r·u.  δ covers the DFT:
       every entry of K̂(f) is a sum of kh·kw products of taps and twiddles, each twiddle
       within a few u of exact, so |ΔK̂(f)_oc| ≤ γ·Σ_ab |K_ocab| ≤ γ·k·‖K_oc‖_F and
       ‖ΔK̂(f)‖₂ ≤ ‖ΔK̂(f)‖_F ≤ γ·k·‖K‖_F ≤ γ·k·√r·‖C‖₂ (Parseval:
       N1N2‖K‖_F² = Σ_f ‖K̂(f)‖_F² ≤ N1N2·r·‖C‖₂²), γ ≤ 64(kh + kw + 2)u generously; 1e-12
       covers the float64 SVD as for :class:`SpectralLinear`.  So ‖C(K)‖₂ ≤ σ₁(1 + 2(…)).
    2. The kernel used is K̃ = K if σ̂ ≤ c, else fl(fl(c/σ̂)·K) = s·K + E with
       |E| ≤ (ε/2)|s·K| element-wise, and ‖C(E)‖₂ ≤ max_f ‖Ê(f)‖_F ≤ Σ_ab ‖E_ab‖_F ≤
       k·‖E‖_F ≤ (ε/2)·s·k·√r·‖C(K)‖₂; with s ≤ (c/σ̂)(1 + ε/2) this gives ‖conv(K̃)‖₂ ≤
       ‖C(K̃)‖₂ ≤ c, as a real operator made of the floating-point taps used.
    3. σ̂ is recomputed whenever K's values differ from the ones it was certified for.

    The caveat, as for dense layers: the float64 SVD and cos/sin are trusted to their
    documented accuracy (LAPACK's backward-stable SVD; a few ulps).

    Gradient: the value used is σ̂, but its gradient is that of the exact σ₁ (the same
    DFT and ``matrix_norm`` recomputed with autograd, added as a term that is exactly 0
    in value), so training sees exact spectral normalisation of the circular operator;
    that costs one more DFT + SVD per forward with gradients enabled.  No power iteration.

    Reference: Sedghi, Gupta, Long 2019, The Singular Values of Convolutional Layers,
    arXiv:1805.10408; Behrmann et al. 2019, Invertible Residual Networks, arXiv:1811.00995.

    Args:
        in_channels, out_channels: channels of x and y.
        kernel: side of the square kernel.
        lipschitz: c, the bound on the operator norm.
        spatial: (H, W) of the inputs the bound is certified for (it holds for any
            input of at most that size).
        zero: zero-initialise the kernel and bias (the last layer of a net that starts at 0).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        lipschitz: float,
        spatial: tuple[int, int],
        zero: bool = False,
    ) -> None:
        super().__init__()
        self.lipschitz = float(lipschitz)
        self.kernel_size = (int(kernel), int(kernel))
        self.spatial = (int(spatial[0]), int(spatial[1]))
        self.grid = conv_grid(self.spatial, self.kernel_size)
        pad = conv_padding(self.kernel_size)
        # odd kernels pad symmetrically inside conv2d; even ones need an explicit F.pad
        self.pad: tuple[int, int, int, int] | None = None if pad[0] == pad[1] else pad
        self.conv_padding = pad[0] if self.pad is None else 0
        layer = nn.Conv2d(in_channels, out_channels, kernel)  # PyTorch's initialisation
        assert layer.bias is not None  # nn.Conv2d has a bias by default (bias=True)
        self.weight = nn.Parameter(layer.weight.detach().clone())
        self.bias = nn.Parameter(layer.bias.detach().clone())
        if zero:
            nn.init.zeros_(self.weight)
            nn.init.zeros_(self.bias)
        self._reset_certificate()

    def certify(self, w: Tensor) -> float:
        return conv_norm_bound(w, self.grid, rescaled=True)

    def sigma_estimate(self, w: Tensor) -> Tensor:
        return circular_sigma(w, self.grid)  # exact σ₁, differentiable

    def conv(self, x: Tensor, weight: Tensor) -> Tensor:
        """The zero-padded convolution of x: [B, c_in, H, W] with ``weight``."""
        if self.pad is not None:
            x = F.pad(x, self.pad)
        return F.conv2d(x, weight, self.bias, padding=self.conv_padding)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x, self.normalized_weight())

    def extra_repr(self) -> str:
        out, inp = self.weight.shape[:2]
        return (
            f"{inp}, {out}, kernel_size={self.kernel_size}, spatial={self.spatial}, "
            f"lipschitz={self.lipschitz}"
        )


class LipschitzConvNet(_LipschitzNet):
    """g = conv_k ∘ a ∘ [conv_1 ∘ a]×(depth − 1) ∘ conv_k on [C, H, W] (shapes kept), every
    convolution a :class:`SpectralConv2d` with certified norm ≤ c.

    Math: Lip(g) ≤ ∏ ‖conv_i‖₂ · ∏ Lip(a) ≤ c^(depth+1) when Lip(a) ≤ 1.

    Reference: Behrmann et al. 2019, Invertible Residual Networks, arXiv:1811.00995 (their
    convolutional i-ResNet branch); Sedghi et al. 2019, arXiv:1805.10408 (the bound).

    It has :class:`LipschitzMLP`'s interface: ``forward`` takes and returns *flat*
    [B, C·H·W] tensors, and callers may pass ``weights()`` taken once.

    Args:
        shape: (C, H, W) of x.
        hidden: channels of the hidden layers.
        kernel: side of the first and last kernels (the middle ones are 1×1).
        depth: number of hidden layers.
        act: activation word.
        lipschitz: c.
        zero_last: zero-initialise the last layer (g ≡ 0 at the start).
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        hidden: int,
        kernel: int,
        depth: int,
        act: Choice | str,
        lipschitz: float,
        zero_last: bool = True,
    ) -> None:
        super().__init__()
        channels, h, w = shape
        self.shape = (int(channels), int(h), int(w))
        spatial = (h, w)
        layers = [SpectralConv2d(channels, hidden, kernel, lipschitz, spatial)]
        layers += [SpectralConv2d(hidden, hidden, 1, lipschitz, spatial) for _ in range(depth - 1)]
        layers.append(SpectralConv2d(hidden, channels, kernel, lipschitz, spatial, zero_last))
        self.layers = nn.ModuleList(layers)
        self.acts = nn.ModuleList(make_activation(act) for _ in range(depth))
        self.act_lipschitz = activation_lipschitz(act)

    def _conv_layers(self) -> Iterable[SpectralConv2d]:
        # nn.ModuleList yields nn.Module; __init__ fills it with SpectralConv2d only
        return cast("Iterable[SpectralConv2d]", self.layers)

    def forward(self, x: Tensor, weights: list[Tensor] | None = None) -> Tensor:
        if weights is None:
            weights = self.weights()
        h = x.reshape(x.shape[0], *self.shape)
        for i, layer in enumerate(self._conv_layers()):
            h = layer.conv(h, weights[i])
            if i < len(self.acts):
                h = self.acts[i](h)
        return h.reshape(x.shape)

    def lipschitz_bound(self) -> float:
        """A proven upper bound of Lip(g) for the current weights: the circular norm of every
        kernel used (float64 DFT + SVD) times its margin, times the activations' constants."""
        with torch.no_grad():
            bound = 1.0
            for layer, w in zip(self._conv_layers(), self.weights(), strict=True):
                bound *= conv_norm_bound(w, layer.grid)
        return bound * self.act_lipschitz ** len(self.acts)


__all__ = [
    "LipschitzConvNet",
    "LipschitzMLP",
    "SpectralConv2d",
    "SpectralLinear",
    "activation_lipschitz",
    "certified_sigma",
    "circular_sigma",
    "conv_norm_bound",
    "kernel_spectrum",
    "sigma_max",
]
