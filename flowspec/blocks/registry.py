"""The block registry: one entry per block kind is the whole story of that kind.

An entry declares the kind's options (type, default, range), its shape rule, its
invertibility and log-det classes, its static Lipschitz bounds (forward and inverse,
or unbounded with a reason), which features it transforms (for W100/W101), the
invertibility problems of a configuration (E302/E303), the runtime module that
implements it (by import path, so this module never imports torch), and examples
the test harness runs it on.  Adding a block is one entry here and one runtime class.

Nets (``mlp``, ``conv``, ``resnet``), activations, latents and estimators live in
the same kind of table: an :class:`~flowspec.blocks.types.Enum` of words with options.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flowspec import masks
from flowspec.blocks.types import (
    Bool,
    Choice,
    Enum,
    Float,
    Int,
    IntList,
    Option,
    Tensor,
)

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
    examples: tuple[Example, ...] = ()

    def inverse_class(self, opts: Opts) -> str:
        return self.inverse(opts) if callable(self.inverse) else self.inverse

    def logdet_class(self, opts: Opts) -> str:
        return self.logdet(opts) if callable(self.logdet) else self.logdet

    @property
    def tensor_options(self) -> frozenset[str]:
        return frozenset(o.name for o in self.options if isinstance(o.type, Tensor))

    @property
    def volume_preserving(self) -> bool:
        return self.logdet == "zero"


# ------------------------------------------------------------------ activations, nets

#: name → (Lipschitz constant, smooth?)
ACTIVATIONS: dict[str, tuple[float, bool]] = {
    "relu": (1.0, False),
    "elu": (1.0, True),
    "tanh": (1.0, True),
    "softplus": (1.0, True),
    "lipswish": (1.0, True),
    "leaky_relu": (1.0, False),
    "sigmoid": (0.25, True),
    # sup |d/dx x·Φ(x)| = 1.1289 (at x = √2); sup |d/dx x·σ(x)| = 1.0998 (at x ≈ 2.4)
    "gelu": (1.129, True),
    "swish": (1.100, True),
}
ACT = Enum({a: () for a in ACTIVATIONS}, what="activation")
INIT = Enum({"zero": (), "default": ()}, what="initialisation")

NETS = Enum(
    {
        "mlp": (
            Option("hidden", IntList(item_min=1), [64, 64], doc="widths of the hidden layers"),
            Option("act", ACT, "relu"),
            Option("init", INIT, "zero", doc="`zero`: last layer zero (identity start)"),
        ),
        "conv": (
            Option("hidden", Int(min=1), 512, doc="channels of the hidden layers"),
            Option("kernel", Int(min=1), 3),
            Option("depth", Int(min=1), 2, doc="number of hidden convolutions"),
            Option("act", ACT, "relu"),
            Option("init", INIT, "zero"),
        ),
        "resnet": (
            Option("hidden", Int(min=1), 256),
            Option("blocks", Int(min=1), 2),
            Option("act", ACT, "relu"),
            Option("init", INIT, "zero"),
        ),
    },
    what="net",
)

LATENTS = Enum({"normal": (), "logistic": (), "uniform": ()}, what="latent distribution")
DEQUANTIZERS = Enum({"uniform": (Option("bits", Int(min=1, max=16), 8),)}, what="dequantizer")

MASK = Enum({m: () for m in ("half", "alternate", "checkerboard", "channel")}, what="mask")
SCALE = Enum({"exp": (), "sigmoid": (), "softclamp": ()}, what="scale")
ORDER = Enum(
    {"natural": (), "reverse": (), "random": (Option("seed", Int(min=0), 0),)}, what="order"
)
TRACE = Enum(
    {
        "hutchinson": (
            Option("samples", Int(min=1), 1),
            Option("noise", Enum({"rademacher": (), "gaussian": ()}, what="noise"), "rademacher"),
        ),
        "exact": (),
    },
    what="trace estimator",
)
LOGDET = Enum(
    {
        "exact": (),
        "series": (Option("terms", Int(min=1, max=100), 5),),
        "roulette": (Option("p", Float(0.0, 1.0, min_open=True, max_open=True), 0.5),),
    },
    what="log-det estimator",
)
FIXEDPOINT = Enum(
    {
        "fixedpoint": (
            Option("tol", Float(0.0, min_open=True), 1e-6),
            Option("max_iter", Int(min=1), 200),
        )
    },
    what="inverse",
)
GRAD = Enum({"backprop": (), "neumann": ()}, what="gradient")
#: torchdiffeq's adaptive solvers: error-controlled by ``rtol``/``atol``
ADAPTIVE_SOLVERS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
#: its fixed-grid solvers: ``steps`` equal steps, whatever the error
FIXED_STEP_SOLVERS = (
    "euler",
    "midpoint",
    "heun2",
    "heun3",
    "rk4",
    "explicit_adams",
    "implicit_adams",
)
SOLVERS = ADAPTIVE_SOLVERS + FIXED_STEP_SOLVERS
MAX_ODE_STEPS = 10_000
SOLVER = Enum({s: () for s in SOLVERS}, what="ODE solver")

NET = Option("net", NETS, "mlp", doc="the conditioner")
COND = Option("cond", Tensor(), None, doc="a tensor the conditioner reads, not consumed")


# -------------------------------------------------------------------- shape helpers


def _same(opts: Opts, shapes: list[Shape]) -> list[Shape]:
    return [shapes[0]]


def _rank(shape: Shape, rank: int, what: str) -> None:
    if len(shape) != rank:
        dims = {1: "[d]", 3: "[C, H, W]"}.get(rank, f"rank {rank}")
        raise ShapeError(f"{what} needs a {dims} tensor, got {list(shape)}")


def _axis(opts: Opts, shape: Shape) -> int:
    dim = opts.get("dim", 0)
    if not -len(shape) <= dim < len(shape):
        raise ShapeError(f"dim={dim} is out of range for a tensor of shape {list(shape)}", "dim")
    return dim % len(shape)


def _flat_map(
    shape: Shape, index_of: Callable[[tuple[int, ...]], int], out: Shape, src: int = 0
) -> list[tuple[int, int]]:
    """Feature map of an index rearrangement: ``index_of`` maps an output multi-index
    to the flat input index it reads."""
    import itertools

    return [(src, index_of(idx)) for idx in itertools.product(*(range(n) for n in out))]


def _ravel(idx: tuple[int, ...], shape: Shape) -> int:
    flat = 0
    for i, n in zip(idx, shape):
        flat = flat * n + i
    return flat


def _unravel(flat: int, shape: Shape) -> tuple[int, ...]:
    out = []
    for n in reversed(shape):
        out.append(flat % n)
        flat //= n
    return tuple(reversed(out))


def _identity_map(opts: Opts, shapes: list[Shape]) -> list[list[tuple[int, int]]]:
    return [[(0, i) for i in range(masks.numel(shapes[0]))]]


def _axis0_perm_map(perm: list[int], shape: Shape) -> list[list[tuple[int, int]]]:
    inner = masks.numel(shape[1:])
    return [[(0, perm[r] * inner + k) for r in range(shape[0]) for k in range(inner)]]


ISOMETRY = (lambda opts, shapes: Bound(1.0), lambda opts, shapes: Bound(1.0))


def _unbounded(reason: str) -> Callable[[Opts, list[Shape]], Bound]:
    return lambda opts, shapes: Bound.unbounded(reason)


# ---------------------------------------------------------------- reshaping, permuting


def _split_sizes(opts: Opts, shape: Shape) -> list[int]:
    n = shape[_axis(opts, shape)]
    sizes = opts.get("sizes")
    if sizes is None:
        if n < 2:
            raise ShapeError(f"cannot halve an axis of size {n}")
        return [n // 2, n - n // 2]
    if sum(sizes) != n:
        raise ShapeError(
            f"split sizes {sizes} add up to {sum(sizes)}, but the axis has {n} features",
            "sizes",
            hint=f"make the sizes add up to {n}",
        )
    return list(sizes)


def _split_shape(opts: Opts, shapes: list[Shape]) -> list[Shape]:
    shape = shapes[0]
    axis = _axis(opts, shape)
    return [shape[:axis] + (s,) + shape[axis + 1 :] for s in _split_sizes(opts, shape)]


def _split_map(opts: Opts, shapes: list[Shape]) -> list[list[tuple[int, int]]]:
    shape = shapes[0]
    axis = _axis(opts, shape)
    out, offset = [], 0
    for part in _split_shape(opts, shapes):

        def index_of(idx, offset=offset):
            full = list(idx)
            full[axis] += offset
            return _ravel(tuple(full), shape)

        out.append(_flat_map(shape, index_of, part))
        offset += part[axis]
    return out


def _concat_shape(opts: Opts, shapes: list[Shape]) -> list[Shape]:
    if len(shapes) < 2:
        raise ShapeError("concat needs at least two tensors")
    first = shapes[0]
    axis = _axis(opts, first)
    for s in shapes[1:]:
        if len(s) != len(first) or any(
            a != b for i, (a, b) in enumerate(zip(s, first)) if i != axis
        ):
            raise ShapeError(
                f"cannot concatenate shapes {[list(t) for t in shapes]} along dim {axis}: "
                "the other axes differ"
            )
    return [first[:axis] + (sum(s[axis] for s in shapes),) + first[axis + 1 :]]


def _concat_map(opts: Opts, shapes: list[Shape]) -> list[list[tuple[int, int]]]:
    (out,) = _concat_shape(opts, shapes)
    axis = _axis(opts, shapes[0])
    bounds = []
    offset = 0
    for s in shapes:
        bounds.append((offset, s))
        offset += s[axis]
    result = []
    for flat in range(masks.numel(out)):
        idx = list(_unravel(flat, out))
        for src, (start, s) in enumerate(bounds):
            if start <= idx[axis] < start + s[axis]:
                idx[axis] -= start
                result.append((src, _ravel(tuple(idx), s)))
                break
    return [result]


def _squeeze_shape(opts: Opts, shapes: list[Shape]) -> list[Shape]:
    shape, f = shapes[0], opts["factor"]
    _rank(shape, 3, "squeeze")
    c, h, w = shape
    if h % f or w % f:
        raise ShapeError(
            f"squeeze by {f} needs height and width divisible by {f}, got {h}×{w}", "factor"
        )
    return [(c * f * f, h // f, w // f)]


def _squeeze_map(opts: Opts, shapes: list[Shape]) -> list[list[tuple[int, int]]]:
    # out[c·f² + i·f + j, y, x] = in[c, y·f + i, x·f + j]  (the runtime's layout)
    shape, f = shapes[0], opts["factor"]
    (out,) = _squeeze_shape(opts, shapes)

    def index_of(idx):
        oc, y, x = idx
        c, rest = divmod(oc, f * f)
        i, j = divmod(rest, f)
        return _ravel((c, y * f + i, x * f + j), shape)

    return [_flat_map(shape, index_of, out)]


def _unsqueeze_shape(opts: Opts, shapes: list[Shape]) -> list[Shape]:
    shape, f = shapes[0], opts["factor"]
    _rank(shape, 3, "unsqueeze")
    c, h, w = shape
    if c % (f * f):
        raise ShapeError(
            f"unsqueeze by {f} needs channels divisible by {f * f}, got {c}", "factor"
        )
    return [(c // (f * f), h * f, w * f)]


def _unsqueeze_map(opts: Opts, shapes: list[Shape]) -> list[list[tuple[int, int]]]:
    shape, f = shapes[0], opts["factor"]
    (out,) = _unsqueeze_shape(opts, shapes)

    def index_of(idx):
        c, y, x = idx
        (yy, i), (xx, j) = divmod(y, f), divmod(x, f)
        return _ravel((c * f * f + i * f + j, yy, xx), shape)

    return [_flat_map(shape, index_of, out)]


def _reshape_shape(opts: Opts, shapes: list[Shape]) -> list[Shape]:
    shape = shapes[0]
    target = list(opts["shape"])
    n = masks.numel(shape)
    if target.count(-1) > 1:
        raise ShapeError("reshape takes at most one -1", "shape")
    if -1 in target:
        known = masks.numel(tuple(t for t in target if t != -1))
        if known == 0 or n % known:
            raise ShapeError(f"cannot reshape {list(shape)} into {target}", "shape")
        target[target.index(-1)] = n // known
    if any(t < 1 for t in target) or masks.numel(tuple(target)) != n:
        raise ShapeError(
            f"cannot reshape {list(shape)} ({n} features) into {opts['shape']}", "shape"
        )
    return [tuple(target)]


def _permute_shape(opts: Opts, shapes: list[Shape]) -> list[Shape]:
    order, d = opts["order"], shapes[0][0]
    if sorted(order) != list(range(d)):
        raise ShapeError(
            f"order must be a permutation of 0..{d - 1} for {d} features, got {order}", "order"
        )
    return [shapes[0]]


# ------------------------------------------------------------------------- couplings


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
    net = opts["net"].kind
    if net in ("conv", "resnet") and len(shape) != 3:
        raise ShapeError(
            f"net={net} needs a [C, H, W] tensor, got {list(shape)}",
            "net",
            hint="use net=mlp(...) for flat features",
        )
    if len(shapes) > 1 and net in ("conv", "resnet"):
        cond = shapes[1]
        if len(cond) != 3 or cond[1:] != shape[1:]:
            raise ShapeError(
                f"cond= of shape {list(cond)} does not match the spatial size {list(shape[1:])}"
                f" needed by net={net}",
                "cond",
            )
    return [shape]


def _coupling_transformed(opts: Opts, shape: Shape) -> list[int]:
    return masks.transformed_indices(opts["mask"].kind, opts["flip"], shape)


def _coupling_kind(
    name: str,
    summary: str,
    paper: str,
    extra: tuple[Option, ...],
    runtime: str,
    logdet: str,
    examples: tuple[Example, ...],
) -> BlockKind:
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
    )


def _mask_examples(extra: Mapping[str, Any]) -> tuple[Example, ...]:
    flat = [
        Example(((5,),), {"mask": m, "flip": f, **extra})
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
        Example(((4,),), {"mask": "half", **extra}, cond=(3,)),
        Example(
            ((2, 4, 4),),
            {"mask": "checkerboard", "net": Choice("resnet", {"hidden": 8}), **extra},
            cond=(1, 4, 4),
        ),
        Example(((2, 2, 2),), {"mask": "channel", **extra}),  # mlp on an image
    ]
    return (*flat, *image, *cond)


# ----------------------------------------------------------------- elementwise bounds


def _leaky_problems(opts: Opts, shapes: list[Shape]) -> list[Problem]:
    if opts["slope"] <= 0:
        return [
            Problem(
                "E302",
                f"leaky_relu with slope={opts['slope']:g} is not invertible",
                "slope",
                "use a slope > 0, such as 0.01",
            )
        ]
    return []


def _logit_problems(opts: Opts, shapes: list[Shape]) -> list[Problem]:
    if opts["alpha"] >= 0.5:
        return [
            Problem(
                "E302",
                f"logit with alpha={opts['alpha']:g} squeezes every input to "
                "one point and is not invertible",
                "alpha",
                "use an alpha in [0, 0.5), such as 0.05",
            )
        ]
    return []


def _logit_lipschitz(opts: Opts, shapes: list[Shape]) -> Bound:
    # y = logit(α + (1 − 2α)x): |dy/dx| = (1 − 2α)/(u(1 − u)), largest at u = α
    a = opts["alpha"]
    if a <= 0:
        return Bound.unbounded("logit with alpha=0 has an unbounded slope near 0 and 1")
    return Bound((1 - 2 * a) / (a * (1 - a)))


def _logit_inverse_lipschitz(opts: Opts, shapes: list[Shape]) -> Bound:
    return Bound(0.25 / (1 - 2 * opts["alpha"]))


# ---------------------------------------------------------------- residual and ODE


def _residual_problems(opts: Opts, shapes: list[Shape]) -> list[Problem]:
    out = []
    net = opts["net"].kind
    if net not in ("mlp", "conv"):
        # the runtime certifies dense layers (SVD) and convolutions (the circular-convolution
        # bound), not resnet's skip connections (flowspec.blocks.lipschitz_layers)
        out.append(
            Problem(
                "E303",
                f"residual block with net={net} is not provably contractive: a certified "
                "Lipschitz bound is implemented for net=mlp and net=conv only",
                "net",
                "use net=conv(hidden=..., act=lipswish) or net=mlp(hidden=[...], act=lipswish)",
            )
        )
    c = opts["lipschitz"]
    if c >= 1:
        out.append(
            Problem(
                "E303",
                f"residual block needs lipschitz < 1 to be invertible, got {c:g}",
                "lipschitz",
                "use a value in (0, 1), such as 0.97",
            )
        )
    act = opts["net"]["act"].kind
    lip, _ = ACTIVATIONS[act]
    if lip > 1:
        out.append(
            Problem(
                "E303",
                f"activation `{act}` has Lipschitz constant {lip:g} > 1, so the residual "
                "branch is not provably contractive",
                "net",
                "use a 1-Lipschitz activation such as lipswish, elu or tanh",
            )
        )
    return out


def _ode_advice(opts: Opts, given: frozenset[str]) -> list[Problem]:
    """W103: ``steps`` with an adaptive solver, ``rtol``/``atol`` with a fixed-step one
    (implicit_adams' corrector does iterate to rtol/atol)."""
    solver = opts["solver"].kind
    if solver in ADAPTIVE_SOLVERS:
        ignored = {"steps"}
        why = "its error is set by rtol and atol"
        hint = "remove `{}`, or use a fixed-step solver such as rk4 (its error shrinks with steps)"
    else:
        ignored = set() if solver == "implicit_adams" else {"rtol", "atol"}
        why = f"it takes steps={opts['steps']} equal steps and controls no error"
        hint = "remove `{}` and raise `steps` for a smaller error, or use an adaptive solver"
    kind = "adaptive" if solver in ADAPTIVE_SOLVERS else "fixed-step"
    return [
        Problem(
            "W103",
            f"`{name}` has no effect with the {kind} solver `{solver}`: {why}",
            name,
            hint.format(name),
        )
        for name in sorted(ignored & given)
    ]


def _residual_logdet(opts: Opts) -> str:
    return "exact-bruteforce" if opts["logdet"].kind == "exact" else "stochastic"


def _residual_lipschitz(opts: Opts, shapes: list[Shape]) -> Bound:
    c = opts["lipschitz"]
    return Bound(1 + c) if c < 1 else Bound.unbounded("lipschitz >= 1")


def _residual_inverse_lipschitz(opts: Opts, shapes: list[Shape]) -> Bound:
    c = opts["lipschitz"]
    return Bound(1 / (1 - c)) if c < 1 else Bound.unbounded("lipschitz >= 1")


def _flat_only(what: str) -> Callable[[Opts, list[Shape]], list[Shape]]:
    def rule(opts: Opts, shapes: list[Shape]) -> list[Shape]:
        _rank(shapes[0], 1, what)
        if len(shapes) > 1:
            _rank(shapes[1], 1, f"cond= of {what}")
        return [shapes[0]]

    return rule


def _residual_shape(opts: Opts, shapes: list[Shape]) -> list[Shape]:
    if opts["net"].kind in ("conv", "resnet"):
        _rank(shapes[0], 3, f"net={opts['net'].kind}")
    return [shapes[0]]


def _ar_examples(extra: Mapping[str, Any]) -> tuple[Example, ...]:
    return (
        Example(((4,),), {"order": "natural", **extra}),
        Example(((4,),), {"order": "reverse", "iaf": True, **extra}),
        Example(((5,),), {"order": Choice("random", {"seed": 3}), **extra}, cond=(2,)),
    )


# ---------------------------------------------------------------------- the registry

_R = "flowspec.blocks"

KINDS: tuple[BlockKind, ...] = (
    # --- reshaping and permutations -----------------------------------------------
    BlockKind(
        "split",
        "split along an axis (halves if sizes omitted)",
        "",
        (Option("sizes", IntList(min_len=2, item_min=1), None), Option("dim", Int(), 0)),
        _split_shape,
        f"{_R}.reshape:Split",
        outputs=lambda opts: len(opts["sizes"]) if opts.get("sizes") else 2,
        lipschitz=ISOMETRY[0],
        inverse_lipschitz=ISOMETRY[1],
        features="permutation",
        feature_map=_split_map,
        examples=(
            Example(((5,),)),
            Example(((6,),), {"sizes": [1, 2, 3]}),
            Example(((4, 2, 2),), {"dim": 1}),
        ),
    ),
    BlockKind(
        "concat",
        "concatenate along an axis",
        "",
        (Option("dim", Int(), 0),),
        _concat_shape,
        f"{_R}.reshape:Concat",
        inputs=None,
        lipschitz=ISOMETRY[0],
        inverse_lipschitz=ISOMETRY[1],
        features="permutation",
        feature_map=_concat_map,
        examples=(Example(((2,), (3,))), Example(((1, 2, 2), (3, 2, 2), (2, 2, 2)))),
    ),
    BlockKind(
        "squeeze",
        "[C, H, W] → [C·f², H/f, W/f]",
        "Dinh et al. 2017, arXiv:1605.08803",
        (Option("factor", Int(min=1), 2),),
        _squeeze_shape,
        f"{_R}.reshape:Squeeze",
        lipschitz=ISOMETRY[0],
        inverse_lipschitz=ISOMETRY[1],
        features="permutation",
        feature_map=_squeeze_map,
        examples=(Example(((2, 4, 4),)), Example(((1, 6, 3),), {"factor": 3})),
    ),
    BlockKind(
        "unsqueeze",
        "[C, H, W] → [C/f², H·f, W·f], the inverse of squeeze",
        "",
        (Option("factor", Int(min=1), 2),),
        _unsqueeze_shape,
        f"{_R}.reshape:Unsqueeze",
        lipschitz=ISOMETRY[0],
        inverse_lipschitz=ISOMETRY[1],
        features="permutation",
        feature_map=_unsqueeze_map,
        examples=(Example(((8, 2, 2),)),),
    ),
    BlockKind(
        "flatten",
        "flatten to [d]",
        "",
        (),
        lambda opts, shapes: [(masks.numel(shapes[0]),)],
        f"{_R}.reshape:Flatten",
        lipschitz=ISOMETRY[0],
        inverse_lipschitz=ISOMETRY[1],
        features="permutation",
        feature_map=_identity_map,
        examples=(Example(((2, 3, 2),)),),
    ),
    BlockKind(
        "reshape",
        "reshape to `shape` (one entry may be -1)",
        "",
        (Option("shape", IntList(min_len=1, item_min=-1), None, required=True),),
        _reshape_shape,
        f"{_R}.reshape:Reshape",
        lipschitz=ISOMETRY[0],
        inverse_lipschitz=ISOMETRY[1],
        features="permutation",
        feature_map=_identity_map,
        examples=(Example(((12,),), {"shape": [3, -1]}),),
    ),
    BlockKind(
        "reverse",
        "reverse the features (axis 0)",
        "",
        (),
        _same,
        f"{_R}.permute:Reverse",
        lipschitz=ISOMETRY[0],
        inverse_lipschitz=ISOMETRY[1],
        features="permutation",
        feature_map=lambda opts, shapes: _axis0_perm_map(
            list(range(shapes[0][0] - 1, -1, -1)), shapes[0]
        ),
        examples=(Example(((5,),)), Example(((3, 2, 2),))),
    ),
    BlockKind(
        "shuffle",
        "a fixed random permutation of the features",
        "",
        (Option("seed", Int(min=0), 0),),
        _same,
        f"{_R}.permute:Shuffle",
        lipschitz=ISOMETRY[0],
        inverse_lipschitz=ISOMETRY[1],
        features="permutation",
        feature_map=lambda opts, shapes: _axis0_perm_map(
            masks.shuffle_permutation(shapes[0][0], opts["seed"]), shapes[0]
        ),
        examples=(Example(((6,),), {"seed": 4}),),
    ),
    BlockKind(
        "permute",
        "an explicit permutation of the features",
        "",
        (Option("order", IntList(min_len=1, item_min=0), None, required=True),),
        _permute_shape,
        f"{_R}.permute:Permute",
        lipschitz=ISOMETRY[0],
        inverse_lipschitz=ISOMETRY[1],
        features="permutation",
        feature_map=lambda opts, shapes: _axis0_perm_map(opts["order"], shapes[0]),
        examples=(Example(((4,),), {"order": [2, 0, 3, 1]}),),
    ),
    # --- couplings ------------------------------------------------------------------
    _coupling_kind(
        "coupling.additive",
        "NICE additive coupling: x_b ← x_b + t(x_a)",
        "Dinh, Krueger, Bengio 2015, NICE, arXiv:1410.8516",
        (),
        f"{_R}.coupling:AdditiveCoupling",
        "zero",
        _mask_examples({}),
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
            Example(((4,),), {"scale": "exp"}),
            Example(((4,),), {"scale": "sigmoid"}),
            Example(
                ((2, 4, 4),),
                {"scale": "exp", "mask": "checkerboard", "net": Choice("conv", {"hidden": 8})},
            ),
        ),
    ),
    _coupling_kind(
        "coupling.spline",
        "rational-quadratic spline coupling, identity outside the bound",
        "Durkan, Bekasov, Murray, Papamakarios 2019, Neural Spline Flows, arXiv:1906.04032",
        (Option("bins", Int(min=1, max=64), 8), Option("bound", Float(0.0, min_open=True), 3.0)),
        f"{_R}.spline:SplineCoupling",
        "analytic",
        _mask_examples({"bins": 5, "bound": 2.0}),
    ),
    # --- normalisation and linear maps ------------------------------------------------
    BlockKind(
        "actnorm",
        "per-feature scale and shift, initialised from the first batch",
        "Kingma, Dhariwal 2018, Glow, arXiv:1807.03039",
        (),
        _same,
        f"{_R}.norm:ActNorm",
        inverse="analytic",
        logdet="analytic",
        lipschitz=_unbounded("its learned scale has no bound"),
        inverse_lipschitz=_unbounded("its learned scale has no bound"),
        features="elementwise",
        examples=(Example(((3,),)), Example(((2, 3, 3),))),
    ),
    BlockKind(
        "batchnorm",
        "batch normalisation as a bijection (running statistics in eval)",
        "Dinh, Sohl-Dickstein, Bengio 2017, Real NVP, arXiv:1605.08803",
        (Option("momentum", Float(0.0, 1.0), 0.1), Option("eps", Float(0.0, min_open=True), 1e-5)),
        _same,
        f"{_R}.norm:BatchNorm",
        inverse="analytic",
        logdet="analytic",
        lipschitz=_unbounded("its batch statistics and learned scale have no bound"),
        inverse_lipschitz=_unbounded("its batch statistics and learned scale have no bound"),
        features="elementwise",
        examples=(Example(((3,),)), Example(((2, 3, 3),))),
    ),
    BlockKind(
        "linear",
        "dense invertible matrix, LU-parametrised",
        "Kingma, Dhariwal 2018, Glow, arXiv:1807.03039",
        (Option("lu", Bool(), True),),
        _flat_only("linear"),
        f"{_R}.linear:Linear",
        inverse="analytic",
        logdet="analytic",
        lipschitz=_unbounded("its learned matrix has no bound on its spectral norm"),
        inverse_lipschitz=_unbounded("its learned matrix has no bound on its spectral norm"),
        examples=(Example(((4,),)), Example(((4,),), {"lu": False})),
    ),
    BlockKind(
        "invconv",
        "Glow's invertible 1×1 convolution over channels",
        "Kingma, Dhariwal 2018, Glow, arXiv:1807.03039",
        (Option("lu", Bool(), True),),
        lambda opts, shapes: (_rank(shapes[0], 3, "invconv"), [shapes[0]])[1],
        f"{_R}.linear:InvConv",
        inverse="analytic",
        logdet="analytic",
        lipschitz=_unbounded("its learned matrix has no bound on its spectral norm"),
        inverse_lipschitz=_unbounded("its learned matrix has no bound on its spectral norm"),
        examples=(Example(((3, 2, 2),)), Example(((3, 2, 2),), {"lu": False})),
    ),
    BlockKind(
        "affine",
        "elementwise scale and shift",
        "",
        (),
        _same,
        f"{_R}.elementwise:Affine",
        inverse="analytic",
        logdet="analytic",
        lipschitz=_unbounded("its learned scale has no bound"),
        inverse_lipschitz=_unbounded("its learned scale has no bound"),
        features="elementwise",
        examples=(Example(((3,),)), Example(((2, 2, 2),))),
    ),
    BlockKind(
        "leaky_relu",
        "y = x for x ≥ 0, slope·x otherwise",
        "",
        (Option("slope", Float(), 0.01),),
        _same,
        f"{_R}.elementwise:LeakyReLU",
        inverse="analytic",
        logdet="analytic",
        lipschitz=lambda opts, shapes: Bound(max(1.0, opts["slope"])),
        inverse_lipschitz=lambda opts, shapes: (
            Bound(max(1.0, 1.0 / opts["slope"]))
            if opts["slope"] > 0
            else Bound.unbounded("slope <= 0")
        ),
        features="elementwise",
        problems=_leaky_problems,
        examples=(Example(((4,),), {"slope": 0.2}),),
    ),
    BlockKind(
        "logit",
        "y = logit(α + (1 − 2α)x), for data in [0, 1]",
        "Dinh, Sohl-Dickstein, Bengio 2017, Real NVP, arXiv:1605.08803",
        (Option("alpha", Float(0.0), 0.05),),
        _same,
        f"{_R}.elementwise:Logit",
        inverse="analytic",
        logdet="analytic",
        lipschitz=_logit_lipschitz,
        inverse_lipschitz=_logit_inverse_lipschitz,
        features="elementwise",
        problems=_logit_problems,
        examples=(Example(((4,),), {"alpha": 0.05}),),
    ),
    BlockKind(
        "sigmoid",
        "y = σ(x)",
        "",
        (),
        _same,
        f"{_R}.elementwise:Sigmoid",
        inverse="analytic",
        logdet="analytic",
        lipschitz=lambda opts, shapes: Bound(0.25),
        inverse_lipschitz=_unbounded("logit, the inverse of sigmoid, has an unbounded slope"),
        features="elementwise",
        examples=(Example(((4,),)),),
    ),
    BlockKind(
        "planar",
        "y = x + u·h(wᵀx + b), with wᵀu ≥ −1 enforced",
        "Rezende, Mohamed 2015, Variational Inference with Normalizing Flows, arXiv:1505.05770",
        (Option("act", Enum({"tanh": (), "leaky_relu": ()}, what="activation"), "tanh"),),
        _same,
        f"{_R}.planar:Planar",
        inverse="iterative",
        logdet="analytic",
        lipschitz=_unbounded("its learned vectors u and w have no bound"),
        inverse_lipschitz=_unbounded("its learned vectors u and w have no bound"),
        examples=(
            Example(((3,),)),
            Example(((3,),), {"act": "leaky_relu"}),
            Example(((1, 2, 2),)),
        ),
    ),
    BlockKind(
        "radial",
        "y = x + β·(x − x₀)/(α + ‖x − x₀‖), with β ≥ −α enforced",
        "Rezende, Mohamed 2015, Variational Inference with Normalizing Flows, arXiv:1505.05770",
        (),
        _same,
        f"{_R}.planar:Radial",
        inverse="analytic",
        logdet="analytic",
        lipschitz=_unbounded("its learned β has no bound"),
        inverse_lipschitz=_unbounded("its learned α, β have no bound"),
        examples=(Example(((3,),)),),
    ),
    # --- autoregressive ---------------------------------------------------------------
    BlockKind(
        "autoregressive.affine",
        "MAF: x_i ← x_i·exp(s_i(x_<i)) + t_i(x_<i), MADE conditioner",
        "Papamakarios, Pavlakou, Murray 2017, Masked Autoregressive Flow, arXiv:1705.07057",
        (
            Option("hidden", IntList(item_min=1), [64, 64]),
            Option("act", ACT, "relu"),
            Option("order", ORDER, "natural"),
            Option("iaf", Bool(), False),
            COND,
        ),
        _flat_only("autoregressive.affine"),
        f"{_R}.autoregressive:AutoregressiveAffine",
        inverse="sequential",
        logdet="analytic",
        lipschitz=_unbounded("the MADE conditioner is not Lipschitz-constrained"),
        inverse_lipschitz=_unbounded("the MADE conditioner is not Lipschitz-constrained"),
        examples=_ar_examples({"hidden": [16]}),
    ),
    BlockKind(
        "autoregressive.spline",
        "NSF-AR: a rational-quadratic spline per feature, MADE conditioner",
        "Durkan et al. 2019, Neural Spline Flows, arXiv:1906.04032",
        (
            Option("hidden", IntList(item_min=1), [64, 64]),
            Option("act", ACT, "relu"),
            Option("bins", Int(min=1, max=64), 8),
            Option("bound", Float(0.0, min_open=True), 3.0),
            Option("order", ORDER, "natural"),
            Option("iaf", Bool(), False),
            COND,
        ),
        _flat_only("autoregressive.spline"),
        f"{_R}.autoregressive:AutoregressiveSpline",
        inverse="sequential",
        logdet="analytic",
        lipschitz=_unbounded("the MADE conditioner is not Lipschitz-constrained"),
        inverse_lipschitz=_unbounded("the MADE conditioner is not Lipschitz-constrained"),
        examples=_ar_examples({"hidden": [16], "bins": 4}),
    ),
    # --- residual and ODE ---------------------------------------------------------------
    BlockKind(
        "residual",
        "i-ResNet / Residual Flow: y = x + g(x), Lip(g) ≤ c < 1",
        "Behrmann et al. 2019, Invertible Residual Networks, arXiv:1811.00995; Chen et al. "
        "2019, Residual Flows, arXiv:1906.02735",
        (
            NET,
            Option("lipschitz", Float(0.0, min_open=True), 0.97),
            Option("power_iters", Int(min=1), 5),
            Option("logdet", LOGDET, "roulette"),
            Option("trace", TRACE, "hutchinson"),
            Option("grad", GRAD, "backprop"),
            Option("inverse", FIXEDPOINT, "fixedpoint"),
        ),
        _residual_shape,
        f"{_R}.residual:Residual",
        inverse="iterative",
        logdet=_residual_logdet,
        lipschitz=_residual_lipschitz,
        inverse_lipschitz=_residual_inverse_lipschitz,
        problems=_residual_problems,
        examples=(
            Example(
                ((3,),),
                {"logdet": "exact", "net": Choice("mlp", {"hidden": [8], "act": "lipswish"})},
            ),
            Example(
                ((1, 3, 3),),
                {
                    "logdet": "exact",
                    "net": Choice(
                        "conv", {"hidden": 4, "kernel": 3, "depth": 1, "act": "lipswish"}
                    ),
                },
            ),
        ),
    ),
    BlockKind(
        "ode",
        "FFJORD continuous flow: dx/dt = f(x, t)",
        "Grathwohl et al. 2019, FFJORD, arXiv:1810.01367",
        (
            NET,
            Option("t", Float(0.0, min_open=True), 1.0),
            Option("solver", SOLVER, "dopri5"),
            Option(
                "steps",
                Int(min=1, max=MAX_ODE_STEPS),
                20,
                doc="equal steps over [0, t] of a fixed-step solver (euler, midpoint, heun2, "
                "heun3, rk4, explicit_adams, implicit_adams); its round-trip error shrinks "
                "with steps; adaptive solvers ignore it",
            ),
            Option(
                "rtol",
                Float(0.0, min_open=True),
                1e-5,
                doc="relative tolerance of an adaptive solver (and of implicit_adams' "
                "corrector); fixed-step solvers ignore it",
            ),
            Option(
                "atol",
                Float(0.0, min_open=True),
                1e-5,
                doc="absolute tolerance, as rtol",
            ),
            Option("trace", TRACE, "hutchinson"),
            Option("adjoint", Bool(), True),
        ),
        _residual_shape,
        f"{_R}.ode:ODE",
        inverse="integrated",
        logdet=lambda opts: "exact" if opts["trace"].kind == "exact" else "stochastic",
        lipschitz=_unbounded("the dynamics net is not Lipschitz-constrained"),
        inverse_lipschitz=_unbounded("the dynamics net is not Lipschitz-constrained"),
        advice=_ode_advice,
        examples=(
            Example(
                ((2,),),
                {
                    "trace": "exact",
                    "adjoint": False,
                    "rtol": 1e-8,  # the harness compares to brute force at 1e-4
                    "atol": 1e-8,
                    "net": Choice("mlp", {"hidden": [8], "act": "tanh"}),
                },
            ),
        ),
    ),
)

REGISTRY: dict[str, BlockKind] = {k.name: k for k in KINDS}

#: every invertibility class, from "needs nothing" to "needs integration"
INVERSE_CLASSES = ("exact", "analytic", "sequential", "iterative", "integrated")
LOGDET_CLASSES = ("zero", "analytic", "exact", "exact-bruteforce", "stochastic")

del math
