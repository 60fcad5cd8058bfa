"""``flowspec fmt``: the canonical layout is idempotent, keeps the meaning (the AST,
spans aside) and keeps every comment, on every spec, on hand-written samples and on
generated programs (hypothesis); ``--check`` exits 1 with a diff, for CI.

The program strategy here is shared with ``test_convert.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import SPECS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowspec.core.spans import Source
from flowspec.kinds import REGISTRY
from flowspec.kinds.options import Choice
from flowspec.kinds.words import REQUIREMENTS
from flowspec.syntax import ast, dsl, lexer
from flowspec.syntax.dsl import KEYWORDS
from flowspec.syntax.fmt import WIDTH, float_text, format_program, format_source


def parse(text: str, path: str = "t.flow") -> ast.Program:
    program, diags = dsl.parse(Source(path, text))
    assert diags == [], [(d.code, d.line, d.column, d.message) for d in diags]
    return program


def fmt(text: str) -> str:
    out, diags = format_source(Source("t.flow", text))
    assert diags == [], diags
    return out


def comments(text: str) -> list[str]:
    """The comments of ``.flow`` text, in order (strings skipped)."""
    return [
        m[0].rstrip()
        for m in re.finditer(r'"(?:[^"\\\n]|\\.)*"|#[^\n]*', text)
        if m[0].startswith("#")
    ]


def assert_canonical(text: str) -> str:
    """fmt keeps the AST and the comments, and is idempotent; returns the output."""
    out = fmt(text)
    assert parse(out) == parse(text)
    assert comments(out) == comments(text)
    assert fmt(out) == out
    return out


# ------------------------------------------------------------------- every spec


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_spec_formats_idempotently_keeping_its_ast_and_comments(path: Path):
    out = assert_canonical(path.read_text())
    assert all(len(line) <= WIDTH for line in out.splitlines())


# --------------------------------------------------------------------- layout


def test_canonical_layout_spacing_and_indentation():
    text = (
        "flow   f{input x:[2,3]\n"
        "latent   normal;let n=2*( 3+1 )\n"
        "repeat n as i{x=shuffle( x ,seed = i)}\n"
        '   on "cuda:1" { x=reverse(x) }\n'
        "require lipschitz<=2.0\n"
        "output x}\n"
    )
    assert assert_canonical(text) == (
        "flow f {\n"
        "    input x: [2, 3]\n"
        "    latent normal\n"
        "    let n = 2 * (3 + 1)\n"
        "    repeat n as i {\n"
        "        x = shuffle(x, seed=i)\n"
        "    }\n"
        "    on cuda:1 {\n"
        "        x = reverse(x)\n"
        "    }\n"
        "    require lipschitz <= 2.0\n"
        "    output x\n"
        "}\n"
    )


def test_one_blank_line_between_top_level_items_and_kept_blank_lines_collapse():
    text = (
        "block b(x) {\n\n    x = reverse(x)\n    return x\n\n}\n\n\n\n"
        "flow f {\n    input x: [2]\n\n\n\n    x = b(x)\n    x = reverse(x)\n    output x\n}"
    )
    assert assert_canonical(text) == (
        "block b(x) {\n    x = reverse(x)\n    return x\n}\n\n"
        "flow f {\n    input x: [2]\n\n    x = b(x)\n    x = reverse(x)\n    output x\n}\n"
    )


def test_long_calls_wrap_one_argument_per_line_outermost_first():
    call = (
        "x = residual(x, net=mlp(hidden=[32, 32], act=lipswish), lipschitz=0.97, "
        "logdet=roulette(p=0.5), trace=hutchinson(samples=1, noise=gaussian), grad=neumann)"
    )
    out = assert_canonical(f"flow f {{\n    input x: [4]\n    {call}\n    output x\n}}\n")
    assert out == (
        "flow f {\n"
        "    input x: [4]\n"
        "    x = residual(\n"
        "        x,\n"
        "        net=mlp(hidden=[32, 32], act=lipswish),\n"
        "        lipschitz=0.97,\n"
        "        logdet=roulette(p=0.5),\n"
        "        trace=hutchinson(samples=1, noise=gaussian),\n"
        "        grad=neumann,\n"
        "    )\n"
        "    output x\n"
        "}\n"
    )


def test_a_wrapped_call_that_fits_again_is_joined():
    text = "flow f {\n input x: [2]\n x = shuffle(\n  x,\n  seed=1,\n )\n output x\n}\n"
    assert "x = shuffle(x, seed=1)" in assert_canonical(text)


def test_long_items_inside_a_wrapped_call_wrap_in_turn():
    hidden = ", ".join(["1024"] * 20)
    out = assert_canonical(
        f"flow f {{\n input x: [4]\n x = coupling.affine(x, net=mlp(hidden=[{hidden}]))\n"
        " output x\n}\n"
    )
    assert "        net=mlp(\n            hidden=[\n                1024,\n" in out
    assert all(len(line) <= WIDTH for line in out.splitlines())


def test_long_block_parameter_lists_and_shapes_wrap():
    params = ", ".join(f"option_number_{i}={i}" for i in range(8))
    dims = ", ".join(["123456789"] * 12)
    out = assert_canonical(
        f"block b(x, {params}) {{\n return x\n}}\nflow f {{\n input x: [{dims}]\n output x\n}}"
    )
    assert out.startswith("block b(\n    x,\n    option_number_0=0,\n")
    assert "\n) {\n    return x\n}\n" in out
    assert "    input x: [\n        123456789,\n" in out


@pytest.mark.parametrize(
    "written, canonical",
    [
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("(a + b) * c", "(a + b) * c"),
        ("a + b * c", "a + b * c"),
        ("a * (b % c)", "a * (b % c)"),
        ("-(a + b)", "-(a + b)"),
        ("- -1", "--1"),
        ("-a * b", "-a * b"),
        ("a - -b", "a - -b"),
        ("+3", "3"),
        ("((4))", "4"),
        ("1E-05", "1e-5"),
        ("0.970", "0.97"),
        ("1.5e+20", "1.5e20"),
        ("2e0", "2.0"),
        ('"a\\"b\\\\c"', '"a\\"b\\\\c"'),
        ("[1,2 , [ 3 ]]", "[1, 2, [3]]"),
        ("mlp( hidden = [64] , act=relu )", "mlp(hidden=[64], act=relu)"),
    ],
)
def test_values_print_in_their_canonical_form(written, canonical):
    out = assert_canonical(f"flow f {{\n    let v = {written}\n}}\n")
    assert out == f"flow f {{\n    let v = {canonical}\n}}\n"


@pytest.mark.parametrize("value", [1e-5, 0.97, 2.0, 1e16, 1.5e-300, 5e-324, 123456.789, 1e22])
def test_float_text_reads_back_exactly(value):
    assert float(float_text(value)) == value
    assert lexer.FLOAT.match(float_text(value))


@pytest.mark.parametrize(
    "written, canonical",
    [('"cuda:1"', "cuda:1"), ("cpu", "cpu"), ('"my device"', '"my device"'), ('"on"', '"on"')],
)
def test_devices_are_bare_when_they_can_be(written, canonical):
    out = assert_canonical(f"flow f {{\n    on {written} {{\n    }}\n}}\n")
    assert out == f"flow f {{\n    on {canonical} {{}}\n}}\n"


# ------------------------------------------------------------------- comments

COMMENTED = """\
# top comment

