"""The chunk rows streamed to disk (kgbuild.retrieve.chunk_rows) and the memory helpers the end of a large ingest
relies on (kgbuild.memory)."""

from __future__ import annotations

import json
import mmap
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from kgbuild.memory import release_mapped_pages
from kgbuild.retrieve.chunk_rows import (
    MentionPairs, RowsWriter, SpilledPayloads, merge_rows, payload_row, rows_from_payloads, write_rows,
)
from kgbuild.retrieve.chunk_table import ChunkTable
from kgbuild.retrieve.lexical import BM25ChunkIndex, tokenize

WORDS = "acme rockets launch orbit moon lander contract engine fuel budget delay crew".split()


def _payloads(n: int, seed: int = 0) -> dict[str, dict]:
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        chunk = f"doc_{i // 3:03d}:{i % 3:05d}"
        out[chunk] = {"chunk_id": chunk, "doc_id": chunk.split(":")[0], "title": f"Title {i // 3}",
                      "text": " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 30))),
                      "entity_ids": [f"ent_{rng.randrange(20)}" for _ in range(rng.randint(0, 4))]}
    return out


def test_spilled_pages_come_back_in_chunk_id_order_with_the_last_copy_winning(tmp_path):
    payloads = _payloads(50)
    shuffled = list(payloads.values())
    random.Random(1).shuffle(shuffled)
    stale = {**shuffled[0], "text": "an older copy"}
    pages = [[stale], *[shuffled[i:i + 7] for i in range(0, len(shuffled), 7)]]
    spilled = SpilledPayloads(pages)
    rows = list(spilled.rows())
    assert [r.id for r in rows] == sorted(payloads)
    assert [r.line for r in rows] == [r.line for r in rows_from_payloads(payloads)]
    spilled.close()


def test_written_rows_are_the_chunk_table_plain_texts_tokens_and_mentions(tmp_path):
    payloads = _payloads(1300)  # more than two pages
    mentions = MentionPairs()
    written = write_rows(rows_from_payloads(payloads), tmp_path / "rows", mentions)
    assert written.ids == sorted(payloads)
    table = ChunkTable.open(tmp_path / "rows")
    assert table is not None and table.ids == written.ids
    assert all(table.read(c) == payloads[c] for c in payloads)
    assert list(written.plain()) == [payloads[c]["text"] for c in written.ids]  # already plain words
    tokens = (tmp_path / "rows" / "tokens.txt").read_text(encoding="utf-8").split("\n")
    assert tokens == [" ".join(t) for t in tokenize([payloads[c]["text"] for c in written.ids])]
    chunks, entities, pair_chunks, pair_entities = mentions.arrays()
    pairs = sorted((chunks[c], entities[e]) for c, e in zip(pair_chunks, pair_entities))
    assert pairs == sorted((c, e) for c, p in payloads.items() for e in p["entity_ids"])


def test_each_page_of_rows_and_the_bm25_build_hand_their_memory_back(tmp_path, monkeypatch):
    """glibc keeps what a page's parsed payloads and tokens freed unless asked: without a release per page, the rows
    pass of a 10,000-chunk ingest left 25 MiB of freed heap resident under the builds that follow (BENCHMARKS.md)."""
    import kgbuild.retrieve.chunk_rows as chunk_rows

    releases: list[int] = []
    monkeypatch.setattr(chunk_rows, "release_heap", lambda: releases.append(1))
    monkeypatch.setattr(chunk_rows, "PAGE", 4)
    write_rows(rows_from_payloads(_payloads(10)), tmp_path / "rows")
    assert len(releases) == 3 + 1  # pages of 4, 4 and 2 rows, then the BM25 index


def test_the_bm25_index_from_token_ids_ranks_as_one_built_from_the_texts(tmp_path):
    payloads = _payloads(300, seed=3)
    write_rows(rows_from_payloads(payloads), tmp_path / "rows")
    table = ChunkTable.open(tmp_path / "rows")
    from kgbuild.retrieve.chunk_table import PayloadList

    stored = BM25ChunkIndex.load(tmp_path / "rows" / "bm25", PayloadList(table))
    fresh = BM25ChunkIndex([payloads[c] for c in sorted(payloads)])
    for query in ("rockets moon", "crew delay budget", "lander", "nothing here"):
        a, b = stored.search(query, limit=10), fresh.search(query, limit=10)
        assert [i for i, _ in a] == [i for i, _ in b], query
        assert np.allclose([s for _, s in a], [s for _, s in b], atol=1e-5), query


