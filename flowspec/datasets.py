"""Small built-in 2-D data sets for examples, tests and benchmarks (no downloads)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def two_moons(n: int, noise: float = 0.1, generator: torch.Generator | None = None):
    """Two interleaving half circles, standardised to roughly zero mean, unit scale."""
    half = n // 2
    t = torch.rand(n, generator=generator) * math.pi
    upper = torch.stack([torch.cos(t[:half]), torch.sin(t[:half])], 1)
    lower = torch.stack([1 - torch.cos(t[half:]), 0.5 - torch.sin(t[half:])], 1)
    x = torch.cat([upper, lower]) + noise * torch.randn(n, 2, generator=generator)
    x = (x - torch.tensor([0.5, 0.25])) / torch.tensor([0.87, 0.5])
    return x[torch.randperm(n, generator=generator)]


def eight_gaussians(
    n: int, scale: float = 2.0, std: float = 0.2, generator: torch.Generator | None = None
):
    """Eight Gaussians on a circle of radius ``scale``."""
    angles = torch.randint(0, 8, (n,), generator=generator).float() * (math.pi / 4)
    centres = scale * torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    return centres + std * torch.randn(n, 2, generator=generator)


def circles(n: int, noise: float = 0.08, generator: torch.Generator | None = None):
    """Two concentric circles of radii 1 and 2 (half the samples on each)."""
    t = torch.rand(n, generator=generator) * (2 * math.pi)
    radius = 1.0 + (torch.arange(n) % 2).float()
    x = radius[:, None] * torch.stack([torch.cos(t), torch.sin(t)], 1)
    return x + noise * torch.randn(n, 2, generator=generator)


def pinwheel(n: int, arms: int = 5, generator: torch.Generator | None = None):
    """``arms`` elongated Gaussian blades rotated more the further out they lie."""
    arm = torch.randint(0, arms, (n,), generator=generator).float()
    r = 1.0 + 0.3 * torch.randn(n, generator=generator)
    w = 0.05 * torch.randn(n, generator=generator)
    angle = arm * (2 * math.pi / arms) + 0.25 * torch.exp(r)
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([c * r - s * w, s * r + c * w], 1) * 1.5


def two_spirals(n: int, noise: float = 0.1, generator: torch.Generator | None = None):
    """Two interleaved spirals r = θ (θ ∈ [0, 3π]), scaled to about [-3, 3]²."""
    theta = torch.sqrt(torch.rand(n, generator=generator)) * 3 * math.pi
    sign = 1.0 - 2.0 * (torch.arange(n) % 2).float()
    x = sign[:, None] * torch.stack([theta * torch.cos(theta), theta * torch.sin(theta)], 1)
    return x / 3.0 + noise * torch.randn(n, 2, generator=generator)


def checkerboard(n: int, generator: torch.Generator | None = None):
    """Uniform on the black squares of a 4×4 board over [-2, 2]²."""
    x1 = torch.rand(n, generator=generator) * 4 - 2
    x2 = torch.rand(n, generator=generator) - torch.randint(0, 2, (n,), generator=generator) * 2.0
    x2 = x2 + torch.floor(x1) % 2
    return torch.stack([x1, x2], 1)


DATASETS: dict[str, Callable[..., torch.Tensor]] = {
    "moons": two_moons,
    "8gaussians": eight_gaussians,
    "circles": circles,
    "pinwheel": pinwheel,
    "2spirals": two_spirals,
    "checkerboard": checkerboard,
}
