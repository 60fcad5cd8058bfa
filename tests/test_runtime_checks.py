"""A compiled flow checks what it is given: a wrong shape, a wrong number of latents or
a wrong type is a ValueError or TypeError naming the flow and the shapes, from every
entry point (issue 10, finding 3 — before, ``flow(x)`` on a [4, 3] batch of a [2] flow
silently returned [4, 2], and a wrong latent count failed inside generated code)."""

from __future__ import annotations

import pytest
import torch

import flowspec

ONE = """
flow one {
    input x: [2]
    x = coupling.affine(x, net=mlp(hidden=[8]))
    x = reverse(x)
    output x
}
"""

TWO = """
flow two {
    input x: [4]
    z, x = split(x)
    x = coupling.affine(x, net=mlp(hidden=[8]))
    output z, x
}
"""


@pytest.fixture(scope="module")
def one() -> flowspec.Flow:
    return flowspec.compile(ONE)


@pytest.fixture(scope="module")
def two() -> flowspec.Flow:
    return flowspec.compile(TWO)


@pytest.mark.parametrize("method", ["forward", "transform", "log_prob"])
def test_a_dropped_feature_is_an_error_naming_both_shapes(one, method) -> None:
    shapes = r"flow `one` expects input of shape \[B, 2\], got \[4, 3\]"
    with pytest.raises(ValueError, match=shapes):
        getattr(one, method)(torch.randn(4, 3))


@pytest.mark.parametrize("method", ["forward", "transform"])
def test_an_unbatched_input_is_an_error(one, method) -> None:
    with pytest.raises(ValueError, match=r"expects input of shape \[B, 2\], got \[2\]"):
        getattr(one, method)(torch.randn(2))  # one sample without its batch dimension
    with pytest.raises(ValueError, match=r"got \[\]"):
        getattr(one, method)(torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"got \[2, 2, 1\]"):
        getattr(one, method)(torch.randn(2, 2, 1))


def test_a_non_tensor_input_is_a_type_error(one) -> None:
    with pytest.raises(TypeError, match=r"expects one tensor of shape \[B, 2\], got list"):
        one([[0.0, 1.0]])


@pytest.mark.parametrize("method", ["inverse", "inverse_transform"])
def test_the_inverse_checks_its_latent(one, method) -> None:
    with pytest.raises(ValueError, match=r"its latent of shape \[B, 2\], got \[4, 3\]"):
        getattr(one, method)(torch.randn(4, 3))
    with pytest.raises(TypeError, match=r"one tensor of shape \[B, 2\], got tuple"):
        getattr(one, method)((torch.randn(4, 2),))


@pytest.mark.parametrize("method", ["inverse", "inverse_transform"])
def test_a_multi_output_inverse_checks_count_shapes_and_batch(two, method) -> None:
    inverse = getattr(two, method)
    count = r"2 outputs: .* a tuple of 2 latents, \[B, 2\] and \[B, 2\], got one tensor"
    with pytest.raises(ValueError, match=count):
        inverse(torch.randn(3, 2))
    with pytest.raises(ValueError, match=r"got 3 tensors"):
        inverse((torch.randn(3, 2),) * 3)
    with pytest.raises(ValueError, match=r"latent 1 of shape \[B, 2\], got \[3, 5\]"):
        inverse((torch.randn(3, 2), torch.randn(3, 5)))
    with pytest.raises(ValueError, match=r"different batch sizes \[3, 4\]"):
        inverse((torch.randn(3, 2), torch.randn(4, 2)))


def test_right_arguments_still_round_trip(one, two) -> None:
    x = torch.randn(5, 2)
    z, ladj = one(x)
    assert ladj.shape == (5,)
    assert torch.allclose(one.inverse(z)[0], x, atol=1e-5)
    x4 = torch.randn(5, 4)
    zs = two.transform(x4)
    assert len(zs) == 2
    assert torch.allclose(two.inverse_transform(list(zs)), x4, atol=1e-5)
