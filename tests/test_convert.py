"""``flowspec convert``: ``.flow → YAML → .flow`` is lossless (comments aside) on every
spec, on samples of every construct and on generated programs; the schema accepts
every YAML file the converter writes; and a spec and its conversion compile to modules
that give identical outputs under the same seed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import SPECS
from hypothesis import given
from test_fmt import GENERATED, MANY, programs

from flowspec.core.spans import Source
from flowspec.syntax import ast, dsl
from flowspec.syntax import yaml as yaml_front
from flowspec.syntax.fmt import format_program
from flowspec.syntax.schema import validator
from flowspec.syntax.to_yaml import ConversionError, to_yaml

ROOT = Path(__file__).resolve().parent.parent


def parse_flow(text: str) -> ast.Program:
    program, diags = dsl.parse(Source("t.flow", text))
    assert diags == [], diags
    return program


def parse_yaml(text: str) -> ast.Program:
    program, diags = yaml_front.parse(Source("t.yaml", text))
    assert diags == [], [(d.code, d.line, d.column, d.message) for d in diags] + [text]
    return program


def instance(text: str):
    """The data the schema validates, as the front end reads it (YAML 1.2 booleans)."""
    reader = yaml_front._Reader(Source("t.yaml", text))
    return reader.data(reader.compose())


def assert_lossless(program: ast.Program) -> str:
    """program → YAML → program, the schema accepts the YAML, and → .flow → program."""
    text = to_yaml(program)
    assert validator().is_valid(instance(text)), list(validator().iter_errors(instance(text)))
    back = parse_yaml(text)
    assert back == program
    assert parse_flow(format_program(back)) == program
    assert to_yaml(back) == text  # the YAML form is canonical too
    return text


# -------------------------------------------------------------- every construct

SAMPLES = {
    "realnvp": """
        flow realnvp {
            input x: [2]
            latent normal
            repeat 8 {
                x = coupling.affine(x, net=mlp(hidden=[64, 64], act=relu))
                x = reverse(x)
            }
            output x
        }""",
    "let values": """
        flow f {
            input x: [4]
            let n = 3
            let c = 0.97
            let on_ = true
            let off_ = false
            let s = "cuda:0"
            let quoted = "a \\"b\\" \\\\ c\\nd"
            let l = [64, [1, 2], []]
            let w = relu
            let net = mlp(hidden=[n, 2 * n + 1], act=w)
            let e = (n + 1) * 2 - n / 3 % 2
            let neg = -1
            let negf = -0.5
            let negzero = -0
            let negneg = --2
            let small = 1e-5
            let big = 1e300
            let zero = 0.0
            output x
        }""",
    "steps": """
        flow f {
            input x: [6]
            a, b = split(x, sizes=[2, 4], dim=0)
            c, d = split(b)
            x = concat(a, c, d)
            x = coupling.affine(x, net=conv(hidden=8), mask=alternate, flip=true, scale=exp)
            x = reshape(x, shape=[3, -1])
            x = flatten(x)
            x = residual(x, net=mlp(hidden=[8], act=lipswish), logdet=series(terms=3),
                         trace=hutchinson(samples=2, noise=gaussian), inverse=fixedpoint())
            x = autoregressive.affine(x, order=random(seed=3), iaf=true)
            output x
        }""",
    "cond": """
        flow f {
            input x: [6]
            h, x = split(x, sizes=[2, 4])
            x = coupling.affine(x, net=mlp(), cond=h)
            output h, x
        }""",
    "repeat on require dequantize": """
        flow f {
            input x: [3, 8, 8]
            dequantize uniform(bits=5)
            latent logistic
            require exact_logdet
            require analytic_inverse
            require lipschitz <= 2.5
            require inverse_lipschitz <= 4 * 2
            let k = 2
            repeat k as i {
                x = shuffle(x, seed=i * 7 + 1)
            }
            repeat 0 {
            }
            on cuda:1 {
                on "cpu" {
                    x = actnorm(x)
                }
                x = invconv(x)
            }
            on "my device" {}
            output x
        }""",
    "latent call": """
        flow f {
            input x: [2]
            latent normal()
            output x
        }""",
    "blocks": """
        block glow_step(x, hidden=512, act=relu) {
            x = actnorm(x)
            x = invconv(x)
            x = coupling.affine(x, net=conv(hidden=hidden, act=act))
            return x
        }

        block pair(a, b) {
            a = glow_step(a, hidden=8)
            b = glow_step(b)
            return b, a
        }

        flow f {
            input x: [4, 4, 4]
            a, b = split(x)
            a, b = pair(a, b)
            x = concat(a, b)
            output x
        }""",
    "flows first, blocks after": """
        flow f {
            input x: [2]
            x = b(x)
            output x
        }

        flow g {
            input y: [2]
            output y
        }

        block b(x) {
            return x
        }""",
    "statements out of the usual order": """
        flow f {
            let d = 2
            input x: [d, 2 * d]
            x = flatten(x)
            latent uniform
            dequantize uniform
            output x
            x = reverse(x)
        }

        flow empty {
        }

        block b(x, n=1) {
            return x
            x = reverse(x)
        }""",
    "names that YAML would misread": """
        flow yes {
            input no: [2]
            no = reverse(no)
            off, null = split(no)
            n = concat(off, null)
            output n
        }""",
}


@pytest.mark.parametrize("name", SAMPLES)
def test_every_construct_converts_losslessly(name):
    assert_lossless(parse_flow(SAMPLES[name]))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_every_spec_converts_losslessly(path: Path):
    text = assert_lossless(parse_flow(path.read_text()))
    assert yaml.safe_load(text)["flowspec"] == 1  # any YAML reader reads it


def test_the_yaml_of_the_language_reference_is_what_convert_writes():
    # LANGUAGE.md §7 gives the YAML of the Real NVP of §2, written as convert writes it
    written = to_yaml(parse_flow(SAMPLES["realnvp"]))
    assert written == (
        "flowspec: 1\n"
        "flows:\n"
        "  - name: realnvp\n"
        "    input: {name: x, shape: [2]}\n"
        "    latent: normal\n"
        "    body:\n"
        "      - repeat: 8\n"
        "        body:\n"
        "          - {op: coupling.affine, in: x, net: {kind: mlp, hidden: [64, 64], act: relu}}\n"
        "          - {op: reverse, in: x}\n"
        "    output: [x]\n"
    )


def test_values_are_written_as_documented():
    text = to_yaml(parse_flow(SAMPLES["let values"]))
    for line in [
        "{let: c, value: 0.97}",
        "{let: on_, value: true}",
        """{let: s, value: '"cuda:0"'}""",
        "{let: l, value: [64, [1, 2], []]}",
        "{let: w, value: relu}",
        '{let: net, value: {kind: mlp, hidden: ["n", "2 * n + 1"], act: w}}',
        '{let: e, value: "(n + 1) * 2 - n / 3 % 2"}',
        "{let: neg, value: -1}",
        "{let: negf, value: -0.5}",
        '{let: negzero, value: "-0"}',
        '{let: negneg, value: "--2"}',
        "{let: small, value: 1.0e-05}",
        "{let: big, value: 1.0e+300}",
    ]:
        assert line in text, line


def test_a_step_writes_out_only_when_it_differs_from_in():
    text = to_yaml(parse_flow(SAMPLES["steps"]))
    assert "{op: split, in: x, out: [a, b], sizes: [2, 4], dim: 0}" in text
    assert "{op: concat, in: [a, c, d], out: x}" in text
    assert "{op: flatten, in: x}" in text


def test_interleaved_blocks_and_flows_come_back_grouped_with_the_same_meaning():
    from flowspec.driver import Compilation

    text = (
        "block a(x) {\n return x\n}\nflow f {\n input x: [2]\n x = a(x)\n output x\n}\n"
        "block b(x) {\n return x\n}\nflow g {\n input x: [2]\n x = b(x)\n output x\n}\n"
    )
    program = parse_flow(text)
    back = parse_yaml(to_yaml(program))
    assert [i.name.id for i in back.items] == ["a", "b", "f", "g"]
    assert sorted(back.items, key=repr) == sorted(program.items, key=repr)
    flow_comp = Compilation(Source("t.flow", text))
    yaml_comp = Compilation(Source("t.yaml", to_yaml(program)))
    messages = [[(d.code, d.message) for d in c.diagnostics] for c in (flow_comp, yaml_comp)]
    assert messages[0] == messages[1]
    assert not any(d.is_error for d in yaml_comp.diagnostics)
    assert flow_comp.flow_names() == yaml_comp.flow_names() == ["f", "g"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("flow f {\n input x: [2]\n x = b(x, out=1)\n}", "option named `out`"),
        ("flow f {\n input x: [2]\n x = f(x, op=1)\n}", "option named `op`"),
        ("flow f {\n let n = mlp(kind=relu)\n}", "option named `kind`"),
        ("flow f {\n let n = mlp(3)\n}", "positional argument"),
        ("flow f {\n x = reverse(seed=1, x)\n}", "tensor argument after an option"),
        ("flow f {\n x = reverse(3)\n}", "must be a tensor name"),
    ],
)
def test_constructs_without_a_yaml_form_are_diagnosed(text, message):
    with pytest.raises(ConversionError) as e:
        to_yaml(parse_flow(text))
    assert message in e.value.diagnostic.message
    assert e.value.diagnostic.code == "E201" and e.value.diagnostic.line >= 1


# -------------------------------------------------------------- generated programs


@GENERATED
@given(programs())
def test_generated_programs_convert_losslessly(program):
    assert_lossless(program)


@pytest.mark.slow
@MANY
@given(programs())
def test_many_generated_programs_convert_losslessly(program):
    assert_lossless(program)


# ---------------------------------------------------------- the same compiled module


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_a_spec_and_its_yaml_compile_to_modules_with_identical_outputs(path: Path, tmp_path):
    torch = pytest.importorskip("torch")
    compiler = pytest.importorskip("flowspec.compiler")
    from harness import with_fixed_context

    converted = tmp_path / f"{path.stem}.yaml"
    converted.write_text(to_yaml(parse_flow(path.read_text())))

    def build(spec: Path):
        torch.manual_seed(0)
        flow = with_fixed_context(compiler.compile(spec, dtype=torch.float64))
        g = torch.Generator().manual_seed(1)
        x = torch.rand((4, *flow.input_shape), generator=g, dtype=torch.float64) * 0.8 + 0.1
        torch.manual_seed(2)  # stochastic log-det estimators draw the same noise
        z, ladj = flow(x)
        zs = z if isinstance(z, tuple) else (z,)
        return flow, zs, ladj

    flow_a, z_a, ladj_a = build(path)
    flow_b, z_b, ladj_b = build(converted)
    state_a, state_b = flow_a.state_dict(), flow_b.state_dict()
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert all(torch.equal(a, b) for a, b in zip(z_a, z_b, strict=True))
    assert torch.equal(ladj_a, ladj_b)


# ---------------------------------------------------------------------------- CLI


def test_cli_converts_both_ways(run_cli, tmp_path):
    spec = ROOT / "specs" / "realnvp.flow"
    out = tmp_path / "realnvp.yaml"
    r = run_cli("convert", spec, "--to", "yaml", "-o", out)
    assert r.status == 0 and r.stdout == f"wrote {out}\n"
    assert parse_yaml(out.read_text()) == parse_flow(spec.read_text())
    assert run_cli("check", out).status == 0
    r = run_cli("convert", out, "--to", "flow")
    assert r.status == 0
    assert parse_flow(r.stdout) == parse_flow(spec.read_text())
    # .flow → .flow is fmt: the comments stay
    r = run_cli("convert", spec, "--to", "flow")
    assert "# shape without the batch axis" in r.stdout


def test_cli_reports_errors_without_a_traceback(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("flowspec: 1\nflows:\n  - name: f\n    body: [{op: reverse}]\n")
    r = run_cli("convert", bad, "--to", "flow")
    assert r.status == 1 and "error[E201]" in r.stderr and "bad.yaml:4:12" in r.stderr
    clash = tmp_path / "clash.flow"
    clash.write_text(
        "block b(x, out=1) {\n    return x\n}\n\n"
        "flow f {\n    input x: [2]\n    x = b(x, out=2)\n    output x\n}\n"
    )
    r = run_cli("convert", clash, "--to", "yaml")
    assert r.status == 1 and "error[E201]" in r.stderr and "clash.flow:7:14" in r.stderr
    assert run_cli("convert", tmp_path / "missing.flow", "--to", "yaml").status == 2
    assert run_cli("convert", clash).status == 2  # --to is required
    for r in (run_cli("convert", bad, "--to", "yaml"),):
        assert "Traceback" not in r.stderr and "crashed" not in r.stderr


def test_the_yaml_of_every_spec_has_no_lines_over_99_columns():
    for path in SPECS:
        text = to_yaml(parse_flow(path.read_text()))
        long = [line for line in text.splitlines() if len(line) > 99]
        assert not long, (path.name, long)