# second top
block glow_step(x, hidden=32) {   # header of block
    x = actnorm(x)
    # lead of invconv
    x = invconv(x)  # trailing invconv


    x = coupling.affine(x,  # after x
        # before net
        net=conv(hidden=hidden,   # inner
          kernel=3), mask=channel,
        scale=sigmoid  # after scale
        # dangling in call
    )  # after call
    return x
    # dangling in block
}  # after block
flow f { input x: [2, 3]; let n = 2 + 3  # after let
  repeat n as i {} # after repeat
  on "cuda:1" {
  # only a comment
  }
  x = glow_step(x, hidden=[1, 2,
     # in list
     3])
  output x
}


# end comment
"""

COMMENTED_FORMATTED = """\
# top comment

# second top
block glow_step(x, hidden=32) {  # header of block
    x = actnorm(x)
    # lead of invconv
    x = invconv(x)  # trailing invconv

    x = coupling.affine(
        x,  # after x
        # before net
        net=conv(
            hidden=hidden,  # inner
            kernel=3,
        ),
        mask=channel,
        scale=sigmoid,  # after scale
        # dangling in call
    )  # after call
    return x
    # dangling in block
}  # after block

flow f {
    input x: [2, 3]
    let n = 2 + 3  # after let
    repeat n as i {}  # after repeat
    on cuda:1 {
        # only a comment
    }
    x = glow_step(
        x,
        hidden=[
            1,
            2,
            # in list
            3,
        ],
    )
    output x
}

