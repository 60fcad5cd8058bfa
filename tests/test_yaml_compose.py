"""The YAML node tree from libyaml's events is PyYAML's own: same nodes, tags, values,
styles, offsets and shared (aliased) nodes; everything unusual is left to PyYAML.

The oracle is ``yaml.compose(text, Loader=yaml.SafeLoader)`` (PyYAML's pure-Python
scanner, parser and composer), on the YAML of every spec in ``specs/``, on YAML
documents hypothesis makes (with anchors, aliases, merge keys, flow and block styles,
quoted scalars and non-ASCII text), and on arbitrary text, where both must agree on
whether the text composes at all.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import yaml
from conftest import SPECS
from hypothesis import given, settings
from hypothesis import strategies as st
from test_grammar_fuzz import GRAMMAR_FAST

from flowspec.core.spans import Source
from flowspec.driver import Compilation
from flowspec.syntax import dsl
from flowspec.syntax.to_yaml import to_yaml
from flowspec.syntax.yaml_load import _NOT_COMPOSED, _compose_with_libyaml

pytestmark = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML without libyaml")


def _mark(mark: Any) -> int:
    """A mark's character offset: all flowspec reads of a node's marks (spans are
    made from offsets; libyaml puts the end of a collection that ends the text on the
    next line, PyYAML on the last, at the same offset)."""
    return mark.index


def _shape(node: Any, seen: dict[int, int]) -> Any:
    """A comparable picture of a node tree; a node met again is its first number."""
    if id(node) in seen:
        return ("again", seen[id(node)])
    seen[id(node)] = len(seen)
    head = (type(node).__name__, node.tag, _mark(node.start_mark), _mark(node.end_mark))
    if isinstance(node, yaml.ScalarNode):
        return (*head, node.value, node.style)
    if isinstance(node, yaml.SequenceNode):
        return (*head, node.flow_style, [_shape(n, seen) for n in node.value])
    return (
        *head,
        node.flow_style,
        [(_shape(k, seen), _shape(v, seen)) for k, v in node.value],
    )


def _pure(text: str) -> Any:
    try:
        return ("ok", yaml.compose(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return ("error", None)
    except RecursionError:
        return ("too deep", None)


def assert_same_tree(text: str) -> None:
    fast = _compose_with_libyaml(text)
    outcome, pure = _pure(text)
    if fast is _NOT_COMPOSED:
        return  # PyYAML composes it, as before
    if outcome == "too deep":
        return  # composed without recursion: the reader's depth limit reports it
    assert outcome == "ok", "libyaml composed a text PyYAML refuses"
    if pure is None:
        assert fast is None
        return
    assert _shape(fast, {}) == _shape(pure, {})


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_the_yaml_of_every_spec_composes_as_pyyaml_does(path):
    if path.suffix == ".flow":
        program, _ = dsl.parse(Source(str(path), path.read_text()))
        assert program is not None
        text = to_yaml(program)
    else:
        text = path.read_text()
    assert _compose_with_libyaml(text) is not _NOT_COMPOSED
    assert_same_tree(text)


_SCALARS = st.one_of(
    st.sampled_from(["x", "reverse", "1", "-2", "0.5", "1e-5", "true", "on", "yes", "~", ""]),
    st.sampled_from(['"quoted: é"', "'single'", "null", ".inf", "0x1F", "2026-12-04"]),
    st.text(alphabet="abé_ 09", min_size=1, max_size=6).map(lambda s: s.strip() or "w"),
)


def _documents() -> st.SearchStrategy[str]:
    def block(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.lists(children, min_size=1, max_size=3).map(lambda xs: ("seq", xs)),
            st.lists(st.tuples(_SCALARS, children), min_size=1, max_size=3).map(
                lambda kv: ("map", kv)
            ),
        )

    tree = st.recursive(_SCALARS, block, max_leaves=12)

    def render(node: Any, indent: int, flow: bool, anchor: list[int]) -> str:
        if isinstance(node, str):
            return node
        kind, items = node
        if flow:
            if kind == "seq":
                return "[" + ", ".join(render(i, 0, True, anchor) for i in items) + "]"
            return (
                "{"
                + ", ".join(
                    f"k{j}: {render(v, 0, True, anchor)}" for j, (_, v) in enumerate(items)
                )
                + "}"
            )
        pad = " " * indent
        lines = []
        for j, item in enumerate(items):
            value = item if kind == "seq" else item[1]
            head = f"{pad}- " if kind == "seq" else f"{pad}k{j}: "
            if isinstance(value, str):
                lines.append(head + value)
            else:
                anchor[0] += 1
                tag = f"&a{anchor[0]} " if anchor[0] % 2 else ""
                inner = render(value, indent + 2, anchor[0] % 3 == 0, anchor)
                lines.append(
                    head + tag + (inner if inner.startswith(("[", "{")) else "\n" + inner)
                )
        return "\n".join(lines)

    def document(node: Any) -> str:
        text = render(("map", [("root", node)]) if isinstance(node, str) else node, 0, False, [0])
        if "&a1" in text:
            text += "\nalias: *a1\n"
        return text + "\n"

    return tree.map(document)


FUZZ = settings(GRAMMAR_FAST, max_examples=int(os.environ.get("FLOWSPEC_FUZZ_EXAMPLES", "80")))


@FUZZ
@given(_documents())
def test_generated_documents_compose_as_pyyaml_does(text):
    assert_same_tree(text)


@FUZZ
@given(
    st.lists(
        st.sampled_from(list("ab:-[]{},&*!<# \n\t'\"é1") + ["\x00", "\ufeff"]), max_size=40
    ).map("".join)
)
def test_arbitrary_text_composes_as_pyyaml_does_or_is_left_to_it(text):
    assert_same_tree(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# only a comment\n",
        "a: &x [1, 2]\nb: *x\n",
        "base: &b {op: reverse}\nstep:\n  <<: *b\n  in: x\n",
        "a: *undefined\n",
        "a: &x 1\nb: &x 2\n",
        "a: 1\n---\nb: 2\n",
        "a: !!python/object:os.system ls\n",
        "a: !custom 1\n",
        "key: 'é ü'\nother: \"\\u2028\"\n",
        "a:\n" + "".join(f"{'  ' * i}- \n" for i in range(1, 40)),
        "[" * 500 + "]" * 500,
    ],
)
def test_corners_compose_as_pyyaml_does_or_are_left_to_it(text):
    assert_same_tree(text)


def test_deep_nesting_composes_without_recursion():
    # PyYAML's composer runs out of Python frames at a few hundred levels (libyaml
    # itself refuses over 1,000, and that text goes to PyYAML, which says "too deep")
    deep = "[" * 900 + "]" * 900
    with pytest.raises(RecursionError):
        yaml.compose(deep, Loader=yaml.SafeLoader)
    root = _compose_with_libyaml(deep)
    assert root is not _NOT_COMPOSED
    depth = 0
    while isinstance(root, yaml.SequenceNode) and root.value:
        root, depth = root.value[0], depth + 1
    assert depth == 899


def test_deep_yaml_is_still_reported_as_too_deep():
    body = "[" * 600 + "]" * 600
    text = f"flowspec: 1\nflows:\n  - name: f\n    input: {{name: x, shape: {body}}}\n"
    (d,) = Compilation(Source("deep.yaml", text)).diagnostics
    assert d.code == "E100" and "nests too deeply" in d.message
    line = text.splitlines()[3]
    assert d.span.line == 4 and line[d.span.column - 1] == "["  # at a list, not at 1:1
    assert d.span.column > line.index("[")
