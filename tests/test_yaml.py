"""The YAML front end (LANGUAGE.md §7) and its JSON Schema.

- The schema is generated from the block registry (the committed file equals the
  generated one) and agrees with the registry's option types on literal values.
- YAML lowers to the same AST as ``.flow``; every construct has a form.
- Malformed specs — a wrong type, an unknown op, an unknown option, a missing ``in``,
  a bad shape, a python tag and more — are reported with the ``.flow`` codes (and, for
  option errors, the ``.flow`` messages) at the line and column of the YAML node, with
  no traceback, before anything is compiled.
"""

from __future__ import annotations

import copy
import json
import re
import time
from pathlib import Path

import pytest
import yaml
from harness import LANGUAGE_MD_REALNVP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowspec
from flowspec.core.spans import Source
from flowspec.driver import Compilation
from flowspec.kinds import REGISTRY
from flowspec.kinds.options import Choice, Enum, IntList, OptionError, Raw, Tensor, Word
from flowspec.syntax import ast, dsl
from flowspec.syntax import yaml as yaml_front
from flowspec.syntax.schema import build_schema, dumps, load_schema, schema_path, validator
from flowspec.syntax.to_yaml import to_yaml

ROOT = Path(__file__).resolve().parent.parent


def check(text: str, path: str = "t.yaml") -> Compilation:
    return Compilation(Source(path, text))


def parse(text: str) -> ast.Program:
    program, diags = yaml_front.parse(Source("t.yaml", text))
    assert diags == [], [(d.code, d.line, d.column, d.message) for d in diags]
    return program


def parse_flow(text: str) -> ast.Program:
    program, diags = dsl.parse(Source("t.flow", text))
    assert diags == []
    return program


def at(text: str, needle: str, nth: int = 1, shift: int = 0) -> tuple[int, int]:
    """1-based line and column of the ``nth`` occurrence of ``needle`` (plus ``shift``)."""
    offset = -1
    for _ in range(nth):
        offset = text.index(needle, offset + 1)
    offset += shift
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def flow_yaml(*steps: str, shape: str = "[4]", extra: str = "") -> str:
    body = "".join(f"      - {s}\n" for s in steps) or "      []\n"
    return (
        "flowspec: 1\n"
        f"{extra}"
        "flows:\n"
        "  - name: f\n"
        f"    input: {{name: x, shape: {shape}}}\n"
        "    body:\n"
        f"{body}"
        "    output: x\n"
    )


def flow_text(*steps: str, shape: str = "[4]") -> str:
    return "flow f {\n    input x: " + shape + "\n" + "".join(f"    {s}\n" for s in steps)


# ------------------------------------------------------------------------ schema


def test_the_committed_schema_is_the_one_generated_from_the_registry():
    assert schema_path().read_text("utf-8") == dumps(build_schema()), (
        "grammar/flow.schema.json is stale: run `python -m flowspec.syntax.schema`"
    )
    assert load_schema() == json.loads(dumps(build_schema()))


def test_the_schema_is_valid_2020_12_and_shipped_as_package_data():
    from importlib import resources

    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(load_schema())
    assert load_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert resources.files("flowspec.grammar").joinpath("flow.schema.json").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"flowspec\.grammar" = \[[^\]]*"\*\.json"', pyproject)


def test_every_block_kind_has_its_options_in_the_schema():
    defs = load_schema()["$defs"]
    for kind, spec in REGISTRY.items():
        properties = defs[f"step.{kind}"]["properties"]
        assert set(properties) == {"op", "in", "out"} | {o.name for o in spec.options}


def _as_yaml(value):
    """An example's option value as YAML data (a net ``Choice`` is ``{kind, ...}``)."""
    if isinstance(value, Choice):
        return {"kind": value.kind, **{k: _as_yaml(v) for k, v in value.options.items()}}
    return value


def _instance_step(kind: str, option: str | None = None, value=None) -> dict:
    spec = REGISTRY[kind]
    step = {"op": kind, "in": "x" if spec.inputs == 1 else ["x", "y"]}
    for o in spec.options:  # required options get a valid value from an example
        if o.required and o.name != option:
            value_ = next(e.options[o.name] for e in spec.examples if o.name in e.options)
            step[o.name] = _as_yaml(value_)
    if option is not None:
        step[option] = value
    return {"flowspec": 1, "flows": [{"name": "f", "body": [step]}]}


