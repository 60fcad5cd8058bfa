"""``--device``, ``--device-map`` and ``--dtype`` on ``compile``, ``summary``,
``verify`` and ``train``, driven by subprocess; the per-device memory of the plan
(issue 13)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import torch
from test_placement_map import REGIONS

from flowspec.checks.resources import device_memory, flow_resources
from flowspec.driver import Compilation
from flowspec.placement import apply_map

ROOT = Path(__file__).resolve().parent.parent


def flowspec(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowspec", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _bytes(text: str, what: str) -> float:
    """``training 8.4 KB`` → 8400.0 (the summary's units are powers of 1000)."""
    number, unit = re.search(rf"{what} ([\d.]+) (bytes|KB|MB|GB)", text).groups()
    return float(number) * {"bytes": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9}[unit]


def test_summary_dtype_scales_the_memory_and_refuses_what_cannot_run():
    f32 = flowspec("summary", "specs/realnvp.flow")
    f64 = flowspec("summary", "specs/realnvp.flow", "--dtype", "float64")
    assert f32.returncode == f64.returncode == 0, f64.stderr
    assert "in float64" in f64.stdout and "memory per sample, float64" in f64.stdout
    assert "(141.4 KB in float32" in f32.stdout and "(282.8 KB in float64" in f64.stdout
    for what in ("training", "inference"):  # shown to two or three digits
        assert abs(_bytes(f64.stdout, what) / _bytes(f32.stdout, what) - 2) < 0.12
    r = flowspec("summary", "specs/nsf.flow", "--dtype", "float16")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "block `linear` at specs/nsf.flow:8:13 cannot run in float16" in r.stderr


def test_summary_device_names_the_default_device():
    r = flowspec("summary", "specs/realnvp.flow", "--device", "cuda:0")
    assert r.returncode == 0, r.stderr
    assert "  cuda:0: 16 blocks, 35,344 parameters" in r.stdout
    bad = flowspec("summary", "specs/realnvp.flow", "--device", "gpu0")
    assert bad.returncode == 2 and "not a device" in bad.stderr


def test_compile_writes_a_module_that_builds_itself_in_the_dtype_and_device(tmp_path):
    out = tmp_path / "model.py"
    r = flowspec("compile", "specs/realnvp.flow", "--dtype", "float64", "-o", out)
    assert r.returncode == 0, r.stderr
    spec = importlib.util.spec_from_file_location("model_f64", out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flow = module.Realnvp()
    assert {p.dtype for p in flow.parameters()} == {torch.float64}
    assert flow.log_prob(torch.randn(3, 2, dtype=torch.float64)).dtype == torch.float64
    meta = tmp_path / "meta.py"
    assert (
        flowspec("compile", "specs/realnvp.flow", "--device", "meta", "-o", meta).returncode == 0
    )
    spec = importlib.util.spec_from_file_location("model_meta", meta)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert {p.device.type for p in module.Realnvp().parameters()} == {"meta"}
    r = flowspec("compile", "specs/glow.flow", "--dtype", "bfloat16")
    assert r.returncode == 1 and "block `invconv` at specs/glow.flow:7:9" in r.stderr


def test_verify_a_gpu_spec_on_the_cpu_through_a_device_map(tmp_path):
    path = tmp_path / "regions.flow"
    path.write_text(REGIONS)
    unmapped = flowspec("verify", path, "--samples", "2")
    if not torch.cuda.is_available():
        assert unmapped.returncode == 1 and "cuda" in unmapped.stdout + unmapped.stderr
    mapped = flowspec("verify", path, "--samples", "2", "--device-map", "cuda=cpu")
    assert mapped.returncode == 0, mapped.stdout + mapped.stderr
    assert "1 of 1 flow(s) verified" in mapped.stdout


def test_train_a_gpu_spec_on_the_cpu_through_a_device_map(tmp_path):
    path = tmp_path / "regions.flow"
    path.write_text(REGIONS)
    data = tmp_path / "x.npy"
    import numpy as np

    np.save(data, np.random.default_rng(0).normal(size=(64, 4)).astype("float32"))
    r = flowspec(
        "train", path, "--data", data, "--steps", "3", "--batch", "16",
        "--device-map", "cuda=cpu", "--out", tmp_path / "run",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "last.pt").exists()


def test_bfloat16_training_and_its_refusal(tmp_path):
    """bfloat16 training writes a bfloat16 checkpoint; a spec with a block that cannot
    run in it is refused by name (in-process; the test above drives train by subprocess)."""
    from contextlib import redirect_stderr
    from io import StringIO

    from flowspec.cli import main

    args = ["--data", "moons", "--steps", "2", "--batch", "16", "--dtype", "bfloat16"]
    assert (
        main(["train", str(ROOT / "specs/realnvp.flow"), *args, "--out", str(tmp_path / "b")]) == 0
    )
    saved = torch.load(tmp_path / "b" / "last.pt", weights_only=False)
    dtypes = {v.dtype for v in saved["state_dict"].values() if v.is_floating_point()}
    assert dtypes == {torch.bfloat16}
    err = StringIO()
    with redirect_stderr(err):
        status = main(["train", str(ROOT / "specs/nsf.flow"), *args, "--out", str(tmp_path / "h")])
    assert status == 1 and "Traceback" not in err.getvalue()
    assert (
        "block `linear` at" in err.getvalue()
        and "nsf.flow:8:13 cannot run in bfloat16" in err.getvalue()
    )


def test_per_device_memory_adds_up():
    """One device: the plan's numbers are the flow's; over several, training adds up to
    the flow's plus one copy of every transferred tensor, and no device's inference peak
    exceeds the flow's plus those copies."""
    comp = Compilation.of(REGIONS)
    fg = comp.flow_graph(None)
    res = flow_resources(fg)
    apply_map(fg, {"cuda": "cpu"})
    one = device_memory(fg, res)
    assert set(one) == {None, "cpu"}
    assert one[None][0] + one["cpu"][0] == res.training_per_sample + 4  # x copied to cpu
    comp = Compilation.of(REGIONS)
    fg = comp.flow_graph(None)
    memory = device_memory(fg, res)
    assert set(memory) == {None, "cuda:0", "cuda:1"}
    copies = 4 * 4  # the plan's four forward transfers of x [4] to a block's device
    assert sum(t for t, _ in memory.values()) == res.training_per_sample + copies - 4
    assert all(i <= res.inference_per_sample + copies for _, i in memory.values())
