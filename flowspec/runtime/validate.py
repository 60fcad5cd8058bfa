"""Run-time validation of what a compiled flow is given, on by default.

Like ``torch.distributions``' ``validate_args``, every entry point of a :class:`Flow`
(``forward``, ``transform``, ``inverse``, ``inverse_transform``, ``log_prob``,
``sample``) checks its argument before any block runs: the dtype against the flow's
parameters, non-finite values (NaN, ±inf), and, for a ``dequantize`` flow, integers in
[0, 2^bits).  Blocks with a domain check it on the tensor they receive (``logit`` needs
[0, 1], the inverse of ``sigmoid`` needs (0, 1)) and raise :class:`BlockError`; the
entry point turns it into a ``ValueError`` naming the flow and the block's spec line::

    flow `f`, line 5 (`x = logit(x)`): logit needs values in [0, 1], got max 1.3

Validation costs one fused reduction and one host synchronisation per entry point
(``benchmarks/bench_compile.py --validate`` measures it).  Turn it off with
``flow.validate = False`` or ``flowspec.compile(..., validate=False)``; errors that
are never a matter of checking (batchnorm training on a batch of one) are raised
either way.

The functions take the flow as their first argument so that ``flow.py`` only calls them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

#: the dtypes a flow may be compiled in; in the 16-bit ones only where every block allows
#: it (``BlockKind.low_precision``: LU, slogdet and tight iterative tolerances do not)
DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)

#: the integer dtypes a ``dequantize`` flow takes its data in
INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


class BlockError(ValueError):
    """A block's complaint about the tensor it was given; the flow's entry point adds
    the flow's name and the block's spec line."""

    def __init__(self, block: nn.Module, message: str) -> None:
        super().__init__(message)
        self.block = block
        self.message = message


# ------------------------------------------------------------------ the switch


def _get(flow: nn.Module) -> bool:
    return flow.__dict__.get("_validate", True)


def _set(flow: nn.Module, on: bool) -> None:
    flow.__dict__["_validate"] = bool(on)
    for module in flow.modules():
        if module is not flow:
            module.__dict__["validate"] = bool(on)


#: ``Flow.validate``: on by default; setting it also switches the blocks' domain checks
switch = property(_get, _set, doc="check every entry point's argument (default True)")


def domain_checks_on(block: nn.Module) -> bool:
    """Should ``block`` check its domain?  True unless its flow turned validation off,
    and never inside ``torch.compile`` (a data-dependent check would break the graph:
    with ``jit=True`` the entry points still check their arguments, outside it)."""
    return block.__dict__.get("validate", True) and not torch.compiler.is_compiling()


# ------------------------------------------------------------- entry points


def call(flow: Any, name: str, run: Callable[..., Any], value: Any, *args: Any, **kw: Any):
    """Run the entry point ``name`` as ``run(value, *args, **kw)``: check ``value`` first
    when validation is on and this is the outermost entry (``log_prob`` calling
    ``forward`` checks once), and locate a :class:`BlockError` at its spec line."""
    state = flow.__dict__
    if state.get("_entered"):
        return run(value, *args, **kw)
    if state.get("_validate", True):
        _CHECKS[name](flow, value)
    state["_entered"] = True
    try:
        return run(value, *args, **kw)
    except BlockError as err:
        raise ValueError(located(flow, err)) from None
    finally:
        state["_entered"] = False


def entry(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a ``Flow`` method as the entry point ``name`` (see :func:`call`)."""

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        import functools

        @functools.wraps(method)
        def entered(flow: Any, value: Any, *args: Any, **kw: Any) -> Any:
            return call(flow, name, method.__get__(flow), value, *args, **kw)

        return entered

    return wrap


def jitted(flow: Any, name: str, shape_check: Callable[[Any, Any], None], compiled: Any):
    """The entry point ``name`` of a ``jit=True`` flow: the shape and value checks run
    eagerly, then the ``torch.compile``-d generated method."""

    def entered(value: Any, context: Any = None) -> Any:
        shape_check(flow, value)
        return call(flow, name, compiled, value, *flow._context_args(value, context))

    return entered


