"""The diagnostics reference (docs/diagnostics.md): every code of
:data:`flowspec.core.diagnostics.CODES` with its meaning, what usually causes it, and an
example spec together with what ``flowspec check`` reports for it.

The reports are not written here: they are produced by running the checker on each
example when the reference is generated, so the reference cannot drift from the
checker (``tests/test_reference.py`` keeps the committed file equal).  A code added to
``CODES`` without an entry below is still listed, with its one-line meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowspec.core.diagnostics import CODES, Code


@dataclass(frozen=True)
class Explanation:
    """What a code means in practice, and a spec that reports it."""

    text: str
    example: str = ""
    #: the statement limit the example is checked with (E205), or None for the default
    max_statements: int | None = None


def _flow(*body: str, shape: str = "[4]") -> str:
    lines = ["flow f {", f"    input x: {shape}", *(f"    {b}" for b in body), "    output x", "}"]
    return "\n".join(lines) + "\n"


EXPLANATIONS: dict[str, Explanation] = {
    "E100": Explanation(
        "The text is not a spec: an unknown statement, a missing `=` or bracket, a stray "
        "token, a keyword used as a name, or (in YAML) a tag such as `!!python/...`. The "
        "message says what was expected there, with a near keyword when there is one.",
        "flow f {\n    input x: [2]\n    x = linear(x)\n    ouput x\n}\n",
    ),
    "E200": Explanation(
        "A name that means nothing where it stands: a tensor never bound, a constant never "
        "defined with `let`, a block kind, net, option, activation, latent, requirement or "
        "other enum word that does not exist. A near name is suggested; `flowspec kinds` "
        "lists the block kinds and `flowspec explain KIND` a kind's options.",
        _flow("x = coupling.affine(x, net=mlp(hidden=[64]), flips=true)"),
    ),
    "E201": Explanation(
        "An argument a block, net or statement does not accept: a required option missing, "
        "an option given twice, a value of the wrong type (a float where an integer is "
        "needed), a value out of its range or over a size limit, the wrong number of "
        "tensors or targets, a division that is not exact.",
        _flow("x = coupling.spline(x, net=mlp(hidden=[64]), bins=0)"),
    ),
    "E202": Explanation(
        "A block's shape rule rejects its input: split sizes that do not add up, tensors "
        "that cannot be concatenated, a squeeze of an odd height, a mask on too few "
        "features, an image net or mask on a flat tensor. Shapes never include the batch "
        "axis.",
        _flow("a, b = split(x, sizes=[3, 3])", "x = concat(a, b)", shape="[5]"),
    ),
    "E203": Explanation(
        "The flow would not unroll to a finite graph of bounded size: a block that calls "
        "itself (directly or through others), or `repeat`s and block calls that expand to "
        "more than 10,000 blocks.",
        "block step(x) {\n    x = linear(x)\n    x = step(x)\n    return x\n}\n"
        + _flow("x = step(x)"),
    ),
    "E204": Explanation(
        "The program's structure is wrong: a flow whose first statement is not its one "
        "`input` or whose last is not its `output`, an `output` or `latent` inside a block, "
        "a block without `return`, no flow at all, or `--flow NAME` naming no flow.",
        "flow f {\n    latent normal\n    input x: [4]\n    x = linear(x)\n    output x\n}\n",
    ),
    "E205": Explanation(
        "The spec is over the size limits (1 MiB, 20,000 statements by default) and is "
        "refused before it is parsed. `--max-bytes N` and `--max-statements N` (or "
        "`max_bytes=`, `max_statements=`) change the limits; `0` turns one off. The example "
        "is checked with `--max-statements 3`.",
        _flow("x = linear(x)", "x = reverse(x)"),
        max_statements=3,
    ),
    "E300": Explanation(
        "A tensor is bound and never used: the information it holds is lost, so the flow "
        "is not a bijection. Pass it to a block or list it in `output`.",
        "flow f {\n    input x: [4]\n    x = linear(x)\n    a, b = split(x)\n    output a\n}\n",
    ),
    "E301": Explanation(
        "A tensor is consumed twice: the flow would duplicate information and could not be "
        "inverted. A coupling that only needs to read a tensor takes it as `cond=`; "
        "otherwise split it first.",
        "flow f {\n    input x: [4]\n    x = linear(x)\n    y = concat(x, x)\n    output y\n}\n",
    ),
    "E302": Explanation(
        "A block that cannot be inverted as configured (`leaky_relu(slope=0)`, "
        "`logit(alpha=0.5)`), or a `cond=` that depends on the tensor it conditions.",
        _flow("x = leaky_relu(x, slope=0)"),
    ),
    "E303": Explanation(
        "A residual block whose branch is not provably contractive: `lipschitz` of 1 or "
        "more, an activation with a Lipschitz constant over 1 (`gelu`, `swish`), or a net "
        "without a certified bound (`resnet`). Then y = x + g(x) may not be invertible.",
        _flow("x = residual(x, net=mlp(hidden=[64]), lipschitz=1.2)"),
    ),
    "E304": Explanation(
        "A flow's `context` (the y of p(x | y)) passed to a block as a tensor, or listed in "
        "`output`. A context conditions blocks through `cond=` and is never transformed or "
        "consumed: the module takes it as an argument, so it cannot also be a latent.",
        "flow f {\n    input x: [2]\n    context y: [1]\n"
        "    x = coupling.affine(x, cond=y, net=mlp(hidden=[64]))\n"
        "    x = concat(x, y)\n    output x\n}\n",
    ),
    "E400": Explanation(
        "`require lipschitz <= L` or `require inverse_lipschitz <= L` cannot be proven: "
        "some block has no static bound (a coupling's conditioner is unconstrained), or the "
        "bound proven from the blocks is larger than L. The message names the block.",
        "flow f {\n    input x: [4]\n    require lipschitz <= 10\n"
        "    x = coupling.affine(x, net=mlp(hidden=[64]))\n    x = reverse(x)\n"
        "    x = coupling.affine(x, net=mlp(hidden=[64]))\n    output x\n}\n",
    ),
    "E401": Explanation(
        "`require exact_logdet` with a block whose log-determinant is estimated "
        "(`residual` with `logdet=roulette` or `series`, `ode` with `trace=hutchinson`), or "
        "`require analytic_inverse` with a block inverted by iteration or integration.",
        "flow f {\n    input x: [4]\n    require exact_logdet\n"
        "    x = residual(x, net=mlp(hidden=[8], act=lipswish))\n    output x\n}\n",
    ),
    "E500": Explanation(
        "An `on DEVICE` that names no device, or, at `compile` time, a device the machine "
        "does not have, a module whose parameters and buffers (counted on PyTorch's `meta` "
        "device) exceed `max_params`, or one that cannot be allocated.",
        "flow f {\n    input x: [4]\n    on gpu {\n        x = linear(x)\n    }\n"
        "    output x\n}\n",
    ),
    "E501": Explanation(
        "The flow has more learned parameters than `max_params` (default 2,000,000,000; "
        "`flowspec check --max-params N`, `flowspec.compile(..., max_params=N)`, 0: no "
        "limit). Every block kind counts its parameters from its options and shapes, so this "
        "is known before anything is built or allocated; the error points at the statement "
        "contributing most (a `repeat`'s iterations add up) and labels the next largest. "
        "`flowspec summary` prints the count of a flow of any size.",
        "flow f {\n    input x: [1000000]\n    x = linear(x)\n    output x\n}\n",
    ),
    "W100": Explanation(
        "Some features are never changed by a block with a learned, non-volume-preserving "
        "or coupling transform: a coupling without a permutation after it leaves the "
        "conditioning half as it came. Permute between couplings or alternate `flip=true`.",
        _flow("x = coupling.affine(x, net=mlp(hidden=[64]))"),
    ),
    "W101": Explanation(
        "Two couplings in a row update the same features with nothing between that moves "
        "them: the second could have been folded into the first.",
        _flow(
            "x = linear(x)",
            "x = coupling.affine(x, net=mlp(hidden=[64]))",
            "x = coupling.affine(x, net=mlp(hidden=[64]))",
        ),
    ),
    "W102": Explanation(
        "A non-smooth activation (`relu`, `leaky_relu`) in the dynamics of an `ode` block: "
        "adaptive solvers take many small steps at its kinks. Use `tanh`, `softplus` or "
        "`elu`.",
        _flow("x = ode(x, net=mlp(hidden=[8], act=relu))", shape="[2]"),
    ),
    "W103": Explanation(
        "An option written that the configuration ignores: `steps` with an adaptive ODE "
        "solver, `rtol`/`atol` with a fixed-step one. A warning, so that switching solvers "
        "needs no other edit; a default is never reported.",
        _flow("x = ode(x, net=mlp(hidden=[8], act=tanh), solver=euler, rtol=1e-6)", shape="[2]"),
    ),
    "W104": Explanation(
        "An `mlp` conditioner on a [C, H, W] tensor flattens it, so the net ignores which "
        "pixels are neighbours; usually `net=conv(...)` is meant, or an explicit "
        "`flatten(x)` first when a dense net is.",
        _flow(
            "x = coupling.affine(x, net=mlp(hidden=[64]), mask=checkerboard)", shape="[2, 4, 4]"
        ),
    ),
    "W105": Explanation(
        "A `# flowspec: ignore[CODE, ...]` comment silences the warnings with those codes "
        "on its own line (in `.flow` and YAML comments). A code that does not exist, an "
        "error code (errors cannot be silenced: the spec is wrong) or a suppression "
        "without codes is reported at the code it names. W105 itself is reported after "
        "suppressions apply.",
        _flow(
            "x = linear(x)",
            "x = coupling.affine(x, net=mlp(hidden=[64]))",
            "x = coupling.affine(x, net=mlp(hidden=[64]))  # flowspec: ignore[W101, W011]",
        ),
    ),
}


def report(explanation: Explanation) -> str:
    """What ``flowspec check`` prints for the example (the checker runs here)."""
    from flowspec.core.diagnostics import render_text
    from flowspec.core.spans import Source
    from flowspec.driver import Compilation
    from flowspec.syntax.limits import MAX_BYTES, MAX_STATEMENTS, Limits

    limit = explanation.max_statements or MAX_STATEMENTS
    comp = Compilation(Source("example.flow", explanation.example), Limits.of(MAX_BYTES, limit))
    return render_text(comp.diagnostics, comp.sources).rstrip("\n")


def code_entry(code: Code, level: int = 2) -> str:
    """One code's section, as docs/diagnostics.md and ``flowspec explain CODE`` show it."""
    out = [f"{'#' * level} {code.code} `{code.slug}`", ""]
    out.append(f"**{code.severity.value}**: {code.description}.")
    explanation = EXPLANATIONS.get(code.code)
    if explanation is not None:
        out += ["", explanation.text]
        if explanation.example:
            out += ["", "```flow", explanation.example.rstrip("\n"), "```", ""]
            out += ["reports", "", "```text", report(explanation), "```"]
    return "\n".join(out) + "\n"


