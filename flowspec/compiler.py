"""``flowspec.compile``: a spec → a ready ``Flow`` module (the API entry point)."""

from __future__ import annotations

import builtins
import linecache
from pathlib import Path

import torch

from flowspec import build, placement
from flowspec.api import unreadable
from flowspec.core.diagnostics import Diagnostic, SpecError
from flowspec.driver import Compilation, FlowNotFound
from flowspec.ir.graph import FlowGraph
from flowspec.kinds.limits import MAX_PARAMS
from flowspec.runtime import validate as _validate
from flowspec.runtime.flow import _CHECKS, Flow
from flowspec.syntax.limits import MAX_BYTES, MAX_STATEMENTS, Limits


def _known_device(device: str | torch.device) -> str:
    """``device`` as text, or a ValueError when it names no device type flowspec knows
    (before asking whether this machine has it)."""
    from flowspec.checks.placement import DEVICE_TYPES, valid_device

    text = str(device)
    if not valid_device(text):
        raise ValueError(
            f"compile(device={text!r}): unknown device; valid: cpu, cuda, cuda:N, mps, meta"
            + (
                f" (`{text.split(':')[0]}` takes no index but 0)"
                if text.split(":")[0] in DEVICE_TYPES
                else ""
            )
        )
    return text


def _known_dtype(dtype: torch.dtype | str | None, fg: FlowGraph) -> torch.dtype | None:
    """``dtype`` (a torch dtype or its name, ``"bfloat16"``) if every block of ``fg`` runs
    in it, else a ValueError naming the first block that does not, where, and why."""
    if dtype is None:
        return None
    given = dtype
    names = "torch.float32, torch.float64, torch.bfloat16 or torch.float16"
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"compile(dtype={given!r}): not a torch dtype; use {names}")
    if dtype not in _validate.DTYPES:
        raise ValueError(
            f"compile(dtype={given!r}): flows run in {names}; {dtype} is not a real "
            "floating-point dtype they support"
        )
    short = str(dtype).removeprefix("torch.")
    problem = placement.dtype_problem(fg, short)
    if problem is not None:
        raise ValueError(f"compile(dtype={short}): {problem}")
    return dtype


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
                    node.device_span or node.span,
                    hint=(
                        f"compile with device_map={{{node.device!r}: 'cpu'}} "
                        f"(CLI: --device-map {node.device}=cpu), or use `on cpu`"
                    ),
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
    cls.SPEC_SOURCE = comp.source  # the spec it came from (flowspec.verify reads it)
    # the spec itself, for flowspec.save: set on the class here, never written into the
    # generated source (spec text reaches that only through safe comments)
    cls.SPEC_TEXT = comp.source.text
    cls.SPEC_FILE = comp.source.path
    return cls


#: ``max_parameters=`` not given (it is the old name of ``max_params=``)
_UNSET: object = object()


