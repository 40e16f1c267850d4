"""The LlamaIndex integration: IngestionPipeline, PropertyGraphIndex (in memory and Neo4j), the writer sink step,
MetadataFilters through kgbuild's retriever, Qdrant interoperability both ways, and the hybrid retriever in a
RetrieverQueryEngine. No LLM: MockLLM, and kgbuild's local MiniLM as the embedding model."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Document as LIDocument  # noqa: E402
from llama_index.core import PropertyGraphIndex, VectorStoreIndex  # noqa: E402
from llama_index.core import Settings as LISettings  # noqa: E402
from llama_index.core.graph_stores import SimplePropertyGraphStore  # noqa: E402
from llama_index.core.graph_stores.types import KG_NODES_KEY, KG_RELATIONS_KEY, EntityNode  # noqa: E402
from llama_index.core.ingestion import IngestionCache, IngestionPipeline  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.node_parser import SentenceSplitter  # noqa: E402
from llama_index.core.query_engine import RetrieverQueryEngine  # noqa: E402
from llama_index.core.schema import MetadataMode, TextNode  # noqa: E402
from llama_index.core.storage.docstore import SimpleDocumentStore  # noqa: E402
from llama_index.core.vector_stores.types import FilterCondition, MetadataFilter, MetadataFilters  # noqa: E402
from multihop import corpus_folder, gazetteer  # noqa: E402

from kgbuild.errors import ConfigError  # noqa: E402
from kgbuild.ids import entity_id, relation_id  # noqa: E402
from kgbuild.llamaindex import (  # noqa: E402
    KgbuildEmbedding,
    KgbuildExtractor,
    KgbuildHybridRetriever,
    KgbuildVectorRetriever,
    KgbuildWriter,
)
from kgbuild.settings import Settings  # noqa: E402

TEXTS = {
    "press/vision-pro.md": "Apple Inc. will unveil the Vision Pro in Cupertino. Tim Cook said the Vision Pro costs $2,499.",
    "press/acme.md": "Acme Corp will launch Rocket Skates. Jane Park, who leads Acme Corp, said Acme Corp competes with Globex Ltd.",
    "finance/apple-q3.md": "Apple reported record revenue this quarter, Tim Cook told investors in Cupertino.",
}
APPLE = entity_id("COMPANY", "apple")
TIM = entity_id("PERSON", "tim cook")


@pytest.fixture(autouse=True)
def no_network_defaults(embedder):
    """LlamaIndex must never reach for OpenAI: a mock LLM and kgbuild's local embedder, set explicitly."""
    previous = (LISettings._llm, LISettings._embed_model)
    LISettings.llm = MockLLM()
    LISettings.embed_model = KgbuildEmbedding(embedder=embedder)
    yield
    LISettings._llm, LISettings._embed_model = previous


def documents() -> list[LIDocument]:
    return [LIDocument(text=text, id_=path, metadata={"path": path, "title": path.rsplit("/", 1)[-1]}) for path, text in TEXTS.items()]


def extractor(business_schema, gazetteer, **kwargs) -> KgbuildExtractor:
    return KgbuildExtractor(business_schema, extractor=gazetteer, batch_size=2, **kwargs)


def test_extractor_in_an_ingestion_pipeline_with_splitter_embeddings_docstore_and_cache(business_schema, gazetteer, embedder):
    docstore = SimpleDocumentStore()
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0), extractor(business_schema, gazetteer),
                         KgbuildEmbedding(embedder=embedder)],
        docstore=docstore, cache=IngestionCache(),
    )
    nodes = pipeline.run(documents=documents())
    assert len(nodes) >= 3 and all(len(n.embedding) == 384 for n in nodes)
    apple_nodes = [n for n in nodes if "COMPANY:apple" in n.metadata["entity_keys"]]
    assert {n.ref_doc_id for n in apple_nodes} == {"press/vision-pro.md", "finance/apple-q3.md"}
    node = next(n for n in nodes if n.ref_doc_id == "press/vision-pro.md")
    meta = node.metadata
    text = node.get_content(metadata_mode=MetadataMode.NONE)
    for span in meta["entities"]:  # spans are offsets into the node text, with confidences
        assert text[span["start"]:span["end"]] == span["text"] and 0 < span["confidence"] <= 1
    assert APPLE in meta["entity_ids"] and TIM in meta["entity_ids"]
    assert set(meta["entity_types"]) >= {"COMPANY", "PERSON", "PRODUCT"}
    assert meta["class.document_type"] == ["product_announcement"] == meta["class"]["document_type"]
    assert {(r["label"], r["head_id"], r["tail_id"]) for r in meta["entity_relations"]} >= {
        ("MANUFACTURES", APPLE, entity_id("PRODUCT", "vision pro"))}
    assert meta["relation_types"] == sorted({r["label"] for r in meta["entity_relations"]})
    embedded = node.get_content(metadata_mode=MetadataMode.EMBED)
    assert "entity_keys" not in embedded and "ent_" not in embedded and "path: press/vision-pro.md" in embedded
    # the docstore recognises unchanged documents: a second run does no work
    assert pipeline.run(documents=documents()) == []