def located(flow: Any, err: BlockError) -> str:
    """``flow `f`, line 5 (`x = logit(x)`): <the block's message>``."""
    lines = getattr(flow, "BLOCK_LINES", {}) or {}
    for attr, child in flow.named_children():
        if child is err.block and attr in lines:
            where, text = lines[attr], spec_text(type(flow), attr)
            if text:
                return f"flow `{flow.FLOW_NAME}`, {where} (`{text}`): {err.message}"
            return f"flow `{flow.FLOW_NAME}`, {where}: {err.message}"
    return f"flow `{flow.FLOW_NAME}`: {err.message}"


def spec_text(cls: type, attr: str) -> str:
    """The spec line of block ``attr`` as the generated source's provenance comment
    above ``self.<attr> = ...`` shows it ('' when the source cannot be found).  Only
    comments carry spec text into generated code, so the message reads it from there."""
    source = getattr(cls, "GENERATED_SOURCE", None)
    if source is None:
        import inspect

        try:
            module = inspect.getmodule(cls)
            if module is None:
                return ""
            source = inspect.getsource(module)
        except (OSError, TypeError):
            return ""
    previous = ""
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith(f"self.{attr} = "):
            _, _, text = previous.partition(": ")
            return text if previous.startswith("# line ") else ""
        previous = stripped
    return ""


# ------------------------------------------------------------------- checks


def _dtype_hint(flow: Any, dtype: torch.dtype) -> str:
    want = flow._probe.dtype
    short = {
        torch.float64: "double",
        torch.float32: "float",
        torch.bfloat16: "bfloat16",
        torch.float16: "half",
    }.get(dtype)
    flow_fix = f"flow.{short}()" if short else f"flow.to({dtype})"
    return (
        f"convert the data with .to({want}), or the flow with {flow_fix} "
        f"(or flowspec.compile(..., dtype={dtype}))"
    )


def _finite(flow: Any, what: str, tensors: tuple[Tensor, ...]) -> None:
    """One fused reduction and one synchronisation for all of ``tensors``."""
    if any(t.is_meta for t in tensors):  # shapes only: no values to check
        return
    flags = [torch.isfinite(t).all() for t in tensors]
    ok = flags[0] if len(flags) == 1 else torch.stack(flags).all()
    if bool(ok):
        return
    for i, t in enumerate(tensors):
        bad = ~torch.isfinite(t)
        count = int(bad.sum())
        if count:
            kinds = [n for n, m in (("NaN", t.isnan()), ("inf", t.isinf())) if bool(m.any())]
            which = f"{what} {i}" if len(tensors) > 1 else what
            first = [int(k) for k in bad.reshape(t.shape[0], -1).any(1).nonzero()[:1, 0]]
            raise ValueError(
                f"flow `{flow.FLOW_NAME}`: the {which} holds {count} non-finite "
                f"value{'s' if count > 1 else ''} ({' and '.join(kinds)}), first in batch "
                f"element {first[0]}"
            )


def check_data(flow: Any, x: Any) -> None:
    """A data tensor for ``forward``/``transform``/``log_prob`` (shape already checked)."""
    if not isinstance(x, Tensor):
        return
    want = flow._probe.dtype
    if x.dtype != want:
        if not x.is_floating_point():
            raise ValueError(
                f"flow `{flow.FLOW_NAME}` takes {want} data, got a {x.dtype} tensor; "
                f"convert it with .to({want})"
                + (" (or declare `dequantize uniform(bits=8)` for integer data)")
            )
        raise ValueError(
            f"flow `{flow.FLOW_NAME}` has {want} parameters, got {x.dtype} data; "
            + _dtype_hint(flow, x.dtype)
        )
    _finite(flow, "input", (x,))


def check_context(flow: Any, context: Tensor) -> None:
    """A ``context=`` tensor (shape already checked): the parameters' dtype, finite."""
    want = flow._probe.dtype
    if context.dtype != want:
        raise ValueError(
            f"flow `{flow.FLOW_NAME}` has {want} parameters, got a {context.dtype} context; "
            f"convert it with .to({want})"
        )
    _finite(flow, "context", (context,))


def check_log_prob(flow: Any, x: Any) -> None:
    """``log_prob``'s data: the shape first, then integers for a ``dequantize`` flow (the
    dequantised values ``forward`` is given are floats in [0, 1)), else as ``forward``."""
    flow._check_input(x)
    if flow.DEQUANTIZE is not None:
        check_quantized(flow, x)
    else:
        check_data(flow, x)


