"""A pytest plugin: check flow specs as tests, so architectures are validated in CI.

    pytest --flowspec specs/            # every .flow / .yaml spec is one test item
    pytest --flowspec --flowspec-strict # warnings fail too
    pytest --flowspec --flowspec-verify # and each spec's flows pass `flowspec verify`

An item fails with the diagnostics rendered as ``flowspec check`` renders them.
Installed with flowspec (entry point ``pytest11``); inactive without ``--flowspec``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flowspec.core.diagnostics import render_text
from flowspec.driver import Compilation, is_spec_file


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("flowspec")
    group.addoption("--flowspec", action="store_true", help="check .flow/.yaml specs as tests")
    group.addoption("--flowspec-strict", action="store_true", help="warnings fail too")
    group.addoption(
        "--flowspec-verify",
        action="store_true",
        help="also verify each spec's compiled flows numerically (flowspec verify)",
    )


def pytest_collect_file(parent: pytest.Collector, file_path: Path):
    config = parent.config
    if not config.getoption("flowspec") or not is_spec_file(file_path):
        return None  # not a .flow file, nor a YAML file with a `flowspec:` key
    return SpecFile.from_parent(parent, path=file_path)


class SpecFile(pytest.File):
    def collect(self):
        verify = self.config.getoption("flowspec_verify")
        yield SpecItem.from_parent(self, name="verify" if verify else "check")


class SpecCheckFailed(Exception):
    pass


class SpecItem(pytest.Item):
    def runtest(self) -> None:
        comp = Compilation.of(self.path)
        strict = self.config.getoption("flowspec_strict")
        failing = comp.diagnostics if strict else comp.errors
        if failing:
            raise SpecCheckFailed(render_text(comp.diagnostics, comp.sources))
        if self.config.getoption("flowspec_verify"):
            from flowspec.core.diagnostics import SpecError
            from flowspec.verify.run import verify

            try:
                reports = [verify(self.path, flow=name) for name in comp.flow_names()]
            except SpecError as e:  # E500: the module could not be built
                raise SpecCheckFailed(str(e)) from None
            if not all(r.ok for r in reports):
                raise SpecCheckFailed("".join(str(r) for r in reports))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SpecCheckFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, 0, f"flowspec {self.name} {self.path.name}"