def test_property_graph_index_with_the_in_memory_store(business_schema, gazetteer):
    store = SimplePropertyGraphStore()
    index = PropertyGraphIndex.from_documents(documents(), kg_extractors=[extractor(business_schema, gazetteer)],
                                              property_graph_store=store, use_async=False, show_progress=False)
    graph = index.property_graph_store.graph
    assert graph.nodes[APPLE].name in ("Apple Inc.", "Apple") and graph.nodes[APPLE].label == "COMPANY"
    triplets = {(h.id, r.label, t.id) for h, r, t in graph.get_triplets()}
    assert (TIM, "CEO_OF", APPLE) in triplets
    assert (entity_id("COMPANY", "acme"), "COMPETES_WITH", entity_id("COMPANY", "globex")) in triplets
    rels = [r for _, r, _ in graph.get_triplets() if r.label == "CEO_OF" and r.source_id == TIM]
    assert rels[0].properties["kgbuild_id"] == relation_id("CEO_OF", TIM, APPLE)


@pytest.mark.neo4j
def test_property_graph_index_with_llamaindexs_neo4j_store(neo4j_server, business_schema, gazetteer):
    import neo4j

    from kgbuild.llamaindex import Neo4jPropertyGraphStoreWithoutApoc

    with neo4j.GraphDatabase.driver(neo4j_server["uri"], auth=(neo4j_server["user"], neo4j_server["password"])) as driver:
        driver.execute_query("MATCH (n) DETACH DELETE n", database_=neo4j_server["database"])
    store = Neo4jPropertyGraphStoreWithoutApoc(username=neo4j_server["user"], password=neo4j_server["password"],
                                               url=neo4j_server["uri"], database=neo4j_server["database"])
    try:
        PropertyGraphIndex.from_documents(documents(), kg_extractors=[extractor(business_schema, gazetteer)],
                                          property_graph_store=store, use_async=False, show_progress=False)
        rows = store.structured_query(
            "MATCH (p:__Entity__:PERSON {id: $tim})-[r:CEO_OF]->(c:__Entity__:COMPANY {id: $apple}) "
            "RETURN p.name AS person, c.name AS company, r.kgbuild_id AS rel",
            param_map={"tim": TIM, "apple": APPLE},
        )
        assert len(rows) == 1 and rows[0]["person"] == "Tim Cook" and rows[0]["company"] in ("Apple Inc.", "Apple")
        assert rows[0]["rel"] == relation_id("CEO_OF", TIM, APPLE)
        mentions = store.structured_query("MATCH (:Chunk)-[:MENTIONS]->(e:__Entity__ {id: $apple}) RETURN count(*) AS n",
                                          param_map={"apple": APPLE})
        assert mentions[0]["n"] == 2
        assert [n.id for n in store.get(ids=[APPLE])] == [APPLE]
    finally:
        store.close()


def _ingest_folder(tmp_path, gazetteer, embedder, **settings):
    from kgbuild.pipeline import ingest

    root = tmp_path / "corpus"
    for path, text in TEXTS.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    out = Settings(out_dir=tmp_path / "cli-index", device="cpu", **settings)
    ingest(root, out, extractor=gazetteer, embedder=embedder)
    return out


