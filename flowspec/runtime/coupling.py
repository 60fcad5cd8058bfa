"""Coupling layers: transform x_b given x_a, so the inverse needs only one net pass.

The mask says which features condition (x_a) and which are transformed (x_b); it is
exactly :func:`flowspec.kinds.masks.transformed_indices`, the definition the checker's
W100/W101 use.  Row masks (``half``/``channel``, ``alternate``) split axis 0 with
strided slices (views, no gathers); ``checkerboard`` multiplies by a fixed 0/1 buffer,
so the net sees x·m and the update applies where 1 − m.

The conditioner is :func:`flowspec.runtime.nets.build_net`; its output is read as
``[B, P, *x_b.shape]`` (P parameters per transformed element: 1 shift, or a log-scale
and a shift, or ``3·bins − 1`` spline parameters), so a ``conv`` net's output channel
``p·C_b + c`` is parameter p of channel c.  Its last layer is zero, so every coupling
starts at the identity.  With ``cond=``, an ``mlp`` reads the flattened x_a and cond
concatenated; a ``conv``/``resnet`` reads them stacked along channels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from flowspec.kinds import masks
from flowspec.kinds.options import Choice, word
from flowspec.runtime.base import Bijection, VolumePreserving
from flowspec.runtime.nets import build_net

#: ``scale=softclamp`` bounds the log-scale to (−c, c) with log s = c·tanh(h / c).
SOFTCLAMP = 2.0


class Coupling(Bijection):
    """Shared machinery of the coupling kinds: the mask split and the conditioner.

    ``params`` is P, the number of conditioner outputs per transformed element.
    Subclasses implement the elementwise map of x_b: they take their own options and
    pass the rest here with their P; options no coupling reads are ignored.

    Args:
        in_shapes: ``[shape]`` of the one consumed tensor.
        net: the conditioner's resolved spec (``Choice('mlp', ...)``, ``conv``, ``resnet``).
        mask, flip: which features condition and which are transformed
            (:func:`flowspec.kinds.masks.transformed_indices`).
        cond: shape of the conditioning tensor (read by the conditioner), or None.
        params: P.
    """

    # checkerboard masks, registered as buffers for that mask only
    transformed_mask: Tensor
    conditioning: Tensor
    transformed: Tensor

    def __init__(
        self,
        in_shapes: list[tuple[int, ...]],
        *,
        net: Choice,
        mask: Choice | str = "half",
        flip: bool = False,
        cond: tuple[int, ...] | None = None,
        params: int = 1,
        **options: Any,
    ) -> None:
        super().__init__(in_shapes)
        shape = self.in_shapes[0]
        self.mask = word(mask)
        self.flip = bool(flip)
        self.cond_shape = None if cond is None else tuple(cond)
        self.feature_dims = tuple(range(1, len(shape) + 1))
        self.checkerboard = self.mask == "checkerboard"
        if self.checkerboard:
            c, h, w = shape
            transformed = torch.zeros(masks.numel(shape), dtype=torch.bool)
            transformed[masks.transformed_indices(self.mask, self.flip, shape)] = True
            # the pattern is the same in every channel, so one plane broadcasts
            plane = transformed.view(c, h, w)[:1]
            self.register_buffer("transformed_mask", plane, persistent=False)
            self.register_buffer("conditioning", (~plane).to(torch.float32), persistent=False)
            self.register_buffer("transformed", plane.to(torch.float32), persistent=False)
            a_shape = b_shape = shape
        else:
            rows_a, rows_b = masks.axis0_split(self.mask, self.flip, shape[0])
            self.slice_a, self.slice_b = _as_slice(rows_a), _as_slice(rows_b)
            # half/channel keep contiguous blocks, so the output is one torch.cat
            self.a_first = rows_a[0] == 0
            self.interleaved = self.mask == "alternate"
            a_shape = (len(rows_a), *shape[1:])
            b_shape = (len(rows_b), *shape[1:])
        self.param_shape = (params, *b_shape)

        kind = net.kind
        self.cond_flat = cond is not None and kind == "mlp"
        self.cond_channels = cond is not None and kind != "mlp"
        net_in: tuple[int, ...]
        net_out: tuple[int, ...]
        if kind == "mlp":
            # flat in and out: build_net then returns the bare Linear–act stack (no
            # flatten/reshape modules on the hot path); x_a is flattened here if needed
            net_in = (masks.numel(a_shape) + (masks.numel(cond) if cond is not None else 0),)
            net_out = (params * masks.numel(b_shape),)
            self._flatten_input = len(a_shape) > 1 and cond is None
        else:
            net_in = (a_shape[0] + (cond[0] if cond is not None else 0), *a_shape[1:])
            net_out = (params * b_shape[0], *b_shape[1:])
            self._flatten_input = False
        self.conditioner = build_net(net, net_in, net_out)
        self._params = params
        # chunks of a flat mlp output need x_b's shape back; conv chunks already have it
        self._chunk_shape = b_shape if kind == "mlp" and len(b_shape) > 1 else None

    # ------------------------------------------------------------------ the mask
    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(x_a, x_b); for checkerboard, (x·m, x): the update is masked later."""
        if self.checkerboard:
            return x * self.conditioning, x
        return x[:, self.slice_a], x[:, self.slice_b]

    def merge(self, x_a: Tensor, y_b: Tensor) -> Tensor:
        """Reassemble the output from the untouched x_a and the transformed y_b."""
        if self.checkerboard:
            return y_b
        if not self.interleaved:
            return torch.cat((x_a, y_b) if self.a_first else (y_b, x_a), dim=1)
        out = y_b.new_empty((y_b.shape[0], *self.in_shapes[0]))
        out[:, self.slice_a] = x_a
        out[:, self.slice_b] = y_b
        return out

    def _net(self, x_a: Tensor, cond: Tensor | None) -> Tensor:
        """The conditioner's raw output: ``[B, P·|x_b|]`` for mlp, ``[B, P·C_b, H, W]``
        otherwise, P-major in both."""
        if self.cond_flat or self.cond_channels:
            if cond is None:
                raise ValueError(f"{type(self).__name__} was built with cond= but got none")
            if self.cond_flat:
                x_a = torch.cat((x_a.flatten(1), cond.flatten(1)), dim=1)
            else:
                x_a = torch.cat((x_a, cond), dim=1)
        elif cond is not None:
            raise ValueError(f"{type(self).__name__} was built without cond= but got one")
        return self.conditioner(x_a.flatten(1) if self._flatten_input else x_a)

    def params_of(self, x_a: Tensor, cond: Tensor | None) -> Tensor:
        """The conditioner's output as ``[B, P, *x_b.shape]``."""
        h = self._net(x_a, cond)
        return h.view(h.shape[0], *self.param_shape)

    def chunks_of(self, x_a: Tensor, cond: Tensor | None) -> tuple[Tensor, ...]:
        """The conditioner's output as P tensors shaped like x_b."""
        h = self._net(x_a, cond)
        parts = h.chunk(self._params, dim=1) if self._params > 1 else (h,)
        if self._chunk_shape is not None:
            parts = tuple(p.reshape(p.shape[0], *self._chunk_shape) for p in parts)
        return parts

    def extra_repr(self) -> str:
        cond = "" if self.cond_shape is None else f", cond={list(self.cond_shape)}"
        return f"{super().extra_repr()}, mask={self.mask}, flip={self.flip}{cond}"