INTRO = """\
# Diagnostic codes

<!-- generated by `python -m flowspec.reference --write` from flowspec.core.diagnostics.CODES
and the examples in flowspec/reference/codes.py (the reports are the checker's own output);
tests/test_reference.py keeps this file equal to the generated text: do not edit it by hand -->

Every diagnostic `flowspec check` reports has a stable code, a severity, the file, line
and column (1-based; tabs expand to stop 4), the source line with the offending span
underlined, and a hint where one helps. Errors (`E…`) make `flowspec check` exit with 1
and `flowspec.compile` raise `SpecError`; warnings (`W…`) do neither unless `--strict`
is given. The same codes appear in the `json`, `sarif` and `junit` formats.
`flowspec explain CODE` prints one entry below. The language is described in
[language.md](language.md), the block kinds in [blocks.md](blocks.md).
"""


def diagnostics_markdown() -> str:
    """The whole of docs/diagnostics.md."""
    rows = ["| code | severity | slug | meaning |", "|---|---|---|---|"]
    rows += [
        f"| [{c.code}](#{c.code.lower()}-{c.slug}) | {c.severity.value} | `{c.slug}` | "
        f"{c.description} |"
        for c in CODES.values()
    ]
    parts = [INTRO, "\n".join(rows) + "\n", *(code_entry(c) for c in CODES.values())]
    return "\n".join(parts)
