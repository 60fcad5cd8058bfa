"""The block registry: one entry per block kind is the whole story of that kind.

An entry declares the kind's options (type, default, range), its shape rule, its
invertibility and log-det classes, its static Lipschitz bounds (forward and inverse,
or unbounded with a reason), which features it transforms (for W100/W101), the
invertibility problems of a configuration (E302/E303), the options a configuration
needs beyond the required ones (``needs``: gaussianize's ``net`` once ``cond=`` is
given, E201 when missing), the runtime module that
implements it (by import path, so this package never imports torch), and examples
the test harness runs it on.  Adding a block is one entry in its family module and
one runtime class.

Nets (``mlp``, ``conv``, ``resnet``), activations, latents and estimators live in
the same kind of table: an :class:`~flowspec.kinds.options.Enum` of words with options
(:mod:`flowspec.kinds.words`).

The package: :mod:`~flowspec.kinds.base` (``BlockKind`` and the shared helpers),
:mod:`~flowspec.kinds.options` (option types and the resolver),
:mod:`~flowspec.kinds.words` (the word tables), :mod:`~flowspec.kinds.masks` (coupling
masks and permutations, shared with the runtime), and one module per family, each its
helpers followed by its entries.  ``KINDS`` lists the families' entries in this order.
"""

from __future__ import annotations

from flowspec.kinds import (
    autoregressive,
    coupling,
    elementwise,
    linear,
    norm,
    ode,
    permute,
    planar,
    reshape,
    residual,
)
from flowspec.kinds.base import BlockKind, Bound, Example, Opts, Problem, Shape, ShapeError
from flowspec.kinds.words import (
    ACT,
    ACTIVATIONS,
    COND,
    DEQUANTIZERS,
    FIXEDPOINT,
    GRAD,
    INIT,
    LATENTS,
    LOGDET,
    MASK,
    NET,
    NETS,
    ORDER,
    SCALE,
    SOLVER,
    SOLVERS,
    TRACE,
)

KINDS: tuple[BlockKind, ...] = (
    *reshape.ENTRIES,
    *permute.ENTRIES,
    *coupling.ENTRIES,
    *norm.ENTRIES,
    *linear.ENTRIES,
    *elementwise.ENTRIES,
    *planar.ENTRIES,
    *autoregressive.ENTRIES,
    *residual.ENTRIES,
    *ode.ENTRIES,
)

REGISTRY: dict[str, BlockKind] = {k.name: k for k in KINDS}

__all__ = [
    "ACT",
    "ACTIVATIONS",
    "COND",
    "DEQUANTIZERS",
    "FIXEDPOINT",
    "GRAD",
    "INIT",
    "KINDS",
    "LATENTS",
    "LOGDET",
    "MASK",
    "NET",
    "NETS",
    "ORDER",
    "REGISTRY",
    "SCALE",
    "SOLVER",
    "SOLVERS",
    "TRACE",
    "BlockKind",
    "Bound",
    "Example",
    "Opts",
    "Problem",
    "Shape",
    "ShapeError",
]
