"""Shared pieces of the read stage: options, text normalisation and Document construction.

Kept apart from ``kgbuild.read.__init__`` so that the reader modules can import
it without a circular import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from kgbuild import ids
from kgbuild.types import Document, SourceFile

NO_TEXT = "no text content"


@dataclass(frozen=True)
class ReadOptions:
    text_field: str = "text"  # JSON/JSONL: field holding the text (dotted path "a.b" allowed)
    id_field: str = "id"  # JSON/JSONL: record id field (fallback: line number / list index)
    title_field: str = "title"  # JSON/JSONL: optional title field
    csv_text_column: str = "text"
    csv_id_column: str = "id"  # fallback: row number
    csv_title_column: str = "title"
    max_file_bytes: int = 100 * 1024 * 1024  # bigger files are skipped with a reason naming the size


def normalize_text(text: str) -> str:
    """Newlines to ``"\\n"``, NULs removed, lone surrogates (from ``"\\ud800"`` JSON escapes) replaced by U+FFFD.

    Everything else is kept as extracted; the replacements keep the length of the text, so
    offsets stay exact.
    """
    if _has_lone_surrogate(text):
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def prepare_text(raw: str) -> str | None:
    """The normalised text, or None when nothing but whitespace is left."""
    text = normalize_text(raw)
    return text if text.strip() else None


def clean_title(title: object) -> str:
    """A one-line title: whitespace collapsed, NULs and lone surrogates removed; "" when there is none."""
    if not isinstance(title, str):
        return ""
    return " ".join(normalize_text(title).split())


# A headline is short: BBC headlines run to about 10 words; a first sentence usually runs longer.
TITLE_MAX_WORDS = 15
TITLE_MAX_CHARS = 120


def looks_like_title(line: str) -> bool:
    """Whether a line reads as a headline rather than a sentence.

    Short (at most ``TITLE_MAX_WORDS`` words and ``TITLE_MAX_CHARS`` characters), with a
    letter in it, and not ending like a sentence or a clause (".", ",", ";", ":"); a
    question or an exclamation may be a headline.

    >>> looks_like_title("Conductor Marcello Viotti dies"), looks_like_title("Viotti died on Friday.")
    (True, False)
    """
    line = line.strip()
    return (
        0 < len(line) <= TITLE_MAX_CHARS
        and len(line.split()) <= TITLE_MAX_WORDS
        and any(ch.isalpha() for ch in line)
        and not line.endswith((".", ",", ";", ":"))
    )


def file_stem(rel_path: str) -> str:
    return PurePosixPath(rel_path).stem


def make_document(
    file: SourceFile,
    *,
    text: str,
    title: str,
    fmt: str,
    record_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Document:
    """Build a Document from text that ``prepare_text`` has already normalised.

    Plain files are named by their rel_path; one record of a JSON/JSONL/CSV
    file is named ``"rel_path#record_id"``.
    """
    path = file.rel_path if record_id is None else f"{file.rel_path}#{record_id}"
    title = clean_title(title)
    if not title:
        stem = file_stem(file.rel_path)
        title = stem if record_id is None else f"{stem} #{record_id}"
    metadata: dict[str, Any] = dict(extra or {})
    metadata["format"] = fmt
    return Document(
        id=ids.document_id(path),
        path=path,
        source_path=file.rel_path,
        title=title,
        text=text,
        mtime=file.mtime,
        content_hash=ids.content_hash(title, text),
        metadata=metadata,
    )


def short_error(exc: BaseException, limit: int = 160) -> str:
    """A one-line description of an exception for a skip reason."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    if len(message) > limit:
        message = message[: limit - 1] + "…"
    return message
