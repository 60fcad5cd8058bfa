"""``flowspec train / eval / sample / plot``: argparse registration and runners.

    flowspec train SPEC --data NAME|PATH [--steps N | --epochs E] [--batch B] [--lr LR]
                   [--optimizer adam|adamw] [--clip C] [--val-fraction F] [--out DIR]
                   [--device D] [--device-map A=B] [--dtype T] [--seed S] [--resume]
    flowspec eval CKPT --data NAME|PATH
    flowspec sample CKPT -n N -o FILE.npy|.npz|.csv [--seed S]
    flowspec plot CKPT|DIR -o FILE.png|.svg

Registering builds no module and imports no torch (``flowspec check`` stays torch-free);
each runner imports what it needs.  Exit codes: 0 ok, 1 data / spec / checkpoint errors
and divergence, 2 usage, 130 after Ctrl-C, 143 after SIGTERM (the last completed step
is saved).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flowspec import placement

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2
#: the ``train`` arguments that become :class:`flowspec.train.loop.Options` as they are
_TRAIN_OPTIONS: tuple[str, ...] = ("data", "key", "steps", "epochs", "batch", "lr", "optimizer")
_TRAIN_OPTIONS += ("clip", "val_fraction", "out", "dtype", "seed", "resume", "eval_every")
_TRAIN_OPTIONS += ("log_every",)


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
        return value

    return parse


def register(sub, limits: list) -> None:
    """Add the four commands to ``flowspec``'s sub-parsers."""
    p = sub.add_parser("train", parents=limits, help="fit a spec to data (maximum likelihood)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--data", required=True, metavar="NAME|PATH", help="built-in set or file")
    p.add_argument("--key", help="the array of an .npz file")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive(int), default=1000, metavar="N")
    budget.add_argument("--epochs", type=_positive(float), metavar="E")
    p.add_argument("--batch", type=_positive(int), default=256, metavar="B")
    p.add_argument("--lr", type=_positive(float), default=1e-3, metavar="LR")
    p.add_argument("--optimizer", choices=("adam", "adamw"), default="adam")
    p.add_argument("--clip", type=_positive(float), metavar="C", help="max gradient norm")
    p.add_argument("--val-fraction", type=float, default=0.1, metavar="F")
    p.add_argument("--eval-every", type=_positive(int), default=200, metavar="N")
    p.add_argument("--log-every", type=_positive(int), default=50, metavar="N")
    p.add_argument("--out", default="runs/flowspec", metavar="DIR")
    p.add_argument("--device", default="cpu", metavar="D")
    p.add_argument("--dtype", choices=tuple(placement.ITEMSIZE), default="float32")
    placement.add_arguments(p, device=False, dtype=False)
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument("--resume", action="store_true", help="continue from DIR/last.pt")
    p.add_argument("--flow", help="the flow of a spec defining several")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("eval", help="held-out NLL (and bits/dim) of a checkpoint on data")
    p.add_argument("checkpoint", metavar="CKPT")
    p.add_argument("--data", metavar="NAME|PATH", help="default: the set it was trained on")
    p.add_argument("--key", help="the array of an .npz file")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser("sample", help="draw samples from a checkpoint")
    p.add_argument("checkpoint", metavar="CKPT")
    p.add_argument("-n", type=_positive(int), default=1000, metavar="N")
    p.add_argument("-o", "--output", required=True, metavar="FILE.npy|.npz|.csv")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.set_defaults(run=cmd_sample)

    p = sub.add_parser("plot", help="plot a checkpoint's density / samples and training curve")
    p.add_argument("checkpoint", metavar="CKPT|DIR")
    p.add_argument("-o", "--output", required=True, metavar="FILE.png|.svg")
    p.add_argument("--data", metavar="NAME|PATH", help="default: the set it was trained on")
    p.add_argument("--key", help="the array of an .npz file")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.set_defaults(run=cmd_plot)


def _errors(run):
    """Map the known failures to a message and exit code 1, never a traceback."""

    def wrapped(args: argparse.Namespace) -> int:
        from flowspec.checkpoint import CheckpointError
        from flowspec.train.data import DataError
        from flowspec.train.loop import Diverged

        try:
            return run(args)
        except (DataError, Diverged, CheckpointError) as e:
            sys.stderr.write(f"flowspec: error: {e}\n")
            return EXIT_ERRORS

    return wrapped


