"""Exact evaluation of stochastic blocks (``flow.log_prob(x, exact=True)``,
``flowspec.exact(flow)``, ``flow.exact()``) against the brute-force log-density: the
float64 Jacobian of the whole flow (torch.autograd.functional.jacobian), its slogdet and
the base log-density."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import flowspec
from flowspec.runtime import residual as residual_runtime
from flowspec.runtime.residual import Residual

F64 = torch.float64

RESIDUAL_FLOW = """
flow rf {
    input x: [D]
    latent normal
    x = residual(x, net=mlp(hidden=[16], act=lipswish, init=default), lipschitz=C)
    x = residual(x, net=mlp(hidden=[16], act=tanh, init=default), lipschitz=C,
                 logdet=roulette(p=0.5), eval_terms=N)
    output x
}
"""

ODE_FLOW = """
flow cnf {
    input x: [2]
    latent normal
    x = ode(x, net=mlp(hidden=[16], act=tanh, init=default), rtol=1e-10, atol=1e-10, adjoint=false)
    output x
}
"""


def residual_flow(d: int = 4, c: float = 0.9, terms: int = 100, seed: int = 0):
    torch.manual_seed(seed)
    text = RESIDUAL_FLOW.replace("D", str(d)).replace("C", str(c)).replace("N", str(terms))
    flow = flowspec.compile(text, dtype=F64)
    with torch.no_grad():  # raw weights 5× their initialisation: every layer is rescaled
        for name, p in flow.named_parameters():
            p.mul_(5.0) if name.endswith("weight") else p.normal_(0, 0.3)
    return flow.eval()


def brute_force_log_prob(flow, x: Tensor, create_graph: bool = False) -> Tensor:
    def one(xi: Tensor) -> Tensor:
        return flow.transform(xi.unsqueeze(0))[0]

    out = []
    for xi in x:
        jac = torch.autograd.functional.jacobian(one, xi, create_graph=create_graph)
        z = one(xi).unsqueeze(0)
        out.append(flow.base_log_prob(z)[0] + torch.linalg.slogdet(jac)[1])
    return torch.stack(out)


def test_exact_residual_flow_equals_brute_force() -> None:
    flow = residual_flow()
    x = torch.randn(6, 4, dtype=F64)
    want = brute_force_log_prob(flow, x)
    got = flow.log_prob(x, exact=True)
    assert torch.allclose(got, want, rtol=0, atol=1e-8), (got - want).abs().max()


def test_exact_is_deterministic_and_the_default_stays_stochastic() -> None:
    flow = residual_flow()
    x = torch.randn(6, 4, dtype=F64)
    assert torch.equal(flow.log_prob(x, exact=True), flow.log_prob(x, exact=True))
    draws = torch.stack([flow.log_prob(x) for _ in range(5)])  # eval(): still the estimate
    assert (draws.std(0) > 0).all()


def test_context_manager_and_method_agree_with_the_keyword_and_restore_the_flags() -> None:
    flow = residual_flow()
    x = torch.randn(5, 4, dtype=F64)
    want = flow.log_prob(x, exact=True)
    blocks = [m for m in flow.modules() if isinstance(m, Residual)]
    assert len(blocks) == 2
    with flowspec.exact(flow):
        assert all(b.exact_eval for b in blocks)
        assert torch.equal(flow.log_prob(x), want)
        z, ladj = flow(x)  # every entry point, not only log_prob
        assert torch.equal(flow.base_log_prob(z) + ladj, want)
        with flow.exact(enabled=False):  # contexts nest
            assert not any(b.exact_eval for b in blocks)
        assert all(b.exact_eval for b in blocks)
    assert not any(b.exact_eval for b in blocks)
    with flow.exact():
        assert torch.equal(flow.log_prob(x), want)
    assert not any(b.exact_eval for b in blocks)


def test_exact_inverse_log_det_is_minus_the_forward_one() -> None:
    flow = residual_flow(c=0.7)
    x = torch.randn(5, 4, dtype=F64)
    with flowspec.exact(flow):
        z, ladj = flow(x)
        x_back, ladj_inv = flow.inverse(z)
    assert torch.allclose(x_back, x, atol=1e-5)
    assert torch.allclose(ladj_inv, -ladj, atol=1e-5)


def test_gradient_of_the_exact_log_density_is_the_brute_force_gradient() -> None:
    flow = residual_flow(d=3)
    x = torch.randn(4, 3, dtype=F64)
    params = [p for p in flow.parameters() if p.requires_grad]
    got = torch.autograd.grad(flow.log_prob(x, exact=True).sum(), params)
    want = torch.autograd.grad(brute_force_log_prob(flow, x, create_graph=True).sum(), params)
    for g, w in zip(got, want):
        assert torch.allclose(g, w, rtol=1e-6, atol=1e-8)


def test_above_the_threshold_the_exactly_traced_series_is_used(monkeypatch) -> None:
    # with c = 0.5 the tail after 60 terms is below 4·0.5^61/(61·0.5) ≈ 6e-20
    flow = residual_flow(c=0.5, terms=60)
    x = torch.randn(6, 4, dtype=F64)
    want = flow.log_prob(x, exact=True)  # d = 4: slogdet
    monkeypatch.setattr(residual_runtime, "EXACT_MAX_FEATURES", 2)
    monkeypatch.setattr(residual_runtime, "_CHUNK_ELEMENTS", 8)  # probes in several chunks
    got = flow.log_prob(x, exact=True)
    assert torch.allclose(got, want, rtol=0, atol=1e-8), (got - want).abs().max()
    assert torch.equal(got, flow.log_prob(x, exact=True))


@pytest.mark.parametrize("terms", [1, 2, 5])
def test_series_error_is_within_the_documented_bound(monkeypatch, terms: int) -> None:
    torch.manual_seed(1)
    block = Residual(
        [(4,)],
        net=flowspec.kinds.options.Choice(
            "mlp",
            hidden=[4],
            act=flowspec.kinds.options.Choice("tanh"),
            init=flowspec.kinds.options.Choice("default"),
        ),
        lipschitz=0.8,
        eval_terms=terms,
    ).double()
    with torch.no_grad():
        for layer in block.g.layers:  # every singular value equal: J_g as large as allowed
            u, _, vh = torch.linalg.svd(torch.randn_like(layer.weight), full_matrices=False)
            layer.weight.copy_(2.0 * u @ vh)
    x = torch.randn(8, 4, dtype=F64) * 0.1
    block.exact_eval = True
    with torch.no_grad():
        _, exact = block(x)
        monkeypatch.setattr(residual_runtime, "EXACT_MAX_FEATURES", 0)
        _, series = block(x)
    error = float((series - exact).abs().max())
    bound = block.series_tail_bound()
    c = block.lipschitz_bound()
    assert 0.6 < c <= 0.64 + 1e-9  # two layers of spectral norm ≤ 0.8, tanh 1-Lipschitz
    assert bound == pytest.approx(4 * c ** (terms + 1) / ((terms + 1) * (1 - c)), rel=1e-12)
    assert 0 < error <= bound


def test_exact_ode_flow_equals_brute_force_to_solver_tolerance() -> None:
    torch.manual_seed(0)
    flow = flowspec.compile(ODE_FLOW, dtype=F64).eval()
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(0, 0.5)
    x = torch.randn(5, 2, dtype=F64)
    want = brute_force_log_prob(flow, x)
    got = flow.log_prob(x, exact=True)
    assert torch.allclose(got, want, rtol=0, atol=1e-7), (got - want).abs().max()
    assert torch.equal(got, flow.log_prob(x, exact=True))
    draws = torch.stack([flow.log_prob(x) for _ in range(4)])  # Hutchinson by default
    assert (draws.std(0) > 0).all()


def test_ode_exact_trace_in_chunks_equals_one_chunk(monkeypatch) -> None:
    from flowspec.runtime import ode as ode_runtime

    torch.manual_seed(0)
    flow = flowspec.compile(ODE_FLOW.replace("[2]", "[5]"), dtype=F64).eval()
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(0, 0.5)
    x = torch.randn(3, 5, dtype=F64)
    want = flow.log_prob(x, exact=True)
    monkeypatch.setattr(ode_runtime, "_CHUNK_ELEMENTS", 30)  # 2 copies per chunk
    assert torch.allclose(flow.log_prob(x, exact=True), want, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "must be at least 1"), ("10001", "too large")],
)
def test_eval_terms_is_bounded(value: str, message: str) -> None:
    text = (
        "flow f {\n    input x: [3]\n"
        f"    x = residual(x, net=mlp(hidden=[8], act=lipswish), eval_terms={value})\n"
        "    output x\n}\n"
    )
    (diag,) = flowspec.check(text)
    assert (diag.code, diag.line, diag.column) == ("E201", 3, 67)  # at the value
    assert message in diag.message
