"""Autoregressive flows with a MADE conditioner: autoregressive.affine, autoregressive.spline.

MAF (Papamakarios, Pavlakou, Murray 2017, arXiv:1705.07057) and NSF-AR (Durkan,
Bekasov, Murray, Papamakarios 2019, arXiv:1906.04032); the conditioner is MADE
(Germain, Gregor, Murray, Larochelle 2015, arXiv:1502.03509); ``iaf=true`` gives the
inverse direction (Kingma et al. 2016, IAF, arXiv:1606.04934).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flowspec.kinds.base import _R, BlockKind, Example, Opts, Shape, _flat_only, unbounded_both
from flowspec.kinds.options import Bool, Choice, Option
from flowspec.kinds.sizes import made_activations, made_parameters, numel, spline_params
from flowspec.kinds.words import ACT, COND, HIDDEN, INIT, ORDER, SPLINE


def _made_sizes(
    params: Callable[[Opts], int],
) -> tuple[Callable[[Opts, list[Shape]], int], Callable[[Opts, list[Shape]], int]]:
    """(parameters, activations) of a MADE-conditioned block giving ``params(opts)``
    numbers per feature; ``cond`` (flattened) feeds the first layer."""

    def parameters(opts: Opts, shapes: list[Shape]) -> int:
        cond = numel(shapes[1]) if len(shapes) > 1 else 0
        return made_parameters(opts["hidden"], opts["act"], shapes[0][0], cond, params(opts))

    def activations(opts: Opts, shapes: list[Shape]) -> int:
        return made_activations(opts["hidden"], shapes[0][0], params(opts))

    return parameters, activations


def _ar_examples(extra: Mapping[str, Any]) -> tuple[Example, ...]:
    return (
        Example(((4,),), {"order": "natural", **extra}),
        Example(((4,),), {"order": "reverse", "iaf": True, **extra}),
        Example(((5,),), {"order": Choice("random", {"seed": 3}), **extra}, cond=(2,)),
    )


def _ar_inverse(opts: Opts) -> str:
    """MAF inverts in d sequential passes; IAF (``iaf=true``) in one."""
    return "analytic" if opts["iaf"] else "sequential"


def _ar_forward(opts: Opts) -> str:
    """MAF evaluates densities in one pass; IAF in d sequential passes."""
    return "sequential" if opts["iaf"] else "one pass"


#: how the conditioner starts (both autoregressive kinds)
MADE_INIT = Option(
    "init",
    INIT,
    "zero",
    doc="`zero`: the MADE's last layer starts at zero (the block starts as the identity); "
    "`random`: PyTorch's default initialisation, as nflows and zuko",
)


def _autoregressive_kind(
    name: str,
    summary: str,
    paper: str,
    extra: tuple[Option, ...],
    runtime: str,
    params: Callable[[Opts], int],
    **fields: Any,
) -> BlockKind:
    """Both kinds: a MADE of ``hidden`` widths giving ``params(opts)`` numbers per feature
    of a [d] tensor (and ``cond``), in ``order``, MAF or IAF (``iaf``); ``extra`` options
    go after ``act``."""
    parameters, activations = _made_sizes(params)
    lipschitz, inverse_lipschitz = unbounded_both(
        "the MADE conditioner is not Lipschitz-constrained"
    )
    return BlockKind(
        name,
        summary,
        paper,
        (
            Option("hidden", HIDDEN, [64, 64]),
            Option("act", ACT, "relu"),
            *extra,
            Option("order", ORDER, "natural"),
            Option("iaf", Bool(), False),
            MADE_INIT,
            COND,
        ),
        _flat_only(name),
        runtime,
        parameters=parameters,
        activations=activations,
        inverse=_ar_inverse,
        forward=_ar_forward,
        logdet="analytic",
        lipschitz=lipschitz,
        inverse_lipschitz=inverse_lipschitz,
        shape_doc="[d] → [d]",
        **fields,
    )


ENTRIES: tuple[BlockKind, ...] = (
    _autoregressive_kind(
        "autoregressive.affine",
        "MAF: x_i ← x_i·exp(s_i(x_<i)) + t_i(x_<i), MADE conditioner",
        "Papamakarios, Pavlakou, Murray 2017, Masked Autoregressive Flow, arXiv:1705.07057",
        (),
        f"{_R}.autoregressive:AutoregressiveAffine",
        lambda opts: 2,  # b_i, s_i
        math=(
            "z_i = x_i·exp(s_i) + b_i, (b_i, s_i) from a MADE of the earlier features (in "
            "`order`) and `cond`, s soft-clamped to (−3, 3); ladj = Σ s_i; inverse: d "
            "sequential passes.  `iaf=true` is the same map the other way round: the normalizing "
            "direction is sequential, generation one pass"
        ),
        examples=_ar_examples({"hidden": [16]}),
    ),
    _autoregressive_kind(
        "autoregressive.spline",
        "NSF-AR: a rational-quadratic spline per feature, MADE conditioner",
        "Durkan et al. 2019, Neural Spline Flows, arXiv:1906.04032",
        SPLINE,
        f"{_R}.autoregressive:AutoregressiveSpline",
        spline_params,
        math=(
            "z_i = RQS(x_i; θ_i), a monotone rational-quadratic spline of `bins` bins on "
            "[−bound, bound] (identity outside) with θ_i from a MADE of the earlier features and "
            "`cond`; ladj = Σ log RQS′(x_i); inverse: d sequential passes; `iaf=true` swaps the "
            "directions"
        ),
        examples=_ar_examples({"hidden": [16], "bins": 4}),
    ),
)
