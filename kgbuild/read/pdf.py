"""PDF via pypdf: the text of every page, pages separated by a blank line."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from kgbuild.errors import DocumentError
from kgbuild.read.base import NO_TEXT, ReadOptions, clean_title, make_document, prepare_text, short_error
from kgbuild.types import Document, SkippedFile, SourceFile

# pypdf logs a warning for every small defect it repairs; a broken file is
# reported once, as a DocumentError, instead.
logging.getLogger("pypdf").setLevel(logging.ERROR)

PAGE_SEPARATOR = "\n\n"
# Titles that PDF producers write when the author gave none (ReportLab: "untitled").
_PLACEHOLDER_TITLES = frozenset({"untitled", "untitled document"})


def read_pdf(file: SourceFile, options: ReadOptions) -> Iterator[Document | SkippedFile]:
    del options
    with open(file.path, "rb") as fh:
        head = fh.read(1)
    if not head:
        raise DocumentError(file.rel_path, "empty file")
    try:
        from pypdf import PasswordType, PdfReader  # imported when a PDF is read, not when kgbuild starts

        reader = PdfReader(file.path)
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty user password only to set permissions.
            try:
                decrypted = reader.decrypt("") != PasswordType.NOT_DECRYPTED
            except Exception:  # noqa: BLE001 - e.g. a missing optional AES dependency
                decrypted = False
            if not decrypted:
                raise DocumentError(file.rel_path, "encrypted PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
        metadata = reader.metadata
        title = clean_title(metadata.title) if metadata is not None else ""
        if title.lower() in _PLACEHOLDER_TITLES:
            title = ""
    except DocumentError:
        raise
    except Exception as exc:  # noqa: BLE001 - pypdf raises many types on damaged input
        raise DocumentError(file.rel_path, f"corrupt PDF: {short_error(exc)}") from exc
    if not pages:
        raise DocumentError(file.rel_path, "corrupt PDF: no pages")
    text = prepare_text(PAGE_SEPARATOR.join(pages))
    if text is None:
        raise DocumentError(file.rel_path, NO_TEXT)
    yield make_document(file, text=text, title=title, fmt="pdf")
