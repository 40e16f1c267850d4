"""Hybrid retrieval: dense vectors, graph expansion from the query's entities, and BM25, fused by rank.

Channels (each can be switched off):

1. **vector**: the query embedding against the chunk vectors, with the metadata filters.
2. **graph**: the canonical entities the query names, found without a model by default
   (``EntityNameIndex``: the query's word n-grams looked up among the entities' names and aliases,
   normalised as reconciliation normalises them); with ``query_model=True`` (or a ``model``) the
   query is read by the index's extractor (GLiNER2) and its mentions matched by ``EntityMatcher``
   (normalisation, aliases, rapidfuzz). Chunks that mention those entities or entities within
   ``hops`` are ranked by personalised PageRank (``EntityGraph.expand``).
3. **bm25**: lexical BM25 over the chunk texts (``BM25ChunkIndex``).

Fusion: reciprocal rank fusion, ``score(chunk) = sum over channels of 1 / (RRF_K + rank)`` with
``RRF_K = 60`` (Cormack et al., 2009), so no channel's raw score scale matters. Every hit carries
one ``RetrievalReason`` per channel that found it: rank, the channel's own score and, for the
graph, the query entity and the path from it to the chunk. The graph and BM25 channels apply the
same metadata filters as the vector channel.

>>> with HybridRetriever(Settings(out_dir=".kgbuild")) as retriever:
...     hits = retriever.retrieve("Which device does the firm headed by Mara Lindqvist build?", k=5)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from kgbuild.embed import Embedder, query_embedder
from kgbuild.errors import ConfigError
from kgbuild.index import Index
from kgbuild.retrieve.vector import build_filter, hit_from_payload, payload_text
from kgbuild.settings import Settings
from kgbuild.sinks import GraphSink, VectorSink
from kgbuild.types import Chunk, QueryHit, RetrievalReason, VectorFilter, VectorHit

if TYPE_CHECKING:  # pragma: no cover
    from kgbuild.extract.base import Extractor
    from kgbuild.retrieve.entities import EntityMatch, EntityMatcher, EntityNameIndex
    from kgbuild.retrieve.graph import EntityGraph
    from kgbuild.schema import ExtractionSchema

CHANNELS = ("vector", "graph", "bm25")
RRF_K = 60


def reciprocal_rank_fusion(rankings: Mapping[str, Sequence[str]], rrf_k: int = RRF_K) -> list[tuple[str, float]]:
    """``{"vector": ["a", "b"], "bm25": ["b"]}`` -> ``[("b", 1/62 + 1/61), ("a", 1/61)]``; ties by id."""
    fused: dict[str, float] = {}
    for ranking in rankings.values():
        for rank, item in enumerate(ranking, 1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (rrf_k + rank)
    return sorted(fused.items(), key=lambda pair: (-pair[1], pair[0]))


@dataclass(slots=True)
class _Candidate:
    payload: dict[str, Any]
    point_id: str


def build_query_extractor(model: str, schema: ExtractionSchema, settings: Settings) -> Extractor:
    """The GLiNER2 extractor that reads queries (the index's model unless ``--model`` says otherwise)."""
    from kgbuild.extract.gliner import GLiNER2Extractor

    return GLiNER2Extractor(schema, model, device=settings.device, batch_size=1, torch_threads=settings.torch_threads)


class HybridRetriever:
    """Reads the index on first use (or ``open()``); keeps the BM25 index and the entity graph in memory,
    and the vector store open until ``close()``.

    Retrievers in one process share an embedded store; close them before another process
    (``kgbuild ingest``) writes to the same index.

    The graph channel finds the query's entities by name, without a model (about 7 s less per CLI
    call than loading GLiNER2). ``query_model=True``, or a ``model``, reads the query with the
    extractor instead (``extractor`` where given, else the index's GLiNER2 model): slower, but it
    finds typos and partial names through fuzzy matching.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        vector: bool = True,
        graph: bool = True,
        bm25: bool = True,
        hops: int = 2,
        candidates: int = 30,
        model: str | None = None,
        query_model: bool = False,
        extractor: Extractor | None = None,
        embedder: Embedder | None = None,
        vector_sink: VectorSink | None = None,
        graph_sink: GraphSink | None = None,
        entity_graph: EntityGraph | None = None,
    ):
        if not (vector or graph or bm25):
            raise ConfigError("hybrid retrieval needs at least one channel: vector, graph or bm25")
        if hops < 0:
            raise ConfigError(f"--hops must be 0 or more, got {hops}")
        if candidates < 1:
            raise ConfigError(f"candidates must be at least 1, got {candidates}")
        self.settings = settings or Settings()
        self.enabled = {"vector": vector, "graph": graph, "bm25": bm25}
        self.hops = hops
        self.candidates = candidates
        self._model = model
        self.query_model = query_model or model is not None
        self._extractor = extractor
        self._embedder = embedder
        self._vector_sink = vector_sink
        self._graph_sink = graph_sink
        self._entity_graph = entity_graph
        self._open = False

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> HybridRetriever:
        if self._open:
            return self
        # imported here, each where its channel is on: a query process pays only for what it runs
        from kgbuild.schema import ExtractionSchema

        self.index = Index.open_existing(self.settings, graph_sink=self._graph_sink, vector_sink=self._vector_sink)
        self.state, self.manifest, self.settings = self.index.state, self.index.manifest, self.index.settings
        from kgbuild.entities import EntityKeyResolver

        self.resolve_entity = EntityKeyResolver(self.index)
        self.schema = ExtractionSchema.model_validate(self.manifest.schema_definition or {"name": "unknown"})
        self._vector_sink = self.index.vector_sink()
        # held until close(): opening an embedded store costs far more than a query, and it admits one
        # process at a time, so close the retriever before ingesting into the same index
        self._vector_sink.open()
        try:
            points = list(self._vector_sink.export().points.values())
        except BaseException:
            self._vector_sink.close()
            raise
        self._open = True
        self._by_chunk = {str(p.get("chunk_id")): p for p in points if p.get("chunk_id")}
        self._bm25 = None
        if self.enabled["bm25"]:
            from kgbuild.retrieve.lexical import BM25ChunkIndex

            self._bm25 = BM25ChunkIndex(list(self._by_chunk.values()), payload_text)
        if self.enabled["graph"] and self._entity_graph is None:
            self._entity_graph = self._load_graph()
        self._names: EntityNameIndex | None = None
        self._matcher: EntityMatcher | None = None
        if self._entity_graph is not None:
            from kgbuild.retrieve.entities import EntityMatcher, EntityNameIndex

            if self.query_model:
                self._matcher = EntityMatcher(self._entity_graph.entities)
            else:
                self._names = EntityNameIndex(self._entity_graph.entities)
        if self._embedder is None and self.enabled["vector"]:
            self._embedder = query_embedder(self.manifest.embedding_model or self.settings.embedding_model)
        return self

    def _load_graph(self) -> EntityGraph:
        from kgbuild.retrieve.graph import EntityGraph

        sink = self.index.graph_sink()
        sink.open()
        try:
            return EntityGraph.from_data(sink.entity_graph())
        finally:
            sink.close()

    def close(self) -> None:
        if self._open and self._vector_sink is not None:
            self._vector_sink.close()
        self._open = False

    def __enter__(self) -> HybridRetriever:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the query -----------------------------------------------------------------------------

    @property
    def extractor(self) -> Extractor:
        if self._extractor is None:
            self._extractor = build_query_extractor(self._model or self.manifest.model or self.settings.model,
                                                    self.schema, self.settings)
        return self._extractor

    def query_entities(self, text: str) -> list[EntityMatch]:
        """The canonical entities the query names: by name lookup, or (``query_model``) the extractor's
        mentions (same extractor and schema as at ingest) matched to them."""
        self.open()
        if self._names is not None:
            return self._names.find(text)
        if self._matcher is None:
            return []
        from kgbuild.extract.base import link_extraction

        raw = self.extractor.extract([text])[0]
        chunk = Chunk(id="query", doc_id="query", position=0, start=0, end=len(text), text=text, token_count=len(text.split()))
        mentions = link_extraction(chunk, raw, self.schema).mentions
        return self._matcher.match_all((m.text, m.label) for m in mentions)

    def retrieve(
        self,
        text: str,
        *,
        k: int = 10,
        entities: Sequence[str] = (),
        types: Sequence[str] = (),
        classes: Sequence[str] | Mapping[str, str] = (),
        docs: Sequence[str] = (),
        doc_ids: Sequence[str] = (),
        query_filter: VectorFilter | None = None,
    ) -> list[QueryHit]:
        """The ``k`` best chunks by reciprocal rank fusion of the enabled channels."""
        if k < 1:
            raise ConfigError(f"-k must be at least 1, got {k}")
        if not text.strip():
            raise ConfigError("the query text is empty")
        self.open()
        if query_filter is None:
            from kgbuild.paths import documents_as_stored

            docs = documents_as_stored(self.state, docs)
            query_filter = build_filter(self.manifest, entities=entities, types=types, classes=classes, docs=docs, doc_ids=doc_ids,
                                        resolve_entity=self.resolve_entity)
        limit = max(self.candidates, k)
        rankings: dict[str, list[str]] = {}
        reasons: dict[str, list[RetrievalReason]] = {}
        candidates: dict[str, _Candidate] = {}

        def add(channel: str, chunk_id: str, payload: dict[str, Any], point_id: str, reason: RetrievalReason) -> None:
            rankings.setdefault(channel, []).append(chunk_id)
            reasons.setdefault(chunk_id, []).append(reason)
            candidates.setdefault(chunk_id, _Candidate(payload, point_id))

        if self.enabled["vector"]:
            assert self._embedder is not None and self._vector_sink is not None
            vector = self._embedder.embed([text])[0]
            found = self._vector_sink.search(vector, query_filter, limit)
            for rank, hit in enumerate(found, 1):
                chunk_id = str(hit.payload.get("chunk_id") or hit.point_id)
                add("vector", chunk_id, hit.payload, hit.point_id, RetrievalReason("vector", rank, round(hit.score, 6)))
        if self.enabled["graph"] and self._entity_graph is not None:
            matches = self.query_entities(text)
            seeds: dict[str, float] = {}
            for match in matches:
                seeds[match.entity.id] = max(seeds.get(match.entity.id, 0.0), match.weight)
            rank = 0
            for hit in self._entity_graph.expand(seeds, hops=self.hops, limit=len(self._by_chunk) or limit):
                payload = self._by_chunk.get(hit.chunk_id)
                if payload is None or not query_filter.matches(payload):
                    continue
                rank += 1
                add("graph", hit.chunk_id, payload, str(payload.get("chunk_id")),
                    RetrievalReason("graph", rank, round(hit.score, 6), hit.entity, hit.path))
                if rank == limit:
                    break
        if self.enabled["bm25"] and self._bm25 is not None:
            for rank, (index, score) in enumerate(self._bm25.search(text, limit, query_filter), 1):
                payload = self._bm25.payloads[index]
                chunk_id = str(payload["chunk_id"])
                add("bm25", chunk_id, payload, chunk_id, RetrievalReason("bm25", rank, round(score, 6)))

        hits: list[QueryHit] = []
        for chunk_id, score in reciprocal_rank_fusion(rankings)[:k]:
            candidate = candidates[chunk_id]
            hit = hit_from_payload(VectorHit(candidate.point_id, score, candidate.payload), query_filter.all_entity_keys)
            hit.reasons = sorted(reasons[chunk_id], key=lambda r: CHANNELS.index(r.channel))
            hits.append(hit)
        return hits


def hybrid_query(
    text: str,
    settings: Settings | None = None,
    *,
    k: int = 10,
    vector: bool = True,
    graph: bool = True,
    bm25: bool = True,
    hops: int = 2,
    model: str | None = None,
    query_model: bool = False,
    entities: Sequence[str] = (),
    types: Sequence[str] = (),
    classes: Sequence[str] | Mapping[str, str] = (),
    docs: Sequence[str] = (),
    extractor: Extractor | None = None,
) -> list[QueryHit]:
    """One hybrid query (``kgbuild query --hybrid``); see ``HybridRetriever`` to run many."""
    with HybridRetriever(settings, vector=vector, graph=graph, bm25=bm25, hops=hops, model=model, query_model=query_model,
                         extractor=extractor) as retriever:
        return retriever.retrieve(text, k=k, entities=entities, types=types, classes=classes, docs=docs)