#: literal values tried against every option (strings are names or expressions,
#: which the schema accepts for the checker to resolve in scope)
LITERALS = [0, 1, 2, 3, 7, 64, 100, -1, 0.0, 0.5, 0.97, 1.0, 1.5, 2.5, -0.5, 1e-9]
LITERALS += [True, False, [], [1], [64, 64], [0], [3, -1], [True], [1.5], [2, 0, 1]]


def _python(value):
    """A YAML literal as lowering evaluates it (a mapping is a call)."""
    if isinstance(value, dict):
        options = tuple((k, _python(v), None) for k, v in value.items() if k != "kind")
        return Raw(value["kind"], options)
    if isinstance(value, list):
        return [_python(v) for v in value]
    return value


def _choices(t: Enum) -> list:
    out = []
    for word, options in t.words.items():
        out.append({"kind": word})
        out.append({"kind": word, "nope": 1})
        for o in options:
            out += [{"kind": word, o.name: v} for v in LITERALS[:12] + [[8], True]]
    return [*out, {"kind": "not_a_word"}, {"kind": 3}]


def _integral_float_as_a_list(t, value) -> bool:
    """JSON has one number type: `1.0` is an integer to JSON Schema, while the registry
    takes `hidden: 1` (one layer) but not `hidden: 1.0`.  The checker reports it."""
    if isinstance(value, dict):
        return any(isinstance(v, float) and v.is_integer() for v in value.values())
    return isinstance(t, IntList) and isinstance(value, float) and value.is_integer()


@pytest.mark.parametrize("kind", REGISTRY)
def test_the_schema_and_the_registry_agree_on_every_literal(kind):
    for option in REGISTRY[kind].options:
        if isinstance(option.type, Tensor):
            continue
        values = list(LITERALS)
        if isinstance(option.type, Enum):
            values += _choices(option.type)
        for value in values:
            if _integral_float_as_a_list(option.type, value):
                continue
            in_schema = validator().is_valid(_instance_step(kind, option.name, value))
            try:
                option.type.resolve(_python(value))
                in_registry = True
            except OptionError:
                in_registry = False
            assert in_schema == in_registry, (kind, option.name, value, in_schema)


def test_enum_words_and_unknown_options_are_checked_by_the_schema():
    assert validator().is_valid(_instance_step("coupling.affine", "mask", "checkerboard"))
    assert not validator().is_valid(_instance_step("coupling.affine", "bogus", 1))
    assert not validator().is_valid(_instance_step("reverse", "seed", 1))
    net = {"kind": "mlp", "hidden": [8], "act": "tanh"}
    assert validator().is_valid(_instance_step("coupling.affine", "net", net))
    assert not validator().is_valid(_instance_step("coupling.affine", "net", {**net, "k": 3}))


# ------------------------------------------------------------- the same AST


LANGUAGE_YAML = """\
flowspec: 1
flows:
  - name: realnvp
    input: {name: x, shape: [2]}
    latent: normal
    body:
      - repeat: 8
        body:
          - {op: coupling.affine, in: x, net: {kind: mlp, hidden: [64, 64], act: relu}}
          - {op: reverse, in: x}
    output: [x]
"""


def test_the_language_reference_yaml_is_the_same_ast_as_its_flow():
    assert parse(LANGUAGE_YAML) == parse_flow(LANGUAGE_MD_REALNVP)
    assert check(LANGUAGE_YAML).diagnostics == []


