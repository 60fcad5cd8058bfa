"""``flowspec.verify``: build (or take) a flow's module and check its numbers.

1. The module: compiled from the spec in ``dtype``; or a given :class:`Flow`, whose
   spec is found from the source it was compiled from (``spec=`` otherwise).
2. The perturbation (specs only, unless ``perturb=`` says otherwise): N(0, 0.1²) added
   to every parameter, seeded by ``seed`` (so zero-initialised conditioners are not
   the identity), then one batch in training mode (data-dependent initialisation:
   actnorm, batchnorm's running statistics), then ``eval()``.
3. Inputs in every block's domain: the flow's input drawn from its domain (a standard
   normal; uniform inside the first block's ``input_domain``, e.g. (0, 1) for ``logit``;
   uniform in (0, 1) under ``dequantize``; the latent for a ``direction generative``
   flow), a seeded random ``context`` when the flow has one, and every block checked
   at the values the flow feeds it.
4. Per block and for the whole module: the checks of :mod:`flowspec.verify.blocks`;
   per residual block also σ_max of every certified weight as used in forward.
"""

from __future__ import annotations

import copy
import math
import random
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from flowspec.core.spans import Source
from flowspec.driver import Compilation
from flowspec.ir.graph import FlowGraph, Node
from flowspec.kinds import REGISTRY
from flowspec.runtime.exact import exact as exact_mode
from flowspec.runtime.flow import Flow
from flowspec.verify import tolerances as T
from flowspec.verify.blocks import DENSE_MAX, FULL_MAX, Subject, check_subject
from flowspec.verify.numerics import as_tuple, linear_sigma
from flowspec.verify.numerics import perturb as add_noise
from flowspec.verify.report import BlockReport, Check, VerifyReport

#: how many of the blocks with more than FULL_MAX features get a dense Jacobian
LARGE_BLOCKS = 4


def prepare(
    spec: str | Path,
    *,
    flow: str | None = None,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
    samples: int = 4,
    device_map: dict[str, str] | None = None,
) -> Flow:
    """The module ``verify(spec)`` checks: compiled, perturbed and initialised as in
    step 2 of the module docstring, in ``eval()`` mode.  Tests break such a module on
    purpose and pass it to ``verify``."""

    module = _compile_seeded(spec, seed, flow=flow, dtype=dtype, device_map=device_map)
    fg = _graph_of(module, None)
    with torch.random.fork_rng(), _one_thread():
        torch.manual_seed(seed)
        add_noise(module, seed=seed)
        module.train()
        _walk(module, fg, _inputs(module, fg, samples, seed + 1000, dtype), fused=True)
    return module.eval()


def _compile_seeded(spec: str | Path, seed: int, **options: Any) -> Flow:
    """``flowspec.compile`` with the initial weights drawn under ``seed``: torch seeds its
    default generator differently in every process, so unseeded weights (and with them
    every measured error and an ODE block's NFE) changed from one run of ``flowspec
    verify`` to the next under the same ``--seed``."""
    import flowspec

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return flowspec.compile(spec, **options)


