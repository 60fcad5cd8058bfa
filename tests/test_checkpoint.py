"""Checkpoints bound to their spec: ``flowspec.save`` / ``flowspec.load`` and
``flowspec compile --weights`` (issue 11).

A flow trained a few steps, saved, and loaded in a fresh process gives bit-identical
``log_prob``; a checkpoint loaded against another spec is refused with both hashes and
both files named; damaged or foreign files are a ``CheckpointError`` with a message.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import ROOT

import flowspec
from flowspec.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    CheckpointMismatch,
    read,
)

SPEC = """\
# a small flow with buffers: actnorm's initialisation flag, batchnorm's running stats
flow small {
    input x: [4]
    repeat 2 {
        x = actnorm(x)
        x = coupling.affine(x, net=mlp(hidden=[16]))
        x = shuffle(x, seed=3)
        x = batchnorm(x)
    }
    output x
}
"""

#: the same program laid out differently, with other comments: the same hash
SPEC_REFORMATTED = """\
flow small {   # reformatted
  input x: [4]
  repeat 2 { x = actnorm(x); x = coupling.affine(x, net=mlp(hidden=[16]))
    x = shuffle(x, seed=3)
    x = batchnorm(x) }
  output x
}
"""

#: another architecture under the same flow name
SPEC_OTHER = SPEC.replace("hidden=[16]", "hidden=[32]")


def trained(spec: str = SPEC, steps: int = 3, **options) -> flowspec.Flow:
    flow = flowspec.compile(spec, **options)
    dtype = next(flow.parameters()).dtype
    opt = torch.optim.Adam(flow.parameters(), lr=1e-2)
    for _ in range(steps):
        x = torch.randn(64, *flow.input_shape, dtype=dtype)
        kwargs = {}
        if flow.context_shape is not None:
            kwargs["context"] = torch.randn(64, *flow.context_shape, dtype=dtype)
        loss = -flow.log_prob(x, **kwargs).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return flow.eval()


def write_spec(tmp_path: Path, text: str, name: str = "small.flow") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ round trips


def test_trained_flow_loads_in_a_fresh_process_with_identical_log_prob(tmp_path):
    spec = write_spec(tmp_path, SPEC)
    flow = trained(str(spec))
    ckpt = tmp_path / "small.ckpt"
    flowspec.save(flow, ckpt)
    x = torch.randn(16, 4)
    torch.save(x, tmp_path / "x.pt")
    expected = flow.log_prob(x)
    script = textwrap.dedent(
        f"""
        import torch, flowspec
        flow = flowspec.load({str(ckpt)!r})
        assert not flow.training
        x = torch.load({str(tmp_path / "x.pt")!r}, weights_only=True)
        torch.save(flow.log_prob(x), {str(tmp_path / "lp.pt")!r})
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, timeout=300)
    got = torch.load(tmp_path / "lp.pt", weights_only=True)
    assert torch.equal(got, expected)


def test_the_file_is_plain_data_that_weights_only_loading_accepts(tmp_path):
    flow = trained(SPEC, steps=1)
    flowspec.save(flow, tmp_path / "m.ckpt")
    data = torch.load(tmp_path / "m.ckpt", weights_only=True)
    assert data["format"] == FORMAT and data["format_version"] == FORMAT_VERSION == 2
    assert data["flow_name"] == "small" and data["spec_hash"] == flow.SPEC_HASH
    assert data["spec_text"] == SPEC and data["spec_file"] == "<string>"
    assert data["flowspec_version"] == flowspec.__version__
    assert data["torch_version"] == torch.__version__.split("+")[0]
    assert set(data["state_dict"]) == set(flow.state_dict())
    assert not (tmp_path / "m.ckpt.partial").exists()


def test_load_keeps_the_dtype_and_the_mode_and_places_on_the_device(tmp_path):
    flow = trained(SPEC, steps=2, dtype=torch.float64).train()
    flowspec.save(flow, tmp_path / "m.ckpt")
    loaded = flowspec.load(tmp_path / "m.ckpt", device="cpu")
    assert loaded.training
    assert {p.dtype for p in loaded.parameters()} == {torch.float64}
    for name, value in flow.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value), name
    assert loaded.SPEC_HASH == flow.SPEC_HASH and loaded.FLOW_NAME == "small"


