"""Programs nobody wrote: generated from the grammar, and random valid specs compiled.

* ``grammar/flow.lark`` through ``hypothesis.extra.lark.from_lark``: every program the
  grammar derives goes through ``flowspec.check``, which must return diagnostics with
  registered codes and spans inside the text (``test_fuzz.assert_well_formed``), never
  raise.  Terminals get explicit strategies so the programs read like specs: every
  keyword and punctuation mark is spaced (or adjacent tokens would lex as one name),
  names come mostly from the language's own vocabulary (block kinds, options, enum
  words, tensor names), numbers and strings from values specs use.  Comments carry
  any character but a line feed (NUL, ``\r``, U+2028 ...), and whitespace is the
  grammar's own pattern (spaces, tabs, form feeds, ``\r``).
* The random valid programs of ``test_property_compile`` are checked clean, compiled
  in float64 with their parameters perturbed, and round-tripped (inverse ∘ forward is
  the identity, inverse ladj = −forward ladj); their YAML conversion compiles to a
  module with the same outputs.

The slow runs have a generous per-example deadline (5 s), so an input that makes the
checker or the compiler crawl fails the run; the default runs take a few examples
with no deadline.
"""

from __future__ import annotations

from datetime import timedelta
from importlib import resources

import pytest
import torch
from conftest import SPECS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark import Lark
from test_fuzz import assert_well_formed
from test_property_compile import prepared, programs

import flowspec
from flowspec.core.spans import Source
from flowspec.kinds import REGISTRY
from flowspec.syntax import dsl
from flowspec.syntax.dsl import KEYWORDS
from flowspec.syntax.to_yaml import to_yaml

# ------------------------------------------------------------------ the grammar

_PARTS = sorted({part for kind in REGISTRY for part in kind.split(".")})
_OPTIONS = sorted({o.name for spec in REGISTRY.values() for o in spec.options})
#: tensor names, enum words, nets and estimators, requirements, devices
_WORDS = (
    *("x", "y", "z", "a", "b", "h", "i", "n", "k", "c"),
    *("relu", "tanh", "elu", "softplus", "lipswish", "half", "alternate", "checkerboard"),
    *("exp", "sigmoid", "softclamp", "natural", "random", "mlp", "conv", "resnet"),
    *("normal", "logistic", "uniform", "exact", "hutchinson", "roulette", "neumann"),
    *("fixedpoint", "dopri5", "euler", "rk4", "lipschitz", "inverse_lipschitz"),
    *("invertible", "exact_logdet", "analytic_inverse", "cpu", "cuda", "mps", "meta"),
)
_VOCABULARY = st.sampled_from(sorted({*_PARTS, *_OPTIONS, *_WORDS}))
#: three names in four from the vocabulary, the others made up
NAMES = st.one_of(
    _VOCABULARY,
    _VOCABULARY,
    _VOCABULARY,
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(
        lambda s: s not in KEYWORDS
    ),
)
INTS = st.one_of(
    st.sampled_from(("0", "1", "2", "3", "4", "8", "16", "64", "1000000000000")),
    st.integers(0, 10**6).map(str),
)
FLOATS = st.sampled_from(("0.5", "1.0", "2.0", "0.97", "1.2", "1e-5", "3.0", "1e308", "0.0"))
STRINGS = st.one_of(
    st.sampled_from(('"cpu"', '"cuda:0"', '"cuda:1"', '"meta"', '""', '"a\\"b"')),
    st.from_regex(r'"([^"\\\n]|\\.){0,8}"', fullmatch=True),
)

#: any character but a line feed, as the grammar's COMMENT allows: NUL, \r, U+2028 ...
COMMENTS = st.text(st.characters(codec="utf-8", exclude_characters="\n"), max_size=12).map(
    lambda text: "#" + text
)