def test_every_statement_form():
    text = """\
flowspec: 1
blocks:
  - name: glow_step
    params: [x, {hidden: 512}, {act: relu}]
    body:
      - {op: actnorm, in: x}
      - {op: coupling.affine, in: x, net: {kind: conv, hidden: hidden, act: act}}
    return: x
flows:
  - name: f
    input: {name: x, shape: ["2 * c", 4, 4]}
    latent: {kind: logistic}
    dequantize: {kind: uniform, bits: 5}
    body:
      - {let: h, value: 16}
      - {require: lipschitz, max: "2 * 2"}
      - {require: exact_logdet}
      - repeat: "c - 1"
        as: i
        body:
          - {op: shuffle, in: x, seed: "i + 1"}
          - {op: glow_step, in: x, hidden: h}
      - on: cuda:1
        body: [{op: invconv, in: x, lu: false}]
      - {op: split, in: x, out: [a, b]}
      - {op: concat, in: [b, a], out: x}
      - {output: [x]}
"""
    expected = parse_flow("""
block glow_step(x, hidden=512, act=relu) {
    x = actnorm(x)
    x = coupling.affine(x, net=conv(hidden=hidden, act=act))
    return x
}
flow f {
    input x: [2 * c, 4, 4]
    latent logistic()
    dequantize uniform(bits=5)
    let h = 16
    require lipschitz <= 2 * 2
    require exact_logdet
    repeat c - 1 as i {
        x = shuffle(x, seed=i + 1)
        x = glow_step(x, hidden=h)
    }
    on cuda:1 {
        x = invconv(x, lu=false)
    }
    a, b = split(x)
    x = concat(b, a)
    output x
}""")
    assert parse(text) == expected


@pytest.mark.parametrize(
    "written, value",
    [
        ("3", ast.Int(3)),
        ("-3", ast.Neg(ast.Int(3))),
        ("0.5", ast.Float(0.5)),
        ("-0.5", ast.Neg(ast.Float(0.5))),
        ("1.0e-05", ast.Float(1e-5)),
        ('"1e-5"', ast.Float(1e-5)),  # YAML 1.1 reads 1e-5 as a string: it is a number
        ("true", ast.Bool(True)),
        ("relu", ast.Ref("relu")),
        ("'yes'", ast.Ref("yes")),
        ("no", ast.Ref("no")),  # YAML 1.2 booleans: `no` is a word
        ('"2*h + 1"', ast.BinOp("+", ast.BinOp("*", ast.Int(2), ast.Ref("h")), ast.Int(1))),
        ("'-(a)'", ast.Neg(ast.Ref("a"))),
        ("'\"cuda:0\"'", ast.String("cuda:0")),
        ('"\\"a\\\\\\"b\\""', ast.String('a"b')),
        ("[1, [2]]", ast.ListValue((ast.Int(1), ast.ListValue((ast.Int(2),))))),
        (
            "{kind: roulette, p: 0.5}",
            ast.Call(ast.Name("roulette"), (ast.Arg(ast.Name("p"), ast.Float(0.5)),)),
        ),
        ("{kind: normal}", ast.Call(ast.Name("normal"), ())),
    ],
)
def test_values(written, value):
    program = parse(
        f"flowspec: 1\nflows:\n  - name: f\n    body: [{{let: v, value: {written}}}]\n"
    )
    assert program.flows[0].body[0].value == value


def test_expression_strings_are_checked_in_scope_like_flow():
    text = flow_yaml(
        "{let: h, value: 3}",
        '{op: coupling.affine, in: x, net: {kind: mlp, hidden: ["2*h + 1", h]}}',
    )
    comp = check(text)
    assert comp.errors == []
    (fg,) = comp.lowered[0]
    (node,) = [n for n in fg.blocks() if n.kind == "coupling.affine"]
    assert node.options["net"]["hidden"] == [7, 3]


def test_spans_point_into_the_yaml_file():
    text = flow_yaml('{op: shuffle, in: x, seed: "2 * k"}')
    program = parse(text)
    (flow,) = program.flows
    step = flow.body[1]
    assert (step.span.line, step.span.column) == at(text, "{op: shuffle")
    assert (step.call.kind.span.line, step.call.kind.span.column) == at(text, "shuffle")
    seed = step.call.args[1]
    assert (seed.key.span.line, seed.key.span.column) == at(text, "seed")
    k = seed.value.right
    assert (k.span.line, k.span.column) == at(text, 'k"')
    assert text[k.span.start : k.span.end] == "k"


def test_the_on_key_and_yaml_1_2_booleans():
    # YAML 1.1 (and yaml.safe_load) reads the key `on` as a boolean
    assert True in yaml.safe_load("on: cpu")
    text = (
        "flowspec: 1\n"
        "flows:\n"
        "  - name: f\n"
        "    input: {name: no, shape: [2]}\n"
        "    body:\n"
        "      - on: cpu\n"
        "        body: [{op: reverse, in: no}]\n"
        "      - {op: shuffle, in: no, out: x}\n"
        "    output: x\n"
    )
    program = parse(text)
    assert isinstance(program.flows[0].body[1], ast.OnStmt)
    assert check(text).errors == []