@contextmanager
def _one_thread():
    """Verification runs many small operations, for which torch's thread hand-offs cost
    more than they save (70× per small matmul on a loaded 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _graph_of(module: Flow, spec: str | Path | None) -> FlowGraph:
    source = getattr(type(module), "SPEC_SOURCE", None)
    if spec is not None:
        comp = Compilation.of(spec)
    elif isinstance(source, Source):
        comp = Compilation(source)
    else:
        raise ValueError(
            f"verify: flow `{module.FLOW_NAME}` does not carry its spec (a module imported "
            "from `flowspec compile -o`?): pass spec=PATH"
        )
    from flowspec.codegen import spec_hash
    from flowspec.driver import FlowNotFound

    try:
        fg = comp.flow_graph(module.FLOW_NAME)
    except FlowNotFound:
        raise ValueError(
            f"verify: {comp.source.path} defines no flow `{module.FLOW_NAME}`, so its spec "
            f"hash cannot match the module's ({module.SPEC_HASH})"
        ) from None

    if spec is not None and spec_hash(comp.program, fg.name) != module.SPEC_HASH:
        raise ValueError(
            f"verify: the module's spec hash {module.SPEC_HASH} differs from that of "
            f"{comp.source.path} ({spec_hash(comp.program, fg.name)})"
        )
    return fg


def _draw_latent(kind: str, shape: tuple[int, ...], gen: torch.Generator, dtype) -> Tensor:
    if kind == "logistic":
        u = torch.rand(shape, generator=gen, dtype=torch.float64).clamp(1e-6, 1 - 1e-6)
        return (torch.log(u) - torch.log1p(-u)).to(dtype)
    if kind == "uniform":
        return (0.05 + 0.9 * torch.rand(shape, generator=gen, dtype=torch.float64)).to(dtype)
    return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)


def _inputs(module: Flow, fg: FlowGraph, b: int, seed: int, dtype) -> dict[str, Tensor]:
    """The flow's input (in its domain) and context, by tensor id."""
    gen = torch.Generator().manual_seed(seed)
    assert fg.input is not None  # a flow that checked has its input, of a known shape
    in_shape = fg.tensors[fg.input].shape
    assert in_shape is not None
    shape = (b, *in_shape)
    if fg.direction == "generative":
        x = _draw_latent(module.latent, shape, gen, dtype)
    else:
        first = next((n for n in fg.blocks() if fg.input in n.inputs), None)
        domain = None
        if first is not None:
            from flowspec.runtime.base import load_runtime

            domain = getattr(load_runtime(REGISTRY[first.kind].runtime), "input_domain", None)
        if domain is None and module.DEQUANTIZE is not None:
            domain = (0.0, 1.0)
        if domain is None:
            x = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
        else:
            lo, hi = domain
            u = torch.rand(shape, generator=gen, dtype=torch.float64)
            x = (lo + (hi - lo) * (0.05 + 0.9 * u)).to(dtype)
    values = {fg.input: x}
    if fg.context is not None:
        ctx_shape = fg.tensors[fg.context].shape
        assert ctx_shape is not None  # a flow that checked knows every tensor's shape
        ctx = (b, *ctx_shape)
        values[fg.context] = torch.randn(ctx, generator=gen, dtype=torch.float64).to(dtype)
    return values


def _walk(module: Flow, fg: FlowGraph, values: dict[str, Tensor], fused: bool = False):
    """Run the blocks as written, in program order, recording each block's inputs:
    ``[(node, block, xs, cond)]``; ``values`` gains every tensor."""
    seen = []
    with torch.no_grad():
        for i, node in enumerate(fg.blocks()):
            block = getattr(module, f"b{i}")
            xs = [values[t] for t in node.inputs]
            cond = {k: values[t] for k, t in node.reads.items()}
            ys = block(*xs, **cond)[0] if fused else block.transform(*xs, **cond)
            for t, y in zip(node.outputs, as_tuple(ys)):
                values[t] = y
            seen.append((node, block, xs, cond))
    return seen


def _location(node: Node) -> tuple[str, str]:
    where = f"{node.span.file}:{node.span.line}"
    via = ""
    if node.expanded_from:
        via = "called at line " + " → ".join(str(s.line) for s in node.expanded_from)
    return where, via


def _bound(fn, node: Node) -> float | None:
    if node.reads:
        return None
    return fn(node.options, node.in_shapes).value


def _bias(block: Any, opts: dict[str, Any]) -> float:
    """The proven truncation bias of a ``series`` estimator (0 for unbiased ones), of the
    eval-mode estimator, which verify runs."""
    estimator = getattr(block, "eval_estimator", None)
    if (
        estimator is not None
        and getattr(estimator, "kind", None) == "series"
        and hasattr(block, "series_tail_bound")
    ):
        return float(block.series_tail_bound(estimator.terms))
    return 0.0


def _exact_tol(block: Any, subject_tol: float, tau: float) -> float:
    from flowspec.runtime.residual import EXACT_MAX_FEATURES

    features = getattr(block, "features", None)
    if features is not None and hasattr(block, "series_tail_bound"):
        return tau if features <= EXACT_MAX_FEATURES else tau + block.series_tail_bound()
    return subject_tol