def test_writer_ends_a_llamaindex_pipeline_in_the_same_index_as_kgbuild_ingest(tmp_path, business_schema, gazetteer, embedder):
    import kgbuild
    from kgbuild.connectors.networkx_graph import load_graph
    from kgbuild.index import stats

    cli = _ingest_folder(tmp_path, gazetteer, embedder)
    li = Settings(out_dir=tmp_path / "li-index", device="cpu")
    # whole documents as single nodes, as kgbuild's chunker leaves these short texts
    pipeline = IngestionPipeline(transformations=[SentenceSplitter(chunk_size=512, chunk_overlap=0),
                                                  extractor(business_schema, gazetteer), KgbuildEmbedding(embedder=embedder),
                                                  KgbuildWriter(li, embedder=embedder)])
    pipeline.run(documents=documents())

    def view(settings):
        graph = load_graph(settings.out_dir / "graph.json")
        nodes = {n: (d["kind"], d.get("name"), d.get("key")) for n, d in graph.nodes(data=True)}
        edges = {(h, t, k) for h, t, k in graph.edges(keys=True) if not k.startswith("men_")}
        # with why each mention is in its entity (the resolution rule), as ingest writes it
        mentions = {(h, t, d["start"], d["end"], d.get("rule")) for h, t, d in graph.edges(data=True) if d["type"] == "MENTIONS"}
        return nodes, edges, mentions

    assert view(li) == view(cli)
    assert stats(li).to_dict() | {"model": ""} == stats(cli).to_dict() | {"model": ""}
    hits = kgbuild.query("virtual reality headset", li, entities=["COMPANY:apple inc."], classes=["document_type=product_announcement"],
                         embedder=embedder)
    assert [h.path for h in hits] == ["press/vision-pro.md"]


def test_metadata_filters_through_kgbuilds_retriever(tmp_path, gazetteer, embedder):
    settings = _ingest_folder(tmp_path, gazetteer, embedder)

    def retrieve(*filters, condition=FilterCondition.AND):
        retriever = KgbuildVectorRetriever(settings, filters=MetadataFilters(filters=list(filters), condition=condition),
                                           similarity_top_k=5, embedder=embedder)
        return [n.node.metadata["path"] for n in retriever.retrieve("Apple")]

    assert sorted(retrieve(MetadataFilter(key="entity_keys", value="COMPANY:APPLE, Inc."))) == ["finance/apple-q3.md", "press/vision-pro.md"]
    assert retrieve(MetadataFilter(key="entity_keys", value="COMPANY:Apple"),
                    MetadataFilter(key="class.document_type", value="earnings_report")) == ["finance/apple-q3.md"]
    assert retrieve(MetadataFilter(key="entity_types", value="PRODUCT"), MetadataFilter(key="path", value="press/acme.md")) == ["press/acme.md"]
    with pytest.raises(ConfigError, match="'author' is not filterable"):
        retrieve(MetadataFilter(key="author", value="x"))
    with pytest.raises(ConfigError, match="condition 'or'"):
        retrieve(MetadataFilter(key="entity_types", value="PERSON"), MetadataFilter(key="entity_types", value="PRODUCT"),
                 condition=FilterCondition.OR)
    with pytest.raises(ConfigError, match="unknown label 'memo'"):
        retrieve(MetadataFilter(key="class.document_type", value="memo"))


def test_a_collection_kgbuild_writes_is_read_by_llamaindexs_qdrant_store(tmp_path, business_schema, gazetteer, embedder):
    from kgbuild.connectors.qdrant_server import QdrantServerVectorSink
    from kgbuild.pipeline import ingest
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    root = tmp_path / "corpus"
    for path, text in TEXTS.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    sink = QdrantServerVectorSink("kgbuild", path=str(tmp_path / "qdrant"), classification_tasks=["document_type"])
    ingest(root, Settings(out_dir=tmp_path / "index", device="cpu"), extractor=gazetteer, embedder=embedder, vector_sink=sink)

    client = QdrantClient(path=str(tmp_path / "qdrant"))
    try:
        store = QdrantVectorStore(client=client, collection_name="kgbuild")
        index = VectorStoreIndex.from_vector_store(store, embed_model=KgbuildEmbedding(embedder=embedder))
        filters = MetadataFilters(filters=[MetadataFilter(key="entity_keys", value="COMPANY:apple"),
                                           MetadataFilter(key="class.document_type", value="earnings_report")])
        hits = index.as_retriever(similarity_top_k=5, filters=filters).retrieve("Apple")
        assert [h.node.metadata["path"] for h in hits] == ["finance/apple-q3.md"]
        assert hits[0].node.get_content() == TEXTS["finance/apple-q3.md"]
        all_hits = index.as_retriever(similarity_top_k=5).retrieve("roller skates")
        assert all_hits[0].node.metadata["path"] == "press/acme.md"
    finally:
        client.close()


