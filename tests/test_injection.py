"""Spec text never becomes code (issue 8, findings 1 and 2).

The generated module copies each block's spec line into a ``# line N: …`` comment.
Python ends a line at a bare ``\\r``, so before the fix the text after a ``\\r`` in a spec
comment ran as code, and a NUL made ``compile`` raise ``SyntaxError``.  Here every
control character, every line terminator Python or ``str.splitlines`` knows and a few
invisible format characters are put into comments, whitespace, strings and names of
valid specs, compiled from *text* (a file read with universal newlines would hide the
``\\r``), and:

* nothing runs: nothing is printed and the file the injected code would create does
  not exist, after compiling and after ``forward``/``inverse``;
* the generated module parses to exactly the statements (``ast.dump``) of the same spec
  without the injected characters;
* a hypothesis test does the same for random injections into every spec of ``specs/``
  and the LANGUAGE.md example, and ``safe_comment``/``literal`` are tested on their own.
"""

from __future__ import annotations

import ast
import importlib.util
import keyword
import math
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import torch
from conftest import SPECS
from harness import LANGUAGE_MD_REALNVP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowspec
from flowspec.codegen import literal, safe_comment
from flowspec.core.diagnostics import SpecError
from flowspec.core.spans import Source
from flowspec.driver import Compilation
from flowspec.kinds.options import Choice

#: every line terminator of Python's tokenizer and of ``str.splitlines``
TERMINATORS = (
    "\r",
    "\n",
    "\r\n",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x1d",
    "\x1e",
    "\x85",
    "\u2028",
    "\u2029",
)
#: characters that may stand in a ``.flow`` comment: every control character but ``\n``
#: (which ends the comment in the spec itself), the Unicode line and paragraph separators,
#: and invisible format characters (bidi override, zero-width space, BOM), a lone surrogate
COMMENT_CHARS = (
    *(chr(c) for c in range(0x20) if c != 0x0A),
    *(chr(c) for c in range(0x7F, 0xA0)),
    "\u2028",
    "\u2029",
    "\u202e",
    "\u200b",
    "\ufeff",
    "\ud800",
)
#: the characters issue 8 names, for the regression tests that run the module
NAMED = ("\r", "\x0c", "\x00", "\u2028", "\x85", "\x0b", "\x1c", "\x1d", "\x1e", "\u2029")


def spec(tail: str = "") -> str:
    """The issue's reproducer: ``tail`` follows ``# note`` on the coupling's line."""
    return (
        "flow f {\n"
        "    input x: [2]\n"
        f"    x = coupling.affine(x, net=mlp(hidden=[8]))  # note{tail}\n"
        "    x = reverse(x)\n"
        "    output x\n"
        "}\n"
    )


def generated(text: str, flow: str | None = None) -> str:
    return Compilation(Source("<string>", text)).generate(flow)


def statements(source: str) -> str:
    """What the generated module does, comments aside."""
    return ast.dump(ast.parse(source))


def payload(flag: Path) -> str:
    """Python that prints and creates ``flag`` if it ever runs."""
    return f'print("INJECTED"); open({str(flag)!r}, "w").close()'


