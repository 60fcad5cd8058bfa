"""Names and arguments (E200, E201): block kinds, options, nets, enum words, arity.

Resolves each block's options against the registry, fills defaults, and annotates
``Node.options`` for the passes after it.  Also resolves ``latent``, ``dequantize``
and the ``require`` properties.

    >>> from flowspec.checks.examples import diagnose
    >>> diagnose("x = coupling.afine(x)")
    E200 3:9 unknown block kind `coupling.afine`
    >>> diagnose("x = shuffle(x, seed=-1)")
    E201 3:25 `seed` must be at least 0, got -1
"""

from __future__ import annotations

from typing import Any

from flowspec.core.diagnostics import Diagnostic
from flowspec.core.names import close_matches, did_you_mean
from flowspec.core.spans import Span
from flowspec.ir.graph import FlowGraph, Node
from flowspec.kinds import DEQUANTIZERS, LATENTS, REGISTRY
from flowspec.kinds.options import OptionError, Raw, Word, describe
from flowspec.kinds.words import REQUIREMENTS


def _option_error(e: OptionError, span: Span, key_span: Span | None = None) -> Diagnostic:
    hint = e.hint
    target = getattr(e, "span", None) or span
    if e.candidates:
        name = e.message.split("`")[-2] if "`" in e.message else ""
        hint = did_you_mean(name, e.candidates) or hint
        if hint is None:
            hint = "expected one of " + ", ".join(f"`{c}`" for c in e.candidates)
    if getattr(e, "key_only", False) and key_span is not None and target is span:
        target = key_span
    return Diagnostic(e.code, e.message, target, hint=hint)


def _options_hint(kind: str, options: dict) -> str:
    """The options a kind has, or that it has none (never an empty list)."""
    if not options:
        return f"`{kind}` takes no options"
    return "options: " + ", ".join(f"`{o}`" for o in options)


def resolve_node(node: Node) -> tuple[dict[str, Any] | None, list[Diagnostic]]:
    """Resolve a block node's options; returns (options or None, diagnostics)."""
    spec = REGISTRY[node.kind]
    by_name = {o.name: o for o in spec.options}
    out: dict[str, Any] = {}
    diags: list[Diagnostic] = []
    seen: dict[str, Span] = {}
    #: options an unknown option looks like a misspelling of: the E200 "did you mean"
    #: says it, so a missing one of them is not reported a second time
    misspelt: set[str] = set()
    for arg in node.args:
        if arg.key in seen:
            diags.append(Diagnostic("E201", f"option `{arg.key}` given twice", arg.span))
            continue
        seen[arg.key] = arg.span
        option = by_name.get(arg.key)
        if option is None:
            misspelt.update(close_matches(arg.key, by_name))
            diags.append(
                Diagnostic(
                    "E200",
                    f"`{node.kind}` has no option `{arg.key}`",
                    arg.key_span,
                    hint=did_you_mean(arg.key, by_name) or _options_hint(node.kind, by_name),
                )
            )
            continue
        try:
            out[arg.key] = option.type.resolve(arg.value)
        except OptionError as e:
            if e.code == "E201" and getattr(e, "span", None) is None:
                e.message = f"`{arg.key}` {e.message}"
            diags.append(_option_error(e, arg.value_span))
    for option in spec.options:
        if option.name in out or option.name in seen or option.name in misspelt:
            continue
        if option.required:
            diags.append(_missing(node, option))
            continue
        default = option.default
        try:
            if default is not None:
                default = option.type.resolve(
                    Word(default) if isinstance(default, str) else default
                )
        except OptionError:  # a registry default that does not resolve is our bug
            raise
        out[option.name] = default
    for name in () if diags else spec.needs(out):
        if out.get(name) is None and name not in seen and name not in misspelt:
            diags.append(_missing(node, by_name[name]))
    if diags:
        return None, diags
    return out, diags


def _missing(node: Node, option) -> Diagnostic:
    return Diagnostic(
        "E201",
        f"`{node.kind}` is missing option `{option.name}`",
        node.span,
        hint=option.hint or f"add `{option.name}=...`",
    )


def _resolve_flow_value(table, value: Any, span: Span, what: str) -> tuple[Any, list]:
    try:
        return table.resolve(value), []
    except OptionError as e:
        if e.code == "E201" and not isinstance(value, (Word, Raw)):
            e.message = (
                f"{what} expects a word such as `{next(iter(table.words))}`, got {describe(value)}"
            )
        return None, [_option_error(e, span)]


def check_arguments(fg: FlowGraph) -> list[Diagnostic]:
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
        fg.latent_choice, d = _resolve_flow_value(LATENTS, fg.latent, fg.latent_span, "latent")
        diags.extend(d)
    else:
        fg.latent_choice = LATENTS.resolve(Word("normal"))
    if fg.dequantize is not None:
        fg.dequantize_choice, d = _resolve_flow_value(
            DEQUANTIZERS, fg.dequantize, fg.dequantize_span, "dequantize"
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