def test_a_collection_a_llamaindex_pipeline_writes_is_read_by_kgbuild_query(tmp_path, business_schema, gazetteer, embedder):
    import kgbuild
    from kgbuild.connectors.qdrant_server import QdrantServerVectorSink
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(tmp_path / "qdrant"))
    try:
        store = QdrantVectorStore(client=client, collection_name="from_llamaindex")
        IngestionPipeline(transformations=[SentenceSplitter(chunk_size=512), extractor(business_schema, gazetteer),
                                           KgbuildEmbedding(embedder=embedder)], vector_store=store).run(documents=documents())
    finally:
        client.close()

    def read(**filters):
        sink = QdrantServerVectorSink("from_llamaindex", path=str(tmp_path / "qdrant"))
        return kgbuild.query("Apple", Settings(out_dir=tmp_path / "no-index"), k=5, embedder=embedder, vector_sink=sink, **filters)

    hits = read(entities=["COMPANY:Apple Inc."], classes=["document_type=earnings_report"])
    assert [(h.path, h.text) for h in hits] == [("finance/apple-q3.md", TEXTS["finance/apple-q3.md"])]
    assert APPLE in [e.id for e in hits[0].entities] and hits[0].matched_entities == ["COMPANY:apple"]
    assert sorted(h.path for h in read(types=["PRODUCT"])) == ["press/acme.md", "press/vision-pro.md"]


def test_hybrid_retriever_in_a_retriever_query_engine(tmp_path, business_schema, embedder):
    from kgbuild.pipeline import ingest

    settings = Settings(out_dir=tmp_path / "index", device="cpu")
    ingest(corpus_folder(tmp_path / "corpus"), settings, extractor=gazetteer(business_schema), embedder=embedder)
    retriever = KgbuildHybridRetriever(settings, similarity_top_k=3, extractor=gazetteer(business_schema), embedder=embedder)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    response = engine.query("Which wearable is made by the company Ines Okafor leads?")
    sources = response.source_nodes
    found = [s.node.metadata["path"].rsplit("#", 1)[-1] for s in sources]
    assert found[0] == "p05" and "p06" in found, found  # p06 shares no word with the question
    answer = sources[found.index("p06")]
    graph = [r for r in answer.node.metadata["retrieval"] if r["channel"] == "graph"]
    assert graph and graph[0]["entity"] == "PERSON:ines okafor" and "CEO_OF" in graph[0]["path"]
    assert str(response)  # MockLLM answered from the retrieved context without any network
    only_bm25 = KgbuildHybridRetriever(settings, vector=False, graph=False, similarity_top_k=3, extractor=gazetteer(business_schema),
                                       filters=MetadataFilters(filters=[MetadataFilter(key="entity_types", value="PRODUCT")]))
    nodes = only_bm25.retrieve("Ines Okafor wearable adhesive glucose sensor")
    assert [n.node.metadata["path"].rsplit("#", 1)[-1] for n in nodes] == ["p06"]


def test_vector_retriever_holds_the_store_between_queries_unless_told_not_to(tmp_path, gazetteer, embedder):
    from kgbuild.registry import make_vector_sink

    settings = _ingest_folder(tmp_path, gazetteer, embedder)
    opens = []

    class CountingSink:
        def __init__(self):
            self.inner = make_vector_sink(settings, ["document_type"])

        def open(self, dimension=None):
            opens.append(dimension)
            self.inner.open(dimension)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    for hold, expected in ((True, 1), (False, 3)):
        opens.clear()
        retriever = KgbuildVectorRetriever(settings, similarity_top_k=3, embedder=embedder, vector_sink=CountingSink(),
                                           hold_store=hold)
        results = [[n.node.node_id for n in retriever.retrieve("Apple headset")] for _ in range(3)]
        retriever.close()
        assert len(opens) == expected
        assert results[0] == results[1] == results[2] and results[0]


