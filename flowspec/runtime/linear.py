"""Learned invertible linear maps: a dense ``linear`` over ``[d]`` and Glow's 1×1
convolution ``invconv`` over the channels of ``[C, H, W]``.

Both start from a random orthogonal matrix and come in two parametrisations:

- ``lu=true``: ``W = P·L·(U + diag(sign·exp(log_s)))`` with P a permutation and ``sign``
  fixed at initialisation (buffers), L unit lower triangular and U strictly upper
  triangular (learned).  ``log|det W| = Σ log_s`` costs O(d); the inverse is two
  triangular solves (against the data for a few samples, against Pᵀ to form W⁻¹ when
  there are at least d right-hand sides); W stays invertible for every value of the
  parameters.
- ``lu=false``: W is one dense learned matrix; ``log|det W|`` is ``slogdet`` and the
  inverse ``linalg.solve``, both O(d³) per call.  Nothing keeps W from becoming
  singular during training.

No factorisation or inverse is cached between calls: the parameters change during
training, and a cache would go stale.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from flowspec.runtime.base import Bijection


class _InvertibleMatrix(Bijection):
    """Shared parametrisation of a learned invertible d×d matrix W (see module docstring)."""

    perm: Tensor
    inverse_perm: Tensor
    sign: Tensor
    eye: Tensor

    def _init_matrix(self, d: int, lu: bool) -> None:
        self.lu = lu
        if torch.empty(0).device.type == "meta":  # a dry run: shapes only, no QR/LU work
            self._init_meta(d, lu)
            return
        q, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64))
        if not lu:
            self.weight = nn.Parameter(q.to(torch.get_default_dtype()))
            return
        p, lower, upper = torch.linalg.lu(q)
        dtype = torch.get_default_dtype()
        diag = upper.diagonal()
        # (P·M)[i] = M[perm[i]]; P and sign come from the random draw, so they are state
        perm = p.argmax(dim=1)
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))
        self.register_buffer("sign", diag.sign().to(dtype))
        self.register_buffer("eye", torch.eye(d, dtype=dtype), persistent=False)
        self.lower = nn.Parameter(lower.tril(-1).to(dtype))
        self.upper = nn.Parameter(upper.triu(1).to(dtype))
        self.log_s = nn.Parameter(diag.abs().log().to(dtype))

    def _init_meta(self, d: int, lu: bool) -> None:
        """The parameters and buffers of :meth:`_init_matrix` with their shapes and
        dtypes only (built under ``torch.device("meta")``, issue 13)."""
        dtype = torch.get_default_dtype()
        if not lu:
            self.weight = nn.Parameter(torch.empty(d, d, dtype=dtype))
            return
        self.register_buffer("perm", torch.empty(d, dtype=torch.long))
        self.register_buffer("inverse_perm", torch.empty(d, dtype=torch.long))
        self.register_buffer("sign", torch.empty(d, dtype=dtype))
        self.register_buffer("eye", torch.empty(d, d, dtype=dtype), persistent=False)
        self.lower = nn.Parameter(torch.empty(d, d, dtype=dtype))
        self.upper = nn.Parameter(torch.empty(d, d, dtype=dtype))
        self.log_s = nn.Parameter(torch.empty(d, dtype=dtype))

    def _factors(self) -> tuple[Tensor, Tensor]:
        """(L, U) with unit-diagonal L and U carrying sign·exp(log_s) on its diagonal."""
        lower = self.lower.tril(-1) + self.eye
        upper = self.upper.triu(1) + torch.diag_embed(self.sign * self.log_s.exp())
        return lower, upper

    def matrix(self) -> Tensor:
        """The current W, as a d×d tensor."""
        if not self.lu:
            return self.weight
        lower, upper = self._factors()
        return (lower @ upper).index_select(0, self.perm)

    def log_abs_det(self) -> Tensor:
        """log|det W|, a scalar."""
        if not self.lu:
            return torch.linalg.slogdet(self.weight)[1]
        return self.log_s.sum()

    def _inverse_matrix(self) -> Tensor:
        """W⁻¹ = U⁻¹·L⁻¹·Pᵀ by two triangular solves against Pᵀ (``lu=true`` only)."""
        lower, upper = self._factors()
        z = self.eye.index_select(0, self.inverse_perm)  # Pᵀ: (Pᵀ·v)[j] = v[P⁻¹(j)]
        z = torch.linalg.solve_triangular(lower, z, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, z, upper=True)

    def _solve_rows(self, y: Tensor) -> Tensor:
        """x with ``x·Wᵀ = y`` for a batch of rows ``y: [n, d]``."""
        if not self.lu:
            return torch.linalg.solve(self.weight.mT, y, left=False)
        if y.shape[0] >= y.shape[1]:
            # with at least d right-hand sides, forming W⁻¹ (O(d³)) and one matrix product
            # is several times faster than triangular solves with n right-hand sides
            return nn.functional.linear(y, self._inverse_matrix())
        # x·Uᵀ·Lᵀ·Pᵀ = y  ⇔  x·Uᵀ·Lᵀ = y·P, and (y·P)[:, j] = y[:, P⁻¹(j)]
        lower, upper = self._factors()
        z = y.index_select(-1, self.inverse_perm)
        z = torch.linalg.solve_triangular(lower.mT, z, upper=True, left=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper.mT, z, upper=False, left=False)

    def _solve_columns(self, y: Tensor) -> Tensor:
        """x with ``W·x = y`` for ``y: [..., d, k]`` (W broadcast over the leading axes)."""
        if not self.lu:
            return torch.linalg.solve(self.weight, y)
        if y[..., 0, :].numel() >= y.shape[-2]:
            return self._inverse_matrix() @ y  # as in _solve_rows
        lower, upper = self._factors()
        z = y.index_select(-2, self.inverse_perm)
        z = torch.linalg.solve_triangular(lower, z, upper=False, unitriangular=True)
        return torch.linalg.solve_triangular(upper, z, upper=True)

    def extra_repr(self) -> str:
        return f"in_shapes={self.in_shapes}, lu={self.lu}"


class Linear(_InvertibleMatrix):
    """A learned invertible matrix acting on flat features: ``y = W·x``.

    ladj = log|det W| (``Σ log_s`` with ``lu=true``, ``slogdet`` otherwise); inverse
    ``x = W⁻¹·y`` by two triangular solves (``lu=true``) or ``linalg.solve``.  The LU
    parametrisation is Glow's.
    Kingma, Dhariwal 2018, Glow: Generative Flow with Invertible 1x1 Convolutions,
    arXiv:1807.03039.

    Args:
        in_shapes: ``[(d,)]``.
        lu: LU-parametrised (always invertible) or a dense weight.
    """

    def __init__(self, in_shapes: list[tuple[int, ...]], lu: bool = True) -> None:
        super().__init__(in_shapes)
        self._init_matrix(self.in_shapes[0][0], lu)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y = nn.functional.linear(x, self.matrix())
        return y, self.log_abs_det().expand(x.shape[0]).clone()

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._solve_rows(y), (-self.log_abs_det()).expand(y.shape[0]).clone()

    def transform(self, x: Tensor) -> Tensor:
        return nn.functional.linear(x, self.matrix())

    def inverse_transform(self, y: Tensor) -> Tensor:
        return self._solve_rows(y)


class InvConv(_InvertibleMatrix):
    """Glow's invertible 1×1 convolution: the same learned C×C matrix mixes the channels
    at every position, ``y[:, h, w] = W·x[:, h, w]``.

    ladj = H·W·log|det W|; inverse ``x[:, h, w] = W⁻¹·y[:, h, w]`` by triangular solves
    (``lu=true``) or ``linalg.solve``.
    Kingma, Dhariwal 2018, Glow: Generative Flow with Invertible 1x1 Convolutions,
    arXiv:1807.03039.

    Args:
        in_shapes: ``[(C, H, W)]``.
        lu: LU-parametrised (always invertible) or a dense weight.
    """

    def __init__(self, in_shapes: list[tuple[int, ...]], lu: bool = True) -> None:
        super().__init__(in_shapes)
        c, h, w = self.in_shapes[0]
        self.positions = h * w
        self._init_matrix(c, lu)

    def _mix(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        return (self.matrix() @ x.reshape(b, c, -1)).reshape(x.shape)

    def _unmix(self, y: Tensor) -> Tensor:
        b, c = y.shape[:2]
        return self._solve_columns(y.reshape(b, c, -1)).reshape(y.shape)

    def _ladj(self, x: Tensor) -> Tensor:
        return (self.log_abs_det() * self.positions).expand(x.shape[0]).clone()

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._mix(x), self._ladj(x)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._unmix(y), -self._ladj(y)

    def transform(self, x: Tensor) -> Tensor:
        return self._mix(x)

    def inverse_transform(self, y: Tensor) -> Tensor:
        return self._unmix(y)


__all__ = ["InvConv", "Linear"]
