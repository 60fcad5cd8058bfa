"""Diagnostics: every code has failing fixtures checked by code, position and caret;
the syntax-error table, "did you mean", the renderers and the CLI's exit codes.

Fixtures live in ``tests/fixtures/diagnostics/*.flow`` and ``*.yaml``.  Each says what it
must report with comment lines under the offending line::

    y = concat(x, x)
#                 ^ E301 tensor `x` is consumed twice
#  help: a flow must use each tensor once
#              - first consumed here

``^`` marks the primary span (its columns are the carets' columns), followed by the
code and a part of the message; ``-`` marks a secondary label; ``help:`` a part of the
hint.  A span that cannot be drawn under its line (it starts in column 1 or 2) is
written ``# expect: CODE LINE:COL-END_LINE:END_COL message``.  A fixture must report
exactly what it annotates; a first line ``# limits: max_statements=4`` checks it with
lower size limits.  The whole rendered text is also compared with a golden file
in ``tests/golden/diagnostics`` (``FLOWSPEC_UPDATE_GOLDEN=1`` rewrites them).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import ROOT, SPECS

import flowspec
from flowspec.core.diagnostics import CODES, Diagnostic, Label, render_json, render_text, to_dict
from flowspec.core.spans import Source, Span
from flowspec.driver import Compilation
from flowspec.syntax import dsl
from flowspec.syntax.limits import Limits

FIXTURES = Path(__file__).parent / "fixtures" / "diagnostics"
GOLDEN = Path(__file__).parent / "golden" / "diagnostics"
FIXTURE_PATHS = sorted([*FIXTURES.glob("*.flow"), *FIXTURES.glob("*.yaml")])

_CARET = re.compile(r"#(?P<pad>\s*)(?P<marks>\^+)\s+(?P<code>[EW]\d{3})\s+(?P<message>.*)\Z")
_LABEL = re.compile(r"#(?P<pad>\s*)(?P<marks>-+)\s+(?P<message>.*)\Z")
_HELP = re.compile(r"#\s+help:\s*(?P<hint>.*)\Z")
_EXPECT = re.compile(
    r"#\s+(?P<kind>expect|label):\s*(?:(?P<code>[EW]\d{3})\s+)?"
    r"(?P<l>\d+):(?P<c>\d+)-(?P<el>\d+):(?P<ec>\d+)\s+(?P<message>.*)\Z"
)


@dataclass
class Expected:
    code: str
    line: int
    column: int
    end_line: int
    end_column: int
    message: str
    hints: list[str] = field(default_factory=list)


@dataclass
class ExpectedLabel:
    line: int
    column: int
    end_column: int
    message: str


def read_annotations(text: str) -> tuple[list[Expected], list[ExpectedLabel]]:
    expected: list[Expected] = []
    labels: list[ExpectedLabel] = []
    target = 0  # the last line that is not an annotation
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.expandtabs(4).strip()
        shown = raw.expandtabs(4)
        if m := _CARET.match(line):
            col = shown.index("^") + 1
            expected.append(
                Expected(m["code"], target, col, target, col + len(m["marks"]), m["message"])
            )
        elif m := _EXPECT.match(line):
            if m["kind"] == "expect":
                expected.append(
                    Expected(
                        m["code"],
                        int(m["l"]),
                        int(m["c"]),
                        int(m["el"]),
                        int(m["ec"]),
                        m["message"],
                    )
                )
            else:
                labels.append(ExpectedLabel(int(m["l"]), int(m["c"]), int(m["ec"]), m["message"]))
        elif m := _HELP.match(line):
            expected[-1].hints.append(m["hint"])
        elif (m := _LABEL.match(line)) and "-" in line and not line.startswith("# -- "):
            col = shown.index("-") + 1
            labels.append(ExpectedLabel(target, col, col + len(m["marks"]), m["message"]))
        else:
            target = number
    return expected, labels


#: a fixture's first line may set size limits: ``# limits: max_statements=4``
_LIMITS = re.compile(r"#\s+limits:\s*(?P<options>.*)\Z")


def check_fixture(path: Path) -> tuple[Compilation, list[Diagnostic]]:
    text = path.read_text(encoding="utf-8")
    limits = Limits()
    if m := _LIMITS.match(text.split("\n", 1)[0]):
        options = dict(item.split("=") for item in m["options"].split())
        limits = Limits(**{key: int(value) for key, value in options.items()})
    comp = Compilation(Source(path.name, text), limits)
    return comp, comp.diagnostics


# ------------------------------------------------------------------ the fixtures


@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=lambda p: p.stem)
def test_fixture_reports_exactly_what_it_annotates(path):
    comp, diags = check_fixture(path)
    expected, labels = read_annotations(path.read_text(encoding="utf-8"))
    assert expected, f"{path.name} annotates nothing"
    got = [(d.code, d.line, d.column, d.span.end_line, d.span.end_column) for d in diags]
    want = [(e.code, e.line, e.column, e.end_line, e.end_column) for e in expected]
    assert sorted(got) == sorted(want), render_text(diags, comp.sources)
    for e in expected:
        (d,) = [
            d
            for d in diags
            if (d.code, d.line, d.column, d.span.end_column)
            == (e.code, e.line, e.column, e.end_column)
        ]
        assert e.message in d.message
        for hint in e.hints:
            assert d.hint is not None and hint in d.hint
    got_labels = sorted(
        (lb.span.line, lb.span.column, lb.span.end_column, lb.message)
        for d in diags
        for lb in d.labels
    )
    want_labels = sorted((lb.line, lb.column, lb.end_column, lb.message) for lb in labels)
    assert got_labels == want_labels


@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=lambda p: p.stem)
def test_fixture_renders_the_caret_under_the_whole_span(path):
    comp, diags = check_fixture(path)
    rendered = render_text(diags, comp.sources).splitlines()
    text_lines = path.read_text(encoding="utf-8").split("\n")
    for d in diags:
        if d.span.end_line != d.line:
            continue
        gutter = len(str(max([d.line, *(lb.span.line for lb in d.labels)]))) + 1
        source_line = f"{str(d.line).rjust(gutter)} | {text_lines[d.line - 1]}"
        caret_line = (
            f"{' ' * gutter} | {' ' * (d.column - 1)}{'^' * max(d.span.end_column - d.column, 1)}"
        )
        header = f"{d.severity.value}[{d.code}]: {d.message}"
        start = rendered.index(header)
        assert rendered[start + 1] == f"{' ' * gutter}--> {path.name}:{d.line}:{d.column}"
        assert rendered[start + 3] == source_line.rstrip() or rendered[start + 3] == source_line
        assert rendered[start + 4] == caret_line


@pytest.mark.parametrize("path", FIXTURE_PATHS, ids=lambda p: p.stem)
def test_fixture_rendering_matches_its_golden_file(path, update_golden):
    comp, diags = check_fixture(path)
    rendered = render_text(diags, comp.sources)
    golden = GOLDEN / f"{path.stem}.txt"
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(rendered, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden}; run with FLOWSPEC_UPDATE_GOLDEN=1"
    assert rendered == golden.read_text(encoding="utf-8")


def test_every_code_has_a_failing_fixture():
    covered = set()
    for path in FIXTURE_PATHS:
        expected, _ = read_annotations(path.read_text(encoding="utf-8"))
        covered |= {e.code for e in expected}
    # E206 is about a file that cannot be read, not about a spec's text: tests/test_validate.py
    assert set(CODES) - covered - {"E206"} == set(), "add a fixture in tests/fixtures/diagnostics"
    assert covered - set(CODES) == set()


def test_every_fixture_name_starts_with_its_first_code():
    for path in FIXTURE_PATHS:
        expected, _ = read_annotations(path.read_text(encoding="utf-8"))
        assert path.stem.split("_")[0].upper() in {e.code for e in expected}, path.name


def test_at_least_six_different_syntax_mistakes_each_with_a_specific_message():
    messages = {}
    for path in FIXTURE_PATHS:
        if path.stem.startswith("e100_") and path.suffix == ".flow":
            (e,) = read_annotations(path.read_text(encoding="utf-8"))[0]
            messages[path.stem] = e.message
    needed = {
        "e100_unclosed_brace": "unclosed brace",
        "e100_unclosed_parenthesis": "unclosed parenthesis",
        "e100_missing_equals": "missing `=`",
        "e100_stray_token": "unmatched `)`",
        "e100_bad_number": "bad number",
        "e100_keyword_as_name": "is a keyword and cannot be used as a name",
    }
    for stem, words in needed.items():
        assert words in messages[stem]
    # none of them is the generic fallback
    assert not any(m.startswith("unexpected `") and "expected" not in m for m in messages.values())


# ----------------------------------------------------------- LANGUAGE.md §6 layout

LANGUAGE_MD_EXAMPLE = """\
error[E303]: residual block needs lipschitz < 1 to be invertible, got 1.2
  --> specs/bad.flow:7:43
   |
 7 |     x = residual(x, net=mlp(hidden=[64]), lipschitz=1.2)
   |                                           ^^^^^^^^^^^^^
   = help: use a value in (0, 1), such as 0.97
