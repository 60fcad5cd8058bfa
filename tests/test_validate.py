"""Run-time validation (issue 10, finding 7): every entry point checks the dtype, NaN/inf,
dequantised integers and the blocks' domains, naming the flow and, where a block is at
fault, its spec line; ``flow.validate = False`` / ``compile(validate=False)`` turns the
checks off."""

from __future__ import annotations

import math

import pytest
import torch

import flowspec

LOGIT = """
flow f {
    input x: [2]
    x = affine(x)
    x = logit(x)
    x = coupling.affine(x, net=mlp(hidden=[8]))
    output x
}
"""

SIGMOID = """
flow s {
    input x: [2]
    x = sigmoid(x)
    output x
}
"""

BYTES = """
flow bytes {
    input x: [3, 4, 4]
    dequantize uniform(bits=8)
    latent uniform
    x = affine(x)
    output x
}
"""

BATCHNORM = """
flow bn {
    input x: [2]
    x = coupling.affine(x, net=mlp(hidden=[8]))
    x = batchnorm(x)
    output x
}
"""

ENTRY_POINTS = ["forward", "transform", "log_prob"]
INVERSES = ["inverse", "inverse_transform"]


@pytest.fixture(scope="module")
def logit() -> flowspec.Flow:
    return flowspec.compile(LOGIT)


@pytest.fixture(scope="module")
def byte_flow() -> flowspec.Flow:
    return flowspec.compile(BYTES)


@pytest.mark.parametrize("method", ENTRY_POINTS + INVERSES)
def test_a_dtype_mismatch_says_how_to_convert(logit, method) -> None:
    with pytest.raises(ValueError) as err:
        getattr(logit, method)(torch.rand(4, 2, dtype=torch.float64))
    text = str(err.value)
    assert text.startswith("flow `f` has torch.float32 parameters, got ")
    assert "torch.float64" in text and "flow.double()" in text
    assert "flowspec.compile(..., dtype=torch.float64)" in text


def test_integer_data_without_dequantize_is_named(logit) -> None:
    with pytest.raises(ValueError, match=r"takes torch.float32 data, got a torch.int64 tensor"):
        logit.log_prob(torch.ones(3, 2, dtype=torch.int64))


@pytest.mark.parametrize("method", ENTRY_POINTS)
@pytest.mark.parametrize(("bad", "word"), [(math.nan, "NaN"), (math.inf, "inf")])
def test_non_finite_data_is_an_error(logit, method, bad, word) -> None:
    x = torch.full((4, 2), 0.5)
    x[2, 1] = bad
    with pytest.raises(
        ValueError,
        match=rf"flow `f`: the input holds 1 non-finite value \({word}\)"
        r", first in batch element 2",
    ):
        getattr(logit, method)(x)


@pytest.mark.parametrize("method", INVERSES)
def test_non_finite_latents_are_an_error(logit, method) -> None:
    z = torch.zeros(3, 2)
    z[0, 0] = -math.inf
    z[1, 1] = math.nan
    with pytest.raises(ValueError, match=r"the latent holds 2 non-finite values \(NaN and inf\)"):
        getattr(logit, method)(z)


@pytest.mark.parametrize("method", ENTRY_POINTS)
def test_logit_outside_the_unit_box_names_its_spec_line(logit, method) -> None:
    x = torch.full((4, 2), 0.5)
    x[1, 0] = 1.3
    located = r"flow `f`, line 5 \(`x = logit\(x\)`\): logit needs values in \[0, 1\], got max 1.3"
    with pytest.raises(ValueError, match=located):
        getattr(logit, method)(x)
    x[1, 0] = -0.25
    with pytest.raises(ValueError, match=r"line 5 .*got min -0.25"):
        getattr(logit, method)(x)


def test_logit_inside_the_box_runs(logit) -> None:
    x = torch.tensor([[0.0, 1.0], [0.3, 0.7]])
    assert torch.isfinite(logit.log_prob(x)).all()


def test_the_inverse_of_sigmoid_needs_the_open_unit_interval() -> None:
    flow = flowspec.compile(SIGMOID)
    with pytest.raises(
        ValueError,
        match=r"flow `s`, line 4 \(`x = sigmoid\(x\)`\): the inverse of "
        r"sigmoid needs values in \(0, 1\), got max 1",
    ):
        flow.inverse(torch.tensor([[0.5, 1.0]]))
    # a normal latent is the usual slip: sampling says so rather than returning NaN
    with pytest.raises(ValueError, match=r"line 4 .* the inverse of sigmoid needs values in"):
        flow.sample(64)


def test_validation_can_be_switched_off() -> None:
    flow = flowspec.compile(LOGIT, validate=False)
    assert flow.validate is False
    x = torch.full((2, 2), 1.3)
    assert torch.isnan(flow.log_prob(x)).all()  # garbage in, garbage out, no check
    flow.log_prob(torch.rand(2, 2, dtype=torch.float64).float())
    flow.validate = True
    with pytest.raises(ValueError, match="logit needs values"):
        flow.log_prob(x)
    flow.validate = False
    assert torch.isnan(flow.transform(x)).all()


def test_validation_is_on_by_default(logit) -> None:
    assert logit.validate is True