def check_quantized(flow: Any, x: Tensor) -> None:
    """Dequantised data: integers in [0, 2^bits), of an integer dtype or integer-valued
    floats (a float tensor in [0, 1) is the usual slip: it is already scaled)."""
    bits = flow.DEQUANTIZE["bits"]
    levels = 2**bits
    name = flow.FLOW_NAME
    if x.dtype == torch.bool or x.is_complex():
        raise ValueError(f"flow `{name}` dequantizes integers in [0, {levels}), got {x.dtype}")
    if x.is_floating_point():
        _finite(flow, "input", (x,))
    if x.numel() == 0 or x.is_meta:
        return
    lo, hi = torch.aminmax(x)
    whole = bool((x == torch.floor(x)).all()) if x.is_floating_point() else True
    lo_, hi_ = lo.item(), hi.item()
    if lo_ < 0 or hi_ >= levels:
        raise ValueError(
            f"flow `{name}` dequantizes integers in [0, {levels}) (bits={bits}), got values "
            f"in [{_num(lo_)}, {_num(hi_)}]"
        )
    if not whole:
        raise ValueError(
            f"flow `{name}` dequantizes integers in [0, {levels}), got non-integer values "
            f"(in [{_num(lo_)}, {_num(hi_)}]); pass the raw integers (uint8 or int64), not "
            "data already scaled to [0, 1)"
        )


def check_latents(flow: Any, z: Any) -> None:
    """Latents for ``inverse``/``inverse_transform`` (count and shapes already checked)."""
    latents = tuple(z) if isinstance(z, (tuple, list)) else (z,)
    if not latents or not all(isinstance(t, Tensor) for t in latents):
        return
    want = flow._probe.dtype
    for t in latents:
        if t.dtype != want:
            raise ValueError(
                f"flow `{flow.FLOW_NAME}` has {want} parameters, got a {t.dtype} latent; "
                + _dtype_hint(flow, t.dtype)
            )
    _finite(flow, "latent", latents)


def check_count(flow: Any, n: Any) -> None:
    """The number of samples: a non-negative integer."""
    if isinstance(n, bool) or not _is_index(n):
        raise TypeError(
            f"flow `{flow.FLOW_NAME}`: sample(n) takes a whole number of samples, "
            f"got {type(n).__name__} {n!r}"
        )
    if operator.index(n) < 0:
        raise ValueError(
            f"flow `{flow.FLOW_NAME}`: sample(n) takes n ≥ 0 samples, got {operator.index(n)}"
        )


def _is_index(n: Any) -> bool:
    try:
        operator.index(n)
    except TypeError:
        return False
    return True


def _num(v: float) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


_CHECKS: dict[str, Callable[[Any, Any], None]] = {
    "forward": check_data,
    "transform": check_data,
    "log_prob": check_log_prob,
    "inverse": check_latents,
    "inverse_transform": check_latents,
    "sample": check_count,
}


# ------------------------------------------------------------- block domains


def check_interval(
    block: nn.Module, what: str, x: Tensor, lo: float, hi: float, closed: bool
) -> None:
    """Raise :class:`BlockError` unless every entry of ``x`` is in [lo, hi] (``closed``)
    or (lo, hi): ``what`` says who needs it (``logit``, ``the inverse of sigmoid``)."""
    if x.is_meta:
        return
    inside = ((x >= lo) & (x <= hi)) if closed else ((x > lo) & (x < hi))
    if bool(inside.all()):
        return
    interval = f"[{lo:g}, {hi:g}]" if closed else f"({lo:g}, {hi:g})"
    if bool(x.isnan().any()):
        got = "got NaN"
    else:
        mn, mx = (v.item() for v in torch.aminmax(x.detach()))
        low = mn < lo or (not closed and mn <= lo)
        got = f"got min {mn:.4g}" if low else f"got max {mx:.4g}"
    raise BlockError(block, f"{what} needs values in {interval}, {got}")


__all__ = [
    "DTYPES",
    "INTEGER_DTYPES",
    "BlockError",
    "call",
    "check_count",
    "check_data",
    "check_interval",
    "check_latents",
    "check_quantized",
    "domain_checks_on",
    "entry",
    "jitted",
    "located",
    "switch",
]
