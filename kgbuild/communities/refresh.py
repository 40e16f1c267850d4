"""Keeping an index's communities in step with its retrieval graph: the stores and ``<out>/communities/``.

``refresh_communities`` runs at the end of each ingest, right after the retrieval graph (``IngestPipeline._finish``),
and after ``kgbuild remove``. It recomputes the communities whenever the signature stored with them differs from the
retrieval graph's (Leiden on the entity graph takes seconds: recomputing everything is cheap and exactly equal to a
fresh ingest), then writes, in this order: the graph store's ``Community`` nodes (only those that changed, for
Neo4j), the ``communities`` payload field of the chunks whose ids changed, a flush of both stores, and last the
folder with the new signature. A crash anywhere before that last rename leaves the old signature, so the next
ingest recomputes and rewrites (every step is idempotent).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

from kgbuild.communities.build import build_communities, graph_clusters, summary_vectors
from kgbuild.communities.detect import CommunityParams
from kgbuild.communities.model import CommunityIndex, communities_dir, stored_meta
from kgbuild.memory import release_heap

if TYPE_CHECKING:  # pragma: no cover
    from kgbuild.index import Index, Stores
    from kgbuild.retrieve.graph_matrix import RetrievalGraph

log = logging.getLogger("kgbuild")


def refresh_communities(index: Index, stores: Stores,
                        graph: RetrievalGraph | Callable[[], RetrievalGraph | None] | None = None, *,
                        payloads: Mapping[str, Mapping[str, Any]] | None = None, embedder: Any = None,
                        params: CommunityParams = CommunityParams(), rewritten: bool = False) -> CommunityIndex | None:
    """Recompute and store the communities where the retrieval graph changed since they were built; returns them,
    or None when the stored ones still describe it (or there is no retrieval graph to build from).

    ``graph``: the retrieval graph just built, or a function that builds it (then this function holds the only
    reference, and lets the graph go once the communities are built from it); else the stored one is loaded when
    needed. ``payloads``: the chunk
    payloads it was built from (else its chunk table: texts, paths, labels for the summaries); ``embedder``: embeds
    the summaries that changed (None: reused vectors only, see ``summary_vectors``). Only the chunks whose
    ``communities`` field differs from what the vector store holds (``VectorSink.chunk_communities``) are updated.
    ``rewritten``: the run wrote chunks again (their payloads hold no ``communities`` yet); where the stored
    communities still describe the graph (a document rewritten as it was, after a crash), those payloads are set
    from them.
    """
    from kgbuild.retrieve.graph_matrix import RetrievalGraph, retrieval_dir

    saved = graph is None or callable(graph)  # then the graph is (about to be) the one stored in the index
    if callable(graph):
        graph = graph()
    folder = communities_dir(index.out_dir)
    source = retrieval_dir(index.out_dir)
    signature = graph.signature if graph is not None else RetrievalGraph.stored_signature(source)
    if not signature:
        return None
    meta = stored_meta(folder)
    if meta is not None and meta.get("signature") == signature and meta.get("params") == params.to_dict():
        if rewritten:
            stored = CommunityIndex.load(folder)
            if stored is not None:
                stores.open()
                _set_payloads(stores, stored)
                stores.flush()
        return None
    started = time.perf_counter()
    if graph is None:
        graph = RetrievalGraph.load(source, map_vectors=True)
        if graph is None:
            return None
    clusters = None
    if saved:  # Leiden without the graph beside it (35 MiB at 10,000 chunks), which is then loaded again
        handed = [graph]
        del graph
        clusters = graph_clusters(handed.pop, params)
        graph = RetrievalGraph.load(source, map_vectors=True)
        if graph is None:
            return None
        if graph.signature != signature:  # not the graph the clusters came from: detected again on the one stored
            clusters = None
    if payloads is None:
        from kgbuild.retrieve.chunk_table import ChunkTable

        payloads = ChunkTable.open(source) or {}
    built = build_communities(graph, payloads, params, clusters)
    # what the build read from is not needed to store what it made (where this function made the graph, as an
    # ingest has it, nothing else holds it); kept, its matrices and the chunk table sat under the payload updates' peak
    del graph, payloads
    release_heap()  # see build_communities
    previous = CommunityIndex.load(folder)
    summary_vectors(built, embedder, previous)
    del previous
    release_heap()
    stores.open()
    stores.graph.replace_communities([c.record() for c in built.communities])
    release_heap()
    changed = _set_payloads(stores, built)
    release_heap()
    stores.flush()
    built.save(folder)
    release_heap()
    log.info("%s: %d communities on %d levels, %d chunk payloads updated, in %.1f s", index.out_dir, len(built),
             len(built.levels), len(changed), time.perf_counter() - started)
    return built


def _set_payloads(stores: Stores, communities: CommunityIndex) -> dict[str, list[str]]:
    """Set the ``communities`` field of every chunk whose value in the vector store differs; returns those set.
    What the store holds is read from it (that field alone): after a crash part-way through an earlier refresh,
    or documents written since, nothing else says which chunks hold what."""
    held = stores.vectors.chunk_communities()
    changed = {chunk: communities.chunk_communities.get(chunk, []) for chunk in sorted(held)
               if held[chunk] != communities.chunk_communities.get(chunk, [])}
    if changed:
        stores.vectors.set_chunk_communities(changed)
    return changed


def refresh_after_removal(index: Index, stores: Stores) -> CommunityIndex | None:
    """``kgbuild remove``: the communities of the index as it now stands, from a retrieval graph built in memory
    (without entity-name vectors, which communities do not use) over the stores. The next ingest or hybrid query
    builds and stores the full retrieval graph, with the same signature, so nothing is computed twice. Nothing
    is done for an index that has no communities yet (its next ingest builds them)."""
    from kgbuild.retrieve.graph_matrix import build_retrieval_graph, state_chunk_ids, state_signature

    if stored_meta(communities_dir(index.out_dir)) is None:
        return None
    stores.open()
    payloads = {str(p["chunk_id"]): p for p in stores.vectors.export().points.values() if p.get("chunk_id")}
    signature = state_signature(index.state, stores.vectors.count())
    graph = build_retrieval_graph(stores.graph.entity_graph(), chunk_ids=state_chunk_ids(index.state), signature=signature,
                                  payloads=payloads)
    return refresh_communities(index, stores, graph, payloads=payloads)
