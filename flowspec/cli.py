"""The ``flowspec`` command.

    flowspec check FILE... [--strict] [--specs-only] [--format text|concise|json|sarif|junit]
                   [--max-bytes N] [--max-statements N]   (every command takes these)
    flowspec compile SPEC -o model.py [--flow NAME] [--weights CKPT]
    flowspec summary SPEC [--flow NAME]
    flowspec graph SPEC -o FILE.dot|.svg|.png [--flow NAME] [--expand|--collapse]
    flowspec fmt FILE... [--check]
    flowspec convert FILE --to yaml|flow [-o OUT]
    flowspec verify FILE... [--dtype float64] [--samples N] [--seed S] [--weights CKPT]
                    [--format text|json|junit]
    flowspec kinds                       every block kind, one line each
    flowspec explain KIND|CODE|WORD      the reference entry of a block kind, code or option word

Exit codes: 0 clean (or warnings only), 1 errors (or warnings with ``--strict``),
2 usage errors and internal crashes.  ``main`` is the one exit point.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from flowspec import placement
from flowspec.core.diagnostics import (
    has_errors,
    render_concise,
    render_json,
    render_junit,
    render_sarif,
    render_text,
    to_dict,
)
from flowspec.driver import Compilation, FlowNotFound
from flowspec.kinds.limits import MAX_PARAMS
from flowspec.syntax.limits import MAX_BYTES, MAX_STATEMENTS, Limits

EXIT_OK, EXIT_ERRORS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake in the command line (a missing file, a bad flag)."""


