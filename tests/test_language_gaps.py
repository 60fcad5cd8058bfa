"""Issue 10, language gaps that are block kinds: ``scale`` (NICE's diagonal scaling),
``gaussianize`` (Glow's learned priors) and the smooth default activation of ``ode`` nets.

Each kind's runtime class is also run by the registry harness (``tests/test_blocks.py``:
round trip, ladj against ``jacobian`` + ``slogdet`` in float64, inverse ladj, value-only
paths, gradients) on the examples of its entry; the tests here are at the spec level:
what ``check`` says, and what the compiled flow computes, against float64 brute force.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from test_compile import brute_force_ladj, data_for, flat, prepared

import flowspec
from flowspec.core.spans import Source
from flowspec.driver import Compilation
from flowspec.summary import parameter_counts
from flowspec.syntax import dsl
from flowspec.syntax.to_yaml import to_yaml

ROOT = Path(__file__).resolve().parent.parent


def flow(body: str, shape: str = "[4]") -> str:
    lines = "".join(f"    {line}\n" for line in body.strip().splitlines())
    return f"flow f {{\n    input x: {shape}\n{lines}}}\n"


def diagnose(text: str, path: str = "t.flow") -> list[tuple[str, int, int, str, str | None]]:
    diags = Compilation(Source(path, text)).diagnostics
    return [(d.code, d.line, d.column, d.message, d.hint) for d in diags]


def yaml_twin(text: str) -> str:
    program, errors = dsl.parse(Source("t.flow", text))
    assert errors == []
    return to_yaml(program)


def normal_log_prob(z) -> torch.Tensor:
    z = flat(z)
    return -0.5 * (z**2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi)


# ------------------------------------------------------------------------- scale


def test_scale_is_x_times_exp_s_with_ladj_the_sum_of_s():
    f = flowspec.compile(flow("x = scale(x)\noutput x", "[2, 3]"), dtype=torch.float64)
    (block,) = [m for m in f.modules() if type(m).__name__ == "Scale"]
    assert torch.equal(block.log_scale, torch.zeros(2, 3))  # starts at the identity
    with torch.no_grad():
        block.log_scale.copy_(torch.linspace(-1, 1, 6, dtype=torch.float64).view(2, 3))
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    z, ladj = f(x)
    assert torch.allclose(z, x * block.log_scale.exp())
    assert torch.allclose(ladj, block.log_scale.sum().expand(5))
    assert torch.allclose(ladj, brute_force_ladj(f, x), atol=1e-12)
    back, ladj_inv = f.inverse(z)
    assert torch.allclose(back, x, atol=1e-12) and torch.allclose(ladj_inv, -ladj)


def test_the_nice_spec_ends_with_its_diagonal_scaling():
    text = (ROOT / "specs" / "nice.flow").read_text()
    assert "x = scale(x)" in text
    blocks = Compilation.of(ROOT / "specs" / "nice.flow").flow_graph().blocks()
    assert blocks[-1].kind == "scale"


def test_scale_has_no_lipschitz_bound_and_says_so():
    (d,) = diagnose(flow("require lipschitz <= 10\nx = scale(x)\noutput x"))
    assert (d[0], d[1]) == ("E400", 3) and "`scale` is unbounded" in d[3]


def test_scale_takes_no_options():
    (d,) = diagnose(flow("x = scale(x, s=1)\noutput x"))
    assert (d[0], d[1], d[2]) == ("E200", 3, 18)


# ------------------------------------------------------------------- gaussianize

#: Glow on [2, 4, 4] with learned priors: the half split off is gaussianized by a net
#: of the half kept (which is transformed afterwards), and the top latent learns its own
GLOW = """\
flow glow {
    input x: [2, 4, 4]
    x = squeeze(x)
    x = actnorm(x)
    x = coupling.affine(x, net=conv(hidden=8, depth=1), mask=channel)
    z, x = split(x)
    z = gaussianize(z, cond=x, net=conv(depth=0))
    x = invconv(x)
    x = coupling.affine(x, net=conv(hidden=8, depth=1), mask=channel, flip=true)
    x = gaussianize(x)
    output z, x
}
"""


def test_glow_with_learned_priors_checks_clean_in_both_syntaxes():
    assert diagnose(GLOW) == []
    assert diagnose(yaml_twin(GLOW), "t.yaml") == []


def test_glow_with_learned_priors_round_trips_and_its_ladj_is_the_jacobian():
    f = prepared(GLOW, scale=0.05)
    x = data_for(f, 3)
    z, ladj = f(x)
    back, ladj_inv = f.inverse(z)
    assert torch.allclose(back, x, atol=1e-10, rtol=0)
    assert torch.allclose(ladj_inv, -ladj, atol=1e-10, rtol=0)
    assert torch.allclose(ladj, brute_force_ladj(f, x), atol=1e-9, rtol=0)
    assert torch.allclose(f.log_prob(x), normal_log_prob(z) + ladj, atol=1e-10)
    samples = f.sample(4)
    assert samples.shape == (4, 2, 4, 4) and torch.isfinite(samples).all()


def test_the_prior_is_the_gaussian_of_its_net():
    """log p(z | h) of the factored-out half is log N(z; μ(h), σ(h)²): the density of
    z' = (z − μ)/σ under N(0, 1) plus ladj = −Σ log σ."""
    text = flow(
        "a, b = split(x)\na = gaussianize(a, cond=b, net=mlp(hidden=[8]))\noutput a, b",
        "[5]",
    )
    f = prepared(text, scale=0.3)
    (g,) = [m for m in f.modules() if type(m).__name__ == "Gaussianize"]
    x = data_for(f, 6)
    a, b = x[:, :2], x[:, 2:]
    mu, log_sigma = g.prior(b).view(6, 2, 2).unbind(1)
    expected = torch.distributions.Normal(mu, log_sigma.exp()).log_prob(a).sum(1)
    expected = expected + torch.distributions.Normal(0.0, 1.0).log_prob(b).sum(1)
    assert torch.allclose(f.log_prob(x), expected, atol=1e-12)


