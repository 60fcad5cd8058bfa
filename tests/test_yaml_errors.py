"""YAML messages in plain words (flowspec.syntax.yaml_errors): syntax errors at the line
and column of the mistake with a ``help:`` hint, never PyYAML's wording; step keys
written as near-synonyms; option values inside nets reported at the option.

The annotated fixtures in tests/fixtures/diagnostics/*.yaml cover the common cases; the
ones below cannot carry annotations (a tab would be expanded in the comment, an unclosed
quote swallows the comment lines), so their position is given here and their rendering
is compared with tests/golden/yaml/NAME.txt (``FLOWSPEC_UPDATE_GOLDEN=1`` rewrites it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flowspec.core.diagnostics import render_text
from flowspec.core.spans import Source
from flowspec.driver import Compilation
from flowspec.syntax import yaml_errors

GOLDEN = Path(__file__).parent / "golden" / "yaml"

HEAD = "flowspec: 1\nflows:\n  - name: f\n"
BODY = "    input: {name: x, shape: [2]}\n    body:\n"
TAIL = "    output: [x]\n"

#: name → (text, code, line, column, message fragment, hint fragment)
CASES = {
    "tab_in_the_indentation": (
        HEAD + "\tinput: {name: x, shape: [2]}\n" + TAIL,
        "E100",
        4,
        1,
        "a tab in the indentation: YAML indents with spaces only",
        "check the indentation of this line against the one above",
    ),
    "tab_between_key_and_value": (
        HEAD + "    input:\t{name: x, shape: [2]}\n" + TAIL,
        "E100",
        4,
        11,
        "a tab where YAML expects a space",
        "replace the tab with a space",
    ),
    "unclosed_quote": (
        HEAD + BODY + '      - {op: reverse, in: "x}\n' + TAIL,
        "E100",
        6,
        27,
        "this quoted string is never closed",
        'add the closing `"`',
    ),
    "colon_inside_a_value": (
        HEAD + "    input: name: x\n" + TAIL,
        "E100",
        4,
        16,
        "a `: ` inside a value",
        "quote the value",
    ),
    "list_item_among_keys": (
        HEAD + "    input: {name: x, shape: [2]}\n    - {op: reverse, in: x}\n" + TAIL,
        "E100",
        5,
        5,
        "a list item `- ` among the keys of a mapping",
        "check the indentation of this line against the one above",
    ),
    "key_among_list_items": (
        HEAD + BODY + "      - {op: reverse, in: x}\n      out: x\n" + TAIL,
        "E100",
        7,
        7,
        "a `key:` among the items of a list",
        "check the indentation of this line against the one above",
    ),
    "list_item_indented_less": (
        HEAD + BODY + "      - op: reverse\n        in: x\n     - {op: reverse, in: x}\n" + TAIL,
        "E100",
        8,
        6,
        "bad indentation: this line is indented less (column 6) than the line above (column 9)",
        "check the indentation of this line against the one above",
    ),
    "text_after_a_value": (
        HEAD + "    input: {name: x, shape: [2]} body: []\n" + TAIL,
        "E100",
        4,
        34,
        "unexpected text after a complete value on this line",
        "on its own line",
    ),
    "closing_bracket_too_many": (
        HEAD + "    input: {name: x, shape: [2]}}\n" + TAIL,
        "E100",
        4,
        33,
        "`}` closes nothing: no `{` is open here",
        "remove it",
    ),
    "missing_comma": (
        HEAD + "    input: {name: x shape: [2]}\n" + TAIL,
        "E100",
        4,
        21,
        "missing `,` before `shape`",
        "with commas",
    ),
    "undefined_alias": (
        HEAD + "    input: *shape\n" + TAIL,
        "E100",
        4,
        12,
        "unknown alias `*shape`",
        "define the anchor",
    ),
    "duplicate_anchor": (
        HEAD + "    input: &a {name: x, shape: [2]}\n    latent: &a normal\n" + TAIL,
        "E100",
        5,
        13,
        "this anchor is defined twice",
        "another name",
    ),
    "two_documents": (
        HEAD + TAIL + "---\nflowspec: 1\n",
        "E100",
        5,
        1,
        "a second YAML document starts here",
        "remove the `---` line",
    ),
    "backquote": (
        HEAD + "    input: `x`\n" + TAIL,
        "E100",
        4,
        12,
        "a backquote cannot start a plain YAML value",
        "quote the value",
    ),
}

#: PyYAML's words, which no message may show
PYYAML_WORDS = ("<block", "<scalar>", "<stream", "while parsing", "while scanning", "but found")


def diagnose(text: str, name: str = "spec.yaml"):
    comp = Compilation(Source(name, text))
    return comp, comp.diagnostics


@pytest.mark.parametrize("name", sorted(CASES))
def test_yaml_syntax_errors_in_plain_words_at_the_mistake(name: str, update_golden) -> None:
    text, code, line, column, message, hint = CASES[name]
    comp, diags = diagnose(text, f"{name}.yaml")
    (d,) = diags
    assert (d.code, d.line, d.column) == (code, line, column), render_text(diags, comp.sources)
    assert message in d.message
    assert d.hint is not None and hint in d.hint
    assert not any(w in d.message or w in d.hint for w in PYYAML_WORDS), d.message
    rendered = render_text(diags, comp.sources)
    golden = GOLDEN / f"{name}.txt"
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(rendered, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden}; run with FLOWSPEC_UPDATE_GOLDEN=1"
    assert rendered == golden.read_text(encoding="utf-8")


def test_every_syntax_error_message_avoids_pyyaml_words() -> None:
    broken = [
        "a:\n  b: 1\n c: 2\n",
        "a: [1, 2\n",
        "a: {b: [1, 2}\n",
        "a: 'x\n",
        'a: "\\q"\n',
        "a: 1\nb\nc: 2\n",
        "%YAML 9.9\n---\na: 1\n",
        "a: @x\n",
    ]
    for text in broken:
        _, diags = diagnose(text)
        (d,) = diags
        assert d.code == "E100"
        assert not any(w in d.message for w in PYYAML_WORDS), d.message


@pytest.mark.parametrize(
    ("step", "key", "hint"),
    [
        ("{op: reverse, input: x}", "input", "did you mean `in`?"),
        ("{op: reverse, inputs: x}", "inputs", "did you mean `in`?"),
        ("{op: reverse, from: x}", "from", "did you mean `in`?"),
        ("{op: reverse, in: x, input: x}", "input", "`in` is given already: remove `input`"),
        ("{op: step, input: x}", "input", "did you mean `in`?"),  # a user's block too
    ],
)
def test_a_step_key_written_as_a_synonym_is_one_unknown_key_error(step, key, hint) -> None:
    blocks = "blocks:\n  - name: step\n    params: [x]\n    body: []\n    return: [x]\n"
    text = "flowspec: 1\n" + blocks + HEAD[len("flowspec: 1\n") :] + BODY + f"      - {step}\n"
    text += TAIL
    _, diags = diagnose(text)
    (d,) = diags  # no "a step needs `in`", no "`input` is a keyword"
    line = text.split("\n").index(f"      - {step}") + 1
    column = f"      - {step}".index(f"{key}:") + 1
    assert (d.code, d.line, d.column) == ("E100", line, column)
    assert d.message == f"unknown key `{key}` in a step"
    assert d.hint == hint


def test_a_net_written_with_its_kind_as_key_in_a_call_of_a_users_block() -> None:
    blocks = "blocks:\n  - name: step\n    params: [x, {net: mlp}]\n    body: []\n"
    blocks += "    return: [x]\n"
    step = '      - {op: step, in: x, net: {mlp: {hidden: "64, 64"}}}'
    text = "flowspec: 1\n" + blocks + HEAD[len("flowspec: 1\n") :] + BODY + step + "\n" + TAIL
    _, diags = diagnose(text)
    (d,) = diags
    line = text.split("\n").index(step) + 1
    assert (d.code, d.line, d.column) == ("E201", line, step.index("mlp:") + 1)
    assert d.message == "a net is written `{kind: mlp, ...}`, not `{mlp: {...}}`"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"64, 64"', "a list of integers"),  # an mlp's hidden
        ('"64,"', "a list of integers"),
    ],
)
def test_a_list_written_as_a_string_is_reported_at_the_option(value: str, expected: str) -> None:
    step = f"      - {{op: coupling.affine, in: x, net: {{kind: mlp, hidden: {value}}}}}"
    text = HEAD + BODY + step + "\n" + TAIL
    _, diags = diagnose(text)
    (d,) = diags
    assert (d.code, d.line, d.column) == ("E201", 6, step.index("hidden") + 1)
    assert d.span.end_column == step.index(value) + len(value) + 1  # `hidden: "..."`
    assert d.message == f"`hidden` expects {expected}, got the string {value}"


def test_what_reads_as_a_list() -> None:
    assert yaml_errors.looks_like_a_list("64, 64")
    assert yaml_errors.looks_like_a_list("2*h, h + 1")
    assert not yaml_errors.looks_like_a_list("64 64")
    assert not yaml_errors.looks_like_a_list("[64, 64]")
    assert not yaml_errors.looks_like_a_list("relu, (")
