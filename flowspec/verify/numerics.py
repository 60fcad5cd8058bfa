"""Brute-force numerics for ``flowspec verify`` and the test harness (torch, float64).

* :func:`perturb` — the seeded perturbation that moves a module away from its identity
  initialisation: N(0, σ²) added to every parameter, σ = :data:`PERTURB`.
* :func:`flat_jacobians` — the per-sample Jacobian of a map between (tuples of)
  batched tensors, seen as a map between the flattened concatenations.
* :func:`flat_jacobian_logdets` — per-sample log|det J| from it (``slogdet``).
* :func:`power_sigma` — σ_max of a map's Jacobian at a point by power iteration on
  JᵀJ (vector-Jacobian products; a lower bound of σ_max, for inputs too large for a
  dense Jacobian).
* :func:`estimate_stats` — the mean, standard error and spread of repeated stochastic
  estimates.

Nothing here parses or checks specs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: standard deviation of the noise added to every parameter, so zero-initialised
#: conditioners (identity couplings) are verified away from the identity
PERTURB = 0.1

Fn = Callable[..., "Tensor | tuple[Tensor, ...]"]


def as_tuple(value: Tensor | tuple[Tensor, ...] | list[Tensor]) -> tuple[Tensor, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def perturb(module: torch.nn.Module, scale: float = PERTURB, seed: int = 0) -> None:
    """Add N(0, scale²) noise to every parameter, from a generator seeded with ``seed``
    (drawn in float64, in the order of ``module.parameters()``)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            p.add_(scale * noise.to(device=p.device, dtype=p.dtype))


def _flat(fn: Fn, xs: list[Tensor]) -> tuple[Callable[[Tensor], Tensor], Tensor]:
    batch = xs[0].shape[0]
    sizes = [x[0].numel() for x in xs]
    shapes = [x.shape[1:] for x in xs]

    def flat_fn(flat: Tensor) -> Tensor:
        parts = flat.split(sizes, dim=1)
        ins = [p.reshape(flat.shape[0], *s) for p, s in zip(parts, shapes)]
        return torch.cat([y.reshape(flat.shape[0], -1) for y in as_tuple(fn(*ins))], dim=1)

    return flat_fn, torch.cat([x.reshape(batch, -1) for x in xs], dim=1)


def flat_jacobians(fn: Fn, xs: list[Tensor]) -> Tensor:
    """``[B, D_out, D_in]``: the Jacobian of each sample's flattened outputs with respect
    to its flattened inputs.  Samples are independent, so the Jacobian of the
    batch-summed output holds every sample's Jacobian at a B-th of the cost (batched
    vector-Jacobian products, falling back to a loop where vmap cannot run)."""
    flat_fn, flat = _flat(fn, xs)

    def summed(v: Tensor) -> Tensor:
        return flat_fn(v).sum(0)

    try:
        jac = torch.autograd.functional.jacobian(summed, flat, vectorize=True)
    except (RuntimeError, NotImplementedError, TypeError):
        jac = torch.autograd.functional.jacobian(summed, flat)
    return jac.permute(1, 0, 2)  # [D_out, B, D_in] → [B, D_out, D_in]


def flat_jacobian_logdets(fn: Fn, xs: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Per-sample log|det J| of ``fn`` seen as a map from the concatenation of the
    flattened inputs to the concatenation of the flattened outputs.

    Returns ``(logdets [B], cross)``, where ``cross`` is how much the outputs of the
    other samples move when the first sample's input changes (a block must not mix the
    batch; it is 0 for a correct block)."""
    flat_fn, flat = _flat(fn, xs)
    with torch.no_grad():
        moved = flat.clone()
        # another sample's input: inside a block's domain (logit's [0, 1]) like the rest
        moved[0] = flat[-1]
        cross = (flat_fn(moved)[1:] - flat_fn(flat)[1:]).abs().max()
    _, logdets = torch.linalg.slogdet(flat_jacobians(fn, xs))
    return logdets, cross


def power_sigma(fn: Fn, xs: list[Tensor], iters: int = 30, seed: int = 0) -> float:
    """σ_max of the Jacobian of ``fn`` at ``xs`` (one sample, batch 1) by power iteration
    on JᵀJ, each step a Jacobian-vector and a vector-Jacobian product.  A lower bound of
    σ_max (power iteration converges from below)."""
    flat_fn, flat = _flat(fn, xs)
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(flat.shape, generator=gen, dtype=torch.float64).to(flat.dtype)
    v = v / v.norm()
    sigma = 0.0
    for _ in range(iters):
        _, jv = torch.autograd.functional.jvp(flat_fn, flat, v)
        _, jtjv = torch.autograd.functional.vjp(flat_fn, flat, jv)
        sigma = float(jv.norm())
        n = jtjv.norm()
        if n == 0:
            break
        v = jtjv / n
    return sigma


def linear_sigma(
    fn: Callable[[Tensor], Tensor],
    shape: tuple[int, ...],
    dtype: torch.dtype,
    iters: int = 50,
    seed: int = 0,
) -> float:
    """σ_max of a *linear* map (of one input of ``shape``, without the batch axis) by power
    iteration on its Gram operator; a lower bound of the operator norm."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn((1, *shape), generator=gen, dtype=torch.float64).to(dtype)
    v = v / v.norm()
    sigma = 0.0
    for _ in range(iters):
        v = v.detach().requires_grad_(True)
        out = fn(v)
        (back,) = torch.autograd.grad(out, v, out.detach())
        sigma = float(out.detach().norm())
        n = back.norm()
        if n == 0:
            break
        v = back / n
    return sigma


def estimate_stats(draw: Callable[[], Tensor], draws: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per sample, over ``draws`` calls of ``draw`` (each [R, B]: R estimates that may
    share randomness, such as roulette's N): the mean, its standard error (over the
    calls' means, which are independent) and the standard deviation of one estimate."""
    runs = torch.stack([draw().detach().to(torch.float64) for _ in range(draws)])  # [N, R, B]
    means = runs.mean(1)
    one = runs.reshape(-1, runs.shape[-1])
    return means.mean(0), means.std(0) / draws**0.5, one.std(0)


__all__ = [
    "PERTURB",
    "as_tuple",
    "estimate_stats",
    "flat_jacobian_logdets",
    "flat_jacobians",
    "linear_sigma",
    "perturb",
    "power_sigma",
]
