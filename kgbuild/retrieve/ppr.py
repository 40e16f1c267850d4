"""The graph channel: personalised PageRank over the stored retrieval graph, seeded from the query.

Seeds (restart mass), no model pass:

- **entities** the query names (``SeedMatcher``: exact names and aliases, strict fuzzy matches), and,
  among the entities of the dense channel's candidate passages, those whose name embeddings are nearest
  the query's embedding (the top ``embedding_seeds`` with a cosine of at least ``embedding_threshold``,
  at ``embedding_weight`` x cosine); each weighted by its
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
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from kgbuild.retrieve.graph import MENTIONED_IN, GraphHit
from kgbuild.retrieve.graph_matrix import RetrievalGraph
from kgbuild.retrieve.seeds import Seed, SeedMatcher

TRANSITION = "transition.npz"
MENTIONS = "MENTIONS"
_EXPLAIN_FRONTIER = 16  # nodes per level an explanation walks on from (the heaviest by PPR mass)
SYNONYM = "SYNONYM"
CO_MENTIONED = "CO_MENTIONED"


@dataclass(frozen=True, slots=True)
class GraphChannelSettings:
    """The channel's settings; the defaults were chosen on the development set (bench/data/wikihop, its first 300
    questions; BENCHMARKS.md "graph channel", whose table shows each component switched off or on, on the 340 of
    the set's current version, where every choice below holds):

    - damping 0.7: R@5 0.965 at 0.5, 0.977 at 0.7, 0.980 at 0.85 (slower: more steps), R@2 flat;
    - passage seeds only for a query that names no entity (``passage_share`` 0): with entity seeds, even 2% of
      the restart mass on the dense passages costs the fusion 9 points of R@2, the dense channel counting twice;
    - embedding seeds off (``embedding_seeds`` 0): on, they cost 3 points of R@2 (names near the whole
      question are seldom the entity it asks about); kept for corpora whose questions paraphrase names;
    - synonym edges off (``synonym_weight`` 0; stored all the same): on (weight 1 x cosine), they cost a point
      of R@2 and R@5: names of different people that embed alike ("John Smith" / "John Smyth") are joined;
    - ``prune`` 1e-5: recall unchanged from 1e-6, a third less time at 10,000 chunks.
    """

    damping: float = 0.7  # share of the mass that walks on at each step
    iterations: int = 30
    tolerance: float = 1e-4  # mass still walking that ends the iteration (of 1)
    prune: float = 1e-5  # mass below which a node stops walking (bounds the error; keeps each step local)
    relation_weight: float = 1.0
    cooccurrence_weight: float = 0.1
    synonym_weight: float = 0.0  # x the names' cosine (the edges are stored; 1.0 switches them on)
    idf: bool = True  # specificity on chunk-entity edges, co-occurrence and entity seeds
    passage_seeds: int = 5  # the dense channel's best passages that seed (all the mass when no entity is named)
    passage_share: float = 0.0  # of the restart mass, where the query names entities too
    embedding_seeds: int = 0
    embedding_threshold: float = 0.6
    embedding_weight: float = 0.5
    fuzzy: bool = True
    explain_depth: int = 4  # steps from the chunk back to a seed: entity, entity or chunk, entity, entity

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
        self.synonyms_on = bool(settings.synonym_weight)
        self.cooccurrence_on = bool(settings.cooccurrence_weight)
        self.key = _transition_key(settings)
        if graph.folder is not None and self._load(graph.folder):
            return
        d = sparse.diags(spec)
        ce = (graph.chunk_entity @ d).astype(np.float32)
        ee = sparse.csr_matrix((self.n_entities, self.n_entities), dtype=np.float32)
        if settings.relation_weight:
            ee = ee + settings.relation_weight * graph.relations
        if settings.cooccurrence_weight:
            ee = ee + settings.cooccurrence_weight * (d @ graph.cooccurrence @ d)
        if settings.synonym_weight:
            ee = ee + settings.synonym_weight * graph.synonyms
        adjacency = sparse.bmat([[None, ce], [ce.T, ee]], format="csr",
                                dtype=np.float32) if self.n_chunks + self.n_entities else sparse.csr_matrix((0, 0))
        adjacency.sort_indices()
        self.adjacency = adjacency
        degree = np.asarray(adjacency.sum(axis=0)).ravel()
        self.inv_degree = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0).astype(np.float32)

    def save(self, folder: Path) -> None:
        a = self.adjacency
        np.savez(folder / TRANSITION, key=np.array(self.key), data=a.data, indices=a.indices, indptr=a.indptr,
                 shape=np.array(a.shape, dtype=np.int64), inv_degree=self.inv_degree)

    def _load(self, folder: Path) -> bool:
        from scipy import sparse

        try:
            z = np.load(folder / TRANSITION)
        except OSError:
            return False
        with z:
            if str(z["key"]) != self.key:
                return False
            self.adjacency = sparse.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(int(x) for x in z["shape"]))
            self.inv_degree = z["inv_degree"]
        return True

    def run(self, restart: np.ndarray, damping: float, iterations: int, tolerance: float, prune: float = 0.0) -> np.ndarray:
        """PPR from the restart distribution (summing to 1), as the series ``(1 - d) sum_t (d P)^t s``: the same
        fixed point as power iteration on ``r <- (1 - d) s + d P r``, computed on the nodes that hold mass only.

        Each step multiplies the walking mass ``x`` by ``d P`` through the rows of the active nodes (``A`` is
        symmetric: its rows are its columns), drops entries below ``prune`` (their sum bounds the error), and
        stops when the mass still walking is below ``tolerance`` or after ``iterations`` steps."""
        a = self.adjacency
        n = a.shape[0]
        r = np.zeros(n, np.float32)
        active = np.flatnonzero(restart)
        x = restart[active].astype(np.float32)
        r[active] += (1.0 - damping) * x
        for _ in range(iterations):
            if not active.size or float(x.sum()) < tolerance:
                break
            walking = damping * x * self.inv_degree[active]
            y = a[active].T @ walking if active.size < n // 4 else a @ _scatter(n, active, walking)
            active = np.flatnonzero(y > prune) if prune > 0 else np.flatnonzero(y)
            x = y[active].astype(np.float32)
            r[active] += (1.0 - damping) * x
        return r


def _transition_key(settings: GraphChannelSettings) -> str:
    """What the adjacency depends on (a stored one is used only under the same)."""
    return (f"relation={settings.relation_weight} cooccurrence={settings.cooccurrence_weight}"
            f" synonym={settings.synonym_weight} idf={settings.idf}")


def _scatter(n: int, index: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.zeros(n, np.float32)
    out[index] = values
    return out


@dataclass(slots=True)
class GraphRanking:
    """One query's PPR: the seeds, the mass of every node, the best chunks; ``explain`` a chunk on demand."""

    channel: GraphChannel
    seeds: list[Seed]
    ranks: np.ndarray
    hits: list[tuple[str, float]]  # (chunk id, PPR mass), best first
    restart: np.ndarray

    def explain(self, chunk_id: str) -> tuple[str, tuple[str, ...]]:
        """(seed entity key or "", path from the seed to the chunk)."""
        channel = self.channel
        n = channel.ppr.n_chunks
        entity_mask = np.zeros(len(self.restart), dtype=bool)
        for seed in self.seeds:
            entity_mask[n + seed.index] = True
        passage_mask = np.zeros(len(self.restart), dtype=bool)
        passage_mask[:n] = self.restart[:n] > 0
        return channel.explain(channel.graph.chunk_index[chunk_id], self.ranks, entity_mask, passage_mask)


