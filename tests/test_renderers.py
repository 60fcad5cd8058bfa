"""The SARIF and JUnit renderers read the same diagnostics as text and JSON."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from flowspec.core.diagnostics import CODES

BAD = "flow f {\n    input x: [4]\n    x = reverse(x)\n    y = reverse(x)\n    output x\n}\n"
WARN = "flow g {\n    input x: [4]\n    x = coupling.affine(x, net=mlp)\n    output x\n}\n"
GOOD = (
    "flow h {\n    input x: [4]\n    x = coupling.affine(x, net=mlp)\n    x = reverse(x)\n"
    "    x = coupling.affine(x, net=mlp)\n    output x\n}\n"
)


def _write(tmp_path, **files):
    for name, text in files.items():
        (tmp_path / f"{name}.flow").write_text(text)
    return [f"{name}.flow" for name in files]


def test_sarif_has_every_rule_and_located_results(run_cli, tmp_path):
    paths = _write(tmp_path, bad=BAD)
    result = run_cli("check", "--format", "sarif", *paths)
    assert result.status == 1
    log = json.loads(result.stdout)
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    assert [r["id"] for r in run["tool"]["driver"]["rules"]] == list(CODES)
    by_rule = {r["ruleId"]: r for r in run["results"]}
    e301 = by_rule["E301"]
    assert e301["level"] == "error"
    region = e301["locations"][0]["physicalLocation"]["region"]
    # x of line 3 is consumed on line 4 (`y = reverse(x)`) and again by `output x`
    assert region == {"startLine": 5, "startColumn": 12, "endLine": 5, "endColumn": 13}
    related = e301["relatedLocations"][0]
    assert related["message"]["text"] == "first consumed here"
    assert related["physicalLocation"]["region"]["startLine"] == 4
    assert "help:" in e301["message"]["text"]


def test_junit_one_case_per_file(run_cli, tmp_path):
    paths = _write(tmp_path, bad=BAD, warn=WARN, good=GOOD)
    result = run_cli("check", "--format", "junit", *paths)
    assert result.status == 1
    suite = ET.fromstring(result.stdout).find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    failure = cases["bad.flow"].find("failure")
    assert failure is not None and failure.get("type") in ("E300", "E301")
    assert "error[E301]" in failure.text and "-->" in failure.text
    assert cases["warn.flow"].find("failure") is None
    assert "warning[W" in cases["warn.flow"].find("system-out").text
    assert list(cases["good.flow"]) == []
    strict = run_cli("check", "--strict", "--format", "junit", *paths)
    suite = ET.fromstring(strict.stdout).find("testsuite")
    assert suite.get("failures") == "2" and strict.status == 1
