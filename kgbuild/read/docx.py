"""Word documents (.docx) via python-docx: body paragraphs and tables, in document order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import docx
from docx.document import Document as DocxDocument
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph

from kgbuild.errors import DocumentError
from kgbuild.read.base import NO_TEXT, ReadOptions, clean_title, make_document, prepare_text, short_error
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


def docx_lines(document: DocxDocument) -> Iterator[str]:
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            yield block.text
        elif isinstance(block, Table):
            yield from _table_lines(block)


def read_docx(file: SourceFile, options: ReadOptions) -> Iterator[Document | SkippedFile]:
    del options
    with open(file.path, "rb") as fh:
        head = fh.read(1)
    if not head:
        raise DocumentError(file.rel_path, "empty file")
    try:
        document = docx.Document(file.path)
        raw = "\n".join(docx_lines(document))
        title = clean_title(document.core_properties.title)
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
