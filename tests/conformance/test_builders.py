"""The test builders themselves: batches must look exactly like what the pipeline produces."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import builders as b  # noqa: E402

from kgbuild.ids import chunk_id, document_id, entity_id, point_id  # noqa: E402


@pytest.mark.parametrize("overlap", [0, 1])
def test_chunks_are_exact_slices(overlap):
    batch = b.corpus_batch(chunk_lines=2 if overlap else None, overlap_lines=overlap)
    for extracted in batch.documents:
        doc = extracted.document
        assert doc.id == document_id(doc.path)
        assert [c.position for c in extracted.chunks] == list(range(len(extracted.chunks)))
        assert [c.id for c in extracted.chunks] == [chunk_id(doc.id, i) for i in range(len(extracted.chunks))]
        assert extracted.chunks[0].start == 0 and extracted.chunks[-1].end == len(doc.text)
        for chunk in extracted.chunks:
            assert doc.text[chunk.start : chunk.end] == chunk.text
        for a, c in zip(extracted.chunks, extracted.chunks[1:]):
            assert c.start <= a.end if overlap else c.start == a.end
        assert [e.chunk for e in extracted.extractions] == extracted.chunks


def test_mentions_sit_at_the_real_offsets():
    batch = b.corpus_batch()
    for extracted in batch.documents:
        for extraction in extracted.extractions:
            for m in extraction.mentions:
                assert extracted.document.text[m.start : m.end] == m.text
                assert extraction.chunk.start <= m.start and m.end <= extraction.chunk.end
                assert m.id in batch.mention_entity
    apple = batch.entities[entity_id("COMPANY", "apple")]
    assert apple.name == "Apple" and apple.aliases == ["Apple", "Apple Inc."]
    # "Apple" inside "Apple Inc." is not a second mention
    starts = sorted({m.start for d in batch.documents for e in d.extractions for m in e.mentions if m.text == "Apple" and m.doc_id == document_id(b.APPLE)})
    assert b.TEXTS[b.APPLE].index("Apple Inc.") not in starts


def test_relations_and_classes():
    batch = b.corpus_batch()
    chunks = {c.id for d in batch.documents for c in d.chunks}
    assert len(batch.relations) == 8  # MANUFACTURES Apple->Vision Pro has two pieces of evidence
    for relation in batch.relations:
        assert relation.head_id in batch.entities and relation.tail_id in batch.entities
        assert all(e.chunk_id in chunks for e in relation.evidence)
    by_path = {d.document.path: d for d in batch.documents}
    assert by_path[b.SAMSUNG].classifications["document_type"][0].label == "product_announcement"
    assert by_path[b.ACME].classifications == {}


def test_unknown_surface_is_an_error():
    with pytest.raises(ValueError, match="not found"):
        b.make_batch({"a.txt": "Nothing here.\n"}, [("a.txt", "COMPANY", "Apple")])
    with pytest.raises(ValueError, match="no chunk holds both"):
        b.make_batch(
            {"a.txt": "Apple is here.\nTim Cook is there.\n"},
            [("a.txt", "COMPANY", "Apple"), ("a.txt", "PERSON", "Tim Cook")],
            [("a.txt", "Tim Cook", "CEO_OF", "Apple")],
        )


def test_fake_vectors_are_stable_unit_vectors():
    one, again, other = b.fake_vector("text", 16), b.fake_vector("text", 16), b.fake_vector("other", 16)
    assert one == again and one != other
    assert math.isclose(sum(x * x for x in one), 1.0, rel_tol=1e-9)
    points = b.points_for(b.corpus_batch(), 8)
    assert [p.id for p in points] == [point_id(p.chunk_id) for p in points]
    assert len({tuple(p.vector) for p in points}) == len(points)


def test_ids_accept_any_text():
    path = "feeds/odd.jsonl#7"
    name = "Broken\ud800Name Corp"
    batch = b.make_batch({path: f"{name} opened an office.\n"}, [(path, "COMPANY", name)])
    assert [e.name for e in batch.entities.values()] == [name]
