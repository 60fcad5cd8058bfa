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
from flowspec.ir.resolved import Resolved, ResolvedFlow
from flowspec.kinds import REGISTRY
from flowspec.kinds.masks import numel

MIXED = -1
#: skip the element-level analysis for inputs larger than this (keeps `check` fast)
MAX_TRACKED_FEATURES = 1 << 16


def _ranges(indices: list[int]) -> str:
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    parts = [f"{r[0]}" if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in runs]
    text = ", ".join(parts[:6])
    return text + (", …" if len(parts) > 6 else "")


def check_coverage(rf: ResolvedFlow) -> list[Diagnostic]:
    """W100 and W101, when every block's shapes are known."""
    fg = rf.graph
    if fg.input is None or fg.input_shape is None or not rf.complete:
        return []
    if numel(fg.input_shape) > MAX_TRACKED_FEATURES:
        return []
    origin: dict[str, list[int]] = {fg.input: list(range(numel(fg.input_shape)))}
    transformed = [False] * numel(fg.input_shape)
    #: per tensor: (the coupling that last transformed it in place, its positions)
    last_coupling: dict[str, tuple[Resolved, frozenset[int]] | None] = {fg.input: None}
    diags: list[Diagnostic] = []

    def touch(origins: list[int], positions) -> None:
        for p in positions:
            o = origins[p]
            if o != MIXED:
                transformed[o] = True

    for node in rf.blocks:
        spec = REGISTRY[node.kind]
        ins = [origin[t] for t in node.inputs]
        if spec.features == "permutation":
            assert spec.feature_map is not None  # a permutation says where features go
            maps = spec.feature_map(node.options, node.consumed_shapes)
            for tid, fmap in zip(node.outputs, maps):
                origin[tid] = [ins[src][i] for src, i in fmap]
                last_coupling[tid] = None
        elif spec.features == "elementwise":
            touch(ins[0], range(len(ins[0])))
            origin[node.outputs[0]] = ins[0]
            # elementwise maps do not reorder: a coupling before them still "owns" x
            last_coupling[node.outputs[0]] = last_coupling.get(node.inputs[0])
        elif spec.features == "coupling":
            assert spec.transformed is not None  # a coupling says what it transforms
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
        dims = list(fg.input_shape)
        diags.append(
            Diagnostic(
                "W100",
                f"{len(never)} of the {len(transformed)} features of `"
                f"{fg.tensors[fg.input].name}` {dims} are never transformed by a "
                f"non-volume-preserving or coupling block (flat indices {_ranges(never)})",
                input_node.span,
                hint="permute between couplings (reverse, shuffle) or alternate flip=true",
            )
        )
    return diags


def check_ode_smoothness(rf: ResolvedFlow) -> list[Diagnostic]:
    """W102: non-smooth activations in ``ode`` nets make the dynamics hard to integrate."""
    from flowspec.kinds import ACTIVATIONS

    diags = []
    for node in rf.configured:
        if node.kind != "ode":
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
