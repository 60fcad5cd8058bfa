"""The registry-driven float64 harness: every block kind, every example, one set of checks.

Each ``Example`` of each ``BlockKind`` in ``flowspec.kinds.KINDS`` becomes a
case (``coupling.affine-3``), so a kind added to the registry is tested with no edit
here.  The helpers are reused by other test modules:

* :func:`resolve_example` — an example's options resolved as the compiler would
  (defaults filled, enum words and nets as ``Choice``, ``cond`` as its shape);
* :func:`build_block` — the runtime block, perturbed away from its identity start, given
  one data-dependent-initialisation batch in train mode, then put in eval mode;
* :func:`random_inputs` — a batch of inputs (and ``cond=``) for a case;
* :func:`flat_jacobian_logdets` — per-sample log|det J| of the flattened map, brute force
  (with :func:`perturb`, from :mod:`flowspec.verify.numerics`).

A runtime class may declare ``input_domain = (lo, hi)`` when it is only defined on a
box (``logit`` on (0, 1)); inputs are then drawn inside it.  Kinds whose log-det is
``stochastic`` are compared to the exact value with :func:`check_stochastic_ladj`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import Tensor

from flowspec.kinds import KINDS, BlockKind, Example
from flowspec.kinds.options import Word, resolved
from flowspec.runtime.base import Bijection, load_runtime

# the brute-force helpers live in flowspec.verify (``flowspec verify`` uses them too)
from flowspec.verify.numerics import PERTURB, as_tuple, flat_jacobian_logdets, perturb

BATCH = 3

#: round-trip / inverse-ladj / fused-vs-value-only tolerance by inverse class: iterative
#: and integrated inverses are only as exact as their solver's tolerance
TOLERANCE = {"iterative": 1e-6, "integrated": 1e-4}
EXACT = 1e-8


# ------------------------------------------------------------------------- the cases


def cases() -> Iterator[Any]:
    """``pytest.param(kind, example, id="kind-i")`` for every example of every kind."""
    for kind in KINDS:
        for i, example in enumerate(kind.examples):
            yield pytest.param(kind, example, id=f"{kind.name}-{i}")


def _wrap(value: Any) -> Any:
    return Word(value) if isinstance(value, str) else value


def resolve_example(kind: BlockKind, example: Example) -> dict[str, Any]:
    """The options the code generator would pass: every option resolved, defaults
    filled, tensor options (``cond``) given as the example's conditioning shape."""
    tensor_options = kind.tensor_options
    given = {
        key: _wrap(value) for key, value in example.options.items() if key not in tensor_options
    }
    opts = resolved(kind.options, given, f"`{kind.name}`")
    for name in tensor_options:
        opts[name] = tuple(example.cond) if name == "cond" and example.cond else None
    return opts


def shape_rule_inputs(example: Example) -> list[tuple[int, ...]]:
    """The shapes the checker hands a shape rule: consumed tensors, then ``cond``."""
    shapes = [tuple(s) for s in example.shapes]
    return shapes + [tuple(example.cond)] if example.cond else shapes


def runtime_class(kind: BlockKind) -> type[Bijection]:
    """The kind's runtime class; ``pytest.skip`` only when its module or class does not
    exist yet (any other import error is a failure)."""
    module, _, name = kind.runtime.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        pytest.skip(f"runtime {kind.runtime} not implemented yet")
    if not hasattr(mod, name):
        pytest.skip(f"runtime {kind.runtime} not implemented yet")
    return load_runtime(kind.runtime)


def random_inputs(
    kind: BlockKind,
    example: Example,
    batch: int = BATCH,
    dtype: torch.dtype = torch.float64,
    seed: int = 1,
    cls: type[Bijection] | None = None,
) -> tuple[list[Tensor], dict[str, Tensor]]:
    """(inputs, cond keywords) for a case: standard normal, or uniform inside the
    runtime's ``input_domain`` (away from its edges)."""
    cls = cls or load_runtime(kind.runtime)
    gen = torch.Generator().manual_seed(seed)
    domain = getattr(cls, "input_domain", None)
    xs = []
    for shape in example.shapes:
        if domain is None:
            xs.append(torch.randn(batch, *shape, generator=gen, dtype=dtype))
        else:
            lo, hi = domain
            u = torch.rand(batch, *shape, generator=gen, dtype=dtype)
            xs.append(lo + (hi - lo) * (0.05 + 0.9 * u))
    cond = {}
    if example.cond:
        cond["cond"] = torch.randn(batch, *example.cond, generator=gen, dtype=dtype)
    return xs, cond