def assert_inert(flow: flowspec.Flow, flag: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Run the module both ways; nothing may print, ``flag`` must not appear."""
    x = torch.randn(4, *flow.input_shape)
    z, _ = flow(x)
    flow.inverse(z)
    flow.transform(x)
    flow.inverse_transform(z)
    out, err = capfd.readouterr()
    assert "INJECTED" not in out + err
    assert not flag.exists()


# ------------------------------------------------------------- the reproducers, exactly


def test_issue_reproducer_does_not_run(capfd: pytest.CaptureFixture[str]) -> None:
    text = (
        "flow f {\n    input x: [2]\n    x = coupling.affine(x, net=mlp(hidden=[8]))  # note\r"
        '        print("INJECTED")\n    x = reverse(x)\n    output x\n}\n'
    )
    flow = flowspec.compile(text)
    flow(torch.randn(3, 2))
    out, err = capfd.readouterr()
    assert "INJECTED" not in out + err
    assert statements(flow.GENERATED_SOURCE) == statements(generated(spec()))
    assert "# note\\x0d        print(" in flow.GENERATED_SOURCE


def test_nul_in_a_comment_compiles() -> None:
    flow = flowspec.compile(spec("\x00"))
    assert "\x00" not in flow.GENERATED_SOURCE
    assert "# note\\x00" in flow.GENERATED_SOURCE
    assert statements(flow.GENERATED_SOURCE) == statements(generated(spec()))


# --------------------------------------------------------------------- comments


@pytest.mark.parametrize("indent", ["", "        "], ids=["flush", "indented"])
@pytest.mark.parametrize("ch", NAMED, ids=[f"U+{ord(c):04X}" for c in NAMED])
def test_terminator_in_a_comment_runs_nothing(
    ch: str, indent: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    flag = tmp_path / "pwned"
    text = spec(ch + indent + payload(flag))
    assert not [d for d in flowspec.check(text) if d.is_error]
    flow = flowspec.compile(text)
    assert_inert(flow, flag, capfd)
    assert statements(flow.GENERATED_SOURCE) == statements(generated(spec()))


@pytest.mark.parametrize("ch", COMMENT_CHARS, ids=[f"U+{ord(c):04X}" for c in COMMENT_CHARS])
def test_every_control_character_in_a_comment_keeps_the_statements(ch: str) -> None:
    source = generated(spec(ch + '        print("INJECTED")'))
    assert statements(source) == statements(generated(spec()))
    assert all(line.isprintable() for line in source.split("\n"))


@pytest.mark.parametrize("ch", ["\r", "\x0c"], ids=["CR", "FF"])
def test_carriage_return_as_whitespace_in_a_call(ch: str) -> None:
    """``\\r`` and ``\\f`` are whitespace to the .flow lexer, inside a call too; the text
    after them is flow syntax, and stays in the comment."""
    text = spec().replace("(x, net=", f"(x,{ch}net=")
    assert not [d for d in flowspec.check(text) if d.is_error]
    source = generated(text)
    assert statements(source) == statements(generated(spec()))
    assert f"(x,{safe_comment(ch)}net=" in source


def test_line_separators_keep_line_numbers() -> None:
    """A ``\\u2028`` is no line break to the .flow front end: the next block is still
    reported at its own line, and its comment says so."""
    source = generated(spec("\u2028\u2029\x85 more"))
    assert "# line 4: x = reverse(x)" in source
    assert "# line 3: x = coupling.affine(x, net=mlp(hidden=[8]))  # note\\u2028" in source


def test_injection_into_a_block_body_and_its_call_site(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Lines of a ``block`` body are copied with the call site's line number; both
    the body line and the call line may carry the injection."""
    flag = tmp_path / "pwned"

    def text(tail: str) -> str:
        return (
            f"block step(x) {{\n    x = coupling.affine(x, net=mlp(hidden=[8]))  #{tail}\n"
            "    x = reverse(x)\n    return x\n}\n"
            f"flow f {{\n    input x: [2]\n    x = step(x)  #{tail}\n    output x\n}}\n"
        )

    flow = flowspec.compile(text("\r        " + payload(flag)))
    assert_inert(flow, flag, capfd)
    assert statements(flow.GENERATED_SOURCE) == statements(generated(text("")))


def test_iterative_block_names_are_strings(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A residual block gets its spec position as a ``name`` string literal; the comment
    on its line is still only a comment."""
    flag = tmp_path / "pwned"
    base = (
        "flow f {{\n    input x: [2]\n"
        "    x = residual(x, net=mlp(hidden=[8]))  #{}\n    output x\n}}\n"
    )
    flow = flowspec.compile(base.format("\r" + payload(flag)))
    assert_inert(flow, flag, capfd)
    assert statements(flow.GENERATED_SOURCE) == statements(generated(base.format("")))
    assert flow.b0.name == "residual at <string>:3:9"


# ---------------------------------------------------------------------- strings


@pytest.mark.parametrize("ch", NAMED, ids=[f"U+{ord(c):04X}" for c in NAMED])
def test_terminator_in_a_device_string_is_e500(
    ch: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    flag = tmp_path / "pwned"
    device = "cpu" + ch + payload(flag).replace('"', "'")
    text = (
        "flow f {\n    input x: [2]\n"
        f'    on "{device}" {{\n        x = coupling.affine(x, net=mlp(hidden=[8]))\n    }}\n'
        "    x = reverse(x)\n    output x\n}\n"
    )
    errors = [d for d in flowspec.check(text) if d.is_error]
    assert [(d.code, d.span.line, d.span.column) for d in errors] == [("E500", 3, 8)]
    with pytest.raises(SpecError):
        flowspec.compile(text)
    out, err = capfd.readouterr()
    assert "INJECTED" not in out + err
    assert not flag.exists()


def test_device_string_reaches_the_module_through_repr() -> None:
    text = (
        "flow f {\n    input x: [2]\n"
        '    on "cpu" {  # \r"; print("INJECTED")\n'
        "        x = coupling.affine(x, net=mlp(hidden=[8]))\n    }\n"
        "    x = reverse(x)\n    output x\n}\n"
    )
    source = generated(text)
    assert "DEVICES = {'b0': 'cpu'}" in source
    assert "INJECTED" not in source  # the `on` line is no block's line


# ------------------------------------------------------------------- YAML names


YAML = """\
flowspec: 1
flows:
  - name: f
    input: {name: x, shape: [2]}
    body:
      - {op: coupling.affine, in: x, net: {kind: mlp, hidden: [8]}}  # note
      - {op: reverse, in: x}
    output: [x]
"""


def test_yaml_name_with_a_trailing_newline_is_e100() -> None:
    """jsonschema matches ``pattern`` with ``re.search``, where ``$`` also matches before
    a final newline; the lowerer checks names again."""
    text = YAML.replace("name: x", 'name: "x\\n"').replace("name: f", 'name: "f\\n"')
    errors = sorted((d.code, d.span.line, d.span.column) for d in flowspec.check(text))
    assert errors == [("E100", 3, 11), ("E100", 4, 19)]


@pytest.mark.parametrize("ch", NAMED, ids=[f"U+{ord(c):04X}" for c in NAMED])
def test_yaml_comment_or_name_with_a_terminator(
    ch: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """In YAML the same characters are a reading error (YAML breaks lines at ``\\r``,
    ``\\x85``, ``\\u2028``, ``\\u2029`` and refuses the other controls) or stay in a
    comment; either way nothing runs."""
    flag = tmp_path / "pwned"
    for text in (
        YAML.replace("# note", "# note" + ch + "        " + payload(flag)),
        YAML.replace("name: x", f'name: "x{ch.encode("unicode_escape").decode()}"'),
    ):
        try:
            flow = flowspec.compile(text)
        except SpecError as e:
            assert {d.code for d in e.diagnostics if d.is_error} == {"E100"}
        else:
            assert_inert(flow, flag, capfd)
            assert statements(flow.GENERATED_SOURCE) == statements(generated(YAML))
    out, err = capfd.readouterr()
    assert "INJECTED" not in out + err
    assert not flag.exists()


# --------------------------------------------------------------- the CLI on files


NUL_SPEC = spec("\x00")


def test_summary_of_a_file_with_a_nul_in_a_comment(tmp_path: Path) -> None:
    path = tmp_path / "nul.flow"
    path.write_text(NUL_SPEC, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "flowspec", "summary", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "flowspec crashed" not in proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert "coupling.affine" in proc.stdout


def test_written_module_of_a_file_with_separators_runs_nothing(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Universal newlines turn a file's ``\\r`` into ``\\n``, but not ``\\x0c``, ``\\x85``
    or ``\\u2028``: ``compile -o`` writes them escaped, and importing the module (and
    running it) prints nothing."""
    path = tmp_path / "sep.flow"
    path.write_text(
        spec('\x0c\x85\u2028\u2029\x00\x1c print("INJECTED")'), encoding="utf-8", newline=""
    )
    subprocess.run(
        [sys.executable, "-m", "flowspec", "compile", str(path), "-o", str(tmp_path / "model.py")],
        capture_output=True,
        check=True,
    )
    written = (tmp_path / "model.py").read_text(encoding="utf-8")
    assert all(line.isprintable() for line in written.split("\n"))
    assert "\\x0c\\x85\\u2028\\u2029\\x00\\x1c print(" in written
    module_spec = importlib.util.spec_from_file_location("injected_model", tmp_path / "model.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    module.Model()(torch.randn(2, 2))
    out, err = capfd.readouterr()
    assert "INJECTED" not in out + err


# ------------------------------------------------- the meta test: no raw control char


def _all_spec_sources() -> list[tuple[str, str]]:
    from flowspec.syntax.to_yaml import to_yaml

    out = []
    for path in SPECS:
        comp = Compilation.of(path)
        for name in comp.flow_names():
            out.append((f"{path.name}:{name}", comp.generate(name)))
        yaml_text = to_yaml(comp.program)
        ycomp = Compilation(Source(path.stem + ".yaml", yaml_text))
        for name in ycomp.flow_names():
            out.append((f"{path.stem}.yaml:{name}", ycomp.generate(name)))
    return out


def test_generated_source_of_every_spec_has_no_raw_control_character() -> None:
    for where, source in _all_spec_sources():
        bad = [(i, line) for i, line in enumerate(source.split("\n"), 1) if not line.isprintable()]
        assert not bad, f"{where}: generated lines with a raw control character: {bad[:3]}"
        assert len(source.splitlines()) == source.count("\n") + (not source.endswith("\n"))


# ------------------------------------------------------------------- hypothesis

#: valid specs to inject into: every reference spec and the LANGUAGE.md example
BASES = (*(p.read_text(encoding="utf-8") for p in SPECS), LANGUAGE_MD_REALNVP)
TAILS = (
    'print("INJECTED")',
    '        print("INJECTED")',
    '\timport os; os.system("echo INJECTED")',
    "x = reverse(x)",
    "raise SystemExit(3)",
    '"""',
    "'",
    "\\",
)


@cache
def _base_statements(index: int) -> tuple[tuple[str, str], ...]:
    comp = Compilation(Source("<string>", BASES[index]))
    return tuple((name, statements(comp.generate(name))) for name in comp.flow_names())


@st.composite
def injections(draw) -> tuple[int, str]:
    """A base spec with control characters and code-carrying tails put into comments
    appended to some of its lines, and ``\\r``/``\\f`` in place of some spaces."""
    index = draw(st.integers(0, len(BASES) - 1))
    lines = BASES[index].split("\n")
    chars = st.sampled_from(COMMENT_CHARS)
    for k in draw(st.lists(st.integers(0, len(lines) - 1), min_size=1, max_size=4)):
        parts = draw(st.lists(st.tuples(chars, st.sampled_from(TAILS)), min_size=1, max_size=3))
        lines[k] += "  #" + "".join(ch + tail for ch, tail in parts)
    spaces = [(k, i) for k, line in enumerate(lines) for i, c in enumerate(line) if c == " "]
    if spaces:
        for k, i in draw(st.lists(st.sampled_from(spaces), max_size=3, unique=True)):
            ws = draw(st.sampled_from("\r\x0c"))
            lines[k] = lines[k][:i] + ws + lines[k][i + 1 :]
    return index, "\n".join(lines)


def _same_statements(case: tuple[int, str]) -> None:
    index, text = case
    comp = Compilation(Source("<string>", text))
    assert not comp.errors, comp.errors
    for name, expected in _base_statements(index):
        source = comp.generate(name)
        assert statements(source) == expected
        assert all(line.isprintable() for line in source.split("\n"))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(injections())
def test_injected_specs_generate_the_same_statements(case: tuple[int, str]) -> None:
    _same_statements(case)


@pytest.mark.slow
@settings(max_examples=1500, deadline=20_000, suppress_health_check=[HealthCheck.too_slow])
@given(injections())
def test_injected_specs_generate_the_same_statements_long(case: tuple[int, str]) -> None:
    _same_statements(case)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_safe_comment_is_one_printable_line(text: str) -> None:
    comment = "# " + safe_comment(text)
    assert comment.isprintable()
    assert len(comment.splitlines()) == 1
    tree = ast.parse(comment + "\nvalue = 1\n")
    assert [type(s) for s in tree.body] == [ast.Assign]


@pytest.mark.parametrize("term", TERMINATORS, ids=[repr(t) for t in TERMINATORS])
def test_safe_comment_escapes_every_terminator(term: str) -> None:
    escaped = safe_comment(f"a{term}b")
    assert (
        escaped
        == "a"
        + "".join(f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in term)
        + "b"
    )
    assert safe_comment("x = actnorm(x)  # → ≤ ×") == "x = actnorm(x)  # → ≤ ×"


_DATA = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        | st.builds(
            lambda kind, opts: Choice(kind, opts),
            st.text(max_size=8),
            st.dictionaries(
                st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).filter(
                    lambda k: not keyword.iskeyword(k)
                ),
                inner,
                max_size=3,
            ),
        )
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(_DATA)
def test_literal_is_the_value_and_one_expression(value: object) -> None:
    text = literal(value)
    assert text.isprintable()
    tree = ast.parse(text, mode="eval")
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert calls <= {"Choice", "float"}
    assert (
        eval(
            compile(tree, "<literal>", "eval"),
            {"__builtins__": {}, "Choice": Choice, "float": float},
        )
        == value
    )


def test_literal_of_non_finite_floats() -> None:
    assert literal(math.inf) == "float('inf')"
    assert literal([-math.inf]) == "[float('-inf')]"
    assert literal(float("nan")) == "float('nan')"
    with pytest.raises(TypeError):
        literal(object())