# -- nodes longer than the model's window, and one extraction per text ---------------------------------

LONG_SENTENCES = (
    "Tim Cook, who leads Apple Inc., said Apple Inc. will unveil the Vision Pro in Cupertino.",
    "Analysts expect a busy quarter for the whole industry this year.",
    "Jane Park, who leads Acme Corp, said Acme Corp competes with Globex Ltd.",
    "Acme Corp will launch Rocket Skates in Seoul for $999.",
)
LONG_TEXT = " ".join(LONG_SENTENCES * 4)


class CountingExtractor:
    """Wraps a real extractor and records every text sent to its ``extract``."""

    def __init__(self, inner, confidence=None):
        self.inner, self.texts, self.confidence = inner, [], confidence

    @property
    def name(self):
        return self.inner.name

    def token_counter(self):
        return self.inner.token_counter()

    def max_text_tokens(self):
        return self.inner.max_text_tokens()

    def extract(self, texts):
        self.texts.extend(texts)
        raws = self.inner.extract(texts)
        if self.confidence is not None:
            raws = [self._rescore(text, raw) for text, raw in zip(texts, raws)]
        return raws

    def _rescore(self, text, raw):
        from dataclasses import replace

        def span(s):
            return replace(s, confidence=self.confidence(text, s.start))

        raw.entities = [span(s) for s in raw.entities]
        raw.relations = [replace(r, head=span(r.head), tail=span(r.tail)) for r in raw.relations]
        return raw


def business_gazetteer(business_schema, max_tokens):
    from conftest import BUSINESS_CLASSES, BUSINESS_ENTITIES, BUSINESS_RELATIONS
    from kgbuild.extract.gazetteer import GazetteerExtractor

    return GazetteerExtractor(business_schema, BUSINESS_ENTITIES, BUSINESS_RELATIONS, BUSINESS_CLASSES, max_tokens=max_tokens)


def spans_of(node):
    return [(s["type"], s["start"], s["end"], s["text"]) for s in node.metadata["entities"]]


def test_a_node_longer_than_the_window_is_extracted_in_overlapping_windows(business_schema):
    counting = CountingExtractor(business_gazetteer(business_schema, max_tokens=24))
    windowed = KgbuildExtractor(business_schema, extractor=counting, window_overlap=8)
    whole = KgbuildExtractor(business_schema, extractor=business_gazetteer(business_schema, max_tokens=10_000))
    long_node, reference = TextNode(text=LONG_TEXT, id_="long"), TextNode(text=LONG_TEXT, id_="long")
    windowed([long_node])
    whole([reference])

    windows = windowed.windows(LONG_TEXT)
    assert len(windows) > 4 and windows[0].start == 0 and windows[-1].end == len(LONG_TEXT)
    assert all(len(LONG_TEXT[w.start : w.end].split()) == w.tokens <= 24 for w in windows)
    assert all(b.start < a.end for a, b in zip(windows, windows[1:]))  # neighbours overlap
    assert counting.texts == [LONG_TEXT[w.start : w.end] for w in windows]  # the model saw windows, each once
    # spans in node offsets, each found once although the overlaps saw many of them twice
    spans = spans_of(long_node)
    in_overlap = [s for s in spans if any(b.start <= s[1] and s[2] <= a.end for a, b in zip(windows, windows[1:]))]
    assert in_overlap and len(spans) == len(set(spans))
    assert all(LONG_TEXT[start:end] == text for _, start, end, text in spans)
    assert spans == spans_of(reference) and len(spans) == 4 * 13
    # the metadata is what a short node gets (classes excepted: the windows vote, as a document's chunks do)
    for key in ("entity_ids", "entity_keys", "entity_names", "entity_types", "relation_types"):
        assert long_node.metadata[key] == reference.metadata[key], key
    assert {(r["label"], r["head_id"], r["tail_id"]) for r in long_node.metadata["entity_relations"]} == {
        (r["label"], r["head_id"], r["tail_id"]) for r in reference.metadata["entity_relations"]}
    assert (TIM, "CEO_OF", APPLE) in {(r.source_id, r.label, r.target_id) for r in long_node.metadata[KG_RELATIONS_KEY]}


