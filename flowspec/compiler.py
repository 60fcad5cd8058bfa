"""``flowspec.compile``: a spec → a ready ``Flow`` module (the API entry point)."""

from __future__ import annotations

import builtins
import linecache
from pathlib import Path

import torch

from flowspec import build
from flowspec.core.diagnostics import Diagnostic, SpecError
from flowspec.driver import Compilation, FlowNotFound
from flowspec.kinds.limits import MAX_PARAMETERS
from flowspec.runtime.flow import Flow
from flowspec.syntax.limits import MAX_BYTES, MAX_STATEMENTS, Limits


def _device_available(device: str) -> bool:
    kind = device.split(":")[0]
    if kind in ("cpu", "meta"):
        return True
    if kind == "cuda":
        if not torch.cuda.is_available():
            return False
        index = int(device.split(":")[1]) if ":" in device else 0
        return index < torch.cuda.device_count()
    if kind == "mps":
        return torch.backends.mps.is_available()
    return False


def _check_devices(comp: Compilation, flow_name: str) -> None:
    """E500 for a placement the machine cannot honour (a compile-time, not check-time,
    fact: the same spec checks clean everywhere)."""
    fg = comp.flow_graph(flow_name)
    diags, seen = [], set()
    for node in fg.blocks():
        if node.device is None or node.device_span in seen:
            continue
        seen.add(node.device_span)
        if not _device_available(node.device):
            diags.append(
                Diagnostic(
                    "E500",
                    f"device `{node.device}` is not available on this machine",
                    node.device_span,
                    hint="compile with a placement this machine has, or use `on cpu`",
                )
            )
    if diags:
        raise SpecError(diags, comp.sources)


def build_class(comp: Compilation, flow: str | None = None) -> type[Flow]:
    """Exec the generated source of one flow and return its class."""
    fg = comp.flow_graph(flow)
    source = comp.generate(fg.name)
    filename = f"<flowspec:{comp.source.path}:{fg.name}>"
    # register the source so tracebacks and inspect show the generated lines
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict = {"__name__": f"flowspec_generated_{fg.name}"}
    exec(builtins.compile(source, filename, "exec"), namespace)
    cls = namespace["Model"]
    cls.GENERATED_SOURCE = source
    # the spec itself, for flowspec.save: set on the class here, never written into the
    # generated source (spec text reaches that only through safe comments)
    cls.SPEC_TEXT = comp.source.text
    cls.SPEC_FILE = comp.source.path
    return cls


def compile(
    spec: str | Path,
    *,
    flow: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    jit: bool = False,
    max_parameters: int | None = MAX_PARAMETERS,
    max_bytes: int | None = MAX_BYTES,
    max_statements: int | None = MAX_STATEMENTS,
) -> Flow:
    """Compile a spec (a path or the spec's text) into a :class:`Flow`.

    ``flow=`` picks one flow of a file with several; ``device``/``dtype`` place the
    blocks that no ``on`` statement places; ``jit=True`` wraps the generated ``forward``,
    ``inverse``, ``transform`` and ``inverse_transform`` with ``torch.compile``.  A spec
    with errors raises one :class:`SpecError` carrying the diagnostics; ``max_bytes``
    and ``max_statements`` are the size limits, as in :func:`flowspec.check`.

    ``max_parameters`` bounds the numbers (parameters and buffers) the module may
    allocate, counted before anything is allocated (E500 above it; ``None``: no
    limit); an allocation that fails anyway is an E500 SpecError naming the block.
    """
    comp = Compilation.of(spec, Limits.of(max_bytes, max_statements))
    return compile_compilation(
        comp, flow=flow, device=device, dtype=dtype, jit=jit, max_parameters=max_parameters
    )


def compile_compilation(
    comp: Compilation,
    *,
    flow: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    jit: bool = False,
    max_parameters: int | None = MAX_PARAMETERS,
) -> Flow:
    """:func:`compile` of a spec already read (``flowspec.load`` rebuilds a checkpoint's
    module from the spec text it stores, under the path it was saved from)."""
    comp.raise_for_errors()
    try:
        name = comp.flow_graph(flow).name
    except FlowNotFound as e:
        raise ValueError(str(e)) from None
    _check_devices(comp, name)
    if device is not None and not _device_available(str(device)):
        raise ValueError(f"compile(device={str(device)!r}): that device is not available here")
    cls = build_class(comp, name)
    fg = comp.flow_graph(name)
    sizes = build.check_size(cls, fg, comp.sources, max_parameters)
    module = build.construct(cls, fg, comp.sources, sizes)
    if device is not None or dtype is not None:
        build.place(module, fg, comp.sources, device, dtype, sizes)
    if jit:
        # every generated straight-line method, so sample() (inverse_transform) and
        # log_prob() (forward) both run compiled; fullgraph=True: a graph break is an error
        for name in ("forward", "inverse", "transform", "inverse_transform"):
            method = getattr(module, name)
            setattr(module, name, torch.compile(method, fullgraph=True, dynamic=False))
    return module