def test_a_yaml_spec_and_a_flow_with_a_context_round_trip(tmp_path):
    yaml_text = subprocess.run(
        [sys.executable, "-m", "flowspec", "convert", str(ROOT / "specs/conditional_realnvp.flow")]
        + ["--to", "yaml"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = write_spec(tmp_path, "# a comment first\n" + yaml_text, "cond.yaml")
    flow = trained(str(spec), steps=2)
    flowspec.save(flow, tmp_path / "c.ckpt")
    loaded = flowspec.load(tmp_path / "c.ckpt")
    x, y = torch.randn(8, 2), torch.randn(8, 1)
    assert torch.equal(loaded.log_prob(x, context=y), flow.log_prob(x, context=y))
    # and against the .flow text of the same program: the hash is the program's
    again = flowspec.load(tmp_path / "c.ckpt", spec=ROOT / "specs/conditional_realnvp.flow")
    assert torch.equal(again.log_prob(x, context=y), flow.log_prob(x, context=y))


def test_a_loaded_flow_saves_again(tmp_path):
    flowspec.save(trained(SPEC, steps=1), tmp_path / "a.ckpt")
    flowspec.save(flowspec.load(tmp_path / "a.ckpt"), tmp_path / "b.ckpt")
    assert read(tmp_path / "b.ckpt")["spec_text"] == SPEC


# ------------------------------------------------------------- the spec binding


def test_the_same_spec_reformatted_is_accepted(tmp_path):
    flow = trained(SPEC, steps=1)
    flowspec.save(flow, tmp_path / "m.ckpt")
    spec = write_spec(tmp_path, SPEC_REFORMATTED)
    loaded = flowspec.load(tmp_path / "m.ckpt", spec=spec)
    assert type(loaded).SPEC_TEXT == SPEC_REFORMATTED  # built from the spec given
    x = torch.randn(4, 4)
    assert torch.equal(loaded.log_prob(x), flow.log_prob(x))


def test_loading_with_another_spec_is_refused_naming_both_hashes_and_files(tmp_path):
    original = write_spec(tmp_path, SPEC)
    flow = trained(str(original), steps=1)
    flowspec.save(flow, tmp_path / "m.ckpt")
    other = write_spec(tmp_path, SPEC_OTHER, "other.flow")
    with pytest.raises(CheckpointMismatch) as info:
        flowspec.load(tmp_path / "m.ckpt", spec=other)
    error = info.value
    assert isinstance(error, flowspec.SpecError)
    other_hash = flowspec.compile(other).SPEC_HASH
    assert other_hash != flow.SPEC_HASH
    message = str(error)
    for part in (flow.SPEC_HASH, other_hash, str(original), str(other), "m.ckpt"):
        assert part in message
    assert (error.saved_hash, error.spec_hash) == (flow.SPEC_HASH, other_hash)


def test_a_spec_without_the_checkpoints_flow_is_refused(tmp_path):
    flowspec.save(trained(SPEC, steps=1), tmp_path / "m.ckpt")
    nice = ROOT / "specs/nice.flow"
    with pytest.raises(CheckpointMismatch, match="defines flow `nice`, whose spec hash is"):
        flowspec.load(tmp_path / "m.ckpt", spec=nice)
    two = SPEC + SPEC.replace("flow small", "flow other")
    with pytest.raises(CheckpointMismatch, match=r"defines no flow `small` \(its flows"):
        flowspec.load(tmp_path / "m.ckpt", spec=two.replace("flow small", "flow third", 1))


# ------------------------------------------------------------ damaged files


def _error(path) -> str:
    with pytest.raises(CheckpointError) as info:
        flowspec.load(path)
    assert isinstance(info.value, flowspec.SpecError)
    message = str(info.value)
    assert "Traceback" not in message and len(message) < 1500
    return message


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, 0.999])
def test_a_truncated_file_is_a_clean_error(tmp_path, keep):
    flowspec.save(trained(SPEC, steps=1), tmp_path / "m.ckpt")
    data = (tmp_path / "m.ckpt").read_bytes()
    (tmp_path / "cut.ckpt").write_bytes(data[: int(len(data) * keep)])
    assert "is not a readable flowspec checkpoint" in _error(tmp_path / "cut.ckpt")