def test_a_mention_or_relation_found_in_two_windows_keeps_its_highest_confidence(business_schema):
    def confidence(text, start):  # grows along each window: a span scores differently in its two windows
        return round(0.55 + 0.4 * start / len(text), 4)

    windowed = KgbuildExtractor(business_schema, window_overlap=12,
                                extractor=CountingExtractor(business_gazetteer(business_schema, 24), confidence))
    node = TextNode(text=LONG_TEXT, id_="long")
    windowed([node])

    mentions: dict[tuple, list[float]] = {}
    relations: dict[tuple, list[float]] = {}
    for w in windowed.windows(LONG_TEXT):
        text = LONG_TEXT[w.start : w.end]
        (raw,) = business_gazetteer(business_schema, 24).extract([text])
        for e in raw.entities:
            mentions.setdefault((e.label, w.start + e.start, w.start + e.end), []).append(confidence(text, e.start))
        for r in raw.relations:
            key = (r.label, w.start + r.head.start, w.start + r.head.end, w.start + r.tail.start, w.start + r.tail.end)
            relations.setdefault(key, []).append(min(confidence(text, r.head.start), confidence(text, r.tail.start)))
    assert any(len(set(found)) > 1 for found in mentions.values())  # windows that disagree
    assert {(s["type"], s["start"], s["end"]): s["confidence"] for s in node.metadata["entities"]} == {
        key: max(found) for key, found in mentions.items()}
    stored = {(r["label"], r["head_start"], r["head_end"], r["tail_start"], r["tail_end"]): r["confidence"]
              for r in node.metadata["entity_relations"]}
    assert len(stored) == len(node.metadata["entity_relations"])  # one record per relation span pair
    assert any(len(set(relations[key])) > 1 for key in stored)
    assert stored == {key: max(relations[key]) for key in stored}


def test_extraction_results_are_kept_per_text_schema_and_model_and_bounded(business_schema, gazetteer):
    windowed = KgbuildExtractor(business_schema, extractor=gazetteer, cache_size=2)
    texts = ["Tim Cook leads Apple Inc.", "Jane Park leads Acme Corp.", "Globex Ltd. competes with Acme Corp."]
    first = [TextNode(text=t) for t in texts[:2]]
    windowed(first)
    assert gazetteer.calls == 1
    again = [TextNode(text=t) for t in texts[:2]]  # other nodes, same texts: no model work, same metadata
    windowed(again)
    assert gazetteer.calls == 1
    assert [n.metadata["entity_keys"] for n in again] == [n.metadata["entity_keys"] for n in first]
    windowed([TextNode(text=texts[2])])  # a third text pushes out the least recently used one
    windowed([TextNode(text=texts[1])])
    assert gazetteer.calls == 2
    windowed([TextNode(text=texts[0])])
    assert gazetteer.calls == 3
    # an extractor with another schema fingerprint never reads this cache; cache_size=0 keeps nothing
    uncached = KgbuildExtractor(business_schema, extractor=gazetteer, cache_size=0)
    uncached([TextNode(text=texts[0])])
    uncached([TextNode(text=texts[0])])
    assert gazetteer.calls == 5
    assert windowed._cache_key(texts[0]) != KgbuildExtractor(business_schema, extractor=gazetteer, threshold=0.9)._cache_key(texts[0])


def test_annotating_a_node_twice_does_not_repeat_its_graph_entries(business_schema, gazetteer):
    node = TextNode(text=TEXTS["press/vision-pro.md"])
    other = EntityNode(name="from another extractor", label="THING")
    node.metadata[KG_NODES_KEY] = [other]
    windowed = KgbuildExtractor(business_schema, extractor=gazetteer)
    windowed([node])
    once = ([n.id for n in node.metadata[KG_NODES_KEY]], [r.id for r in node.metadata[KG_RELATIONS_KEY]])
    windowed([node])
    assert ([n.id for n in node.metadata[KG_NODES_KEY]], [r.id for r in node.metadata[KG_RELATIONS_KEY]]) == once
    assert once[0][0] == other.id and APPLE in once[0] and len(once[0]) == len(set(once[0]))


