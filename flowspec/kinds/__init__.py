"""The compile-time description of every block kind (pure Python, never torch)."""

from flowspec.kinds.base import (
    ACTIVATIONS,
    DEQUANTIZERS,
    KINDS,
    LATENTS,
    MASK,
    REGISTRY,
    SCALE,
    BlockKind,
    Example,
    ShapeError,
)

__all__ = [
    "ACTIVATIONS",
    "DEQUANTIZERS",
    "KINDS",
    "LATENTS",
    "MASK",
    "REGISTRY",
    "SCALE",
    "BlockKind",
    "Example",
    "ShapeError",
]
