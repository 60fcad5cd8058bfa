"""The README's worked example, "Adding a block kind", run as written.

A new kind is one :class:`~flowspec.kinds.BlockKind` entry and one runtime class.  The
entry below (``sinh``, y = sinh(x)) is registered for the duration of a test only, and
the float64 harness of ``test_blocks.py`` runs on it unedited: the same test functions,
given the new kind.  A spec using it then checks and compiles like any other.
"""

from __future__ import annotations

import pytest
import test_blocks
import test_resources
import torch
from torch import Tensor

import flowspec
from flowspec.kinds import KINDS, REGISTRY, BlockKind, Bound, Example
from flowspec.kinds.base import _same, _unbounded
from flowspec.kinds.sizes import no_parameters
from flowspec.runtime.base import Bijection, sum_except_batch


# --- the runtime class (in flowspec/runtime/elementwise.py for a real kind)
class Sinh(Bijection):
    """``y = sinh(x)``; ladj = Σ log cosh(x); inverse ``x = asinh(y)``."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return torch.sinh(x), sum_except_batch(torch.log(torch.cosh(x)))

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.asinh(y)
        return x, -sum_except_batch(torch.log(torch.cosh(x)))

    def transform(self, x: Tensor) -> Tensor:
        return torch.sinh(x)

    def inverse_transform(self, y: Tensor) -> Tensor:
        return torch.asinh(y)


# --- the entry (in ENTRIES of flowspec/kinds/elementwise.py for a real kind)
SINH = BlockKind(
    "sinh",
    "y = sinh(x)",
    "",
    (),
    _same,
    f"{__name__}:Sinh",
    inverse="analytic",
    logdet="analytic",
    lipschitz=_unbounded("sinh grows without bound"),
    # d asinh(y)/dy = 1/sqrt(1 + y²) ≤ 1
    inverse_lipschitz=lambda opts, shapes: Bound(1.0),
    features="elementwise",
    parameters=no_parameters,  # it learns nothing (see flowspec/kinds/sizes.py)
    examples=(Example(((3,),)), Example(((2, 2),))),
)

SPEC = """\
flow f {
    input x: [2]
    require inverse_lipschitz <= 1
    x = sinh(x)
    output x
}
"""


@pytest.fixture
def sinh_registered(monkeypatch: pytest.MonkeyPatch) -> BlockKind:
    monkeypatch.setitem(REGISTRY, "sinh", SINH)
    monkeypatch.setattr("flowspec.kinds.KINDS", (*KINDS, SINH))
    return SINH


HARNESS = (
    test_blocks.test_shapes_follow_the_shape_rule,
    test_blocks.test_round_trip,
    test_blocks.test_ladj_matches_the_jacobian,
    test_blocks.test_inverse_ladj_is_minus_forward,
    test_blocks.test_value_only_paths_agree_with_fused,
    test_blocks.test_gradient_reaches_every_parameter,
    test_resources.test_the_parameter_formula_equals_the_built_block,
)


@pytest.mark.parametrize("check", HARNESS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("example", SINH.examples, ids=["flat", "2d"])
def test_the_float64_harness_runs_on_the_new_kind(
    sinh_registered: BlockKind, check, example: Example
) -> None:
    check(sinh_registered, example)


def test_a_wrong_ladj_is_caught_by_the_harness(
    sinh_registered: BlockKind, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the harness is not vacuous: the same kind with log(cosh) forgotten fails it
    monkeypatch.setattr(
        Sinh, "forward", lambda self, x: (torch.sinh(x), torch.zeros(x.shape[0], dtype=x.dtype))
    )
    with pytest.raises(AssertionError):
        test_blocks.test_ladj_matches_the_jacobian(sinh_registered, SINH.examples[0])


def test_a_spec_with_the_new_kind_checks_and_compiles(sinh_registered: BlockKind) -> None:
    assert flowspec.check(SPEC) == []
    flow = flowspec.compile(SPEC).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    z, ladj = flow(x)
    assert torch.allclose(z, torch.sinh(x))
    assert torch.allclose(ladj, torch.log(torch.cosh(x)).sum(1))
    # the bound the entry declares is what the checker proves
    bad = SPEC.replace("inverse_lipschitz <= 1", "lipschitz <= 1")
    (problem,) = flowspec.check(bad)
    assert (problem.code, problem.span.line) == ("E400", 3)
    assert "`sinh` is unbounded: sinh grows without bound" in problem.message