def _as_slice(rows: range | list[int]) -> slice:
    """The slice selecting ``rows`` (consecutive or every other row)."""
    step = rows[1] - rows[0] if len(rows) > 1 else 1
    s = slice(rows[0], rows[-1] + 1, step)
    expected = range(s.start, s.stop, step)
    if (expected != rows) if isinstance(rows, range) else (list(expected) != list(rows)):
        raise ValueError(f"rows {rows} are not a slice")
    return s


class AdditiveCoupling(Coupling, VolumePreserving):
    """NICE additive coupling: y_a = x_a, y_b = x_b + t(x_a); volume preserving.

    Math: ladj = 0; inverse x_b = y_b − t(y_a).

    Reference: Dinh, Krueger, Bengio 2015, NICE: Non-linear Independent Components
    Estimation, arXiv:1410.8516.

    Args:
        in_shapes, net, mask, flip, cond: as for :class:`Coupling`.
    """

    def _shift(self, x_a: Tensor, cond: Tensor | None) -> Tensor:
        (t,) = self.chunks_of(x_a, cond)
        return t * self.transformed if self.checkerboard else t

    def transform(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        x_a, x_b = self.split(x)
        return self.merge(x_a, x_b + self._shift(x_a, cond))

    def inverse_transform(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        y_a, y_b = self.split(y)
        return self.merge(y_a, y_b - self._shift(y_a, cond))


def _log_scale_exp(h: Tensor) -> Tensor:
    return h


#: log σ(2): ``scale=sigmoid`` divides by σ(2) so that h = 0 is the identity
_LOG_SIGMOID_2 = math.log(1.0 / (1.0 + math.exp(-2.0)))


def _log_scale_sigmoid(h: Tensor) -> Tensor:
    return F.logsigmoid(h + 2.0) - _LOG_SIGMOID_2


def _log_scale_softclamp(h: Tensor) -> Tensor:
    return SOFTCLAMP * torch.tanh(h * (1.0 / SOFTCLAMP))


def _scale_sigmoid(h: Tensor) -> Tensor:
    return torch.sigmoid(h + 2.0) * math.exp(-_LOG_SIGMOID_2)


_LOG_SCALES: dict[str, Callable[[Tensor], Tensor]] = {
    "exp": _log_scale_exp,
    "sigmoid": _log_scale_sigmoid,
    "softclamp": _log_scale_softclamp,
}


class AffineCoupling(Coupling):
    """Affine coupling: y_a = x_a, y_b = x_b · s(x_a) + t(x_a).

    Math: with the conditioner's h = net(x_a) and the ``scale`` rule
    ``exp``: s = exp(h) (Real NVP); ``sigmoid``: s = σ(h + 2)/σ(2) (Glow's σ(h + 2), scaled
    so that the zero-initialised net starts at the identity), s ∈ (0, 1.135);
    ``softclamp``: log s = c·tanh(h / c) with c = ``SOFTCLAMP`` = 2, so s ∈ (e⁻², e²) and
    s = exp(h) for small h.  ladj = Σ log s over x_b; inverse
    x_b = (y_b − t(y_a)) / s(y_a).

    References: Dinh, Sohl-Dickstein, Bengio 2017, Density estimation using Real NVP,
    arXiv:1605.08803; Kingma, Dhariwal 2018, Glow: Generative Flow with Invertible 1x1
    Convolutions, arXiv:1807.03039.

    Args:
        in_shapes, net, mask, flip, cond: as for :class:`Coupling`.
        scale: ``exp``, ``sigmoid`` or ``softclamp``.
    """

    def __init__(
        self,
        in_shapes: list[tuple[int, ...]],
        *,
        scale: Choice | str = "softclamp",
        **options: Any,
    ) -> None:
        super().__init__(in_shapes, params=2, **options)
        self.scale = word(scale)
        self._log_scale = _LOG_SCALES[self.scale]

    def _log_scale_shift(self, x_a: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        h, t = self.chunks_of(x_a, cond)
        log_s = self._log_scale(h)
        if self.checkerboard:
            # log s = 0 and t = 0 on the conditioning positions: the update is masked
            return log_s * self.transformed, t * self.transformed
        return log_s, t

    def _scale_shift(self, x_a: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor]:
        if self.scale == "sigmoid" and not self.checkerboard:
            h, t = self.chunks_of(x_a, cond)
            return _scale_sigmoid(h), t
        log_s, t = self._log_scale_shift(x_a, cond)
        return log_s.exp(), t

    def forward(self, x: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        x_a, x_b = self.split(x)
        log_s, t = self._log_scale_shift(x_a, cond)
        y = self.merge(x_a, x_b * log_s.exp() + t)
        return y, log_s.sum(dim=self.feature_dims)

    def inverse(self, y: Tensor, cond: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y_a, y_b = self.split(y)
        log_s, t = self._log_scale_shift(y_a, cond)
        x = self.merge(y_a, (y_b - t) * torch.exp(-log_s))
        return x, -log_s.sum(dim=self.feature_dims)

    def transform(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        x_a, x_b = self.split(x)
        s, t = self._scale_shift(x_a, cond)
        return self.merge(x_a, x_b * s + t)

    def inverse_transform(self, y: Tensor, cond: Tensor | None = None) -> Tensor:
        y_a, y_b = self.split(y)
        s, t = self._scale_shift(y_a, cond)
        return self.merge(y_a, (y_b - t) / s)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale}"


__all__ = ["SOFTCLAMP", "AdditiveCoupling", "AffineCoupling", "Coupling"]