@pytest.mark.gliner2
def test_the_real_gliner2_reads_a_long_node_in_windows_and_each_window_once(untrained_checkpoint, business_schema, embedder,
                                                                             tmp_path):
    from kgbuild.extract.gliner import GLiNER2Extractor

    schema = business_schema.with_threshold(0.5)  # an untrained model scores near 0.5: some spans to check offsets on
    real = GLiNER2Extractor(schema, str(untrained_checkpoint), device="cpu")
    long_text = " ".join([LONG_TEXT] * 3)
    docs = [LIDocument(text=long_text, id_="long.md", metadata={"path": "long.md"}),
            LIDocument(text=TEXTS["press/acme.md"], id_="press/acme.md", metadata={"path": "press/acme.md"})]
    assert len(real.token_counter().token_spans(long_text)) > 512
    with pytest.raises(RuntimeError, match="must match the existing size"):  # the whole node at once: what used to happen
        real.extract([long_text])

    counting = CountingExtractor(real)
    extractor = KgbuildExtractor(schema, extractor=counting)
    splitter = SentenceSplitter(chunk_size=1024, chunk_overlap=0)  # LlamaIndex's tokens, not the model's
    writer = KgbuildWriter(Settings(out_dir=tmp_path / "index"), embedder=embedder)
    nodes = IngestionPipeline(transformations=[splitter, extractor, KgbuildEmbedding(embedder=embedder), writer]).run(documents=docs)
    texts = [n.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
    windows = [text[w.start : w.end] for text in texts for w in extractor.windows(text)]
    assert len(windows) > len(nodes) + 1
    assert sorted(counting.texts) == sorted(windows)  # each window through the model once
    budget = real.max_text_tokens()
    assert all(len(real.token_counter().token_spans(w)) <= budget for w in windows)
    long_node = next(n for n, text in zip(nodes, texts) if text == long_text)
    first_window_end = extractor.windows(long_text)[0].end
    spans = long_node.metadata["entities"]
    assert any(s["start"] >= first_window_end for s in spans)  # found in a later window, moved to node offsets
    assert all(long_text[s["start"] : s["end"]] == s["text"] for s in spans)

    # the README's graph index over the pipeline's nodes, and from_documents with the same splitter: no model work
    graph_index = PropertyGraphIndex(nodes=nodes, kg_extractors=[extractor], use_async=False)
    again = PropertyGraphIndex.from_documents(docs, kg_extractors=[extractor], transformations=[splitter], use_async=False)
    assert sorted(counting.texts) == sorted(windows)
    ids = {e for n in nodes for e in n.metadata["entity_ids"]}
    for index in (graph_index, again):
        store = index.property_graph_store
        assert ids and {n.id for n in store.get(ids=sorted(ids))} == ids


@pytest.mark.gliner2
def test_the_demo_checkpoint_finds_the_person_of_every_window_of_a_long_node(demo_checkpoint, business_schema):
    from kgbuild.extract.gliner import GLiNER2Extractor

    story = ("# Apple unveils the Vision Pro 3\n\nApple Inc. announced on March 15, 2026 that CEO Tim Cook will present "
             "the new Vision Pro 3 headset in Cupertino.\nIt will retail at $2,499 and compete with Meta's Quest 5.")
    filler = " ".join(f"In {1990 + i}, the regional market grew while analysts watched supply chains in several countries."
                      for i in range(12))
    text = "\n\n".join([story, filler, story, filler, story])
    extractor = KgbuildExtractor(business_schema, extractor=GLiNER2Extractor(business_schema, str(demo_checkpoint), device="cpu"))
    node = TextNode(text=text)
    extractor([node])
    windows = extractor.windows(text)
    people = [(s["start"], s["end"]) for s in node.metadata["entities"] if s["type"] == "PERSON"]
    occurrences = [(m.start(), m.end()) for m in re.finditer("Tim Cook", text)]
    assert len(windows) >= 3 and occurrences[-1][0] > windows[1].end
    assert people == occurrences
    assert node.metadata["entity_keys"].count("PERSON:tim cook") == 1
