"""Normalisation: actnorm, batchnorm.

Actnorm is Glow's (Kingma, Dhariwal 2018, arXiv:1807.03039); batch normalisation as a
bijection is Real NVP's (Dinh, Sohl-Dickstein, Bengio 2017, arXiv:1605.08803).
"""

from __future__ import annotations

from flowspec.kinds.base import (
    _R,
    LEARNED_SCALE,
    BlockKind,
    Example,
    elementwise_kind,
    unbounded_both,
)
from flowspec.kinds.options import Float, Option
from flowspec.kinds.sizes import numel


def _per_channel(opts, shapes) -> int:
    """A scale and a shift per entry of axis 0 (per channel of [C, H, W])."""
    return 2 * shapes[0][0]


ENTRIES: tuple[BlockKind, ...] = (
    elementwise_kind(
        "actnorm",
        "per-feature scale and shift, initialised from the first batch",
        "Kingma, Dhariwal 2018, Glow, arXiv:1807.03039",
        (),
        f"{_R}.norm:ActNorm",
        parameters=_per_channel,
        bounds=LEARNED_SCALE,
        math=(
            "y = (x − μ)·exp(s) per feature (axis 0), μ and s set from the first training batch "
            "so that it has zero mean and unit variance; ladj = (H·W)·Σ s"
        ),
        examples=(Example(((3,),)), Example(((2, 3, 3),))),
    ),
    elementwise_kind(
        "batchnorm",
        "batch normalisation as a bijection (running statistics in eval)",
        "Dinh, Sohl-Dickstein, Bengio 2017, Real NVP, arXiv:1605.08803",
        (Option("momentum", Float(0.0, 1.0), 0.1), Option("eps", Float(0.0, min_open=True), 1e-5)),
        f"{_R}.norm:BatchNorm",
        parameters=_per_channel,
        activations=lambda opts, shapes: numel(shapes[0]),  # the normalised x
        bounds=unbounded_both("its batch statistics and learned scale have no bound"),
        math=(
            "y = (x − m)/√(v + ε)·exp(γ) + β per feature, m and v the batch's statistics in "
            "training and the running ones in eval; ladj = (H·W)·Σ [γ − ½·log(v + ε)]"
        ),
        examples=(Example(((3,),)), Example(((2, 3, 3),))),
    ),
)
