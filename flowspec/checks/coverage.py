r"""Feature coverage (W100) and repeated couplings (W101).

Tracks, element by element, where each input feature goes: permutations move
features, elementwise blocks and couplings transform them in place, mixing blocks
(linear maps, residual, ODE, autoregressive) transform all of their input.

    >>> from flowspec.checks.examples import diagnose
    >>> diagnose("x = coupling.affine(x, net=mlp)\nx = coupling.affine(x, net=mlp)")
    W100 2:5 2 of the 4 features of `x` [4] are never transformed by a
        non-volume-preserving or coupling block (flat indices 0..1)
    W101 4:9 this coupling updates the same features as the coupling before it, with no
        permutation between
    >>> diagnose("x = ode(x, net=mlp(hidden=[8], act=relu))")
    W102 3:16 non-smooth activation `relu` inside an `ode` net: adaptive solvers take
        many small steps at its kinks
"""

from __future__ import annotations

from flowspec.core.diagnostics import Diagnostic, Label
from flowspec.ir.graph import FlowGraph, Node
from flowspec.kinds import REGISTRY
from flowspec.kinds.masks import numel

MIXED = -1
#: skip the element-level analysis for inputs larger than this (keeps `check` fast)
MAX_TRACKED_FEATURES = 1 << 16


def _ranges(indices: list[int]) -> str:
    parts, start, prev = [], None, None
    for i in sorted(indices):
        if start is None:
            start = prev = i
        elif i == prev + 1:
            prev = i
        else:
            parts.append(f"{start}" if start == prev else f"{start}..{prev}")
            start = prev = i
    if start is not None:
        parts.append(f"{start}" if start == prev else f"{start}..{prev}")
    text = ", ".join(parts[:6])
    return text + (", …" if len(parts) > 6 else "")


def check_coverage(fg: FlowGraph) -> list[Diagnostic]:
    """W100 and W101, when every block's shapes are known."""
    if fg.input is None or fg.input_shape is None:
        return []
    blocks = fg.blocks()
    if any(n.options is None or n.out_shapes is None for n in blocks):
        return []
    if numel(fg.input_shape) > MAX_TRACKED_FEATURES:
        return []
    origin: dict[str, list[int]] = {fg.input: list(range(numel(fg.input_shape)))}
    transformed = [False] * numel(fg.input_shape)
    #: per tensor: (the coupling that last transformed it in place, its positions)
    last_coupling: dict[str, tuple[Node, frozenset[int]] | None] = {fg.input: None}
    diags: list[Diagnostic] = []

    def touch(origins: list[int], positions) -> None:
        for p in positions:
            o = origins[p]
            if o != MIXED:
                transformed[o] = True

    for node in blocks:
        spec = REGISTRY[node.kind]
        ins = [origin[t] for t in node.inputs]
        if spec.features == "permutation":
            maps = spec.feature_map(node.options, node.in_shapes[: len(node.inputs)])
            for tid, fmap in zip(node.outputs, maps):
                origin[tid] = [ins[src][i] for src, i in fmap]
                last_coupling[tid] = None
        elif spec.features == "elementwise":
            touch(ins[0], range(len(ins[0])))
            origin[node.outputs[0]] = ins[0]
            # elementwise maps do not reorder: a coupling before them still "owns" x
            last_coupling[node.outputs[0]] = last_coupling.get(node.inputs[0])
        elif spec.features == "coupling":
            positions = frozenset(spec.transformed(node.options, node.in_shapes[0]))
            touch(ins[0], positions)
            origin[node.outputs[0]] = ins[0]
            before = last_coupling.get(node.inputs[0])
            if before is not None and before[1] == positions:
                diags.append(
                    Diagnostic(
                        "W101",
                        "this coupling updates the same features as the coupling before "
                        "it, with no permutation between",
                        node.span,
                        hint="add `x = reverse(x)` or `shuffle`, or use `flip=true`",
                        labels=(Label(before[0].span, "the previous coupling"),),
                    )
                )
            last_coupling[node.outputs[0]] = (node, positions)
        else:  # mixing
            for o in ins:
                touch(o, range(len(o)))
            for tid, shape in zip(node.outputs, node.out_shapes):
                origin[tid] = [MIXED] * numel(shape)
                last_coupling[tid] = None

    never = [i for i, t in enumerate(transformed) if not t]
    if never:
        input_node = next(n for n in fg.nodes() if n.outputs and n.outputs[0] == fg.input)
        shape = list(fg.input_shape)
        diags.append(
            Diagnostic(
                "W100",
                f"{len(never)} of the {len(transformed)} features of `"
                f"{fg.tensors[fg.input].name}` {shape} are never transformed by a "
                f"non-volume-preserving or coupling block (flat indices {_ranges(never)})",
                input_node.span,
                hint="permute between couplings (reverse, shuffle) or alternate flip=true",
            )
        )
    return diags


def check_ode_smoothness(fg: FlowGraph) -> list[Diagnostic]:
    """W102: non-smooth activations in ``ode`` nets make the dynamics hard to integrate."""
    from flowspec.kinds import ACTIVATIONS

    diags = []
    for node in fg.blocks():
        if node.kind != "ode" or node.options is None:
            continue
        act = node.options["net"]["act"].kind
        if not ACTIVATIONS[act][1]:
            diags.append(
                Diagnostic(
                    "W102",
                    f"non-smooth activation `{act}` inside an `ode` net: adaptive solvers "
                    "take many small steps at its kinks",
                    node.arg_span("net"),
                    hint="use a smooth activation such as tanh, softplus or elu",
                )
            )
    return diags