def compile(
    spec: str | Path,
    *,
    flow: str | None = None,
    device: str | torch.device | None = None,
    device_map: dict[str, str] | None = None,
    dtype: torch.dtype | str | None = None,
    jit: bool = False,
    validate: bool = True,
    max_params: int | None = MAX_PARAMS,
    max_bytes: int | None = MAX_BYTES,
    max_statements: int | None = MAX_STATEMENTS,
    max_parameters: int | object | None = _UNSET,
) -> Flow:
    """Compile a spec (a path or the spec's text) into a :class:`Flow`.

    ``flow=`` picks one flow of a file with several; ``device``/``dtype`` place the
    blocks that no ``on`` statement places; ``jit=True`` wraps the generated ``forward``,
    ``inverse``, ``transform`` and ``inverse_transform`` with ``torch.compile``.
    ``validate=False`` turns off the run-time checks of every entry point's argument
    (dtype, NaN/inf, block domains; the same as ``flow.validate = False``).  A spec
    with errors raises one :class:`SpecError` carrying the diagnostics; ``max_bytes``
    and ``max_statements`` are the size limits, as in :func:`flowspec.check`.

    ``max_params`` (default 2·10⁹; ``0`` or ``None``: no limit) bounds the flow's
    learned parameters, counted from shapes and options by the checker (E501), and its
    parameters and buffers, counted on the ``meta`` device before anything is allocated
    (E500); an allocation that fails anyway is an E500 SpecError naming the block.
    ``max_parameters`` is its old name, still accepted.

    ``device_map={"cuda:1": "cuda:0", "cuda": "cpu"}`` renames the devices of the spec's
    ``on`` regions before code generation (an exact name first, then its type), so a
    spec written for two GPUs runs on one or on the CPU; transfers are generated only
    where the mapped devices differ (see :mod:`flowspec.placement`).
    """
    if max_parameters is not _UNSET:
        if max_params != MAX_PARAMS:
            raise TypeError("compile() takes max_params or its old name max_parameters, not both")
        max_params = max_parameters  # type: ignore[assignment]
    max_params = max_params or None
    try:
        comp = Compilation.of(spec, Limits.of(max_bytes, max_statements, max_params))
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError([unreadable(spec, e)]) from None
    return compile_compilation(
        comp,
        flow=flow,
        device=device,
        device_map=device_map,
        dtype=dtype,
        jit=jit,
        validate=validate,
        max_params=max_params,
    )


def compile_compilation(
    comp: Compilation,
    *,
    flow: str | None = None,
    device: str | torch.device | None = None,
    device_map: dict[str, str] | None = None,
    dtype: torch.dtype | str | None = None,
    jit: bool = False,
    validate: bool = True,
    max_params: int | None = MAX_PARAMS,
) -> Flow:
    """:func:`compile` of a spec already read (``flowspec.load`` rebuilds a checkpoint's
    module from the spec text it stores, under the path it was saved from)."""
    comp.raise_for_errors()
    try:
        name = comp.flow_graph(flow).name
    except FlowNotFound as e:
        raise ValueError(str(e)) from None
    mapping = placement.check_map(device_map)
    meta = device is not None and _known_device(device) == "meta"
    if meta:  # a dry run: every region on meta too, so the module never leaves it
        mapping.update({n.device: "meta" for n in comp.flow_graph(name).blocks() if n.device})
        if comp.flow_graph(name).default_device is not None:  # --device, as the regions
            comp.flow_graph(name).default_device = "meta"
            comp.__dict__.pop("_generated_cache", None)
    if mapping:
        placement.apply_map(comp.flow_graph(name), mapping)
        comp.__dict__.pop("_generated_cache", None)  # regenerate under the mapped devices
    _check_devices(comp, name)
    dtype = _known_dtype(dtype, comp.flow_graph(name))
    if device is not None and not _device_available(_known_device(device)):
        raise ValueError(
            f"compile(device={str(device)!r}): that device is not available here; build on "
            "one that is (device='cpu'), or with device_map= rename the spec's regions too"
        )
    cls = build_class(comp, name)
    fg = comp.flow_graph(name)
    if meta:
        # built on meta from the start: no parameter memory, no size guard needed
        with torch.device("meta"):
            module = build.construct(cls, fg, comp.sources)
        if dtype is not None:
            module.to(dtype=dtype)
        module.validate = validate
        return module
    sizes = build.check_size(cls, fg, comp.sources, max_params)
    module = build.construct(cls, fg, comp.sources, sizes)
    if device is not None or dtype is not None:
        build.place(module, fg, comp.sources, device, dtype, sizes)
    if jit:
        # every generated straight-line method, so sample() (inverse_transform) and
        # log_prob() (forward) both run compiled; fullgraph=True: a graph break is an error
        # the argument checks run eagerly around the compiled generated method
        for name in ("forward", "inverse", "transform", "inverse_transform"):
            generated = getattr(type(module), name).__wrapped__.__get__(module)
            compiled = torch.compile(generated, fullgraph=True, dynamic=False)
            setattr(module, name, _validate.jitted(module, name, _CHECKS[name], compiled))
    module.validate = validate
    return module