class _Refused(Exception):
    """A valid command the spec cannot honour (``--dtype float16`` with a block that
    cannot run in it): exit 1, like a spec error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 itself; keep one exit point
        raise UsageError(message)


def _limits(args: argparse.Namespace) -> Limits:
    return Limits.of(args.max_bytes, args.max_statements, args.max_params)


def _read(path: str, args: argparse.Namespace) -> Compilation:
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"no such file: {path}")
    try:
        return Compilation.of(p, _limits(args))
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a UTF-8 text file") from None


def _spec_files(names: list[str], suffixes: tuple[str, ...] | None = None) -> list[str]:
    """``names`` with each directory replaced by the specs below it (those ending in
    one of ``suffixes``, when given); a directory with none is a usage error."""
    from flowspec.driver import spec_files

    files: list[str] = []
    for name in names:
        found = [str(p) for p in spec_files([name])]
        if Path(name).is_dir():
            found = [f for f in found if suffixes is None or f.endswith(suffixes)]
            if not found:
                what = (
                    "`.flow` files"
                    if suffixes == (".flow",)
                    else ("flow specs (.flow files, or YAML with a `flowspec:` key)")
                )
                raise UsageError(f"no {what} in {name}")
        files.extend(found)
    return files


def cmd_check(args: argparse.Namespace) -> int:
    all_diags, sources = [], {}
    args.files = _spec_files(args.files)
    if args.specs_only:  # as in a directory: skip YAML without a `flowspec:` key
        from flowspec.driver import is_spec_file

        args.files = [f for f in args.files if not Path(f).is_file() or is_spec_file(Path(f))]
    for path in args.files:
        comp = _read(path, args)
        all_diags.extend(comp.diagnostics)
        sources.update(comp.sources)
    if args.format == "json":
        print(render_json(all_diags))
    elif args.format == "sarif":
        print(render_sarif(all_diags))
    elif args.format == "junit":
        sys.stdout.write(render_junit(all_diags, list(sources), sources, args.strict))
    elif args.format == "concise":
        sys.stdout.write(render_concise(all_diags))
    else:
        if all_diags:
            sys.stdout.write(render_text(all_diags, sources))
        n_err = sum(d.is_error for d in all_diags)
        n_warn = len(all_diags) - n_err
        files = f"{len(args.files)} file{'s' if len(args.files) != 1 else ''}"
        if not all_diags:
            print(f"ok: {files} checked, no problems")
        else:
            print(f"{n_err} error(s), {n_warn} warning(s) in {files}")
    if has_errors(all_diags) or (args.strict and all_diags):
        return EXIT_ERRORS
    return EXIT_OK


def _checked(args: argparse.Namespace) -> tuple[Compilation, int]:
    comp = _read(args.spec, args)
    if comp.diagnostics:
        sys.stderr.write(render_text(comp.diagnostics, comp.sources))
    if comp.errors:
        return comp, EXIT_ERRORS
    return comp, EXIT_OK


def _write_output(text: str, output: str | None) -> int:
    """Write to ``output``, or to standard output when it is None or ``-``."""
    if output in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")
        print(f"wrote {output}")
    return EXIT_OK


def cmd_compile(args: argparse.Namespace) -> int:
    comp, status = _checked(args)
    if status:
        return status
    if args.weights is not None:
        return _compile_with_weights(comp, args)
    _map_devices(comp, args)
    source = comp.generate(args.flow)
    return _write_output(source, args.output)


def _compile_with_weights(comp: Compilation, args: argparse.Namespace) -> int:
    """``compile --weights CKPT -o model.py``: refuse a checkpoint saved from another
    spec, then write the module and, beside it, the checkpoint's ``state_dict``
    (``model.pt``, which ``torch.load(weights_only=True)`` reads)."""
    if args.output in (None, "-"):
        raise UsageError("--weights needs -o FILE.py (the weights are written beside it)")
    weights = Path(args.output).with_suffix(".pt")
    if weights == Path(args.output):
        raise UsageError("-o names the module's .py file; the weights go to a .pt beside it")
    import torch

    from flowspec.checkpoint import CheckpointError, load_compiled
    from flowspec.core.diagnostics import SpecError

    try:
        flow = load_compiled(args.weights, comp)
    except CheckpointError as e:
        sys.stderr.write(f"flowspec: error: {e}\n")
        return EXIT_ERRORS
    except SpecError as e:  # the module cannot be built here (E500)
        sys.stderr.write(render_text(e.diagnostics, e.sources))
        return EXIT_ERRORS
    if args.flow is not None and args.flow != flow.FLOW_NAME:
        sys.stderr.write(
            f"flowspec: error: {args.weights} holds flow `{flow.FLOW_NAME}`, not `{args.flow}`\n"
        )
        return EXIT_ERRORS
    _write_output(comp.generate(flow.FLOW_NAME), args.output)
    torch.save(flow.state_dict(), weights)
    print(
        f"wrote {weights} (the weights of {args.weights}: "
        f"Model().load_state_dict(torch.load({str(weights)!r}, weights_only=True)))"
    )
    return EXIT_OK


def cmd_summary(args: argparse.Namespace) -> int:
    # summary builds nothing, so it reports a flow of any size: the limit only says
    # whether check and compile would refuse it
    limit, args.max_params = args.max_params or None, 0
    comp, status = _checked(args)
    if status:
        return status
    from flowspec.summary import summary_table

    _map_devices(comp, args)
    fg = comp.flow_graph(args.flow)
    print(summary_table(comp, fg, max_params=limit, dtype=args.dtype))
    print(placement.plan_text(fg, args.dtype))
    if args.meta:
        print(placement.meta_text(comp, args.flow))
    return EXIT_OK


def _map_devices(comp: Compilation, args: argparse.Namespace) -> None:
    """Apply ``--device-map``, ``--device`` and ``--dtype`` to the flow's graph before
    codegen / the plan (a UsageError for a malformed map or device, a
    :class:`_Refused` for a dtype a block cannot run in)."""
    try:
        mapping = placement.device_map_of(args)
    except ValueError as e:
        raise UsageError(str(e)) from None
    fg = comp.flow_graph(args.flow)
    placement.apply_map(fg, mapping)
    device, dtype = getattr(args, "device", None), getattr(args, "dtype", None)
    if device is not None and not placement.valid_device(device):
        raise UsageError(f"--device {device!r}: not a device (cpu, cuda, cuda:N, mps, meta)")
    try:
        placement.apply_defaults(fg, device, dtype)
    except ValueError as e:
        raise _Refused(str(e)) from None


def cmd_graph(args: argparse.Namespace) -> int:
    comp, status = _checked(args)
    if status:
        return status
    from flowspec.diagram import GraphvizMissing, write_graph

    collapse = True if args.collapse else False if args.expand else None
    try:
        write_graph(comp.flow_graph(args.flow), args.output, collapse)
    except GraphvizMissing as e:
        sys.stderr.write(f"flowspec: {e}\n")
        return EXIT_USAGE
    print(f"wrote {args.output}")
    return EXIT_OK


def cmd_fmt(args: argparse.Namespace) -> int:
    """Rewrite .flow files in their canonical layout; ``--check`` shows a diff instead."""
    import difflib

    from flowspec.syntax.fmt import format_source

    status, stale = EXIT_OK, []
    for path in _spec_files(args.files, (".flow",)):
        if not path.endswith(".flow"):
            raise UsageError(f"{path}: fmt formats .flow files (YAML: `flowspec convert`)")
        source = _read(path, args).source
        text, diags = format_source(source, _limits(args))
        if text is None:
            sys.stderr.write(render_text(diags, {source.path: source}))
            status = EXIT_ERRORS
        elif text != source.text:
            stale.append(path)
            if args.check:
                old = [
                    line if line.endswith("\n") else line + "\n"
                    for line in source.text.splitlines(True)
                ]
                sys.stdout.writelines(
                    difflib.unified_diff(old, text.splitlines(True), path, f"{path} (formatted)")
                )
            else:
                Path(path).write_text(text, encoding="utf-8")
                print(f"reformatted {path}")
    if args.check and stale:
        sys.stderr.write(f"{len(stale)} file(s) would be reformatted\n")
        return EXIT_ERRORS
    return status


def cmd_convert(args: argparse.Namespace) -> int:
    """A spec in the other syntax: .flow ↔ YAML, lossless except comments."""
    from flowspec.driver import is_yaml
    from flowspec.syntax.fmt import format_program
    from flowspec.syntax.to_yaml import ConversionError, to_yaml

    comp = _read(args.file, args)
    program, diags = comp.parsed
    if program is None:
        sys.stderr.write(render_text(diags, comp.sources))
        return EXIT_ERRORS
    try:
        if args.to == "yaml":
            text = to_yaml(program)
        else:  # from .flow this is `fmt`, comments kept
            text = format_program(program, None if is_yaml(comp.source) else comp.source)
    except ConversionError as e:
        sys.stderr.write(render_text([e.diagnostic], comp.sources))
        return EXIT_ERRORS
    return _write_output(text, args.output)


def cmd_verify(args: argparse.Namespace) -> int:
    from flowspec.verify.cli import run

    try:
        return run(args, _spec_files(args.files), lambda path: _read(path, args))
    except ValueError as e:
        raise UsageError(str(e)) from None


def cmd_kinds(args: argparse.Namespace) -> int:
    from flowspec.reference import kinds_text

    sys.stdout.write(kinds_text())
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    from flowspec.reference import UnknownEntry, explain

    try:
        sys.stdout.write(explain(args.name))
    except UnknownEntry as e:
        raise UsageError(str(e)) from None
    return EXIT_OK


def _count(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 (no limit) or more, got {value}")
    return value


def _limit_options() -> _Parser:
    """--max-bytes / --max-statements, shared by every command that reads a spec."""
    limits = _Parser(add_help=False)
    limits.add_argument(
        "--max-bytes",
        type=_count,
        default=MAX_BYTES,
        metavar="N",
        help=f"refuse specs over N bytes (E205; default {MAX_BYTES}, 0: no limit)",
    )
    limits.add_argument(
        "--max-statements",
        type=_count,
        default=MAX_STATEMENTS,
        metavar="N",
        help=f"refuse specs over N statements (E205; default {MAX_STATEMENTS}, 0: no limit)",
    )
    limits.add_argument(
        "--max-params",
        type=_count,
        default=MAX_PARAMS,
        metavar="N",
        help=f"refuse flows over N parameters, counted before anything is allocated (E501; "
        f"default {MAX_PARAMS}, 0: no limit; summary reports any size)",
    )
    return limits


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="flowspec", description="A compiler for normalizing flows.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    limits = [_limit_options()]

    p = sub.add_parser("check", parents=limits, help="check specs and report diagnostics")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--strict", action="store_true", help="warnings fail too")
    p.add_argument(
        "--format", choices=("text", "concise", "json", "sarif", "junit"), default="text"
    )
    p.add_argument(
        "--specs-only",
        action="store_true",
        help="skip files named that are not specs (YAML without a top-level `flowspec:` "
        "key), as a directory does: for pre-commit, which names every YAML file",
    )
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("compile", parents=limits, help="write the generated PyTorch module")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-o", "--output", help="output file (default: standard output)")
    p.add_argument("--flow", help="the flow to compile, when the spec has several")
    p.add_argument(
        "--weights",
        metavar="CKPT",
        help="a flowspec.save checkpoint of this spec: refused if saved from another spec; "
        "its weights are written beside -o as a .pt state_dict",
    )
    placement.add_arguments(p)
    p.set_defaults(run=cmd_compile)

    p = sub.add_parser("summary", parents=limits, help="a table of the flow's blocks")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--flow")
    placement.add_arguments(p)
    p.add_argument(
        "--meta", action="store_true", help="also build the module on the meta device (a dry run)"
    )
    p.set_defaults(run=cmd_summary)

    p = sub.add_parser(
        "graph", parents=limits, help="draw the flow (.dot, or .svg/.png through graphviz)"
    )
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--flow")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--expand", action="store_true", help="draw every repeat iteration")
    size.add_argument(
        "--collapse",
        action="store_true",
        help="draw each repeat's body once, × N (the default above 40 blocks)",
    )
    p.set_defaults(run=cmd_graph)

    p = sub.add_parser("fmt", parents=limits, help="rewrite .flow files in the canonical layout")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--check", action="store_true", help="only show a diff; exit 1 if any")
    p.set_defaults(run=cmd_fmt)

    p = sub.add_parser("convert", parents=limits, help="convert a spec between .flow and YAML")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--to", choices=("yaml", "flow"), required=True)
    p.add_argument("-o", "--output", help="output file (default: standard output)")
    p.set_defaults(run=cmd_convert)

    p = sub.add_parser("verify", parents=limits, help="check a compiled flow's numbers")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    placement.add_arguments(p, device=False, dtype=False)
    p.add_argument("--samples", type=int, default=4, metavar="N", help="random inputs")
    p.add_argument("--draws", type=int, default=200, metavar="N", help="estimates per estimator")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument("--flow", help="verify only this flow of each spec")
    p.add_argument(
        "--weights",
        metavar="CKPT",
        help="verify the trained weights of a checkpoint of this spec (no perturbation)",
    )
    p.add_argument("--format", choices=("text", "json", "junit"), default="text")
    p.set_defaults(run=cmd_verify)

    p = sub.add_parser("kinds", help="list every block kind with a one-line summary")
    p.set_defaults(run=cmd_kinds)
    p = sub.add_parser("explain", help="print the reference entry of a block kind, code or word")
    p.add_argument("name", metavar="KIND|CODE|WORD")
    p.set_defaults(run=cmd_explain)
    __import__("flowspec.train.cli").train.cli.register(sub, limits)  # train/eval/sample/plot
    __import__("flowspec.bounds").bounds.register(sub, limits)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.version:
            from flowspec import __version__

            print(f"flowspec {__version__}")
            return EXIT_OK
        if not getattr(args, "command", None):
            parser.print_help()
            return EXIT_USAGE
        return args.run(args)
    except UsageError as e:
        sys.stderr.write(f"flowspec: error: {e}\n")
        return EXIT_USAGE
    except _Refused as e:
        sys.stderr.write(f"flowspec: error: {e}\n")
        return EXIT_ERRORS
    except FlowNotFound as e:
        sys.stderr.write(f"flowspec: error: {e}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `flowspec summary spec | head`: the reader left, not a crash
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception:  # an internal bug: a short banner, never a user-facing traceback
        spec = next((a for a in argv if not a.startswith("-") and Path(a).is_file()), "?")
        sys.stderr.write(
            "flowspec crashed — please report this at the project's issue tracker, with the "
            f"spec that caused it ({spec}).\n"
        )
        if __import__("os").environ.get("FLOWSPEC_DEBUG"):
            traceback.print_exc()
        else:
            last = traceback.format_exc().strip().splitlines()[-1]
            sys.stderr.write(f"  {last}\n  (set FLOWSPEC_DEBUG=1 for the full traceback)\n")
        return EXIT_USAGE


__all__ = ["main", "to_dict"]

if __name__ == "__main__":
    raise SystemExit(main())
