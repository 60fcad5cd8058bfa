"""Conditioner and dynamics nets: ``mlp``, ``conv`` and ``resnet``.

``build_net(spec, in_shape, out_shape)`` maps ``[B, *in_shape]`` to ``[B, *out_shape]``.
``mlp`` flattens its input; ``conv`` and ``resnet`` take ``[C, H, W]`` and keep H and W.
The last layer is zero-initialised (``init=zero``, the default), so a coupling starts
at the identity; ``init=default`` keeps PyTorch's initialisation.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from flowspec.kinds.options import Choice


class _LipSwishFunction(torch.autograd.Function):
    """x·σ(βx)/1.1, computed as silu(βx)/(1.1β) (one fused kernel), saving only x and β
    for backward (σ(βx) is recomputed there): a third of the memory autograd keeps for
    the composed expression, which matters for the graphs a residual flow holds.  Its
    backward is made of differentiable operations, so double backward, ``torch.func``
    transforms (vmap rule generated) and forward mode (``jvp``) work as before."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, beta: Tensor) -> Tensor:
        return nn.functional.silu(x * beta) / (beta * 1.1)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, Tensor], output: Tensor) -> None:
        x, beta = inputs
        ctx.save_for_backward(x, beta)
        ctx.save_for_forward(x, beta)

    @staticmethod
    def _partials(x: Tensor, beta: Tensor) -> tuple[Tensor, Tensor]:
        z = x * beta
        s = torch.sigmoid(z)
        ss = s * (1.0 - s)
        return (s + z * ss) / 1.1, x * x * ss / 1.1  # ∂a/∂x, ∂a/∂β

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, beta = ctx.saved_tensors
        dx, dbeta = _LipSwishFunction._partials(x, beta)
        gx = grad * dx if ctx.needs_input_grad[0] else None
        gb = (grad * dbeta).sum().reshape(beta.shape) if ctx.needs_input_grad[1] else None
        return gx, gb

    @staticmethod
    def jvp(ctx: Any, tx: Tensor | None, tbeta: Tensor | None) -> Tensor:
        x, beta = ctx.saved_tensors
        dx, dbeta = _LipSwishFunction._partials(x, beta)
        out = torch.zeros_like(x)
        if tx is not None:
            out = out + dx * tx
        if tbeta is not None:
            out = out + dbeta * tbeta
        return out