# end comment
"""


def test_comments_are_kept_where_they_belong():
    assert assert_canonical(COMMENTED) == COMMENTED_FORMATTED


def test_comments_inside_strings_are_not_comments():
    text = 'flow f {\n    on "a#b" {}  # real\n}\n'
    assert assert_canonical(text) == 'flow f {\n    on "a#b" {}  # real\n}\n'


def test_a_comment_inside_an_expression_moves_after_its_statement():
    out = assert_canonical("flow f {\n    let n = (2 +  # why\n        3)\n}\n")
    assert out == "flow f {\n    let n = 2 + 3  # why\n}\n"


def test_several_comments_in_one_statement_keep_their_order():
    text = "flow f {\n    let n = (2 +  # one\n  3 +  # two\n  4)  # three\n}\n"
    out = assert_canonical(text)
    assert out == "flow f {\n    # one\n    # two\n    let n = 2 + 3 + 4  # three\n}\n"


def test_a_file_of_comments_only():
    assert assert_canonical("# just\n\n# comments\n") == "# just\n\n# comments\n"
    assert fmt("") == ""


# -------------------------------------------------------------- generated programs

_SPECIAL_NAMES = ["x", "y", "z1", "h", "_t", "yes", "no", "null", "n", "off", "y_", "Inf"]
names = st.one_of(
    st.sampled_from(_SPECIAL_NAMES),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True).filter(
        lambda s: s not in KEYWORDS
    ),
)
kinds = st.one_of(
    names,
    st.lists(names, min_size=2, max_size=3).map(".".join),
)
ints = st.integers(0, 10**12)
floats = st.one_of(
    st.floats(0, 1e300, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1e-5, 0.97, 2.0, 1e16, 5e-324]),
)
strings = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)


def _unique_keys(draw_keys, excluded):
    return st.lists(names.filter(lambda k: k not in excluded), unique=True, max_size=3).flatmap(
        lambda keys: draw_keys(keys)
    )


def expressions(leaves=None):
    if leaves is None:
        leaves = st.one_of(ints.map(ast.Int), floats.map(ast.Float), names.map(ast.Ref))
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds(ast.BinOp, st.sampled_from("+-*/%"), inner, inner),
            st.builds(ast.Neg, inner),
        ),
        max_leaves=6,
    )


def _calls(values, excluded=("kind",)):
    def build(keys):
        return st.tuples(kinds, st.tuples(*(values for _ in keys))).map(
            lambda kv: ast.Call(
                ast.Name(kv[0]),
                tuple(ast.Arg(ast.Name(k), v) for k, v in zip(keys, kv[1])),
            )
        )

    return _unique_keys(build, excluded)


values = st.recursive(
    st.one_of(
        expressions(),
        st.booleans().map(ast.Bool),
        strings.map(ast.String),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: ast.ListValue(tuple(items))),
        _calls(inner),
    ),
    max_leaves=8,
)
counts = expressions(st.one_of(st.integers(0, 20).map(ast.Int), names.map(ast.Ref))).filter(
    lambda v: not isinstance(v, ast.Neg)  # a negative count is not valid YAML (schema)
)
dims = st.one_of(
    st.integers(1, 64).map(ast.Int),
    expressions(st.one_of(st.integers(1, 64).map(ast.Int), names.map(ast.Ref))).filter(
        lambda v: not isinstance(v, (ast.Neg, ast.Int))
    ),
)
bounds = st.one_of(
    st.integers(1, 100).map(ast.Int),
    st.floats(1e-3, 1e3).map(ast.Float),
    names.map(ast.Ref),
)
word_or_call = st.one_of(names.map(ast.Ref), _calls(values))


def _value_of(v) -> ast.Value:
    """A registry example's option value as the AST a spec would write."""
    if isinstance(v, bool):
        return ast.Bool(v)
    if isinstance(v, int):
        return ast.Int(v) if v >= 0 else ast.Neg(ast.Int(-v))
    if isinstance(v, float):
        return ast.Float(v) if v >= 0 else ast.Neg(ast.Float(-v))
    if isinstance(v, str):
        return ast.Ref(v)
    if isinstance(v, list):
        return ast.ListValue(tuple(_value_of(i) for i in v))
    if isinstance(v, Choice):
        return ast.Call(
            ast.Name(v.kind),
            tuple(ast.Arg(ast.Name(k), _value_of(o)) for k, o in v.options.items()),
        )
    raise TypeError(v)