def test_rows_out_of_order_are_refused(tmp_path):
    payloads = _payloads(3)
    ids = sorted(payloads)
    writer = RowsWriter(tmp_path / "rows")
    writer.add(payload_row(ids[1], payloads[ids[1]]))
    with pytest.raises(ValueError, match="out of order"):
        writer.add(payload_row(ids[0], payloads[ids[0]]))


def test_merged_sources_stay_in_id_order():
    a = _payloads(9, seed=1)
    b = {c.replace("doc_", "doc_x"): {**p, "chunk_id": c.replace("doc_", "doc_x")} for c, p in _payloads(6, seed=2).items()}
    merged = [r.id for r in merge_rows(rows_from_payloads(a), rows_from_payloads(b))]
    assert merged == sorted([*a, *b])


def test_a_temporary_rows_folder_goes_with_its_rows():
    written = write_rows(rows_from_payloads(_payloads(4)))
    folder = written.folder
    assert (folder / "payloads.jsonl").exists()
    written.close()
    assert not folder.exists()


def resident_file_kib() -> int:
    """KiB of mapped files resident in this process (Linux)."""
    for line in open("/proc/self/status"):
        if line.startswith("RssFile"):
            return int(line.split()[1])
    return 0


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/maps")
def test_released_pages_of_a_shared_mapping_keep_their_written_content(tmp_path):
    path = tmp_path / "store" / "segment.bin"
    path.parent.mkdir()
    size = 8 << 20
    path.write_bytes(b"\0" * size)
    with open(path, "r+b") as fh, mmap.mmap(fh.fileno(), size) as mapped:
        mapped[:] = b"\x07" * size  # every page written through the mapping, none flushed

        before = resident_file_kib()
        assert release_mapped_pages(tmp_path / "store") == 1
        assert before - resident_file_kib() >= 6 << 10  # most of the 8 MiB left the process
        assert release_mapped_pages(tmp_path / "elsewhere") == 0
        assert mapped[:16] == b"\x07" * 16 and mapped[size - 1] == 7  # read back from the page cache
    assert path.read_bytes() == b"\x07" * size


def test_payload_lines_are_json_of_the_payload():
    payloads = _payloads(2)
    for row in rows_from_payloads(payloads):
        assert json.loads(row.line) == payloads[row.id]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_a_chunk_table_lets_go_of_the_pages_it_has_read(tmp_path):
    """The communities' term counts read every payload: the table's file must not stay resident in the process."""
    payloads = {f"doc_{i:05d}:00000": {"chunk_id": f"doc_{i:05d}:00000", "text": f"text {i} " + "word " * 400,
                                       "entity_ids": []} for i in range(3000)}
    write_rows(rows_from_payloads(payloads), tmp_path / "rows", MentionPairs())
    table = ChunkTable.open(tmp_path / "rows")
    assert table is not None

    before = resident_file_kib()
    assert all(table.read(c)["text"].startswith("text ") for c in table.ids)  # ~6 MiB of payloads mapped in
    read = resident_file_kib()
    assert read - before >= 4 << 10
    table.release_pages()
    assert read - resident_file_kib() >= 4 << 10
    assert table.read(table.ids[-1]) == payloads[table.ids[-1]]  # read again from the page cache


def test_opening_a_stored_embedded_vector_store_lets_go_of_the_pages_its_load_read(tmp_path, monkeypatch):
    """Loading a qdrant-edge shard reads its segments through their mappings (120 MiB resident after 10,000 chunks):
    an incremental run or a query process that opens a large index lets go of them once it is loaded."""
    import kgbuild.connectors.qdrant_edge as qdrant_edge
    from kgbuild.ids import point_id
    from kgbuild.types import ChunkPoint

    sink = qdrant_edge.QdrantEdgeVectorSink(tmp_path / "vectors")
    sink.open(4)
    sink.upsert([ChunkPoint(point_id(f"d:{i:05d}"), f"d:{i:05d}", [1.0, float(i), 0.5, 0.0],
                            {"chunk_id": f"d:{i:05d}", "doc_id": "d"}) for i in range(20)])
    sink.close()
    released = []
    release = qdrant_edge.release_mapped_pages
    monkeypatch.setattr(qdrant_edge, "release_mapped_pages", lambda folder: released.append(Path(folder)) or release(folder))
    again = qdrant_edge.QdrantEdgeVectorSink(tmp_path / "vectors")
    again.open(4)
    try:
        assert released == [tmp_path / "vectors"] and again.count() == 20
    finally:
        again.close()
