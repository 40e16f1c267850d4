"""Titles count: each chunk of a titled document is embedded, BM25-indexed and extracted with its title as a
header, while every offset still points into the document text."""

from __future__ import annotations

import json
from pathlib import Path

from kgbuild.chunk import HEADER_MAX_TOKENS, TokenChunker, WhitespaceCounter, document_header
from kgbuild.extract.base import RawExtraction, RawRelation, RawSpan, without_header
from kgbuild.extract.gazetteer import GazetteerExtractor
from kgbuild.ids import content_hash, document_id
from kgbuild.pipeline import ingest
from kgbuild.plan import extraction_fingerprint_parts
from kgbuild.retrieve.hybrid import HybridRetriever
from kgbuild.settings import Settings
from kgbuild.types import Document


def doc(text: str, title: str, path: str = "notes.txt") -> Document:
    return Document(document_id(path), path, path.partition("#")[0], title, text, 0.0, content_hash(title, text))


def test_a_titled_document_s_chunks_carry_the_title_and_still_fit_the_window():
    text = " ".join(f"w{i}." for i in range(40))
    chunks = TokenChunker(WhitespaceCounter(), 10, 2, headers=True).chunk(doc(text, "Alpha Beta"))
    assert chunks and all(c.header == "Alpha Beta" for c in chunks)
    assert all(c.token_count <= 8 for c in chunks)  # 10 tokens, 2 of them the title's
    assert all(len(c.contextual_text.split()) <= 10 for c in chunks)
    assert all(text[c.start:c.end] == c.text for c in chunks)  # offsets into the text, not the header
    assert chunks[0].contextual_text == "Alpha Beta\n\n" + chunks[0].text
    # off (the default of the class), or no title of its own: no header, the whole window for text
    plain = TokenChunker(WhitespaceCounter(), 10, 2).chunk(doc(text, "Alpha Beta"))
    assert [c.header for c in plain] == [""] * len(plain) and max(c.token_count for c in plain) == 10
    assert document_header(doc(text, "notes")) == ""  # named after notes.txt
    assert document_header(doc(text, "people #3", "people.jsonl#3")) == ""
    assert document_header(doc(text, "Teutberga", "people.jsonl#3")) == "Teutberga"


def test_a_long_title_is_cut_at_a_word():
    title = " ".join(f"t{i}" for i in range(100))
    chunks = TokenChunker(WhitespaceCounter(), 200, 0, headers=True).chunk(doc("one two three.", title))
    assert chunks[0].header == " ".join(f"t{i}" for i in range(HEADER_MAX_TOKENS))
    small = TokenChunker(WhitespaceCounter(), 10, 0, headers=True).chunk(doc("one two three.", title))
    assert small[0].header == "t0 t1 t2 t3 t4"  # never more than half the window


def test_what_the_model_finds_in_the_header_is_dropped():
    raw = RawExtraction(
        entities=[RawSpan("PERSON", "Teutberga", 0, 9, 0.9), RawSpan("PERSON", "Lothair II", 30, 40, 0.8)],
        relations=[RawRelation("SPOUSE_OF", RawSpan("PERSON", "Teutberga", 0, 9, 0.9), RawSpan("PERSON", "Lothair II", 30, 40, 0.8)),
                   RawRelation("SPOUSE_OF", RawSpan("PERSON", "Lothair II", 30, 40, 0.8), RawSpan("PERSON", "Boso", 50, 54, 0.7))],
        classifications={"topic": []},
    )
    moved = without_header(raw, 11)
    assert [(s.text, s.start, s.end) for s in moved.entities] == [("Lothair II", 19, 29)]
    assert [(r.head.start, r.tail.start) for r in moved.relations] == [(19, 39)]  # Teutberga: not in the text
    assert moved.classifications == raw.classifications
    assert without_header(raw, 0) is raw
    # a relation end in the header moves to the same name in the text, where the text has it
    again = without_header(raw, 11, "Teutberga was wed to Lothair II and Boso")
    assert [(r.head.text, r.head.start, r.tail.start) for r in again.relations][0] == ("Teutberga", 0, 19)


def test_ingest_reads_titles_bm25_finds_a_passage_by_its_title_and_mentions_stay_in_the_text(tmp_path, business_schema, embedder):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    records = [
        {"id": "p1", "title": "Quuxbridge Dynamics", "text": "The firm was founded by Tim Cook in 1990."},
        {"id": "p2", "title": "Harbour notes", "text": "Apple Inc. opened a store near the harbour."},
    ]
    (corpus / "passages.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    extractor = GazetteerExtractor(business_schema, {"COMPANY": ["Quuxbridge Dynamics", "Apple Inc."], "PERSON": ["Tim Cook"]},
                                   max_tokens=64)
    settings = Settings(out_dir=tmp_path / "index", checkpoint_seconds=0)
    ingest(corpus, settings, extractor=extractor, embedder=embedder)

    with HybridRetriever(settings, vector=False, graph=False, bm25=True, embedder=embedder) as retriever:
        hits = retriever.retrieve("Quuxbridge", k=1)
    assert [h.path for h in hits] == ["passages.jsonl#p1"]
    from kgbuild.index import Index

    index = Index.open_existing(settings)
    with index.stores() as stores:
        points = stores.vectors.export().points
        graph = stores.graph.export()
    assert {p["header"] for p in points.values()} == {"Quuxbridge Dynamics", "Harbour notes"}
    texts = {r["id"]: r["text"] for r in records}
    # the title's own company is found only in the header: not a mention (no place in the text)
    keys = {e["key"] for e in graph.entities.values()}
    assert "COMPANY:quuxbridge dynamics" not in keys and "PERSON:tim cook" in keys
    for point in points.values():
        assert texts[point["path"].rpartition("#")[2]][point["start"]:point["end"]] == point["text"]


def test_the_header_is_a_fingerprint_part_only_when_on(business_schema):
    on = extraction_fingerprint_parts(Settings(), business_schema, "m", "e")
    off = extraction_fingerprint_parts(Settings(title_header=False), business_schema, "m", "e")
    assert on["chunk_header"] == "title" and "chunk_header" not in off
