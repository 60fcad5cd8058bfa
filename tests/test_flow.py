"""The Flow base class: latents, dequantisation, jit."""

from __future__ import annotations

import math

import pytest
import torch

import flowspec


def spec_with(latent: str = "normal", extra: str = "", shape: str = "[3]") -> str:
    return f"""
flow f {{
    input x: {shape}
    latent {latent}
    {extra}
    x = affine(x)
    output x
}}
"""


@pytest.mark.parametrize(
    ("latent", "dist"),
    [
        ("normal", torch.distributions.Normal(torch.tensor(0.0).double(), 1.0)),
        ("logistic", None),
        ("uniform", torch.distributions.Uniform(torch.tensor(0.0).double(), 1.0)),
    ],
)
def test_base_log_prob_matches_torch_distributions(latent, dist):
    flow = flowspec.compile(spec_with(latent), dtype=torch.float64)
    z = torch.rand(5, 3, dtype=torch.float64) * 0.9 + 0.05
    got = flow.base_log_prob(z)
    if dist is None:  # standard logistic: log σ(z) + log σ(−z)
        expected = (torch.nn.functional.logsigmoid(z) + torch.nn.functional.logsigmoid(-z)).sum(1)
    else:
        expected = dist.log_prob(z).sum(1)
    assert torch.allclose(got, expected)
    samples = flow.sample_latent(20000)
    assert samples.shape == (20000, 3)
    if latent == "uniform":
        assert samples.min() >= 0 and samples.max() <= 1
    assert abs(samples.mean().item() - (0.5 if latent == "uniform" else 0.0)) < 0.03


def test_uniform_latent_is_minus_infinity_outside_the_cube():
    flow = flowspec.compile(spec_with("uniform"))
    assert flow.base_log_prob(torch.tensor([[0.5, 0.5, 1.5]])).item() == -math.inf


def test_dequantized_log_prob_is_a_discrete_lower_bound():
    spec = spec_with(extra="dequantize uniform(bits=3)", shape="[2]")
    # with the identity flow and a uniform latent the bound is tight: p(x) = 2^-3 per feature
    flow = flowspec.compile(spec.replace("latent normal", "latent uniform"), dtype=torch.float64)
    x = torch.randint(0, 8, (50, 2)).double()
    lp = flow.log_prob(x)
    assert torch.allclose(lp, torch.full_like(lp, -2 * 3 * math.log(2)))
    assert torch.allclose(flow.bits_per_dim(x), torch.full_like(lp, 3.0))
    samples = flow.sample(100)
    assert samples.dtype == torch.float64
    assert ((samples >= 0) & (samples <= 7) & (samples == samples.round())).all()


def test_input_shape_is_checked_with_a_clear_error():
    flow = flowspec.compile(spec_with())
    with pytest.raises(ValueError, match=r"expects input of shape \[B, 3\], got \[4, 2\]"):
        flow.log_prob(torch.zeros(4, 2))


@pytest.mark.slow
def test_jit_matches_eager_within_float_tolerance():
    spec = "specs/realnvp.flow"
    torch.manual_seed(0)
    eager = flowspec.compile(spec)
    with torch.no_grad():
        for p in eager.parameters():
            p.add_(0.1 * torch.randn_like(p))
    jitted = flowspec.compile(spec, jit=True)
    jitted.load_state_dict(eager.state_dict())
    x = torch.randn(128, 2)
    z1, l1 = eager(x)
    z2, l2 = jitted(x)
    assert torch.allclose(z1, z2, atol=1e-5) and torch.allclose(l1, l2, atol=1e-5)
    x1, _ = eager.inverse(z1)
    x2, _ = jitted.inverse(z1)
    assert torch.allclose(x1, x2, atol=1e-5)