#: (kind, options, number of tensors) of every registry example
REGISTRY_STEPS = [
    (kind, ex.options, len(ex.shapes)) for kind, spec in REGISTRY.items() for ex in spec.examples
]


def registry_steps():
    def build(case, ins, outs):
        kind, options, n = case
        args = [ast.Arg(None, ast.Ref(i)) for i in ins[:n]]
        args += [ast.Arg(ast.Name(k), _value_of(v)) for k, v in options.items()]
        return ast.Assign(tuple(ast.Name(o) for o in outs), ast.Call(ast.Name(kind), tuple(args)))

    return st.builds(
        build,
        st.sampled_from(REGISTRY_STEPS),
        st.lists(names, min_size=3, max_size=3),
        st.lists(names, min_size=1, max_size=2),
    )


def block_steps(block_names):
    def build(kind, ins, outs, opts):
        args = [ast.Arg(None, ast.Ref(i)) for i in ins]
        args += [ast.Arg(ast.Name(k), v) for k, v in opts]
        return ast.Assign(tuple(ast.Name(o) for o in outs), ast.Call(ast.Name(kind), tuple(args)))

    options = _unique_keys(
        lambda keys: st.tuples(*(values for _ in keys)).map(lambda vs: tuple(zip(keys, vs))),
        ("op", "in", "out"),
    )
    return st.builds(
        build,
        st.sampled_from(block_names),
        st.lists(names, min_size=1, max_size=3),
        st.lists(names, min_size=1, max_size=3),
        options,
    )


def requirements():
    return st.sampled_from(sorted(REQUIREMENTS)).flatmap(
        lambda p: st.builds(
            ast.RequireStmt, st.just(ast.Name(p)), bounds if REQUIREMENTS[p] else st.none()
        )
    )


def statements(block_names):
    simple = st.one_of(
        registry_steps(),
        block_steps(block_names),
        st.builds(ast.LetStmt, names.map(ast.Name), values),
        st.builds(
            ast.InputStmt,
            names.map(ast.Name),
            st.lists(dims, min_size=1, max_size=3).map(tuple),
        ),
        st.builds(ast.LatentStmt, word_or_call),
        st.builds(ast.DequantizeStmt, word_or_call),
        requirements(),
        st.lists(names.map(ast.Name), min_size=1, max_size=3).map(
            lambda n: ast.OutputStmt(tuple(n))
        ),
        st.lists(names.map(ast.Name), min_size=1, max_size=3).map(
            lambda n: ast.ReturnStmt(tuple(n))
        ),
    )
    devices = st.one_of(
        st.sampled_from(["cpu", "cuda:1", "my device", "true"]), strings.filter(bool)
    )
    return st.recursive(
        simple,
        lambda inner: st.one_of(
            st.builds(
                ast.RepeatStmt,
                counts,
                st.one_of(st.none(), names.map(ast.Name)),
                st.lists(inner, max_size=3).map(tuple),
            ),
            st.builds(ast.OnStmt, devices.map(ast.String), st.lists(inner, max_size=3).map(tuple)),
        ),
        max_leaves=6,
    )


