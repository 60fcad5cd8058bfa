"""The runtime contract every block kind implements.

A block is an ``nn.Module`` mapping data to latent (the normalizing direction)::

    y, ladj = block(x)                 # fused value and log|det ∂y/∂x|, ladj: [B]
    x, ladj_inv = block.inverse(y)     # fused inverse; ladj_inv = −ladj at that x
    y = block.transform(x)             # value only (no log-det work)
    x = block.inverse_transform(y)     # value only

Tensors carry a leading batch axis.  A block consuming several tensors takes them
positionally (``concat(a, b)``); a block producing several returns a tuple (``split``).
A block with a ``cond=`` option takes ``cond=`` as a keyword at call time (a tensor of
the conditioning shape with the same batch size), in every one of the four methods.

Construction: ``Kind(in_shapes, **options)`` where ``in_shapes`` lists the shapes
(without the batch axis) of the tensors consumed, and ``options`` are the resolved
options of the registry entry: numbers, booleans, lists, and
:class:`~flowspec.kinds.options.Choice` for every enum word or net (``mask=Choice('half')``,
``net=Choice('mlp', hidden=[64], act=Choice('relu'), init=Choice('zero'))``); a
tensor-typed option such as ``cond`` is given as the conditioning tensor's shape (or
None when absent).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

Tensors = Tensor | tuple[Tensor, ...]


class Bijection(nn.Module):
    """Base class of the runtime blocks; subclasses implement ``forward`` and ``inverse``."""

    def __init__(self, in_shapes: list[tuple[int, ...]], **options: Any) -> None:
        super().__init__()
        self.in_shapes = [tuple(s) for s in in_shapes]
        #: how run-time errors name the block; generated code sets it to the spec location
        self.name = f"{type(self).__name__.lower()}(x: {list(self.in_shapes[0])})"

    def forward(self, *xs: Any, **cond: Any) -> Any:  # subclasses narrow the signature
        raise NotImplementedError

    def inverse(self, *ys: Any, **cond: Any) -> Any:
        raise NotImplementedError

    def transform(self, *xs: Any, **cond: Any) -> Any:
        return self.forward(*xs, **cond)[0]

    def inverse_transform(self, *ys: Any, **cond: Any) -> Any:
        return self.inverse(*ys, **cond)[0]

    def extra_repr(self) -> str:
        return f"in_shapes={self.in_shapes}"


def zero_ladj(x: Tensor) -> Tensor:
    """A zero log-det for a batch, on ``x``'s device and dtype."""
    return x.new_zeros(x.shape[0])


class VolumePreserving(Bijection):
    """Base class of the blocks with ladj = 0 (rearrangements, NICE's additive coupling).

    Subclasses implement ``transform`` and ``inverse_transform``; ``forward`` and
    ``inverse`` return those values with :func:`zero_ladj` of the first argument.
    """

    def forward(self, *xs: Any, **cond: Any) -> Any:
        return self.transform(*xs, **cond), zero_ladj(xs[0])

    def inverse(self, *ys: Any, **cond: Any) -> Any:
        return self.inverse_transform(*ys, **cond), zero_ladj(ys[0])

    def transform(self, *xs: Any, **cond: Any) -> Any:
        raise NotImplementedError

    def inverse_transform(self, *ys: Any, **cond: Any) -> Any:
        raise NotImplementedError


def sum_except_batch(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1).sum(dim=1)


def load_runtime(path: str) -> type[Bijection]:
    """Import a registry entry's runtime class from ``"package.module:Class"``."""
    import importlib

    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "Bijection",
    "VolumePreserving",
    "load_runtime",
    "sum_except_batch",
    "torch",
    "zero_ladj",
]
