"""device_map (issue 13): a spec written for several devices runs on the CPU, bit-identical
to the same spec without regions, and the generated transfers are exactly the plan's."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import flowspec
from flowspec import placement
from flowspec.driver import Compilation

BODY = """flow f {{
    input x: [4]
    {a}x = actnorm(x){b}
    {c}x = coupling.affine(x, net=mlp(hidden=[8]), mask=alternate){d}
    {e}x = reverse(x){f}
    output x
}}
"""
PLAIN = BODY.format(a="", b="", c="", d="", e="", f="")
REGIONS = BODY.format(
    a='on "cuda:1" { ', b=" }", c='on "cuda:0" { ', d=" }", e='on "cuda:1" { ', f=" }"
)


def _tensor_moves(source: str, method: str) -> str:
    """The lines of one generated method that move a tensor (not ladj)."""
    body = source.split(f"def {method}(")[1].split("\n    def ")[0]
    return "\n".join(line for line in body.splitlines() if "ladj" not in line)


def _flat(value) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    return [t for v in value for t in _flat(v)]


def _run(flow: flowspec.Flow, x: torch.Tensor) -> list[torch.Tensor]:
    z, ladj = flow(x)
    return _flat((z, ladj, flow.inverse(z), flow.transform(x), flow.inverse_transform(z)))


def test_all_regions_mapped_to_cpu_is_bit_identical_to_no_regions() -> None:
    torch.manual_seed(0)
    plain = flowspec.compile(PLAIN, dtype="float64")
    torch.manual_seed(0)
    mapped = flowspec.compile(
        REGIONS, device_map={"cuda:1": "cpu", "cuda:0": "cpu"}, dtype="float64"
    )
    # a non-trivial actnorm/coupling so the comparison is not of identities
    torch.manual_seed(1)
    x = torch.randn(5, 4, dtype=torch.float64)
    for p, q in zip(plain.parameters(), mapped.parameters(), strict=True):
        assert torch.equal(p, q)
    for a, b in zip(_run(plain, x), _run(mapped, x), strict=True):
        assert torch.equal(a, b)
    # one device everywhere: no transfer between blocks, only the entry to the mapped
    # device and the way back to the caller's (no-ops when the caller is on the CPU)
    source = type(mapped).GENERATED_SOURCE
    body = _tensor_moves(source, "forward")
    assert body.count(".to('cpu')") == 1 and body.count(".to(home)") == 1


def test_type_key_maps_every_index() -> None:
    assert placement.map_device("cuda:1", {"cuda": "cpu"}) == "cpu"
    assert placement.map_device("cuda:1", {"cuda": "cpu", "cuda:1": "meta"}) == "meta"
    assert placement.map_device(None, {"cuda": "cpu"}) is None
    flow = flowspec.compile(REGIONS, device_map={"cuda": "cpu"})
    z, _ = flow(torch.randn(3, 4))
    assert z.device.type == "cpu"


def test_generated_transfers_are_exactly_the_plan() -> None:
    # distinct mapped names keep the crossings visible on a CPU-only machine (nothing
    # is built: only the source is generated)
    comp = Compilation.of(REGIONS)
    fg = comp.flow_graph()
    placement.apply_map(fg, {"cuda:1": "cpu", "cuda:0": "meta"})
    plan = placement.transfers(fg)
    # x → cpu, cpu → meta, meta → cpu, the result back to the input's device
    assert [(t.source, t.dest) for t in plan] == [
        (None, "cpu"),
        ("cpu", "meta"),
        ("meta", "cpu"),
        ("cpu", None),
    ]
    source = comp.generate()
    for method in ("forward", "inverse", "transform", "inverse_transform"):
        body = _tensor_moves(source, method)
        assert body.count(".to('cpu')") == 2, method
        assert body.count(".to('meta')") == 1, method
        assert body.count(".to(home)") == 1, method
    # ladj accumulates on the output device: each placed block's term moved there once
    forward = source.split("def forward(")[1].split("\n    def ")[0]
    assert [line.strip() for line in forward.splitlines() if "ladj" in line] == [
        "x, ladj = self.b0(x)",
        "ladj = ladj.to(home)",
        "ladj = ladj + l.to(home)",
        "return x, ladj",
    ]


def test_unmapped_region_keeps_its_transfers_and_same_device_has_none() -> None:
    comp = Compilation.of(REGIONS)
    fg = comp.flow_graph()
    placement.apply_map(fg, {"cuda": "cpu"})
    assert [(t.source, t.dest) for t in placement.transfers(fg)] == [
        (None, "cpu"),
        ("cpu", None),
    ]


@pytest.mark.skipif(torch.cuda.device_count() >= 2, reason="this machine has cuda:1")
def test_unavailable_device_suggests_device_map() -> None:
    with pytest.raises(flowspec.SpecError) as e:
        flowspec.compile(REGIONS)
    text = str(e.value) + "".join(str(d.hint) for d in e.value.diagnostics)
    assert "cuda:1" in text and "device_map" in text


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_region_mapped_to_cuda0_runs() -> None:
    flow = flowspec.compile(REGIONS, device_map={"cuda": "cuda:0"})
    z, ladj = flow(torch.randn(3, 4))
    assert z.device.type == "cpu" and ladj.device.type == "cpu"


def test_parse_device_map() -> None:
    assert placement.parse_device_map(["cuda:1=cpu", "cuda:0=cpu, mps=cpu"]) == {
        "cuda:1": "cpu",
        "cuda:0": "cpu",
        "mps": "cpu",
    }
    assert placement.parse_device_map(None) == {}
    for bad in ("cuda:1", "gpu=cpu", "cpu=tpu"):
        with pytest.raises(ValueError, match="device-map"):
            placement.parse_device_map([bad])
    with pytest.raises(ValueError, match="not a device"):
        flowspec.compile(PLAIN, device_map={"gpu": "cpu"})


def test_placement_module_is_torch_free() -> None:
    code = "import sys, flowspec.placement; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def _cli(*args: str, spec: str, tmp_path) -> subprocess.CompletedProcess:
    path = tmp_path / "r.flow"
    path.write_text(spec)
    return subprocess.run(
        [sys.executable, "-m", "flowspec", *args, str(path)], capture_output=True, text=True
    )


def test_cli_summary_shows_the_plan(tmp_path) -> None:
    r = _cli(
        "summary",
        "--device-map",
        "cuda:1=cpu",
        "--device-map",
        "cuda:0=meta",
        spec=REGIONS,
        tmp_path=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "cpu: 2 blocks, 8 parameters" in r.stdout and "meta: 1 block, 60 parameters" in r.stdout
    moves = [line for line in r.stdout.splitlines() if line.startswith("transfer ")]
    assert moves == [
        "transfer x [4] (input device) -> cpu, 16 bytes/sample",
        "transfer x [4] cpu -> meta, 16 bytes/sample",
        "transfer x [4] meta -> cpu, 16 bytes/sample",
        "transfer x [4] cpu -> (input device), 16 bytes/sample",
    ]


def test_cli_compile_maps_devices_and_rejects_bad_map(tmp_path) -> None:
    r = _cli("compile", "--device-map", "cuda=cpu", spec=REGIONS, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "'cuda:1'" not in r.stdout and "'cuda:0'" not in r.stdout
    r = _cli("compile", "--device-map", "gpu=cpu", spec=REGIONS, tmp_path=tmp_path)
    assert r.returncode == 2 and "'gpu' is not a device" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_summary_meta_reports_the_built_count(tmp_path) -> None:
    r = _cli("summary", "--meta", spec=REGIONS, tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "meta build: 68 parameters, equal to the static count 68" in r.stdout


PING = """flow f {{
    input x: [4]
    context y: [2]
    on "cuda:0" {{ x = coupling.affine(x, cond=y, net=mlp(hidden=[8])) }}
    {mid}x = coupling.affine(x, cond=y, net=mlp(hidden=[8])){end}
    on "cuda:0" {{ x = coupling.affine(x, cond=y, net=mlp(hidden=[8]), mask=alternate) }}
    output x
}}
"""


def test_w106_cond_tensor_moving_back_and_forth() -> None:
    diags = flowspec.check(PING.format(mid='on "cuda:1" { ', end=" }"))
    w = [d for d in diags if d.code == "W106"]
    assert len(w) == 1 and "`y` moves back to `cuda:0`" in w[0].message
    assert w[0].span.line == 6
    same = flowspec.check(PING.format(mid='on "cuda:0" { ', end=" }"))
    assert not [d for d in same if d.code == "W106"]