@st.composite
def programs(draw) -> ast.Program:
    block_names = draw(
        st.lists(
            names.filter(lambda n: n not in REGISTRY).map(lambda n: "blk_" + n),
            min_size=1,
            max_size=2,
            unique=True,
        )
    )
    stmts = statements(block_names)
    params = st.lists(
        st.builds(ast.Param, names.map(ast.Name), st.one_of(st.none(), values)),
        max_size=3,
    ).map(tuple)
    blocks = [
        ast.BlockDef(ast.Name(n), draw(params), tuple(draw(st.lists(stmts, max_size=4))))
        for n in block_names
    ]
    flows = [
        ast.Flow(ast.Name(draw(names)), tuple(draw(st.lists(stmts, max_size=6))))
        for _ in range(draw(st.integers(0, 2)))
    ]
    items = blocks + flows if draw(st.booleans()) else flows + blocks
    return ast.Program(tuple(items))


#: a fast default; ``--runslow`` runs the same properties on many more programs
GENERATED = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# 500: the slow suite (fmt and convert share it) stays within CI's 20 minutes
MANY = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_print_and_parse_back(program):
    text = format_program(program)
    assert parse(text) == program
    assert format_source(Source("t.flow", text))[0] == text


@GENERATED
@given(programs())
def test_generated_programs_print_and_parse_back_to_the_same_ast(program):
    check_print_and_parse_back(program)


@pytest.mark.slow
@MANY
@given(programs())
def test_many_generated_programs_print_and_parse_back(program):
    check_print_and_parse_back(program)


@GENERATED
@given(programs(), st.data())
def test_generated_comments_survive_formatting(program, data):
    lines = format_program(program).split("\n")[:-1]  # strings may hold other line breaks
    out, inserted = [], []
    for i, line in enumerate(lines):
        if data.draw(st.booleans(), label=f"comment before line {i}"):
            inserted.append(f"# c{len(inserted)}")
            out.append("  " + inserted[-1])
        if data.draw(st.booleans(), label=f"comment after line {i}"):
            inserted.append(f"# c{len(inserted)}")
            line += "  " + inserted[-1]
        out.append(line)
    text = "\n".join(out) + "\n"
    assert parse(text) == program
    once = fmt(text)
    assert comments(once) == inserted
    assert parse(once) == program
    assert fmt(once) == once


# ------------------------------------------------------------------------- CLI


def test_cli_check_reports_a_diff_and_exits_1(run_cli, tmp_path):
    path = tmp_path / "a.flow"
    path.write_text("flow f {\n  input x:[2]\n  output x\n}")
    r = run_cli("fmt", "--check", path)
    assert r.status == 1
    assert "-  input x:[2]" in r.stdout and "+    input x: [2]" in r.stdout
    assert "would be reformatted" in r.stderr
    assert path.read_text() == "flow f {\n  input x:[2]\n  output x\n}"  # untouched


def test_cli_rewrites_in_place_then_check_passes(run_cli, tmp_path):
    a, b = tmp_path / "a.flow", tmp_path / "b.flow"
    a.write_text("flow f {\n  input x:[2]\n  output x\n}")
    b.write_text("flow g {\n    input x: [2]\n    output x\n}\n")
    r = run_cli("fmt", a, b)
    assert r.status == 0 and r.stdout == f"reformatted {a}\n"
    assert a.read_text() == "flow f {\n    input x: [2]\n    output x\n}\n"
    r = run_cli("fmt", "--check", a, b)
    assert (r.status, r.stdout) == (0, "")


def test_cli_reports_syntax_errors_and_refuses_yaml(run_cli, tmp_path):
    bad = tmp_path / "bad.flow"
    bad.write_text("flow f {\n    input x: [2\n}\n")
    r = run_cli("fmt", bad)
    assert r.status == 1 and "error[E100]" in r.stderr
    spec = tmp_path / "s.yaml"
    spec.write_text("flowspec: 1\n")
    r = run_cli("fmt", spec)
    assert r.status == 2 and "convert" in r.stderr
    assert run_cli("fmt", tmp_path / "missing.flow").status == 2
