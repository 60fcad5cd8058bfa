"""The YAML front end validates each statement on its own, deciding the schema's
``if``/``then`` chains in Python (:class:`flowspec.syntax.yaml_schema_errors._Statements`,
for speed).  These tests hold it to the whole schema: on every spec of the repository,
on random statements and on nested bodies, the errors are exactly those
``jsonschema`` reports for the whole document."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from flowspec.kinds import REGISTRY
from flowspec.syntax.schema import STATEMENT_KEYS, validator
from flowspec.syntax.yaml_schema_errors import _schema_errors


def _key(error) -> tuple:
    return (tuple(error.absolute_path), error.validator, error.message)


def _same_errors(instance) -> None:
    whole = Counter(_key(e) for e in validator().iter_errors(instance))
    split = Counter(_key(e) for e in _schema_errors(instance))
    assert split == whole


def _document(body: list) -> dict:
    return {
        "flowspec": 1,
        "flows": [{"name": "f", "body": [{"input": {"name": "x", "shape": [4]}}, *body]}],
    }


names = st.sampled_from(["x", "y", "a_1", "in", "out", "2x", "flow", "", "op"])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 70), st.floats(-2, 2), names, st.just(2.0)
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(names, inner, max_size=3)
    ),
    max_leaves=6,
)
keys = st.one_of(
    st.sampled_from([*STATEMENT_KEYS, "in", "out", "body", "net", "hidden", "seed", "times"]),
    names,
)
kinds = st.sampled_from([*REGISTRY, "nope", "coupling"])


@st.composite
def statements(draw, depth: int = 2):
    stmt = draw(st.dictionaries(keys, values, max_size=4))
    if draw(st.booleans()):
        stmt["op"] = draw(st.one_of(kinds, scalars))
    if depth and draw(st.integers(0, 4)) == 0:
        stmt[draw(st.sampled_from(["repeat", "on"]))] = draw(st.one_of(st.integers(1, 3), names))
        stmt["body"] = draw(st.lists(statements(depth - 1), max_size=3))
    if draw(st.integers(0, 9)) == 0:
        return draw(values)  # not a mapping
    return stmt


@settings(max_examples=300, deadline=None)
@given(st.lists(statements(), max_size=4))
def test_random_statements_get_the_errors_of_the_whole_schema(body):
    _same_errors(_document(body))


def test_every_yaml_spec_of_the_repository_gets_the_errors_of_the_whole_schema():
    from flowspec.core.spans import Source
    from flowspec.syntax.yaml_load import _Reader

    paths = [*ROOT.glob("specs/**/*.yaml"), *ROOT.glob("tests/**/*.yaml")]
    paths += [*ROOT.glob("examples/**/*.yaml"), *ROOT.glob("benchmarks/**/*.yaml")]
    checked = 0
    for path in paths:
        reader = _Reader(Source(str(path), Path(path).read_text(encoding="utf-8")))
        try:
            data = reader.data(reader.compose())
        except Exception:  # a fixture that is not YAML at all
            continue
        _same_errors(data)
        checked += 1
    assert checked >= 5


def test_the_steps_of_every_kind_get_the_errors_of_the_whole_schema():
    body = []
    for kind in REGISTRY:
        body += [{"op": kind, "in": "x"}, {"op": kind, "in": "x", "bogus": 1, "net": 3}]
    _same_errors(_document(body))
    _same_errors(_document([{"repeat": 2, "body": body}, {"on": "cpu", "body": [body[1]]}]))