def test_anchors_aliases_and_merge_keys():
    text = (
        "flowspec: 1\ndefaults: &coupling {op: coupling.affine, net: {kind: mlp, hidden: [8]}}\n"
    )
    assert check(text).errors[0].code == "E100"  # an unknown top-level key
    text = flow_yaml(
        "&step {op: coupling.affine, in: x, net: &net {kind: mlp, hidden: [8]}}",
        "{op: reverse, in: x}",
        "*step",
        "{<<: *step, mask: alternate}",
        "{op: residual, in: x, net: *net}",
    )
    program = parse(text)
    steps = program.flows[0].body[1:-1]
    assert steps[0] == steps[2]
    overridden = parse(flow_yaml("&s {op: reverse, in: x}", "{<<: *s, in: x, out: y}"))
    assert [t.id for t in overridden.flows[0].body[2].targets] == ["y"]
    assert check(flow_yaml("{<<: {op: reverse}, in: x, in: x}")).errors[0].code == "E100"
    assert [a.key.id for a in steps[3].call.args[1:]] == ["net", "mask"]
    assert steps[4].call.args[1].value == steps[0].call.args[1].value


def test_the_driver_and_the_api_take_yaml_files_and_text(tmp_path):
    for suffix in (".yaml", ".yml"):
        path = tmp_path / f"spec{suffix}"
        path.write_text(LANGUAGE_YAML)
        assert flowspec.check(path) == []
        assert flowspec.check(str(path)) == []
    assert flowspec.check(LANGUAGE_YAML) == []  # text starting with `flowspec:`


# -------------------------------------------------------------------- errors


def diagnostics(text: str):
    comp = check(text)
    return comp.diagnostics


