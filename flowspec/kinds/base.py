"""What every family module builds on: :class:`BlockKind` (one entry is the whole story
of a block kind), :class:`Bound`, :class:`Problem`, :class:`Example`,
:class:`ShapeError`, the shape and bound helpers several families share, and the
templates of the kinds two families share the fields of (:func:`permutation_kind`,
:func:`elementwise_kind`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flowspec.kinds.options import Option, Tensor
from flowspec.kinds.sizes import no_activations, no_parameters

Shape = tuple[int, ...]
Opts = Mapping[str, Any]


class ShapeError(Exception):
    """A shape rule's complaint (E202), pointing at ``option`` when one is to blame."""

    def __init__(self, message: str, option: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.option = option
        self.hint = hint


@dataclass(frozen=True)
class Bound:
    """A static Lipschitz bound: ``value`` proven, or ``None`` with the ``reason``."""

    value: float | None
    reason: str = ""

    @staticmethod
    def unbounded(reason: str) -> Bound:
        return Bound(None, reason)


@dataclass(frozen=True)
class Problem:
    """A problem of a configuration: an invertibility error (E302 or E303) from a kind's
    ``problems``, or a warning (W103) from its ``advice``."""

    code: str
    message: str
    option: str | None = None
    hint: str | None = None


@dataclass(frozen=True)
class Example:
    """A configuration the registry-driven test harness runs a kind on."""

    shapes: tuple[Shape, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    cond: Shape | None = None


@dataclass(frozen=True)
class BlockKind:
    name: str
    summary: str
    paper: str
    options: tuple[Option, ...]
    shape: Callable[[Opts, list[Shape]], list[Shape]]
    runtime: str
    #: how many tensors it consumes: an int, or None for one or more
    inputs: int | None = 1
    #: how many it produces, from the options
    outputs: Callable[[Opts], int] = lambda opts: 1
    #: "exact" | "analytic" | "sequential" | "iterative" | "integrated"
    inverse: str | Callable[[Opts], str] = "exact"
    #: "one pass" | "sequential": how the normalizing direction (``log_prob``) runs; IAF
    #: is sequential there and one pass in its inverse
    forward: str | Callable[[Opts], str] = "one pass"
    #: "zero" | "analytic" | "stochastic" | "exact-bruteforce"
    logdet: str | Callable[[Opts], str] = "zero"
    lipschitz: Callable[[Opts, list[Shape]], Bound] = lambda opts, shapes: Bound.unbounded(
        "no bound is known for this block"
    )
    inverse_lipschitz: Callable[[Opts, list[Shape]], Bound] = lambda opts, shapes: Bound.unbounded(
        "no bound is known for this block"
    )
    #: "permutation" (moves features; see ``feature_map``), "elementwise" (transforms
    #: each feature in place), "coupling" (transforms ``transformed``), "mixing"
    #: (transforms all and mixes them)
    features: str = "mixing"
    feature_map: Callable[[Opts, list[Shape]], list[list[tuple[int, int]]]] | None = None
    transformed: Callable[[Opts, Shape], list[int]] | None = None
    problems: Callable[[Opts, list[Shape]], list[Problem]] = lambda opts, shapes: []
    #: warnings about a configuration, from the options and the names the call wrote
    #: (W103: an option written that the configuration ignores)
    advice: Callable[[Opts, frozenset[str]], list[Problem]] = lambda opts, given: []
    #: options without a default that this configuration needs (``net`` once ``cond=``
    #: is given): a missing one is E201, said as for a required option
    needs: Callable[[Opts], tuple[str, ...]] = lambda opts: ()
    examples: tuple[Example, ...] = ()
    #: the math for the block reference (docs/blocks.md): the map and its ladj, in a line
    #: or two; empty: the reference quotes the runtime class's docstring instead
    math: str = ""
    #: the shape rule in words, for the reference (empty: "output shape = input shape"
    #: when ``shape`` is ``_same``; the reference also runs ``shape`` on ``examples``)
    shape_doc: str = ""
    #: the Lipschitz bounds as formulas of the options, for the reference (empty: the
    #: reference evaluates ``lipschitz`` and ``inverse_lipschitz`` at the defaults)
    bounds_doc: str = ""
    #: the learned parameters of the runtime block, from the options and the shapes
    #: (consumed tensors, then ``cond``) alone, without torch (``flowspec.kinds.sizes``):
    #: ``flowspec check --max-params`` and ``flowspec summary`` read it.  Required: a kind
    #: that learns nothing says so with ``parameters=no_parameters``
    parameters: Callable[[Opts, list[Shape]], int] | None = None
    #: numbers per sample its forward computes besides its outputs (its nets' layers),
    #: kept for the backward pass in training: the memory estimate of ``flowspec summary``
    activations: Callable[[Opts, list[Shape]], int] = no_activations
    #: why this configuration cannot run in a 16-bit float type (``None``: it can), from
    #: the options, the type's name and its machine epsilon: ``compile(dtype=...)`` refuses
    #: ``float16`` / ``bfloat16`` naming the block and this reason
    low_precision: Callable[[Opts, str, float], str | None] = lambda opts, dtype, eps: None

    def __post_init__(self) -> None:
        if self.parameters is None:
            raise TypeError(
                f"block kind `{self.name}` gives no `parameters=`: every registry entry counts "
                "its runtime block's learned parameters from options and shapes "
                "(`parameters=no_parameters` when it learns none; see flowspec/kinds/sizes.py "
                'and the README\'s "Adding a block kind")'
            )

    def count_parameters(self, opts: Opts, shapes: list[Shape]) -> int:
        """The learned parameters of one instance (``parameters``, required of every
        entry by ``__post_init__``)."""
        assert self.parameters is not None
        return int(self.parameters(opts, shapes))

    def inverse_class(self, opts: Opts) -> str:
        return self.inverse(opts) if callable(self.inverse) else self.inverse

    def forward_class(self, opts: Opts) -> str:
        return self.forward(opts) if callable(self.forward) else self.forward

    def logdet_class(self, opts: Opts) -> str:
        return self.logdet(opts) if callable(self.logdet) else self.logdet

    @property
    def tensor_options(self) -> frozenset[str]:
        return frozenset(o.name for o in self.options if isinstance(o.type, Tensor))


# ---------------------------------------------------------- shape and bound helpers


def _same(opts: Opts, shapes: list[Shape]) -> list[Shape]:
    return [shapes[0]]


def _rank(shape: Shape, rank: int, what: str) -> None:
    if len(shape) != rank:
        dims = {1: "[d]", 3: "[C, H, W]"}.get(rank, f"rank {rank}")
        raise ShapeError(f"{what} needs a {dims} tensor, got {list(shape)}")


def _flat_only(what: str) -> Callable[[Opts, list[Shape]], list[Shape]]:
    def rule(opts: Opts, shapes: list[Shape]) -> list[Shape]:
        _rank(shapes[0], 1, what)
        if len(shapes) > 1:
            _rank(shapes[1], 1, f"cond= of {what}")
        return [shapes[0]]

    return rule


def _image_net_input(net: str | None, shape: Shape, cond: Shape | None) -> None:
    """E202 unless a ``conv`` or ``resnet`` conditioner can read ``shape`` and ``cond``
    (a coupling's, gaussianize's prior): both [C, H, W] with the same H and W."""
    if net not in ("conv", "resnet"):
        return
    if len(shape) != 3:
        raise ShapeError(
            f"net={net} needs a [C, H, W] tensor, got {list(shape)}",
            "net",
            hint="use net=mlp(...) for flat features",
        )
    if cond is not None and (len(cond) != 3 or cond[1:] != shape[1:]):
        raise ShapeError(
            f"cond= of shape {list(cond)} does not match the spatial size {list(shape[1:])}"
            f" needed by net={net}",
            "cond",
        )


def _residual_shape(opts: Opts, shapes: list[Shape]) -> list[Shape]:
    if opts["net"].kind in ("conv", "resnet"):
        _rank(shapes[0], 3, f"net={opts['net'].kind}")
    return [shapes[0]]


#: a kind's ``lipschitz`` or ``inverse_lipschitz``
LipschitzRule = Callable[[Opts, list[Shape]], Bound]
#: both, forward then inverse: what the templates below take as ``bounds``
Bounds = tuple[LipschitzRule, LipschitzRule]

ISOMETRY: Bounds = (lambda opts, shapes: Bound(1.0), lambda opts, shapes: Bound(1.0))


def _unbounded(reason: str) -> LipschitzRule:
    return lambda opts, shapes: Bound.unbounded(reason)


def unbounded_both(reason: str) -> Bounds:
    """No bound either way, for one ``reason``: a learned scale or matrix bounds neither
    the map nor its inverse."""
    rule = _unbounded(reason)
    return rule, rule


#: the elementwise kinds that learn a scale (affine, scale, gaussianize, actnorm)
LEARNED_SCALE = unbounded_both("its learned scale has no bound")


#: where the runtime classes live; entries name them by import path, so nothing here
#: imports torch
_R = "flowspec.runtime"


# ---------------------------------------------------------- templates of two families


def permutation_kind(
    name: str,
    summary: str,
    paper: str,
    options: tuple[Option, ...],
    shape: Callable[[Opts, list[Shape]], list[Shape]],
    runtime: str,
    *,
    feature_map: Callable[[Opts, list[Shape]], list[list[tuple[int, int]]]],
    **fields: Any,
) -> BlockKind:
    """A kind that only moves features (reshape, permute): an isometry with log-det zero
    that learns nothing, so the entry says only where each feature goes (``feature_map``,
    which the coverage check W100/W101 follows) and what the reference shows."""
    return BlockKind(
        name,
        summary,
        paper,
        options,
        shape,
        runtime,
        parameters=no_parameters,
        lipschitz=ISOMETRY[0],
        inverse_lipschitz=ISOMETRY[1],
        features="permutation",
        feature_map=feature_map,
        **fields,
    )


def elementwise_kind(
    name: str,
    summary: str,
    paper: str,
    options: tuple[Option, ...],
    runtime: str,
    *,
    parameters: Callable[[Opts, list[Shape]], int],
    bounds: Bounds,
    shape: Callable[[Opts, list[Shape]], list[Shape]] = _same,
    **fields: Any,
) -> BlockKind:
    """A kind that transforms each feature in place with an analytic inverse and log-det
    (elementwise, norm): the shape kept unless ``shape`` says more, so the entry says
    what it learns and how far it stretches (``bounds``, forward then inverse)."""
    return BlockKind(
        name,
        summary,
        paper,
        options,
        shape,
        runtime,
        parameters=parameters,
        inverse="analytic",
        logdet="analytic",
        lipschitz=bounds[0],
        inverse_lipschitz=bounds[1],
        features="elementwise",
        **fields,
    )
