"""Record files: one document per record of a JSON, JSONL/NDJSON or CSV file.

A problem with one record (a bad JSONL line, a ragged CSV row, a missing or
empty text field, a duplicate id) yields a SkippedFile named
``"rel_path#line N"`` / ``"rel_path#row N"`` / ``"rel_path#item N"`` and the
other records go on. A problem with the whole file raises DocumentError.

Record ids come from the id field when it holds a non-empty scalar, otherwise
from the record's position: the 1-based line number (JSONL), the 0-based list
index (JSON) or the 1-based line on which the row starts, header being line 1
(CSV). A fallback id may collide with an explicit one; the later record is then
skipped as a duplicate.
"""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from charset_normalizer import from_bytes

from kgbuild.errors import DocumentError
from kgbuild.read.base import NO_TEXT, ReadOptions, make_document, prepare_text, short_error
from kgbuild.read.text import (
    BINARY_SNIFF_BYTES,
    UNDECODABLE,
    bom_encoding,
    decode_bytes,
    looks_binary,
    read_bytes_checked,
)
from kgbuild.types import Document, SkippedFile, SourceFile

_SCALARS = (str, int, float, bool)
_SAMPLE_BYTES = 1 << 20
_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number",
               bool: "boolean", type(None): "null"}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _lookup(record: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """``record[name]``, or a dotted path ``"a.b"`` into nested objects."""
    if name in record:
        return True, record[name]
    if "." not in name:
        return False, None
    current: Any = record
    for part in name.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return False, None
        current = current[part]
    return True, current


def _scalar_str(value: object) -> str:
    """A scalar as a stripped string; "" for anything else (null, objects, arrays)."""
    return str(value).strip() if isinstance(value, _SCALARS) else ""


@dataclass
class _RecordBuilder:
    """Turns the records of one file into Documents, keeping ids unique within the file."""

    file: SourceFile
    fmt: str
    text_field: str
    id_field: str
    title_field: str
    seen_ids: set[str] = field(default_factory=set)

    def build(self, record: Mapping[str, Any], fallback_id: str, where: str) -> Document | SkippedFile:
        location = f"{self.file.rel_path}#{where}"
        found, raw_text = _lookup(record, self.text_field)
        if not found:
            return SkippedFile(location, f"missing text field '{self.text_field}'")
        if not isinstance(raw_text, str):
            return SkippedFile(
                location, f"text field '{self.text_field}' is not a string (got {_json_type(raw_text)})"
            )
        text = prepare_text(raw_text)
        if text is None:
            return SkippedFile(location, NO_TEXT)
        record_id = _scalar_str(_lookup(record, self.id_field)[1]) or fallback_id
        if record_id in self.seen_ids:
            return SkippedFile(location, f"duplicate record id '{record_id}'")
        self.seen_ids.add(record_id)
        title = _scalar_str(_lookup(record, self.title_field)[1])
        reserved = {self.text_field, self.id_field, self.title_field}
        extra = {
            key: value
            for key, value in record.items()
            if isinstance(key, str) and key not in reserved and isinstance(value, _SCALARS)
        }
        return make_document(self.file, text=text, title=title, fmt=self.fmt, record_id=record_id, extra=extra)


def _json_builder(file: SourceFile, options: ReadOptions, fmt: str) -> _RecordBuilder:
    return _RecordBuilder(file, fmt, options.text_field, options.id_field, options.title_field)


def _check_head(file: SourceFile) -> bytes:
    """The first bytes of the file; raises DocumentError for an empty or binary file."""
    with open(file.path, "rb") as fh:
        head = fh.read(_SAMPLE_BYTES)
    if not head:
        raise DocumentError(file.rel_path, "empty file")
    if looks_binary(head[:BINARY_SNIFF_BYTES]):
        raise DocumentError(file.rel_path, "binary file")
    return head


def _stream_failure(file: SourceFile, where: str, reason: str, yielded: bool) -> SkippedFile:
    """A failure part-way through a file: fatal before the first document, else ends the file."""
    if not yielded:
        raise DocumentError(file.rel_path, reason)
    return SkippedFile(f"{file.rel_path}#{where}", f"{reason}; rest of file not read")


# --- JSONL / NDJSON ----------------------------------------------------------


def _jsonl_lines(file: SourceFile, head: bytes) -> Iterator[tuple[int, str | None]]:
    """(1-based line number, line) pairs, streamed; the line is None where it is not valid UTF-8."""
    encoding = bom_encoding(head)
    if encoding in ("utf-16", "utf-32"):
        with open(file.path, encoding=encoding, newline="") as text_fh:
            yield from enumerate(text_fh, start=1)
        return
    with open(file.path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError:
                yield number, None


def read_jsonl(file: SourceFile, options: ReadOptions) -> Iterator[Document | SkippedFile]:
    head = _check_head(file)
    builder = _json_builder(file, options, "jsonl")
    yielded = False
    any_line = False
    number = 0
    lines = _jsonl_lines(file, head)
    while True:
        try:
            number, line = next(lines)
        except StopIteration:
            break
        except UnicodeDecodeError as exc:
            yield _stream_failure(file, f"line {number + 1}", f"not valid {exc.encoding}", yielded)
            return
        if line is None:
            any_line = True
            yield SkippedFile(f"{file.rel_path}#line {number}", "not valid UTF-8")
            continue
        if not line.strip():
            continue
        any_line = True
        where = f"line {number}"
        try:
            value = json.loads(line.rstrip("\r\n"))
        except json.JSONDecodeError as exc:
            yield SkippedFile(f"{file.rel_path}#{where}", f"invalid JSON: column {exc.colno}: {exc.msg}")
            continue
        except RecursionError:
            yield SkippedFile(f"{file.rel_path}#{where}", "invalid JSON: nested too deeply")
            continue
        if not isinstance(value, dict):
            yield SkippedFile(f"{file.rel_path}#{where}", f"not a JSON object (got {_json_type(value)})")
            continue
        result = builder.build(value, str(number), where)
        yielded = yielded or isinstance(result, Document)
        yield result
    if not any_line:
        raise DocumentError(file.rel_path, NO_TEXT)


# --- JSON --------------------------------------------------------------------


def read_json(file: SourceFile, options: ReadOptions) -> Iterator[Document | SkippedFile]:
    decoded = decode_bytes(read_bytes_checked(file))
    if decoded is None:
        raise DocumentError(file.rel_path, UNDECODABLE)
    if not decoded.strip():
        raise DocumentError(file.rel_path, NO_TEXT)
    try:
        value = json.loads(decoded)
    except json.JSONDecodeError as exc:
        raise DocumentError(
            file.rel_path, f"invalid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except RecursionError as exc:
        raise DocumentError(file.rel_path, "invalid JSON: nested too deeply") from exc
    builder = _json_builder(file, options, "json")
    if isinstance(value, dict):
        result = builder.build(value, "0", "0")
        if isinstance(result, SkippedFile):
            raise DocumentError(file.rel_path, result.reason)
        yield result
    elif isinstance(value, list):
        if not value:
            raise DocumentError(file.rel_path, "no records (empty JSON array)")
        for index, item in enumerate(value):
            where = f"item {index}"
            if not isinstance(item, dict):
                yield SkippedFile(f"{file.rel_path}#{where}", f"not a JSON object (got {_json_type(item)})")
                continue
            yield builder.build(item, str(index), where)
    else:
        raise DocumentError(
            file.rel_path,
            f"JSON top level must be an object or an array of objects (got {_json_type(value)})",
        )


# --- CSV ---------------------------------------------------------------------


def _csv_encoding(file: SourceFile) -> str:
    """The file's encoding, found without holding the whole file in memory."""
    head = _check_head(file)
    encoding = bom_encoding(head)
    if encoding is not None:
        return encoding
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with open(file.path, "rb") as fh:
            while chunk := fh.read(_SAMPLE_BYTES):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(head).best()
    if best is None:
        raise DocumentError(file.rel_path, UNDECODABLE)
    return best.encoding


def read_csv(file: SourceFile, options: ReadOptions) -> Iterator[Document | SkippedFile]:
    encoding = _csv_encoding(file)
    # The csv module refuses fields over 128 KiB by default; a text column can be much longer.
    csv.field_size_limit(max(csv.field_size_limit(), min(options.max_file_bytes, 2**31 - 1)))
    builder = _RecordBuilder(
        file, "csv", options.csv_text_column, options.csv_id_column, options.csv_title_column
    )
    with open(file.path, encoding=encoding, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DocumentError(file.rel_path, f"invalid CSV header: {short_error(exc)}") from exc
        columns = [name.strip() for name in header or []]
        if not any(columns):
            raise DocumentError(file.rel_path, "no header row")
        if options.csv_text_column not in columns:
            raise DocumentError(
                file.rel_path,
                f"no '{options.csv_text_column}' column (columns: {', '.join(columns)})",
            )
        yielded = False
        any_row = False
        while True:
            line = reader.line_num + 1  # the line this row starts on; the header is line 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                yield _stream_failure(file, f"row {line}", f"invalid CSV: {short_error(exc)}", yielded)
                return
            if not row:
                continue  # a blank line
            any_row = True
            where = f"row {line}"
            if len(row) != len(columns):
                yield SkippedFile(
                    f"{file.rel_path}#{where}", f"row {line} has {len(row)} field{'s' if len(row) != 1 else ''}, expected {len(columns)}"
                )
                continue
            result = builder.build(dict(zip(columns, row)), str(line), where)
            yielded = yielded or isinstance(result, Document)
            yield result
    if not any_row:
        raise DocumentError(file.rel_path, "no records (header only)")

