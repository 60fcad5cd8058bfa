"""Parameter counts and activation sizes from shapes and options alone (no torch).

Every :class:`~flowspec.kinds.base.BlockKind` gives ``parameters(opts, shapes)``, the
number of learned parameters its runtime block has, and may give
``activations(opts, shapes)``, the numbers per sample its forward pass computes besides
its outputs (the hidden layers of its nets), which autograd keeps for the backward pass
in training.  The nets (``mlp``, ``conv``, ``resnet``) are shared by several families,
so their counts live here, written to mirror :func:`flowspec.runtime.nets.build_net`
and :mod:`flowspec.runtime.lipschitz_layers`; ``tests/test_resources.py`` checks every
formula against the built runtime block of every registry example.

``shapes`` is what the checker hands a shape rule: the consumed tensors, then ``cond``.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

Shape = tuple[int, ...]

#: parameters of one activation module: LipSwish learns its β
ACTIVATION_PARAMETERS = {"lipswish": 1}


def numel(shape: Shape) -> int:
    return math.prod(shape)


def _act(net: Any) -> int:
    """Parameters of one activation of ``net`` (a resolved ``Choice`` of NETS)."""
    act = net["act"]
    return ACTIVATION_PARAMETERS.get(getattr(act, "kind", act), 0)


def _dense(widths: list[int]) -> int:
    """Weights and biases of Linear layers through ``widths``."""
    return sum(a * b + b for a, b in itertools.pairwise(widths))


def _conv(c_in: int, c_out: int, kernel: int) -> int:
    return c_in * c_out * kernel * kernel + c_out


def net_parameters(net: Any, in_shape: Shape, out_shape: Shape) -> int:
    """Parameters of ``build_net(net, in_shape, out_shape)``: an ``mlp`` on the
    flattened features; a ``conv`` or ``resnet`` from C to C' channels (H, W kept)."""
    o = net.options
    if net.kind == "mlp":
        hidden = list(o["hidden"])
        return _dense([numel(in_shape), *hidden, numel(out_shape)]) + len(hidden) * _act(net)
    c_in, c_out = in_shape[0], out_shape[0]
    h = o["hidden"]
    if net.kind == "conv":
        k, depth = o["kernel"], o["depth"]
        if depth == 0:  # gaussianize's prior: one k×k convolution
            return _conv(c_in, c_out, k)
        convs = _conv(c_in, h, k) + (depth - 1) * _conv(h, h, 1) + _conv(h, c_out, k)
        return convs + depth * _act(net)
    if net.kind == "resnet":
        blocks = o["blocks"]
        convs = _conv(c_in, h, 3) + 2 * blocks * _conv(h, h, 3) + _conv(h, c_out, 3)
        return convs + (2 * blocks + 1) * _act(net)
    raise ValueError(f"unknown net {net.kind}")


def net_activations(net: Any, in_shape: Shape, out_shape: Shape) -> int:
    """Numbers per sample a net computes besides its input: each layer's output and
    each activation's output (a resnet unit also its sum), the last layer's output
    included."""
    o = net.options
    if net.kind == "mlp":
        return 2 * sum(o["hidden"]) + numel(out_shape)
    plane = numel(in_shape[1:])
    h = o["hidden"]
    if net.kind == "conv":
        return (2 * o["depth"] * h + out_shape[0]) * plane
    if net.kind == "resnet":
        return ((1 + 5 * o["blocks"] + 1) * h + out_shape[0]) * plane
    raise ValueError(f"unknown net {net.kind}")


def lipschitz_net_parameters(net: Any, shape: Shape) -> int:
    """Parameters of a residual block's branch g (:mod:`flowspec.runtime.lipschitz_layers`):
    an mlp of certified layers through ``[d, *hidden, d]``, or a conv branch
    conv(k) → [conv(1)]×(depth − 1) → conv(k) from C channels back to C."""
    o = net.options
    if net.kind == "mlp":
        hidden = list(o["hidden"])
        d = numel(shape)
        return _dense([d, *hidden, d]) + len(hidden) * _act(net)
    if net.kind != "conv":  # resnet: refused for residual blocks (E303), builds nothing
        return 0
    h, k, depth = o["hidden"], o["kernel"], o["depth"]
    c = shape[0]
    convs = _conv(c, h, k) + (depth - 1) * _conv(h, h, 1) + _conv(h, c, k)
    return convs + depth * _act(net)


def lipschitz_net_activations(net: Any, shape: Shape) -> int:
    o = net.options
    if net.kind == "mlp":
        return 2 * sum(o["hidden"]) + numel(shape)
    if net.kind != "conv":
        return 0
    return (2 * o["depth"] * o["hidden"] + shape[0]) * numel(shape[1:])


def made_parameters(hidden: list[int], act: Any, d: int, cond: int, params: int) -> int:
    """A MADE (:class:`flowspec.runtime.autoregressive.MADE`): masked Linear layers
    through ``[d + cond, *hidden, d·params]``; the masks are buffers, not parameters."""
    kind = getattr(act, "kind", act)
    return _dense([d + cond, *hidden, d * params]) + len(hidden) * ACTIVATION_PARAMETERS.get(
        kind, 0
    )


def made_activations(hidden: list[int], d: int, params: int) -> int:
    return 2 * sum(hidden) + d * params


def spline_params(opts: Any) -> int:
    """Numbers per transformed element of a rational-quadratic spline of ``bins`` bins
    (both spline kinds): the widths, the heights and the interior derivatives."""
    return 3 * opts["bins"] - 1


def no_parameters(opts: Any, shapes: list[Shape]) -> int:
    """``parameters=`` of a kind that learns nothing (reshapes, fixed permutations)."""
    return 0


def no_activations(opts: Any, shapes: list[Shape]) -> int:
    """``activations=`` of a kind that computes nothing besides its outputs."""
    return 0


def format_bytes(n: int) -> str:
    """``812 bytes``, ``4.3 MB``, ``8.0 TB``: decimal units, for messages and tables."""
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError  # pragma: no cover
