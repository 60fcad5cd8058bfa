"""Small built-in 2-D data sets for examples, tests and benchmarks (no downloads)."""

from __future__ import annotations

import math

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


DATASETS = {"moons": two_moons, "8gaussians": eight_gaussians}
