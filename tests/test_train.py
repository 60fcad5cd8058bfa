"""``flowspec train / eval / sample / plot`` end to end, by subprocess (issue 12)."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import flowspec
from flowspec.cli import main
from flowspec.train.data import Data, DataError, validate

ROOT = Path(__file__).resolve().parent.parent
REALNVP = str(ROOT / "specs" / "realnvp.flow")
DIGITS = str(ROOT / "benchmarks" / "specs" / "realnvp_digits.flow")


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowspec", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def gaussian_nll(train: torch.Tensor, test: torch.Tensor) -> float:
    """Held-out NLL (nats per sample) of the maximum-likelihood full-covariance Gaussian."""
    train, test = train.double(), test.double()
    cov = torch.cov(train.T) + 1e-9 * torch.eye(train.shape[1], dtype=torch.float64)
    mvn = torch.distributions.MultivariateNormal(train.mean(0), cov)
    return -mvn.log_prob(test).mean().item()


def test_moons_train_sample_eval_plot_and_beat_a_gaussian(tmp_path, capsys):
    out = tmp_path / "moons"
    args = ["train", REALNVP, "--data", "moons", "--steps", "300", "--batch", "128", "--lr",
            "3e-3", "--eval-every", "100", "--log-every", "100", "--out", str(out)]  # fmt: skip
    code = main(args)
    shown = capsys.readouterr()
    assert code == 0, shown.err
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss,val_nll") and len(rows) == 4
    assert "step 300/300" in shown.out  # plain lines: stderr is not a terminal
    saved = torch.load(out / "last.pt", weights_only=True)["train"]
    assert saved["step"] == 300 and "state" in saved["optimizer"]

    from flowspec.train.data import load, split

    train, val = split(load("moons").x, 0.1, 0)
    val_nll = float(rows[-1].split(",")[2])
    assert val_nll < gaussian_nll(train, val) - 0.3  # the Gaussian is 2.75 nats here

    r = run("sample", str(out), "-n", "7", "-o", str(tmp_path / "s.npy"), "--seed", "1")
    assert r.returncode == 0, r.stderr
    # the rest in-process (each subprocess pays torch's import)
    assert main(["eval", str(out / "best.pt")]) == 0
    shown = capsys.readouterr().out
    assert "held-out NLL on moons (2000 samples)" in shown and "±" in shown
    for suffix in (".npz", ".csv"):
        target = tmp_path / f"s{suffix}"
        assert main(["sample", str(out), "-n", "7", "-o", str(target), "--seed", "1"]) == 0
    assert np.load(tmp_path / "s.npy").shape == (7, 2)
    assert np.load(tmp_path / "s.npz")["samples"].shape == (7, 2)
    np.testing.assert_allclose(np.loadtxt(tmp_path / "s.csv", delimiter=","),
                               np.load(tmp_path / "s.npy"), rtol=1e-6)  # fmt: skip
    assert main(["plot", str(out), "-o", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # 15 s of subprocess training; CI runs it (-m slow)
def test_sigint_then_resume_equals_an_uninterrupted_run(tmp_path, capsys):
    common = ["train", REALNVP, "--data", "moons", "--steps", "120", "--batch", "32",
              "--log-every", "1", "--eval-every", "1000", "--seed", "3"]  # fmt: skip
    full, cut = tmp_path / "full", tmp_path / "cut"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowspec", *common, "--out", str(cut)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        metrics = cut / "metrics.csv"
        while time.monotonic() < deadline:
            if metrics.exists() and len(metrics.read_text().splitlines()) > 5:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    stopped = torch.load(cut / "last.pt", weights_only=True)["train"]["step"]
    assert 5 <= stopped < 120 and f"step {stopped} saved" in err and "Traceback" not in err
    r = run(*common, "--out", str(cut), "--resume")
    assert r.returncode == 0, r.stderr
    assert f"resumed from {cut / 'last.pt'} at step {stopped}" in r.stdout
    assert main([*common, "--out", str(full)]) == 0  # in-process: the same code path
    a, b = weights(full / "last.pt"), weights(cut / "last.pt")
    assert max((a[k] - b[k]).abs().max().item() for k in a) == 0.0

    # a checkpoint of another spec is refused
    other = tmp_path / "other.flow"
    other.write_text(Path(REALNVP).read_text().replace("hidden=[64, 64]", "hidden=[32]"))
    err = _bad(tmp_path, capsys, str(other), "--data", "moons", "--out", str(cut), "--resume")
    assert "cannot resume" in err and "spec hash" in err


def _bad(tmp_path, capsys, *args: str) -> str:
    if "--out" not in args:
        args = (*args, "--out", str(tmp_path / "o"))
    code = main(["train", *args, "--steps", "200"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err and "crashed" not in err
    return err


def test_bad_data_is_a_clear_error_before_training(tmp_path, capsys):
    np.save(tmp_path / "three.npy", np.zeros((10, 3)))
    err = _bad(tmp_path, capsys, REALNVP, "--data", str(tmp_path / "three.npy"))
    assert "shape [3]" in err and "input shape [2]" in err
    x = np.zeros((10, 2))
    x[4, 1], x[7, 0] = np.nan, np.inf
    np.savez(tmp_path / "nan.npz", a=x)
    err = _bad(tmp_path, capsys, REALNVP, "--data", str(tmp_path / "nan.npz"))
    assert "2 values are NaN or infinite" in err and "row 4" in err
    err = _bad(tmp_path, capsys, REALNVP, "--data", "moonz")
    assert "unknown data set `moonz`" in err and "2spirals" in err and "digits" in err
    (tmp_path / "empty.csv").write_text("")
    err = _bad(tmp_path, capsys, REALNVP, "--data", str(tmp_path / "empty.csv"))
    assert "is empty" in err
    (tmp_path / "header.csv").write_text("a,b\n")
    err = _bad(tmp_path, capsys, REALNVP, "--data", str(tmp_path / "header.csv"))
    assert "is empty" in err
    np.save(tmp_path / "big.npy", np.full((10, 64), 16))
    err = _bad(tmp_path, capsys, DIGITS, "--data", str(tmp_path / "big.npy"))
    assert "integers in [0, 16)" in err and "[16, 16]" in err
    logit = tmp_path / "logit.flow"
    logit.write_text("flow l {\n    input x: [2]\n    x = logit(x)\n    "
                     "x = coupling.affine(x, net=mlp(hidden=[8]))\n    output x\n}\n")  # fmt: skip
    err = _bad(tmp_path, capsys, str(logit), "--data", "moons")
    assert "`logit`" in err and "(0, 1)" in err
    err = _bad(tmp_path, capsys, str(ROOT / "specs" / "conditional_maf.flow"), "--data", "moons")
    assert "is conditional" in err


def test_the_domain_check_reads_the_block_not_the_text():
    """Only the block that reads the data sets the domain: a comment that mentions
    `logit` or a `logit` after a split does not refuse data outside (0, 1)."""

    commented = (
        "flow c {\n    input x: [2]\n    # x = logit(x) was tried here\n"
        "    x = coupling.affine(x, net=mlp(hidden=[8]))\n    output x\n}\n"
    )
    after_split = (
        "flow s {\n    input x: [2]\n    a, b = split(x)\n    a = logit(a)\n"
        "    x = concat(a, b)\n    x = coupling.affine(x, net=mlp(hidden=[8]))\n"
        "    output x\n}\n"
    )
    data = torch.tensor([[-3.0, 2.0], [0.5, 0.5]])
    for text in (commented, after_split):
        flow = flowspec.compile(text)
        assert torch.equal(validate(Data(data, "data"), flow), data)
    first = flowspec.compile(
        "flow l {\n    input x: [2]\n    x = logit(x)\n"
        "    x = coupling.affine(x, net=mlp(hidden=[8]))\n    output x\n}\n"
    )
    assert type(first).DATA_READER == "logit"
    with pytest.raises(DataError, match=r"needs values in \(0, 1\)"):
        validate(Data(data, "data"), first)


def test_bad_data_by_subprocess_has_no_traceback(tmp_path):
    np.save(tmp_path / "three.npy", np.zeros((4, 3)))
    r = run("train", REALNVP, "--data", str(tmp_path / "three.npy"), "--out", str(tmp_path))
    assert r.returncode == 1 and "input shape [2]" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "last.pt").exists()


def test_divergence_names_the_step_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    code = main(["train", REALNVP, "--data", "moons", "--steps", "400", "--lr", "1e6",
                 "--eval-every", "1", "--batch", "16", "--out", str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "the loss is not finite at step" in err, err
    step = int(err.split("at step ")[1].split()[0])
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["train"]["step"] == step - 1
    assert all(torch.isfinite(t).all() for t in saved["state_dict"].values())


@pytest.mark.slow
def test_digits_beats_a_gaussian_in_bits_per_dim(tmp_path):
    out = tmp_path / "digits"
    r = run("train", DIGITS, "--data", "digits", "--steps", "300", "--batch", "128", "--lr",
            "2e-3", "--val-fraction", "0.2", "--eval-every", "100", "--out", str(out))  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = run("eval", str(out / "best.pt"))
    assert r.returncode == 0, r.stderr
    bpd = float(r.stdout.split("bits/dim: ")[1].split()[0])

    from flowspec.train.data import digits, split

    train, val = split(digits().double(), 0.2, 0)
    g = torch.Generator().manual_seed(0)
    noisy = [(a + torch.rand(a.shape, generator=g, dtype=a.dtype)) / 16 for a in (train, val)]
    gauss = (gaussian_nll(*noisy) + 64 * 4 * math.log(2)) / (64 * math.log(2))
    assert gauss > 2.8  # the full-covariance Gaussian: about 2.9 bits/dim
    assert bpd < gauss - 0.2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_torchrun(args: list[str], out: Path) -> subprocess.Popen:
    """Two CPU workers on a free port, in a session of their own (so the test can
    signal or kill the whole group)."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port())]  # fmt: skip
    return subprocess.Popen(
        [*torchrun, "-m", "flowspec", *args, "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _torchrun(args: list[str], out: Path) -> str:
    proc = _start_torchrun(args, out)
    try:
        stdout, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    return stdout


def _max_difference(one: Path, two: Path) -> float:
    a, b = weights(one / "last.pt"), weights(two / "last.pt")
    return max((a[k] - b[k]).abs().max().item() for k in a if a[k].is_floating_point())


@pytest.mark.slow
def test_two_process_torchrun_equals_one_process(tmp_path):
    args = ["train", REALNVP, "--data", "moons", "--steps", "15", "--batch", "64",
            "--eval-every", "15", "--seed", "5"]  # fmt: skip
    out = _torchrun(args, tmp_path / "two")
    assert out.count("trained 15 steps") == 1  # only rank 0 logs
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert _max_difference(tmp_path / "one", tmp_path / "two") < 1e-5


@pytest.mark.slow
def test_sigterm_saves_the_last_step_and_exits_143(tmp_path):
    out = tmp_path / "t"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowspec", "train", REALNVP, "--data", "moons", "--steps",
         "100000", "--batch", "32", "--log-every", "1", "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            metrics = out / "metrics.csv"
            if metrics.exists() and len(metrics.read_text().splitlines()) > 3:
                break
            time.sleep(0.05)
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    stopped = torch.load(out / "last.pt", weights_only=True)["train"]["step"]
    assert f"interrupted: step {stopped} saved" in err


@pytest.mark.slow
def test_ctrl_c_under_torchrun_saves_the_step_every_rank_finished(tmp_path):
    """Ctrl-C in a terminal signals torchrun and both workers (one process group);
    torchrun forwards SIGINT again.  The ranks agree on the step to stop at, rank 0
    saves it, every worker exits 130, and the checkpoint resumes."""
    out = tmp_path / "ddp"
    args = ["train", REALNVP, "--data", "moons", "--steps", "100000", "--batch", "64",
            "--log-every", "1", "--eval-every", "100000", "--seed", "5"]  # fmt: skip
    proc = _start_torchrun(args, out)
    try:
        deadline = time.monotonic() + 120
        metrics = out / "metrics.csv"
        while time.monotonic() < deadline and proc.poll() is None:
            if metrics.exists() and len(metrics.read_text().splitlines()) > 5:
                break
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal does
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    stopped = torch.load(out / "last.pt", weights_only=True)["train"]["step"]
    assert 5 <= stopped < 100000, err
    assert err.count(f"interrupted: step {stopped} saved") == 1, err
    # the workers stop cleanly (no traceback through flowspec); torchrun itself reports
    # the signal it got with a traceback of its own (SignalException), as always
    assert f'File "{ROOT / "flowspec"}' not in err and "ChildFailedError" not in err, err
    resumed = run(*args[:4], "--steps", str(stopped + 3), *args[6:], "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"at step {stopped}" in resumed.stdout


@pytest.mark.slow
def test_two_process_actnorm_initialises_from_the_global_batch(tmp_path):
    """actnorm initialises from step 1's whole global batch on every rank (a rank's own
    slice would give loc/scale O(0.1) apart).  A tiny lr: Adam's first steps normalise
    the near-zero gradients that this initialisation leaves, amplifying rounding."""
    spec = tmp_path / "actnorm.flow"
    text = Path(REALNVP).read_text()
    spec.write_text(text.replace("    x = coupling", "    x = actnorm(x)\n    x = coupling", 1))
    args = ["train", str(spec), "--data", "moons", "--steps", "3", "--batch", "64",
            "--lr", "1e-7", "--eval-every", "3", "--seed", "5"]  # fmt: skip
    _torchrun(args, tmp_path / "two")
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    saved = weights(tmp_path / "one" / "last.pt")
    assert saved["b0.loc"].abs().max() > 1e-3  # initialised from data, not zero
    assert _max_difference(tmp_path / "one", tmp_path / "two") < 1e-5


@pytest.mark.parametrize(
    ("spec", "data"), [(DIGITS, "digits"), (str(ROOT / "specs" / "maf.flow"), "file")]
)
def test_plot_draws_a_sample_grid_or_pairwise_marginals(tmp_path, capsys, spec, data):
    import flowspec

    if data == "file":
        data = str(tmp_path / "x.npy")
        np.save(data, np.random.default_rng(0).normal(size=(300, 5)))
    flow = flowspec.compile(spec)
    flowspec.save(flow, tmp_path / "c.pt", train={"options": {"data": data, "seed": 0}})
    target = tmp_path / "p.svg"
    assert main(["plot", str(tmp_path / "c.pt"), "-o", str(target)]) == 0, capsys.readouterr()
    assert target.read_text().lstrip().startswith("<?xml")
