"""The Jacobian of a Lipschitz MLP in closed form, for products that need no graph.

For g(x) = W_L a(… a(W_1 x + b_1) …) + b_L with element-wise activations a,
J_g(x) = W_L D_{L−1} W_{L−1} ⋯ D_1 W_1 with D_i = diag(a'(h_i)), h_i the i-th
pre-activation.  Once g(x) is evaluated and the slopes a'(h_i) kept, a vector-Jacobian
product uᵀJ_g is L matrix products and L − 1 element-wise ones, with no autograd graph
and no engine call: what the power series of a residual block's log-det (Chen et al.
2019, Residual Flows, arXiv:1906.02735), its Neumann vector and the adjoint of its
fixed-point inverse take many of at one point.  It is the same product autograd forms
(to rounding); where a gradient *through* the product is needed the callers keep using
autograd.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeGuard, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from flowspec.runtime.nets import LipSwish

if TYPE_CHECKING:
    from flowspec.runtime.lipschitz_layers import LipschitzMLP, SpectralLinear


def _all_lipswish(acts: list[nn.Module]) -> TypeGuard[list[LipSwish]]:
    return all(isinstance(a, LipSwish) for a in acts)


def _linear_layers(net: LipschitzMLP) -> Iterable[SpectralLinear]:
    # nn.ModuleList yields nn.Module; LipschitzMLP fills it with SpectralLinear only
    return cast("Iterable[SpectralLinear]", net.layers)


def value_and_slope(act: nn.Module, h: Tensor) -> tuple[Tensor, Tensor]:
    """a(h) and a'(h) element-wise, both without a graph: LipSwish in closed form, any
    other (element-wise) activation by one backward pass through it alone."""
    if isinstance(act, LipSwish):
        return act.value_and_slope(h)
    with torch.enable_grad():
        leaf = h.detach().requires_grad_(True)
        out = act(leaf)
        (slope,) = torch.autograd.grad(out, leaf, torch.ones_like(out))
    return out.detach(), slope


class Linearization:
    """g(x) of a :class:`~flowspec.runtime.lipschitz_layers.LipschitzMLP` at a batch x
    and the factors of J_g(x) = W_L D_{L−1} ⋯ D_1 W_1, none of them part of a graph.

    Args:
        net: the MLP (its biases and activations are read).
        x: [B, d] points.
        weights: the weights in use (``net.weights()``); the products use them detached.
        graph: evaluate g(x) with autograd (``value`` then carries the graph); the
            slopes and the products never do.
    """

    def __init__(
        self, net: LipschitzMLP, x: Tensor, weights: list[Tensor], graph: bool = False
    ) -> None:
        self.net = net
        self.used = list(weights)
        self.weights = [w.detach() for w in weights]
        self.slopes: list[Tensor] = []
        #: each layer's input (x, then the activations) and pre-activation, detached
        self.inputs: list[Tensor] = []
        self.pre: list[Tensor] = []
        acts = list(net.acts)
        with torch.set_grad_enabled(graph and torch.is_grad_enabled()):
            h = x if graph else x.detach()
            for i, layer in enumerate(_linear_layers(net)):
                self.inputs.append(h.detach())
                h = F.linear(h, weights[i] if graph else self.weights[i], layer.bias)
                if i < len(acts):
                    self.pre.append(h.detach())
                    value, slope = value_and_slope(acts[i], h.detach())
                    self.slopes.append(slope)
                    h = acts[i](h) if graph else value
        #: g(x): part of a graph when ``graph`` (and gradients are enabled)
        self.value = h

    def vjp(self, u: Tensor) -> Tensor:
        """uᵀJ_g(x) per row: [B, d] → [B, d]."""
        for i in range(len(self.weights) - 1, -1, -1):
            u = u @ self.weights[i]
            if i:
                u = u.mul_(self.slopes[i - 1])  # in place on the product just made
        return u

    def surrogate_grads(self, q: Tensor, v: Tensor) -> dict[int, Tensor] | None:
        """The gradients of S = Σ_r q_rᵀ J_g(x_r) v_r (q, v: [R, d], one row per row of x)
        w.r.t. x, each weight in use, each bias and each LipSwish ``raw_beta``, keyed by
        ``id`` of the tensor (x: key 0); None unless every activation is a LipSwish.

        Math (a chain of L layers, h_i = W_i a_{i−1} + b_i, a_i = φ(h_i), a_0 = x):
        with τ_0 = v, t_i = W_i τ_{i−1}, τ_i = φ'(h_i) ⊙ t_i (J's columns side) and
        l_L = q, m_i = W_{i+1}ᵀ l_{i+1}, l_i = φ'(h_i) ⊙ m_i (its rows side),
        S = Σ_r l_iᵀ W_i τ_{i−1} for every i, so ∂S/∂W_i has the direct part Σ_r l_i τ_{i−1}ᵀ;
        S depends on h_i through φ'(h_i) with e_i = ∂S/∂h_i = m_i ⊙ t_i ⊙ φ''(h_i), which
        the net's own backward carries down: c_i = e_i + φ'(h_i) ⊙ W_{i+1}ᵀ c_{i+1}, giving
        c_i a_{i−1}ᵀ for W_i, Σ_r c_i for b_i and W_1ᵀ c_1 for x; β_i enters through φ'
        (m_i ⊙ t_i ⊙ ∂φ'/∂β) and through a_i (W_{i+1}ᵀ c_{i+1} ⊙ ∂φ/∂β), times dβ/d raw β.
        The double backward autograd would take, without its graph."""
        acts = list(self.net.acts)
        if not _all_lipswish(acts):
            return None
        with torch.no_grad():
            ws, layers = self.weights, list(self.net.layers)
            depth = len(ws)
            tau, t = [v], []
            for i in range(depth):
                t.append(tau[i] @ ws[i].t())
                if i < depth - 1:
                    tau.append(t[i] * self.slopes[i])
            ls: list[Tensor] = [q] * depth
            ms: list[Tensor] = [q] * (depth - 1)
            for i in range(depth - 1, 0, -1):
                ms[i - 1] = ls[i] @ ws[i]
                ls[i - 1] = ms[i - 1] * self.slopes[i - 1]
            out: dict[int, Tensor] = {}
            c = None  # c_{i+1} pulled back to a_i: W_{i+1}ᵀ c_{i+1}
            for i in range(depth - 1, -1, -1):
                w_grad = ls[i].t() @ tau[i]
                if i < depth - 1:
                    act = acts[i]
                    h = self.pre[i]
                    k, ss = act.second_order(h)  # a'' = βk/1.1, ∂a'/∂β = hk/1.1
                    mtk = (ms[i] * t[i]).mul_(k)
                    scale = act.beta().detach() / 1.1
                    ci = (
                        mtk * scale if c is None else torch.addcmul(c * self.slopes[i], mtk, scale)
                    )
                    beta_grad = _dot(mtk, h)
                    if c is not None:  # ∂a/∂β = h²·ss/1.1
                        beta_grad = beta_grad + _dot(c * h, h * ss)
                    beta_grad = beta_grad / 1.1
                    out[id(act.raw_beta)] = beta_grad * act.beta_derivative()
                    w_grad = torch.addmm(w_grad, ci.t(), self.inputs[i])
                    out[id(layers[i].bias)] = ci.sum(0)
                    c = ci @ ws[i]
                out[id(self.used[i])] = w_grad
            out[0] = c if c is not None else torch.zeros_like(v)
        return out

    def jvp(self, v: Tensor) -> Tensor:
        """J_g(x)v per row: [B, d] → [B, d]."""
        for i, w in enumerate(self.weights):
            v = v @ w.t()
            if i < len(self.slopes):
                v = v.mul_(self.slopes[i])
        return v


class Folded:
    """x ↦ y − g(x) with every LipSwish's scales folded into the layers, for the many
    evaluations of a fixed-point inverse at fixed weights, without a graph:
    a(h) = silu(βh)/(1.1β), so W_{i+1}·a(h_i) = (W_{i+1}/(1.1β_i))·silu(β_i h_i) and
    β_i h_i = (β_i W_i)a + β_i b_i, and the last layer's bias and the subtraction from y
    go into one ``addmm`` (y − b_L − W_L a).  Each step is then one ``addmm`` and one
    ``silu`` per layer; the same function, to rounding."""

    def __init__(self, net: LipschitzMLP, weights: list[Tensor]) -> None:
        # built by folded(), which checks that every activation is a LipSwish
        acts = cast("list[LipSwish]", list(net.acts))
        with torch.no_grad():
            betas = [a.beta().detach() for a in acts]
            self.layers: list[tuple[Tensor, Tensor]] = []
            last = len(weights) - 1
            for i, (layer, w) in enumerate(zip(_linear_layers(net), weights, strict=True)):
                w, b = w.detach(), layer.bias.detach()
                if i < len(betas):
                    w, b = w * betas[i], b * betas[i]
                if i:
                    w = w / (1.1 * betas[i - 1])
                self.layers.append(((-w if i == last else w).t().contiguous(), b))

    def shift(self, y: Tensor) -> Tensor:
        """y − b_L, the base that :meth:`step` subtracts W_L·a from."""
        return y - self.layers[-1][1]

    def step(self, x: Tensor, shifted: Tensor) -> Tensor:
        """y − g(x), given ``shifted`` = :meth:`shift` (y)."""
        h = x
        for wt, b in self.layers[:-1]:
            h = F.silu(torch.addmm(b, h, wt))
        return torch.addmm(shifted, h, self.layers[-1][0])


def folded(net: nn.Module, weights: list[Tensor]) -> Folded | None:
    """:class:`Folded` for a dense net of LipSwish activations, else None."""
    from flowspec.runtime.lipschitz_layers import LipschitzMLP

    if not isinstance(net, LipschitzMLP) or not all(isinstance(a, LipSwish) for a in net.acts):
        return None
    return Folded(net, weights)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return a.reshape(-1) @ b.reshape(-1)


def linearize(net: nn.Module, x: Tensor, weights: list[Tensor]) -> Linearization | None:
    """The closed-form Jacobian of ``net`` at x, or None when ``net`` is not a dense MLP
    of element-wise activations (convolutional nets go through autograd)."""
    from flowspec.runtime.lipschitz_layers import LipschitzMLP

    if not isinstance(net, LipschitzMLP):
        return None
    return Linearization(net, x, weights)


__all__ = ["Folded", "Linearization", "folded", "linearize", "value_and_slope"]
