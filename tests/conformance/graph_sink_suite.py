"""Conformance tests every ``GraphSink`` must pass (NetworkX now, Neo4j later).

A concrete test class mixes ``GraphSinkConformance`` in and implements one hook:

``make_sink(self, folder)``
    An *unopened* sink whose storage lives in (or is named after) ``folder``. Two calls
    with the same folder must reach the same store (persistence is tested that way);
    different folders must be independent stores.

The suite reads the sink back only through the Protocol's read side (``export()``,
``entity_graph()``, ``stats()``), as ``Index``, retrieval, the graph view and ``verify`` do, so a
sink that passes it works with every command. The three must tell the same story: the tests of
the read side (at the end) check ``entity_graph()`` and ``stats()`` against ``export()`` on an
empty store, after writes, removals and replacements, and after a reopen.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import builders as b  # noqa: E402

from kgbuild.ids import chunk_id, document_id, entity_id  # noqa: E402
from kgbuild.overrides import ResolutionOverrides  # noqa: E402
from kgbuild.reconcile import normalize_name, reconcile  # noqa: E402
from kgbuild.types import Entity, EntityGraphData, GraphBatch, GraphExport, IndexStats  # noqa: E402
from kgbuild.verify import canonical_export, graph_checksum  # noqa: E402

A, B = b.APPLE, b.SAMSUNG
A_ID, B_ID = document_id(A), document_id(B)

# Two documents whose names resolution joins, for the reasons every mention carries: BLAIR_1 has the full
# name (so "Blair" joins "Tony Blair") and "U.S." (an alias of "United States"); BLAIR_2 has only the
# surname (so it stays "Blair", unless an override merges it).
BLAIR_1, BLAIR_2 = "news/blair-1.txt", "news/blair-2.txt"
BLAIR_TEXTS = {
    BLAIR_1: "Tony Blair spoke in London.\nBlair thanked the U.S. for its help.\nHe left for the United States.\n",
    BLAIR_2: "Blair met voters in Leeds.\nBlair said little.\n",
}
BLAIR_MENTIONS: list[b.MentionSpec] = [
    (BLAIR_1, "PERSON", "Tony Blair"), (BLAIR_1, "PERSON", "Blair"), (BLAIR_1, "LOCATION", "London"),
    (BLAIR_1, "LOCATION", "U.S."), (BLAIR_1, "LOCATION", "United States"),
    (BLAIR_2, "PERSON", "Blair"), (BLAIR_2, "LOCATION", "Leeds"),
]
BLAIR_1_ID, BLAIR_2_ID = document_id(BLAIR_1), document_id(BLAIR_2)
MERGE_BLAIR = ResolutionOverrides.from_pairs(merge=[("PERSON:Blair", "PERSON:Tony Blair")])


def explained_batch(*paths: str, overrides: ResolutionOverrides | None = None) -> GraphBatch:
    """A batch of BLAIR_TEXTS reconciled as the pipeline does, with the reason of every mention."""
    batch = b.make_batch({p: BLAIR_TEXTS[p] for p in paths or tuple(BLAIR_TEXTS)}, BLAIR_MENTIONS)
    mentions = [m for d in batch.documents for e in d.extractions for m in e.mentions]
    texts = {d.document.id: d.document.text for d in batch.documents}
    rec, _ = reconcile(mentions, [], b.business_schema(), texts=texts, overrides=overrides)
    return GraphBatch(batch.documents, rec.entities, rec.mention_entity, rec.relations, rec.mention_reasons)


def reasons(export: GraphExport | dict[str, Any], entity: str) -> list[tuple[str, str, str, str]]:
    """Why each of an entity's mentions is in it, from the export: sorted (document id, text, rule, via)."""
    mentions = export.mentions if isinstance(export, GraphExport) else export["mentions"]
    return sorted((m["doc_id"], m["text"], m["rule"], m["via"]) for m in mentions if m["entity_id"] == entity)


def eid(entity_type: str, name: str) -> str:
    return entity_id(entity_type, normalize_name(name))


def checksum(data: GraphExport) -> str:
    return graph_checksum(data)


def _relation(export: dict[str, Any], label: str, head: str, tail: str) -> dict[str, Any] | None:
    found = [r for r in export["relations"] if (r["label"], r["head_id"], r["tail_id"]) == (label, head, tail)]
    assert len(found) <= 1, f"{label} {head}->{tail} stored {len(found)} times"
    return found[0] if found else None


def _classes(scores: dict) -> dict[str, list[tuple[str, float]]]:
    return {task: [(s.label, pytest.approx(s.confidence, abs=1e-6)) for s in v] for task, v in scores.items()}


def _exported_classes(classes: dict) -> dict[str, list[tuple[str, float]]]:
    return {task: [(s["label"], s["confidence"]) for s in v] for task, v in classes.items()}


# -- the read side: entity_graph() and stats() against export() ------------------------------------


def _duplicates(items: list) -> list:
    return sorted(item for item, n in Counter(items).items() if n > 1)


def assert_entity_graph_matches_export(graph: EntityGraphData, export: GraphExport) -> None:
    """The graph retrieval walks is the exported graph: the same entities with the same names, aliases,
    counts and confidence; one (chunk, entity) pair per chunk and entity that a MENTIONS joins; the
    relation edges, each once."""
    assert isinstance(graph, EntityGraphData), type(graph)
    for entity_id_, entity in graph.entities.items():
        assert isinstance(entity, Entity), type(entity)
        assert entity.id == entity_id_
    assert set(graph.entities) == set(export.entities)
    for entity_id_, record in export.entities.items():
        entity = graph.entities[entity_id_]
        assert (entity.type, entity.key, entity.name, sorted(entity.aliases), entity.mention_count) == (
            record["type"], record["key"], record["name"], sorted(record["aliases"]), record["mention_count"],
        ), entity_id_
        assert entity.alias_counts == record["alias_counts"], entity_id_
        assert entity.confidence == pytest.approx(record["confidence"], abs=1e-6), entity_id_
    assert all(isinstance(pair, tuple) and len(pair) == 2 for pair in graph.mentions), graph.mentions[:3]
    assert not _duplicates(graph.mentions), f"mention pairs given more than once: {_duplicates(graph.mentions)}"
    assert set(graph.mentions) == {(m["chunk_id"], m["entity_id"]) for m in export.mentions}
    assert all(isinstance(edge, tuple) and len(edge) == 3 for edge in graph.relations), graph.relations[:3]
    assert not _duplicates(graph.relations), f"relation edges given more than once: {_duplicates(graph.relations)}"
    assert sorted(graph.relations) == sorted((r["head_id"], r["label"], r["tail_id"]) for r in export.relations)