def _spaced(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return strategy.map(lambda s: f" {s} ")


def grammar_programs() -> st.SearchStrategy[str]:
    """Programs derived from ``grammar/flow.lark`` (start ``program``)."""
    # the grammar of dsl.parser(), built afresh: a Lark loaded from lark's cache keeps
    # no grammar for from_lark to read
    text = resources.files("flowspec.grammar").joinpath("flow.lark").read_text("utf-8")
    grammar = Lark(text, start="program", parser="lalr", lexer="basic")
    explicit = {
        t.name: st.just(f" {t.pattern.value} ")
        for t in grammar.terminals
        if t.pattern.type == "str"
    }
    explicit |= {
        # a comment runs to the end of its line: one between two tokens of a statement
        # would swallow the rest, so a comment always ends its line here (where a line
        # may not end, the program is a syntax error, as it would be written)
        "COMMENT": st.one_of(st.just(" "), COMMENTS.map(lambda c: f" {c}\n")),
        "NAME": _spaced(NAMES),
        "INT": _spaced(INTS),
        "FLOAT": _spaced(FLOATS),
        "STRING": _spaced(STRINGS),
    }
    return from_lark(grammar, start="program", explicit=explicit)


@pytest.fixture(autouse=True, scope="module")
def warm() -> None:
    """The first example must not pay for the imports: the deadline is per example."""
    realnvp = next(p for p in SPECS if p.stem == "realnvp")
    flowspec.check(realnvp)
    flowspec.compile(realnvp)


GRAMMAR_FAST = settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
GRAMMAR_LONG = settings(GRAMMAR_FAST, max_examples=1200, deadline=timedelta(seconds=5))


@GRAMMAR_FAST
@given(grammar_programs())
def test_check_never_raises_on_grammar_programs(text):
    assert_well_formed(text)


@pytest.mark.slow
@GRAMMAR_LONG
@given(grammar_programs())
def test_check_never_raises_on_many_grammar_programs(text):
    assert_well_formed(text)


def test_grammar_programs_mostly_parse():
    """The explicit terminals make programs the parser takes, so the fuzzing reaches
    lowering and the passes, not only the syntax errors."""
    parsed = []

    # derandomized: a fraction over a random draw of 40 must not make the suite flaky
    @settings(GRAMMAR_FAST, max_examples=40, derandomize=True)
    @given(grammar_programs())
    def run(text):
        parsed.append(dsl.parse(Source("t.flow", text))[0] is not None)

    run()
    assert sum(parsed) >= len(parsed) // 2, (sum(parsed), len(parsed))


# ---------------------------------------------------------- valid programs, compiled


def assert_compiles_and_round_trips(text: str, planar: bool) -> None:
    errors = [d for d in flowspec.check(text) if d.is_error]
    assert not errors, [(d.code, d.message) for d in errors]
    flow = prepared(text)
    x = torch.randn(
        16, *flow.input_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2)
    )
    with torch.no_grad():
        z, ladj = flow(x)
        x_back, ladj_inv = flow.inverse(z)
    tol = 1e-6 if planar else 1e-7  # planar inverts by root finding, to its tolerance
    assert (x_back - x).abs().max() < tol, (x_back - x).abs().max()
    assert (ladj_inv + ladj).abs().max() < 1e-6, (ladj_inv + ladj).abs().max()
    program, _ = dsl.parse(Source("t.flow", text))
    twin = prepared(to_yaml(program))  # same seed, same parameters in the same order
    with torch.no_grad():
        z2, ladj2 = twin(x)
    assert torch.equal(z2, z) and torch.equal(ladj2, ladj)


COMPILE_FAST = settings(
    max_examples=3,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
COMPILE_LONG = settings(COMPILE_FAST, max_examples=500, deadline=timedelta(seconds=5))


@COMPILE_FAST
@given(programs())
def test_valid_programs_compile_and_round_trip(program):
    assert_compiles_and_round_trips(*program)


@pytest.mark.slow
@COMPILE_LONG
@given(programs())
def test_many_valid_programs_compile_and_round_trip(program):
    assert_compiles_and_round_trips(*program)