@pytest.mark.parametrize(
    ("n", "error", "says"),
    [
        (-1, ValueError, r"sample\(n\) takes n ≥ 0 samples, got -1"),
        (2.5, TypeError, r"sample\(n\) takes a whole number of samples, got float 2.5"),
        ("3", TypeError, r"got str '3'"),
        (True, TypeError, r"got bool True"),
    ],
)
def test_sample_checks_its_count(logit, n, error, says) -> None:
    with pytest.raises(error, match=says):
        logit.sample(n)


def test_sample_takes_integers_of_any_kind(logit) -> None:
    import numpy as np

    assert logit.sample(np.int64(3)).shape == (3, 2)
    assert logit.sample(0).shape == (0, 2)


# ------------------------------------------------------------------ dequantize


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.int64, torch.float32])
def test_dequantize_takes_integer_tensors(byte_flow, dtype) -> None:
    x = torch.randint(0, 256, (16, 3, 4, 4)).to(dtype)
    lp = byte_flow.log_prob(x)
    assert lp.shape == (16,) and lp.dtype == torch.float32


def test_bits_per_dim_of_an_identity_flow_on_uniform_bytes_is_8(byte_flow) -> None:
    x = torch.randint(0, 256, (256, 3, 4, 4), dtype=torch.uint8)
    bpd = byte_flow.bits_per_dim(x)
    assert abs(bpd.mean().item() - 8.0) < 1e-4


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ([256], r"in \[0, 256\) \(bits=8\), got values in \[0, 256\]"),
        ([-1], r"got values in \[-1, 0\]"),
    ],
)
def test_dequantize_rejects_out_of_range_integers(byte_flow, values, says) -> None:
    x = torch.zeros(2, 3, 4, 4, dtype=torch.int64)
    x[1, 0, 0, 0] = values[0]
    with pytest.raises(ValueError, match=rf"flow `bytes` dequantizes .*{says}"):
        byte_flow.log_prob(x)


def test_dequantize_rejects_data_already_scaled(byte_flow) -> None:
    with pytest.raises(ValueError, match=r"got non-integer values .* not data already scaled"):
        byte_flow.log_prob(torch.rand(2, 3, 4, 4))


def test_dequantize_rejects_non_finite_floats(byte_flow) -> None:
    x = torch.zeros(2, 3, 4, 4)
    x[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match=r"non-finite value \(NaN\)"):
        byte_flow.log_prob(x)


# ------------------------------------------------------------------- batchnorm


def test_batchnorm_training_on_a_batch_of_one_is_an_error_even_unvalidated() -> None:
    flow = flowspec.compile(BATCHNORM, validate=False)
    with pytest.raises(
        ValueError,
        match=r"flow `bn`, line 5 \(`x = batchnorm\(x\)`\): batchnorm "
        r"in training mode .* a batch of 1 has one value per feature",
    ):
        flow.log_prob(torch.randn(1, 2))
    flow.log_prob(torch.randn(2, 2))
    flow.eval()
    assert torch.isfinite(flow.log_prob(torch.randn(1, 2))).all()


# ------------------------------------------------------------------- compile()


@pytest.mark.parametrize(
    ("dtype", "says"),
    [
        (
            "complex64",
            r"compile\(dtype='complex64'\): flows run in torch.float32, torch.float64, "
            r"torch.bfloat16 or torch.float16; torch.complex64 is not a real floating-point",
        ),
        (torch.uint8, r"torch.uint8 is not a real floating-point dtype"),
        (torch.int64, r"torch.int64 is not a real floating-point dtype"),
        ("nope", r"compile\(dtype='nope'\): not a torch dtype"),
    ],
)
def test_compile_rejects_a_dtype_that_is_not_a_real_float(dtype, says) -> None:
    with pytest.raises(ValueError, match=says):
        flowspec.compile(SIGMOID, dtype=dtype)


def test_compile_takes_a_dtype_by_name() -> None:
    flow = flowspec.compile(SIGMOID, dtype="float64")
    assert flow.log_prob(torch.rand(3, 2, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("device", ["tpu", "gpu:0", "cpu:1"])
def test_compile_calls_an_unknown_device_unknown(device) -> None:
    with pytest.raises(ValueError, match=r"unknown device; valid: cpu, cuda, cuda:N, mps, meta"):
        flowspec.compile(SIGMOID, device=device)


@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="this machine has cuda:7")
def test_compile_calls_a_missing_device_not_available() -> None:
    with pytest.raises(
        ValueError, match=r"compile\(device='cuda:7'\): that device is not available"
    ):
        flowspec.compile(SIGMOID, device="cuda:7")


@pytest.mark.slow
def test_a_jit_flow_validates_outside_the_compiled_graph() -> None:
    flow = flowspec.compile(LOGIT, jit=True)
    assert torch.isfinite(flow.log_prob(torch.rand(8, 2))).all()
    with pytest.raises(ValueError, match=r"non-finite value"):
        flow(torch.full((2, 2), math.nan))


def test_a_written_module_names_the_spec_line_too(tmp_path, monkeypatch) -> None:
    from flowspec.cli import main

    spec = tmp_path / "lg.flow"
    spec.write_text(LOGIT, encoding="utf-8")
    assert main(["compile", str(spec), "-o", str(tmp_path / "lgmodel.py")]) == 0
    monkeypatch.syspath_prepend(str(tmp_path))
    import lgmodel

    with pytest.raises(ValueError, match=r"flow `f`, line 5 \(`x = logit\(x\)`\): logit needs"):
        lgmodel.Model().log_prob(torch.full((2, 2), 2.0))
