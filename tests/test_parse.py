"""The grammar and the AST: every construct of LANGUAGE.md §1–§5 parses to the AST it
should, the language reference's examples check clean, and the AST of every spec in
specs/ matches its golden snapshot (``--update-golden`` or ``FLOWSPEC_UPDATE_GOLDEN=1``
rewrites the snapshots).
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest
from conftest import SPECS
from harness import LANGUAGE_MD_REALNVP

from flowspec.core.spans import Source
from flowspec.driver import Compilation
from flowspec.ir.graph import FlowGraph
from flowspec.kinds import REGISTRY
from flowspec.kinds.options import Choice
from flowspec.syntax import ast, dsl
from flowspec.syntax.ast import Arg, BinOp, Call, ListValue, Name, Neg, Ref

GOLDEN_AST = Path(__file__).parent / "golden" / "ast"


def parse(text: str) -> ast.Program:
    program, diags = dsl.parse(Source("t.flow", text))
    assert diags == [], diags
    assert program is not None
    return program


def flow_body(text: str) -> tuple:
    """The statements of the only flow of ``text``."""
    (flow,) = parse(text).flows
    return flow.body


def body_of(*lines: str) -> tuple:
    """Statements of a flow ``f`` whose body is ``lines`` (without input and output)."""
    text = "flow f {\n    input x: [4]\n" + "".join(f"    {s}\n" for s in lines) + "}\n"
    return flow_body(text)[1:]


def checked(text: str, allow: tuple[str, ...] = ()) -> tuple[Compilation, FlowGraph]:
    """Compile ``text`` through the passes; assert it is clean but for the codes in
    ``allow``; return its only graph."""
    comp = Compilation(Source("t.flow", text))
    diags = [d for d in comp.diagnostics if d.code not in allow]
    assert diags == [], [(d.code, d.message) for d in diags]
    (fg,) = comp.lowered[0]
    return comp, fg


def first_value(text: str) -> ast.Value:
    """The value of ``let v = <text>``."""
    (stmt,) = body_of(f"let v = {text}")
    return stmt.value


def blocks_of(fg: FlowGraph, kind: str) -> list:
    return [n for n in fg.blocks() if n.kind == kind]


# ------------------------------------------------------------------- §1 lexical


def test_comments_full_line_trailing_and_at_the_end_of_the_file():
    program = parse(
        "# a header comment\n"
        "flow f {  # after the brace\n"
        "    # a whole line\n"
        "    input x: [2]  # trailing: [3] is not a shape here\n"
        "    output x  # the end\n"
        "}\n"
        "# a comment without a final newline"
    )
    (flow,) = program.flows
    assert [type(s).__name__ for s in flow.body] == ["InputStmt", "OutputStmt"]


def test_semicolons_end_statements_like_newlines():
    one_line = flow_body("flow f { input x: [2]; x = reverse(x); x = reverse(x); output x }")
    many = flow_body("flow f {\n input x: [2]\n x = reverse(x)\n x = reverse(x)\n output x\n}\n")
    assert one_line == many
    # stray and doubled separators are empty statements
    assert flow_body("flow f {;\n input x: [2];;\n\n output x;\n}") == flow_body(
        "flow f {\n input x: [2]\n output x\n}"
    )


def test_a_file_without_a_final_newline_and_with_crlf_line_ends():
    text = "flow f {\r\n    input x: [2]\r\n    x = reverse(x)\r\n    output x\r\n}"
    assert len(flow_body(text)) == 3
    checked(text.replace("reverse(x)", "linear(x)"))


def test_newlines_are_free_inside_parentheses_and_brackets():
    (stmt,) = body_of(
        "x = coupling.affine(",
        "    x,",
        "    net=mlp(",
        "        hidden=[",
        "            64,",
        "            64,",
        "        ],",
        "        act=relu,",
        "    ),",
        ")",
    )
    assert stmt == ast.Assign(
        (Name("x"),),
        Call(
            Name("coupling.affine"),
            (
                Arg(None, Ref("x")),
                Arg(
                    Name("net"),
                    Call(
                        Name("mlp"),
                        (
                            Arg(Name("hidden"), ListValue((ast.Int(64), ast.Int(64)))),
                            Arg(Name("act"), Ref("relu")),
                        ),
                    ),
                ),
            ),
        ),
    )


@pytest.mark.parametrize("name", ["x", "_x", "X1", "a_b_2", "x__", "flow_", "inputs", "asx"])
def test_names(name):
    (stmt,) = body_of(f"{name} = reverse(x)")
    assert stmt.targets == (Name(name),)


@pytest.mark.parametrize("kind", ["coupling.affine", "autoregressive.spline", "a.b.c", "a_1.b_2"])
def test_dotted_block_kinds_keep_their_dots(kind):
    (stmt,) = body_of(f"x = {kind}(x)")
    assert stmt.call.kind == Name(kind)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("16", ast.Int(16)),
        ("0", ast.Int(0)),
        ("0.97", ast.Float(0.97)),
        ("1e-5", ast.Float(1e-5)),
        ("2E3", ast.Float(2000.0)),
        ("1.5e+2", ast.Float(150.0)),
        (".5", ast.Float(0.5)),
        ("3.", ast.Float(3.0)),
        ("true", ast.Bool(True)),
        ("false", ast.Bool(False)),
        ('"cuda:0"', ast.String("cuda:0")),
        ('"a \\"quoted\\" word\\n"', ast.String('a "quoted" word\n')),
        ('""', ast.String("")),
        ("[64, 64]", ListValue((ast.Int(64), ast.Int(64)))),
        ("[]", ListValue(())),
        ("[1,]", ListValue((ast.Int(1),))),
        (
            "[[1, 2], [3]]",
            ListValue((ListValue((ast.Int(1), ast.Int(2))), ListValue((ast.Int(3),)))),
        ),
        (
            '[1, 0.5, true, "s", relu]',
            ListValue((ast.Int(1), ast.Float(0.5), ast.Bool(True), ast.String("s"), Ref("relu"))),
        ),
        ("relu", Ref("relu")),
    ],
)
def test_literals(text, value):
    assert first_value(text) == value


def test_integer_expressions_have_the_usual_precedence_and_associativity():
    I = ast.Int
    assert first_value("2 + 3 * 4") == BinOp("+", I(2), BinOp("*", I(3), I(4)))
    assert first_value("(2 + 3) * 4") == BinOp("*", BinOp("+", I(2), I(3)), I(4))
    assert first_value("8 - 2 - 1") == BinOp("-", BinOp("-", I(8), I(2)), I(1))
    assert first_value("8 / 4 % 3") == BinOp("%", BinOp("/", I(8), I(4)), I(3))
    assert first_value("-2 * -(1 + 1)") == BinOp("*", Neg(I(2)), Neg(BinOp("+", I(1), I(1))))
    assert first_value("+3") == I(3)
    assert first_value("n * 2 + i") == BinOp("+", BinOp("*", Ref("n"), I(2)), Ref("i"))


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("7", 7),
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("8 - 2 - 1", 5),
        ("12 / 4", 3),
        ("17 % 5", 2),
        ("-(3 - 5)", 2),
        ("2 * (3 + 1) % 5 + 10 / 2", 8),
        ("((((1))))", 1),
    ],
)
def test_integer_expressions_evaluate_over_literals(expr, value):
    _, fg = checked(f"flow f {{\n    input x: [{expr}, 2]\n    x = actnorm(x)\n    output x\n}}\n")
    assert fg.input_shape == (value, 2)


def test_integer_expressions_over_lets_and_repeat_indices():
    _, fg = checked(
        "flow f {\n"
        "    input x: [6]\n"
        "    let n = 2\n"
        "    let base = n * 10 + 1\n"
        "    repeat n + 1 as i {\n"
        "        repeat n as j {\n"
        "            x = shuffle(x, seed=base + i * n + j)\n"
        "        }\n"
        "        x = coupling.affine(x, net=mlp(hidden=[8 * (i + 1)]))\n"
        "    }\n"
        "    output x\n"
        "}\n"
    )
    seeds = [n.options["seed"] for n in blocks_of(fg, "shuffle")]
    assert seeds == [21, 22, 23, 24, 25, 26]
    hidden = [n.options["net"]["hidden"] for n in blocks_of(fg, "coupling.affine")]
    assert hidden == [[8], [16], [24]]


def test_float_arithmetic_in_options():
    _, fg = checked(
        "flow f {\n    input x: [4]\n    let c = 0.5\n"
        "    x = residual(x, net=mlp(hidden=[8], act=elu), lipschitz=c + 0.25 * 1.5, "
        "logdet=exact)\n    output x\n}\n"
    )
    assert blocks_of(fg, "residual")[0].options["lipschitz"] == pytest.approx(0.875)


# ----------------------------------------------------------------- §2 statements


def test_input_and_latent():
    for latent in ("normal", "logistic", "uniform", "normal()"):
        _, fg = checked(
            f"flow f {{\n    input x: [2]\n    latent {latent}\n"
            "    x = coupling.affine(x, net=mlp)\n    x = reverse(x)\n"
            "    x = coupling.affine(x, net=mlp)\n"
            "    output x\n}\n"
        )
        assert fg.latent_choice == Choice(latent.rstrip("()"))
    body = flow_body("flow f {\n input img: [3, 16, 16,]\n latent logistic\n output img\n}")
    assert body[0] == ast.InputStmt(Name("img"), (ast.Int(3), ast.Int(16), ast.Int(16)))
    assert body[1] == ast.LatentStmt(Ref("logistic"))


def test_latent_defaults_to_normal():
    _, fg = checked("flow f {\n    input x: [2]\n    x = linear(x)\n    output x\n}\n")
    assert fg.latent_choice == Choice("normal")


def test_let_binds_every_kind_of_value():
    _, fg = checked(
        "flow f {\n"
        "    input x: [4]\n"
        "    let width = 16\n"
        "    let widths = [width, width * 2]\n"
        "    let net = mlp(hidden=widths, act=tanh)\n"
        "    let clamp = softclamp\n"
        "    let flipped = true\n"
        '    let where = "cpu"\n'
        "    x = coupling.affine(x, net=net, scale=clamp, flip=flipped)\n"
        "    x = reverse(x)\n"
        "    x = coupling.affine(x, net=net, flip=flipped)\n"
        "    output x\n"
        "}\n"
    )
    first = blocks_of(fg, "coupling.affine")[0].options
    assert first["net"] == Choice("mlp", hidden=[16, 32], act=Choice("tanh"), init=Choice("zero"))
    assert first["scale"] == Choice("softclamp")
    assert first["flip"] is True


def test_assignment_with_several_targets_and_rebinding():
    (stmt, again) = body_of("a, b, c = split(x, sizes=[1, 1, 2])", "x = concat(a, b, c)")
    assert stmt.targets == (Name("a"), Name("b"), Name("c"))
    assert again.call.args[:3] == (Arg(None, Ref("a")), Arg(None, Ref("b")), Arg(None, Ref("c")))
    _, fg = checked(
        "flow f {\n    input x: [4]\n    a, b, c = split(x, sizes=[1, 1, 2])\n"
        "    x = concat(a, b, c)\n    x = coupling.affine(x, net=mlp)\n    x = reverse(x)\n"
        "    x = coupling.affine(x, net=mlp)\n    output x\n}\n"
    )
    (split,) = blocks_of(fg, "split")
    assert split.out_shapes == [(1,), (1,), (2,)]
    # each binding of `x` is a new tensor
    assert len([t for t in fg.tensors.values() if t.name == "x"]) == 5


def test_repeat_forms():
    (plain, indexed, nested, zero) = body_of(
        "repeat 3 { x = reverse(x) }",
        "repeat 2 as i {",
        "    x = shuffle(x, seed=i)",
        "}",
        "repeat 2 as i { repeat 2 as j { x = shuffle(x, seed=i * 2 + j) } }",
        "repeat 0 { x = reverse(x) }",
    )
    assert plain == ast.RepeatStmt(
        ast.Int(3),
        None,
        (ast.Assign((Name("x"),), Call(Name("reverse"), (Arg(None, Ref("x")),))),),
    )
    assert indexed.index == Name("i") and len(indexed.body) == 1
    assert nested.body[0].index == Name("j")
    assert zero.count == ast.Int(0)
    _, fg = checked(
        "flow f {\n    input x: [4]\n    repeat 3 { x = reverse(x) }\n"
        "    repeat 2 as i { x = shuffle(x, seed=i) }\n"
        "    repeat 0 { x = reverse(x) }\n"
        "    x = coupling.affine(x, net=mlp)\n    x = reverse(x)\n"
        "    x = coupling.affine(x, net=mlp)\n"
        "    output x\n}\n"
    )
    assert [n.kind for n in fg.blocks()] == ["reverse"] * 3 + ["shuffle"] * 2 + [
        "coupling.affine",
        "reverse",
        "coupling.affine",
    ]


@pytest.mark.parametrize(
    ("written", "device"),
    [
        ("cpu", "cpu"),
        ("cuda", "cuda"),
        ("cuda:1", "cuda:1"),
        ("cuda : 0", "cuda:0"),
        ('"cuda:1"', "cuda:1"),
        ('"cpu"', "cpu"),
        ("mps", "mps"),
        ("meta", "meta"),
    ],
)
def test_on_device_bare_and_quoted(written, device):
    (stmt,) = body_of(f"on {written} {{", "    x = actnorm(x)", "}")
    assert stmt.device == ast.String(device)
    _, fg = checked(
        f"flow f {{\n    input x: [4]\n    on {written} {{ x = actnorm(x) }}\n"
        "    x = coupling.affine(x, net=mlp)\n    x = reverse(x)\n"
        "    x = coupling.affine(x, net=mlp)\n"
        "    output x\n}\n"
    )
    assert blocks_of(fg, "actnorm")[0].device == device
    assert blocks_of(fg, "reverse")[0].device is None


def test_on_blocks_nest_and_the_innermost_wins():
    _, fg = checked(
        "flow f {\n    input x: [4]\n    on cpu {\n        x = actnorm(x)\n"
        '        on "cuda:1" { x = linear(x) }\n        x = affine(x)\n    }\n'
        "    output x\n}\n"
    )
    assert [(n.kind, n.device) for n in fg.blocks()] == [
        ("actnorm", "cpu"),
        ("linear", "cuda:1"),
        ("affine", "cpu"),
    ]


def test_dequantize():
    (stmt, bare) = body_of("dequantize uniform(bits=8)", "dequantize uniform")
    assert stmt == ast.DequantizeStmt(Call(Name("uniform"), (Arg(Name("bits"), ast.Int(8)),)))
    assert bare == ast.DequantizeStmt(Ref("uniform"))
    for form, bits in (("uniform(bits=5)", 5), ("uniform", 8)):
        _, fg = checked(
            f"flow f {{\n    input x: [4]\n    dequantize {form}\n    x = linear(x)\n"
            "    output x\n}\n"
        )
        assert fg.dequantize_choice == Choice("uniform", bits=bits)


def test_require_forms():
    stmts = body_of(
        "require invertible",
        "require exact_logdet",
        "require analytic_inverse",
        "require lipschitz <= 2.5",
        "require inverse_lipschitz <= 2 * 5",
    )
    assert stmts[0] == ast.RequireStmt(Name("invertible"), None)
    assert stmts[3] == ast.RequireStmt(Name("lipschitz"), ast.Float(2.5))
    assert stmts[4].bound == BinOp("*", ast.Int(2), ast.Int(5))
    _, fg = checked(
        "flow f {\n    input x: [4]\n    require invertible\n    require exact_logdet\n"
        "    require analytic_inverse\n    require lipschitz <= 1\n"
        "    require inverse_lipschitz <= 2 * 5\n"
        "    x = reverse(x)\n    x = leaky_relu(x, slope=0.5)\n    output x\n}\n"
    )
    assert [(r.property, r.bound) for r in fg.requirements] == [
        ("invertible", None),
        ("exact_logdet", None),
        ("analytic_inverse", None),
        ("lipschitz", 1),
        ("inverse_lipschitz", 10),
    ]


def test_output_several_tensors():
    (stmt,) = body_of("a, b = split(x)", "output a, b")[1:]
    assert stmt == ast.OutputStmt((Name("a"), Name("b")))
    _, fg = checked(
        "flow f {\n    input x: [4, 2, 2]\n"
        "    x = coupling.affine(x, net=conv(hidden=8), mask=checkerboard)\n"
        "    x = coupling.affine(x, net=conv(hidden=8), mask=checkerboard, flip=true)\n"
        "    a, b = split(x)\n    output a, b\n}\n"
    )
    assert [fg.tensors[t].shape for t in fg.outputs] == [(2, 2, 2), (2, 2, 2)]


def test_top_level_blocks_with_defaults_several_returns_and_their_own_scope():
    text = (
        "flow f {\n"
        "    input x: [8]\n"
        "    let hidden = 99  # not seen inside the block: blocks have their own scope\n"
        "    a, b = halves(x)\n"
        "    a, b = step(a, b)\n"
        "    a, b = step(a, b, hidden=16, act=tanh)\n"
        "    x = concat(a, b)\n"
        "    output x\n"
        "}\n"
        "\n"
        "block step(a, b, hidden=32, act=relu) {\n"
        "    b = autoregressive.affine(b, hidden=[hidden], act=act, cond=a)\n"
        "    a = autoregressive.affine(a, hidden=[hidden], act=act, cond=b)\n"
        "    return a, b\n"
        "}\n"
        "block halves(x) { a, b = split(x); return a, b }\n"
    )
    program = parse(text)
    step = program.blocks[0]
    assert step.name == Name("step")
    assert step.params == (
        ast.Param(Name("a"), None),
        ast.Param(Name("b"), None),
        ast.Param(Name("hidden"), ast.Int(32)),
        ast.Param(Name("act"), Ref("relu")),
    )
    assert step.body[-1] == ast.ReturnStmt((Name("a"), Name("b")))
    _, fg = checked(text)
    nets = blocks_of(fg, "autoregressive.affine")
    assert [(n.options["hidden"], n.options["act"].kind) for n in nets] == [
        ([32], "relu"),
        ([32], "relu"),
        ([16], "tanh"),
        ([16], "tanh"),
    ]
    # each node remembers the block call it came from
    assert all(len(n.expanded_from) == 1 for n in nets)


def test_blocks_calling_blocks():
    _, fg = checked(
        "block inner(x, k=1) {\n    x = shuffle(x, seed=k)\n    return x\n}\n"
        "block outer(x, k=1) {\n    x = inner(x, k=k * 10)\n"
        "    x = actnorm(x)\n    return x\n}\n"
        "flow f {\n    input x: [4]\n    repeat 2 as i { x = outer(x, k=i + 1) }\n"
        "    output x\n}\n"
    )
    assert [n.options["seed"] for n in blocks_of(fg, "shuffle")] == [10, 20]
    assert all(len(n.expanded_from) == 2 for n in blocks_of(fg, "shuffle"))


def test_net_expressions():
    _, fg = checked(
        "flow f {\n    input x: [4, 4, 4]\n"
        "    x = coupling.affine(x, net=conv(hidden=16, kernel=3, depth=1, act=elu), "
        "mask=checkerboard)\n"
        "    x = coupling.additive(x, net=resnet(hidden=8, blocks=1), mask=channel)\n"
        "    x = coupling.spline(x, net=mlp(hidden=[8, 8], act=gelu, init=default), "
        "mask=checkerboard, flip=true)\n"
        "    output x\n}\n",
        allow=("W104",),  # the mlp flattens the [4, 4, 4] tensor: not what this tests
    )
    nets = [n.options["net"] for n in fg.blocks()]
    assert nets[0] == Choice(
        "conv", hidden=16, kernel=3, depth=1, act=Choice("elu"), init=Choice("zero")
    )
    assert nets[1] == Choice("resnet", hidden=8, blocks=1, act=Choice("relu"), init=Choice("zero"))
    assert nets[2]["init"] == Choice("default")


def test_nested_option_values():
    (stmt,) = body_of("x = residual(x, logdet=roulette(p=0.5), inverse=fixedpoint(tol=1e-6))")
    assert stmt.call.args[1] == Arg(
        Name("logdet"), Call(Name("roulette"), (Arg(Name("p"), ast.Float(0.5)),))
    )
    _, fg = checked(
        "flow f {\n    input x: [4]\n"
        "    x = residual(x, net=mlp(hidden=[8], act=lipswish), logdet=roulette(p=0.25), "
        "trace=hutchinson(samples=2, noise=gaussian), grad=neumann, "
        "inverse=fixedpoint(tol=1e-8, max_iter=50))\n"
        "    x = residual(x, net=mlp(hidden=[8], act=elu), logdet=series(terms=3))\n"
        "    x = autoregressive.affine(x, hidden=[8], order=random(seed=3))\n"
        "    x = autoregressive.affine(x, hidden=[8], order=random)\n"
        "    x = ode(x, net=mlp(hidden=[8], act=tanh), trace=exact, solver=rk4)\n"
        "    output x\n}\n"
    )
    res, res2, ar, ar2, ode = fg.blocks()
    assert res.options["logdet"] == Choice("roulette", p=0.25, exact_terms=0)
    assert res.options["trace"] == Choice("hutchinson", samples=2, noise=Choice("gaussian"))
    assert res.options["inverse"] == Choice("fixedpoint", tol=1e-8, max_iter=50)
    assert res2.options["logdet"] == Choice("series", terms=3)
    assert ar.options["order"] == Choice("random", seed=3)
    assert ar2.options["order"] == Choice("random", seed=0)
    assert ode.options["trace"] == Choice("exact")


def test_cond_reads_a_tensor_without_consuming_it():
    _, fg = checked(
        "flow f {\n    input x: [6]\n    a, b = split(x, sizes=[2, 4])\n"
        "    b = coupling.affine(b, net=mlp, cond=a)\n    b = reverse(b)\n"
        "    b = coupling.affine(b, net=mlp, cond=a)\n"
        "    b = autoregressive.affine(b, hidden=[8], cond=a)\n"
        "    a = actnorm(a)\n    output a, b\n}\n"
    )
    a0 = next(t for t in fg.tensors.values() if t.name == "a")
    uses = fg.uses[a0.id]
    assert [u.read_only for u in uses] == [True, True, True, False]


# ------------------------------------------------------------ the reference's examples


LANGUAGE_MD_GLOW_STEP = """\
block glow_step(x, hidden=512) {
    x = actnorm(x)
    x = invconv(x)
    x = coupling.affine(x, net=conv(hidden=hidden))
    return x
}
"""

#: each row of LANGUAGE.md §3 and the forms of §4, as written there (defaults spelt out)
LANGUAGE_MD_BLOCKS = {
    "split": ("[6]", "a, b, c = split(x, sizes=[1, 2, 3], dim=0)\n    x = concat(a, b, c)"),
    "split-halves": ("[6]", "a, b = split(x)\n    x = concat(a, b, dim=0)"),
    "squeeze": ("[2, 4, 4]", "x = squeeze(x, factor=2)\n    x = unsqueeze(x, factor=2)"),
    "flatten": ("[2, 2, 2]", "x = flatten(x)\n    x = reshape(x, shape=[2, 4])"),
    "reverse": ("[4]", "x = reverse(x)"),
    "shuffle": ("[4]", "x = shuffle(x, seed=0)"),
    "permute": ("[4]", "x = permute(x, order=[3, 1, 0, 2])"),
    "additive": ("[4]", "x = coupling.additive(x, net=mlp(hidden=[8]), mask=half)"),
    "affine": ("[4]", "x = coupling.affine(x, net=mlp(hidden=[8]), mask=half, scale=softclamp)"),
    "affine-exp": ("[4]", "x = coupling.affine(x, net=mlp(hidden=[8]), scale=exp)"),
    "affine-sigmoid": (
        "[4]",
        "x = coupling.affine(x, net=mlp, scale=sigmoid, mask=alternate, flip=true)",
    ),
    "spline": ("[4]", "x = coupling.spline(x, net=mlp(hidden=[8]), mask=half, bins=8, bound=3.0)"),
    "checkerboard": ("[2, 4, 4]", "x = coupling.affine(x, net=conv(hidden=8), mask=checkerboard)"),
    "channel": ("[2, 4, 4]", "x = coupling.affine(x, net=conv(hidden=8), mask=channel)"),
    "actnorm": ("[4]", "x = actnorm(x)"),
    "batchnorm": ("[4]", "x = batchnorm(x, momentum=0.1, eps=1e-5)"),
    "linear": ("[4]", "x = linear(x, lu=true)"),
    "invconv": ("[3, 2, 2]", "x = invconv(x, lu=true)"),
    "elementwise-affine": ("[4]", "x = affine(x)"),
    "elementwise": (
        "[4]",
        "x = sigmoid(x)\n    x = logit(x, alpha=0.05)\n    x = leaky_relu(x, slope=0.01)",
    ),
    "planar": ("[4]", "x = planar(x, act=tanh)\n    x = radial(x)"),
    "maf": (
        "[4]",
        "x = autoregressive.affine(x, hidden=[64, 64], act=relu, order=natural, iaf=false)",
    ),
    "maf-random": ("[4]", "x = autoregressive.affine(x, order=random(seed=0), iaf=true)"),
    "nsf-ar": (
        "[4]",
        "x = autoregressive.spline(x, hidden=[64, 64], bins=8, bound=3.0, order=natural, "
        "iaf=false)",
    ),
    "residual": (
        "[4]",
        "x = residual(x, net=mlp(hidden=[8], act=lipswish), lipschitz=0.97, logdet=roulette, "
        "inverse=fixedpoint)",
    ),
    "residual-exact": ("[4]", "x = residual(x, net=mlp(hidden=[8], act=elu), logdet=exact)"),
    "residual-series": (
        "[4]",
        "x = residual(x, net=mlp(hidden=[8], act=tanh), logdet=series(terms=4), "
        "trace=hutchinson(samples=1, noise=rademacher), grad=neumann, "
        "inverse=fixedpoint(tol=1e-6, max_iter=200), power_iters=3)",
    ),
    "ode": (
        "[4]",
        "x = ode(x, net=mlp(hidden=[8], act=softplus), t=1.0, solver=dopri5, rtol=1e-5, "
        "atol=1e-5, trace=hutchinson, adjoint=true)",
    ),
    "ode-exact": ("[4]", "x = ode(x, net=mlp(hidden=[8], act=tanh), solver=euler, trace=exact)"),
    # ours, beyond §3 (README, "Language decisions"): NICE's scaling, Glow's priors
    "scale": ("[4]", "x = scale(x)"),
    "gaussianize": ("[4]", "x = gaussianize(x)"),
    "gaussianize-cond": (
        "[4]",
        "a, b = split(x)\n    a = gaussianize(a, cond=b, net=mlp(hidden=[8]))\n"
        "    x = concat(a, b)",
    ),
}


def test_the_language_reference_real_nvp_checks_clean():
    _, fg = checked(LANGUAGE_MD_REALNVP)
    assert [n.kind for n in fg.blocks()] == ["coupling.affine", "reverse"] * 8


def test_the_language_reference_glow_step_checks_clean():
    _, fg = checked(
        LANGUAGE_MD_GLOW_STEP + "flow glow {\n    input x: [3, 8, 8]\n    x = squeeze(x)\n"
        "    repeat 2 { x = glow_step(x) }\n    output x\n}\n"
    )
    step = ["actnorm", "invconv", "coupling.affine"]
    assert [n.kind for n in fg.blocks()] == ["squeeze", *step, *step]
    assert blocks_of(fg, "coupling.affine")[0].options["net"]["hidden"] == 512


@pytest.mark.parametrize("case", sorted(LANGUAGE_MD_BLOCKS))
def test_the_language_reference_block_table_checks_clean(case):
    shape, lines = LANGUAGE_MD_BLOCKS[case]
    text = f"flow f {{\n    input x: {shape}\n    {lines}\n    output x\n}}\n"
    comp = Compilation(Source("t.flow", text))
    # a lone block may leave features untransformed (W100); nothing else may be reported
    assert [d.code for d in comp.diagnostics if d.code != "W100"] == []


def test_every_block_kind_appears_in_the_reference_table():
    text = "\n".join(lines for _, lines in LANGUAGE_MD_BLOCKS.values())
    missing = [k for k in REGISTRY if f"{k}(" not in text]
    assert missing == []


# ----------------------------------------------------------------------- spans


def _walk(node):
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, tuple):
            stack.extend(n)
        elif is_dataclass(n):
            yield n
            stack.extend(getattr(n, f.name) for f in fields(n) if f.name != "span")


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_ast_node_has_a_span_inside_the_file_and_names_cover_their_text(path):
    text = path.read_text()
    program, _ = dsl.parse(Source(str(path), text))
    for node in _walk(program):
        span = node.span
        assert span.file == str(path)
        assert 0 <= span.start <= span.end <= len(text), node
        assert (span.line, span.column) < (span.end_line, span.end_column) or isinstance(
            node, ast.Program
        ), node
        if isinstance(node, Name) and "." not in node.id:
            assert text[span.start : span.end] == node.id
        if isinstance(node, Ref):
            assert text[span.start : span.end] == node.name
        if isinstance(node, ast.Call):
            assert text[span.start : span.end].startswith(node.kind.id.split(".")[0])
            assert text[span.end - 1] == ")"


def test_spans_are_one_based_with_an_exclusive_end_column():
    (stmt,) = body_of("x = coupling.affine(x)")
    span = stmt.call.kind.span
    assert (span.line, span.column, span.end_line, span.end_column) == (3, 9, 3, 24)


# --------------------------------------------------------------- golden snapshots


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_ast_matches_its_golden_snapshot(path, update_golden):
    program, diags = dsl.parse(Source(str(path), path.read_text()))
    assert diags == []
    dumped = ast.dump(program) + "\n"
    golden = GOLDEN_AST / f"{path.stem}.txt"
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(dumped)
    assert golden.exists(), f"no snapshot {golden}; run with FLOWSPEC_UPDATE_GOLDEN=1"
    assert dumped == golden.read_text(), (
        f"the AST of {path.name} changed; if that is intended, rerun with "
        "FLOWSPEC_UPDATE_GOLDEN=1 (or --update-golden) and review the diff"
    )


def test_every_golden_snapshot_has_a_spec():
    stale = {p.stem for p in GOLDEN_AST.glob("*.txt")} - {p.stem for p in SPECS}
    assert stale == set()
