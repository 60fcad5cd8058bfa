"""Run a check's docstring example: a few statements inside a one-input flow.

Every module of this package shows what it reports with two-line examples that run as
doctests (``tests/test_check_docstrings.py``)::

    >>> diagnose("x = leaky_relu(x, slope=0)")
    E302 3:23 leaky_relu with slope=0 is not invertible

The statements are placed after ``input x: [shape]`` (line 2, so the first statement
is line 3) and before ``output x`` unless they write their own ``output``.  Each
diagnostic prints as ``CODE line:column message``, wrapped at 84 columns.
"""

from __future__ import annotations

import textwrap


def program(body: str, shape: str = "[4]") -> str:
    """The flow the example runs in."""
    lines = body.strip("\n").splitlines()
    out = ["flow f {", f"    input x: {shape}", *("    " + line for line in lines)]
    if not any(line.lstrip().startswith("output") for line in lines):
        out.append("    output x")
    return "\n".join([*out, "}"]) + "\n"


def diagnose(body: str, shape: str = "[4]") -> None:
    """Print the diagnostics ``flowspec check`` reports for ``body``, or ``clean``."""
    from flowspec.api import check

    found = check(program(body, shape))
    for d in found:
        line = f"{d.code} {d.line}:{d.column} {d.message}"
        print(textwrap.fill(line, width=84, subsequent_indent="    ", break_on_hyphens=False))
    if not found:
        print("clean")
