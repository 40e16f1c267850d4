"""The entity graph as NetworkX (``EntityGraph``: notebooks and views walk it), and ``GraphHit``, what the graph
channel returns. The graph channel of hybrid retrieval itself is ``kgbuild.retrieve.ppr`` (personalised
PageRank over the stored sparse matrix of ``kgbuild.retrieve.graph_matrix``); ``EntityGraph.expand`` is the
earlier NetworkX version, kept for the notebooks.

The graph is read from the index's graph store through ``GraphSink.entity_graph()`` into one
undirected NetworkX graph of entity and chunk nodes: ``MENTIONS`` edges join a chunk to each
entity it mentions, relation edges (``CEO_OF``, ...) join entities. An entity is within k hops
of a query entity when k steps connect them, a step being a relation or a shared chunk.
``expand`` scores by personalised PageRank (``networkx.pagerank``, damping 0.85) over the subgraph of
the entities within k hops and the chunks that mention them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Mapping

from kgbuild.types import Entity, EntityGraphData

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

MENTIONED_IN = "MENTIONED_IN"
DAMPING = 0.85


@dataclass(frozen=True, slots=True)
class GraphHit:
    chunk_id: str
    score: float
    entity: str  # key of the query entity the best path starts from
    path: tuple[str, ...]  # entity key, edge label, entity key, ..., MENTIONED_IN, chunk id


def _new_graph() -> nx.Graph:
    import networkx as nx  # about 0.3 s to import: only where a graph is built

    return nx.Graph()


@dataclass(slots=True)
class EntityGraph:
    """Entities, chunks, and the edges between them, for matching and expansion."""

    entities: dict[str, Entity] = field(default_factory=dict)
    graph: nx.Graph = field(default_factory=_new_graph)  # nodes: entity ids and chunk ids (attribute kind)

    @classmethod
    def from_data(cls, data: EntityGraphData) -> EntityGraph:
        """Built in the order the store gives (the PageRank sums, and so ties, depend on it)."""
        graph = cls()
        for entity in data.entities.values():
            graph.add_entity(entity)
        for chunk_id, entity_id in data.mentions:
            graph.add_mention(chunk_id, entity_id)
        for head_id, label, tail_id in data.relations:
            graph.add_relation(head_id, label, tail_id)
        return graph

    def add_entity(self, entity: Entity) -> None:
        self.entities[entity.id] = entity
        self.graph.add_node(entity.id, kind="Entity")

    def add_mention(self, chunk_id: str, entity_id: str) -> None:
        if entity_id in self.entities:
            self.graph.add_node(chunk_id, kind="Chunk")
            self.graph.add_edge(chunk_id, entity_id, label=MENTIONED_IN)

    def add_relation(self, head_id: str, label: str, tail_id: str) -> None:
        if head_id in self.entities and tail_id in self.entities and head_id != tail_id:
            self.graph.add_edge(head_id, tail_id, label=label)

    def chunks_of(self, entity_id: str) -> list[str]:
        return [n for n in self.graph.neighbors(entity_id) if self.graph.nodes[n]["kind"] == "Chunk"]

    def entities_of(self, chunk_id: str) -> list[str]:
        return [n for n in self.graph.neighbors(chunk_id) if self.graph.nodes[n]["kind"] == "Entity"]

    def _entity_steps(self, entity_id: str) -> Iterable[tuple[str, str]]:
        """(neighbour entity, how): through a relation, or through a chunk that mentions both."""
        for n in self.graph.neighbors(entity_id):
            if self.graph.nodes[n]["kind"] == "Entity":
                yield n, self.graph.edges[entity_id, n]["label"]
        for chunk in self.chunks_of(entity_id):
            for n in self.entities_of(chunk):
                if n != entity_id:
                    yield n, f"CO_MENTIONED[{chunk}]"

    def expand(self, seeds: Mapping[str, float], hops: int = 2, limit: int = 10) -> list[GraphHit]:
        """Chunks that mention the seed entities or entities within ``hops`` of them, ranked by PPR."""
        if hops < 0:
            raise ValueError(f"hops must be 0 or more, got {hops}")
        seeds = {e: w for e, w in seeds.items() if e in self.entities and w > 0}
        if not seeds:
            return []
        # breadth-first over entities: the shortest path from the nearest seed explains each one
        parent: dict[str, tuple[str, str] | None] = {e: None for e in seeds}
        depth = {e: 0 for e in seeds}
        frontier = deque(sorted(seeds))
        while frontier:
            current = frontier.popleft()
            if depth[current] == hops:
                continue
            for neighbour, how in sorted(self._entity_steps(current)):
                if neighbour not in depth:
                    depth[neighbour] = depth[current] + 1
                    parent[neighbour] = (current, how)
                    frontier.append(neighbour)
        nodes = set(depth)
        for entity_id in depth:
            nodes.update(self.chunks_of(entity_id))
        import networkx as nx

        sub = self.graph.subgraph(nodes)
        total = sum(seeds.values())
        ranks = nx.pagerank(sub, alpha=DAMPING, personalization={e: w / total for e, w in seeds.items()})
        hits = []
        for node, score in ranks.items():
            if sub.nodes[node]["kind"] != "Chunk":
                continue
            # explain the chunk through its entity nearest to a seed
            via = min(self.entities_of(node), key=lambda e: (depth.get(e, hops + 1), -ranks.get(e, 0.0), e))
            hits.append(GraphHit(node, score, *self._explain(via, node, parent)))
        hits.sort(key=lambda h: (-h.score, h.chunk_id))
        return hits[:limit]

    def _explain(self, entity_id: str, chunk_id: str, parent: dict[str, tuple[str, str] | None]) -> tuple[str, tuple[str, ...]]:
        path: list[str] = [self.entities[entity_id].key, MENTIONED_IN, chunk_id]
        node = entity_id
        while parent.get(node) is not None:
            previous, how = parent[node]  # type: ignore[misc]
            path = [self.entities[previous].key, how, *path]
            node = previous
        return self.entities[node].key, tuple(path)