def _weights(block: Any, opts: dict[str, Any], report: BlockReport, tau: float) -> None:
    """σ_max of every certified weight of a residual block (an ``ode`` block:
    :func:`_ode_weights`) as used in forward, against
    the spec's ``lipschitz`` (a float64 SVD for dense layers; for convolutions the
    operator norm of the zero-padded convolution, by power iteration, a lower bound)."""
    from flowspec.runtime.lipschitz_layers import LipschitzConvNet, SpectralConv2d, sigma_max

    if opts.get("lipschitz") is not None and hasattr(block, "dynamics"):
        _ode_weights(block, float(opts["lipschitz"]), report, tau)
        return
    g = getattr(block, "g", None)
    if g is None or not hasattr(g, "weights") or "lipschitz" not in opts:
        return
    c = float(opts["lipschitz"])
    try:
        with torch.no_grad():
            ws = g.weights()
        worst = 0.0
        for layer, w in zip(g.layers, ws, strict=True):
            if isinstance(g, LipschitzConvNet) and isinstance(layer, SpectralConv2d):
                shape = (w.shape[1], *layer.spatial)

                def conv(v: Tensor, w: Tensor = w, layer: Any = layer) -> Tensor:
                    if layer.pad is not None:
                        v = torch.nn.functional.pad(v, layer.pad)
                    return torch.nn.functional.conv2d(
                        v, w.detach(), None, padding=layer.conv_padding
                    )

                worst = max(worst, linear_sigma(conv, shape, w.dtype))
            else:
                worst = max(worst, sigma_max(w))
        ok = worst <= c * (1.0 + tau)
        report.add(Check("weights", worst, c * (1.0 + tau), ok, f"lipschitz={c:g} in the spec"))
    except Exception as e:
        report.add(Check("weights", math.nan, c, False, f"{type(e).__name__}: {e}"[:300]))


def _ode_weights(block: Any, lipschitz: float, report: BlockReport, tau: float) -> None:
    """An ``ode`` block with ``lipschitz=L``: σ_max (float64 SVD) of every x-weight of its
    dynamics net as used in forward against the share c = (L / Lip(a)^m)^(1/n) each layer
    is certified to, and ∏ σ_max·Lip(a)^m, the bound of Lip_x f that exp(L·t) rests on,
    against L (the time weights do not act on x and are not measured)."""
    from flowspec.runtime.lipschitz_layers import SpectralLinear, sigma_max

    net = block.dynamics.net
    try:
        layers = [m for m in net.layers if isinstance(m, SpectralLinear)]
        if not layers or len(layers) != len(net.layers):
            raise TypeError(f"lipschitz={lipschitz:g} but the dynamics net is not certified")
        with torch.no_grad():
            net.certify()
            sigmas = [sigma_max(w) for w in net.x_weights()]
        share = max(layer.lipschitz for layer in layers)
        product = math.prod(sigmas) * net.act_lipschitz ** len(net.acts)
        ok = max(sigmas) <= share * (1.0 + tau) and product <= lipschitz * (1.0 + tau)
        note = (
            f"lipschitz={lipschitz:g} in the spec: each of {len(sigmas)} weights ≤ "
            f"{share:.6g}; ∏σ·Lip(a)^{len(net.acts)} = {product:.6g} ≤ {lipschitz:g}"
        )
        report.add(Check("weights", max(sigmas), share * (1.0 + tau), ok, note))
    except Exception as e:
        report.add(Check("weights", math.nan, lipschitz, False, f"{type(e).__name__}: {e}"[:300]))


def _reference(block: Any, dtype: torch.dtype, cond: dict[str, Tensor]):
    """The float64 map whose Jacobian is the reference (a float64 copy when ``dtype`` is
    not float64)."""
    ref = block if dtype == torch.float64 else copy.deepcopy(block).double()
    cond64 = {k: v.double() for k, v in cond.items()}
    return lambda *v: ref.transform(*v, **cond64)


def _block_subject(node, block, xs, cond, dtype, dense, jac_samples, note) -> Subject:
    kind = REGISTRY[node.kind]
    opts = node.options
    tau = T.base(dtype)
    tol = T.inverse_tolerance(kind, opts, dtype)
    stochastic = kind.logdet_class(opts) == "stochastic"
    integrated = kind.inverse_class(opts) == "integrated"
    return Subject(
        forward=lambda *v: block(*v, **cond),
        inverse=lambda *v: block.inverse(*v, **cond),
        transform=lambda *v: block.transform(*v, **cond),
        inverse_transform=lambda *v: block.inverse_transform(*v, **cond),
        xs=xs,
        tol=tol,
        tau=tol if integrated else tau,
        stochastic=stochastic,
        bias=_bias(block, opts) if stochastic else 0.0,
        lipschitz=_bound(kind.lipschitz, node),
        inverse_lipschitz=_bound(kind.inverse_lipschitz, node),
        reference=_reference(block, dtype, cond),
        exact=(lambda: exact_mode(block)) if hasattr(block, "exact_eval") else None,
        exact_tol=_exact_tol(block, tol, tau),
        dense=dense,
        jac_samples=jac_samples,
        skip_note=note,
        parameters=list(block.parameters()),
    )


