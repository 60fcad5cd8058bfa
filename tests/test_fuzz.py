"""No traceback on any input: mutated specs give diagnostics (or none), never an exception.

The specs in specs/ are mutated by deleting, inserting and swapping characters and by
inserting tokens and keywords of the language; ``flowspec.check`` must return a list of
:class:`~flowspec.core.diagnostics.Diagnostic` with registered codes and spans inside the
text, and both renderers must accept them.  The default run is short; ``--runslow``
adds a long one.
"""

from __future__ import annotations

import json

import pytest
from conftest import SPECS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowspec
from flowspec.core.diagnostics import CODES, Diagnostic, render_json, render_text
from flowspec.core.spans import Source
from flowspec.syntax.dsl import KEYWORDS

TEXTS = [p.read_text(encoding="utf-8") for p in SPECS]

TOKENS = [
    *KEYWORDS,
    *"{}()[],=;:.+-*/%#\"'<\n\t",
    "<=",
    "0",
    "1",
    "-1",
    "0.5",
    "1e-5",
    "1e400",
    "9" * 30,
    "1.2.3",
    "1e",
    "0 / 0",
    '"cuda:1"',
    "cuda:1",
    "x",
    "y",
    "z1",
    "i",
    "steps",
    "split",
    "concat",
    "squeeze",
    "reshape",
    "shape=[-1]",
    "coupling.affine",
    "residual",
    "ode",
    "mlp(hidden=[8])",
    "net=",
    "cond=x",
    "sizes=[1, 1]",
    "order=random(seed=0)",
    "dim=-1",
    "factor=3",
    "lipschitz <= 2",
    "repeat 0 {",
    "repeat 3 as i {",
    "x = glow_step(x)",
    "a, b = split(x)",
    "x = concat(a, b)",
    "x = reverse(x)",
    "block b(x) { x = b(x); return x }",
    "output x",
]


@st.composite
def mutated_spec(draw) -> str:
    text = draw(st.sampled_from(TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "insert_char", "insert_token", "swap"]))
        pos = draw(st.integers(0, len(text)))
        if op == "delete":
            end = min(len(text), pos + draw(st.integers(1, 12)))
            text = text[:pos] + text[end:]
        elif op == "insert_char":
            text = (
                text[:pos] + draw(st.characters(min_codepoint=9, max_codepoint=0x2FF)) + text[pos:]
            )
        elif op == "insert_token":
            sep = draw(st.sampled_from(["", " "]))
            text = text[:pos] + sep + draw(st.sampled_from(TOKENS)) + sep + text[pos:]
        elif len(text) > 1:
            i, j = sorted((pos % len(text), draw(st.integers(0, len(text) - 1))))
            text = text[:i] + text[j] + text[i + 1 : j] + text[i] + text[j + 1 :]
    return text


def token_soup() -> st.SearchStrategy[str]:
    return st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join)


def assert_well_formed(text: str) -> None:
    diags = flowspec.check(text)
    assert isinstance(diags, list)
    source = Source("<string>", text)
    for d in diags:
        assert isinstance(d, Diagnostic)
        assert d.code in CODES
        for span in (d.span, *(label.span for label in d.labels)):
            assert 0 <= span.start <= span.end <= len(text), (d, len(text))
            assert (span.line, span.column) == source.position(span.start)
            assert (span.end_line, span.end_column) == source.position(span.end)
    render_text(diags, {"<string>": source})
    json.loads(render_json(diags))


FAST = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = settings(FAST, max_examples=5000)


@FAST
@given(mutated_spec())
def test_check_never_raises_on_mutated_specs(text):
    assert_well_formed(text)


@FAST
@given(token_soup())
def test_check_never_raises_on_token_soup(text):
    assert_well_formed(text)


@pytest.mark.slow
@LONG
@given(mutated_spec())
def test_check_never_raises_on_mutated_specs_long(text):
    assert_well_formed(text)


@pytest.mark.slow
@LONG
@given(token_soup())
def test_check_never_raises_on_token_soup_long(text):
    assert_well_formed(text)


HOSTILE = [
    "",
    "\x00",
    "flow",
    "flow f {",
    "}" * 50,
    "(" * 5000,
    "[" * 5000 + "]" * 5000,
    "flow f {\n input x: [" + "1+" * 2000 + "1]\n output x\n}",
    "flow f {\n input x: [2]\n" + "repeat 1 {\n" * 500 + "}\n" * 500 + " output x\n}",
    "flow f {\n input x: [4]\n repeat 1000 { repeat 1000 { repeat 1000 { } } }\n output x\n}",
    "flow f {\n input x: [4]\n let a = " + "9" * 300 + " * " + "9" * 300 + "\n output x\n}",
    "flow f {\n input x: [4]\n x = residual(x, lipschitz=" + "9" * 300 + ")\n output x\n}",
    "flow f {\n input x: [4]\n x = residual(x, lipschitz=1e400 - 1e400)\n output x\n}",
    "flow f {\n input x: [4]\n x = shuffle(x, seed=" + "9" * 300 + ")\n output x\n}",
    "flow f {\n input x: [0]\n output x\n}",
    "flow f {\n input x: []\n output x\n}",
    "flow f {\n input x: [4]\n x = reshape(x, shape=[0, -1])\n output x\n}",
    "flow f {\n input x: [4]\n x = reshape(x, shape=[-1, -1])\n output x\n}",
    "flow f {\n input x: [4]\n x = permute(x, order=[" + "0, " * 1000 + "]) \n output x\n}",
    "flow f {\n input x: [4]\n a, b = split(x, sizes=[])\n output a, b\n}",
    "flow f {\n input x: [4]\n x = concat(x)\n output x\n}",
    "flow f {\n input x: [4]\n x = squeeze(x, factor=0)\n output x\n}",
    "flow f {\n input x: [4]\n x = split(x, dim=99)\n output x\n}",
    "flow f {\n input x: [4]\n x = coupling.affine(x, cond=x, cond=x)\n output x\n}",
    "flow f {\n input x: [4]\n x = coupling.affine(x, net=3)\n output x\n}",
    "flow f {\n input x: [4]\n x = coupling.affine(x, net=mlp(3))\n output x\n}",
    "flow f {\n input x: [4]\n x = coupling.affine(x, net=x)\n output x\n}",
    "flow f {\n input x: [4]\n latent 3\n output x\n}",
    "flow f {\n input x: [4]\n dequantize uniform(bits=0.5)\n output x\n}",
    "flow f {\n input x: [4]\n require lipschitz <= relu\n output x\n}",
    "flow f {\n input x: [4]\n on cpu { output x }\n}",
    "flow f {\n input x: [4]\n repeat 2 { output x }\n}",
    "flow f { input x: [4]; x = b(x); output x }\nblock b(x, k=k) { return x }",
    "flow f { input x: [4]; x = b(x, x=1); output x }\nblock b(x) { return x }",
    "flow f { input x: [4]; x = b(x); output x }\n"
    "block b(x) { return x }\nblock b(y) { return y }",
    "block b(x) { input y: [2]; return x }\nflow f { input x: [4]; x = b(x); output x }",
    "flow f {\n input x: [2, 3]\n x = coupling.affine(x, mask=checkerboard)\n output x\n}",
    "flow f {\n input x: [1, 1, 1]\n x = coupling.affine(x, mask=checkerboard)\n output x\n}",
    "flow f {\n input x: [4]\n x = autoregressive.affine(x, cond=x)\n output x\n}",
]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda text: f"{len(text)}:{text[:24]!r}")
def test_check_never_raises_on_hostile_inputs(text):
    assert_well_formed(text)
