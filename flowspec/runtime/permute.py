"""Fixed permutations of the features (axis 0 of the per-sample tensor).

Permutations are volume-preserving (ladj = 0) and exactly invertible.  They sit between
couplings so that every feature is transformed.  The index tensors are built once at
construction as non-persistent buffers: they follow the module across devices but are
not part of its ``state_dict`` (they are a function of the options alone).
"""

from __future__ import annotations

import torch
from torch import Tensor

from flowspec.kinds.masks import shuffle_permutation
from flowspec.runtime.base import Bijection, zero_ladj


class Reverse(Bijection):
    """Reverse the order of the features: ``y[i] = x[d − 1 − i]`` along axis 0.

    ladj = 0; the map is its own inverse.  Dinh, Krueger, Bengio 2015, NICE,
    arXiv:1410.8516 (alternating which half a coupling updates).

    Args:
        in_shapes: ``[shape]``; axis 0 of ``shape`` is reversed, other axes are kept.
    """

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.flip(1), zero_ladj(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return y.flip(1), zero_ladj(y)

    def transform(self, x: Tensor) -> Tensor:
        return x.flip(1)

    def inverse_transform(self, y: Tensor) -> Tensor:
        return y.flip(1)


class Permute(Bijection):
    """An explicit permutation of the features: ``y[i] = x[order[i]]`` along axis 0.

    ladj = 0; the inverse gathers with the inverse permutation, ``x[order[i]] = y[i]``.

    Args:
        in_shapes: ``[shape]``; ``order`` permutes axis 0 of ``shape``.
        order: a permutation of ``0 … shape[0] − 1``.
    """

    perm: Tensor
    inverse_perm: Tensor

    def __init__(self, in_shapes: list[tuple[int, ...]], order: list[int]) -> None:
        super().__init__(in_shapes)
        perm = torch.as_tensor(list(order), dtype=torch.long)
        self.register_buffer("perm", perm, persistent=False)
        self.register_buffer("inverse_perm", torch.argsort(perm), persistent=False)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x.index_select(1, self.perm), zero_ladj(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return y.index_select(1, self.inverse_perm), zero_ladj(y)

    def transform(self, x: Tensor) -> Tensor:
        return x.index_select(1, self.perm)

    def inverse_transform(self, y: Tensor) -> Tensor:
        return y.index_select(1, self.inverse_perm)

    def extra_repr(self) -> str:
        return f"in_shapes={self.in_shapes}, order={self.perm.tolist()}"


class Shuffle(Permute):
    """A fixed random permutation of the features, drawn from ``seed``.

    ``y[i] = x[perm[i]]`` along axis 0 with ``perm = masks.shuffle_permutation(d, seed)``,
    the same function the checker uses for W100/W101.  ladj = 0.

    Args:
        in_shapes: ``[shape]``; axis 0 of ``shape`` is permuted.
        seed: the seed of the permutation (the same seed gives the same permutation).
    """

    def __init__(self, in_shapes: list[tuple[int, ...]], seed: int = 0) -> None:
        super().__init__(in_shapes, order=shuffle_permutation(in_shapes[0][0], seed))
        self.seed = seed

    def extra_repr(self) -> str:
        return f"in_shapes={self.in_shapes}, seed={self.seed}"


__all__ = ["Permute", "Reverse", "Shuffle"]
