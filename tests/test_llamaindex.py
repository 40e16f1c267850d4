"""The LlamaIndex integration: IngestionPipeline, PropertyGraphIndex (in memory and Neo4j), the writer sink step,
MetadataFilters through kgbuild's retriever, Qdrant interoperability both ways, and the hybrid retriever in a
RetrieverQueryEngine. No LLM: MockLLM, and kgbuild's local MiniLM as the embedding model."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Document as LIDocument  # noqa: E402
from llama_index.core import PropertyGraphIndex, VectorStoreIndex  # noqa: E402
from llama_index.core import Settings as LISettings  # noqa: E402
from llama_index.core.graph_stores import SimplePropertyGraphStore  # noqa: E402
from llama_index.core.ingestion import IngestionCache, IngestionPipeline  # noqa: E402
from llama_index.core.llms import MockLLM  # noqa: E402
from llama_index.core.node_parser import SentenceSplitter  # noqa: E402
from llama_index.core.query_engine import RetrieverQueryEngine  # noqa: E402
from llama_index.core.schema import MetadataMode  # noqa: E402
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
    from kgbuild.index_stats import stats

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
        mentions = {(h, t, d["start"], d["end"]) for h, t, d in graph.edges(data=True) if d["type"] == "MENTIONS"}
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
    from kgbuild.stores import make_vector_sink

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
