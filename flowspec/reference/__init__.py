"""The reference in the repository, generated: docs/blocks.md from the block registry
(:mod:`flowspec.reference.blocks`) and docs/diagnostics.md from the code registry
(:mod:`flowspec.reference.codes`), and what ``flowspec kinds`` and ``flowspec explain``
print (one entry of either).

Regenerate both files after changing the registry, a code or a message::

    python -m flowspec.reference --write          # writes docs/blocks.md, docs/diagnostics.md
    python -m flowspec.reference > docs/blocks.md # the block reference on standard output
    python -m flowspec.reference diagnostics      # the diagnostics reference

``tests/test_reference.py`` keeps the committed files equal to the generated text.  The
block side is torch-free and imports no checker; the diagnostics side runs the checker
(still torch-free) on each code's example.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from flowspec.core.diagnostics import CODES
from flowspec.core.names import did_you_mean
from flowspec.kinds import REGISTRY

#: the generated files, relative to the repository root, and what makes each
DOCS: dict[str, str] = {"blocks": "docs/blocks.md", "diagnostics": "docs/diagnostics.md"}


class UnknownEntry(LookupError):
    """``flowspec explain NAME`` for a NAME that is neither a kind nor a code."""


def generate(which: str) -> str:
    """The text of one generated file: ``"blocks"`` or ``"diagnostics"``."""
    if which == "blocks":
        from flowspec.reference.blocks import blocks_markdown

        return blocks_markdown()
    if which == "diagnostics":
        from flowspec.reference.codes import diagnostics_markdown

        return diagnostics_markdown()
    raise ValueError(f"no generated file {which!r}: one of {', '.join(DOCS)}")


def kinds_text() -> str:
    """``flowspec kinds``: every kind of the registry with its one-line summary."""
    width = max(len(name) for name in REGISTRY)
    lines = [f"{name.ljust(width)}  {kind.summary}" for name, kind in REGISTRY.items()]
    lines.append("")
    lines.append("`flowspec explain KIND` prints a kind's options, shapes, classes and bounds.")
    return "\n".join(lines) + "\n"


def explain(name: str) -> str:
    """``flowspec explain NAME``: a block kind's entry, a diagnostic code's, or (for a
    word such as ``mlp`` or ``roulette``) the entry of the option words it belongs to.

    Raises :class:`UnknownEntry` with a "did you mean" for any other name.
    """
    from flowspec.reference import blocks, codes

    if name in REGISTRY:
        return blocks.kind_entry(REGISTRY[name], level=1)
    code = name.upper()
    if code in CODES:
        return codes.code_entry(CODES[code], level=1)
    words = blocks.collect_words()
    tables = [(t, h) for t, h in words.tables if name in t.words]
    if tables:  # an option word: `explain mlp`, `explain roulette`
        return "\n".join(blocks.words_entry(t, h, words, level=1) for t, h in tables)
    candidates = [*REGISTRY, *CODES, *(w for t, _ in words.tables for w in t.words)]
    hint = did_you_mean(name, candidates) or did_you_mean(code, CODES)
    message = f"`{name}` is neither a block kind, a diagnostic code nor an option word"
    message += f"; {hint}" if hint else " (`flowspec kinds` lists the kinds)"
    raise UnknownEntry(message)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flowspec.reference", description="Generate the reference in docs/."
    )
    parser.add_argument("which", nargs="?", choices=tuple(DOCS), default="blocks")
    parser.add_argument(
        "--write",
        nargs="?",
        const=".",
        metavar="ROOT",
        help="write every generated file under ROOT (default: the current directory)",
    )
    args = parser.parse_args(argv)
    if args.write is None:
        sys.stdout.write(generate(args.which))
        return 0
    for which, rel in DOCS.items():
        path = Path(args.write) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generate(which), encoding="utf-8")
        print(f"wrote {path}")
    return 0


__all__ = ["DOCS", "UnknownEntry", "explain", "generate", "kinds_text", "main"]
