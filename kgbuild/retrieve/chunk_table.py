"""The chunk payloads of an index as one file read on demand: what hybrid retrieval shows for a graph or BM25 hit.

The vector store holds every chunk's payload (text, document path, title, entities, classes), but reading all of
them when a retriever opens costs seconds per 10,000 chunks, and the Protocol has no read by id. So the retrieval
folder keeps a copy written at ingest (``Index.refresh_retrieval_graph``)::

    payloads.jsonl        one payload per line (JSON), chunks in id order
    payload_offsets.npy   byte offset of each line (int64, one more than the chunks)
    payload_ids.json      the chunk ids, in the same order

Opening reads the ids and offsets; a payload is parsed when asked for (``table["doc_...:00003"]``).
"""

from __future__ import annotations

import json
import mmap
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

PAYLOADS = "payloads.jsonl"
OFFSETS = "payload_offsets.npy"
IDS = "payload_ids.json"


def payload_line(payload: Mapping[str, Any]) -> bytes:
    """A payload as the table stores it: one line of JSON."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n"


def write_chunk_table(folder: Path, payloads: Mapping[str, dict[str, Any]]) -> None:
    ids = sorted(payloads)
    write_chunk_lines(folder, ids, [payload_line(payloads[c]) for c in ids])


def write_chunk_lines(folder: Path, ids: Sequence[str], lines: Sequence[bytes]) -> None:
    """The table of ``ids`` (in id order) and their payload lines (``payload_line``)."""
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    with open(folder / PAYLOADS, "wb") as fh:
        for i, line in enumerate(lines):
            fh.write(line)
            offsets[i + 1] = offsets[i] + len(line)
    np.save(folder / OFFSETS, offsets)
    (folder / IDS).write_text(json.dumps(list(ids)), encoding="utf-8")


def raw_lines(table: ChunkTable) -> list[bytes]:
    """Every payload line of a table, unparsed (what an update copies for the chunks it keeps)."""
    data, offsets = table._data, table._offsets
    return [bytes(data[int(offsets[i]):int(offsets[i + 1])]) for i in range(len(table.ids))]


class ChunkTable(Mapping[str, dict[str, Any]]):
    """Payloads by chunk id, parsed on demand (and kept once parsed)."""

    def __init__(self, folder: Path):
        self.ids: list[str] = json.loads((folder / IDS).read_text(encoding="utf-8"))
        self._index = {c: i for i, c in enumerate(self.ids)}
        self._offsets = np.load(folder / OFFSETS)
        with open(folder / PAYLOADS, "rb") as fh:
            size = fh.seek(0, 2)
            self._data: Any = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        self._parsed: dict[int, dict[str, Any]] = {}

    @classmethod
    def open(cls, folder: Path) -> ChunkTable | None:
        return cls(folder) if (folder / IDS).exists() else None

    def release_pages(self) -> None:
        """Let go of the table's pages read so far (they stay in the page cache; a later read maps them again):
        a pass over every payload, as the communities' term counts make, would otherwise keep the whole file
        resident in the process."""
        if isinstance(self._data, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
            self._data.madvise(mmap.MADV_DONTNEED)

    def at(self, i: int) -> dict[str, Any]:
        found = self._parsed.get(i)
        if found is None:
            found = self._parsed[i] = self._parse(i)
        return found

    def _parse(self, i: int) -> dict[str, Any]:
        return json.loads(self._data[int(self._offsets[i]):int(self._offsets[i + 1])])

    def __getitem__(self, chunk: str) -> dict[str, Any]:
        return self.at(self._index[chunk])

    def read(self, chunk: str) -> dict[str, Any]:
        """The payload of ``chunk``, parsed and not kept (a pass over every chunk holds one at a time)."""
        i = self._index[chunk]
        found = self._parsed.get(i)
        return found if found is not None else self._parse(i)

    def __contains__(self, chunk: object) -> bool:
        return chunk in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


class PayloadList:
    """The table as a sequence in id order (what ``BM25ChunkIndex.payloads`` indexes)."""

    def __init__(self, table: ChunkTable):
        self.table = table
        self.ids = table.ids

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.table.at(i)

    def __len__(self) -> int:
        return len(self.table)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self.table.at(i) for i in range(len(self.table)))
