"""Inline suppressions ``# flowspec: ignore[CODE, ...]`` (issue 11, "CI fit").

The fixtures ``tests/fixtures/diagnostics/w101_suppressed_on_one_line.flow``,
``w101_yaml_suppressed_on_one_line.yaml`` and ``w105_bad_suppression.flow`` check codes,
lines and columns; these tests cover the paths around them: the API, the CLI, the
pytest plugin, strings that are not comments, errors that stay errors.
"""

from __future__ import annotations

import flowspec
from flowspec.core.spans import Source
from flowspec.driver import Compilation
from flowspec.suppressions import find

pytest_plugins = ["pytester"]

#: W100 at the input (line 2): the coupling leaves half of the features as they came
WARN = "flow f {\n    input x: [4]\n    x = coupling.affine(x, net=mlp)\n    output x\n}\n"
SILENCED = WARN.replace("[4]\n", "[4]  # flowspec: ignore[W100]\n", 1)


def codes(text: str) -> list[tuple[str, int]]:
    return [(d.code, d.line) for d in flowspec.check(text)]


def test_the_api_honours_a_suppression_on_the_line_only():
    assert codes(WARN) == [("W100", 2)]
    assert codes(SILENCED) == []
    # on another line (the coupling's), it silences nothing
    elsewhere = WARN.replace("(x)\n", "(x)  # flowspec: ignore[W100]\n", 1)
    assert codes(elsewhere) == [("W100", 2)]
    # a comment line of its own silences nothing either
    above = WARN.replace("    input", "    # flowspec: ignore[W100]\n    input", 1)
    assert codes(above) == [("W100", 3)]


def test_codes_are_case_insensitive_and_lists_take_spaces():
    assert codes(SILENCED.replace("[W100]", "[ w101 ,W100 ]")) == []


def test_errors_are_never_suppressed():
    bad = (
        "flow f {\n    input x: [4]\n    y = reverse(x)  # flowspec: ignore[E300]\n"
        "    output x\n}\n"
    )
    got = codes(bad)
    assert ("E300", 3) in got and ("W105", 3) in got
    assert Compilation.of(bad).errors


def test_w105_cannot_silence_itself():
    text = SILENCED.replace("[W100]", "[W100, W999, W105]")
    assert codes(text) == [("W105", 2)]


def test_a_hash_inside_a_flow_string_is_not_a_comment():
    text = (
        'flow f {\n    input x: [4]\n    on "cpu # flowspec: ignore[W999]" {\n'
        "        x = reverse(x)\n    }\n    output x\n}\n"
    )
    assert "W105" not in [c for c, _ in codes(text)]  # the string holds no suppression
    assert find(Source("s.flow", text), yaml=False).by_line == {}


def test_yaml_quoted_and_block_scalars_are_not_comments_and_a_broken_file_is_safe():
    text = (
        "flowspec: 1\nnote: 'a # flowspec: ignore[W999]'\nother: |\n"
        "  # flowspec: ignore[W998]\nreal: 1  # flowspec: ignore[W100]\n"
    )
    found = find(Source("s.yaml", text), yaml=True)
    assert found.by_line == {5: {"W100"}} and found.problems == []
    broken = "flowspec: 1\nx: [1, 2  # flowspec: ignore[W100]\ny: 'open\n"
    find(Source("b.yaml", broken), yaml=True)  # no exception
    assert flowspec.check(broken)[0].code == "E100"


def test_text_without_a_suppression_is_left_alone():
    comp = Compilation(Source("w.flow", WARN))
    assert [d.code for d in comp.diagnostics] == ["W100"]
    assert find(Source("w.flow", WARN), yaml=False).by_line == {}


def test_check_strict_passes_when_every_warning_is_silenced(run_cli, tmp_path):
    (tmp_path / "warn.flow").write_text(WARN)
    (tmp_path / "silenced.flow").write_text(SILENCED)
    assert run_cli("check", "--strict", "silenced.flow").status == 0
    assert run_cli("check", "--strict", "warn.flow").status == 1
    result = run_cli("check", "--format", "json", "silenced.flow")
    assert result.status == 0 and '"W100"' not in result.stdout


def test_the_pytest_plugin_honours_suppressions(pytester):
    pytester.makefile(".flow", silenced=SILENCED, warn=WARN)
    result = pytester.runpytest("--flowspec", "--flowspec-strict")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*warn.flow:2:5*"])
