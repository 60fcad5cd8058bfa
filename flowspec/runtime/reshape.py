"""Volume-preserving rearrangements: split, concat, squeeze, unsqueeze, flatten, reshape.

Each moves entries without changing them, so ladj = 0 and the inverse is exact.  The
value-only paths (``transform`` / ``inverse_transform``) return views where the layout
allows it and never build a log-det tensor: the generated module calls them for every
block whose registry log-det class is ``zero``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from flowspec.runtime.base import VolumePreserving


def _axis(dim: int, shape: tuple[int, ...]) -> int:
    """The tensor axis (batch included) of the per-sample axis ``dim`` (may be negative)."""
    return dim % len(shape) + 1


class Split(VolumePreserving):
    """Split one tensor into several along an axis.

    ``y_k = x[o_k : o_k + s_k]`` along ``dim``, with ``o_k = s_0 + … + s_{k−1}``;
    ``sizes`` defaults to the halves ``[d // 2, d − d // 2]``.  ladj = 0; the inverse
    concatenates.  Returns a tuple of views of ``x``.

    Args:
        in_shapes: ``[shape]`` of the one input, without the batch axis.
        sizes: sizes of the parts along ``dim`` (adding up to that axis), or None.
        dim: the per-sample axis to split (0 = features).
    """

    def __init__(
        self, in_shapes: list[tuple[int, ...]], sizes: list[int] | None = None, dim: int = 0
    ) -> None:
        super().__init__(in_shapes)
        shape = self.in_shapes[0]
        self.dim = _axis(dim, shape)
        n = shape[self.dim - 1]
        self.sizes = list(sizes) if sizes is not None else [n // 2, n - n // 2]

    def transform(self, x: Tensor) -> tuple[Tensor, ...]:
        return x.split(self.sizes, self.dim)

    def inverse_transform(self, *ys: Tensor) -> Tensor:
        return torch.cat(ys, self.dim)

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, dim={self.dim - 1}"


class Concat(VolumePreserving):
    """Concatenate several tensors along an axis; the inverse of :class:`Split`.

    ``y = [x_0; x_1; …]`` along ``dim``.  ladj = 0; the inverse returns a tuple of views.

    Args:
        in_shapes: the shapes of the inputs (equal except along ``dim``).
        dim: the per-sample axis to concatenate along (0 = features).
    """

    def __init__(self, in_shapes: list[tuple[int, ...]], dim: int = 0) -> None:
        super().__init__(in_shapes)
        self.dim = _axis(dim, self.in_shapes[0])
        self.sizes = [s[self.dim - 1] for s in self.in_shapes]

    def transform(self, *xs: Tensor) -> Tensor:
        return torch.cat(xs, self.dim)

    def inverse_transform(self, y: Tensor) -> tuple[Tensor, ...]:
        return y.split(self.sizes, self.dim)

    def extra_repr(self) -> str:
        return f"in_shapes={self.in_shapes}, dim={self.dim - 1}"


def _space_to_depth(x: Tensor, f: int) -> Tensor:
    # out[c·f² + i·f + j, y, x] = in[c, y·f + i, x·f + j]: the layout the checker's
    # feature map (registry._squeeze_map) assumes, so W100/W101 see what runs
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // f, f, w // f, f)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(b, c * f * f, h // f, w // f)


def _depth_to_space(x: Tensor, f: int) -> Tensor:
    b, c, h, w = x.shape
    x = x.reshape(b, c // (f * f), f, f, h, w)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(b, c // (f * f), h * f, w * f)


class _Patches(VolumePreserving):
    """Shared by :class:`Squeeze` and :class:`Unsqueeze`: the patch size ``factor``."""

    def __init__(self, in_shapes: list[tuple[int, ...]], factor: int = 2) -> None:
        super().__init__(in_shapes)
        self.factor = factor

    def extra_repr(self) -> str:
        return f"in_shapes={self.in_shapes}, factor={self.factor}"


class Squeeze(_Patches):
    """Trade space for channels: ``[C, H, W] → [C·f², H/f, W/f]``.

    ``y[c·f² + i·f + j, v, u] = x[c, v·f + i, u·f + j]`` for ``0 ≤ i, j < f``: each
    f×f patch becomes f² channels.  ladj = 0; the inverse is :class:`Unsqueeze`.
    Dinh, Sohl-Dickstein, Bengio 2017, Density estimation using Real NVP, arXiv:1605.08803.

    Args:
        in_shapes: ``[(C, H, W)]`` with H and W divisible by ``factor``.
        factor: the patch size f.
    """

    def transform(self, x: Tensor) -> Tensor:
        return _space_to_depth(x, self.factor)

    def inverse_transform(self, y: Tensor) -> Tensor:
        return _depth_to_space(y, self.factor)


class Unsqueeze(_Patches):
    """Trade channels for space: ``[C, H, W] → [C/f², H·f, W·f]``, the inverse of squeeze.

    ``y[c, v·f + i, u·f + j] = x[c·f² + i·f + j, v, u]``.  ladj = 0.

    Args:
        in_shapes: ``[(C, H, W)]`` with C divisible by ``factor²``.
        factor: the patch size f.
    """

    def transform(self, x: Tensor) -> Tensor:
        return _depth_to_space(x, self.factor)

    def inverse_transform(self, y: Tensor) -> Tensor:
        return _space_to_depth(y, self.factor)


class Reshape(VolumePreserving):
    """Reshape the per-sample tensor, row-major: ``y = x.reshape(B, *shape)``.

    ``shape`` may hold one −1, resolved against the input shape at construction.
    ladj = 0; the inverse reshapes back.  A view whenever ``x`` is contiguous.

    Args:
        in_shapes: ``[shape]`` of the one input.
        shape: the target shape without the batch axis.
    """

    def __init__(self, in_shapes: list[tuple[int, ...]], shape: list[int]) -> None:
        super().__init__(in_shapes)
        target = list(shape)
        if -1 in target:
            known = math.prod(t for t in target if t != -1)
            target[target.index(-1)] = math.prod(self.in_shapes[0]) // known
        self.out_shape = tuple(target)

    def transform(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.out_shape)

    def inverse_transform(self, y: Tensor) -> Tensor:
        return y.reshape(y.shape[0], *self.in_shapes[0])

    def extra_repr(self) -> str:
        return f"in_shapes={self.in_shapes}, shape={list(self.out_shape)}"


class Flatten(Reshape):
    """Flatten the per-sample tensor to ``[d]``, row-major.  ladj = 0.

    Args:
        in_shapes: ``[shape]`` of the one input.
    """

    def __init__(self, in_shapes: list[tuple[int, ...]]) -> None:
        super().__init__(in_shapes, shape=[-1])


__all__ = ["Concat", "Flatten", "Reshape", "Split", "Squeeze", "Unsqueeze"]
