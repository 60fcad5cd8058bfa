"""Every relative link in README.md and docs/*.md points at a file of the repository
(and, into a Markdown file, at a heading it has), and no document cites a Markdown file
that is not in the repository (issue 10: the README cited a LANGUAGE.md it did not ship).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT

from flowspec.reference.blocks import slug

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_CODE = re.compile(r"```.*?```", re.S)
_MD_NAME = re.compile(r"(?<![\w/.-])([\w./-]+\.md)\b")


def _text(path: Path) -> str:
    return _CODE.sub("", path.read_text(encoding="utf-8"))  # links in code are not links


def _anchors(path: Path) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", _text(path), re.M)
    return {slug(h) for h in headings}


def _links(path: Path) -> list[str]:
    return [t for t in _LINK.findall(_text(path)) if not re.match(r"[a-z]+:", t)]


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_at_files_in_the_repository(doc: Path) -> None:
    broken = []
    for target in _links(doc):
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists() or (ROOT not in path.parents and path != ROOT):
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.name}")
    assert broken == []


@pytest.mark.parametrize("doc", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_cited_markdown_files_exist(doc: Path) -> None:
    text = re.sub(r"https?://\S+", "", doc.read_text(encoding="utf-8"))
    missing = sorted(
        name
        for name in set(_MD_NAME.findall(text))
        if not (doc.parent / name).exists() and not (ROOT / name).exists()
    )
    assert missing == []


def test_the_readme_links_the_reference() -> None:
    assert _links(ROOT / "README.md"), "the README links to the reference"
    assert "docs/language.md" in _links(ROOT / "README.md")
    assert "docs/blocks.md" in _links(ROOT / "README.md")
