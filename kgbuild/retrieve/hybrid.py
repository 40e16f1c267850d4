"""Hybrid retrieval: dense vectors, graph expansion from the query's entities, and BM25, fused by rank.

Channels (each can be switched off):

1. **vector**: the query embedding against the chunk vectors, with the metadata filters.
2. **graph**: personalised PageRank over the index's retrieval graph (``<out>/retrieval/``: chunks and
   entities in one sparse matrix, ``kgbuild.retrieve.graph_matrix``), seeded without a model pass by
   the entities the query names (``SeedMatcher``: an Aho-Corasick pass over the normalised names and
   aliases), the entity names nearest the query's embedding, and the dense channel's best passages;
   see ``kgbuild.retrieve.ppr``. With ``query_model=True`` (or a ``model``) the query is read by the
   index's extractor (GLiNER2) and its mentions matched by ``EntityMatcher`` instead of by name.
   An index built before the retrieval graph existed (or changed since by ``kgbuild remove`` or a
   LlamaIndex writer) gets one built on open, saved where the index is not being written.
3. **bm25**: lexical BM25 over the chunk texts (``BM25ChunkIndex``).

Fusion: weighted reciprocal rank fusion, ``score(chunk) = sum over channels of w_c / (RRF_K + rank)``
(Cormack et al., 2009; ``RRF_K = 10``), so no channel's raw score scale matters; the weights
(``CHANNEL_WEIGHTS``, for a query that names a document of the index by its title; the graph nearer the
other channels, ``WITHOUT_TITLE_WEIGHTS``, for one that names none) were chosen on the development set so that the
fusion is at least as good as the best single channel at k = 2, 5 and 10 (BENCHMARKS.md, "graph channel"). Every hit carries one
``RetrievalReason`` per channel that found it: rank, the channel's own score and, for the graph, the
seed (query entity) and the path from it to the chunk. The graph and BM25 channels apply the same
metadata filters as the vector channel.

>>> with HybridRetriever(Settings(out_dir=".kgbuild")) as retriever:
...     hits = retriever.retrieve("Which device does the firm headed by Mara Lindqvist build?", k=5)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from kgbuild.embed import Embedder, query_embedder
from kgbuild.errors import ConfigError
from kgbuild.index import Index
from kgbuild.retrieve.vector import build_filter, hit_from_payload, indexed_text, payload_text
from kgbuild.settings import Settings
from kgbuild.sinks import GraphSink, VectorSink
from kgbuild.types import Chunk, QueryHit, RetrievalReason, VectorFilter, VectorHit

if TYPE_CHECKING:  # pragma: no cover
    from kgbuild.extract.base import Extractor
    from kgbuild.retrieve.entities import EntityMatcher
    from kgbuild.retrieve.graph_matrix import RetrievalGraph
    from kgbuild.retrieve.ppr import GraphChannel, GraphChannelSettings
    from kgbuild.retrieve.seeds import Seed
    from kgbuild.schema import ExtractionSchema

log = logging.getLogger("kgbuild")

CHANNELS = ("vector", "graph", "bm25")
# The fusion, chosen on the development set (bench/data/wikihop; BENCHMARKS.md "graph channel"): the graph
# channel counts four times, BM25 half, and RRF_K = 10 lets a first rank count (k = 60 flattens the ranks so
# much that a chunk every channel finds low beats one the graph ranks first: R@2 0.76 instead of 0.86). Any
# graph weight from 3 to 6 at k = 10 keeps the fusion at least as good as the best single channel at k = 2, 5
# and 10 there; 4 is the middle of that range, not its best point.
RRF_K = 10
CHANNEL_WEIGHTS = {"vector": 1.0, "graph": 4.0, "bm25": 0.5}
# ... for a query that names a document of the index by its title (a TITLE seed: every question of the
# development set does). A query that names none gets the graph at 1.5 beside vectors and BM25 at 1: its seeds
# are only entities, often ones many chunks mention, and the channel's order among those chunks says less about
# the question. On 200 single-hop questions over the wikihop passages ("Which one was a queen of Lotharingia by
# marriage to Lothair II?", one gold passage; BM25 alone 0.825 / 0.890 / 0.925 R@2/5/10), the weights above gave
# 0.600 / 0.695 / 0.745, these 0.790 / 0.850 / 0.890 (graph 1.0: 0.810 / 0.875 / 0.915, but the project's
# entity-bridge questions, bench/data/multihop, lose R@2 0.875 -> 0.688); the development set's figures do not
# change. BENCHMARKS.md, "graph channel".
WITHOUT_TITLE_WEIGHTS = {"vector": 1.0, "graph": 1.5, "bm25": 1.0}


def reciprocal_rank_fusion(rankings: Mapping[str, Sequence[str]], rrf_k: int = RRF_K,
                           weights: Mapping[str, float] | None = None) -> list[tuple[str, float]]:
    """``{"vector": ["a", "b"], "bm25": ["b"]}`` -> ``[("b", 1/62 + 1/61), ("a", 1/61)]``; ties by id.
    ``weights`` scale each channel's terms (a channel not named weighs 1)."""
    fused: dict[str, float] = {}
    for channel, ranking in rankings.items():
        w = 1.0 if weights is None else weights.get(channel, 1.0)
        for rank, item in enumerate(ranking, 1):
            fused[item] = fused.get(item, 0.0) + w / (rrf_k + rank)
    return sorted(fused.items(), key=lambda pair: (-pair[1], pair[0]))


