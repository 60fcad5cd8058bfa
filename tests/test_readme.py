"""The README's code table and commands stay in step with the code and .ci/run."""

from __future__ import annotations

import re
from pathlib import Path

from flowspec.core.diagnostics import CODES
from flowspec.kinds.limits import limits_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_code_table_matches_registry():
    block = README.split("<!-- codes:begin")[1].split("<!-- codes:end -->")[0]
    rows = re.findall(r"^\| (\w\d{3}) \| (\w+) \| `([\w-]+)` \| (.*) \|$", block, re.M)
    assert [(c, s, slug, d) for c, s, slug, d in rows] == [
        (c.code, c.severity.value, c.slug, c.description) for c in CODES.values()
    ]


def test_limits_table_matches_the_registry():
    block = README.split("<!-- limits:begin")[1].split("<!-- limits:end -->")[0]
    assert block.split("-->\n", 1)[1].strip() == limits_table()


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.S)
    assert len(commands) >= 2
    test_command = commands[1].strip()
    assert "pytest" in test_command and "torch==2.13.0" in test_command
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert any(line.startswith(test_command) for line in ci.splitlines())


def test_readme_setup_installs_torch_first():
    first = re.findall(r"```bash\n(.*?)\n```", README, re.S)[0]
    assert first.index("torch==2.13.0") < first.index("pip install -e .")


def test_readme_setup_trains_and_plots_the_reference_spec():
    first = re.findall(r"```bash\n(.*?)\n```", README, re.S)[0]
    train = re.search(r"flowspec train (\S+) --data (\w+) .*--out (\S+)", first)
    assert train and (ROOT / train.group(1)).is_file()
    assert first.rstrip().endswith(f"flowspec plot {train.group(3)} -o moons.png")
    assert (ROOT / "examples" / "quickstart.py").is_file()  # the own-loop example stays
