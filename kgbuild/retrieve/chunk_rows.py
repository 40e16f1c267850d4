"""The chunk rows of a retrieval graph, streamed to disk as they are read: what keeps the end of a large ingest flat.

A retrieval graph describes every chunk the vector store holds (``graph_matrix``). Its rows (the chunk payload, the
document title, the text's plain words for title links, the BM25 tokens) are written one page at a time into a
folder, in chunk id order, as the files the retrieval folder keeps::

    payloads.jsonl, payload_offsets.npy, payload_ids.json   the chunk table (``chunk_table``)
    plain.txt                                               per chunk: its text's plain words
    tokens.txt                                              per chunk: its BM25 tokens
    bm25/                                                   the BM25 index (bm25s), from token ids

What stays in memory per chunk is its id, its title (shared by a document's chunks), its BM25 token ids (int32) and
its mention pairs (two int32), not its payload: a payload is a few kilobytes as Python objects, and holding every one
of them was most of what an ingest's memory grew by at its end (BENCHMARKS.md, scale-out).

Rows come from the vector store's pages (``rows_from_store``: spilled to a file as read, then taken in id order),
from payloads in memory (``rows_from_payloads``), or, for an update, from a stored folder merged with the rows a run
wrote (``graph_matrix.update_retrieval_graph``).
"""

from __future__ import annotations

import heapq
import json
import mmap
import re
import shutil
import tempfile
import weakref
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from kgbuild.memory import release_heap
from kgbuild.retrieve.chunk_table import IDS, OFFSETS, PAYLOADS, payload_line

PLAIN_TEXTS = "plain.txt"  # per chunk, in chunk table order: its text's plain words (title links)
TOKENS = "tokens.txt"  # per chunk, in chunk table order: its BM25 tokens
BM25_DIR = "bm25"
ROW_FILES = (PAYLOADS, OFFSETS, IDS, PLAIN_TEXTS, TOKENS, BM25_DIR)
PAGE = 512  # rows tokenized and written at a time
SPILL = "payloads.spill"  # the store's payloads as read, before they are taken in id order

_NON_WORD = re.compile(r"[^\w]+")


def plain_words(text: str) -> str:
    """Casefolded words joined by single spaces: what title links match on."""
    return " ".join(_NON_WORD.sub(" ", text.casefold()).split())


@dataclass(slots=True)
class Row:
    """One chunk's row. ``tokens``: its BM25 tokens joined by spaces, or None to tokenize ``indexed`` (the text BM25
    indexes, ``vector.indexed_text``); ``entity_ids``: the entities it mentions that the row brings (its payload's)."""

    id: str
    line: bytes
    title: str
    plain: str
    tokens: str | None
    indexed: str = ""
    entity_ids: Sequence[str] = ()


def payload_row(chunk: str, payload: Mapping[str, Any], line: bytes | None = None) -> Row:
    """``line``: the payload's ``payload_line`` where it is at hand (a spilled payload was read from it)."""
    from kgbuild.retrieve.vector import indexed_text

    return Row(chunk, line if line is not None else payload_line(payload), str(payload.get("title") or ""),
               plain_words(str(payload.get("text") or "")), None, indexed_text(payload),
               [str(e) for e in (payload.get("entity_ids") or ())])


def rows_from_payloads(payloads: Mapping[str, Mapping[str, Any]]) -> Iterator[Row]:
    """The rows of payloads in memory (chunk id -> payload), in id order."""
    for chunk in sorted(payloads):
        yield payload_row(chunk, payloads[chunk])


