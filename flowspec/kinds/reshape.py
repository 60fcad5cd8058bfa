"""Reshaping: split, concat, squeeze, unsqueeze, flatten, reshape.

Each moves features without changing them (an isometry, log-det zero), so its
entry carries a ``feature_map`` the coverage check (W100/W101) follows.  Squeeze is
Real NVP's (Dinh, Sohl-Dickstein, Bengio 2017, arXiv:1605.08803); its index layout is
the runtime's (:mod:`flowspec.runtime.reshape`).
"""

from __future__ import annotations

from collections.abc import Callable

from flowspec.kinds import limits as L
from flowspec.kinds import masks
from flowspec.kinds.base import (
    _R,
    BlockKind,
    Example,
    Opts,
    Shape,
    ShapeError,
    _rank,
    permutation_kind,
)
from flowspec.kinds.options import Int, IntList, Option


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


#: split's and concat's: concat along the axis a split cut undoes it
_DIM = Option("dim", Int(), 0)
#: squeeze's and unsqueeze's: unsqueeze by f undoes squeeze by f
_FACTOR = Option("factor", Int(min=1, max=L.MAX_FACTOR), 2)


ENTRIES: tuple[BlockKind, ...] = (
    permutation_kind(
        "split",
        "split along an axis (halves if sizes omitted)",
        "",
        (
            Option(
                "sizes",
                IntList(2, L.MAX_SPLIT_PARTS, 1, L.MAX_FEATURES, item="size", items="sizes"),
                None,
                doc="the sizes of the parts along `dim`; omitted: the halves [d // 2, d − d // 2]",
            ),
            _DIM,
        ),
        _split_shape,
        f"{_R}.reshape:Split",
        outputs=lambda opts: len(opts["sizes"]) if opts.get("sizes") else 2,
        feature_map=_split_map,
        math=(
            "y_k = x[o_k : o_k + s_k] along `dim`, o_k the sum of the earlier sizes; ladj = 0; "
            "the inverse concatenates"
        ),
        shape_doc=(
            "one tensor → one per size (without `sizes`: two, [d // 2, d − d // 2] along `dim`), "
            "the input shape with axis `dim` replaced by that size; the sizes must add up to the "
            "axis"
        ),
        examples=(
            Example(((5,),)),
            Example(((6,),), {"sizes": [1, 2, 3]}),
            Example(((4, 2, 2),), {"dim": 1}),
        ),
    ),
    permutation_kind(
        "concat",
        "concatenate along an axis",
        "",
        (_DIM,),
        _concat_shape,
        f"{_R}.reshape:Concat",
        inputs=None,
        feature_map=_concat_map,
        math="y = [x_0; x_1; …] along `dim`; ladj = 0; the inverse splits",
        shape_doc=(
            "two or more tensors, equal except along `dim` → one, their sizes along `dim` added"
        ),
        examples=(Example(((2,), (3,))), Example(((1, 2, 2), (3, 2, 2), (2, 2, 2)))),
    ),
    permutation_kind(
        "squeeze",
        "[C, H, W] → [C·f², H/f, W/f]",
        "Dinh et al. 2017, arXiv:1605.08803",
        (_FACTOR,),
        _squeeze_shape,
        f"{_R}.reshape:Squeeze",
        feature_map=_squeeze_map,
        math=(
            "y[c·f² + i·f + j, v, u] = x[c, v·f + i, u·f + j] with f = `factor`: each f×f patch "
            "becomes f² channels; ladj = 0"
        ),
        shape_doc="[C, H, W] → [C·f², H/f, W/f]; H and W divisible by f",
        examples=(Example(((2, 4, 4),)), Example(((1, 6, 3),), {"factor": 3})),
    ),
    permutation_kind(
        "unsqueeze",
        "[C, H, W] → [C/f², H·f, W·f], the inverse of squeeze",
        "",
        (_FACTOR,),
        _unsqueeze_shape,
        f"{_R}.reshape:Unsqueeze",
        feature_map=_unsqueeze_map,
        math=(
            "y[c, v·f + i, u·f + j] = x[c·f² + i·f + j, v, u] with f = `factor`, the inverse of "
            "squeeze; ladj = 0"
        ),
        shape_doc="[C, H, W] → [C/f², H·f, W·f]; C divisible by f²",
        examples=(Example(((8, 2, 2),)),),
    ),
    permutation_kind(
        "flatten",
        "flatten to [d]",
        "",
        (),
        lambda opts, shapes: [(masks.numel(shapes[0]),)],
        f"{_R}.reshape:Flatten",
        feature_map=_identity_map,
        math="y = x flattened row-major; ladj = 0",
        shape_doc="any shape → [d], d the product of its axes",
        examples=(Example(((2, 3, 2),)),),
    ),
    permutation_kind(
        "reshape",
        "reshape to `shape` (one entry may be -1)",
        "",
        (
            Option(
                "shape",
                IntList(1, L.MAX_RANK, -1, L.MAX_FEATURES, item="axis", items="axes"),
                None,
                required=True,
            ),
        ),
        _reshape_shape,
        f"{_R}.reshape:Reshape",
        feature_map=_identity_map,
        math="y = x reshaped row-major to `shape`; ladj = 0",
        shape_doc=(
            "any shape → `shape` (one entry may be −1, inferred), with the same number of features"
        ),
        examples=(Example(((12,),), {"shape": [3, -1]}),),
    ),
)
