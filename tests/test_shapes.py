"""Shape inference on every spec in specs/ gives the shapes written in its comments.

A block statement ends with a comment giving its output shape(s), such as
``x = squeeze(x)  # [12, 8, 8]`` or ``z, x = split(x)  # [6, 8, 8], [6, 8, 8]``.  The
shape of a line is that of every block instance whose call ends on it (a wrapped call
ends with ``)  # [..]``, as ``flowspec fmt`` writes it) — each iteration of a ``repeat``
and each expansion of a ``block`` — and, for a call of a ``block``, that of the tensors
the call binds.  A line whose shape differs between
expansions (a ``block`` body used at several scales) carries no comment; every other
block line must carry one.
"""

from __future__ import annotations

import ast as pyast
import re
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import SPECS

from flowspec.checks import CHECKS
from flowspec.core.spans import Source
from flowspec.elaborate import elaborate
from flowspec.ir import lower as lowering
from flowspec.syntax import dsl

_SHAPES = re.compile(r"#\s*(?P<shapes>\[[-0-9, \[\]]*\])\s*\Z")


def annotated_shapes(text: str) -> dict[int, list[tuple[int, ...]]]:
    """line → the shapes in its trailing ``# [..], [..]`` comment."""
    out = {}
    for number, line in enumerate(text.splitlines(), 1):
        m = _SHAPES.search(line)
        if m and not line.lstrip().startswith("#"):
            out[number] = [tuple(s) for s in pyast.literal_eval(f"[{m['shapes']}]")]
    return out


def inferred_shapes(path: Path) -> dict[int, list[list[tuple[int, ...]]]]:
    """line → the output shapes of every expansion of the block call starting on it."""
    program, diags = dsl.parse(Source(str(path), path.read_text()))
    assert diags == []
    calls = []  # (call span, [tensor ids bound by the call]) of each `block` call
    expand = lowering._Lowerer.expand_block

    def spy(self, fg, stmt, scope):
        expand(self, fg, stmt, scope)
        calls.append((fg, stmt.call.span, [scope.tensors[t.id] for t in stmt.targets]))

    lowering._Lowerer.expand_block = spy
    try:
        graphs, diags = lowering.lower(program)
    finally:
        lowering._Lowerer.expand_block = expand
    assert diags == []
    for fg in graphs:
        rf, problems = elaborate(fg)
        assert problems == []
        for check in CHECKS:
            assert check(rf) == []
    by_line: dict[int, list[list[tuple[int, ...]]]] = defaultdict(list)
    for fg in graphs:
        for node in fg.blocks():
            by_line[node.span.end_line].append([tuple(s) for s in node.out_shapes])
    for fg, span, tids in calls:
        by_line[span.end_line].append([fg.tensors[t].shape for t in tids])
    return by_line


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_spec_shapes_match_their_comments(path):
    written = annotated_shapes(path.read_text())
    inferred = inferred_shapes(path)
    assert written, f"{path.name} has no shape comments"
    for line, shapes in written.items():
        assert line in inferred, f"{path.name}:{line} has a shape comment but no block"
        for expansion in inferred[line]:
            assert expansion == shapes, f"{path.name}:{line}: inferred {expansion}, wrote {shapes}"
    for line, expansions in inferred.items():
        if line not in written:
            distinct = {tuple(e) for e in expansions}
            assert len(distinct) > 1, (
                f"{path.name}:{line} has the same shapes {expansions[0]} in every expansion; "
                "write them in a trailing comment"
            )


def test_the_glow_spec_checks_a_squeeze_and_split_chain():
    text = next(p for p in SPECS if p.stem == "glow").read_text()
    written = annotated_shapes(text)
    assert [(3, 16, 16)] not in written.values()  # the input line carries no comment
    chain = [s for s in written.values() if len(s) == 2 or s[0][0] in (12, 24, 48)]
    assert [(6, 8, 8), (6, 8, 8)] in chain and [(12, 4, 4), (12, 4, 4)] in chain
    assert [(48, 2, 2)] in chain


def test_the_comment_reader():
    text = "    x = f(x)  # [12, 8, 8]\n    a, b = g(x)  # [6], [2, 3]\n    # [1]\n    y = h(y)\n"
    assert annotated_shapes(text) == {1: [(12, 8, 8)], 2: [(6,), (2, 3)]}


def test_a_wrong_or_missing_comment_is_caught(tmp_path):
    spec = tmp_path / "wrong.flow"
    body = (
        "flow f {{\n    input x: [2, 4, 4]\n    x = squeeze(x){}\n"
        "    x = actnorm(x)  # [8, 2, 2]\n    output x\n}}\n"
    )
    spec.write_text(body.format("  # [8, 2, 2]"))
    assert inferred_shapes(spec)[3] == [[(8, 2, 2)]]
    test_spec_shapes_match_their_comments(spec)
    for wrong in ("  # [2, 4, 4]", ""):
        spec.write_text(body.format(wrong))
        with pytest.raises(AssertionError):
            test_spec_shapes_match_their_comments(spec)
