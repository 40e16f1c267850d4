"""The read stage: find files under a root and turn each into Documents.

``walk_files`` lists what is there (never reading content); ``read_file``
parses one file with the reader for its suffix. A file that cannot be read
raises ``DocumentError``; one bad record of a JSONL/JSON/CSV file is yielded as
a ``SkippedFile`` and the other records go on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath

from kgbuild.errors import DocumentError
from kgbuild.read.base import ReadOptions, make_document, normalize_text
from kgbuild.read.docx import read_docx
from kgbuild.read.html import read_html
from kgbuild.read.markdown import read_markdown
from kgbuild.read.pdf import read_pdf
from kgbuild.read.records import read_csv, read_json, read_jsonl
from kgbuild.read.text import read_text
from kgbuild.read.walk import SUPPORTED_SUFFIXES, walk_files
from kgbuild.types import Document, SkippedFile, SourceFile

__all__ = [
    "SUPPORTED_SUFFIXES",
    "ReadOptions",
    "Reader",
    "make_document",
    "normalize_text",
    "read_file",
    "walk_files",
]

Reader = Callable[[SourceFile, ReadOptions], Iterator[Document | SkippedFile]]

_READERS: dict[str, Reader] = {
    ".txt": read_text,
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
    ".docx": read_docx,
    ".json": read_json,
    ".jsonl": read_jsonl,
    ".ndjson": read_jsonl,
    ".csv": read_csv,
}

def _size(n: int) -> str:
    for unit, scale in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{n} B"


def read_file(file: SourceFile, options: ReadOptions | None = None) -> Iterator[Document | SkippedFile]:
    """The Documents of one file, plus a SkippedFile for each record that could not be used.

    A generator: errors surface while iterating. Raises DocumentError(rel_path,
    reason) when the file as a whole cannot be read.
    """
    options = options or ReadOptions()
    suffix = PurePosixPath(file.rel_path).suffix.lower()
    reader = _READERS.get(suffix)
    if reader is None:
        raise DocumentError(file.rel_path, f"unsupported file type '{suffix}'")
    try:
        size = os.stat(file.path).st_size
        if size > options.max_file_bytes:
            shown, limit = _size(size), _size(options.max_file_bytes)
            if shown == limit:
                shown, limit = f"{size} B", f"{options.max_file_bytes} B"
            raise DocumentError(file.rel_path, f"file too large ({shown} > {limit})")
        yield from reader(file, options)
    except OSError as exc:
        raise DocumentError(file.rel_path, f"cannot read file: {exc.strerror or exc}") from exc