class LipSwish(nn.Module):
    """x·σ(βx)/1.1 (Chen et al. 2019, Residual Flows, arXiv:1906.02735).

    1-Lipschitz for every β ≥ 0: the slope of x·σ(βx) is at most 1.0998 whatever β, and
    1.0998/1.1 < 1.  β is learned through a softplus, starting at 1.
    """

    def __init__(self) -> None:
        super().__init__()
        self.raw_beta = nn.Parameter(torch.tensor(0.5413))  # softplus(0.5413) ≈ 1.0

    def beta(self) -> Tensor:
        # β > 0 keeps silu(βx)/β = x·σ(βx); 1e-20 only where softplus underflows to 0,
        # a change below rounding for any |x| < 1e12 (and still a 1-Lipschitz LipSwish)
        return nn.functional.softplus(self.raw_beta).clamp_min(1e-20)

    def forward(self, x: Tensor) -> Tensor:
        beta = self.beta()
        if not torch.is_grad_enabled() or not (x.requires_grad or beta.requires_grad):
            return _LipSwishFunction.forward(x, beta)  # no graph: skip the Function's call
        return _LipSwishFunction.apply(x, beta)

    def value_and_slope(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """a(x) and a'(x) = (σ(βx) + βx·σ(βx)(1 − σ(βx)))/1.1, without a graph."""
        with torch.no_grad():
            beta = self.beta()
            z = x * beta
            s = torch.sigmoid(z)
            value = nn.functional.silu(z) / (beta * 1.1)  # bit for bit as forward
            slope = torch.addcmul(s, z * s, 1.0 - s) / 1.1
        return value, slope

    def curvature(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(∂²a/∂x², ∂a/∂β, ∂²a/∂x∂β) at x, without a graph: with z = βx, s = σ(z) and
        K = s(1 − s)(2 + z(1 − 2s))/1.1, they are βK, x²s(1 − s)/1.1 and xK."""
        k, ss = self.second_order(x)
        beta = self.beta().detach()
        return k * (beta / 1.1), x * x * ss / 1.1, x * k / 1.1

    def second_order(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """1.1·K = s(1 − s)(2 + z(1 − 2s)) and s(1 − s) (z = βx, s = σ(z)): the factors
        :meth:`curvature`'s three derivatives are made of, in few element-wise passes."""
        with torch.no_grad():
            z = x * self.beta()
            s = torch.sigmoid(z)
            ss = s - s * s
            k = (1.0 - 2.0 * s).mul_(z).add_(2.0).mul_(ss)
        return k, ss

    def beta_derivative(self) -> Tensor:
        """dβ/d raw_beta: σ(raw_beta) (softplus'), 0 where the clamp holds β."""
        with torch.no_grad():
            live = nn.functional.softplus(self.raw_beta) >= 1e-20
            return torch.sigmoid(self.raw_beta) * live


_ACTIVATIONS = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
    "lipswish": LipSwish,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "swish": nn.SiLU,
}


def make_activation(act: Choice | str) -> nn.Module:
    """A fresh activation module for ``act`` (a word of the registry's ACTIVATIONS)."""
    name = act.kind if isinstance(act, Choice) else act
    return _ACTIVATIONS[name]()


def _zero_last(layer: nn.Module, init: Choice | str) -> None:
    name = init.kind if isinstance(init, Choice) else init
    assert isinstance(layer, (nn.Linear, nn.Conv2d))
    if name == "zero":
        nn.init.zeros_(layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)


class MLP(nn.Sequential):
    """Flatten, then Linear–act–…–Linear."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: list[int],
        act,
        init,
        flatten: bool = True,
    ):
        # a [B, d] input needs no Flatten module: one call less per use
        layers: list[nn.Module] = [nn.Flatten()] if flatten else []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), make_activation(act)]
            width = h
        last = nn.Linear(width, out_features)
        _zero_last(last, init)
        layers.append(last)
        super().__init__(*layers)


class ConvNet(nn.Sequential):
    """Conv(k)–act–[Conv(1)–act]×(depth−1)–Conv(k), padding keeps H and W (Glow's
    conditioner: Kingma & Dhariwal 2018, arXiv:1807.03039).  ``depth=0`` (allowed for
    ``gaussianize`` only) is one Conv(k), Glow's zero-initialised prior convolution."""

    def __init__(
        self, in_channels: int, out_channels: int, hidden: int, kernel: int, depth: int, act, init
    ):
        if depth == 0:
            *pad, last = _same_conv(in_channels, out_channels, kernel)
            _zero_last(last, init)
            super().__init__(*pad, last)
            return
        layers: list[nn.Module] = [
            *_same_conv(in_channels, hidden, kernel),
            make_activation(act),
        ]
        for _ in range(depth - 1):
            layers += [nn.Conv2d(hidden, hidden, 1), make_activation(act)]
        *pad, last = _same_conv(hidden, out_channels, kernel)
        _zero_last(last, init)
        layers += [*pad, last]
        super().__init__(*layers)


def _same_conv(in_channels: int, out_channels: int, kernel: int) -> list[nn.Module]:
    """A convolution that keeps H and W: symmetric padding for odd kernels; an even
    kernel gets one more row/column of zeros after than before (what ``padding='same'``
    does, without its warning and per-call copy)."""
    if kernel % 2:
        return [nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2)]
    before, after = (kernel - 1) // 2, kernel // 2
    return [
        nn.ZeroPad2d((before, after, before, after)),
        nn.Conv2d(in_channels, out_channels, kernel),
    ]


class _ResidualUnit(nn.Module):
    def __init__(self, channels: int, act) -> None:
        super().__init__()
        self.body = nn.Sequential(
            make_activation(act),
            nn.Conv2d(channels, channels, 3, padding=1),
            make_activation(act),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResNet(nn.Sequential):
    """Conv3 → residual units → act → Conv3 (He et al. 2016, arXiv:1512.03385)."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int, blocks: int, act, init):
        last = nn.Conv2d(hidden, out_channels, 3, padding=1)
        _zero_last(last, init)
        super().__init__(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            *(_ResidualUnit(hidden, act) for _ in range(blocks)),
            make_activation(act),
            last,
        )


class _Reshape(nn.Module):
    def __init__(self, net: nn.Module, out_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.net = net
        self.out_shape = tuple(out_shape)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).reshape(x.shape[0], *self.out_shape)


def build_net(spec: Choice, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> nn.Module:
    """A net from its resolved spec, mapping ``[B, *in_shape]`` to ``[B, *out_shape]``."""
    o = spec.options
    if spec.kind == "mlp":
        net = MLP(
            math.prod(in_shape),
            math.prod(out_shape),
            list(o["hidden"]),
            o["act"],
            o["init"],
            flatten=len(in_shape) != 1,
        )
        # wrappers cost a module call each on the hot path: add them only when needed
        return net if len(out_shape) == 1 else _Reshape(net, out_shape)
    if len(in_shape) != 3 or len(out_shape) != 3 or in_shape[1:] != out_shape[1:]:
        raise ValueError(
            f"net={spec.kind} maps [C, H, W] to [C', H, W], got "
            f"{list(in_shape)} → {list(out_shape)}"
        )
    if spec.kind == "conv":
        return ConvNet(
            in_shape[0], out_shape[0], o["hidden"], o["kernel"], o["depth"], o["act"], o["init"]
        )
    if spec.kind == "resnet":
        return ResNet(in_shape[0], out_shape[0], o["hidden"], o["blocks"], o["act"], o["init"])
    raise ValueError(f"unknown net {spec.kind}")
