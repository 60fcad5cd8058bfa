"""``flowspec summary``: the flow as a table (``flowspec graph`` is :mod:`flowspec.diagram`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowspec.checks.lipschitz import lipschitz_bound
from flowspec.checks.resources import Resources, flow_resources
from flowspec.ir.graph import FlowGraph
from flowspec.ir.resolved import Resolved, ResolvedFlow
from flowspec.kinds import REGISTRY
from flowspec.kinds.sizes import format_bytes

if TYPE_CHECKING:
    from flowspec.driver import Compilation


def _shape(s) -> str:
    return "[" + ", ".join(map(str, s)) + "]"


def _shapes(shapes) -> str:
    return " ".join(_shape(s) for s in shapes) if shapes else "-"


def _line(block: Resolved) -> str:
    """``8``, or ``6@31`` for line 6 of a ``block`` called at line 31."""
    node = block.node
    return "@".join(str(s.line) for s in (node.span, *reversed(node.expanded_from)))


def _bound(value) -> str:
    return "∞" if value is None else f"{value:.4g}"


def parameter_counts(fg: FlowGraph) -> list[int]:
    """Parameters per block, from the registry's formulas: nothing is built, so a
    spec of 10¹² parameters, or one placed `on cuda:1`, is summarised on any machine."""
    res = flow_resources(fg)
    return list(res.parameters) if res else [0] * len(fg.blocks())


def memory_lines(
    res: Resources, max_params: int | None = None, dtype: str | None = None
) -> list[str]:
    """The totals under the table: parameters and the memory estimate (the model is
    :mod:`flowspec.checks.resources`'s) in ``dtype`` numbers (default float32), and
    whether the flow is over ``max_params``."""
    from flowspec.placement import ITEMSIZE

    p, name = res.total, dtype or "float32"
    size = ITEMSIZE[name]
    lines = [
        f"parameters: {p:,} ({format_bytes(size * p)} in {name}; training with Adam: "
        f"{format_bytes(4 * size * p)} for weights, gradients and moments)",
        f"memory per sample, {name} (an estimate): training "
        f"{format_bytes(size * res.training_per_sample)}, inference "
        f"{format_bytes(size * res.inference_per_sample)}",
    ]
    if max_params is not None and p > max_params:
        lines.append(
            f"over the limit of {max_params:,} parameters: `flowspec check` and "
            "`flowspec.compile` refuse it (E501; --max-params N, max_params=N)"
        )
    return lines


def _inverse_iterations(rf: ResolvedFlow) -> list[str]:
    """Per residual statement, the fixed-point iterations its certified bound predicts
    for a unit-scale input (‖y‖ = √d, so ‖g(y)‖ ≤ c·√d when g(0) = 0)."""
    from flowspec.kinds.residual import iterations_for
    from flowspec.kinds.sizes import numel

    seen: dict[object, str] = {}
    for node in rf.blocks:
        if node.kind != "residual" or node.span in seen:
            continue
        c, tol = node.options["lipschitz"], node.options["inverse"]["tol"]
        n = iterations_for(c, c * numel(node.in_shapes[0]) ** 0.5, tol)
        cap = node.options["inverse"]["max_iter"]
        over = f" (over max_iter={cap}: it stops in time only where g contracts more)"
        seen[node.span] = (
            f"line {_line(node)}: ≤ {n} for tol={tol:g} at c={c:g}{over if n > cap else ''}"
        )
    if not seen:
        return []
    return [
        "fixed-point inverse, iterations the certified bound cⁿ/(1 − c)·‖g(y)‖ ≤ tol needs "
        "for a unit-scale input (‖g(y)‖ ≤ c·√d): " + "; ".join(seen.values())
    ]


def _estimators(rf: ResolvedFlow) -> list[str]:
    """Per residual statement, its training and eval-mode log-det estimators."""
    from flowspec.kinds.residual import describe_estimators

    seen: dict[object, str] = {}
    for node in rf.blocks:
        if node.kind == "residual" and node.span not in seen:
            seen[node.span] = f"line {_line(node)}: {describe_estimators(node.options)}"
    return ["log-det estimators: " + " | ".join(seen.values())] if seen else []


def _ode_bounds(rf: ResolvedFlow) -> list[str]:
    """Per ``ode`` statement with ``lipschitz=L``, where its bound comes from."""
    seen: dict[object, str] = {}
    for node in rf.blocks:
        if node.kind != "ode" or node.span in seen:
            continue
        lip, t = node.options["lipschitz"], node.options["t"]
        if lip is None:
            continue
        bound = REGISTRY["ode"].lipschitz(node.options, node.in_shapes).value
        seen[node.span] = f"line {_line(node)}: exp({lip:g}·{t:g}) = {_bound(bound)}"
    if not seen:
        return []
    return [
        "ode Lipschitz bounds, Lip(F) and Lip(F⁻¹) ≤ exp(L·t): the dynamics net's layers have "
        "certified spectral norms, so f(·, s) is L-Lipschitz in x for every s (the time "
        "inputs do not count) and two solutions part at most at rate L (Grönwall): "
        + "; ".join(seen.values())
    ]


def summary_table(
    comp: Compilation, fg: FlowGraph, max_params: int | None = None, dtype: str | None = None
) -> str:
    """One row per block of ``fg``, a flow of the caller's checked ``comp``: kind, line,
    shapes, parameters, classes, Lipschitz bounds; then the totals and the memory
    estimate in ``dtype`` numbers.  Nothing is built or allocated."""
    rf = comp.resolved(fg.name)
    res = flow_resources(fg)
    counts = list(res.parameters) if res else [0] * len(rf.blocks)
    header = (
        "#",
        "block",
        "line",
        "input",
        "output",
        "params",
        "log-det",
        "inverse",
        "Lip",
        "Lip⁻¹",
    )
    rows = []
    for i, node in enumerate(rf.blocks):
        spec = REGISTRY[node.kind]
        shapes = node.consumed_shapes
        fwd = spec.lipschitz(node.options, node.in_shapes).value
        inv = spec.inverse_lipschitz(node.options, node.in_shapes).value
        device = node.node.device
        kind = node.kind + (f" @{device}" if device else "")
        rows.append(
            (
                str(i),
                kind,
                _line(node),
                _shapes(shapes),
                _shapes(node.out_shapes),
                f"{counts[i]:,}",
                spec.logdet_class(node.options),
                spec.inverse_class(node.options),
                _bound(fwd),
                _bound(inv),
            )
        )
    widths = [max(len(r[c]) for r in (header, *rows)) for c in range(len(header))]
    right = {0, 2, 5, 8, 9}

    def fmt(row):
        return "  ".join(
            cell.rjust(widths[c]) if c in right else cell.ljust(widths[c])
            for c, cell in enumerate(row)
        ).rstrip()

    # a block whose density direction is the slow one (IAF) says so under the table
    slow = [
        f"block {i} ({node.kind}, line {_line(node)}): the density direction (data → latent, "
        "log_prob) runs in sequential passes, one per feature; the inverse (sampling) is one "
        "pass"
        for i, node in enumerate(rf.blocks)
        if REGISTRY[node.kind].forward_class(node.options) == "sequential"
    ]
    lip = lipschitz_bound(rf).value
    lip_inv = lipschitz_bound(rf, inverse=True).value
    stochastic = any(REGISTRY[n.kind].logdet_class(n.options) == "stochastic" for n in rf.blocks)
    lines = [
        f"flow {fg.name}: input {_shape(fg.input_shape)} → "
        f"{', '.join(_shape(fg.tensors[t].shape) for t in fg.outputs)}, latent "
        f"{fg.latent_choice}",
        fmt(header),
        "  ".join("-" * w for w in widths),
        *(fmt(r) for r in rows),
        *(["", *slow] if slow else []),
        "",
        f"total: {len(rows)} blocks, {sum(counts):,} parameters; log-det "
        f"{'stochastic' if stochastic else 'exact'}; proven Lip(F) ≤ {_bound(lip)}, "
        f"Lip(F⁻¹) ≤ {_bound(lip_inv)}",
        *(memory_lines(res, max_params, dtype) if res else []),
        *_estimators(rf),
        *_inverse_iterations(rf),
        *_ode_bounds(rf),
    ]
    if fg.context is not None:
        lines.insert(
            1,
            f"context {fg.tensors[fg.context].name} {_shape(fg.context_shape)}: read by "
            f"{sum(1 for u in fg.uses[fg.context] if u.read_only)} block(s); the module takes "
            "it as log_prob(x, context=y), sample(n, context=y)",
        )
    if fg.direction == "generative":
        lines.append(
            "direction generative: the blocks map latent → data as written, so sample, "
            "rsample and sample_and_log_prob run them as written and log_prob runs the "
            "inverses (the `inverse` column)"
        )
    return "\n".join(lines)