@dataclass(slots=True)
class _Candidate:
    payload: dict[str, Any] | None  # None: read from the chunk table when the hit is returned
    point_id: str


def build_query_extractor(model: str, schema: ExtractionSchema, settings: Settings, *, indexed_as: str = "") -> Extractor:
    """The GLiNER2 extractor that reads queries: ``model``, or else the index's model as its manifest names it
    (``indexed_as``: its checkpoint, adapter and relation decoding, so queries are read as the chunks were)."""
    from kgbuild.extract.checkpoint import parse_model_name
    from kgbuild.extract.gliner import GLiNER2Extractor

    options: dict[str, Any] = dict(device=settings.device, batch_size=1, torch_threads=settings.torch_threads)
    if model or not indexed_as:
        return GLiNER2Extractor(schema, model or settings.model, adapter=None if model else settings.adapter,
                                relation_decoding=settings.relation_decoding, **options)
    location, adapter, decoding = parse_model_name(indexed_as)
    return GLiNER2Extractor(schema, location, adapter=adapter, relation_decoding=decoding, **options)


class HybridRetriever:
    """Reads the index on first use (or ``open()``); keeps the BM25 index and the graph channel's matrix in
    memory, and the vector store open until ``close()``.

    Retrievers in one process share an embedded store; close them before another process
    (``kgbuild ingest``) writes to the same index.

    The graph channel finds the query's entities by name, without a model (about 7 s less per CLI
    call than loading GLiNER2). ``query_model=True``, or a ``model``, reads the query with the
    extractor instead (``extractor`` where given, else the index's GLiNER2 model). ``hops`` bounds the
    explanation paths (2 x hops steps back from a chunk to a seed); PPR itself is not cut off. ``graph_settings``
    (``GraphChannelSettings``) and ``weights`` (per channel, for the fusion of a query that names a document's
    title; ``weights_without_title`` for one that names none, ``weights`` too when only they are given)
    override the tuned defaults;
    ``retrieval_graph`` replaces the stored graph (benchmarks, tests). ``community_context`` gives each hit the id,
    level, title, top entities and terms of its communities (``QueryHit.community_context``; ``kgbuild.communities``),
    and ``retrieve(..., communities=[id])`` keeps chunks of those communities only.
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
        retrieval_graph: RetrievalGraph | None = None,
        graph_settings: GraphChannelSettings | None = None,
        weights: Mapping[str, float] | None = None,
        weights_without_title: Mapping[str, float] | None = None,
        community_context: bool = False,
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
        self._retrieval_graph = retrieval_graph
        self._graph_settings = graph_settings
        self.weights = dict(CHANNEL_WEIGHTS if weights is None else weights)
        if weights_without_title is None:
            weights_without_title = WITHOUT_TITLE_WEIGHTS if weights is None else weights
        self.weights_without_title = dict(weights_without_title)
        self.fusion_weights: dict[str, float] = {}  # the weights the last retrieve() fused with
        self.community_context = community_context  # each hit with the titles and top entities of its communities
        self.graph_channel: GraphChannel | None = None
        self.timings: dict[str, float] = {}  # seconds of the last retrieve() per channel (benchmarks)
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

        self.resolve_entity = EntityKeyResolver(self.index)  # --entity filters, resolved as ingest resolves names
        from kgbuild.communities import community_resolver

        self.resolve_community = community_resolver(self.index.out_dir)  # --community filters
        self.schema = ExtractionSchema.model_validate(self.manifest.schema_definition or {"name": "unknown"})
        self._vector_sink = self.index.vector_sink()
        # held until close(): opening an embedded store costs far more than a query, and it admits one
        # process at a time, so close the retriever before ingesting into the same index. It opens in a thread
        # while the retrieval folder is read: at 100,000 chunks each takes a second or more, and qdrant-edge's
        # load releases the GIL (BENCHMARKS.md, "graph-latency")
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="kgbuild-open") as pool:
            opening = pool.submit(self._vector_sink.open)
            try:
                stored = self._read_stored()
            finally:
                try:
                    opening.result()
                except BaseException:
                    self._vector_sink.close()
                    raise
        self._open = True
        try:
            self._open_stored(stored)
        except BaseException:
            self.close()
            raise
        if self._embedder is None and (self.enabled["vector"] or self.enabled["graph"]):
            self._embedder = query_embedder(self.manifest.embedding_model or self.settings.embedding_model)
        self._matcher: EntityMatcher | None = None
        if self.enabled["graph"]:
            from kgbuild.retrieve.ppr import GraphChannel, GraphChannelSettings

            graph = self._retrieval_graph if self._retrieval_graph is not None else self._stored_graph
            assert graph is not None
            settings = self._graph_settings or GraphChannelSettings(explain_depth=max(1, 2 * self.hops))
            self.graph_channel = GraphChannel(graph, settings)
            if self.query_model:
                from kgbuild.retrieve.entities import EntityMatcher
                from kgbuild.types import Entity

                self._matcher = EntityMatcher({e.id: Entity(e.id, e.type, e.key, e.name, list(e.aliases), 0, e.confidence)
                                               for e in graph.entities})
        return self

    def _read_stored(self) -> tuple[Any, Any, Any] | None:
        """(chunk table, BM25 index, retrieval graph) that ingest stored under ``<out>/retrieval/`` where they
        describe the index's documents (opened in milliseconds: payloads are read on demand, BM25 is
        memory-mapped); None where there are none, or they describe other documents. Needs no open store, so it
        runs while the vector store opens; ``_open_stored`` then checks the vector count too."""
        from kgbuild.retrieve.graph_matrix import BM25_DIR, RetrievalGraph, retrieval_dir, same_documents, state_signature

        if not (self.enabled["bm25"] or self.enabled["graph"]):
            return None
        from kgbuild.retrieve.chunk_table import ChunkTable, PayloadList
        from kgbuild.retrieve.lexical import BM25ChunkIndex

        folder = retrieval_dir(self.index.out_dir)
        if not same_documents(RetrievalGraph.stored_signature(folder), state_signature(self.state, 0)):
            return None
        table = ChunkTable.open(folder)
        if table is None:
            return None
        from kgbuild.communities.model import WithCurrentCommunities

        table = WithCurrentCommunities(table, self.index.out_dir)  # the table's own `communities` lags an ingest
        bm25 = BM25ChunkIndex.load(folder / BM25_DIR, PayloadList(table)) if self.enabled["bm25"] else None
        graph = RetrievalGraph.load(folder) if self.enabled["graph"] and self._retrieval_graph is None else None
        return table, bm25, graph

    def _open_stored(self, stored: tuple[Any, Any, Any] | None) -> None:
        """The chunk payloads, BM25 index and retrieval graph ``_read_stored`` read; where there were none, or
        they describe another state of the index (built before they were stored, or changed since by
        ``kgbuild remove`` or a LlamaIndex writer), built now from the stores, and saved unless another process
        is writing the index. The vector channel alone needs none of it."""
        from kgbuild.retrieve.graph_matrix import RetrievalGraph, retrieval_dir, state_signature

        self._by_chunk: Mapping[str, dict[str, Any]] = {}
        self._bm25 = None
        self._stored_graph: RetrievalGraph | None = None
        if not (self.enabled["bm25"] or self.enabled["graph"]):
            return
        folder = retrieval_dir(self.index.out_dir)
        signature = state_signature(self.state, self._vector_sink.count())
        if stored is None or RetrievalGraph.stored_signature(folder) != signature:
            self._build_stored(folder, signature)
            return
        self._by_chunk, self._bm25, self._stored_graph = stored

    def _build_stored(self, folder: Any, signature: str) -> None:
        from kgbuild.errors import KgbuildError
        from kgbuild.retrieve.graph_matrix import build_retrieval_graph, state_chunk_ids
        from kgbuild.retrieve.lexical import BM25ChunkIndex
        from kgbuild.state import IndexLock

        started = time.perf_counter()
        points = list(self._vector_sink.export().points.values())
        payloads = {str(p.get("chunk_id")): p for p in points if p.get("chunk_id")}
        self._by_chunk = payloads
        if self.enabled["bm25"]:
            self._bm25 = BM25ChunkIndex([payloads[c] for c in sorted(payloads)], indexed_text)
        if self._embedder is None:
            self._embedder = query_embedder(self.manifest.embedding_model or self.settings.embedding_model)
        sink = self.index.graph_sink()
        sink.open()
        try:
            data = sink.entity_graph(mentions=False)  # the mention pairs come with the payloads
        finally:
            sink.close()
        graph = build_retrieval_graph(data, embedder=self._embedder, chunk_ids=state_chunk_ids(self.state), signature=signature,
                                      reuse_from=folder, payloads=payloads)
        self._stored_graph = graph
        lock = IndexLock(self.index.out_dir)
        try:
            lock.acquire()
        except KgbuildError:
            saved = "not saved: the index is being written"
        else:
            try:
                graph.save(folder, state=self.state)
                saved = f"saved in {folder}"
            except OSError as exc:
                saved = f"not saved ({exc})"
            finally:
                lock.release()
        log.warning("%s: no retrieval graph for the index as it stands (built before the graph channel stored one, or"
                    " changed since): built it from the stores in %.1f s, %s", self.index.out_dir,
                    time.perf_counter() - started, saved)

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
            self._extractor = build_query_extractor(self._model or "", self.schema, self.settings,
                                                    indexed_as=self.manifest.model)
        return self._extractor

    def query_entities(self, text: str) -> list[Seed]:
        """The canonical entities the query names, as graph seeds: by name (``SeedMatcher``), or (``query_model``)
        the extractor's mentions (same extractor and schema as at ingest) matched to them."""
        self.open()
        if self.graph_channel is None:
            return []
        if self._matcher is None:
            return self.graph_channel.matcher.find(text)
        from kgbuild.extract.base import link_extraction
        from kgbuild.retrieve.seeds import Seed

        raw = self.extractor.extract([text])[0]
        chunk = Chunk(id="query", doc_id="query", position=0, start=0, end=len(text), text=text, token_count=len(text.split()))
        mentions = link_extraction(chunk, raw, self.schema).mentions
        seeds = []
        for match in self._matcher.match_all((m.text, m.label) for m in mentions):
            index = self.graph_channel.entity_index(match.entity.id)
            if index is not None:
                seeds.append(Seed(index, match.entity.key, match.mention, match.how, match.weight))
        return seeds

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
        communities: Sequence[str] = (),
    ) -> list[QueryHit]:
        """The ``k`` best chunks by weighted reciprocal rank fusion of the enabled channels."""
        if k < 1:
            raise ConfigError(f"-k must be at least 1, got {k}")
        if not text.strip():
            raise ConfigError("the query text is empty")
        self.open()
        if query_filter is None:
            from kgbuild.paths import documents_as_stored

            docs = documents_as_stored(self.state, docs)
            query_filter = build_filter(self.manifest, entities=entities, types=types, classes=classes, docs=docs, doc_ids=doc_ids,
                                        resolve_entity=self.resolve_entity, communities=communities,
                                        resolve_community=self.resolve_community)
        limit = max(self.candidates, k)
        rankings: dict[str, list[str]] = {}
        reasons: dict[str, list[RetrievalReason]] = {}
        candidates: dict[str, _Candidate] = {}
        timings: dict[str, float] = {}

        def add(channel: str, chunk_id: str, payload: dict[str, Any] | None, point_id: str, reason: RetrievalReason) -> None:
            rankings.setdefault(channel, []).append(chunk_id)
            reasons.setdefault(chunk_id, []).append(reason)
            known = candidates.get(chunk_id)
            if known is None or (known.payload is None and payload is not None):
                candidates[chunk_id] = _Candidate(payload, point_id)

        channel = self.graph_channel if self.enabled["graph"] else None
        graph_settings = channel.settings if channel is not None else None
        want_passages = channel is not None and graph_settings.passage_seeds > 0
        want_vector = self.enabled["vector"] or want_passages or (channel is not None and graph_settings.embedding_seeds > 0)
        query_vector = None
        graph_ranking = None
        self._explain_s = 0.0
        found: list[VectorHit] = []
        started = time.perf_counter()
        if want_vector:
            assert self._embedder is not None and self._vector_sink is not None
            query_vector = self._embedder.embed([text])[0]
        if self.enabled["vector"] or want_passages:
            found = self._vector_sink.search(query_vector, query_filter, limit)
        timings["vector"] = time.perf_counter() - started
        if self.enabled["vector"]:
            for rank, hit in enumerate(found, 1):
                chunk_id = str(hit.payload.get("chunk_id") or hit.point_id)
                add("vector", chunk_id, hit.payload, hit.point_id, RetrievalReason("vector", rank, round(hit.score, 6)))
        if channel is not None:
            started = time.perf_counter()
            named = self.query_entities(text) if self._matcher is not None else None
            passages = [(str(h.payload.get("chunk_id") or h.point_id), float(h.score)) for h in found]

            def allowed(chunk_id: str) -> bool:
                if chunk_id not in self._by_chunk:
                    return False
                return query_filter.is_empty() or query_filter.matches(self._by_chunk[chunk_id])

            graph_ranking = channel.rank(text, query_vector=query_vector, passages=passages, limit=limit, allowed=allowed,
                                         named=named)
            for rank, (chunk_id, score) in enumerate(graph_ranking.hits, 1):
                # the payload is read, and the path found, for the hits returned only (below)
                add("graph", chunk_id, None, chunk_id, RetrievalReason("graph", rank, round(score, 6)))
            timings["graph"] = time.perf_counter() - started
        if self.enabled["bm25"] and self._bm25 is not None:
            started = time.perf_counter()
            for rank, (index, score) in enumerate(self._bm25.search(text, limit, query_filter), 1):
                chunk_id = self._bm25.chunk_id(index)
                add("bm25", chunk_id, None, chunk_id, RetrievalReason("bm25", rank, round(score, 6)))
            timings["bm25"] = time.perf_counter() - started

        hits: list[QueryHit] = []
        names_a_title = False
        if graph_ranking is not None:
            from kgbuild.retrieve.graph_matrix import TITLE  # loaded with the graph channel already

            names_a_title = any(seed.key.startswith(f"{TITLE}:") for seed in graph_ranking.seeds)
        self.fusion_weights = self.weights if names_a_title else self.weights_without_title
        for chunk_id, score in reciprocal_rank_fusion(rankings, weights=self.fusion_weights)[:k]:
            candidate = candidates[chunk_id]
            payload = candidate.payload if candidate.payload is not None else self._by_chunk[chunk_id]
            hit = hit_from_payload(VectorHit(candidate.point_id, score, payload), query_filter.all_entity_keys)
            hit.reasons = sorted((self._explained(r, chunk_id, graph_ranking) for r in reasons[chunk_id]),
                                 key=lambda r: CHANNELS.index(r.channel))
            hits.append(hit)
        if graph_ranking is not None:
            timings["graph"] += self._explain_s
        self.timings = timings
        if self.community_context:
            from kgbuild.communities.model import add_community_context

            add_community_context(hits, self.index.out_dir)
        return hits

    def _explained(self, reason: RetrievalReason, chunk_id: str, ranking: Any) -> RetrievalReason:
        """A graph reason with its seed and path (computed for the hits returned only)."""
        if reason.channel != "graph" or ranking is None:
            return reason
        started = time.perf_counter()
        entity, path = ranking.explain(chunk_id)
        self._explain_s += time.perf_counter() - started
        return RetrievalReason("graph", reason.rank, reason.score, entity or None, path)


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
    communities: Sequence[str] = (),
    community_context: bool = False,
) -> list[QueryHit]:
    """One hybrid query (``kgbuild query --hybrid``); see ``HybridRetriever`` to run many."""
    with HybridRetriever(settings, vector=vector, graph=graph, bm25=bm25, hops=hops, model=model, query_model=query_model,
                         extractor=extractor, community_context=community_context) as retriever:
        return retriever.retrieve(text, k=k, entities=entities, types=types, classes=classes, docs=docs, communities=communities)