def test_files_that_are_not_checkpoints_are_clean_errors(tmp_path):
    assert "no such file" in _error(tmp_path / "missing.ckpt")
    (tmp_path / "text.ckpt").write_text("hello, world\n")
    assert "not a readable flowspec checkpoint" in _error(tmp_path / "text.ckpt")
    flow = trained(SPEC, steps=1)
    torch.save(flow.state_dict(), tmp_path / "bare.pt")
    assert "bare state_dict" in _error(tmp_path / "bare.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    assert "is not a flowspec checkpoint" in _error(tmp_path / "list.pt")
    # a pickled class is refused by weights_only loading, and nothing runs
    torch.save({"format": FORMAT, "net": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pt")
    assert "not a readable flowspec checkpoint" in _error(tmp_path / "pickled.pt")


def _tampered(tmp_path: Path, **changes) -> Path:
    flowspec.save(trained(SPEC, steps=1), tmp_path / "m.ckpt")
    data = torch.load(tmp_path / "m.ckpt", weights_only=True)
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value(data[key]) if callable(value) else value
    torch.save(data, tmp_path / "t.ckpt")
    return tmp_path / "t.ckpt"


def test_altered_checkpoints_are_clean_errors(tmp_path):
    assert "hashes to" in _error(_tampered(tmp_path, spec_text=SPEC_OTHER))
    assert "does not check" in _error(_tampered(tmp_path, spec_text="flow small {\n}\n"))
    assert "`spec_hash` is missing" in _error(_tampered(tmp_path, spec_hash=None))
    assert "newer flowspec" in _error(_tampered(tmp_path, format_version=99))
    assert "dtype" in _error(_tampered(tmp_path, dtype="complex128"))
    weights = _tampered(tmp_path, state_dict=lambda s: dict(list(s.items())[1:]))
    assert "do not fit flow `small`" in _error(weights)
    bad = _tampered(tmp_path, state_dict=lambda s: {**s, "b0.extra": 1})
    assert "non-tensor" in _error(bad)
    hostile = _tampered(tmp_path, spec_file="a\x1b[31m.flow", spec_text=SPEC_OTHER)
    assert "\x1b" not in _error(hostile)


def test_a_model_imported_from_model_py_cannot_be_saved(tmp_path, monkeypatch):
    from flowspec.driver import Compilation

    (tmp_path / "model_small.py").write_text(Compilation.of(SPEC).generate())
    monkeypatch.syspath_prepend(str(tmp_path))
    import model_small

    with pytest.raises(ValueError, match="does not know the spec"):
        flowspec.save(model_small.Model(), tmp_path / "m.ckpt")
    with pytest.raises(TypeError):
        flowspec.save(torch.nn.Linear(2, 2), tmp_path / "m.ckpt")


# ------------------------------------------------------------------ the CLI


def _cli(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowspec", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_compile_with_weights_writes_the_module_and_its_weights(tmp_path):
    spec = write_spec(tmp_path, SPEC)
    flow = trained(str(spec))
    flowspec.save(flow, tmp_path / "m.ckpt")
    done = _cli("compile", spec, "--weights", "m.ckpt", "-o", "model.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "wrote model.py" in done.stdout and "wrote model.pt" in done.stdout
    x = torch.randn(8, 4)
    torch.save(x, tmp_path / "x.pt")
    script = (
        "import torch, model\n"
        "flow = model.Model()\n"
        "flow.load_state_dict(torch.load('model.pt', weights_only=True))\n"
        "flow.eval()\n"
        "torch.save(flow.log_prob(torch.load('x.pt', weights_only=True)), 'lp.pt')\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, timeout=300)
    assert torch.equal(torch.load(tmp_path / "lp.pt", weights_only=True), flow.log_prob(x))


def test_compile_with_weights_of_another_spec_fails_cleanly(tmp_path):
    flowspec.save(trained(SPEC, steps=1), tmp_path / "m.ckpt")
    other = write_spec(tmp_path, SPEC_OTHER, "other.flow")
    done = _cli("compile", other, "--weights", "m.ckpt", "-o", "model.py", cwd=tmp_path)
    assert done.returncode == 1
    assert "saved from a different spec" in done.stderr and "other.flow" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "model.py").exists()
    (tmp_path / "cut.ckpt").write_bytes((tmp_path / "m.ckpt").read_bytes()[:300])
    spec = write_spec(tmp_path, SPEC)
    done = _cli("compile", spec, "--weights", "cut.ckpt", "-o", "model.py", cwd=tmp_path)
    assert done.returncode == 1 and "not a readable flowspec checkpoint" in done.stderr
    assert "Traceback" not in done.stderr
    done = _cli("compile", spec, "--weights", "m.ckpt", cwd=tmp_path)
    assert done.returncode == 2 and "--weights needs -o" in done.stderr


MAF = """\
flow maf {
    input x: [3]
    x = autoregressive.affine(x, hidden=[8])
    output x
}
"""


def test_a_version_1_checkpoint_loads_unless_it_holds_an_autoregressive_affine(tmp_path):
    # version 2 changed only what autoregressive.affine's weights mean (it scales before
    # it shifts now); every other version-1 checkpoint still loads, bit for bit
    flow = trained(SPEC, steps=1)
    flowspec.save(flow, tmp_path / "m.ckpt")
    data = torch.load(tmp_path / "m.ckpt", weights_only=True)
    torch.save({**data, "format_version": 1}, tmp_path / "v1.ckpt")
    x = torch.randn(8, 4)
    assert torch.equal(flowspec.load(tmp_path / "v1.ckpt").log_prob(x), flow.eval().log_prob(x))

    flowspec.save(trained(MAF, steps=1), tmp_path / "maf.ckpt")
    data = torch.load(tmp_path / "maf.ckpt", weights_only=True)
    torch.save({**data, "format_version": 1}, tmp_path / "maf1.ckpt")
    message = _error(tmp_path / "maf1.ckpt")
    assert "autoregressive.affine" in message and "cannot be converted" in message
    assert flowspec.load(tmp_path / "maf.ckpt").log_prob(torch.randn(2, 3)).shape == (2,)