@_errors
def cmd_train(args: argparse.Namespace) -> int:
    from flowspec import cli
    from flowspec.core.diagnostics import render_text

    if not 0 <= args.val_fraction < 1:
        raise cli.UsageError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    comp = cli._read(args.spec, args)
    if comp.errors:
        sys.stderr.write(render_text(comp.diagnostics, comp.sources))
        return EXIT_ERRORS
    import torch

    from flowspec.compiler import compile_compilation
    from flowspec.train import distributed
    from flowspec.train.loop import Options, fit

    device = distributed.device_for(args.device)
    distributed.setup(device)
    try:
        names = comp.flow_names()
        name = args.flow or (names[0] if len(names) == 1 else None)
        if name is None:
            raise cli.UsageError(f"{args.spec} defines several flows: choose one with --flow")
        torch.manual_seed(args.seed)  # the same initial weights on every rank
        try:
            flow = compile_compilation(
                comp,
                flow=name,
                device=device,
                dtype=getattr(torch, args.dtype),
                device_map=_device_map(args),
                max_params=args.max_params or None,
            )
        except ValueError as e:  # an unavailable device, a dtype a block cannot run in
            sys.stderr.write(f"flowspec: error: {e}\n")
            return EXIT_ERRORS
        opts = Options(
            **{k: getattr(args, k) for k in _TRAIN_OPTIONS},
            device=device,
        )
        return fit(flow, opts)
    finally:
        distributed.teardown()


def _device_map(args: argparse.Namespace) -> dict[str, str]:
    from flowspec import cli

    try:
        return placement.device_map_of(args)
    except ValueError as e:
        raise cli.UsageError(str(e)) from None


def _checkpoint(path: str) -> Path:
    p = Path(path)
    return (
        p / "best.pt"
        if p.is_dir() and (p / "best.pt").exists()
        else (p / "last.pt" if p.is_dir() else p)
    )


def _data_for(flow, data: dict, args: argparse.Namespace):
    from flowspec.train.data import DataError, load, split, validate

    train = data.get("train") or {}
    options = train.get("options") or {}
    name = args.data or options.get("data")
    if name is None:
        raise DataError("the checkpoint does not record its data set: give --data")
    x = validate(load(name, args.key or options.get("key"), int(options.get("seed", 0))), flow)
    if args.data is None and options.get("val_fraction"):  # the held-out part
        _, x = split(x, float(options["val_fraction"]), int(options.get("seed", 0)))
    dtype = next(iter(flow.parameters())).dtype
    return (x.to(dtype) if x.is_floating_point() else x), name


@_errors
def cmd_eval(args: argparse.Namespace) -> int:
    from flowspec.checkpoint import load, read
    from flowspec.train.loop import evaluate

    path = _checkpoint(args.checkpoint)
    data = read(path)
    flow = load(path)
    x, name = _data_for(flow, data, args)
    r = evaluate(flow, x, seed=args.seed)
    part = "held-out " if args.data is None else ""
    print(f"{part}NLL on {name} ({r['n']} samples): {r['nll']:.4f} ± {r['se']:.4f} nats")
    if flow.DEQUANTIZE is not None:
        print(f"bits/dim: {r['bpd']:.4f} ± {r['bpd_se']:.4f}")
    return EXIT_OK


@_errors
def cmd_sample(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from flowspec import cli
    from flowspec.checkpoint import load

    suffix = Path(args.output).suffix.lower()
    if suffix not in (".npy", ".npz", ".csv"):
        raise cli.UsageError(f"-o must end in .npy, .npz or .csv, got {args.output}")
    if args.n > 10_000_000:
        raise cli.UsageError(f"-n must be at most 10000000, got {args.n}")
    flow = load(_checkpoint(args.checkpoint))
    flow.eval()
    torch.manual_seed(args.seed)
    x = flow.sample(args.n).cpu().numpy()
    if suffix == ".npy":
        np.save(args.output, x)
    elif suffix == ".npz":
        np.savez(args.output, samples=x)
    else:
        np.savetxt(args.output, x.reshape(len(x), -1), delimiter=",")
    print(f"wrote {args.n} samples of shape {list(x.shape[1:])} to {args.output}")
    return EXIT_OK


@_errors
def cmd_plot(args: argparse.Namespace) -> int:
    from flowspec import cli
    from flowspec.checkpoint import load, read
    from flowspec.train.plot import plot

    if Path(args.output).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise cli.UsageError(f"-o must end in .png, .svg or .pdf, got {args.output}")
    path = _checkpoint(args.checkpoint)
    data = read(path)
    flow = load(path)
    x, name = _data_for(flow, data, args)
    metrics = path.parent / "metrics.csv"
    plot(flow, x, name, metrics if metrics.exists() else None, args.output, seed=args.seed)
    print(f"wrote {args.output}")
    return EXIT_OK


__all__ = ["register"]