"""


def test_the_text_renderer_reproduces_the_language_reference_example():
    # LANGUAGE.md §6 prints `7:47` over a caret drawn under column 43 of the line as
    # shown; the column of `lipschitz=1.2` in that line is 43, which is what we report.
    text = (FIXTURES / "e303_lipschitz_too_large.flow").read_text(encoding="utf-8")
    comp = Compilation(Source("specs/bad.flow", text))
    assert render_text(comp.diagnostics, comp.sources) == LANGUAGE_MD_EXAMPLE


def test_display_columns_expand_tabs_but_reported_columns_count_characters():
    text = "flow f {\n\tinput x: [4]\n\tx = leaky_relu(x, slope=0)\n\toutput x\n}\n"
    (d,) = flowspec.check(text)
    assert (d.code, d.line, d.column, d.span.end_column) == ("E302", 3, 20, 27)
    lines = render_text([d], {"<string>": Source("<string>", text)}).splitlines()
    assert lines[3] == " 3 |     x = leaky_relu(x, slope=0)"
    assert lines[4] == "   |                       ^^^^^^^"


def test_a_multi_line_span_is_underlined_to_the_end_of_its_first_line():
    src = Source("m.flow", "flow f {\n    input x: [4]\n}\n")
    d = Diagnostic("E204", "message", src.span(13, 30))
    lines = render_text([d], {"m.flow": src}).splitlines()
    assert lines[3] == " 2 |     input x: [4]"
    assert lines[4] == "   |     ^^^^^^^^^^^^"


def test_wider_line_numbers_widen_the_gutter():
    text = (
        "\n" * 9 + "flow f {\n    input x: [4]\n    x = leaky_relu(x, slope=0)\n    output x\n}\n"
    )
    (d,) = flowspec.check(text)
    lines = render_text([d], {"<string>": Source("<string>", text)}).splitlines()
    assert lines[1] == "   --> <string>:12:23"
    assert lines[2] == "    |"
    assert lines[3] == " 12 |     x = leaky_relu(x, slope=0)"
    assert lines[5] == "    = help: use a slope > 0, such as 0.01"


# --------------------------------------------------------------- syntax errors


SYNTAX_CASES = [
    (message, snippet) for message, snippets in dsl.SYNTAX_EXAMPLES.items() for snippet in snippets
]


@pytest.mark.parametrize(("message", "snippet"), SYNTAX_CASES)
def test_every_syntax_example_produces_its_message(message, snippet):
    diags = flowspec.check(snippet)
    assert [d.code for d in diags] == ["E100"]
    assert diags[0].message.startswith(message)


@pytest.mark.parametrize(
    ("snippet", "words"),
    [
        ("flow f {\n    input x: [2]\n    x = reverse(x) @\n    output x\n}", "character `@`"),
        ("flow f {\n    input x: [2]\n    on 'cpu' { x = linear(x) }\n    output x\n}", "`'`"),
        ("flow {\n    input x: [2]\n    output x\n}", "expected a name"),
        ("flow f {\n    input x: [2]\n    a, = split(x)\n    output a\n}", "expected a name"),
        ("flow f {\n    input x: [2]\n    repeat 2 as { }\n    output x\n}", "expected a name"),
        (
            "flow f {\n    input x: [2]\n    x = shuffle(x, seed=1e)\n    output x\n}",
            "bad number `1e`",
        ),
        (
            "flow f {\n    input x: [2]\n    x = shuffle(x, seed=3x)\n    output x\n}",
            "bad number `3x`",
        ),
        ("flow f {\n    input x: [" + "9" * 400 + "]\n    output x\n}", "integer too large"),
        (
            "flow f {\n    input x: [2]\n    x = reverse(input)\n    output x\n}",
            "`input` is a keyword",
        ),
        (
            "flow f {\n    input x: [2]\n    x = coupling..affine(x)\n    output x\n}",
            "expected a name",
        ),
        ("flow f {\n    input x: [2]\n    x = shuffle(x, seed=3\n}", "unclosed parenthesis"),
        (
            "flow f {\n    input x: [2]\n    x = reverse(x]\n    output x\n}",
            "expected `)` to close",
        ),
        ("flow f {\n    input x: [2]\n    output x\n}\n}", "unmatched `}`"),
        ("flow f {\n    input x: [2]\n    x = split(x, sizes=[1, 1)\n", "expected `]` to close"),
        (
            "flow f {\n    input x: [2]\n    x = reverse(x, seed=(1 + 2)\n    output x\n}",
            "unclosed",
        ),
    ],
)
def test_more_syntax_errors_say_what_is_wrong(snippet, words):
    diags = flowspec.check(snippet)
    assert [d.code for d in diags] == ["E100"], diags
    assert words in diags[0].message


def test_the_generic_syntax_error_lists_what_was_expected():
    (d,) = flowspec.check("flow f {\n    input x: [2]\n    x = reverse(x) , \n    output x\n}")
    assert d.message.startswith("unexpected `,`; expected ")
    assert "a newline" in d.message


def test_expected_lists_collapse_operators():
    (d,) = flowspec.check(
        "flow f {\n    input x: [2]\n    x = shuffle(x, seed=3 3)\n    output x\n}"
    )
    assert "an operator" in d.message and "`+`" not in d.message


def test_nesting_too_deep_is_a_syntax_error_not_a_crash():
    deep = "flow f {\n    input x: [" + "+".join(["1"] * 500) + "]\n    output x\n}\n"
    (d,) = flowspec.check(deep)
    assert d.code == "E100" and "nests too deeply" in d.message
    nested = "flow f {\n    input x: [2]\n" + "repeat 1 {\n" * 300 + "}\n" * 300 + "output x\n}\n"
    assert [d.code for d in flowspec.check(nested)] == ["E100"]


def test_an_empty_spec_defines_no_flow():
    for text in ("", "\n", "# only a comment\n"):
        diags = Compilation(Source("e.flow", text)).diagnostics
        assert [d.code for d in diags] == ["E204"]


# ------------------------------------------------------------ "did you mean"


@pytest.mark.parametrize(
    ("line", "hint"),
    [
        ("x = coupling.afine(x)", "`coupling.affine`"),  # block kind
        ("x = revers(x)", "`reverse`"),
        ("x = coupling.affine(x, net=mlp, flp=true)", "`flip`"),  # option
        ("x = coupling.affine(x, net=mlp, mask=alternat)", "`alternate`"),  # enum word
        ("x = coupling.affine(x, net=mlp, scale=softclmp)", "`softclamp`"),
        ("x = coupling.affine(x, net=mlp(act=tahn))", "`tanh`"),  # activation
        ("x = coupling.affine(x, net=mlpp(hidden=[4]))", "`mlp`"),  # net
        ("x = coupling.affine(x, net=mlp(hiddn=[4]))", "`hidden`"),  # net option
        ("x = residual(x, net=mlp, logdet=rolette(p=0.5))", "`roulette`"),  # estimator
        ("x = autoregressive.affine(x, order=revers)", "`reverse`"),
        ("features = linear(x)\n    x = linear(featurs)", "`features`"),  # tensor
        ("reqire exact_logdet", "`require`"),  # keywords
        ("repet 2 { x = linear(x) }", "`repeat`"),
        ("outptu x", "`output`"),
        ("require exact_logde", "`exact_logdet`"),  # requirement
        ("latent normall", "`normal`"),  # latent
    ],
)
def test_did_you_mean(line, hint):
    text = f"flow f {{\n    input x: [4]\n    {line}\n    output x\n}}\n"
    diags = [d for d in flowspec.check(text) if d.is_error]
    assert diags, "expected an error"
    assert diags[0].hint is not None and "did you mean" in diags[0].hint
    assert hint in diags[0].hint


def test_did_you_mean_offers_at_most_two_candidates_and_none_when_nothing_is_near():
    (d,) = [
        d
        for d in flowspec.check("flow f {\n input x: [4]\n x = coupling.afine(x)\n output x\n}")
        if d.is_error
    ]
    assert d.hint.count("`") == 4
    (d,) = [
        d
        for d in flowspec.check("flow f {\n input x: [4]\n x = zzzz(x)\n output x\n}")
        if d.is_error
    ]
    assert d.hint is None


# ------------------------------------------------------------- E301 labels, data


def test_e301_points_at_the_second_use_and_labels_the_first():
    text = "flow f {\n    input x: [4]\n    a = linear(x)\n    b = linear(x)\n    output a, b\n}\n"
    (d,) = flowspec.check(text)
    assert d.code == "E301"
    assert (d.line, d.column) == (4, 16)
    (label,) = d.labels
    assert (label.span.line, label.span.column, label.message) == (3, 16, "first consumed here")


def test_a_diagnostic_with_an_unregistered_code_is_refused():
    with pytest.raises(ValueError):
        Diagnostic("E999", "no", Span("f", 0, 0, 1, 1, 1, 1))


def test_codes_have_severities_by_prefix_and_unique_slugs():
    assert all(
        c.severity.value == ("warning" if k[0] == "W" else "error") for k, c in CODES.items()
    )
    slugs = [c.slug for c in CODES.values()]
    assert len(set(slugs)) == len(slugs)
    assert all(c.description for c in CODES.values())


def test_json_renderer_fields():
    text = (FIXTURES / "e301_consumed_twice.flow").read_text(encoding="utf-8")
    comp = Compilation(Source("specs/e301.flow", text))
    (entry,) = json.loads(render_json(comp.diagnostics))
    assert entry["path"] == "specs/e301.flow"
    assert entry["code"] == "E301"
    assert entry["slug"] == CODES["E301"].slug
    assert entry["severity"] == "error"
    assert entry["message"] == "tensor `x` is consumed twice"
    assert (entry["line"], entry["column"], entry["end_line"], entry["end_column"]) == (
        4,
        19,
        4,
        20,
    )
    assert entry["hint"].startswith("a flow must use each tensor once")
    (label,) = entry["labels"]
    assert label == {
        "message": "first consumed here",
        "path": "specs/e301.flow",
        "line": 4,
        "column": 16,
        "end_line": 4,
        "end_column": 17,
    }
    assert to_dict(comp.diagnostics[0]) == entry


def test_json_of_a_warning_and_of_nothing():
    comp = Compilation(FIXTURES / "w102_non_smooth_ode.flow")
    comp = Compilation(Source("w.flow", (FIXTURES / "w102_non_smooth_ode.flow").read_text()))
    (entry,) = json.loads(render_json(comp.diagnostics))
    assert entry["severity"] == "warning" and entry["code"] == "W102"
    assert json.loads(render_json([])) == []


def test_labels_render_with_dashes_and_their_message():
    src = Source("l.flow", "flow f {\n    input x: [4]\n    output x\n}\n")
    d = Diagnostic(
        "E301", "msg", src.span(37, 38), labels=(Label(src.span(13, 18), "here first"),), hint="h"
    )
    assert render_text([d], {"l.flow": src}).splitlines() == [
        "error[E301]: msg",
        "  --> l.flow:3:12",
        "   |",
        " 3 |     output x",
        "   |            ^",
        " 2 |     input x: [4]",
        "   |     ----- here first",
        "   = help: h",
    ]


# ----------------------------------------------------------------------- the CLI


CLEAN = SPECS[0]
WARNING_ONLY = FIXTURES / "w100_untransformed.flow"
ERRORS = FIXTURES / "e301_consumed_twice.flow"


def test_cli_exit_0_on_a_clean_spec(run_cli):
    result = run_cli("check", CLEAN)
    assert result.status == 0
    assert "no problems" in result.stdout


def test_cli_exit_0_on_several_clean_specs(run_cli):
    result = run_cli("check", *SPECS)
    assert result.status == 0, result.stdout
    assert f"{len(SPECS)} files checked" in result.stdout


def test_cli_exit_0_with_warnings_only_and_1_with_strict(run_cli):
    result = run_cli("check", WARNING_ONLY)
    assert result.status == 0
    assert "warning[W100]" in result.stdout
    assert "0 error(s), 1 warning(s)" in result.stdout
    assert run_cli("check", "--strict", WARNING_ONLY).status == 1


def test_cli_exit_1_on_errors_and_prints_the_caret(run_cli):
    result = run_cli("check", CLEAN, ERRORS)
    assert result.status == 1
    assert "error[E301]: tensor `x` is consumed twice" in result.stdout
    assert f"  --> {ERRORS}:4:19" in result.stdout
    assert "   |                   ^\n" in result.stdout


def test_cli_exit_2_for_a_missing_file(run_cli):
    result = run_cli("check", "no/such/file.flow")
    assert result.status == 2
    assert "no such file" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_exit_2_for_a_bad_flag(run_cli):
    assert run_cli("check", "--format", "xml", CLEAN).status == 2
    assert run_cli("check").status == 2


def test_cli_json_output_parses(run_cli):
    result = run_cli("check", "--format", "json", ERRORS, WARNING_ONLY)
    assert result.status == 1
    entries = json.loads(result.stdout)
    assert {e["code"] for e in entries} == {"E301", "W100"}
    for e in entries:
        assert {
            "path",
            "code",
            "severity",
            "message",
            "line",
            "column",
            "end_line",
            "end_column",
        } <= set(e)
    clean = run_cli("check", "--format", "json", CLEAN)
    assert clean.status == 0 and json.loads(clean.stdout) == []


def test_cli_concise_output(run_cli):
    result = run_cli("check", "--format", "concise", ERRORS)
    assert result.stdout == f"{ERRORS}:4:19: error[E301]: tensor `x` is consumed twice\n"


def test_a_crash_in_the_checker_prints_the_banner_and_exits_2(run_cli, monkeypatch):
    import flowspec.checks as passes

    def broken(fg):
        raise RuntimeError("an internal bug")

    monkeypatch.setattr(passes, "CHECKS", (broken, *passes.CHECKS))
    monkeypatch.delenv("FLOWSPEC_DEBUG", raising=False)
    result = run_cli("check", CLEAN)
    assert result.status == 2
    assert result.stderr.startswith("flowspec crashed")
    assert str(CLEAN) in result.stderr
    assert "RuntimeError: an internal bug" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_cli_as_a_process(tmp_path):
    bad = tmp_path / "bad.flow"
    bad.write_text((FIXTURES / "e302_leaky_relu_slope.flow").read_text())
    proc = subprocess.run(
        [sys.executable, "-m", "flowspec", "check", "--format", "json", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 1
    assert [e["code"] for e in json.loads(proc.stdout)] == ["E302"]
    missing = subprocess.run(
        [sys.executable, "-m", "flowspec", "check", str(tmp_path / "missing.flow")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode == 2 and missing.stdout == ""
