"""Issue 8, findings 6, 7 and 10: size limits before parsing (E205), rendering that stays
bounded on huge lines, and invisible characters shown as code points in messages.

No test here times anything: ``benchmarks/bench_scale.py`` shows the time per
statement at 1k, 5k and 20k statements, where a quadratic step would stand out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import flowspec
from flowspec.core.diagnostics import (
    Diagnostic,
    render_concise,
    render_json,
    render_junit,
    render_sarif,
    render_text,
)
from flowspec.core.names import visible
from flowspec.core.spans import Source
from flowspec.driver import Compilation, load_source
from flowspec.syntax import dsl
from flowspec.syntax import yaml as yaml_front
from flowspec.syntax.limits import MAX_BYTES, MAX_STATEMENTS, Limits


def reverses(n: int) -> str:
    """A flow of ``n`` reverses: n + 3 statements (the header, input and output)."""
    return "flow f {\n    input x: [2]\n" + "    x = reverse(x)\n" * n + "    output x\n}\n"


def yaml_reverses(n: int) -> str:
    body = "      - {op: reverse, in: x}\n" * n
    return (
        "flowspec: 1\nflows:\n  - name: f\n    input: {name: x, shape: [2]}\n"
        f"    body:\n{body}    output: [x]\n"
    )


def where(diags: list[Diagnostic]) -> list[tuple[str, int, int]]:
    return [(d.code, d.line, d.column) for d in diags]


def flowspec_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowspec", *args], capture_output=True, text=True, check=False
    )


# ------------------------------------------------------------------ statement limit


def test_the_defaults_are_one_mebibyte_and_twenty_thousand_statements():
    assert (MAX_BYTES, MAX_STATEMENTS) == (1 << 20, 20_000)


def test_a_20000_statement_spec_is_refused_at_the_first_statement_over_the_limit():
    # 20,003 statements: the 20,001st is the reverse on line 20,001
    (d,) = flowspec.check(reverses(20_000))
    assert where([d]) == [("E205", 20_001, 5)]
    assert "more than 20,000 statements" in d.message
    assert "--max-statements" in d.hint


@pytest.mark.slow  # parses 20,000 statements (4 s); CI runs it (-m slow)
def test_with_the_statement_limit_off_the_20000_statement_spec_reaches_e203():
    (d,) = flowspec.check(reverses(20_000), max_statements=0)
    assert where([d]) == [("E203", 10_004, 9)]
    assert "unrolls to more than 10000 blocks" in d.message


def test_a_spec_at_the_limit_is_checked():
    assert "E205" not in {d.code for d in flowspec.check(reverses(7), max_statements=10)}
    assert where(flowspec.check(reverses(8), max_statements=10)) == [("E205", 11, 5)]


def test_the_statement_scan_counts_as_the_parser_separates():
    text = (
        "flow f {  # a comment; with separators { }\n"
        "    input x: [2]; let s = 1\n"
        "    x = coupling.affine(x,\n"
        "        net=mlp(hidden=[8,\n"
        "            8]))\n"
        '    on "cpu;{}" { x = reverse(x) }\n'
        "    output x\n"
        "}\n"
    )
    # flow header, input, let, coupling (3 lines), on, reverse, output: 7 statements
    assert "E205" not in {d.code for d in flowspec.check(text, max_statements=7)}
    (d,) = flowspec.check(text, max_statements=6)
    assert where([d]) == [("E205", 7, 5)]


def test_yaml_counts_the_items_of_every_body():
    assert "E205" not in {d.code for d in flowspec.check(yaml_reverses(3), max_statements=3)}
    (d,) = flowspec.check(yaml_reverses(5), max_statements=3)
    assert where([d]) == [("E205", 9, 9)]  # the fourth step


def test_yaml_counts_nested_bodies():
    text = (
        "flowspec: 1\nflows:\n  - name: f\n    input: {name: x, shape: [2]}\n    body:\n"
        "      - repeat: 2\n        body:\n          - {op: reverse, in: x}\n"
        "          - {op: reverse, in: x}\n    output: [x]\n"
    )
    assert "E205" not in {d.code for d in flowspec.check(text, max_statements=3)}
    assert where(flowspec.check(text, max_statements=2)) == [("E205", 9, 13)]


# ----------------------------------------------------------------------- byte limit


def test_flow_text_over_the_byte_limit_is_refused_at_line_1_column_1():
    text = reverses(40)
    (d,) = flowspec.check(text, max_bytes=len(text) - 1)
    assert where([d]) == [("E205", 1, 1)]
    assert f"larger than the limit of {len(text) - 1:,} bytes" in d.message
    assert "E205" not in {d.code for d in flowspec.check(text, max_bytes=len(text))}


def test_the_byte_limit_counts_utf8_bytes_not_characters():
    text = reverses(2).replace("flow f {", "flow f {  # ünïcödé")
    size = len(text.encode())
    assert size > len(text)
    assert where(flowspec.check(text, max_bytes=size - 1)) == [("E205", 1, 1)]
    assert "E205" not in {d.code for d in flowspec.check(text, max_bytes=size)}


def test_yaml_over_the_byte_limit_is_refused_before_loading():
    text = yaml_reverses(40)
    program, diags = yaml_front.parse(Source("s.yaml", text), Limits(max_bytes=100))
    assert program is None
    assert where(diags) == [("E205", 1, 1)]


def test_a_ten_megabyte_file_is_refused_without_being_read_whole(tmp_path):
    path = tmp_path / "big.flow"
    path.write_text(reverses(600_000))  # 11 MB
    source = load_source(path)
    assert len(source.text) == MAX_BYTES + 1
    comp = Compilation.of(path)
    assert where(comp.diagnostics) == [("E205", 1, 1)]
    yaml_path = tmp_path / "big.yaml"
    yaml_path.write_text(yaml_reverses(400_000))  # 12 MB
    assert where(flowspec.check(yaml_path)) == [("E205", 1, 1)]


def test_dsl_parse_applies_the_limits_itself():
    program, diags = dsl.parse(Source("t.flow", reverses(5)), Limits(max_statements=4))
    assert program is None and where(diags) == [("E205", 5, 5)]


def test_compile_takes_the_limits_too():
    with pytest.raises(flowspec.SpecError) as e:
        flowspec.compile(reverses(5), max_statements=4)
    assert [d.code for d in e.value.diagnostics] == ["E205"]


# ------------------------------------------------------------------- the CLI flags


def test_the_cli_flags_override_the_limits(tmp_path):
    path = tmp_path / "s.flow"
    path.write_text(reverses(5))
    r = flowspec_cli("check", str(path), "--max-statements", "4", "--format", "concise")
    assert r.returncode == 1
    assert f"{path}:5:5: error[E205]" in r.stdout
    r = flowspec_cli("check", str(path), "--max-bytes", "50", "--format", "concise")
    assert r.returncode == 1
    assert f"{path}:1:1: error[E205]: the spec is larger than the limit of 50 bytes" in r.stdout
    big = tmp_path / "big.flow"
    big.write_text(reverses(20_000))
    r = flowspec_cli("check", str(big), "--format", "concise")
    assert r.returncode == 1 and "error[E205]" in r.stdout
    r = flowspec_cli("check", str(big), "--max-statements", "0", "--format", "concise")
    assert r.returncode == 1 and "E205" not in r.stdout and "error[E203]" in r.stdout


def test_a_bad_limit_flag_is_a_usage_error(tmp_path):
    path = tmp_path / "s.flow"
    path.write_text(reverses(1))
    r = flowspec_cli("check", str(path), "--max-bytes", "-3")
    assert r.returncode == 2 and "--max-bytes" in r.stderr
    assert "Traceback" not in r.stderr


def test_every_command_takes_the_limit_flags(tmp_path):
    path = tmp_path / "s.flow"
    path.write_text(reverses(5))
    for command in (["summary"], ["compile"], ["fmt", "--check"], ["convert", "--to", "yaml"]):
        r = flowspec_cli(*command, str(path), "--max-statements", "4")
        assert r.returncode == 1, (command, r.stderr)
        assert "E205" in r.stderr, command


# --------------------------------------------------------------- bounded rendering


def _device_spec(n: int) -> str:
    return (
        f'flow f {{\n    input x: [2]\n    on "{"a" * n}" {{ x = reverse(x) }}\n    output x\n}}\n'
    )


def test_a_five_megabyte_line_renders_in_a_few_kilobytes():
    comp = Compilation(Source("t.flow", _device_spec(5_000_000)), Limits(None, None))
    diags = comp.diagnostics
    (e500,) = [d for d in diags if d.code == "E500"]
    assert (e500.line, e500.column) == (3, 8)
    assert len(e500.message) < 200 and "…" in e500.message
    small = Compilation(Source("t.flow", _device_spec(10)), Limits(None, None))

    def outputs(c: Compilation) -> list[str]:
        d = c.diagnostics
        return [
            render_text(d, c.sources),
            render_concise(d),
            render_json(d),
            render_sarif(d),
            render_junit(d, ["t.flow"], c.sources),
        ]

    # every format costs the same few kilobytes as for a ten-byte line (SARIF
    # also carries the rule catalogue, which grows with the codes)
    for out, short in zip(outputs(comp), outputs(small), strict=True):
        assert len(out) < len(short) + 2_000
        assert "a" * 1_000 not in out
    text = render_text([e500], comp.sources)
    assert "--> t.flow:3:8" in text
    source_line, underline = text.splitlines()[3:5]
    assert source_line.endswith("…") and underline.endswith("^…")


def test_the_cli_output_for_a_five_megabyte_line_is_bounded(tmp_path):
    path = tmp_path / "long.flow"
    path.write_text(_device_spec(5_000_000))
    r = flowspec_cli("check", str(path), "--max-bytes", "0")
    assert r.returncode == 1
    assert f"{path}:3:8" in r.stdout
    assert len(r.stdout) < 5_000
    r = flowspec_cli("check", str(path), "--max-bytes", "0", "--format", "json")
    (d,) = [d for d in json.loads(r.stdout) if d["code"] == "E500"]
    assert (d["line"], d["column"]) == (3, 8) and len(r.stdout) < 5_000


def test_the_caret_stays_under_a_short_span_after_a_long_prefix():
    prefix = "x = reverse(x); " * 300
    text = f"flow f {{\n    input x: [2]\n    {prefix}x = bad(x)\n    output x\n}}\n"
    (d,) = [d for d in flowspec.check(text) if d.code == "E200"]
    assert (d.line, d.column) == (3, 5 + len(prefix) + 4)
    rendered = render_text([d], {"<string>": Source("<string>", text)})
    lines = rendered.splitlines()
    assert f"--> <string>:3:{d.column}" in lines[1]
    source_line, underline = lines[3], lines[4]
    assert len(source_line) < 140 and source_line.split(" | ", 1)[1].startswith("…")
    caret = underline.index("^")
    assert source_line[caret : caret + 3] == "bad"
    assert underline[caret:] == "^^^"


def test_a_long_line_with_tabs_keeps_the_caret_in_place():
    text = (
        "flow f {\n\tinput x: [2]\n\t" + "x = reverse(x);\t" * 200 + "x = bad(x)\n\toutput x\n}\n"
    )
    (d,) = [d for d in flowspec.check(text) if d.code == "E200"]
    lines = render_text([d], {"<string>": Source("<string>", text)}).splitlines()
    caret = lines[4].index("^")
    assert lines[3][caret : caret + 3] == "bad"


def test_short_lines_render_as_before():
    text = "flow f {\n    input x: [2]\n    x = bad(x)\n    output x\n}\n"
    (d,) = [d for d in flowspec.check(text) if d.code == "E200"]
    lines = render_text([d], {"<string>": Source("<string>", text)}).splitlines()
    assert lines[3:5] == [" 3 |     x = bad(x)", "   |         ^^^"]


def test_a_megabyte_name_is_cut_in_the_message_and_costs_no_did_you_mean_search():
    name = "y" * 1_000_000
    text = f"flow f {{\n    input x: [2]\n    x = reverse({name})\n    output x\n}}\n"
    (d,) = [d for d in flowspec.check(text, max_bytes=0) if d.code == "E200"]
    assert (d.line, d.column) == (3, 17)
    assert len(d.message) < 200 and d.message.endswith("…`")


# ------------------------------------------------------- invisible characters


INVISIBLE = [("\x00", "U+0000"), ("\u200b", "U+200B"), ("\u00a0", "U+00A0"), ("\u202e", "U+202E")]


@pytest.mark.parametrize(("ch", "code_point"), INVISIBLE)
def test_an_invisible_character_in_flow_is_named_by_its_code_point(ch, code_point):
    text = f"flow f {{\n    input x: [2]\n    x = reverse({ch}x)\n    output x\n}}\n"
    (d,) = flowspec.check(text)
    assert where([d]) == [("E100", 3, 17)]
    assert d.message == f"unexpected character {code_point}"
    assert ch not in render_text([d], {})


@pytest.mark.parametrize(("ch", "code_point"), INVISIBLE)
def test_an_invisible_character_in_yaml_is_named_by_its_code_point(ch, code_point):
    text = yaml_reverses(1).replace("in: x}", f"in: {ch}x}}")
    (d,) = flowspec.check(text)
    assert (d.code, d.line, d.column) == ("E100", 6, 27)
    assert code_point in d.message and ch not in d.message


@pytest.mark.parametrize(("ch", "code_point"), INVISIBLE)
def test_an_invisible_character_in_a_quoted_string_is_escaped_in_the_message(ch, code_point):
    text = (
        f'flow f {{\n    input x: [2]\n    on "cu{ch}da" {{ x = reverse(x) }}\n    output x\n}}\n'
    )
    (d,) = [d for d in flowspec.check(text) if d.code == "E500"]
    assert (d.line, d.column) == (3, 8)
    assert f"`cu<{code_point}>da`" in d.message
    assert d.hint == "did you mean `cuda`?"


def test_visible_escapes_controls_format_and_separator_characters_only():
    assert visible("cuda:0 ü → …") == "cuda:0 ü → …"
    assert visible("a\rb\u2028c\ufeffd\te") == "a<U+000D>b<U+2028>c<U+FEFF>d<U+0009>e"
    assert visible("x" * 10, limit=4) == "xxxx…"


def test_every_message_hint_and_label_is_cleaned():
    from flowspec.core.diagnostics import Label
    from flowspec.core.spans import NOWHERE

    d = Diagnostic(
        "E200",
        "unknown tensor `a\u200bb`",
        NOWHERE,
        hint="did you mean `\x00`?",
        labels=(Label(NOWHERE, "first \u202e here"),),
        notes=("\u00a0",),
    )
    assert d.message == "unknown tensor `a<U+200B>b`"
    assert d.hint == "did you mean `<U+0000>`?"
    assert d.labels[0].message == "first <U+202E> here"
    assert d.notes == ("<U+00A0>",)


def test_a_fixture_file_path_is_still_accepted_by_the_api(tmp_path: Path):
    path = tmp_path / "ok.flow"
    path.write_text(reverses(2))
    assert "E205" not in {d.code for d in flowspec.check(str(path))}


@pytest.mark.parametrize(
    ("expr", "code"), [("(" * 150 + "8" + ")" * 150, None), ("-" * 150 + "8", "E100")]
)
def test_yaml_expressions_nest_at_most_as_deep_as_flow_ones(expr, code):
    # parentheses are not a level; 150 signs are (the AST walk stops at 100 levels)
    step = f'{{op: coupling.affine, in: x, net: {{kind: mlp, hidden: ["{expr}"]}}}}'
    text = yaml_reverses(0).replace("    body:\n", f"    body:\n      - {step}\n")
    errors = [d for d in flowspec.check(text) if d.is_error]
    assert [(d.code, d.line) for d in errors] == ([(code, 6)] if code else [])
