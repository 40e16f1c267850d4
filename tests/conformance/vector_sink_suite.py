"""Conformance tests every ``VectorSink`` must pass (Qdrant Edge, Qdrant server/local, ...).

A concrete test class mixes ``VectorSinkConformance`` in and implements one hook:

``make_sink(self, folder)``
    An *unopened* sink whose storage lives in (or is named after) ``folder``. Two calls
    with the same folder must reach the same store; different folders are independent.
    The sink must index the ``document_type`` classification task of the business-news
    schema (``classification_tasks=["document_type"]``).

Points come from ``builders.corpus_batch()`` through ``build_chunk_points``, so their
payloads are exactly what the pipeline writes. Tests that take the class-scoped ``shared``
sink must leave its content as they found it; tests that change content use ``loaded``
(a sink of their own) or ``open_sink``.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import builders as b  # noqa: E402

from kgbuild.errors import SinkError  # noqa: E402
from kgbuild.ids import chunk_id, document_id, point_id  # noqa: E402
from kgbuild.types import ChunkPoint  # noqa: E402
from kgbuild.types import VectorExport, VectorFilter, VectorHit  # noqa: E402

DIM = 16
ALL = 10_000  # a limit larger than any test corpus

# short names of the corpus chunks
_A, _B = document_id(b.APPLE), document_id(b.SAMSUNG)
_W1, _W2 = document_id(b.WIRE_1), document_id(b.WIRE_2)
C = {
    "A0": chunk_id(_A, 0),
    "A1": chunk_id(_A, 1),
    "B0": chunk_id(_B, 0),
    "B1": chunk_id(_B, 1),
    "ACME": chunk_id(document_id(b.ACME), 0),
    "ACME2": chunk_id(document_id(b.ACME_BIS), 0),
    "W1_0": chunk_id(_W1, 0),
    "W1_1": chunk_id(_W1, 1),
    "W2": chunk_id(_W2, 0),
}
DOC_CLASS = "document_type"

# (filter, the chunks it must select) -- worked out by hand from builders.TEXTS/MENTIONS/CLASSES
FILTER_CASES: dict[str, tuple[VectorFilter, set[str]]] = {
    "one entity": (VectorFilter(entity_keys=("COMPANY:apple",)), {"A0", "A1", "B0", "W1_0"}),
    "two entities, both required": (VectorFilter(entity_keys=("COMPANY:apple", "PERSON:tim cook")), {"A0"}),
    "one unknown entity": (VectorFilter(entity_keys=("COMPANY:apple", "COMPANY:nobody")), set()),
    "entity across spellings": (VectorFilter(entity_keys=("COMPANY:acme",)), {"ACME", "ACME2", "W2"}),
    "any of an entity's keys": (VectorFilter(entity_any=(("COMPANY:nobody", "PERSON:tim cook"),)), {"A0", "W1_1"}),
    "any of two entities": (
        VectorFilter(entity_any=(("COMPANY:apple", "COMPANY:acme"),)),
        {"A0", "A1", "B0", "W1_0", "ACME", "ACME2", "W2"},
    ),
    "an entity and any of two": (
        VectorFilter(entity_keys=("PERSON:tim cook",), entity_any=(("COMPANY:apple", "COMPANY:acme"),)),
        {"A0"},
    ),
    "one type": (VectorFilter(entity_types=("MONEY",)), {"A0", "B1", "W1_0"}),
    "two types, both required": (VectorFilter(entity_types=("PERSON", "LOCATION")), {"A0"}),
    "chunk or document class": (VectorFilter(classes=((DOC_CLASS, "product_announcement"),)), {"A0", "A1", "B0", "B1"}),
    "chunk class, any of its labels": (
        VectorFilter(classes=((DOC_CLASS, "earnings_report"),)),
        {"B1", "W1_0", "W1_1", "W2"},
    ),
    "two classes, both required": (
        VectorFilter(classes=((DOC_CLASS, "earnings_report"), (DOC_CLASS, "legal_filing"))),
        {"W2"},
    ),
    "unknown class": (VectorFilter(classes=((DOC_CLASS, "no_such_label"),)), set()),
    "source path": (VectorFilter(paths=("feeds/wire.jsonl",)), {"W1_0", "W1_1", "W2"}),
    "record path": (VectorFilter(paths=(b.WIRE_2,)), {"W2"}),
    "any of several paths": (VectorFilter(paths=(b.APPLE, b.WIRE_1)), {"A0", "A1", "W1_0", "W1_1"}),
    "a folder is not a path": (VectorFilter(paths=("feeds", "news/")), set()),
    "entity and class": (
        VectorFilter(entity_keys=("COMPANY:apple",), classes=((DOC_CLASS, "earnings_report"),)),
        {"W1_0"},
    ),
    "entity and path": (VectorFilter(entity_keys=("COMPANY:apple",), paths=("feeds/wire.jsonl", b.SAMSUNG)), {"B0", "W1_0"}),
    "type, class and path": (
        VectorFilter(entity_types=("COMPANY",), classes=((DOC_CLASS, "legal_filing"),), paths=("feeds/wire.jsonl",)),
        {"W2"},
    ),
    "everything, nothing matches": (
        VectorFilter(
            entity_keys=("PERSON:tim cook",), entity_types=("MONEY",), classes=((DOC_CLASS, "legal_filing"),), paths=(b.WIRE_1,)
        ),
        set(),
    ),
}


def reference_match(payload: dict[str, Any], query_filter: VectorFilter | None) -> bool:
    """What a filter means, in plain Python (the documented semantics of ``VectorFilter``)."""
    if query_filter is None:
        return True
    if any(k not in payload["entity_keys"] for k in query_filter.entity_keys):
        return False
    if any(not set(group) & set(payload["entity_keys"]) for group in query_filter.entity_any):
        return False
    if any(t not in payload["entity_types"] for t in query_filter.entity_types):
        return False
    for task, label in query_filter.classes:
        if label not in payload["class"].get(task, []) and label not in payload["doc_class"].get(task, []):
            return False
    if query_filter.paths and payload["path"] not in query_filter.paths and payload["source_path"] not in query_filter.paths:
        return False
    return True


def _names(hits: list[VectorHit]) -> set[str]:
    by_chunk = {v: k for k, v in C.items()}
    return {by_chunk.get(h.payload["chunk_id"], h.payload["chunk_id"]) for h in hits}


def _assert_sorted(hits: list[VectorHit]) -> None:
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True), scores


def _synthetic_points(vectors: np.ndarray, n_paths: int = 3) -> list[ChunkPoint]:
    points = []
    for i, v in enumerate(vectors):
        doc = f"recall/{i % n_paths}.txt"
        cid = chunk_id(document_id(doc), i)
        payload = {
            "doc_id": document_id(doc),
            "path": doc,
            "source_path": doc,
            "chunk_id": cid,
            "text": f"chunk {i}",
            "entity_keys": [],
            "entity_types": [],
            "class": {},
            "doc_class": {},
        }
        points.append(ChunkPoint(id=point_id(cid), chunk_id=cid, vector=[float(x) for x in v], payload=payload))
    return points


class VectorSinkConformance:
    # -- hooks -------------------------------------------------------------------------------

    def make_sink(self, folder: Path) -> Any:
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------------------------

    @pytest.fixture
    def open_sink(self, tmp_path: Path):
        """``open_sink(name="main", dim=DIM)``: an opened sink in ``tmp_path/name``; closed at teardown."""
        opened: list[Any] = []

        def factory(name: str = "main", dim: int | None = DIM) -> Any:
            folder = tmp_path / name
            folder.parent.mkdir(parents=True, exist_ok=True)
            sink = self.make_sink(folder)
            opened.append(sink)
            sink.open(dim)
            return sink

        yield factory
        for sink in reversed(opened):
            with contextlib.suppress(Exception):
                sink.close()

    @pytest.fixture
    def loaded(self, open_sink):
        """A sink of this test's own holding the whole corpus, and its points (tests may change it)."""
        sink = open_sink()
        points = b.points_for(b.corpus_batch(), DIM)
        sink.upsert(points)
        return sink, points

    @pytest.fixture(scope="class")
    @classmethod
    def shared(cls, tmp_path_factory):
        """One sink per test class holding the whole corpus, for tests that only read."""
        sink = cls().make_sink(tmp_path_factory.mktemp("shared") / "store")
        sink.open(DIM)
        points = b.points_for(b.corpus_batch(), DIM)
        sink.upsert(points)
        yield sink, points
        sink.close()

    # -- lifecycle -----------------------------------------------------------------------------

    def test_implements_the_protocol(self, shared):
        sink, _ = shared
        for method in ("open", "upsert", "delete_documents", "search", "count", "export", "payload_pages", "flush", "close"):
            assert callable(getattr(sink, method, None)), method

    def test_export_returns_every_point_by_id(self, shared):
        sink, points = shared
        exported = sink.export()
        assert isinstance(exported, VectorExport), type(exported)
        assert exported.points == {p.id: p.payload for p in points}
        assert len(exported) == sink.count() == len(points)
        assert sink.export(batch_size=4).points == exported.points

    def test_payload_pages_give_every_payload_once_a_page_at_a_time(self, shared):
        sink, points = shared
        pages = list(sink.payload_pages(batch_size=3))
        assert all(0 < len(page) <= 3 for page in pages), [len(page) for page in pages]
        read = sorted((p["chunk_id"] for page in pages for p in page))
        assert read == sorted(p.payload["chunk_id"] for p in points)
        assert {p["chunk_id"]: p for page in pages for p in page} == {p.payload["chunk_id"]: p.payload for p in points}

    def test_payload_pages_of_an_empty_index(self, open_sink):
        assert [p for page in open_sink().payload_pages() for p in page] == []

    def test_export_after_deleting_a_document(self, loaded):
        sink, points = loaded
        gone = points[0].payload["doc_id"]
        sink.delete_documents([gone])
        exported = sink.export()
        assert isinstance(exported, VectorExport), type(exported)
        assert exported.points == {p.id: p.payload for p in points if p.payload["doc_id"] != gone}

    def test_export_of_an_empty_index(self, open_sink):
        exported = open_sink().export()
        assert isinstance(exported, VectorExport), type(exported)
        assert exported.points == {}

    def test_open_creates_an_empty_index_and_a_second_open_is_harmless(self, open_sink):
        sink = open_sink()
        assert sink.count() == 0
        assert sink.search(b.fake_vector("anything", DIM), None, 5) == []
        sink.upsert(b.points_for(b.corpus_batch(b.ACME), DIM))
        sink.open(DIM)
        assert sink.count() == 1

    def test_open_without_dimension_needs_an_existing_index(self, tmp_path):
        sink = self.make_sink(tmp_path / "missing")
        try:
            with pytest.raises(SinkError):
                sink.open(None)
        finally:
            sink.close()

    def test_reopen_after_close_keeps_the_points(self, open_sink):
        sink = open_sink("store")
        points = b.points_for(b.corpus_batch(), DIM)
        sink.upsert(points)
        query = b.fake_vector("query", DIM)
        before = sink.search(query, None, 5)
        sink.flush()
        sink.close()
        for dim in (DIM, None):  # the pipeline reopens with its dimension, queries with None
            again = open_sink("store", dim)
            assert again.count() == len(points)
            after = again.search(query, None, 5)
            assert [h.point_id for h in after] == [h.point_id for h in before]
            assert [h.payload for h in after] == [h.payload for h in before]
            again.close()

    # -- writing -------------------------------------------------------------------------------

    def test_upsert_and_count(self, shared):
        sink, points = shared
        assert len(points) == 9
        assert sink.count() == len(points)

    def test_upsert_twice_keeps_the_count(self, shared):
        sink, points = shared
        sink.upsert(points)  # the same content again: the shared sink is unchanged
        sink.upsert(b.points_for(b.corpus_batch(), DIM))  # rebuilt from scratch: the same ids
        assert sink.count() == len(points)
        assert [p.id for p in points] == [point_id(p.chunk_id) for p in points]

    def test_upsert_replaces_vector_and_payload(self, loaded):
        sink, points = loaded
        target = points[0]
        new_vector = b.fake_vector("moved", DIM)
        changed = ChunkPoint(target.id, target.chunk_id, new_vector, {**target.payload, "text": "changed"})
        sink.upsert([changed])
        assert sink.count() == len(points)
        top = sink.search(new_vector, None, 1)[0]
        assert top.point_id == target.id and top.payload["text"] == "changed"
        assert top.score == pytest.approx(1.0, abs=1e-3)

    def test_delete_documents(self, loaded):
        sink, points = loaded
        # nothing, or documents it never held: a no-op
        sink.delete_documents([])
        sink.delete_documents([document_id("never/seen.txt")])
        assert sink.count() == len(points)
        # one document: only its points go
        sink.delete_documents([_A])
        assert sink.count() == len(points) - 2
        hits = sink.search(b.fake_vector("query", DIM), None, ALL)
        assert {h.payload["doc_id"] for h in hits} == {d for d in (p.payload["doc_id"] for p in points) if d != _A}
        assert sink.search(points[0].vector, VectorFilter(paths=(b.APPLE,)), ALL) == []
        # several at once (two records of one source file)
        sink.delete_documents([_W1, _W2])
        assert sink.count() == len(points) - 5
        assert _names(sink.search(b.fake_vector("query", DIM), None, ALL)) == {"B0", "B1", "ACME", "ACME2"}
        # writing them again restores them
        sink.upsert(b.points_for(b.corpus_batch(b.APPLE, b.WIRE_1, b.WIRE_2), DIM))
        assert sink.count() == len(points)
        assert _names(sink.search(b.fake_vector("query", DIM), None, ALL)) == set(C)

    # -- searching -----------------------------------------------------------------------------

    def test_search_returns_the_nearest_first_with_payload(self, shared):
        sink, points = shared
        vectors = np.array([p.vector for p in points])
        for target in points:
            hits = sink.search(target.vector, None, 3)
            assert len(hits) == 3
            _assert_sorted(hits)
            assert hits[0].point_id == target.id
            assert hits[0].score == pytest.approx(1.0, abs=1e-3)
            assert hits[0].payload == target.payload
            exact = vectors @ np.array(target.vector)
            for hit in hits:
                index = next(i for i, p in enumerate(points) if p.id == hit.point_id)
                assert hit.score == pytest.approx(float(exact[index]), abs=1e-3)

    def test_search_limit_is_respected(self, shared):
        sink, points = shared
        query = b.fake_vector("query", DIM)
        for limit in (1, 2, 5):
            assert len(sink.search(query, None, limit)) == limit
        assert len(sink.search(query, None, ALL)) == len(points)
        assert len(sink.search(query, VectorFilter(entity_keys=("COMPANY:apple",)), 2)) == 2

    def test_empty_filter_is_no_filter(self, shared):
        sink, points = shared
        query = b.fake_vector("query", DIM)
        unfiltered = [h.point_id for h in sink.search(query, None, ALL)]
        assert [h.point_id for h in sink.search(query, VectorFilter(), ALL)] == unfiltered
        assert len(unfiltered) == len(points)

    @pytest.mark.parametrize("case", list(FILTER_CASES))
    def test_filters(self, shared, case):
        sink, points = shared
        query_filter, expected = FILTER_CASES[case]
        # the hand-worked expectation agrees with the documented semantics
        assert {n for n, cid in C.items() if reference_match(next(p.payload for p in points if p.chunk_id == cid), query_filter)} == expected
        hits = sink.search(b.fake_vector("query", DIM), query_filter, ALL)
        _assert_sorted(hits)
        assert _names(hits) == expected
        assert len(hits) == len(expected)
        for hit in hits:
            assert reference_match(hit.payload, query_filter)

    def test_class_filter_matches_the_document_label_when_the_chunk_has_another(self, shared):
        sink, points = shared
        b1 = next(p for p in points if p.chunk_id == C["B1"])
        assert b1.payload["class"] == {DOC_CLASS: ["earnings_report"]}
        assert b1.payload["doc_class"] == {DOC_CLASS: ["product_announcement"]}
        for label in ("earnings_report", "product_announcement"):
            hits = sink.search(b1.vector, VectorFilter(classes=((DOC_CLASS, label),)), 1)
            assert hits[0].point_id == b1.id

    def test_filtered_search_ranks_within_the_matches(self, shared):
        sink, points = shared
        query_filter = VectorFilter(entity_types=("COMPANY",))
        query = b.fake_vector("another query", DIM)
        matching = [p for p in points if reference_match(p.payload, query_filter)]
        exact = sorted(matching, key=lambda p: -float(np.dot(p.vector, query)))
        hits = sink.search(query, query_filter, 3)
        assert [h.point_id for h in hits] == [p.id for p in exact[:3]]

    # -- recall --------------------------------------------------------------------------------

    def test_recall_against_exact_cosine(self, open_sink):
        dim = 32
        vectors = b.random_unit_vectors(300, dim, seed=7)
        points = _synthetic_points(vectors)
        sink = open_sink("recall", dim)
        sink.upsert(points)
        assert sink.count() == 300
        queries = b.random_unit_vectors(8, dim, seed=99)
        ids = [p.id for p in points]
        for query in queries:
            exact = np.argsort(-(vectors @ query), kind="stable")[:10]
            hits = sink.search([float(x) for x in query], None, 10)
            assert [h.point_id for h in hits] == [ids[i] for i in exact]
            for hit, i in zip(hits, exact):
                assert hit.score == pytest.approx(float(vectors[i] @ query), abs=2e-3)
            # and inside a filter: one path in three
            mask = np.array([i % 3 == 0 for i in range(len(points))])
            scores = np.where(mask, vectors @ query, -np.inf)
            exact = np.argsort(-scores, kind="stable")[:10]
            hits = sink.search([float(x) for x in query], VectorFilter(paths=("recall/0.txt",)), 10)
            assert [h.point_id for h in hits] == [ids[i] for i in exact]

    # -- refusals --------------------------------------------------------------------------------

    def test_open_with_another_dimension_is_refused(self, open_sink):
        """An index built for one embedding size, reopened for another, must say so at open()."""
        sink = open_sink("store")
        sink.upsert(b.points_for(b.corpus_batch(b.ACME), DIM))
        sink.close()
        with pytest.raises(SinkError, match=str(DIM)):
            open_sink("store", DIM * 2)

    def test_payload_text_with_a_lone_surrogate(self, open_sink):
        """JSON readers pass ``"\\ud800"`` escapes through, so chunk text can hold a lone surrogate.

        The sink stores it verbatim, or refuses the write with a SinkError; never a raw exception.
        """
        batch = b.make_batch({b.ODD_PATH: b.ODD_TEXT}, b.ODD_MENTIONS)
        points = b.points_for(batch, DIM)
        sink = open_sink()
        try:
            sink.upsert(points)
        except SinkError:
            return
        hit = sink.search(points[0].vector, None, 1)[0]
        assert hit.payload == points[0].payload

    # -- communities (kgbuild.communities) ---------------------------------------------------------------

    def test_set_chunk_communities_and_filter(self, loaded):
        sink, points = loaded
        before = sink.export().points
        sink.set_chunk_communities({C["A0"]: ["c0-aaaa0001", "c1-bbbb0002"], C["B0"]: ["c0-cccc0003"], C["W2"]: ["c0-aaaa0001"],
                                    "doc_nowhere:00000": ["c0-aaaa0001"]})  # a chunk the store does not hold: skipped
        after = sink.export().points
        assert after.keys() == before.keys() and sink.count() == len(points)
        assert after[point_id(C["A0"])] == {**before[point_id(C["A0"])], "communities": ["c0-aaaa0001", "c1-bbbb0002"]}
        assert "communities" not in after[point_id(C["A1"])]
        probe = np.asarray(points[0].vector)
        found = sink.search(probe, VectorFilter(communities=("c0-aaaa0001",)), ALL)
        assert {h.payload["chunk_id"] for h in found} == {C["A0"], C["W2"]}
        found = sink.search(probe, VectorFilter(communities=("c1-bbbb0002", "c0-cccc0003")), ALL)
        assert {h.payload["chunk_id"] for h in found} == {C["A0"], C["B0"]}
        both = VectorFilter(entity_keys=("COMPANY:apple",), communities=("c0-aaaa0001", "c0-cccc0003"))
        assert {h.payload["chunk_id"] for h in sink.search(probe, both, ALL)} == {C["A0"], C["B0"]}
        assert all(both.matches(h.payload) for h in sink.search(probe, both, ALL))
        # changed and cleared: other fields and vectors untouched
        sink.set_chunk_communities({C["A0"]: [], C["W2"]: ["c0-dddd0004"]})
        again = sink.export().points
        assert again[point_id(C["A0"])]["communities"] == [] and again[point_id(C["W2"])]["communities"] == ["c0-dddd0004"]
        assert sink.search(probe, VectorFilter(communities=("c0-aaaa0001",)), ALL) == []
        top = sink.search(np.asarray(points[3].vector), None, 1)[0]
        assert top.point_id == points[3].id and top.score == pytest.approx(1.0, abs=2e-2)

    def test_communities_payload_index(self, open_sink):
        sink = open_sink()
        sink.set_chunk_communities({})  # nothing to do
        assert sink.search([1.0] + [0.0] * (DIM - 1), VectorFilter(communities=("c0-x",)), 5) == []

    def test_chunk_communities_reads_the_field_of_every_point(self, loaded):
        sink, points = loaded
        assert sink.chunk_communities() == {p.chunk_id: [] for p in points}
        sink.set_chunk_communities({C["A0"]: ["c0-aaaa0001"], C["W2"]: ["c0-aaaa0001", "c1-bbbb0002"]})
        assert sink.chunk_communities() == {p.chunk_id: [] for p in points} | {C["A0"]: ["c0-aaaa0001"],
                                                                               C["W2"]: ["c0-aaaa0001", "c1-bbbb0002"]}
