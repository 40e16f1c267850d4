"""Word documents (.docx) via python-docx: body paragraphs and tables, in document order.

One line per paragraph and per table row (cells separated by a tab). A heading (a
paragraph styled Title or Heading n) is a paragraph of its own, with a blank line
before and after it, so that no later stage runs a span from a heading into the text.
The title is the document's Title property, else its first heading, else a first
paragraph that reads as a headline, else the file name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import docx
from docx.document import Document as DocxDocument
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph

from kgbuild.errors import DocumentError
from kgbuild.read.base import (
    NO_TEXT,
    ReadOptions,
    clean_title,
    looks_like_title,
    make_document,
    prepare_text,
    short_error,
)
from kgbuild.types import Document, SkippedFile, SourceFile

CELL_SEPARATOR = "\t"


def _table_lines(table: Table) -> Iterator[str]:
    """One line per row, cells separated by a tab; a merged cell is written once."""
    for row in table.rows:
        cells: list[Any] = []
        for cell in row.cells:
            # python-docx repeats a merged cell for every grid column it spans.
            if cells and cell._tc is cells[-1]._tc:
                continue
            cells.append(cell)
        yield CELL_SEPARATOR.join(cell.text for cell in cells)


def is_heading(paragraph: Paragraph) -> bool:
    """Styled Title or Heading 1-9 (python-docx gives built-in styles their English names)."""
    name = (paragraph.style.name if paragraph.style is not None else None) or ""
    return name.casefold() == "title" or name.casefold().startswith("heading")


@dataclass(slots=True)
class _Block:
    line: str
    heading: bool = False
    row: bool = False  # a table row: never a headline


def docx_blocks(document: DocxDocument) -> Iterator[_Block]:
    """One block per paragraph and table row, in document order."""
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            yield _Block(block.text, heading=is_heading(block))
        elif isinstance(block, Table):
            for line in _table_lines(block):
                yield _Block(line, row=True)


def docx_text_and_title(document: DocxDocument) -> tuple[str, str]:
    """The text (headings set apart by blank lines) and the title found in the body, or ""."""
    blocks = list(docx_blocks(document))
    title = next((clean_title(b.line) for b in blocks if b.heading and b.line.strip()), "")
    filled = [b for b in blocks if b.line.strip()]
    if not title and len(filled) > 1 and not filled[0].row and looks_like_title(filled[0].line):
        title = clean_title(filled[0].line)
        filled[0].heading = True  # a headline stands apart like a heading
    parts: list[str] = []
    for i, block in enumerate(blocks):
        if i:
            parts.append("\n\n" if block.heading or blocks[i - 1].heading else "\n")
        parts.append(block.line)
    return "".join(parts), title


def read_docx(file: SourceFile, options: ReadOptions) -> Iterator[Document | SkippedFile]:
    del options
    with open(file.path, "rb") as fh:
        head = fh.read(1)
    if not head:
        raise DocumentError(file.rel_path, "empty file")
    try:
        document = docx.Document(file.path)
        raw, body_title = docx_text_and_title(document)
        title = clean_title(document.core_properties.title) or body_title
    except Exception as exc:  # noqa: BLE001 - BadZipFile, KeyError, XML errors, PackageNotFoundError...
        raise DocumentError(file.rel_path, f"corrupt DOCX: {_describe(exc)}") from exc
    text = prepare_text(raw)
    if text is None:
        raise DocumentError(file.rel_path, NO_TEXT)
    yield make_document(file, text=text, title=title, fmt="docx")


def _describe(exc: Exception) -> str:
    if isinstance(exc, PackageNotFoundError):
        return "not a ZIP package"
    return short_error(exc)