def build_block(
    kind: BlockKind, example: Example, dtype: torch.dtype = torch.float64, seed: int = 0
) -> Bijection:
    """The runtime block of a case, in ``dtype``: constructed as the code generator
    would, every parameter perturbed, one batch run in train mode (data-dependent
    initialisation, running statistics, power iterations), then ``eval()``."""
    cls = load_runtime(kind.runtime)
    torch.manual_seed(seed)
    block = cls([tuple(s) for s in example.shapes], **resolve_example(kind, example))
    block.to(dtype)
    perturb(block, seed=seed)
    xs, cond = random_inputs(kind, example, batch=16, dtype=dtype, seed=seed + 100, cls=cls)
    block.train()
    with torch.no_grad():
        block(*xs, **cond)
    return block.eval()


# ----------------------------------------------------------------------- the checks


def tolerance(kind: BlockKind, opts: dict[str, Any]) -> float:
    return TOLERANCE.get(kind.inverse_class(opts), EXACT)


def is_stochastic(kind: BlockKind, opts: dict[str, Any]) -> bool:
    return kind.logdet_class(opts) == "stochastic"


def max_error(a: tuple[Tensor, ...], b: tuple[Tensor, ...]) -> float:
    assert len(a) == len(b)
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def check_stochastic_ladj(
    draw: Callable[[], Tensor], exact: Tensor, draws: int = 400, sigmas: float = 5.0
) -> None:
    """Assert the mean of ``draws`` estimates is within ``sigmas`` standard errors of
    ``exact`` (per sample), the confidence-interval test for unbiased estimators."""
    samples = torch.stack([draw().detach() for _ in range(draws)])  # [N, B]
    mean = samples.mean(0)
    se = samples.std(0) / draws**0.5
    gap = (mean - exact).abs()
    assert bool((gap <= sigmas * se + 1e-10).all()), (
        f"stochastic ladj mean {mean.tolist()} vs exact {exact.tolist()}, "
        f"standard errors {se.tolist()}"
    )


__all__ = [
    "BATCH",
    "EXACT",
    "PERTURB",
    "as_tuple",
    "build_block",
    "cases",
    "check_stochastic_ladj",
    "flat_jacobian_logdets",
    "is_stochastic",
    "max_error",
    "perturb",
    "random_inputs",
    "resolve_example",
    "runtime_class",
    "shape_rule_inputs",
    "tolerance",
]


#: the Real NVP example of LANGUAGE.md §2, verbatim (test_parse, test_yaml)
LANGUAGE_MD_REALNVP = """\
# Real NVP on 2-D data
flow realnvp {
    input x: [2]                 # shape without the batch axis
    latent normal                # normal (default) | logistic | uniform

    repeat 8 {
        x = coupling.affine(x, net=mlp(hidden=[64, 64], act=relu))
        x = reverse(x)
    }
    output x
}
"""


# ------------------------------------------------------------------ whole flows


_CONTEXT_METHODS = ("forward", "inverse", "transform", "inverse_transform", "log_prob", "sample")


def with_fixed_context(flow: Any, seed: int = 7) -> Any:
    """``flow`` itself, with a fixed unbatched context bound into every entry point when
    the flow declares a ``context`` (the module broadcasts one ``[d]`` context to any
    batch), so a check written for unconditional flows runs p(x | y₀) unedited."""
    shape = flow.context_shape
    if shape is None:
        return flow
    g = torch.Generator().manual_seed(seed)
    y0 = torch.randn(shape, generator=g).to(flow._probe.dtype)
    for name in _CONTEXT_METHODS:
        bound = getattr(flow, name)

        def fixed(*args: Any, _bound: Callable = bound, **kwargs: Any) -> Any:
            kwargs.setdefault("context", y0)
            return _bound(*args, **kwargs)

        setattr(flow, name, fixed)
    return flow
