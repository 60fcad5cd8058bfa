"""``compile(dtype=...)`` in float16 and bfloat16 where every block allows it, refused
naming the block where one does not, and kept through a checkpoint (issue 13)."""

from __future__ import annotations

import pytest
import torch
from conftest import ROOT

import flowspec

HALF = (torch.bfloat16, torch.float16)

COUPLINGS = """flow f {
    input x: [4]
    x = actnorm(x)
    x = coupling.affine(x, net=mlp(hidden=[16]))
    x = reverse(x)
    x = coupling.spline(x, net=mlp(hidden=[16]), bins=4)
    x = autoregressive.affine(x, hidden=[16])
    output x
}
"""


def _perturbed(flow: flowspec.Flow, seed: int = 0) -> flowspec.Flow:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g).to(p.dtype))
    return flow


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_a_16_bit_flow_agrees_with_its_weights_in_float64(dtype):
    """The 16-bit module computes the same map as float64 arithmetic on the same (rounded)
    weights, to within that type's rounding; its round trip is as close."""
    torch.manual_seed(0)
    flow = _perturbed(flowspec.compile(COUPLINGS, dtype=dtype))
    assert {p.dtype for p in flow.parameters()} == {dtype}
    exact = flowspec.compile(COUPLINGS, dtype=torch.float64)
    exact.load_state_dict({k: v.double() for k, v in flow.state_dict().items()})
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(1)).to(dtype)
    z, ladj = flow(x)
    assert z.dtype == dtype and ladj.dtype == dtype
    z64, ladj64 = exact(x.double())
    eps = torch.finfo(dtype).eps
    scale = 1 + z64.abs().max().item()
    assert (z.double() - z64).abs().max().item() < 64 * eps * scale
    assert (ladj.double() - ladj64).abs().max().item() < 64 * eps * (1 + ladj64.abs().max().item())
    back, _ = flow.inverse(z)
    assert (back.double() - x.double()).abs().max().item() < 64 * eps * scale
    assert torch.isfinite(flow.log_prob(x)).all()


@pytest.mark.parametrize(
    ("spec", "kind", "line", "column", "why"),
    [
        ("specs/nsf.flow", "linear", 8, 13, "solves triangular systems"),
        ("specs/glow.flow", "invconv", 7, 9, "solves triangular systems"),
        ("specs/iresnet.flow", "residual", 10, 9, "takes torch.linalg.slogdet"),
        ("specs/residual_flow.flow", "residual", 9, 13, "fixed-point inverse stops at tol=1e-08"),
        ("specs/ffjord.flow", "ode", 8, 9, "adaptive solver controls its error to rtol=1e-07"),
    ],
)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_block_that_cannot_run_in_16_bits_is_named(spec, kind, line, column, why, dtype):
    text = (ROOT / spec).read_text(encoding="utf-8")
    with pytest.raises(ValueError) as err:
        flowspec.compile(text, dtype=dtype)
    message = str(err.value)
    assert f"block `{kind}` at <string>:{line}:{column} cannot run in {dtype}" in message
    assert why in message and "float32 or float64" in message


def test_the_tolerance_it_names_is_enough():
    """A residual block whose fixed-point tolerance the message asks for compiles in
    bfloat16 and inverts to within that tolerance's order."""
    spec = """flow r {
    input x: [3]
    x = residual(x, net=mlp(hidden=[16], act=elu), lipschitz=0.5, inverse=fixedpoint(tol=0.05))
    output x
}
"""
    torch.manual_seed(0)
    flow = _perturbed(flowspec.compile(spec, dtype="bfloat16"))
    x = torch.randn(16, 3).to(torch.bfloat16)
    z, _ = flow(x)
    back, _ = flow.inverse(z)
    assert (back.float() - x.float()).abs().max().item() < 0.2


def test_fixed_step_ode_runs_in_bfloat16():
    spec = """flow o {
    input x: [2]
    x = ode(x, net=mlp(hidden=[8], act=tanh), solver=rk4, steps=4, trace=exact, adjoint=false)
    output x
}
"""
    flow = flowspec.compile(spec, dtype=torch.bfloat16)
    z, ladj = flow(torch.randn(8, 2).to(torch.bfloat16))
    assert z.dtype == torch.bfloat16 and torch.isfinite(ladj).all()


@pytest.mark.parametrize("dtype", [*HALF, torch.float64], ids=str)
def test_the_dtype_survives_a_checkpoint(tmp_path, dtype):
    torch.manual_seed(0)
    flow = _perturbed(flowspec.compile(COUPLINGS, dtype=dtype))
    flowspec.save(flow, tmp_path / "f.pt")
    back = flowspec.load(tmp_path / "f.pt")
    assert {p.dtype for p in back.parameters()} == {dtype}
    for (k, a), (_, b) in zip(flow.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    x = torch.randn(8, 4).to(dtype)
    assert torch.equal(flow.log_prob(x), back.log_prob(x))


def test_data_of_another_dtype_says_how_to_convert():
    flow = flowspec.compile(COUPLINGS, dtype="bfloat16")
    with pytest.raises(ValueError, match=r"flow\.bfloat16\(\)|\.to\(torch\.bfloat16\)"):
        flow.log_prob(torch.randn(4, 4))


def test_not_a_float_dtype_is_refused():
    with pytest.raises(ValueError, match="not a real floating-point dtype"):
        flowspec.compile(COUPLINGS, dtype=torch.int32)
    with pytest.raises(ValueError, match="not a torch dtype"):
        flowspec.compile(COUPLINGS, dtype="float17")
