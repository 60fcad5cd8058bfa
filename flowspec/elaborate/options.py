"""Elaboration, step 1 — names and arguments (E200, E201): block kinds, options, nets,
enum words, arity.

Resolves each block's options against the registry (:func:`resolve_options`, the one
option resolver), fills defaults, and records them as ``Node.options``.  Also resolves
``latent``, ``dequantize`` and the ``require`` properties.

    >>> from flowspec.checks.examples import diagnose
    >>> diagnose("x = coupling.afine(x)")
    E200 3:9 unknown block kind `coupling.afine`
    >>> diagnose("x = shuffle(x, seed=-1)")
    E201 3:25 `seed` must be at least 0, got -1
"""

from __future__ import annotations

from typing import Any

from flowspec.core.diagnostics import Diagnostic
from flowspec.core.names import did_you_mean
from flowspec.core.spans import Span
from flowspec.ir.graph import FlowGraph, Node
from flowspec.kinds import DEQUANTIZERS, LATENTS, REGISTRY
from flowspec.kinds.options import Given, OptionError, Raw, Word, describe, resolve_options
from flowspec.kinds.words import REQUIREMENTS


def _diagnostic(e: OptionError, span: Span) -> Diagnostic:
    """An option problem as a diagnostic, at ``span`` when the resolver knew no better."""
    return Diagnostic(e.code, e.message, e.span or span, hint=e.hint)


def resolve_node(node: Node) -> tuple[dict[str, Any] | None, list[Diagnostic]]:
    """Resolve a block node's options; returns (options or None, diagnostics)."""
    spec = REGISTRY[node.kind]
    given = [Given(a.key, a.value, a.span, a.key_span, a.value_span) for a in node.args]
    found = resolve_options(spec.options, given, f"`{node.kind}`")
    diags = [_diagnostic(e, node.span) for e in found.problems]
    if diags:
        return None, diags
    by_name = {o.name: o for o in spec.options}
    written = {a.key for a in node.args}
    for name in spec.needs(found.options):
        if found.options.get(name) is None and name not in written:
            option = by_name[name]
            diags.append(
                Diagnostic(
                    "E201",
                    f"`{node.kind}` is missing option `{option.name}`",
                    node.span,
                    hint=option.hint or f"add `{option.name}=...`",
                )
            )
    return (None if diags else found.options), diags


def _resolve_flow_value(table, value: Any, span: Span, what: str) -> tuple[Any, list]:
    try:
        return table.resolve(value), []
    except OptionError as e:
        if e.code == "E201" and not isinstance(value, (Word, Raw)):
            e.message = (
                f"{what} expects a word such as `{next(iter(table.words))}`, got {describe(value)}"
            )
        return None, [_diagnostic(e, span)]


def resolve_arguments(fg: FlowGraph) -> list[Diagnostic]:
    """Resolve the options of every block of ``fg`` and its flow-level words."""
    diags: list[Diagnostic] = []
    for node in fg.blocks():
        spec = REGISTRY.get(node.kind)
        if spec is None:
            diags.append(
                Diagnostic(
                    "E200",
                    f"unknown block kind `{node.kind}`",
                    node.kind_span,
                    hint=did_you_mean(node.kind, REGISTRY),
                )
            )
            continue
        if spec.inputs is not None and node.n_positional != spec.inputs:
            diags.append(
                Diagnostic(
                    "E201",
                    f"`{node.kind}` takes {spec.inputs} tensor(s), got {node.n_positional}",
                    node.span,
                )
            )
            continue
        if spec.inputs is None and node.n_positional < 2:
            diags.append(
                Diagnostic(
                    "E201",
                    f"`{node.kind}` takes two or more tensors, got {node.n_positional}",
                    node.span,
                )
            )
            continue
        options, problems = resolve_node(node)
        diags.extend(problems)
        if options is None:
            continue
        n_out = spec.outputs(options)
        if n_out != len(node.outputs):
            diags.append(
                Diagnostic(
                    "E201",
                    f"`{node.kind}` produces {n_out} tensor(s), but {len(node.outputs)} "
                    f"name(s) are bound",
                    node.span,
                )
            )
            continue
        node.options = options

    if fg.latent is not None:
        fg.latent_choice, d = _resolve_flow_value(
            LATENTS, fg.latent, fg.latent_span or fg.span, "latent"
        )
        diags.extend(d)
    else:
        fg.latent_choice = LATENTS.resolve(Word("normal"))
    if fg.dequantize is not None:
        fg.dequantize_choice, d = _resolve_flow_value(
            DEQUANTIZERS, fg.dequantize, fg.dequantize_span or fg.span, "dequantize"
        )
        diags.extend(d)

    for req in fg.requirements:
        if req.property not in REQUIREMENTS:
            diags.append(
                Diagnostic(
                    "E200",
                    f"unknown requirement `{req.property}`",
                    req.property_span,
                    hint=did_you_mean(req.property, REQUIREMENTS)
                    or "requirements: " + ", ".join(f"`{r}`" for r in REQUIREMENTS),
                )
            )
        elif REQUIREMENTS[req.property] and req.bound is None:
            diags.append(
                Diagnostic(
                    "E201",
                    f"`require {req.property}` needs a bound",
                    req.span,
                    hint=f"write `require {req.property} <= 2.0`",
                )
            )
        elif not REQUIREMENTS[req.property] and req.bound is not None:
            diags.append(
                Diagnostic(
                    "E201",
                    f"`require {req.property}` takes no bound",
                    req.span,
                    hint=f"write `require {req.property}`",
                )
            )
        elif req.bound is not None and req.bound <= 0:
            diags.append(
                Diagnostic(
                    "E201", f"a Lipschitz bound must be positive, got {req.bound}", req.span
                )
            )
    return diags
