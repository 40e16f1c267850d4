"""The graph channel: personalised PageRank over the stored retrieval graph, seeded from the query.

Seeds (restart mass), no model pass:

- **entities** the query names (``SeedMatcher``: exact names and aliases, strict fuzzy matches), and the
  entities whose name embeddings are nearest the query's embedding (the top ``embedding_seeds`` with a
  cosine of at least ``embedding_threshold``, at ``embedding_weight`` x cosine); each weighted by its
  specificity (IDF over documents), so "2011" or "American" seed little;
- **passages** the dense channel ranked first (the top ``passage_seeds`` chunk scores, min-max scaled
  over the dense candidates); they get ``passage_share`` of the restart mass where there are entity
  seeds, all of it where there are none.

PPR by power iteration on the sparse matrix (scipy): ``r <- (1 - d) s + d A D^-1 r`` with ``A`` the
symmetric weighted adjacency of chunks and entities (``kgbuild.retrieve.graph_matrix``) and ``D`` its
column sums, ``d = damping``, until the change is below ``tolerance`` or after ``iterations`` steps.
Chunks are ranked by their PPR mass. Each returned chunk is explained by a short path (breadth-first
from the chunk to the nearest seed, heaviest neighbours first, at most ``explain_depth`` steps),
computed only for the hits returned.

The defaults below were chosen on the development set (BENCHMARKS.md, "graph channel").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from kgbuild.retrieve.graph import MENTIONED_IN, GraphHit
from kgbuild.retrieve.graph_matrix import RetrievalGraph
from kgbuild.retrieve.seeds import Seed, SeedMatcher

MENTIONS = "MENTIONS"
SYNONYM = "SYNONYM"
CO_MENTIONED = "CO_MENTIONED"


@dataclass(frozen=True, slots=True)
class GraphChannelSettings:
    damping: float = 0.5  # share of the mass that walks on at each step (HippoRAG 2 uses 0.5)
    iterations: int = 30
    tolerance: float = 1e-7  # L1 change that ends the iteration early
    relation_weight: float = 1.0
    cooccurrence_weight: float = 0.1
    synonym_weight: float = 1.0  # x the names' cosine
    idf: bool = True  # specificity on chunk-entity edges, co-occurrence and entity seeds
    passage_seeds: int = 5
    passage_share: float = 0.05
    embedding_seeds: int = 3
    embedding_threshold: float = 0.6
    embedding_weight: float = 0.5
    fuzzy: bool = True
    explain_depth: int = 4

    def without(self, *components: str) -> GraphChannelSettings:
        """For ablations: ``without("synonyms", "passage_seeds")``."""
        off = {"synonyms": {"synonym_weight": 0.0}, "cooccurrence": {"cooccurrence_weight": 0.0},
               "relations": {"relation_weight": 0.0}, "idf": {"idf": False}, "passage_seeds": {"passage_seeds": 0},
               "embedding_seeds": {"embedding_seeds": 0}, "fuzzy": {"fuzzy": False}}
        changes: dict = {}
        for c in components:
            changes.update(off[c])
        return replace(self, **changes)


class PPRGraph:
    """The transition of one retrieval graph under one set of weights: ``A`` (CSR, float32) and ``1 / D``."""

    def __init__(self, graph: RetrievalGraph, settings: GraphChannelSettings):
        from scipy import sparse

        self.graph = graph
        self.n_chunks, self.n_entities = len(graph.chunk_ids), len(graph.entities)
        spec = graph.specificity() if settings.idf else np.ones(self.n_entities, np.float32)
        self.specificity = spec
        d = sparse.diags(spec)
        ce = (graph.chunk_entity @ d).astype(np.float32)
        ee = sparse.csr_matrix((self.n_entities, self.n_entities), dtype=np.float32)
        if settings.relation_weight:
            ee = ee + settings.relation_weight * graph.relations
        if settings.cooccurrence_weight:
            ee = ee + settings.cooccurrence_weight * (d @ graph.cooccurrence @ d)
        if settings.synonym_weight:
            ee = ee + settings.synonym_weight * graph.synonyms
        self.synonyms_on = bool(settings.synonym_weight)
        self.cooccurrence_on = bool(settings.cooccurrence_weight)
        adjacency = sparse.bmat([[None, ce], [ce.T, ee]], format="csr",
                                dtype=np.float32) if self.n_chunks + self.n_entities else sparse.csr_matrix((0, 0))
        adjacency.sort_indices()
        self.adjacency = adjacency
        degree = np.asarray(adjacency.sum(axis=0)).ravel()
        self.inv_degree = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0).astype(np.float32)

    def run(self, restart: np.ndarray, damping: float, iterations: int, tolerance: float) -> np.ndarray:
        """Power iteration from the restart distribution (summing to 1); returns the PPR vector."""
        r = restart.astype(np.float32, copy=True)
        base = (1.0 - damping) * restart.astype(np.float32)
        for _ in range(iterations):
            nxt = base + damping * (self.adjacency @ (r * self.inv_degree))
            change = float(np.abs(nxt - r).sum())
            r = nxt
            if change < tolerance:
                break
        return r


class GraphChannel:
    """Seeds, PPR and explanations over one stored retrieval graph.

    >>> channel = GraphChannel(RetrievalGraph.load(out_dir / "retrieval"))
    >>> channel.search("Which device does the firm headed by Mara Lindqvist build?", limit=5)
    """

    def __init__(self, graph: RetrievalGraph, settings: GraphChannelSettings | None = None):
        self.graph = graph
        self.settings = settings or GraphChannelSettings()
        self.ppr = PPRGraph(graph, self.settings)
        self.matcher = SeedMatcher(graph.entities, fuzzy=self.settings.fuzzy)
        self._index_by_id = {e.id: i for i, e in enumerate(graph.entities)}

    def with_settings(self, settings: GraphChannelSettings) -> GraphChannel:
        return GraphChannel(self.graph, settings)

    def entity_index(self, entity_id: str) -> int | None:
        return self._index_by_id.get(entity_id)

    # -- seeds -----------------------------------------------------------------------------------

    def entity_seeds(self, text: str, query_vector: Sequence[float] | None = None,
                     named: Sequence[Seed] | None = None) -> list[Seed]:
        """Entities the query names (or ``named``: the query model's matches), then the nearest names by embedding."""
        seeds = list(self.matcher.find(text) if named is None else named)
        s = self.settings
        vectors = self.graph.name_vectors
        if s.embedding_seeds and query_vector is not None and vectors.size:
            q = np.asarray(query_vector, dtype=np.float32)
            q /= float(np.linalg.norm(q)) or 1.0
            sims = vectors @ q
            top = np.argsort(-sims, kind="stable")[: s.embedding_seeds]
            have = {seed.index for seed in seeds}
            for i in top:
                if sims[i] >= s.embedding_threshold and int(i) not in have:
                    seeds.append(Seed(int(i), self.graph.entities[i].key, "", "embedding",
                                      round(float(sims[i]) * s.embedding_weight, 4)))
        return seeds

    def restart(self, seeds: Sequence[Seed], passages: Sequence[tuple[str, float]]) -> np.ndarray:
        s = self.settings
        vec = np.zeros(self.ppr.n_chunks + self.ppr.n_entities, np.float64)
        ent = np.zeros_like(vec)
        for seed in seeds:
            ent[self.ppr.n_chunks + seed.index] += seed.weight * float(self.ppr.specificity[seed.index])
        pas = np.zeros_like(vec)
        if s.passage_seeds and passages:
            scores = np.array([score for _, score in passages], dtype=np.float64)
            low, high = float(scores.min()), float(scores.max())
            index = self.graph.chunk_index
            for chunk, score in passages[: s.passage_seeds]:
                i = index.get(chunk)
                if i is not None:
                    pas[i] += (score - low) / (high - low) if high > low else 1.0
        e_total, p_total = ent.sum(), pas.sum()
        if e_total > 0 and p_total > 0:
            vec = (1 - s.passage_share) * ent / e_total + s.passage_share * pas / p_total
        elif e_total > 0:
            vec = ent / e_total
        elif p_total > 0:
            vec = pas / p_total
        return vec

    # -- the query -------------------------------------------------------------------------------

    def search(self, text: str, *, query_vector: Sequence[float] | None = None,
               passages: Sequence[tuple[str, float]] = (), limit: int = 10,
               allowed: Callable[[str], bool] | None = None, named: Sequence[Seed] | None = None) -> list[GraphHit]:
        """The ``limit`` best chunks by PPR mass (those ``allowed`` accepts), each with its explanation."""
        seeds = self.entity_seeds(text, query_vector, named)
        restart = self.restart(seeds, passages)
        if not restart.any() or limit < 1:
            return []
        s = self.settings
        ranks = self.ppr.run(restart, s.damping, s.iterations, s.tolerance)
        chunk_scores = ranks[: self.ppr.n_chunks]
        nonzero = int(np.count_nonzero(chunk_scores))
        want = min(nonzero, limit if allowed is None else max(4 * limit, 64))
        chosen: list[int] = []
        while True:
            top = np.argpartition(-chunk_scores, want - 1)[:want] if want < len(chunk_scores) else np.arange(len(chunk_scores))
            top = sorted((int(i) for i in top if chunk_scores[i] > 0), key=lambda i: (-chunk_scores[i], self.graph.chunk_ids[i]))
            chosen = [i for i in top if allowed is None or allowed(self.graph.chunk_ids[i])][:limit]
            if len(chosen) == limit or want >= nonzero:
                break
            want = min(nonzero, want * 4)
        entity_seeds = {self.ppr.n_chunks + seed.index: seed for seed in seeds}
        passage_seeds = {i for i in np.flatnonzero(restart[: self.ppr.n_chunks])}
        hits = []
        for i in chosen:
            entity, path = self.explain(i, ranks, entity_seeds, passage_seeds)
            hits.append(GraphHit(self.graph.chunk_ids[i], float(chunk_scores[i]), entity, path))
        return hits

    # -- explanations ----------------------------------------------------------------------------

    def _label(self, node: int) -> str:
        n = self.ppr.n_chunks
        return self.graph.chunk_ids[node] if node < n else self.graph.entities[node - n].key

    def _edge(self, a: int, b: int) -> str:
        """The label of the step a -> b (towards the chunk)."""
        n = self.ppr.n_chunks
        if a < n:
            return MENTIONS
        if b < n:
            return MENTIONED_IN
        label = int(self.graph.relation_labels[a - n, b - n])
        if label:
            return self.graph.labels[label - 1]
        if self.ppr.synonyms_on and self.graph.synonyms[a - n, b - n] > 0:
            return SYNONYM
        return CO_MENTIONED

    def explain(self, chunk: int, ranks: np.ndarray, entity_seeds: dict[int, Seed],
                passage_seeds: set[int]) -> tuple[str, tuple[str, ...]]:
        """(the seed entity's key, or "" for a passage seed; path from the seed to the chunk)."""
        if chunk in passage_seeds and not entity_seeds:
            return "", (self.graph.chunk_ids[chunk],)
        a = self.ppr.adjacency
        parent: dict[int, int] = {chunk: -1}
        frontier = [chunk]
        found = -1
        fallback = chunk if chunk in passage_seeds else -1
        for _ in range(self.settings.explain_depth):
            nxt: list[int] = []
            for node in frontier:
                neighbours = a.indices[a.indptr[node]:a.indptr[node + 1]]
                # heaviest by PPR mass first; a hub's long tail is not worth walking
                order = neighbours[np.argsort(-ranks[neighbours], kind="stable")[:32]]
                for m in order:
                    m = int(m)
                    if m in parent:
                        continue
                    parent[m] = node
                    if m in entity_seeds:
                        found = m
                        break
                    if fallback < 0 and m in passage_seeds:
                        fallback = m
                    nxt.append(m)
                if found >= 0:
                    break
            if found >= 0 or not nxt:
                break
            frontier = nxt
        start = found if found >= 0 else fallback
        if start < 0:
            return "", (self.graph.chunk_ids[chunk],)
        path = [self._label(start)]
        node = start
        while node != chunk:
            step = parent[node]
            path += [self._edge(node, step), self._label(step)]
            node = step
        entity = self._label(start) if start >= self.ppr.n_chunks else ""
        return entity, tuple(path)
