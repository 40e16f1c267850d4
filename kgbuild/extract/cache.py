"""What the model found in each document, kept in the output folder, so nothing has to go through it twice.

Ingest writes each extracted document here (``extractions.sqlite`` beside ``state.json``) before the state
records it, with the summary of its own entity resolution (``kgbuild.resolution.DocumentResolution.summary``).
The links across documents (``kgbuild.corpus_links``) are found from the summaries of the whole index, and a
document whose links change is resolved and written again from its cached extraction: no model pass, no
reading of the corpus.

A row is keyed by document id and names the content hash and extraction fingerprint it was made under; it is
used only where both are those the state records for the document, so a row left by an interrupted run, or
by a document changed or removed since, is never read (``prune`` drops them). One SQLite file rather than a
file per document: one transaction per write batch, one query for every summary of the index. Extractions
are stored as zlib-compressed JSON; a document whose metadata or structures would not come back from JSON
unchanged keeps its summary only (the pipeline then reads and extracts it again if it must be rewritten).

>>> cache = ExtractionCache(out_dir)
>>> cache.put([(extracted, fingerprint, summary)])
>>> cache.extracted(doc_id, content_hash, fingerprint).document.text
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from kgbuild.types import (
    Chunk, ChunkExtraction, Document, ExtractedDocument, LabelScore, Mention, RelationMention, StructureInstance,
)

CACHE_FILE = "extractions.sqlite"
_FORMAT = 1


class ExtractionCache:
    """The extraction cache of one output folder; opened on first use (nothing is touched before)."""

    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / CACHE_FILE
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None)
            db.execute("CREATE TABLE IF NOT EXISTS documents (doc_id TEXT PRIMARY KEY, content_hash TEXT NOT NULL,"
                       " fingerprint TEXT NOT NULL, summary TEXT NOT NULL, extraction BLOB)")
            self._db = db
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def put(self, entries: Iterable[tuple[ExtractedDocument, str, list | None]]) -> list[str]:
        """(extracted document, extraction fingerprint, resolution summary or None: no mentions), in one transaction;
        returns the ids of the documents whose extraction could not be kept (their summaries are)."""
        rows = []
        summary_only = []
        for extracted, fingerprint, summary in entries:
            doc = extracted.document
            encoded = encode_extracted(extracted)
            blob = None if encoded is None else zlib.compress(json.dumps(encoded, separators=(",", ":")).encode(), 6)
            if blob is None:
                summary_only.append(doc.id)
            rows.append((doc.id, doc.content_hash, fingerprint, json.dumps(summary, separators=(",", ":")), blob))
        if rows:
            db = self._conn()
            with db:
                db.execute("BEGIN")
                db.executemany("INSERT OR REPLACE INTO documents VALUES (?, ?, ?, ?, ?)", rows)
        return summary_only

    def summaries(self, wanted: Mapping[str, tuple[str, str]]) -> dict[str, list | None]:
        """Doc id -> summary (None: the document has no mentions), for the documents of ``wanted`` (doc id ->
        (content hash, fingerprint)) that have a row made under those; the others are missing."""
        return dict(self.iter_summaries(wanted))

    def iter_summaries(self, wanted: Mapping[str, tuple[str, str]]) -> Iterator[tuple[str, list | None]]:
        """``summaries`` one at a time, as the rows are read (the links pass holds the names, not every summary)."""
        if not wanted or not self.path.exists():
            return
        for doc_id, content_hash, fingerprint, summary in self._conn().execute(
                "SELECT doc_id, content_hash, fingerprint, summary FROM documents"):
            if wanted.get(doc_id) == (content_hash, fingerprint):
                yield doc_id, json.loads(summary)

    def summary_ids(self, wanted: Mapping[str, tuple[str, str]]) -> set[str]:
        """The documents of ``wanted`` that have a summary made under their content and fingerprint."""
        if not wanted or not self.path.exists():
            return set()
        return {doc_id for doc_id, content_hash, fingerprint in self._conn().execute(
                "SELECT doc_id, content_hash, fingerprint FROM documents") if wanted.get(doc_id) == (content_hash, fingerprint)}

    def extracted(self, doc_id: str, content_hash: str, fingerprint: str) -> ExtractedDocument | None:
        """The document as the model extracted it, if its row was made under this content and fingerprint."""
        if not self.path.exists():
            return None
        row = self._conn().execute("SELECT content_hash, fingerprint, extraction FROM documents WHERE doc_id = ?",
                                   (doc_id,)).fetchone()
        if row is None or (row[0], row[1]) != (content_hash, fingerprint) or row[2] is None:
            return None
        return decode_extracted(json.loads(zlib.decompress(row[2])))

    def delete(self, doc_ids: Sequence[str]) -> None:
        if doc_ids and self.path.exists():
            db = self._conn()
            with db:
                db.execute("BEGIN")
                db.executemany("DELETE FROM documents WHERE doc_id = ?", [(d,) for d in doc_ids])

    def prune(self, keep: set[str]) -> int:
        """Drop the rows of documents the index no longer holds; how many."""
        if not self.path.exists():
            return 0
        db = self._conn()
        gone = [row[0] for row in db.execute("SELECT doc_id FROM documents") if row[0] not in keep]
        self.delete(gone)
        return len(gone)


# -- JSON form of an extracted document ------------------------------------------------------------------


def _round_trips(value: Any) -> bool:
    try:
        return json.loads(json.dumps(value)) == value
    except (TypeError, ValueError):
        return False


def _mention(m: Mention) -> list:
    return [m.id, m.chunk_id, m.label, m.text, m.start, m.end, m.confidence]


def _scores(classifications: Mapping[str, list[LabelScore]]) -> dict[str, list[list]]:
    return {task: [[s.label, s.confidence] for s in scores] for task, scores in classifications.items()}


def encode_extracted(extracted: ExtractedDocument) -> dict[str, Any] | None:
    """JSON-ready form of an extracted document; None when it would not come back unchanged."""
    doc = extracted.document
    if not _round_trips(doc.metadata) or not all(_round_trips(s.fields) for e in extracted.extractions
                                                 for s in e.structures):
        return None
    chunks = []
    for chunk in extracted.chunks:
        item = [chunk.id, chunk.position, chunk.start, chunk.end, chunk.token_count]
        if doc.text[chunk.start : chunk.end] != chunk.text:
            item.append(chunk.text)
        chunks.append(item)
    chunk_index = {chunk.id: i for i, chunk in enumerate(extracted.chunks)}
    extractions = []
    for e in extracted.extractions:
        position = {id(m): i for i, m in enumerate(e.mentions)}
        at = chunk_index.get(e.chunk.id)
        relations = []
        for r in e.relations:
            head, tail = position.get(id(r.head)), position.get(id(r.tail))
            relations.append([r.label, _mention(r.head) if head is None else head,
                              _mention(r.tail) if tail is None else tail, r.confidence])
        extractions.append({
            "chunk": at if at is not None and extracted.chunks[at] == e.chunk else
            [e.chunk.id, e.chunk.position, e.chunk.start, e.chunk.end, e.chunk.token_count, e.chunk.text],
            "mentions": [_mention(m) for m in e.mentions],
            "relations": relations,
            "classifications": _scores(e.classifications),
            "structures": [[s.name, s.fields] for s in e.structures],
            "dropped": e.dropped_relations,
        })
    return {
        "format": _FORMAT,
        "document": [doc.id, doc.path, doc.source_path, doc.title, doc.text, doc.mtime, doc.content_hash, doc.metadata],
        "chunks": chunks,
        "extractions": extractions,
        "classifications": _scores(extracted.classifications),
    }


def decode_extracted(data: dict[str, Any]) -> ExtractedDocument | None:
    if data.get("format") != _FORMAT:
        return None
    doc_id, path, source_path, title, text, mtime, content_hash, metadata = data["document"]
    document = Document(doc_id, path, source_path, title, text, mtime, content_hash, metadata)

    def chunk_of(item: list) -> Chunk:
        cid, position, start, end, tokens, *own_text = item
        return Chunk(cid, doc_id, position, start, end, own_text[0] if own_text else text[start:end], tokens)

    def mention_of(item: list) -> Mention:
        mid, chunk_id, label, surface, start, end, confidence = item
        return Mention(mid, doc_id, chunk_id, label, surface, start, end, confidence)

    chunks = [chunk_of(item) for item in data["chunks"]]
    extractions = []
    for e in data["extractions"]:
        mentions = [mention_of(item) for item in e["mentions"]]
        extractions.append(ChunkExtraction(
            chunk=chunks[e["chunk"]] if isinstance(e["chunk"], int) else chunk_of(e["chunk"]),
            mentions=mentions,
            relations=[RelationMention(label, mentions[h] if isinstance(h, int) else mention_of(h),
                                       mentions[t] if isinstance(t, int) else mention_of(t), confidence)
                       for label, h, t, confidence in e["relations"]],
            classifications=_labels(e["classifications"]),
            structures=[StructureInstance(name, fields) for name, fields in e["structures"]],
            dropped_relations=dict(e["dropped"]),
        ))
    return ExtractedDocument(document, chunks, extractions, _labels(data["classifications"]))


def _labels(data: Mapping[str, list[list]]) -> dict[str, list[LabelScore]]:
    return {task: [LabelScore(label, confidence) for label, confidence in scores] for task, scores in data.items()}