def assert_stats_match_export(stats: IndexStats, export: GraphExport) -> None:
    """``stats()`` counts what ``export()`` holds; a span in two overlapping chunks is one mention."""
    assert isinstance(stats, IndexStats), type(stats)
    assert (stats.documents, stats.chunks, stats.entities, stats.relations) == (
        len(export.documents), len(export.chunks), len(export.entities), len(export.relations))
    assert stats.mentions == len({(m["doc_id"], m["start"], m["end"], m["entity_id"]) for m in export.mentions})
    assert stats.entities_by_type == dict(Counter(e["type"] for e in export.entities.values()))
    assert stats.relations_by_type == dict(Counter(r["label"] for r in export.relations))


def assert_entities_match_export(entities: dict[str, Entity], export: GraphExport) -> None:
    """``entities()`` is every exported entity, with names, aliases and counts per alias."""
    assert set(entities) == set(export.entities)
    for entity_id_, record in export.entities.items():
        entity = entities[entity_id_]
        assert isinstance(entity, Entity) and entity.id == entity_id_
        assert (entity.type, entity.key, entity.name, sorted(entity.aliases), entity.alias_counts, entity.mention_count) == (
            record["type"], record["key"], record["name"], sorted(record["aliases"]), record["alias_counts"],
            record["mention_count"]), entity_id_
        # the counts per alias add up to the entity's: each distinct span is written one way
        assert sorted(record["alias_counts"]) == sorted(record["aliases"]), entity_id_
        assert sum(record["alias_counts"].values()) == record["mention_count"], entity_id_


def assert_entity_mentions_match_export(sink: Any, export: GraphExport) -> None:
    """``entity_mentions(ids)`` gives exactly the exported MENTIONS of those entities, reasons included."""
    key = json.dumps
    for ids in (list(export.entities), list(export.entities)[:2], []):
        got = sorted(sink.entity_mentions(ids), key=lambda m: key(m, sort_keys=True))
        want = sorted((m for m in export.mentions if m["entity_id"] in set(ids)), key=lambda m: key(m, sort_keys=True))
        assert got == want
    assert sink.entity_mentions(["ent_00000000000000000000", "not an id"]) == []


def entity_graph_content(graph: EntityGraphData) -> dict[str, Any]:
    """``entity_graph()`` as plain data in a fixed order, to compare two reads of it."""
    return {
        "entities": {
            e.id: (e.type, e.key, e.name, sorted(e.aliases), e.mention_count, round(e.confidence, 6),
                   sorted(e.alias_counts.items()))
            for e in graph.entities.values()
        },
        "mentions": sorted(graph.mentions),
        "relations": sorted(graph.relations),
    }


def batch_entity_graph(*batches: GraphBatch) -> tuple[set[tuple[str, str]], set[tuple[str, str, str]]]:
    """The (chunk, entity) pairs and relation edges that writing ``batches`` (no document twice) must give."""
    pairs = {(m.chunk_id, batch.mention_entity[m.id]) for batch in batches for d in batch.documents
             for e in d.extractions for m in e.mentions}
    edges = {(r.head_id, r.label, r.tail_id) for batch in batches for r in batch.relations}
    return pairs, edges


