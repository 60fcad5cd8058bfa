"""The ``flowspec verify`` command (its options are declared in ``flowspec.cli``, so that
building the parser never imports torch):

    flowspec verify FILE|DIR... [--dtype float64] [--samples N] [--seed S] [--format ...]``.

Exit 0 when every flow of every spec passes, 1 when a check fails or a spec has errors
(its diagnostics are printed), 2 on usage errors (``flowspec.cli`` owns the exit).
"""

from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace, files: list[str], read) -> int:
    """``read(path)`` is the CLI's Compilation reader (usage errors for missing files)."""
    if not 1 <= args.samples <= 1024:
        raise ValueError(f"--samples must be in 1 … 1024, got {args.samples}")
    if not 10 <= args.draws <= 100_000:
        raise ValueError(f"--draws must be in 10 … 100000, got {args.draws}")
    import torch

    from flowspec import placement
    from flowspec.core.diagnostics import SpecError, render_text
    from flowspec.verify.report import VerifyReport, render_json, render_junit
    from flowspec.verify.run import verify

    dtype = getattr(torch, args.dtype)
    device_map = placement.device_map_of(args)
    weights = getattr(args, "weights", None)
    if weights is not None and len(files) != 1:
        raise ValueError("--weights verifies one spec: name exactly one FILE")
    reports: list[VerifyReport] = []
    errors: dict[str, str] = {}
    for path in files:
        comp = read(path)
        if comp.errors:
            errors[path] = render_text(comp.diagnostics, comp.sources)
            continue
        names = [args.flow] if args.flow else comp.flow_names()
        for name in names:
            done = len(reports)
            try:
                common = dict(dtype=dtype, samples=args.samples, seed=args.seed)
                common.update(draws=args.draws, device_map=device_map)
                if weights is not None:  # the trained module as it is, no perturbation
                    from flowspec.checkpoint import load_compiled

                    trained = load_compiled(weights, comp, device_map=device_map)
                    reports.append(verify(trained, spec=path, **common))
                else:
                    reports.append(verify(path, flow=name, **common))
            except SpecError as e:  # E500, or a checkpoint of another spec / unreadable
                text = render_text(e.diagnostics, e.sources) if e.diagnostics else ""
                errors[path] = text or f"error: {e}\n"
            if args.format == "text" and len(reports) > done:  # not the last one again
                sys.stdout.write(str(reports[-1]))
    if args.format == "text":
        for message in errors.values():
            sys.stdout.write(message)
        bad = sum(not r.ok for r in reports) + len(errors)
        total = len(reports) + len(errors)
        print(f"{total - bad} of {total} flow(s) verified" + (f", {bad} failed" if bad else ""))
    elif args.format == "json":
        print(render_json(reports, list(errors.values())))
    else:
        sys.stdout.write(render_junit(reports, errors))
    return 0 if all(r.ok for r in reports) and not errors else 1


__all__ = ["run"]