ERRORS = [
    # (name, text, code, (needle, nth) of the expected position, message fragment)
    (
        "wrong type",
        flow_yaml("{op: shuffle, in: x, seed: true}"),
        "E201",
        ("true", 1),
        "`seed` expected an integer, got the boolean true",
    ),
    (
        "wrong type in a net",
        flow_yaml("{op: coupling.affine, in: x, net: {kind: mlp, hidden: [8, true]}}"),
        "E201",
        ("hidden", 1),
        "`hidden` list item: expected an integer",
    ),
    (
        "wrong type of a count",
        flow_yaml("{repeat: [3], body: []}"),
        "E201",
        ("[3]", 1),
        "`repeat` expects a non-negative integer",
    ),
    ("wrong type of a key", flow_yaml("{op: reverse, in: 3}"), "E201", ("3}", 1), "`in` expects"),
    (
        "out of range",
        flow_yaml("{op: shuffle, in: x, seed: -1}"),
        "E201",
        ("-1", 1),
        "`seed` must be at least 0, got -1",
    ),
    (
        "null value",
        flow_yaml("{op: shuffle, in: x, seed: }"),
        "E201",
        ("seed", 1),
        "nothing (null)",
    ),
    (
        "unknown op",
        flow_yaml("{op: coupling.afine, in: x}"),
        "E200",
        ("coupling.afine", 1),
        "unknown block kind `coupling.afine`",
    ),
    (
        "unknown option",
        flow_yaml("{op: coupling.affine, in: x, nett: {kind: mlp}}"),
        "E200",
        ("nett", 1),
        "`coupling.affine` has no option `nett`",
    ),
    (
        "unknown option near a step key",
        flow_yaml("{op: reverse, iin: x}"),
        "E100",
        ("iin", 1),
        "unknown key `iin` in a step",
    ),
    (
        "unknown enum word",
        flow_yaml("{op: coupling.affine, in: x, net: mlp, mask: halff}"),
        "E200",
        ("halff", 1),
        "unknown mask `halff`",
    ),
    ("missing in", flow_yaml("{op: reverse}"), "E201", ("{op: reverse}", 1), "a step needs `in`"),
    (
        "missing in, block style",
        flow_yaml("op: reverse\n        out: y"),
        "E201",
        ("op: reverse", 1),
        "a step needs `in`",
    ),
    (
        "too many tensors",
        flow_yaml("{op: reverse, in: [x, y]}"),
        "E201",
        ("{op: reverse", 1),
        "`reverse` takes 1 tensor(s), got 2",
    ),
    (
        "bad shape",
        flow_yaml(
            "{op: split, in: x, out: [a, b], sizes: [1, 2]}", "{op: concat, in: [a, b], out: x}"
        ),
        "E202",
        ("sizes", 1),
        "split sizes [1, 2] add up to 3, but the axis has 4 features",
    ),
    ("bad input shape", flow_yaml(shape="[0]"), "E201", ("0]", 1), "must be a positive integer"),
    ("empty input shape", flow_yaml(shape="[]"), "E201", ("input", 1), "at least one axis"),
    ("input shape not a list", flow_yaml(shape="2"), "E201", ("2}", 1), "`shape` expects"),
    (
        "python tag",
        flow_yaml("{op: shuffle, in: x, seed: !!python/object/apply:os.system ['echo pwned']}"),
        "E100",
        ("!!python", 1),
        "YAML tag `!!python/object/apply:os.system` is not allowed",
    ),
    (
        "python name tag",
        "flowspec: !!python/name:os.system\n",
        "E100",
        ("!!python", 1),
        "is not allowed",
    ),
    (
        "custom tag",
        flow_yaml("{op: shuffle, in: x, seed: !seed 3}"),
        "E100",
        ("!seed", 1),
        "YAML tag `!seed`",
    ),
    (
        "yaml syntax",
        flow_yaml("{op: shuffle, in: x, seed: [1}"),
        "E100",
        ("[1}", 1, 2),
        "`}` does not close the `[` opened before it",
    ),
    (
        "bad indentation",
        "flowspec: 1\nflows:\n  - name: f\n   body: []\n",
        "E100",
        ("body", 1),
        "bad indentation: this line is indented less (column 4) than the line above",
    ),
    (
        "duplicate key",
        flow_yaml("{op: shuffle, in: x, seed: 1, seed: 2}"),
        "E100",
        ("seed", 2),
        "duplicate key `seed`",
    ),
    (
        "unknown statement",
        flow_yaml("{opp: reverse, in: x}"),
        "E100",
        ("opp", 1),
        "unknown statement key `opp`",
    ),
    ("not a statement", flow_yaml("{foo: 1}"), "E100", ("{foo", 1), "not a statement"),
    (
        "a statement that is no mapping",
        flow_yaml("reverse"),
        "E100",
        ("reverse", 1),
        "expects a statement",
    ),
    (
        "unknown flow key",
        flow_yaml().replace("    body:", "    bdy:"),
        "E100",
        ("bdy", 1),
        "unknown key `bdy` in a flow",
    ),
    (
        "keyword as a name",
        flow_yaml("{op: reverse, in: x, out: input}"),
        "E100",
        ("input}", 1),
        "`input` is a keyword",
    ),
    (
        "invalid name",
        flow_yaml("{let: my-name, value: 1}"),
        "E100",
        ("my-name", 1),
        "not a valid name",
    ),
    (
        "bad expression",
        flow_yaml('{op: shuffle, in: x, seed: "2 * (k"}'),
        "E100",
        ("(k", 1),
        "cannot read `2 * (k` as a value",
    ),
    (
        "bad expression end",
        flow_yaml('{op: shuffle, in: x, seed: "2 *"}'),
        "E100",
        ('*"', 1, 1),
        "end of the value",
    ),
    (
        "unterminated string value",
        flow_yaml("{let: s, value: '\"cuda'}"),
        "E100",
        ("'\"cuda'", 1),
        "is not a string",
    ),
    (
        "infinite number",
        flow_yaml("{op: leaky_relu, in: x, slope: .inf}"),
        "E201",
        (".inf", 1),
        "must be finite",
    ),
    ("version", "flowspec: 2\nflows: []\n", "E201", ("2", 1), "unsupported format version 2"),
    ("no version", "flows: []\n", "E201", ("flows", 1), "needs `flowspec: 1`"),
    ("empty file", "", "E201", None, "the YAML spec is empty"),
    ("not a mapping", "- 1\n", "E100", ("- 1", 1), "a YAML spec is a mapping"),
    (
        "unknown requirement",
        flow_yaml("{require: lipschits, max: 2}"),
        "E200",
        ("lipschits", 1),
        "unknown requirement `lipschits`",
    ),
    (
        "bound missing",
        flow_yaml("{require: lipschitz}"),
        "E201",
        ("{require", 1),
        "`require lipschitz` needs a bound",
    ),
    (
        "bound not taken",
        flow_yaml("{require: exact_logdet, max: 2}"),
        "E201",
        ("{require", 1),
        "`require exact_logdet` takes no bound",
    ),
    (
        "a tensor consumed twice",
        flow_yaml("{op: split, in: x, out: [a, b]}", "{op: concat, in: [a, a], out: x}"),
        "E301",
        ("a]", 1),
        "consumed twice",
    ),
    (
        "not contractive",
        flow_yaml("{op: residual, in: x, net: {kind: mlp}, lipschitz: 1.2}"),
        "E303",
        ("lipschitz", 1),
        "needs lipschitz < 1",
    ),
    (
        "unknown constant",
        flow_yaml("{repeat: n, body: []}"),
        "E200",
        ("n,", 1),
        "unknown constant `n`",
    ),
    (
        "recursive alias",
        "flowspec: 1\nflows: &a [*a]\n",
        "E100",
        ("&a", 1),
        "an alias refers to a node that contains it",
    ),
]


