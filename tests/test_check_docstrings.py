"""Every check's docstring shows what it reports, as doctests that run: the examples
cannot drift from the messages (``flowspec.checks.examples.diagnose``)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import flowspec.checks
import flowspec.elaborate

MODULES = sorted(
    m.name
    for package in (flowspec.checks, flowspec.elaborate)
    for m in pkgutil.iter_modules(package.__path__, package.__name__ + ".")
) + ["flowspec.ir.resolved"]
#: modules that are not a check: the package and the doctest helper itself
NOT_A_CHECK = {"flowspec.checks.examples", "flowspec.ir.resolved"}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0
    if name not in NOT_A_CHECK:
        assert result.attempted >= 2, f"{name} shows no example of what it reports"