class GraphSinkConformance:
    # -- hooks -------------------------------------------------------------------------------

    def make_sink(self, folder: Path) -> Any:
        raise NotImplementedError

    def export(self, sink: Any) -> GraphExport:
        """The sink's whole content through its own ``export()``, which must hold nothing kgbuild would not write."""
        out = sink.export()
        assert isinstance(out, GraphExport)
        assert not out.problems, f"the store holds what kgbuild would not write: {out.problems}"
        return out

    # -- helpers -----------------------------------------------------------------------------

    @pytest.fixture
    def open_sink(self, tmp_path: Path):
        """``open_sink(name="main")``: an opened sink in ``tmp_path/name``; all are closed at teardown."""
        opened: list[Any] = []

        def factory(name: str = "main") -> Any:
            folder = tmp_path / name
            folder.mkdir(parents=True, exist_ok=True)
            sink = self.make_sink(folder)
            sink.open()
            opened.append(sink)
            return sink

        yield factory
        for sink in reversed(opened):
            with contextlib.suppress(Exception):
                sink.close()

    def content(self, sink: Any) -> dict[str, Any]:
        return canonical_export(self.export(sink))

    def fresh_content(self, open_sink: Any, name: str, *batches: GraphBatch) -> dict[str, Any]:
        sink = open_sink(name)
        for batch in batches:
            sink.write(batch)
        return self.content(sink)

    def read_side(self, sink: Any) -> dict[str, Any]:
        """``entity_graph()``, ``stats()`` and ``export()`` of one sink, checked against each other; the entity
        graph as plain data. ``entity_graph()`` is asked first: a sink may read its storage another way
        before anything has loaded it (the NetworkX sink reads its file without building the graph)."""
        graph = sink.entity_graph()
        without = sink.entity_graph(mentions=False)
        assert without.mentions == [] and without.entities == graph.entities and without.relations == graph.relations
        stats = sink.stats()
        entities = sink.entities()
        export = self.export(sink)
        assert_entity_graph_matches_export(graph, export)
        assert_stats_match_export(stats, export)
        assert_entities_match_export(entities, export)
        assert_entity_mentions_match_export(sink, export)
        return entity_graph_content(graph)

    # -- the protocol ------------------------------------------------------------------------

    def test_implements_the_protocol(self, open_sink):
        sink = open_sink()
        for method in ("open", "write", "remove_documents", "stats", "entity_graph", "entities", "entity_mentions", "flush",
                       "export", "close"):
            assert callable(getattr(sink, method, None)), method

    def test_empty_sink(self, open_sink):
        sink = open_sink()
        stats = sink.stats()
        assert (stats.documents, stats.chunks, stats.mentions, stats.entities, stats.relations) == (0, 0, 0, 0, 0)
        assert stats.entities_by_type == {} and stats.relations_by_type == {}
        sink.remove_documents([])
        sink.remove_documents([A_ID])
        sink.flush()
        assert self.content(sink)["entities"] == {}

    # -- nodes and edges -----------------------------------------------------------------------

    def test_stats_counts(self, open_sink):
        sink = open_sink()
        batch = b.corpus_batch(A, B)
        sink.write(batch)
        stats = sink.stats()
        # worked out by hand from the corpus text (see builders.TEXTS/MENTIONS/RELATIONS)
        assert stats.documents == 2
        assert stats.chunks == 4
        assert stats.mentions == 17  # A: 9 spans, B: 8 spans
        assert stats.entities == 10
        assert stats.entities_by_type == {"COMPANY": 3, "LOCATION": 2, "MONEY": 2, "PERSON": 1, "PRODUCT": 2}
        assert stats.relations == 7
        assert stats.relations_by_type == {"CEO_OF": 1, "COMPETES_WITH": 2, "MANUFACTURES": 2, "PRICED_AT": 2}
        # and derived from the batch itself
        assert stats.entities == len(batch.entities)
        assert stats.relations == len(batch.relations)
        assert stats.mentions == len({(m.doc_id, m.start, m.end) for d in batch.documents for e in d.extractions for m in e.mentions})
        assert stats.entities_by_type == dict(Counter(e.type for e in batch.entities.values()))
        assert stats.relations_by_type == dict(Counter(r.label for r in batch.relations))

    def test_document_nodes(self, open_sink):
        sink = open_sink()
        batch = b.corpus_batch()
        sink.write(batch)
        docs = self.content(sink)["documents"]
        assert set(docs) == {d.document.id for d in batch.documents}
        for extracted in batch.documents:
            doc = extracted.document
            node = docs[doc.id]
            assert (node["path"], node["source_path"], node["title"], node["content_hash"]) == (
                doc.path,
                doc.source_path,
                doc.title,
                doc.content_hash,
            )
        assert docs[document_id(b.WIRE_1)]["source_path"] == "feeds/wire.jsonl"

    def test_chunk_nodes_and_chunk_edges(self, open_sink):
        sink = open_sink()
        batch = b.corpus_batch()
        sink.write(batch)
        data = self.content(sink)
        expected_has: list[list[str]] = []
        expected_next: list[list[str]] = []
        for extracted in batch.documents:
            ids = [c.id for c in extracted.chunks]
            expected_has += [[extracted.document.id, c] for c in ids]
            expected_next += [[x, y] for x, y in zip(ids, ids[1:])]
            for chunk in extracted.chunks:
                node = data["chunks"][chunk.id]
                assert (node["doc_id"], node["position"], node["start"], node["end"], node["text"], node["token_count"]) == (
                    chunk.doc_id,
                    chunk.position,
                    chunk.start,
                    chunk.end,
                    chunk.text,
                    chunk.token_count,
                )
                assert extracted.document.text[node["start"] : node["end"]] == node["text"]
        assert len(data["chunks"]) == len(expected_has)
        assert data["has_chunk"] == sorted(expected_has, key=lambda x: json.dumps(x))
        assert data["next_chunk"] == sorted(expected_next, key=lambda x: json.dumps(x))
        assert [A_ID, chunk_id(A_ID, 0)] in data["has_chunk"]
        assert [chunk_id(A_ID, 0), chunk_id(A_ID, 1)] in data["next_chunk"]
        assert [chunk_id(A_ID, 1), chunk_id(A_ID, 0)] not in data["next_chunk"]

    def test_entities_names_types_aliases(self, open_sink):
        sink = open_sink()
        batch = b.corpus_batch()
        sink.write(batch)
        entities = self.content(sink)["entities"]
        assert set(entities) == set(batch.entities)
        for entity in batch.entities.values():
            node = entities[entity.id]
            assert (node["type"], node["key"], node["name"], node["aliases"], node["mention_count"]) == (
                entity.type,
                entity.key,
                entity.name,
                sorted(entity.aliases),
                entity.mention_count,
            ), entity.key
            assert node["confidence"] == pytest.approx(entity.confidence, abs=1e-6)
        apple = entities[eid("COMPANY", "Apple")]
        assert (apple["name"], apple["aliases"], apple["mention_count"]) == ("Apple", ["Apple", "Apple Inc."], 5)
        assert apple["alias_counts"] == {"Apple": 4, "Apple Inc.": 1}
        acme = entities[eid("COMPANY", "Acme Corp")]
        # three surfaces seen once each: the longer form wins the tie
        assert (acme["name"], acme["aliases"], acme["key"]) == ("Acme Corp.", ["ACME Corp", "Acme Corp", "Acme Corp."], "COMPANY:acme")

    def test_mentions_carry_offsets_and_confidence(self, open_sink):
        sink = open_sink()
        batch = b.corpus_batch()
        sink.write(batch)
        data = self.content(sink)
        texts = {d.document.id: d.document.text for d in batch.documents}
        by_id = {m["id"]: m for m in data["mentions"]}
        expected = [m for d in batch.documents for e in d.extractions for m in e.mentions]
        assert len(by_id) == len(data["mentions"]) == len(expected)
        for mention in expected:
            stored = by_id[mention.id]
            assert (stored["chunk_id"], stored["entity_id"], stored["doc_id"], stored["start"], stored["end"], stored["text"]) == (
                mention.chunk_id,
                batch.mention_entity[mention.id],
                mention.doc_id,
                mention.start,
                mention.end,
                mention.text,
            )
            assert stored["confidence"] == pytest.approx(mention.confidence, abs=1e-6)
        for stored in data["mentions"]:
            assert texts[stored["doc_id"]][stored["start"] : stored["end"]] == stored["text"]
            chunk = data["chunks"][stored["chunk_id"]]
            assert chunk["start"] <= stored["start"] and stored["end"] <= chunk["end"]
        tim = [m for m in data["mentions"] if m["entity_id"] == eid("PERSON", "Tim Cook") and m["doc_id"] == A_ID]
        start = b.TEXTS[A].index("Tim Cook")
        assert [(m["start"], m["end"], m["confidence"]) for m in tim] == [(start, start + 8, pytest.approx(0.95))]

    def test_relation_edges(self, open_sink):
        sink = open_sink()
        batch = b.corpus_batch()
        sink.write(batch)
        data = self.content(sink)
        assert len(data["relations"]) == len(batch.relations)
        for relation in batch.relations:
            stored = _relation(data, relation.label, relation.head_id, relation.tail_id)
            assert stored is not None, relation
            assert stored["id"] == relation.id
            assert stored["count"] == relation.count == len(stored["evidence"])
            assert stored["confidence"] == pytest.approx(relation.confidence, abs=1e-6)
            got = sorted((e["doc_id"], e["chunk_id"], e["head_start"], e["head_end"], e["tail_start"], e["tail_end"]) for e in stored["evidence"])
            want = sorted((e.doc_id, e.chunk_id, e.head_start, e.head_end, e.tail_start, e.tail_end) for e in relation.evidence)
            assert got == want
        makes = _relation(data, "MANUFACTURES", eid("COMPANY", "Apple"), eid("PRODUCT", "Vision Pro"))
        assert makes["count"] == 2 and makes["confidence"] == pytest.approx(0.85)
        assert sorted(e["chunk_id"] for e in makes["evidence"]) == sorted([chunk_id(A_ID, 0), chunk_id(B_ID, 0)])

    def test_relation_evidence_merges_across_batches(self, open_sink):
        sink = open_sink()
        sink.write(b.corpus_batch(A))
        sink.write(b.corpus_batch(B))
        makes = _relation(self.content(sink), "MANUFACTURES", eid("COMPANY", "Apple"), eid("PRODUCT", "Vision Pro"))
        assert makes["count"] == 2
        assert sorted(e["doc_id"] for e in makes["evidence"]) == sorted([A_ID, B_ID])
        assert makes["confidence"] == pytest.approx(0.85)

    def test_evidence_points_at_mentions_in_their_chunk(self, open_sink):
        sink = open_sink()
        sink.write(b.corpus_batch())
        data = self.content(sink)
        spans = {(m["chunk_id"], m["entity_id"], m["start"], m["end"]) for m in data["mentions"]}
        for relation in data["relations"]:
            for e in relation["evidence"]:
                chunk = data["chunks"][e["chunk_id"]]
                assert chunk["doc_id"] == e["doc_id"]
                assert (e["chunk_id"], relation["head_id"], e["head_start"], e["head_end"]) in spans, relation["label"]
                assert (e["chunk_id"], relation["tail_id"], e["tail_start"], e["tail_end"]) in spans, relation["label"]

    def test_classifications_on_chunks_and_documents(self, open_sink):
        sink = open_sink()
        batch = b.corpus_batch()
        sink.write(batch)
        data = self.content(sink)
        for extracted in batch.documents:
            assert _exported_classes(data["documents"][extracted.document.id]["classifications"]) == _classes(
                extracted.classifications
            )
            for extraction in extracted.extractions:
                assert _exported_classes(data["chunks"][extraction.chunk.id]["classifications"]) == _classes(
                    extraction.classifications
                )
        samsung = data["documents"][B_ID]["classifications"]["document_type"]
        assert [s["label"] for s in samsung] == ["product_announcement"]  # the heavier chunk wins the vote
        assert [s["label"] for s in data["chunks"][chunk_id(B_ID, 1)]["classifications"]["document_type"]] == ["earnings_report"]
        wire2 = data["chunks"][chunk_id(document_id(b.WIRE_2), 0)]["classifications"]["document_type"]
        assert [s["label"] for s in wire2] == ["legal_filing", "earnings_report"]
        assert data["documents"][document_id(b.ACME)]["classifications"] == {}

    def test_overlapping_chunks_count_a_span_once(self, open_sink):
        sink = open_sink()
        batch = b.corpus_batch(A, B, chunk_lines=2, overlap_lines=1)  # line 2 of each doc is in both chunks
        sink.write(batch)
        stats = sink.stats()
        assert stats.mentions == 17
        entities = self.content(sink)["entities"]
        for entity in batch.entities.values():
            assert entities[entity.id]["mention_count"] == entity.mention_count
        assert entities[eid("COMPANY", "Apple")]["mention_count"] == 4
        makes = _relation(self.content(sink), "MANUFACTURES", eid("COMPANY", "Apple"), eid("PRODUCT", "Vision Pro"))
        assert makes["count"] == 2  # one per document, not one per chunk

    # -- why each mention is in its entity, and counts per alias ----------------------------------

    def test_mentions_carry_their_resolution_reason(self, open_sink):
        sink = open_sink()
        batch = explained_batch()
        sink.write(batch)
        data = self.export(sink)
        stored = {m["id"]: (m["rule"], m["via"]) for m in data.mentions}
        written = [m for d in batch.documents for e in d.extractions for m in e.mentions]
        assert stored == {m.id: (batch.reason(m.id).rule, batch.reason(m.id).via) for m in written}
        tony, us = eid("PERSON", "Tony Blair"), entity_id("LOCATION", "united states")
        got = reasons(data, tony)
        assert [(doc, text, via) for doc, text, _, via in got] == [(BLAIR_1_ID, "Blair", "Tony Blair"), (BLAIR_1_ID, "Tony Blair", "")]
        assert got[0][2] not in ("", "exact") and got[1][2] == "exact"
        assert [(text, via) for _, text, _, via in reasons(data, us)] == [("U.S.", "United States"), ("United States", "")]
        assert reasons(data, eid("PERSON", "Blair")) == [(BLAIR_2_ID, "Blair", "exact", ""), (BLAIR_2_ID, "Blair", "exact", "")]
        assert data.entities[tony]["alias_counts"] == {"Blair": 1, "Tony Blair": 1}
        assert data.entities[eid("PERSON", "Blair")]["alias_counts"] == {"Blair": 2}
        assert (data.entities[us]["name"], data.entities[us]["alias_counts"]) == ("United States", {"U.S.": 1, "United States": 1})
        self.read_side(sink)

    def test_a_mention_without_a_reason_is_stored_unrecorded(self, open_sink):
        """A writer that gives no reasons (a graph from before they were kept) stores none: rule and via empty."""
        sink = open_sink()
        sink.write(b.corpus_batch(A))
        assert {(m["rule"], m["via"]) for m in self.export(sink).mentions} == {("", "")}

    def test_reasons_and_alias_counts_follow_removals(self, open_sink):
        """An override merges BLAIR_2's "Blair" into "Tony Blair": the entity's reasons and counts per alias are
        those of the mentions that remain, as documents come and go, and equal a store that saw only those."""
        sink = open_sink()
        tony = eid("PERSON", "Tony Blair")
        sink.write(explained_batch(BLAIR_2, overrides=MERGE_BLAIR))
        sink.write(explained_batch(BLAIR_1, overrides=MERGE_BLAIR))
        data = self.export(sink)
        both = reasons(data, tony)
        assert [(doc, text, via) for doc, text, _, via in both] == [
            (BLAIR_1_ID, "Blair", "Tony Blair"), (BLAIR_1_ID, "Tony Blair", ""),
            (BLAIR_2_ID, "Blair", "Tony Blair"), (BLAIR_2_ID, "Blair", "Tony Blair"),
        ]
        assert [rule for _, _, rule, _ in both[2:]] == ["override", "override"]
        assert eid("PERSON", "Blair") not in data.entities
        entity = data.entities[tony]
        assert (entity["name"], entity["alias_counts"], entity["mention_count"]) == ("Tony Blair", {"Blair": 3, "Tony Blair": 1}, 4)
        assert self.content(sink) == self.fresh_content(open_sink, "at-once", explained_batch(overrides=MERGE_BLAIR))

        sink.remove_documents([BLAIR_1_ID])  # the document with the full name goes, and its explanations with it
        data = self.export(sink)
        assert reasons(data, tony) == both[2:]
        entity = data.entities[tony]
        assert (entity["name"], entity["aliases"], entity["alias_counts"], entity["mention_count"]) == (
            "Blair", ["Blair"], {"Blair": 2}, 2)
        assert entity_id("LOCATION", "united states") not in data.entities
        self.read_side(sink)
        assert self.content(sink) == self.fresh_content(open_sink, "only-2", explained_batch(BLAIR_2, overrides=MERGE_BLAIR))

        sink.write(explained_batch(BLAIR_1, overrides=MERGE_BLAIR))
        sink.remove_documents([BLAIR_2_ID])
        data = self.export(sink)
        assert reasons(data, tony) == both[:2]
        assert data.entities[tony]["alias_counts"] == {"Blair": 1, "Tony Blair": 1}
        self.read_side(sink)
        assert self.content(sink) == self.fresh_content(open_sink, "only-1", explained_batch(BLAIR_1, overrides=MERGE_BLAIR))

    def test_rewriting_a_document_under_other_overrides_replaces_its_reasons(self, open_sink):
        sink = open_sink()
        sink.write(explained_batch())
        sink.write(explained_batch(BLAIR_2, overrides=MERGE_BLAIR))  # the override came in: BLAIR_2 re-resolved
        assert self.content(sink) == self.fresh_content(open_sink, "merged", explained_batch(overrides=MERGE_BLAIR))
        sink.write(explained_batch(BLAIR_2))  # and went again
        assert self.content(sink) == self.fresh_content(open_sink, "apart", explained_batch())
        self.read_side(sink)

    # -- idempotence -----------------------------------------------------------------------------

    def test_writing_the_same_batch_twice_is_idempotent(self, open_sink):
        sink = open_sink()
        batch = b.corpus_batch()
        sink.write(batch)
        stats, first = sink.stats(), self.content(sink)
        sink.write(batch)
        assert sink.stats() == stats
        assert self.content(sink) == first
        assert checksum(self.export(sink)) == checksum(first)
        sink.write(b.corpus_batch())  # an equal batch built again
        assert checksum(self.export(sink)) == checksum(first)

    def test_same_input_same_checksum_in_separate_stores(self, open_sink):
        one = self.fresh_content(open_sink, "one", b.corpus_batch())
        two = self.fresh_content(open_sink, "two", b.corpus_batch())
        assert checksum(one) == checksum(two)

    # -- replacing and removing documents --------------------------------------------------------

    def test_replacing_a_document(self, open_sink):
        sink = open_sink()
        sink.write(b.corpus_batch(A))
        sink.write(b.corpus_batch(B))
        before = self.content(sink)
        old_chunks = {c for c, node in before["chunks"].items() if node["doc_id"] == A_ID}
        assert len(old_chunks) == 2
        v2 = b.apple_v2_batch()
        sink.write(v2)
        data = self.content(sink)
        stats = sink.stats()

        assert set(data["documents"]) == {A_ID, B_ID}
        assert data["documents"][A_ID]["content_hash"] == v2.documents[0].document.content_hash
        a_chunks = {c for c, node in data["chunks"].items() if node["doc_id"] == A_ID}
        assert a_chunks == {chunk_id(A_ID, 0)}
        assert data["chunks"][chunk_id(A_ID, 0)]["text"] == b.APPLE_V2_TEXT
        assert not [e for e in data["has_chunk"] + data["next_chunk"] if set(e) & (old_chunks - a_chunks)]
        # A's mentions are exactly those of the new version
        a_mentions = sorted((m["start"], m["end"], m["text"]) for m in data["mentions"] if m["doc_id"] == A_ID)
        want = sorted((m.start, m.end, m.text) for e in v2.documents[0].extractions for m in e.mentions)
        assert a_mentions == want
        assert all(m["chunk_id"] in data["chunks"] for m in data["mentions"])
        # entities only the old A supported are gone; shared ones keep B's mentions
        entities = data["entities"]
        for gone in (eid("PERSON", "Tim Cook"), eid("MONEY", "$3,499")):
            assert gone not in entities
        apple = entities[eid("COMPANY", "Apple")]
        assert (apple["name"], apple["aliases"], apple["mention_count"]) == ("Apple", ["Apple"], 3)  # B: 1, A v2: 2
        assert entities[eid("PRODUCT", "Vision Pro")]["mention_count"] == 1
        assert entities[eid("COMPANY", "Samsung")]["mention_count"] == 1
        assert entities[eid("LOCATION", "Cupertino")]["mention_count"] == 1
        assert entities[eid("PERSON", "Jeff Williams")]["mention_count"] == 1
        # a relation A and B supported keeps B's evidence, count decremented
        makes = _relation(data, "MANUFACTURES", eid("COMPANY", "Apple"), eid("PRODUCT", "Vision Pro"))
        assert makes["count"] == 1 and [e["doc_id"] for e in makes["evidence"]] == [B_ID]
        assert makes["confidence"] == pytest.approx(0.75)
        assert _relation(data, "COMPETES_WITH", eid("COMPANY", "Apple"), eid("COMPANY", "Samsung")) is None
        assert _relation(data, "CEO_OF", eid("PERSON", "Tim Cook"), eid("COMPANY", "Apple")) is None
        assert _relation(data, "CEO_OF", eid("PERSON", "Jeff Williams"), eid("COMPANY", "Apple"))["count"] == 1
        assert _relation(data, "COMPETES_WITH", eid("COMPANY", "Samsung"), eid("COMPANY", "Apple"))["count"] == 1
        assert all(e["doc_id"] != A_ID or e["chunk_id"] in a_chunks for r in data["relations"] for e in r["evidence"])
        assert (stats.documents, stats.chunks) == (2, 3)
        # the same content as a store that only ever saw B and the new A
        assert data == self.fresh_content(open_sink, "fresh", b.corpus_batch(B), b.apple_v2_batch())

    def test_replacing_a_document_inside_a_larger_batch(self, open_sink):
        sink = open_sink()
        sink.write(b.corpus_batch())
        others = [p for p in b.TEXTS if p != A]
        classes = {k: v for k, v in b.CLASSES.items() if (k[0] if isinstance(k, tuple) else k) != A}
        everything_new = b.make_batch(
            {**{p: b.TEXTS[p] for p in others}, A: b.APPLE_V2_TEXT},
            [*[m for m in b.MENTIONS if m[0] != A], *b.APPLE_V2_MENTIONS],
            [*[r for r in b.RELATIONS if r[0] != A], *b.APPLE_V2_RELATIONS],
            {**classes, A: {"document_type": "earnings_report"}},
        )
        sink.write(everything_new)
        assert self.content(sink) == self.fresh_content(open_sink, "fresh", b.corpus_batch(*others), b.apple_v2_batch())

    def test_remove_documents(self, open_sink):
        sink = open_sink()
        sink.write(b.corpus_batch(A, B))
        sink.remove_documents([A_ID])
        data = self.content(sink)
        stats = sink.stats()
        assert set(data["documents"]) == {B_ID}
        assert all(node["doc_id"] == B_ID for node in data["chunks"].values())
        assert all(m["doc_id"] == B_ID for m in data["mentions"])
        assert all(e["doc_id"] == B_ID for r in data["relations"] for e in r["evidence"])
        for gone in ("Tim Cook", "Cupertino", "$3,499"):
            assert not [e for e in data["entities"].values() if e["name"] == gone]
        apple = data["entities"][eid("COMPANY", "Apple")]
        assert (apple["name"], apple["aliases"], apple["mention_count"]) == ("Apple", ["Apple"], 1)
        makes = _relation(data, "MANUFACTURES", eid("COMPANY", "Apple"), eid("PRODUCT", "Vision Pro"))
        assert makes["count"] == 1 and makes["confidence"] == pytest.approx(0.75)
        assert (stats.documents, stats.chunks, stats.mentions, stats.entities, stats.relations) == (1, 2, 8, 7, 4)
        assert data == self.fresh_content(open_sink, "fresh", b.corpus_batch(B))

    def test_remove_unknown_or_no_documents_is_a_noop(self, open_sink):
        sink = open_sink()
        sink.write(b.corpus_batch())
        before, stats = checksum(self.export(sink)), sink.stats()
        sink.remove_documents([])
        sink.remove_documents([document_id("never/ingested.txt")])
        sink.remove_documents(["doc_00000000000000000000", "", "not an id"])
        assert checksum(self.export(sink)) == before
        assert sink.stats() == stats

    def test_remove_documents_ignores_ids_of_other_nodes(self, open_sink):
        """Only Document ids select anything: a chunk or entity id given by mistake removes nothing."""
        sink = open_sink()
        sink.write(b.corpus_batch())
        before = checksum(self.export(sink))
        sink.remove_documents([chunk_id(A_ID, 0), eid("COMPANY", "Apple")])
        assert checksum(self.export(sink)) == before

    def test_remove_then_rewrite_restores_the_content(self, open_sink):
        sink = open_sink()
        sink.write(b.corpus_batch())
        full = self.content(sink)
        sink.remove_documents([A_ID, document_id(b.WIRE_1)])
        sink.write(b.corpus_batch(A, b.WIRE_1))
        assert self.content(sink) == full

    def test_removing_every_document_empties_the_graph(self, open_sink):
        sink = open_sink()
        batch = b.corpus_batch()
        sink.write(batch)
        sink.remove_documents([d.document.id for d in batch.documents])
        data = self.content(sink)
        assert data["documents"] == data["chunks"] == data["entities"] == {}
        assert data["mentions"] == data["relations"] == data["has_chunk"] == data["next_chunk"] == []
        stats = sink.stats()
        assert (stats.documents, stats.chunks, stats.mentions, stats.entities, stats.relations) == (0, 0, 0, 0, 0)

    # -- persistence -------------------------------------------------------------------------------

    def test_close_and_reopen_keeps_everything(self, open_sink):
        sink = open_sink("store")
        sink.write(b.corpus_batch())
        sink.write(b.hostile_batch())
        stats, data = sink.stats(), self.content(sink)
        sink.close()
        again = open_sink("store")
        assert again.stats() == stats
        assert self.content(again) == data

    def test_removal_and_replacement_are_durable(self, open_sink):
        sink = open_sink("store")
        sink.write(b.corpus_batch())
        sink.flush()
        sink.write(b.apple_v2_batch())
        sink.remove_documents([document_id(b.ACME)])
        data = self.content(sink)
        sink.close()
        again = open_sink("store")
        assert self.content(again) == data
        assert document_id(b.ACME) not in data["documents"]

    # -- order independence ------------------------------------------------------------------------

    def test_order_of_documents_does_not_matter(self, open_sink):
        paths = list(b.TEXTS)
        forward = self.fresh_content(open_sink, "forward", *[b.corpus_batch(p) for p in paths])
        backward = self.fresh_content(open_sink, "backward", *[b.corpus_batch(p) for p in reversed(paths)])
        at_once = self.fresh_content(open_sink, "at-once", b.corpus_batch())
        assert forward == backward == at_once
        assert checksum(forward) == checksum(backward)

    def test_a_then_b_equals_b_then_a(self, open_sink):
        ab = self.fresh_content(open_sink, "ab", b.corpus_batch(b.ACME), b.corpus_batch(b.ACME_BIS))
        ba = self.fresh_content(open_sink, "ba", b.corpus_batch(b.ACME_BIS), b.corpus_batch(b.ACME))
        assert ab == ba
        acme = ab["entities"][eid("COMPANY", "ACME Corp")]
        assert (acme["name"], acme["aliases"]) == ("Acme Corp.", ["ACME Corp", "Acme Corp."])

    # -- hostile text ------------------------------------------------------------------------------

    def test_hostile_names_are_stored_verbatim(self, open_sink):
        sink = open_sink("store")
        batch = b.hostile_batch()
        sink.write(batch)
        data = self.content(sink)
        assert sorted(e["name"] for e in data["entities"].values()) == sorted(b.HOSTILE_SURFACES)
        for entity in data["entities"].values():
            assert entity["aliases"] == [entity["name"]]
            assert entity["type"] == "COMPANY"
        assert sorted(m["text"] for m in data["mentions"]) == sorted(b.HOSTILE_SURFACES)
        doc = data["documents"][document_id(b.HOSTILE_PATH)]
        assert (doc["path"], doc["title"]) == (b.HOSTILE_PATH, 'Title with `ticks`, "quotes" and $x')
        assert next(iter(data["chunks"].values()))["text"] == b.HOSTILE_TEXT
        assert len(data["relations"]) == 2
        sink.close()
        again = open_sink("store")
        assert self.content(again) == data
        again.remove_documents([document_id(b.HOSTILE_PATH)])
        assert self.content(again)["entities"] == {}

    def test_lone_surrogate_in_text_survives_persistence(self, open_sink):
        """JSON readers accept ``"\\ud800"`` escapes, so a document's text and title can hold a lone surrogate."""
        batch = b.make_batch({b.ODD_PATH: b.ODD_TEXT}, b.ODD_MENTIONS)
        sink = open_sink("store")
        sink.write(batch)
        data = self.content(sink)
        assert next(iter(data["chunks"].values()))["text"] == b.ODD_TEXT
        sink.close()
        again = open_sink("store")
        assert self.content(again) == data

    # -- the read side: entity_graph() and stats() tell what export() tells ------------------------

    def test_read_side_of_an_empty_sink(self, open_sink):
        sink = open_sink()
        assert self.read_side(sink) == {"entities": {}, "mentions": [], "relations": []}
        export = sink.export()
        assert isinstance(export, GraphExport)
        assert export.to_dict() == GraphExport().to_dict()
        sink.remove_documents([A_ID])
        assert self.read_side(sink) == {"entities": {}, "mentions": [], "relations": []}

    def test_read_side_after_writes_in_several_batches(self, open_sink):
        sink = open_sink()
        batches = [b.corpus_batch(A), b.corpus_batch(B), b.corpus_batch(b.ACME, b.ACME_BIS),
                   b.corpus_batch(b.WIRE_1, b.WIRE_2), b.hostile_batch()]
        for done in range(1, len(batches) + 1):
            sink.write(batches[done - 1])
            graph = self.read_side(sink)  # the same sink object, asked again after every write
            pairs, edges = batch_entity_graph(*batches[:done])
            assert set(graph["mentions"]) == pairs
            assert set(graph["relations"]) == edges
        # names, aliases and counts are those of the whole corpus reconciled at once, not of the last batch
        whole = b.corpus_batch()
        for entity in whole.entities.values():
            assert graph["entities"][entity.id][:5] == (entity.type, entity.key, entity.name, sorted(entity.aliases),
                                                        entity.mention_count), entity.key
        assert graph["entities"][eid("COMPANY", "Apple")][2:5] == ("Apple", ["Apple", "Apple Inc."], 5)
        # the corpus mentions some entities twice in one chunk: still one pair each
        assert len(self.export(sink).mentions) > len(graph["mentions"])
        assert (chunk_id(A_ID, 0), eid("COMPANY", "Apple")) in graph["mentions"]
        assert (eid("PERSON", "Tim Cook"), "CEO_OF", eid("COMPANY", "Apple")) in graph["relations"]
        assert (eid("COMPANY", "Apple"), "MANUFACTURES", eid("PRODUCT", "Vision Pro")) in graph["relations"]

    def test_read_side_with_overlapping_chunks(self, open_sink):
        sink = open_sink()
        batch = b.corpus_batch(A, B, chunk_lines=2, overlap_lines=1)  # line 2 of each doc is in both chunks
        sink.write(batch)
        graph = self.read_side(sink)
        pairs, edges = batch_entity_graph(batch)
        assert set(graph["mentions"]) == pairs and set(graph["relations"]) == edges
        # the span in both chunks gives a pair per chunk, but one mention in the counts
        assert {(chunk_id(A_ID, 0), eid("PRODUCT", "Vision Pro")), (chunk_id(A_ID, 1), eid("PRODUCT", "Vision Pro"))} <= pairs
        assert sink.stats().mentions == 17 < len(self.export(sink).mentions)

    def test_read_side_follows_removals_and_replacements(self, open_sink):
        """Names, aliases, counts, pairs and edges change as documents come and go; asked of one sink object
        after each step, so a sink that keeps an old read (or old names) fails."""
        sink = open_sink()
        acme, globex = eid("COMPANY", "Acme Corp"), eid("COMPANY", "Globex Ltd.")

        def acme_now() -> tuple:
            graph = self.read_side(sink)
            return graph["entities"][acme][2:5]

        sink.write(b.corpus_batch(b.ACME))
        assert acme_now() == ("ACME Corp", ["ACME Corp"], 1)
        sink.write(b.corpus_batch(b.ACME_BIS))
        assert acme_now() == ("Acme Corp.", ["ACME Corp", "Acme Corp."], 2)
        sink.write(b.corpus_batch(b.WIRE_2))
        assert acme_now() == ("Acme Corp.", ["ACME Corp", "Acme Corp", "Acme Corp."], 3)
        assert (globex, "COMPETES_WITH", acme) in self.read_side(sink)["relations"]
        sink.remove_documents([document_id(b.ACME_BIS)])
        # a tie between two forms of equal case and length: the alphabetically first
        assert acme_now() == ("ACME Corp", ["ACME Corp", "Acme Corp"], 2)
        sink.remove_documents([document_id(b.WIRE_2)])
        graph = self.read_side(sink)
        assert graph["entities"][acme][2:5] == ("ACME Corp", ["ACME Corp"], 1)
        assert globex not in graph["entities"] and graph["relations"] == []
        assert {c for c, _ in graph["mentions"]} == {chunk_id(document_id(b.ACME), 0)}

        sink.write(b.corpus_batch(A, B))
        before = self.read_side(sink)
        assert before["entities"][eid("COMPANY", "Apple")][2:5] == ("Apple", ["Apple", "Apple Inc."], 4)
        sink.write(b.apple_v2_batch())
        graph = self.read_side(sink)
        assert graph["entities"][eid("COMPANY", "Apple")][2:5] == ("Apple", ["Apple"], 3)
        assert eid("PERSON", "Tim Cook") not in graph["entities"] and eid("MONEY", "$3,499") not in graph["entities"]
        assert graph["entities"][eid("PERSON", "Jeff Williams")][2:5] == ("Jeff Williams", ["Jeff Williams"], 1)
        assert (eid("PERSON", "Tim Cook"), "CEO_OF", eid("COMPANY", "Apple")) not in graph["relations"]
        assert (eid("PERSON", "Jeff Williams"), "CEO_OF", eid("COMPANY", "Apple")) in graph["relations"]
        assert (eid("COMPANY", "Apple"), "COMPETES_WITH", eid("COMPANY", "Samsung")) not in graph["relations"]
        assert (chunk_id(A_ID, 1), eid("COMPANY", "Apple")) in before["mentions"]
        assert not [pair for pair in graph["mentions"] if pair[0] == chunk_id(A_ID, 1)]  # the old second chunk is gone
        sink.remove_documents([A_ID, B_ID, document_id(b.ACME)])
        assert self.read_side(sink) == {"entities": {}, "mentions": [], "relations": []}

    def test_read_side_after_reopening(self, open_sink):
        sink = open_sink("store")
        sink.write(b.corpus_batch())
        sink.write(b.hostile_batch())
        written = self.read_side(sink)
        sink.close()
        again = open_sink("store")
        assert self.read_side(again) == written  # entity_graph() first, on a sink that has loaded nothing
        again.remove_documents([A_ID, document_id(b.HOSTILE_PATH)])
        again.write(b.apple_v2_batch())
        changed = self.read_side(again)
        assert changed != written
        again.close()
        third = open_sink("store")
        assert self.read_side(third) == changed
        assert third.stats() == again.stats()
        others = [p for p in b.TEXTS if p != A]
        fresh = open_sink("fresh")  # last: for a server-backed suite this clears the shared database
        fresh.write(b.corpus_batch(*others))
        fresh.write(b.apple_v2_batch())
        assert self.read_side(fresh) == changed

    # -- communities (kgbuild.communities) -----------------------------------------------------------------

    def communities_of(self, entities: list[str]) -> list[Any]:
        from kgbuild.types import CommunityRecord

        top = CommunityRecord("c0-aaaa0001", 0, "Apple, Tim Cook", "", tuple(sorted(entities[:3])), ("COMPANY:Apple",),
                              ("headset",), "Apple, Tim Cook\nheadset")
        child = CommunityRecord("c1-bbbb0002", 1, "Apple", "c0-aaaa0001", tuple(sorted(entities[:2])), ("COMPANY:Apple",),
                                (), "Apple")
        other = CommunityRecord("c0-cccc0003", 0, "Samsung", "", tuple(sorted(entities[3:5])), (), ("phone", "fold"), "")
        return [top, child, other]

    def test_communities_round_trip_and_replace(self, open_sink):
        sink = open_sink()
        assert sink.communities() == []
        sink.write(b.corpus_batch())
        before = self.content(sink)
        entities = sorted(before["entities"])
        wanted = self.communities_of(entities)
        sink.replace_communities(wanted)
        assert sink.communities() == sorted(wanted, key=lambda c: (c.level, c.id))
        # communities are no part of the graph's export, its stats or its entity graph
        assert self.content(sink) == before
        assert sink.stats().relations == len(before["relations"])
        assert not [r for r in sink.entity_graph().relations if r[1] in ("IN_COMMUNITY", "SUBCOMMUNITY_OF")]
        # replacing: one changed, one gone, one unchanged
        changed = replace(wanted[0], title="Apple", members=tuple(sorted(entities[:4])))
        sink.replace_communities([changed, wanted[1]])
        assert sink.communities() == [changed, wanted[1]]
        sink.flush()
        sink.close()
        again = open_sink()
        assert again.communities() == [changed, wanted[1]]
        again.replace_communities([])
        assert again.communities() == [] and self.content(again) == before

    def test_removed_entities_leave_their_communities(self, open_sink):
        sink = open_sink()
        sink.write(b.corpus_batch())
        entities = sorted(self.content(sink)["entities"])
        sink.replace_communities(self.communities_of(entities))
        sink.remove_documents([A_ID, B_ID])
        held = set(self.content(sink)["entities"])
        for community in sink.communities():
            assert set(community.members) <= held
        assert self.export(sink).problems == []
        sink.write(b.corpus_batch())  # and the graph takes documents again as before
        assert set(self.content(sink)["entities"]) == set(entities)