#: errors in values the AST can hold, and errors only a scope or shapes reveal: the
#: shared checker finds them after lowering, as for the same `.flow` program (the YAML
#: front end refuses only what has no AST form, the counterpart of a syntax error)
FOUND_BY_THE_CHECKER = {
    "wrong type",
    "wrong type in a net",
    "out of range",
    "unknown op",
    "unknown option",
    "too many tensors",
    "bad shape",
    "bad input shape",
    "empty input shape",
    "unknown enum word",
    "unknown requirement",
    "bound missing",
    "bound not taken",
    "a tensor consumed twice",
    "not contractive",
    "unknown constant",
}


@pytest.mark.parametrize("name, text, code, where, message", ERRORS, ids=[e[0] for e in ERRORS])
def test_errors_have_the_flow_code_at_the_yaml_line_and_column(name, text, code, where, message):
    diags = diagnostics(text)
    assert diags, "no diagnostic"
    first = next((d for d in diags if d.code == code), None)
    assert first is not None, [(d.code, d.message) for d in diags]
    assert message in first.message, first.message
    if where is not None:
        assert (first.line, first.column) == at(text, *where), (first.line, first.column)
    if name not in FOUND_BY_THE_CHECKER:
        assert check(text).program is None  # refused before anything is lowered


def test_a_python_tag_is_never_executed(tmp_path):
    target = tmp_path / "pwned"
    text = flow_yaml(f"{{op: shuffle, in: x, seed: !!python/object/apply:os.mkdir ['{target}']}}")
    assert diagnostics(text)[0].code == "E100"
    assert not target.exists()


def test_yaml_option_errors_read_exactly_as_flow_ones():
    cases = [
        ("{op: shuffle, in: x, seed: true}", "x = shuffle(x, seed=true)"),
        ("{op: shuffle, in: x, seed: -1}", "x = shuffle(x, seed=-1)"),
        ("{op: coupling.afine, in: x}", "x = coupling.afine(x)"),
        (
            "{op: coupling.affine, in: x, nett: {kind: mlp}}",
            "x = coupling.affine(x, nett=mlp())",
        ),
        (
            "{op: coupling.affine, in: x, net: mlp, mask: halff}",
            "x = coupling.affine(x, net=mlp, mask=halff)",
        ),
        (
            "{op: coupling.affine, in: x, net: {kind: mlp, hidden: [8, true]}}",
            "x = coupling.affine(x, net=mlp(hidden=[8, true]))",
        ),
        (
            "{op: residual, in: x, net: mlp, logdet: {kind: roulette, p: 2}}",
            "x = residual(x, net=mlp, logdet=roulette(p=2))",
        ),
    ]
    for step, statement in cases:
        from_yaml = diagnostics(flow_yaml(step))
        from_flow = check(flow_text(statement) + "    output x\n}\n", "t.flow").diagnostics
        assert [(d.code, d.message, d.hint) for d in from_yaml] == [
            (d.code, d.message, d.hint) for d in from_flow
        ], step


def test_a_step_key_misspelt_as_an_option_suggests_the_step_key():
    diags = diagnostics(flow_yaml("{op: reverse, in: x, ot: y}"))
    (d,) = diags
    assert d.code == "E200" and d.hint == "did you mean `out`?"


