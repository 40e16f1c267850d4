"""The whole pipeline on a small folder, with the deterministic gazetteer extractor and the real embedder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kgbuild.connectors.networkx_graph import load_graph
from kgbuild.errors import ConfigError, IndexNotFoundError
from kgbuild.extract.base import DROP_SOURCE_TYPE
from kgbuild.pipeline import ingest
from kgbuild.retrieve.vector import query
from kgbuild.types import STRUCTURAL_EDGES
from kgbuild.settings import Settings
from kgbuild.index import stats

DOCS = {
    "news/apple.txt": (
        "Apple Inc. CEO Tim Cook will unveil the Vision Pro in Cupertino. The Vision Pro costs $2,499. "
        "Tim Cook thanked the team."
    ),
    "news/acme.md": "# Acme\nAcme Corp, led by CEO Jane Park, will launch Rocket Skates. Acme Corp competes with Globex Ltd.",
    "news/results.txt": "APPLE INC. reported revenue for the quarter. Globex said profit fell in Europe.",
    "legal/suit.txt": "In a lawsuit filed in Seoul, Globex accused Acme Corp before the court.",
}


def write_corpus(root: Path, docs: dict[str, str] = DOCS) -> Path:
    for rel, text in docs.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "corpus")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(out_dir=tmp_path / "out", chunk_size=16, chunk_overlap=4)


def indexed_text(corpus: Path, rel: str) -> str:
    """The text kgbuild indexes for a file (offsets point into it): Markdown rendered, HTML main content."""
    from kgbuild.read import read_file
    from kgbuild.types import Document, SourceFile

    path = corpus / rel
    st = path.stat()
    documents = [d for d in read_file(SourceFile(str(path), rel, st.st_size, st.st_mtime)) if isinstance(d, Document)]
    assert len(documents) == 1
    return documents[0].text


def run(corpus: Path, settings: Settings, gazetteer, embedder):
    return ingest(corpus, settings, extractor=gazetteer, embedder=embedder)


def graph_of(settings: Settings):
    return load_graph(Path(settings.out_dir) / "graph.json")


def test_ingest_builds_graph_and_vectors(corpus, settings, gazetteer, embedder):
    report = run(corpus, settings, gazetteer, embedder)
    assert report.documents_read == 4 and report.skipped == []
    assert report.chunks >= 5  # chunk_size 16 splits the longer documents
    g = graph_of(settings)
    entities = {d["key"]: d for _, d in g.nodes(data=True) if d["kind"] == "Entity"}
    # "Apple Inc." and "APPLE INC." are one company; canonical name is the most frequent form
    assert entities["COMPANY:apple"]["name"] == "Apple Inc."
    assert set(entities["COMPANY:apple"]["aliases"]) == {"APPLE INC.", "Apple Inc."}
    assert entities["COMPANY:apple"]["mention_count"] == 2
    assert entities["PERSON:tim cook"]["mention_count"] == 2
    # relations, with evidence that points back to real spans
    rel_edges = [(u, v, d) for u, v, d in g.edges(data=True) if d["type"] not in STRUCTURAL_EDGES]
    labels = {(g.nodes[u]["name"], d["type"], g.nodes[v]["name"]) for u, v, d in rel_edges}
    assert ("Tim Cook", "CEO_OF", "Apple Inc.") in labels
    assert ("Acme Corp", "COMPETES_WITH", "Globex") in labels  # the most frequent form names it
    assert ("Vision Pro", "PRICED_AT", "$2,499") in labels
    assert not any(lab[1] == "PRICED_AT" and lab[0] == "Tim Cook" for lab in labels)
    assert report.relations_dropped.get(DROP_SOURCE_TYPE, 0) >= 1
    texts = {d["path"]: indexed_text(corpus, d["path"]) for _, d in g.nodes(data=True) if d["kind"] == "Document"}
    doc_paths = {n: d["path"] for n, d in g.nodes(data=True) if d["kind"] == "Document"}
    for u, v, d in g.edges(data=True):
        if d["type"] == "MENTIONS":
            text = texts[doc_paths[d["doc_id"]]]
            assert text[d["start"] : d["end"]] == d["text"]
            assert 0 < d["confidence"] <= 1
    for u, v, d in rel_edges:
        for ev in d["evidence"]:
            text = texts[doc_paths[ev["doc_id"]]]
            assert g.nodes[u]["name"].casefold() == text[ev["head_start"] : ev["head_end"]].casefold()
        assert d["count"] == len(d["evidence"])
    # classifications on chunks and documents
    docs = {d["path"]: d for _, d in g.nodes(data=True) if d["kind"] == "Document"}
    assert docs["legal/suit.txt"]["classifications"]["document_type"][0]["label"] == "legal_filing"
    assert report.totals.vector_points == report.totals.chunks == report.chunks
    assert report.totals.documents == 4


def test_chunks_keep_offsets_and_order(corpus, settings, gazetteer, embedder):
    run(corpus, settings, gazetteer, embedder)
    g = graph_of(settings)
    for doc_id, d in g.nodes(data=True):
        if d["kind"] != "Document":
            continue
        text = indexed_text(corpus, d["path"])
        chunks = sorted((g.nodes[c] for _, c, k in g.out_edges(doc_id, keys=True) if k == "HAS_CHUNK"), key=lambda c: c["position"])
        for c in chunks:
            assert text[c["start"] : c["end"]] == c["text"]
        for a, b in zip(chunks, chunks[1:]):
            assert g.has_edge(f"{doc_id}:{a['position']:05d}", f"{doc_id}:{b['position']:05d}", key="NEXT_CHUNK")
            assert b["start"] <= a["end"]  # overlap or adjacency, never a gap with words lost
            assert b["start"] > a["start"]


def test_rerun_changes_nothing_and_does_no_model_work(corpus, settings, gazetteer, embedder):
    first = run(corpus, settings, gazetteer, embedder)
    out = Path(settings.out_dir)
    before = {p.name: p.read_bytes() for p in [out / "graph.json", out / "state.json"]}
    calls = gazetteer.calls
    second = run(corpus, settings, gazetteer, embedder)
    assert gazetteer.calls == calls, "no extraction on an unchanged folder"
    assert second.documents_read == 0 and second.documents_unchanged == 4 and second.chunks == 0
    assert second.totals == first.totals
    after = {p.name: p.read_bytes() for p in [out / "graph.json", out / "state.json"]}
    assert after == before


def test_changed_document_replaces_its_facts(corpus, settings, gazetteer, embedder):
    run(corpus, settings, gazetteer, embedder)
    (corpus / "news/acme.md").write_text("Acme Corp will launch Rocket Skates.", encoding="utf-8")
    report = run(corpus, settings, gazetteer, embedder)
    assert report.documents_read == 1 and report.documents_unchanged == 3
    g = graph_of(settings)
    names = {d["name"] for _, d in g.nodes(data=True) if d["kind"] == "Entity"}
    assert "Jane Park" not in names  # only the old version mentioned her
    assert "Globex Ltd." in names or "Globex" in names  # other documents still do
    rel = {(g.nodes[u]["name"], d["type"], g.nodes[v]["name"]) for u, v, d in g.edges(data=True) if d["type"] == "COMPETES_WITH"}
    assert rel == set()
    fresh = Settings(out_dir=Path(settings.out_dir).parent / "fresh", chunk_size=16, chunk_overlap=4)
    fresh_report = run(corpus, fresh, gazetteer, embedder)
    assert report.totals.to_dict() | {"schema_version": ""} == fresh_report.totals.to_dict() | {"schema_version": ""}


def test_deleted_document_is_pruned(corpus, settings, gazetteer, embedder):
    run(corpus, settings, gazetteer, embedder)
    (corpus / "legal/suit.txt").unlink()
    report = run(corpus, settings, gazetteer, embedder)
    assert report.documents_removed == 1
    assert report.totals.documents == 3
    hits = query("lawsuit", settings, embedder=embedder, k=20)
    assert all(h.path != "legal/suit.txt" for h in hits)


def test_broken_file_is_skipped_and_the_rest_ingested(corpus, settings, gazetteer, embedder):
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 garbage that is not a pdf")
    (corpus / "notes.xyz").write_text("unsupported")
    report = run(corpus, settings, gazetteer, embedder)
    skipped = {s.path: s.reason for s in report.skipped}
    assert "PDF" in skipped["broken.pdf"] and "unsupported" in skipped["notes.xyz"]
    assert report.documents_read == 4


def test_query_filters(corpus, settings, gazetteer, embedder):
    run(corpus, settings, gazetteer, embedder)
    hits = query("headset price", settings, entities=["COMPANY:apple inc."], embedder=embedder)
    assert hits and all("COMPANY:apple" in h.entities[0].key for h in hits)
    assert all(h.matched_entities == ["COMPANY:apple"] for h in hits)
    assert {h.path for h in hits} == {"news/apple.txt", "news/results.txt"}
    for h in hits:
        text = indexed_text(Path(settings.out_dir).parent / "corpus", h.path)
        assert text[h.start : h.end] == h.text
    announced = query("new product", settings, entities=["company:APPLE"], classes=["document_type=product_announcement"], embedder=embedder)
    assert {h.path for h in announced} == {"news/apple.txt"}
    legal = query("court", settings, types=["LOCATION"], docs=["legal/suit.txt"], embedder=embedder)
    assert [h.path for h in legal] == ["legal/suit.txt"]
    assert query("anything", settings, entities=["PERSON:nobody at all"], embedder=embedder) == []
    with pytest.raises(ConfigError, match="unknown entity type"):
        query("x", settings, entities=["GALAXY:andromeda"], embedder=embedder)
    with pytest.raises(ConfigError, match="TASK=LABEL"):
        query("x", settings, classes=["document_type"], embedder=embedder)
    with pytest.raises(ConfigError, match="unknown label"):
        query("x", settings, classes=["document_type=poem"], embedder=embedder)


def test_query_ranks_by_meaning(corpus, settings, gazetteer, embedder):
    run(corpus, settings, gazetteer, embedder)
    hits = query("lawsuit in court", settings, embedder=embedder, k=3)
    assert hits[0].path == "legal/suit.txt"
    assert hits == sorted(hits, key=lambda h: -h.score)


def test_stats_counts_the_index(corpus, settings, gazetteer, embedder):
    report = run(corpus, settings, gazetteer, embedder)
    result = stats(settings)
    assert result.documents == 4 and result.vector_points == report.chunks
    assert result.entities_by_type["COMPANY"] >= 3
    assert result.relations_by_type["CEO_OF"] == 2
    assert result.schema_name == "business-news" and result.model == "gazetteer"
    assert result.kgbuild_version


def test_query_without_index_says_so(tmp_path, embedder):
    with pytest.raises(IndexNotFoundError, match="kgbuild ingest"):
        query("x", Settings(out_dir=tmp_path / "none"), embedder=embedder)


def test_jsonl_records_are_documents(tmp_path, settings, gazetteer, embedder):
    root = tmp_path / "records"
    root.mkdir()
    lines = [
        {"id": "r1", "title": "One", "text": "Tim Cook runs Apple Inc."},
        {"id": "r2", "title": "Two", "text": "Jane Park runs Acme Corp."},
    ]
    (root / "feed.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n", encoding="utf-8")
    report = run(root, settings, gazetteer, embedder)
    assert report.documents_read == 2
    assert [s.path for s in report.skipped] == ["feed.jsonl#line 3"]
    # editing one record re-extracts only that record
    lines[1]["text"] = "Jane Park still runs Acme Corp."
    (root / "feed.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    again = run(root, settings, gazetteer, embedder)
    assert again.documents_read == 1 and again.documents_unchanged == 1
    assert query("who runs", settings, docs=["feed.jsonl"], embedder=embedder, k=5)[0].path.startswith("feed.jsonl#")


def test_constructing_the_pipeline_touches_nothing(tmp_path, business_schema):
    from kgbuild.pipeline import IngestPipeline

    out = tmp_path / "never"
    pipeline = IngestPipeline(Settings(out_dir=out, model=str(tmp_path / "no-such-model")))
    assert not out.exists()
    assert pipeline.extractor._model is None and pipeline.embedder._model is None


def test_ingest_missing_folder(tmp_path, gazetteer, embedder):
    with pytest.raises(ConfigError, match="no such file"):
        ingest(tmp_path / "missing", Settings(out_dir=tmp_path / "o"), extractor=gazetteer, embedder=embedder)


class PoisonedExtractor:
    """Wraps an extractor; raises like a model whose window overflowed on texts holding a marker."""

    def __init__(self, inner, marker: str):
        self.inner, self.marker, self.name = inner, marker, inner.name

    def token_counter(self):
        return self.inner.token_counter()

    def max_text_tokens(self):
        return self.inner.max_text_tokens()

    def extract(self, texts):
        if any(self.marker in t for t in texts):
            raise RuntimeError("The expanded size of the tensor (612) must match the existing size (512)")
        return self.inner.extract(texts)


def test_a_document_the_model_fails_on_is_skipped_and_retried(corpus, settings, gazetteer, embedder):
    (corpus / "news/poison.txt").write_text("Tim Cook wrote POISON here.", encoding="utf-8")
    report = ingest(corpus, settings, extractor=PoisonedExtractor(gazetteer, "POISON"), embedder=embedder)
    skipped = {s.path: s.reason for s in report.skipped}
    assert "extraction failed: RuntimeError" in skipped["news/poison.txt"]
    assert report.documents_read == 4 and report.totals.documents == 4  # every other document is in
    again = ingest(corpus, settings, extractor=gazetteer, embedder=embedder)  # the model works now
    assert again.documents_read == 1 and again.documents_unchanged == 4
    assert again.totals.documents == 5


def test_graph_and_vectors_of_one_index_stay_together(corpus, settings, gazetteer, embedder):
    run(corpus, settings, gazetteer, embedder)
    elsewhere = settings.model_copy(update={"qdrant_url": "http://127.0.0.1:9"})
    with pytest.raises(ConfigError, match="keeps its vectors in qdrant-edge"):
        ingest(corpus, elsewhere, extractor=gazetteer, embedder=embedder)


def test_an_index_built_on_a_server_is_read_from_that_server(settings):
    from kgbuild.index import Index
    from kgbuild.state import IngestState, Manifest

    # a manifest written before the backend registry named the server by its URL alone
    manifest = Manifest.from_dict({"vector_store": "qdrant server ...", "qdrant_url": "http://qdrant.internal:6333",
                                   "collection": "news", "schema_definition": {"name": "x"}})
    IngestState(Path(settings.out_dir) / "state.json", manifest=manifest).save()
    resolved = Index.open_existing(settings).settings
    assert (resolved.vector_backend, resolved.qdrant_url, resolved.collection) == ("qdrant-server", "http://qdrant.internal:6333", "news")
    told = settings.model_copy(update={"vector": "qdrant-edge"})
    assert Index.open_existing(told).settings is told  # the settings name another store: theirs
    IngestState(Path(settings.out_dir) / "state.json", manifest=Manifest(schema_definition={"name": "x"})).save()
    assert Index.open_existing(settings).settings is settings


class _CountingSink:
    """Wraps a vector sink and counts how often it is opened."""

    def __init__(self, inner):
        self.inner, self.opens = inner, 0

    def open(self, dimension=None):
        self.opens += 1
        self.inner.open(dimension)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_vector_searcher_opens_the_store_once_for_many_queries(corpus, settings, gazetteer, embedder):
    from kgbuild.retrieve.vector import VectorSearcher
    from kgbuild.registry import make_vector_sink

    run(corpus, settings, gazetteer, embedder)
    sink = _CountingSink(make_vector_sink(settings, ["document_type"]))
    with VectorSearcher(settings, embedder=embedder, vector_sink=sink) as searcher:
        first = searcher.query("headset price", entities=["COMPANY:apple inc."])
        again = searcher.query("headset price", entities=["COMPANY:apple inc."])
        other = searcher.query("court", types=["LOCATION"], docs=["legal/suit.txt"])
    assert sink.opens == 1
    assert [h.chunk_id for h in first] == [h.chunk_id for h in again]
    assert first == query("headset price", settings, entities=["COMPANY:apple inc."], embedder=embedder)
    assert [h.path for h in other] == ["legal/suit.txt"]
    # closed: the next ingest into the same index may open the store again
    run(corpus, settings, gazetteer, embedder)


def test_files_past_the_read_ahead_budget_are_read_again_and_none_is_held_past_its_turn(
        corpus, settings, gazetteer, embedder, tmp_path, monkeypatch):
    """What a run keeps between counting and extracting is bounded, not the corpus: files past the budget are read
    a second time at their turn, each read-ahead file is let go once it has been handed on, and the index is the
    same as with everything kept."""
    import gc
    from collections import deque

    import kgbuild.pipeline as pipeline
    from kgbuild.plan import plan_ingest
    from index_snapshot import assert_same_index, snapshot

    run(corpus, settings, gazetteer, embedder)
    everything_kept = snapshot(settings)

    reads: list[str] = []
    read_and_chunk = pipeline.read_and_chunk

    def counted(changed, *args, **kwargs):
        reads.append(changed.file.rel_path)
        return read_and_chunk(changed, *args, **kwargs)

    monkeypatch.setattr(pipeline, "read_and_chunk", counted)
    monkeypatch.setattr(pipeline, "PREPARED_TEXT_BUDGET", len(DOCS["legal/suit.txt"]) + 10)
    small = settings.model_copy(update={"out_dir": tmp_path / "small-budget"})
    run(corpus, small, gazetteer, embedder)
    assert sorted(reads[:4]) == sorted(DOCS), "every file is read once ahead, to count its chunks"
    again = reads[4:]
    assert again and len(again) < 4, "the files past the budget are read again, the ones kept are not"
    assert_same_index(snapshot(small), everything_kept)

    pipe = pipeline.IngestPipeline(settings.model_copy(update={"out_dir": tmp_path / "held"}), extractor=gazetteer,
                                   embedder=embedder)
    items = pipe._read_files(plan_ingest(corpus, {}, "fingerprint", exclude=[], on_file=lambda rel: None).changed, set())
    first = next(items)
    next(items)
    gc.collect()
    held = [r for r in gc.get_referrers(first) if isinstance(r, (list, deque))]
    assert held == [], "a read-ahead file is not held once the next one is handed on"


def test_nothing_of_the_write_batches_is_held_through_the_end_of_run_builds(corpus, settings, gazetteer, embedder,
                                                                            monkeypatch):
    """The links pass and the corpus-wide builds start with no batch still alive: the last batch's documents,
    chunks and extractions were once held through them by the write loop's variables."""
    import kgbuild.pipeline as pipeline
    from alive import alive as alive_now
    from kgbuild.inflight import DocumentInFlight
    from kgbuild.types import Chunk

    alive: list[tuple[int, ...]] = []
    link_across_documents = pipeline.IngestPipeline._link_across_documents

    def counted(self):
        alive.append(alive_now(DocumentInFlight, Chunk))
        return link_across_documents(self)

    monkeypatch.setattr(pipeline.IngestPipeline, "_link_across_documents", counted)
    report = run(corpus, settings, gazetteer, embedder)
    assert report.documents_read == 4 and report.totals.mentions > 0
    assert alive == [(0, 0)], f"documents in flight and chunks still alive after the write loop: {alive}"