def verify(
    spec_or_flow: str | Path | Flow,
    *,
    dtype: torch.dtype = torch.float64,
    samples: int = 4,
    seed: int = 0,
    draws: int = 200,
    flow: str | None = None,
    spec: str | Path | None = None,
    perturb: bool | None = None,
    device_map: dict[str, str] | None = None,
) -> VerifyReport:
    """Check a flow's numbers; see the module docstring and the README's "Verify".

    ``spec_or_flow`` is a spec (path or text; ``flow=`` picks one of several flows) or
    an already-built :class:`Flow` (checked as it is, unless ``perturb=True``; ``spec=``
    names its spec when the module does not carry it).  ``samples`` random inputs,
    ``draws`` estimates per stochastic log-det, everything seeded by ``seed``;
    ``device_map=`` renames the spec's devices as for :func:`flowspec.compile` (a spec
    written for GPUs is verified on the CPU with ``{"cuda": "cpu"}``).  A spec with
    errors raises :class:`flowspec.SpecError`."""
    if not 1 <= samples <= 1024:
        raise ValueError(f"verify: samples must be in 1 … 1024, got {samples}")
    if not 10 <= draws <= 100_000:
        raise ValueError(f"verify: draws must be in 10 … 100,000, got {draws}")
    start = time.perf_counter()
    given = isinstance(spec_or_flow, Flow)
    if isinstance(spec_or_flow, Flow):  # given
        module = spec_or_flow
        fg = _graph_of(module, spec)
        old_dtype, was_training = module._probe.dtype, module.training
        module.to(dtype)
        if perturb:
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                add_noise(module, seed=seed)
    else:
        if perturb is False:
            module = _compile_seeded(
                spec_or_flow, seed, flow=flow, dtype=dtype, device_map=device_map
            )
        else:
            module = prepare(
                spec_or_flow,
                flow=flow,
                dtype=dtype,
                seed=seed,
                samples=samples,
                device_map=device_map,
            )
        fg = _graph_of(module, None)
    module.eval()
    path = fg.span.file
    report = VerifyReport(fg.name, path, str(dtype).replace("torch.", ""), samples, seed)
    try:
        with torch.random.fork_rng(), _one_thread():
            torch.manual_seed(seed)
            _verify(module, fg, report, dtype, samples, seed, draws)
    finally:
        if given:
            module.to(old_dtype)
            module.train(was_training)
    report.seconds = time.perf_counter() - start
    return report


def _verify(module, fg, report, dtype, samples, seed, draws) -> None:
    values = _inputs(module, fg, samples, seed + 1, dtype)
    steps = _walk(module, fg, values)
    large = [i for i, (n, *_rest) in enumerate(steps) if _features(n) > FULL_MAX]
    rng = random.Random(seed)
    dense_large = set(rng.sample(large, min(LARGE_BLOCKS, len(large))))
    for i, (node, block, xs, cond) in enumerate(steps):
        where, via = _location(node)
        row = BlockReport(f"b{i}", node.kind, where)
        row.via = via
        d = _features(node)
        dense, jac_samples, note = True, None, ""
        if d > DENSE_MAX:
            dense, note = False, f"{d} features > {DENSE_MAX}: no dense Jacobian"
        elif d > FULL_MAX:
            jac_samples = 1
            if i not in dense_large:
                dense = False
                note = (
                    f"{d} features > {FULL_MAX}: {LARGE_BLOCKS} random blocks that "
                    "large are brute-forced"
                )
        check_subject(
            _block_subject(node, block, xs, cond, dtype, dense, jac_samples, note), row, draws
        )
        _weights(block, node.options, row, T.base(dtype))
        row.nfe = _nfe(block, xs, cond, seed + i)
        report.rows.append(row)
    report.rows.append(_whole(module, fg, values, dtype, draws))