class GraphChannel:
    """Seeds, PPR and explanations over one stored retrieval graph.

    >>> channel = GraphChannel(RetrievalGraph.load(out_dir / "retrieval"))
    >>> channel.search("Which device does the firm headed by Mara Lindqvist build?", limit=5)
    """

    def __init__(self, graph: RetrievalGraph, settings: GraphChannelSettings | None = None):
        self.graph = graph
        self.settings = settings or GraphChannelSettings()
        self.ppr = PPRGraph(graph, self.settings)
        stored = SeedMatcher.load(graph.folder, graph.entities, fuzzy=self.settings.fuzzy) if graph.folder else None
        self.matcher = stored or SeedMatcher(graph.entities, fuzzy=self.settings.fuzzy)
        self._index_by_id = {e.id: i for i, e in enumerate(graph.entities)}

    def with_settings(self, settings: GraphChannelSettings) -> GraphChannel:
        return GraphChannel(self.graph, settings)

    def entity_index(self, entity_id: str) -> int | None:
        return self._index_by_id.get(entity_id)

    # -- seeds -----------------------------------------------------------------------------------

    def entity_seeds(self, text: str, query_vector: Sequence[float] | None = None,
                     named: Sequence[Seed] | None = None, near: Sequence[str] = ()) -> list[Seed]:
        """Entities the query names (or ``named``: the query model's matches), then the nearest names by embedding
        among the entities that the chunks ``near`` (the dense channel's candidates) mention: comparing the query
        with every name is memory-bound (~5 ms per 15,000 names here, ~100 ms at 300,000), and a name that no
        candidate passage mentions seldom belongs to the question."""
        seeds = list(self.matcher.find(text) if named is None else named)
        s = self.settings
        vectors = self.graph.name_vectors
        if s.embedding_seeds and query_vector is not None and vectors.size:
            q = np.asarray(query_vector, dtype=np.float32)
            q /= float(np.linalg.norm(q)) or 1.0
            rows = [self.graph.chunk_index[c] for c in near if c in self.graph.chunk_index]
            candidates = np.unique(self.graph.chunk_entity[rows].indices) if rows else np.zeros(0, np.int64)
            sims = vectors[candidates] @ q
            k = min(s.embedding_seeds, len(candidates))
            top = np.argpartition(-sims, k - 1)[:k] if 0 < k < len(sims) else np.arange(len(sims))
            have = {seed.index for seed in seeds}
            for j in sorted(top, key=lambda j: (-sims[j], candidates[j])):
                i = int(candidates[j])
                if sims[j] >= s.embedding_threshold and i not in have:
                    seeds.append(Seed(i, self.graph.entities[i].key, "", "embedding", round(float(sims[j]) * s.embedding_weight, 4)))
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

    def rank(self, text: str, *, query_vector: Sequence[float] | None = None,
             passages: Sequence[tuple[str, float]] = (), limit: int = 10,
             allowed: Callable[[str], bool] | None = None, named: Sequence[Seed] | None = None) -> GraphRanking:
        """The ``limit`` best chunks by PPR mass (those ``allowed`` accepts); explanations on demand."""
        seeds = self.entity_seeds(text, query_vector, named, near=[chunk for chunk, _ in passages])
        restart = self.restart(seeds, passages)
        n = self.ppr.n_chunks
        if not restart.any() or limit < 1:
            return GraphRanking(self, seeds, np.zeros(0), [], restart)
        s = self.settings
        ranks = self.ppr.run(restart, s.damping, s.iterations, s.tolerance, s.prune)
        chunk_scores = ranks[:n]
        nonzero = int(np.count_nonzero(chunk_scores))
        want = min(nonzero, limit if allowed is None else max(4 * limit, 64))
        chosen: list[int] = []
        while want > 0:
            top = np.argpartition(-chunk_scores, want - 1)[:want] if want < n else np.arange(n)
            top = sorted((int(i) for i in top if chunk_scores[i] > 0), key=lambda i: (-chunk_scores[i], self.graph.chunk_ids[i]))
            chosen = [i for i in top if allowed is None or allowed(self.graph.chunk_ids[i])][:limit]
            if len(chosen) == limit or want >= nonzero:
                break
            want = min(nonzero, want * 4)
        return GraphRanking(self, seeds, ranks, [(self.graph.chunk_ids[i], float(chunk_scores[i])) for i in chosen], restart)

    def search(self, text: str, *, query_vector: Sequence[float] | None = None,
               passages: Sequence[tuple[str, float]] = (), limit: int = 10,
               allowed: Callable[[str], bool] | None = None, named: Sequence[Seed] | None = None) -> list[GraphHit]:
        """``rank`` with every hit explained."""
        ranking = self.rank(text, query_vector=query_vector, passages=passages, limit=limit, allowed=allowed, named=named)
        return [GraphHit(chunk, score, *ranking.explain(chunk)) for chunk, score in ranking.hits]

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

    def explain(self, chunk: int, ranks: np.ndarray, entity_seeds: np.ndarray,
                passage_seeds: np.ndarray) -> tuple[str, tuple[str, ...]]:
        """(the seed entity's key, or "" for a passage seed; the path from the seed to the chunk).

        Breadth-first from the chunk, level by level on the CSR rows (numpy, no per-edge Python), keeping
        the ``_EXPLAIN_FRONTIER`` heaviest nodes by PPR mass of each level: the nearest entity seed (the
        heaviest where several are as near), else the nearest passage seed. ``entity_seeds`` and
        ``passage_seeds`` are boolean masks over the nodes."""
        a = self.ppr.adjacency
        if passage_seeds[chunk] and not entity_seeds.any():
            return "", (self.graph.chunk_ids[chunk],)
        visited = np.zeros(a.shape[0], dtype=bool)
        visited[chunk] = True
        levels: list[tuple[np.ndarray, np.ndarray]] = []  # (nodes sorted, their parents) per level
        frontier = np.array([chunk])
        found = fallback = -1
        if passage_seeds[chunk]:
            fallback = chunk
        for _ in range(self.settings.explain_depth):
            starts, ends = a.indptr[frontier], a.indptr[frontier + 1]
            if int((ends - starts).sum()) == 0:
                break
            neighbours = np.concatenate([a.indices[b:e] for b, e in zip(starts, ends)])
            parents = np.repeat(frontier, ends - starts)
            # a node without PPR mass lies on no walk from a seed: skipping it keeps hubs' tails out
            fresh = ~visited[neighbours] & (ranks[neighbours] > 0)
            neighbours, parents = neighbours[fresh], parents[fresh]
            if not neighbours.size:
                break
            neighbours, first = np.unique(neighbours, return_index=True)  # the heaviest parent came first
            parents = parents[first]
            visited[neighbours] = True
            levels.append((neighbours, parents))
            seeds_here = neighbours[entity_seeds[neighbours]]
            if seeds_here.size:
                found = int(seeds_here[np.argmax(ranks[seeds_here])])
                break
            if fallback < 0:
                passages_here = neighbours[passage_seeds[neighbours]]
                if passages_here.size:
                    fallback = int(passages_here[np.argmax(ranks[passages_here])])
            if neighbours.size > _EXPLAIN_FRONTIER:
                neighbours = neighbours[np.argpartition(-ranks[neighbours], _EXPLAIN_FRONTIER - 1)[:_EXPLAIN_FRONTIER]]
            frontier = neighbours[np.argsort(-ranks[neighbours], kind="stable")]
        start = found if found >= 0 else fallback
        if start < 0:
            return "", (self.graph.chunk_ids[chunk],)

        def parent_of(node: int) -> int:
            for nodes, parents in levels:
                i = int(np.searchsorted(nodes, node))
                if i < len(nodes) and nodes[i] == node:
                    return int(parents[i])
            raise KeyError(node)  # pragma: no cover - every node on a level has a parent

        path = [self._label(start)]
        node = start
        while node != chunk:
            step = parent_of(node)
            path += [self._edge(node, step), self._label(step)]
            node = step
        entity = self._label(start) if start >= self.ppr.n_chunks else ""
        return entity, tuple(path)
