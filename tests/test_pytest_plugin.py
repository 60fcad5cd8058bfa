"""The pytest plugin checks specs as test items."""

from __future__ import annotations

pytest_plugins = ["pytester"]

GOOD = (
    "flow f {\n    input x: [4]\n    x = coupling.affine(x, net=mlp)\n    x = reverse(x)\n"
    "    x = coupling.affine(x, net=mlp)\n    output x\n}\n"
)
BAD = "flow f {\n    input x: [4]\n    x = reverse(y)\n    output x\n}\n"
WARN = "flow f {\n    input x: [4]\n    x = coupling.affine(x, net=mlp)\n    output x\n}\n"


def test_specs_are_test_items(pytester):
    pytester.makefile(".flow", good=GOOD, bad=BAD)
    result = pytester.runpytest("--flowspec")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*unknown tensor `y`*"])


def test_strict_fails_on_warnings(pytester):
    pytester.makefile(".flow", warn=WARN)
    pytester.runpytest("--flowspec").assert_outcomes(passed=1)
    result = pytester.runpytest("--flowspec", "--flowspec-strict")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*W100*"])


def test_inactive_without_the_flag(pytester):
    pytester.makefile(".flow", bad=BAD)
    result = pytester.runpytest()
    assert result.ret == 5  # no tests collected


BAD_YAML = (
    "# a spec that starts with a comment\n---\nflowspec: 1\nflows:\n  - name: f\n"
    "    input: {name: x, shape: [4]}\n    body:\n      - {op: reverse, in: y}\n"
    "    output: [x]\n"
)
OTHER_YAML = "# CI configuration, not a spec\non: push\njobs: {}\n"


def test_a_yaml_spec_after_comments_is_collected_and_other_yaml_is_not(pytester):
    # issue 10, finding 5: a commented YAML spec was skipped, so a broken one passed CI
    pytester.makefile(".yaml", bad=BAD_YAML, ci=OTHER_YAML)
    pytester.makefile(".yml", keys_first=BAD_YAML.replace("flowspec: 1\n", "") + "flowspec: 1\n")
    result = pytester.runpytest("--flowspec")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*unknown tensor `y`*"])