def _nfe(
    block: Any, xs: list[Tensor], cond: dict[str, Tensor], seed: int
) -> dict[str, int] | None:
    """An ODE block's function evaluations (its ``nfe``) of one forward call with the
    log-det, of one inverse call, and of the gradient of the forward call with respect
    to the input (the adjoint's backward integration); ``None`` for other blocks, or
    when a call fails (the checks above report that failure).  The Hutchinson probes,
    which move the adaptive solver's steps, are drawn under ``seed`` (the block's index
    added to ``--seed``), so the counts do not depend on how many random numbers the
    checks before took (``--draws``)."""
    if not isinstance(getattr(type(block), "nfe", None), property):
        return None
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            with torch.no_grad():
                y, _ = block(*xs, **cond)
                forward = block.nfe[0]
                block.inverse(y, **cond)
                inverse = block.nfe[0]
            x = xs[0].detach().requires_grad_(True)
            with torch.enable_grad():
                y, ladj = block(x, *xs[1:], **cond)
                torch.autograd.grad(y.sum() + ladj.sum(), x)
            backward = block.nfe[1]
    except Exception:
        return None
    return {"forward": int(forward), "inverse": int(inverse), "backward": int(backward)}


def _features(node: Node) -> int:
    assert node.in_shapes is not None  # every block of a flow that checked has its shapes
    return sum(math.prod(s) for s in node.in_shapes[: len(node.inputs)])


def _options(node: Node) -> dict[str, Any]:
    assert node.options is not None  # every block of a flow that checked has its options
    return node.options


def _whole(module: Flow, fg: FlowGraph, values: dict[str, Tensor], dtype, draws) -> BlockReport:
    """The whole module (data → latent), at the data the walk produced."""
    from flowspec.checks.lipschitz import lipschitz_bound

    generative = fg.direction == "generative"
    if generative:
        x = values[fg.outputs[0]]
    else:
        assert fg.input is not None  # a flow that checked has its input
        x = values[fg.input]
    ctx = values.get(fg.context) if fg.context is not None else None
    kw = {} if ctx is None else {"context": ctx}
    blocks = fg.blocks()
    kinds = [REGISTRY[n.kind] for n in blocks]
    opts = [_options(n) for n in blocks]
    tau = T.base(dtype)
    tol = max([tau] + [T.inverse_tolerance(k, o, dtype) for k, o in zip(kinds, opts)])
    integrated = any(k.inverse_class(o) == "integrated" for k, o in zip(kinds, opts))
    stochastic = any(k.logdet_class(o) == "stochastic" for k, o in zip(kinds, opts))
    bias = sum(
        _bias(getattr(module, f"b{i}"), o)
        for i, (k, o) in enumerate(zip(kinds, opts))
        if k.logdet_class(o) == "stochastic"
    )
    d = math.prod(x.shape[1:])
    ref = module if dtype == torch.float64 else copy.deepcopy(module).double()
    kw64 = {k: v.double() for k, v in kw.items()}
    fwd, inv = lipschitz_bound(fg), lipschitz_bound(fg, inverse=True)
    n_out = len(module.output_shapes)

    def pack(z: Any) -> Any:
        return z if n_out > 1 else z[0]

    subject = Subject(
        forward=lambda v: module(v, **kw),
        inverse=lambda *z: module.inverse(pack(z), **kw),
        transform=lambda v: module.transform(v, **kw),
        inverse_transform=lambda *z: module.inverse_transform(pack(z), **kw),
        xs=[x],
        tol=tol,
        tau=tol if integrated else tau,
        stochastic=stochastic,
        bias=bias,
        lipschitz=fwd.value,
        inverse_lipschitz=inv.value,
        reference=lambda v: ref.transform(v, **kw64),
        exact=lambda: exact_mode(module),
        exact_tol=tol + bias,
        dense=d <= DENSE_MAX,
        jac_samples=1 if d > FULL_MAX else None,
        skip_note=f"{d} features > {DENSE_MAX}: no dense Jacobian of the whole flow",
        parameters=list(module.parameters()),
        swapped=generative,
    )
    row = BlockReport("flow", f"flow {fg.name}", f"{fg.span.file}:{fg.span.line}")
    row.via = ""
    check_subject(subject, row, draws)
    return row


__all__ = ["prepare", "verify"]