def test_errors_render_with_the_source_line_and_a_caret():
    from flowspec.core.diagnostics import render_text

    text = flow_yaml("{op: shuffle, in: x, seed: true}")
    comp = check(text, "spec.yaml")
    rendered = render_text(comp.diagnostics, comp.sources)
    line, column = at(text, "true")
    assert f"--> spec.yaml:{line}:{column}" in rendered
    assert "      - {op: shuffle, in: x, seed: true}" in rendered
    assert " " * (column - 1) + "^^^^" in rendered


def test_the_cli_checks_yaml_without_a_traceback(run_cli, tmp_path):
    for name, text, code, _, _ in ERRORS:
        path = tmp_path / "spec.yaml"
        path.write_text(text)
        r = run_cli("check", path)
        assert r.status == 1, name
        assert f"[{code}]" in r.stdout, (name, r.stdout)
        assert "Traceback" not in r.stdout + r.stderr and "crashed" not in r.stderr, name


def test_the_schema_rejects_each_malformed_case_the_schema_can_see():
    def data(text: str):
        reader = yaml_front._Reader(Source("t.yaml", text))
        return reader.data(reader.compose())

    for step in [
        "{op: shuffle, in: x, seed: true}",  # wrong type
        "{op: coupling.affine, in: x, nett: {kind: mlp}}",  # unknown option
        "{op: reverse}",  # missing in
        "{opp: reverse, in: x}",  # unknown statement
        "{op: reverse, in: [x, y]}",  # arity
    ]:
        assert not validator().is_valid(data(flow_yaml(step))), step
    for shape in ("[0]", "[]", "2", "[true]", "[[2]]", "[2.5]"):  # a malformed input shape
        assert not validator().is_valid(data(flow_yaml(shape=shape))), shape
    # an op defined under `blocks:` is valid: the front end checks op names itself (E200)
    assert validator().is_valid(data(flow_yaml("{op: coupling.afine, in: x}")))


def test_alias_expansion_is_bounded():
    lines = ["flowspec: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    start = time.perf_counter()
    diags = diagnostics("\n".join(lines) + "\n")
    assert time.perf_counter() - start < 5
    assert diags[0].code == "E100" and "expands to more than" in diags[0].message


def test_deep_nesting_is_refused_not_a_crash():
    deep = "flowspec: 1\nflows: " + "[" * 5000 + "]" * 5000 + "\n"
    diags = diagnostics(deep)
    assert diags[0].code == "E100"
    long_expr = flow_yaml('{op: shuffle, in: x, seed: "' + "(" * 3000 + "1" + ")" * 3000 + '"}')
    assert diagnostics(long_expr)[0].code == "E100"


def test_option_resolution_mirrors_registry_types_for_words():
    # a sanity check of the helper the schema errors use: words resolve as in lowering
    assert REGISTRY["coupling.affine"].options[1].type.resolve(Word("half")).kind == "half"


# ---------------------------------------------------------------- robustness


def _paths(data, prefix=()):
    yield prefix
    items = (
        data.items()
        if isinstance(data, dict)
        else enumerate(data)
        if isinstance(data, list)
        else ()
    )
    for key, value in items:
        yield from _paths(value, (*prefix, key))


_SPEC_DATA = [
    yaml.safe_load(to_yaml(parse_flow(p.read_text())))
    for p in sorted((ROOT / "specs").glob("*.flow"))
]
_SCALARS = st.one_of(
    st.sampled_from(["x", "y", "reverse", "coupling.afine", "mlp", "2*x", '"s"', "input", "("]),
    st.integers(-3, 70),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
)
_KEYS = st.sampled_from(["kind", "op", "in", "out", "hidden", "act", "body", "name", "shape"])
_REPLACEMENTS = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(range(len(_SPEC_DATA))), st.data(), _REPLACEMENTS)
def test_a_spec_with_any_node_replaced_is_diagnosed_never_crashes(index, data, new):
    doc = copy.deepcopy(_SPEC_DATA[index])
    path = data.draw(st.sampled_from([p for p in _paths(doc) if p]))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    text = yaml.safe_dump(doc, default_flow_style=None)
    comp = check(text)
    for d in comp.diagnostics:  # every diagnostic points into the file
        assert 1 <= d.line <= text.count("\n") + 1
