"""The Neumann gradient of a residual block's log-det, taken in the forward pass.

Chen, Behrmann, Duvenaud, Jacobsen 2019, *Residual Flows for Invertible Generative
Modeling*, arXiv:1906.02735, §3.3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from flowspec.runtime.mlp_jacobian import Linearization
    from flowspec.runtime.residual import Residual


class NeumannInForward(torch.autograd.Function):
    """ladj whose gradient was computed in the forward pass (Chen et al. 2019, §3.3).

    The Neumann surrogate s_i = mean over probes of q_iᵀ J_g(x_i) v_i has the gradient of
    the estimator (q = Σ_k (−1)^{k+1} ω_k (Jᵀ)^{k−1} v, held constant); differentiating
    it needs J_g's own graph (a double backward).  Built in forward and kept until
    ``backward()``, that graph would hold every block's second-order graph at once; here
    each block takes ∂s/∂(x, W̃, b) at once and frees it, so only ``y``'s graph and the
    gradients (one [B, d] tensor and one per weight) wait for the backward pass.

    backward maps the incoming u (one number per sample) to Σ_i u_i ∂s_i/∂·: for x,
    u_i·∂s_i/∂x_i exactly (s_i depends on x_i alone); for the weights, u·∂(Σ_i s_i)/∂θ
    when u is the same for every sample (a loss that averages log-densities: the usual
    case); otherwise it rebuilds the surrogate from the saved x, v and q and
    differentiates Σ_i u_i s_i (one more evaluation of g), so the gradient is exact
    whatever the loss.  Not differentiable again (no higher-order gradients).
    """

    @staticmethod
    def attach(
        block: Residual,
        value: Tensor,
        gx: Tensor,
        xs: Tensor,
        v: Tensor,
        q: Tensor,
        weights: list[Tensor],
        lin: Linearization | None = None,
    ) -> Tensor:
        raw = {id(layer.weight) for layer in block.g.layers}
        others = [p for p in block.g.parameters() if p.requires_grad and id(p) not in raw]
        b = value.shape[0]
        closed = lin.surrogate_grads(q, v) if lin is not None else None
        if closed is not None:
            # the same gradients in closed form (Linearization.surrogate_grads), mean over
            # the probe copies as the surrogate below takes it
            closed[id(xs)] = closed.pop(0)
            scale = b / xs.shape[0]
            inputs = [xs, *weights, *others]
            saved = [
                closed[id(t)] * scale if t.requires_grad and id(t) in closed else None
                for t in inputs
            ]
            context = (block, xs.detach(), v, q, [w.detach() for w in weights], others, saved)
            return NeumannInForward.apply(value, context, xs, *weights, *others)
        with torch.enable_grad():
            (qj,) = torch.autograd.grad(gx, xs, q, create_graph=True, retain_graph=True)
            surrogate = (qj * v).sum(-1).reshape(-1, b).mean(0)
            inputs = [xs, *weights, *others]
            wanted = [t for t in inputs if t.requires_grad]
            grads = torch.autograd.grad(
                surrogate.sum(), wanted, retain_graph=True, allow_unused=True
            )
        found = dict(zip(map(id, wanted), grads, strict=True))
        saved = [found.get(id(t)) for t in inputs]
        context = (block, xs.detach(), v, q, [w.detach() for w in weights], others, saved)
        return NeumannInForward.apply(value, context, xs, *weights, *others)

    @staticmethod
    def forward(ctx: Any, value: Tensor, context: Any, *inputs: Tensor) -> Tensor:
        ctx.context = context
        return value.clone()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, u: Tensor) -> tuple[Tensor | None, ...]:
        block, xs, v, q, weights, others, saved = ctx.context
        b = u.shape[0]
        copies = xs.shape[0] // b
        # xs is the batch stacked `copies` times: row r·b + i belongs to sample i
        per_row = u.repeat(copies)
        grads: list[Tensor | None] = []
        if saved[0] is not None:
            grads.append(saved[0] * per_row.unsqueeze(-1).to(saved[0].dtype))
        else:
            grads.append(None)
        if bool((u == u[0]).all()):
            scale = u[0]
            grads.extend(None if g is None else g * scale.to(g.dtype) for g in saved[1:])
        else:
            grads.extend(NeumannInForward._rebuilt(block, xs, v, q, weights, others, u))
        return (None, None, *grads)

    @staticmethod
    def _rebuilt(
        block: Residual,
        xs: Tensor,
        v: Tensor,
        q: Tensor,
        weights: list[Tensor],
        others: list[Tensor],
        u: Tensor,
    ) -> list[Tensor | None]:
        """∂(Σ_i u_i s_i)/∂(W̃, b) by rebuilding s from the saved x, v, q and weights."""
        with torch.enable_grad():
            leaves = [w.detach().requires_grad_() for w in weights]
            x = xs.detach().requires_grad_()
            gx = block.g(x, leaves)
            (qj,) = torch.autograd.grad(gx, x, q, create_graph=True)
            b = u.shape[0]
            s = (qj * v).sum(-1).reshape(-1, b).mean(0)
            wanted = [t for t in (*leaves, *others) if t.requires_grad]
            grads = torch.autograd.grad((s * u.to(s.dtype)).sum(), wanted, allow_unused=True)
        found = dict(zip(map(id, wanted), grads, strict=True))
        return [found.get(id(t)) for t in (*leaves, *others)]


__all__ = ["NeumannInForward"]
