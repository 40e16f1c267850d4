"""Plain text (.txt), plus the byte decoding shared with other readers."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator

from charset_normalizer import from_bytes

from kgbuild.errors import DocumentError
from kgbuild.read.base import (
    NO_TEXT,
    TITLE_MAX_CHARS,
    ReadOptions,
    clean_title,
    looks_like_title,
    make_document,
    prepare_text,
)
from kgbuild.types import Document, SkippedFile, SourceFile

BINARY_SNIFF_BYTES = 8192
UNDECODABLE = "not valid UTF-8 or any detectable encoding"

# Longest BOMs first: the UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# "# Title" or "## Title ##" as the first line of a plain-text file
_ATX_HEADING = re.compile(r" {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*")


def bom_encoding(data: bytes) -> str | None:
    """The codec named by a leading byte-order mark (the codec consumes the BOM)."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    return None


def looks_binary(head: bytes) -> bool:
    """NUL bytes near the start, unless a BOM says the text is UTF-16/32 (where NULs are normal)."""
    if b"\x00" not in head[:BINARY_SNIFF_BYTES]:
        return False
    encoding = bom_encoding(head)
    return encoding not in ("utf-16", "utf-32")


def decode_bytes(data: bytes, *, declared: str | None = None) -> str | None:
    """Decode text: a BOM wins, then strict UTF-8, then a declared charset, then detection.

    Returns None when no encoding fits.
    """
    encoding = bom_encoding(data)
    if encoding is not None:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if declared:
        try:
            return data.decode(declared)
        except (LookupError, UnicodeDecodeError):
            pass
    best = from_bytes(data).best()
    return None if best is None else str(best)


def read_bytes_checked(file: SourceFile) -> bytes:
    """The file's bytes; raises DocumentError for an empty or binary file."""
    with open(file.path, "rb") as fh:
        data = fh.read()
    if not data:
        raise DocumentError(file.rel_path, "empty file")
    if looks_binary(data[:BINARY_SNIFF_BYTES]):
        raise DocumentError(file.rel_path, "binary file")
    return data


def text_title(text: str) -> str:
    """The title a plain text gives itself on its first line, or "".

    The first non-blank line is the title when it is a Markdown-style heading
    (``# Title``), or when it looks like a headline (``looks_like_title``) and stands as
    a paragraph of its own: a blank line, then more text, follows it. A short first line
    followed directly by more text is not taken: it may be the first line of a
    hard-wrapped paragraph.
    """
    first, _, rest = text.lstrip().partition("\n")
    if len(first) > 2 * TITLE_MAX_CHARS:  # no title is that long; and no regex runs over a 1 MB line
        return ""
    heading = _ATX_HEADING.fullmatch(first)
    if heading:
        return clean_title(heading.group(1))
    blank, _, body = rest.partition("\n")
    if looks_like_title(first) and not blank.strip() and body.strip():
        return clean_title(first)
    return ""


def read_text_file(file: SourceFile) -> str:
    """The file's text, decoded and normalised; DocumentError when it is binary, undecodable or blank."""
    decoded = decode_bytes(read_bytes_checked(file))
    if decoded is None:
        raise DocumentError(file.rel_path, UNDECODABLE)
    text = prepare_text(decoded)
    if text is None:
        raise DocumentError(file.rel_path, NO_TEXT)
    return text


def read_text(file: SourceFile, options: ReadOptions) -> Iterator[Document | SkippedFile]:
    del options  # nothing to configure for plain text
    text = read_text_file(file)
    yield make_document(file, text=text, title=text_title(text), fmt="txt")