def test_gaussianize_starts_at_the_identity():
    f = flowspec.compile(GLOW, dtype=torch.float64)
    for g in [m for m in f.modules() if type(m).__name__ == "Gaussianize"]:
        z = torch.randn(3, *g.in_shapes[0], dtype=torch.float64)
        cond = None if g.cond_shape is None else torch.randn(3, *g.cond_shape).double()
        y, ladj = g(z, cond=cond) if cond is not None else g(z)
        assert torch.equal(y, z) and torch.equal(ladj, torch.zeros(3, dtype=torch.float64))


def test_without_cond_the_top_prior_learns_a_mean_and_log_scale_per_feature():
    f = flowspec.compile(flow("x = gaussianize(x)\noutput x", "[3, 2, 2]"))
    (g,) = [m for m in f.modules() if type(m).__name__ == "Gaussianize"]
    assert g.loc.shape == g.log_scale.shape == (3, 2, 2)
    assert sum(p.numel() for p in f.parameters()) == 24


def test_a_prior_conditioned_without_a_net_is_e201_at_the_call():
    (d,) = diagnose(flow("a, b = split(x)\na = gaussianize(a, cond=b)\noutput a, b"))
    assert d[:4] == ("E201", 4, 9, "`gaussianize` is missing option `net`")
    assert "`net=conv(depth=0)`" in d[4] and "`net=mlp(" in d[4]
    text = flow("a, b = split(x)\na = gaussianize(a, cond=b)\noutput a, b")
    (y,) = diagnose(yaml_twin(text), "t.yaml")
    assert y[0] == "E201" and y[3:] == d[3:]


def test_a_net_without_cond_is_w103_at_the_net():
    (d,) = diagnose(flow("x = gaussianize(x, net=mlp)\noutput x"))
    assert (d[0], d[1], d[2]) == ("W103", 3, 24) and "no effect without `cond=`" in d[3]


def test_a_conv_prior_needs_the_spatial_size_of_its_condition():
    text = flow(
        "a, b = split(x)\nb = squeeze(b)\na = gaussianize(a, cond=b, net=conv(depth=0))\n"
        "b = unsqueeze(b)\noutput a, b",
        "[4, 4, 4]",
    )
    (d,) = diagnose(text)
    assert (d[0], d[1], d[2]) == ("E202", 5, 24) and "spatial size [4, 4]" in d[3]


def test_depth_0_is_a_prior_net_only():
    (d,) = diagnose(flow("x = coupling.affine(x, net=conv(depth=0))\noutput x", "[2, 4, 4]"))
    assert (d[0], d[1]) == ("E201", 3) and "`depth` must be at least 1" in d[3]


def test_gaussianize_is_in_the_registry_with_its_paper():
    from flowspec.kinds import REGISTRY

    kind = REGISTRY["gaussianize"]
    assert "Glow" in kind.paper and {o.name for o in kind.options} == {"net", "cond"}
    assert REGISTRY["scale"].runtime.endswith(":Scale")


def test_glow_for_cifar10_with_learned_priors_has_the_usual_44_million_parameters():
    comp = Compilation.of(ROOT / "examples" / "glow_cifar10.flow")
    assert comp.diagnostics == []
    fg = comp.flow_graph()
    counts = parameter_counts(fg)
    priors = [c for c, n in zip(counts, fg.blocks()) if n.kind == "gaussianize"]
    # a 3×3 convolution C → 2·C' per split (6 → 12, 12 → 24) and 2·48·4·4 at the top
    assert priors == [6 * 12 * 9 + 12, 12 * 24 * 9 + 24, 2 * 48 * 4 * 4]
    assert sum(counts) - sum(priors) == 44_047_872  # Glow without learned priors
    assert sum(counts) == 44_052_684


# ----------------------------------------------------------------- ode's default


def test_an_ode_net_defaults_to_a_smooth_activation_and_does_not_warn():
    text = flow("x = ode(x, net=mlp(hidden=[8]))\noutput x", "[2]")
    assert diagnose(text) == []
    (node,) = Compilation(Source("t.flow", text)).flow_graph().blocks()
    assert node.options["net"]["act"].kind == "softplus"
    f = flowspec.compile(text)
    acts = {type(m).__name__ for m in f.modules()} & {"ReLU", "Softplus", "Tanh"}
    assert acts == {"Softplus"}


def test_a_non_smooth_activation_written_in_an_ode_net_still_warns():
    (d,) = diagnose(flow("x = ode(x, net=mlp(hidden=[8], act=relu))\noutput x", "[2]"))
    assert (d[0], d[1], d[2]) == ("W102", 3, 16)


@pytest.mark.parametrize("kind", ["coupling.affine", "residual"])
def test_other_nets_keep_relu_as_their_default(kind):
    text = flow(f"x = {kind}(x, net=mlp(hidden=[8]))\nx = reverse(x)\noutput x")
    node = Compilation(Source("t.flow", text)).flow_graph().blocks()[0]
    assert node.options["net"]["act"].kind == "relu"
