"""The real gliner2 runtime, on checkpoints built or shipped locally (never the Hub)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from kgbuild.connectors.networkx_graph import load_graph
from kgbuild.connectors.qdrant_server import QdrantServerVectorSink
from kgbuild.errors import ModelLoadError
from kgbuild.extract.gliner import GLiNER2Extractor, load_gliner2
from kgbuild.pipeline import ingest
from kgbuild.retrieve.vector import query
from kgbuild.settings import Settings

pytestmark = pytest.mark.gliner2

SHORT = "Apple Inc. CEO Tim Cook unveiled the Vision Pro for $2,499 in Cupertino."
LONG = " ".join(
    f"In {1990 + i}, Globex Ltd. opened an office in Seoul and Jane Park signed a deal worth ${i},000 with Acme Corp."
    for i in range(40)
)


@pytest.fixture(scope="module")
def extractor(untrained_checkpoint, business_schema):
    # An untrained model scores near 0.5 everywhere: 0.5 keeps some spans to check offsets on.
    e = GLiNER2Extractor(business_schema.with_threshold(0.5), str(untrained_checkpoint), device="cpu")
    e.warm_up()
    return e


def test_token_budget_matches_what_gliner2_feeds_the_encoder(extractor):
    processor = extractor.model.processor
    counter = extractor.token_counter()
    schema_dict = extractor._gliner_schema.build()
    for text in (SHORT, LONG[:900], "Ünïcödé naïve café — “quotes” and emoji 😀 too."):
        record = processor.transform_record(processor._normalize_text(text), copy.deepcopy(schema_dict))
        appended = 0 if text.endswith((".", "!", "?")) else 1
        assert len(record.input_ids) == extractor._schema_tokens + len(counter.token_spans(text)) + appended
    assert 16 <= extractor.max_text_tokens() <= 512 - extractor._schema_tokens


def test_cached_token_counts_equal_the_tokenizers_even_when_the_cache_overflows(extractor, monkeypatch):
    processor = extractor.model.processor

    def uncached(text):
        words = list(processor.word_splitter(text, lower=True))
        return [len(processor.tokenizer(w, add_special_tokens=False)["input_ids"]) for w, _, _ in words]

    counter = extractor.token_counter()
    monkeypatch.setattr(counter, "MAX_CACHED_WORDS", 12)
    texts = [SHORT, LONG[:900], "Ünïcödé naïve café — “quotes” and emoji 😀 too.", SHORT, LONG[:300]]
    for text in texts:
        spans = counter.token_spans(text)
        expected = uncached(text)
        assert len(spans) == sum(expected)
        assert sum(spans.word_start) == len(expected)
    assert len(counter._counts) <= max(12, len(set(w for w, _, _ in processor.word_splitter(LONG[:900], lower=True))))


def test_chunks_of_a_long_document_all_fit_the_window(extractor, tmp_path, embedder):
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "long.txt").write_text(LONG, encoding="utf-8")
    settings = Settings(out_dir=tmp_path / "out", chunk_size=4096, chunk_overlap=16)  # the model window decides
    report = ingest(root, settings, extractor=extractor, embedder=embedder)
    assert report.chunks >= 3  # the document is longer than one window, and every window ran through the model
    g = load_graph(Path(settings.out_dir) / "graph.json")
    chunks = [d for _, d in g.nodes(data=True) if d["kind"] == "Chunk"]
    assert all(c["token_count"] <= extractor.max_text_tokens() for c in chunks)
    assert all(LONG[c["start"] : c["end"]] == c["text"] for c in chunks)


def test_real_extraction_through_both_sinks(extractor, tmp_path, embedder, business_schema):
    root = tmp_path / "corpus"
    root.mkdir()
    texts = {"a.txt": SHORT, "b.txt": "Samsung chief executive Jane Park launched the Galaxy S27 for $999 in Seoul."}
    for name, text in texts.items():
        (root / name).write_text(text, encoding="utf-8")

    settings = Settings(out_dir=tmp_path / "edge")
    report = ingest(root, settings, extractor=extractor, embedder=embedder)
    assert report.documents_read == 2 and report.mentions > 0
    g = load_graph(Path(settings.out_dir) / "graph.json")
    paths = {n: d["path"] for n, d in g.nodes(data=True) if d["kind"] == "Document"}
    mentions = [d for _, _, d in g.edges(data=True) if d["type"] == "MENTIONS"]
    assert mentions
    for m in mentions:
        assert texts[paths[m["doc_id"]]][m["start"] : m["end"]] == m["text"]
        assert m["label"] in business_schema.entities and 0.5 <= m["confidence"] <= 1
    for u, v, d in g.edges(data=True):
        if d["type"] in business_schema.relations:
            assert g.nodes[u]["type"] in business_schema.relations[d["type"]].source
            assert g.nodes[v]["type"] in business_schema.relations[d["type"]].target
    edge_hits = query("price of a headset", settings, embedder=embedder, k=2)
    assert edge_hits[0].path == "a.txt"

    server_settings = Settings(out_dir=tmp_path / "server")
    sink = QdrantServerVectorSink("kgbuild", path=str(tmp_path / "qdrant-local"), classification_tasks=["document_type"])
    report2 = ingest(root, server_settings, extractor=extractor, embedder=embedder, vector_sink=sink)
    assert report2.totals.vector_points == report.totals.vector_points
    assert report2.totals.mentions == report.totals.mentions  # deterministic output
    sink = QdrantServerVectorSink("kgbuild", path=str(tmp_path / "qdrant-local"), classification_tasks=["document_type"])
    server_hits = query("price of a headset", server_settings, embedder=embedder, k=2, vector_sink=sink)
    assert [h.chunk_id for h in server_hits] == [h.chunk_id for h in edge_hits]


def test_rerun_never_loads_the_model(untrained_checkpoint, business_schema, tmp_path, embedder):
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "a.txt").write_text(SHORT, encoding="utf-8")
    settings = Settings(out_dir=tmp_path / "out", model=str(untrained_checkpoint), threshold=0.9)
    ingest(root, settings, embedder=embedder)
    fresh = GLiNER2Extractor(business_schema.with_threshold(0.9), str(untrained_checkpoint))
    report = ingest(root, settings, extractor=fresh, embedder=embedder)
    assert report.documents_unchanged == 1 and fresh._model is None


def test_unreachable_hub_model_fails_with_one_clear_line():
    with pytest.raises(ModelLoadError) as info:
        load_gliner2("fastino/gliner2-base-v1")
    message = str(info.value)
    assert "\n" not in message and "fastino/gliner2-base-v1" in message and "--model" in message


def test_missing_local_model_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="no such directory"):
        load_gliner2(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not a loadable GLiNER2 checkpoint|cannot be loaded"):
        load_gliner2(str(tmp_path / "empty"))


def test_demo_checkpoint_finds_people_and_money(demo_checkpoint, business_schema):
    """Quality check on the small trained demo checkpoint, where it is present."""
    extractor = GLiNER2Extractor(business_schema, str(demo_checkpoint), device="cpu")
    (raw,) = extractor.extract([SHORT])
    found = {(s.label, s.text) for s in raw.entities if s.confidence >= 0.5}
    assert ("PERSON", "Tim Cook") in found and ("MONEY", "$2,499") in found