class SpilledPayloads:
    """Payloads read a page at a time (from a store, in its order) and written to a file as read, then given back in
    chunk id order: memory holds the ids and offsets, not the payloads."""

    def __init__(self, pages: Iterable[Sequence[Mapping[str, Any]]], folder: Path | None = None):
        """``folder``: where the spill file goes (beside the index, not in a small /tmp), else a temporary folder."""
        if folder is None:
            spill_dir = tempfile.mkdtemp(prefix="kgbuild-rows-")
            self._cleanup = weakref.finalize(self, shutil.rmtree, spill_dir, True)
        else:
            spill_dir = str(folder)
            Path(spill_dir).mkdir(parents=True, exist_ok=True)
            self._cleanup = weakref.finalize(self, (Path(spill_dir) / SPILL).unlink, missing_ok=True)
        self._path = Path(spill_dir) / SPILL
        self.ids: list[str] = []
        offsets = array("q", [0])
        with open(self._path, "wb") as fh:
            for page in pages:
                for payload in page:
                    if not payload.get("chunk_id"):
                        continue
                    line = payload_line(payload)
                    fh.write(line)
                    offsets.append(offsets[-1] + len(line))
                    self.ids.append(str(payload["chunk_id"]))
        self._offsets = np.frombuffer(offsets, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self) -> Iterator[Row]:
        """The spilled payloads' rows in chunk id order (where two points share a chunk id, the last read wins, as a
        dict built from the pages would have it)."""
        last: dict[str, int] = {}
        for i, chunk in enumerate(self.ids):
            last[chunk] = i
        order = sorted(last.items())
        del last
        if not order:
            return
        with open(self._path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            for chunk, i in order:
                line = data[int(self._offsets[i]):int(self._offsets[i + 1])]
                yield payload_row(chunk, json.loads(line), line)

    def close(self) -> None:
        self._cleanup()


class MentionPairs:
    """(chunk id, entity id) pairs, held as two int32 arrays over slot tables of the names (a pair list of tuples
    costs ~100 bytes a pair; a chunk names ~20 entities)."""

    def __init__(self) -> None:
        self.chunk_slots: dict[str, int] = {}
        self.entity_slots: dict[str, int] = {}
        self._chunks = array("i")
        self._entities = array("i")

    def add(self, chunk: str, entity: str) -> None:
        c = self.chunk_slots.setdefault(chunk, len(self.chunk_slots))
        e = self.entity_slots.setdefault(entity, len(self.entity_slots))
        self._chunks.append(c)
        self._entities.append(e)

    def add_all(self, pairs: Iterable[tuple[str, str]]) -> None:
        for chunk, entity in pairs:
            self.add(chunk, entity)

    def arrays(self) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
        """Chunk names by slot, entity names by slot, and the pairs' chunk and entity slots."""
        return (list(self.chunk_slots), list(self.entity_slots), np.frombuffer(self._chunks, dtype=np.int32),
                np.frombuffer(self._entities, dtype=np.int32))

    def __len__(self) -> int:
        return len(self._chunks)


@dataclass  # no slots: weakref.finalize holds it (weakref_slot needs Python 3.11)
class WrittenRows:
    """Rows written to ``folder`` (the files of ``ROW_FILES``): their ids and titles in id order; the plain texts are
    read back from the folder (``plain``). A temporary folder (``write_rows`` without one) goes with this object."""

    folder: Path
    ids: list[str]
    titles: list[str]
    _cleanup: Any = field(default=None, repr=False)

    def plain(self) -> Iterator[str]:
        with open(self.folder / PLAIN_TEXTS, encoding="utf-8") as fh:
            for line in fh:
                yield line.rstrip("\n")

    def move_into(self, folder: Path) -> None:
        """Move the row files into ``folder`` (a staging folder on the same file system)."""
        import os

        for name in ROW_FILES:
            os.replace(self.folder / name, folder / name)
        shutil.rmtree(self.folder, ignore_errors=True)

    def close(self) -> None:
        if self._cleanup is not None:
            self._cleanup()


class RowsWriter:
    """Writes rows, given in chunk id order, into ``folder``; ``close`` writes the BM25 index and returns what was
    written. ``mentions``: the rows' entity ids are added to it."""

    def __init__(self, folder: Path, mentions: MentionPairs | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.mentions = mentions
        self.ids: list[str] = []
        self.titles: list[str] = []
        self._title_of: dict[str, str] = {}  # one string per title, shared by its document's chunks
        self._payloads = open(self.folder / PAYLOADS, "wb")
        self._plain = open(self.folder / PLAIN_TEXTS, "w", encoding="utf-8")
        self._tokens = open(self.folder / TOKENS, "w", encoding="utf-8")
        self._offsets = array("q", [0])
        self._vocab: dict[str, int] = {}
        self._token_ids = array("i")
        self._token_ends = array("q", [0])
        self._page: list[Row] = []
        self._last = ""

    def add(self, row: Row) -> None:
        if self._last and row.id <= self._last:
            raise ValueError(f"chunk rows out of order: {row.id} after {self._last}")
        self._last = row.id
        self._page.append(row)
        if len(self._page) >= PAGE:
            self._write_page()

    def add_all(self, rows: Iterable[Row]) -> RowsWriter:
        for row in rows:
            self.add(row)
        return self

    def _write_page(self) -> None:
        from kgbuild.retrieve.lexical import tokenize

        page, self._page = self._page, []
        todo = [r for r in page if r.tokens is None]
        for row, words in zip(todo, tokenize([r.indexed for r in todo])):
            row.tokens = " ".join(words)
        for row in page:
            first = not self.ids
            self.ids.append(row.id)
            self.titles.append(self._title_of.setdefault(row.title, row.title))
            self._payloads.write(row.line)
            self._offsets.append(self._offsets[-1] + len(row.line))
            self._plain.write(("" if first else "\n") + row.plain)
            self._tokens.write(("" if first else "\n") + (row.tokens or ""))
            for word in (row.tokens or "").split():
                self._token_ids.append(self._vocab.setdefault(word, len(self._vocab)))
            self._token_ends.append(len(self._token_ids))
            if self.mentions is not None:
                for entity in row.entity_ids:
                    self.mentions.add(row.id, entity)
        release_heap()  # a page's payloads, parsed and tokenized: glibc would keep each page's high-water mark

    def close(self) -> WrittenRows:
        self._write_page()
        for fh in (self._payloads, self._plain, self._tokens):
            fh.close()
        np.save(self.folder / OFFSETS, np.frombuffer(self._offsets, dtype=np.int64))
        (self.folder / IDS).write_text(json.dumps(self.ids), encoding="utf-8")
        self._save_bm25()
        release_heap()  # bm25s's temporaries, before what the caller builds next
        return WrittenRows(self.folder, self.ids, self.titles)

    def _save_bm25(self) -> None:
        """bm25s's index from token ids (one int32 array; token strings per chunk would be ~60 bytes a token)."""
        import bm25s

        folder = self.folder / BM25_DIR
        folder.mkdir(parents=True, exist_ok=True)
        if not self.ids:
            return
        flat = np.frombuffer(self._token_ids, dtype=np.int32)
        ends = np.frombuffer(self._token_ends, dtype=np.int64)
        documents = [flat[ends[i]:ends[i + 1]] for i in range(len(self.ids))]
        retriever = bm25s.BM25()
        retriever.index((documents, self._vocab), show_progress=False)
        retriever.save(str(folder), show_progress=False)
        del documents, retriever


def write_rows(rows: Iterable[Row], folder: Path | None = None, mentions: MentionPairs | None = None) -> WrittenRows:
    """``rows`` (in id order) written into ``folder``, or into a temporary folder removed with the result."""
    temporary = folder is None
    target = Path(tempfile.mkdtemp(prefix="kgbuild-rows-")) if folder is None else folder
    written = RowsWriter(target, mentions).add_all(rows).close()
    if temporary:
        written._cleanup = weakref.finalize(written, shutil.rmtree, str(target), True)
    return written


def merge_rows(*sources: Iterable[Row]) -> Iterator[Row]:
    """Rows of several sources, each in id order and no chunk in two, as one sequence in id order."""
    return heapq.merge(*sources, key=lambda r: r.id)
