"""``flowspec.compile``: a spec → a ready ``Flow`` module (the API entry point)."""

from __future__ import annotations

import builtins
import linecache
from pathlib import Path

import torch

from flowspec import build
from flowspec.core.diagnostics import Diagnostic, SpecError
from flowspec.driver import Compilation, FlowNotFound
from flowspec.kinds.limits import MAX_PARAMS
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
    return cls


#: ``max_parameters=`` not given (it is the old name of ``max_params=``)
_UNSET: object = object()


def compile(
    spec: str | Path,
    *,
    flow: str | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    jit: bool = False,
    max_params: int | None = MAX_PARAMS,
    max_bytes: int | None = MAX_BYTES,
    max_statements: int | None = MAX_STATEMENTS,
    max_parameters: int | object | None = _UNSET,
) -> Flow:
    """Compile a spec (a path or the spec's text) into a :class:`Flow`.

    ``flow=`` picks one flow of a file with several; ``device``/``dtype`` place the
    blocks that no ``on`` statement places; ``jit=True`` wraps the generated ``forward``,
    ``inverse``, ``transform`` and ``inverse_transform`` with ``torch.compile``.  A spec
    with errors raises one :class:`SpecError` carrying the diagnostics; ``max_bytes``
    and ``max_statements`` are the size limits, as in :func:`flowspec.check`.

    ``max_params`` (default 2·10⁹; ``0`` or ``None``: no limit) bounds the flow's
    learned parameters, counted from shapes and options by the checker (E501), and its
    parameters and buffers, counted on the ``meta`` device before anything is allocated
    (E500); an allocation that fails anyway is an E500 SpecError naming the block.
    ``max_parameters`` is its old name, still accepted.
    """
    if max_parameters is not _UNSET:
        if max_params != MAX_PARAMS:
            raise TypeError("compile() takes max_params or its old name max_parameters, not both")
        max_params = max_parameters  # type: ignore[assignment]
    max_params = max_params or None
    comp = Compilation.of(spec, Limits.of(max_bytes, max_statements, max_params))
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
    sizes = build.check_size(cls, fg, comp.sources, max_params)
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
