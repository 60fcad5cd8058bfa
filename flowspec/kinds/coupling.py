"""Coupling layers: coupling.additive, coupling.affine, coupling.spline.

A mask splits the features into a part ``x_a`` the conditioner net reads and a part
``x_b`` it transforms (:func:`flowspec.kinds.masks.transformed_indices`).  Papers:
NICE (Dinh, Krueger, Bengio 2015, arXiv:1410.8516), Real NVP (Dinh, Sohl-Dickstein,
Bengio 2017, arXiv:1605.08803), Neural Spline Flows (Durkan, Bekasov, Murray,
Papamakarios 2019, arXiv:1906.04032).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flowspec.kinds import masks, sizes
from flowspec.kinds.base import (
    _R,
    BlockKind,
    Example,
    Opts,
    Shape,
    ShapeError,
    _image_net_input,
    _rank,
    _unbounded,
)
from flowspec.kinds.options import Bool, Choice, Option
from flowspec.kinds.words import COND, MASK, NET, SCALE, SPLINE


def _coupling_shape(opts: Opts, shapes: list[Shape]) -> list[Shape]:
    shape = shapes[0]
    mask = opts["mask"].kind
    if mask in ("checkerboard", "channel"):
        _rank(shape, 3, f"mask={mask}")
    if mask == "checkerboard":
        if shape[1] * shape[2] < 2:
            raise ShapeError("mask=checkerboard needs at least 2 spatial positions", "mask")
    elif shape[0] < 2:
        raise ShapeError(
            f"mask={mask} needs at least 2 features along axis 0, got {shape[0]}",
            "mask",
            hint="a coupling needs one part to condition on and one to transform",
        )
    _image_net_input(opts["net"].kind, shape, shapes[1] if len(shapes) > 1 else None)
    return [shape]


def _coupling_net_shapes(opts: Opts, shapes: list[Shape], params: int) -> tuple[Shape, Shape]:
    """The conditioner's (input, output) shapes, as :class:`flowspec.runtime.coupling.Coupling`
    builds it: it reads x_a (the whole x·m for checkerboard) and ``cond``, and gives
    ``params`` numbers per transformed element."""
    shape = shapes[0]
    cond = shapes[1] if len(shapes) > 1 else None
    a_shape: Shape
    b_shape: Shape
    if opts["mask"].kind == "checkerboard":
        a_shape = b_shape = shape
    else:
        rows_a, rows_b = masks.axis0_split(opts["mask"].kind, opts["flip"], shape[0])
        a_shape, b_shape = (len(rows_a), *shape[1:]), (len(rows_b), *shape[1:])
    net_in: Shape
    if opts["net"].kind == "mlp":
        net_in = (masks.numel(a_shape) + (masks.numel(cond) if cond else 0),)
        return net_in, (params * masks.numel(b_shape),)
    net_in = (a_shape[0] + (cond[0] if cond else 0), *a_shape[1:])
    return net_in, (params * b_shape[0], *b_shape[1:])


def _coupling_sizes(params: Callable[[Opts], int]):
    """(parameters, activations) of a coupling whose net gives ``params(opts)`` numbers
    per transformed element."""

    def parameters(opts: Opts, shapes: list[Shape]) -> int:
        return sizes.net_parameters(opts["net"], *_coupling_net_shapes(opts, shapes, params(opts)))

    def activations(opts: Opts, shapes: list[Shape]) -> int:
        net_in, net_out = _coupling_net_shapes(opts, shapes, params(opts))
        return sizes.net_activations(opts["net"], net_in, net_out)

    return parameters, activations


def _coupling_transformed(opts: Opts, shape: Shape) -> list[int]:
    return masks.transformed_indices(opts["mask"].kind, opts["flip"], shape)


_COUPLING_SHAPE_DOC = (
    "output shape = input shape; the mask needs 2 or more entries on axis 0 (`checkerboard`"
    " and `channel`: a [C, H, W] tensor), net=conv and net=resnet a [C, H, W] tensor and a"
    " `cond` of the same H and W"
)


def _coupling_kind(
    name: str,
    summary: str,
    paper: str,
    extra: tuple[Option, ...],
    runtime: str,
    logdet: str,
    examples: tuple[Example, ...],
    params: Callable[[Opts], int],
    math: str = "",
) -> BlockKind:
    parameters, activations = _coupling_sizes(params)
    return BlockKind(
        name=name,
        summary=summary,
        paper=paper,
        options=(
            NET,
            Option("mask", MASK, "half"),
            Option("flip", Bool(), False, doc="swap the conditioning and transformed parts"),
            *extra,
            COND,
        ),
        shape=_coupling_shape,
        runtime=runtime,
        inverse="analytic",
        logdet=logdet,
        lipschitz=_unbounded("the conditioner net is not Lipschitz-constrained"),
        inverse_lipschitz=_unbounded("the conditioner net is not Lipschitz-constrained"),
        features="coupling",
        transformed=_coupling_transformed,
        examples=examples,
        math=math,
        shape_doc=_COUPLING_SHAPE_DOC,
        parameters=parameters,
        activations=activations,
    )


#: the examples' flat conditioner (``net=`` has no default): mlp with its defaults
_MLP = Choice("mlp")


def _mask_examples(extra: Mapping[str, Any]) -> tuple[Example, ...]:
    flat = [
        Example(((5,),), {"mask": m, "flip": f, "net": _MLP, **extra})
        for m in ("half", "alternate")
        for f in (False, True)
    ]
    image = [
        Example(
            ((2, 4, 4),), {"mask": m, "flip": f, "net": Choice("conv", {"hidden": 8}), **extra}
        )
        for m in ("checkerboard", "channel")
        for f in (False, True)
    ]
    cond = [
        Example(((4,),), {"mask": "half", "net": _MLP, **extra}, cond=(3,)),
        Example(
            ((2, 4, 4),),
            {"mask": "checkerboard", "net": Choice("resnet", {"hidden": 8}), **extra},
            cond=(1, 4, 4),
        ),
        Example(((2, 2, 2),), {"mask": "channel", "net": _MLP, **extra}),  # mlp on an image
    ]
    return (*flat, *image, *cond)


ENTRIES: tuple[BlockKind, ...] = (
    _coupling_kind(
        "coupling.additive",
        "NICE additive coupling: x_b ← x_b + t(x_a)",
        "Dinh, Krueger, Bengio 2015, NICE, arXiv:1410.8516",
        (),
        f"{_R}.coupling:AdditiveCoupling",
        "zero",
        _mask_examples({}),
        lambda opts: 1,  # t
        math="y_a = x_a, y_b = x_b + t(x_a, cond); ladj = 0; inverse x_b = y_b − t(y_a, cond)",
    ),
    _coupling_kind(
        "coupling.affine",
        "affine coupling: x_b ← x_b · s(x_a) + t(x_a)",
        "Dinh, Sohl-Dickstein, Bengio 2017, Real NVP, arXiv:1605.08803",
        (Option("scale", SCALE, "softclamp", doc="how the net's output becomes a scale"),),
        f"{_R}.coupling:AffineCoupling",
        "analytic",
        (
            *_mask_examples({"scale": "softclamp"}),
            Example(((4,),), {"scale": "exp", "net": _MLP}),
            Example(((4,),), {"scale": "sigmoid", "net": _MLP}),
            Example(
                ((2, 4, 4),),
                {"scale": "exp", "mask": "checkerboard", "net": Choice("conv", {"hidden": 8})},
            ),
        ),
        lambda opts: 2,  # log s, t
        math="y_a = x_a, y_b = x_b·s + t with (h, t) = net(x_a, cond) and s from h as `scale` "
        "says; ladj = Σ log s; inverse x_b = (y_b − t)/s",
    ),
    _coupling_kind(
        "coupling.spline",
        "rational-quadratic spline coupling, identity outside the bound",
        "Durkan, Bekasov, Murray, Papamakarios 2019, Neural Spline Flows, arXiv:1906.04032",
        SPLINE,
        f"{_R}.spline:SplineCoupling",
        "analytic",
        _mask_examples({"bins": 5, "bound": 2.0}),
        sizes.spline_params,
        math="y_a = x_a, y_b = RQS(x_b; θ(x_a, cond)), a monotone rational-quadratic spline of "
        "`bins` bins on [−bound, bound], identity outside; ladj = Σ log RQS′(x_b)",
    ),
)
