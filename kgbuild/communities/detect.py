"""Communities of the entity graph: its weights, hierarchical Leiden, and the communities' ids.

The entity graph is built from the stored retrieval graph (``kgbuild.retrieve.graph_matrix``), entities only,
undirected:

- **relations**: ``relation_weight`` (1.0) per relation between two entities (either direction), times the same
  specificity factor as co-mention (below): a relation counts as much as sharing a chunk with nothing else in it;
- **co-mention**: two entities mentioned in the same chunk, ``(s_i * s_j)^2 / (n_c - 1)`` per shared chunk, where
  ``s`` is the entity's specificity (an IDF over documents, ``RetrievalGraph.specificity``: 1 for an entity of
  one document, small for "2011" that half the corpus mentions; squared, ``CommunityParams.specificity_power``,
  because on the five-topic Wikipedia corpus of bench/communities.py it gave purity 0.54 / NMI 0.21 where the
  plain product gave 0.50 / 0.19) and ``n_c`` the entities the chunk mentions
  (Newman's weighting of a bipartite projection: a chunk naming 30 entities does not tie each pair as tightly
  as one naming two). Hubs thus glue little, and every pair that shares a chunk counts (the retrieval graph's
  co-occurrence part keeps only pairs sharing two chunks, which is right for a walk, too sparse here).

``TITLE`` entities (documents' titles, which the retrieval graph adds) are left out: they are not extracted
entities (no graph store holds them, so no ``IN_COMMUNITY`` edge could name them), each is linked from every chunk
of its document, so it would be the most central member, the title and the id of most single-document
communities (a file name, where the document has no title of its own), and it usually duplicates the entity the
document is about, which co-mention already ties to the rest of the document. Measured with them in the graph
(and squared specificity), the five-topic corpus gave purity 0.576 / NMI 0.231 instead of 0.54 / 0.21.

Detection is graspologic-native's ``hierarchical_leiden`` (the Rust implementation Microsoft GraphRAG uses):
Leiden (modularity) on the whole graph gives level 0; every community larger than ``max_cluster_size`` is
split again by Leiden on its own subgraph, giving level 1, and so on, coarse to fine. A community that is
small enough has no children. Input is sorted (edges by entity id order) and the seed fixed, so the same
retrieval graph gives the same communities in every process. Entities with no edge belong to no community.

Ids (``community_ids``): ``c<level>-<hash>`` where the hash is of the community's **anchor**, its member with
the highest weighted degree inside the community (ties: the smaller entity id). At one level every entity is
in one community, so anchors never collide; a hash collision (8 hex digits) takes a longer hash, deciding in
anchor order. The id is thus a pure function of the communities, which is what makes an updated index equal
a fresh ingest, and it survives re-ingest whenever the community keeps its most central entity: the share
of communities that do is measured by ``python -m bench.communities`` (BENCHMARKS.md, "communities").
A dissolved community's id comes back only for a community around the same entity at the same level.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

EDGES_PER_PAGE = 65_536  # entity-graph edges turned into Leiden's Python rows at a time

if TYPE_CHECKING:  # pragma: no cover
    from scipy import sparse

    from kgbuild.retrieve.graph_matrix import RetrievalGraph


@dataclass(frozen=True, slots=True)
class CommunityParams:
    """How communities are detected; stored with them (another value recomputes them)."""

    resolution: float = 1.0  # Leiden's modularity resolution: higher, more and smaller communities
    max_cluster_size: int = 10  # a community larger than this is split at the next level (GraphRAG's default)
    relation_weight: float = 1.0
    specificity_power: float = 2.0  # co-mention weight (s_i * s_j)^p: a larger p lets hubs glue less (BENCHMARKS.md)
    seed: int = 20261130
    randomness: float = 0.001

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Cluster:
    """One community as detected: positions into ``EntityWeights.entities``."""

    level: int
    key: int  # the detector's cluster number
    parent_key: int | None
    members: np.ndarray  # entity positions (into the weights' entity list), sorted
    degree: np.ndarray | None = None  # weighted degree of each member inside the community (``inner_degrees``)
    anchor: int = -1  # position of its most central member
    id: str = ""
    parent: str = ""
    children: list[str] = field(default_factory=list)


@dataclass(slots=True)
class EntityWeights:
    """The weighted entity graph communities are detected on (``entity_weights``)."""

    entities: np.ndarray  # positions into RetrievalGraph.entities of the entities kept (TITLE left out)
    weights: sparse.csr_matrix  # kept x kept, symmetric, zero diagonal
    specificity: np.ndarray  # per kept entity


def entity_weights(graph: RetrievalGraph, params: CommunityParams = CommunityParams()) -> EntityWeights:
    """Relations plus specificity-weighted co-mention (see the module's docstring) over the non-TITLE entities."""
    from scipy import sparse

    from kgbuild.retrieve.graph_matrix import TITLE

    keep = np.array([i for i, e in enumerate(graph.entities) if e.type != TITLE], dtype=np.int64)
    spec = graph.specificity()[keep] if len(keep) else np.zeros(0, np.float32)
    n = len(keep)
    if n == 0:
        return EntityWeights(keep, sparse.csr_matrix((0, 0), dtype=np.float64), spec.astype(np.float64))
    mentions = graph.chunk_entity[:, keep].tocsr()
    mentions.data[:] = 1.0
    mentions.eliminate_zeros()
    per_chunk = np.asarray(mentions.sum(axis=1)).ravel()
    share = np.where(per_chunk > 1, 1.0 / np.maximum(per_chunk - 1, 1), 0.0)
    co = (mentions.T @ sparse.diags(share) @ mentions).tocsr()
    relations = graph.relations[keep][:, keep].tocsr().astype(np.float64) * params.relation_weight
    weights = (co + relations).tocsr()
    del co, relations
    # s @ weights @ s with s diagonal, in place: each entry times its row's and its column's specificity (the
    # products in the order the matrix products make them, so the floats are theirs)
    s = spec.astype(np.float64) ** params.specificity_power
    rows = np.repeat(np.arange(n, dtype=np.int32), np.diff(weights.indptr))
    weights.data = s[rows] * weights.data
    weights.data *= s[weights.indices]
    # no self-loops: the diagonal's entries zeroed where they are and dropped; scipy's setdiag(0) rebuilt the whole
    # matrix through COO to do it (+34 MiB at 10,000 chunks, BENCHMARKS.md scale-out)
    weights.data[weights.indices == rows] = 0
    del rows
    weights.eliminate_zeros()
    weights.sort_indices()
    return EntityWeights(keep, weights, spec.astype(np.float64))


def detect_clusters(weights: EntityWeights, params: CommunityParams = CommunityParams()) -> list[Cluster]:
    """Hierarchical Leiden over the weighted entity graph; clusters sorted by (level, smallest member)."""
    return leiden_clusters(upper_edges(weights), params)


def upper_edges(weights: EntityWeights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edges Leiden reads (``leiden_clusters``): the upper triangle's rows, columns and weights, in row order."""
    return _upper(weights.weights)


def leiden_clusters(upper: tuple[np.ndarray, np.ndarray, np.ndarray],
                    params: CommunityParams = CommunityParams()) -> list[Cluster]:
    """``detect_clusters`` from the edges alone (``upper_edges``): the weights need not be held beside Leiden."""
    if not len(upper[0]):
        return []
    import graspologic_native as gn

    found = gn.hierarchical_leiden(_EdgeRows(*upper), resolution=params.resolution, randomness=params.randomness,
                                   iterations=1, use_modularity=True, max_cluster_size=params.max_cluster_size,
                                   seed=params.seed)
    del upper
    members: dict[tuple[int, int], list[int]] = {}
    parents: dict[tuple[int, int], int | None] = {}
    for entry in found:
        key = (int(entry.level), int(entry.cluster))
        members.setdefault(key, []).append(int(entry.node))
        parents[key] = None if entry.parent_cluster is None else int(entry.parent_cluster)
    clusters = [Cluster(level, key, parents[(level, key)], np.array(sorted(nodes), dtype=np.int64))
                for (level, key), nodes in members.items()]
    clusters.sort(key=lambda c: (c.level, int(c.members[0])))
    return clusters


class _EdgeRows(Sequence[tuple[str, str, float]]):
    """The upper triangle's edges as the ``(node, node, weight)`` rows Leiden takes, made one at a time as it reads
    them: a list of them all beside Leiden's own copy was the largest thing the communities' build held (about
    40 MiB per 450,000 edges). Node names are positions: entity order is id order, so the input is the same for the
    same graph."""

    def __init__(self, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray):
        self.rows, self.cols, self.weights = rows, cols, weights

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[str, str, float]:  # type: ignore[override]
        return str(int(self.rows[i])), str(int(self.cols[i])), float(self.weights[i])

    def __iter__(self) -> Iterator[tuple[str, str, float]]:
        for start in range(0, len(self.rows), EDGES_PER_PAGE):
            page = slice(start, start + EDGES_PER_PAGE)
            yield from zip(map(str, self.rows[page].tolist()), map(str, self.cols[page].tolist()),
                           self.weights[page].tolist())


def _upper(m: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    coo = m.tocoo()
    keep = coo.row < coo.col
    order = np.lexsort((coo.col[keep], coo.row[keep]))
    return coo.row[keep][order], coo.col[keep][order], coo.data[keep][order]


def inner_degrees(weights: EntityWeights, clusters: Sequence[Cluster]) -> None:
    """Set each cluster's ``degree``: the weighted degree of each member inside its community (the sum of its edges
    to the other members), rounded to 6 digits so that float noise orders nothing; one pass over the edges per level."""
    coo = weights.weights.tocoo()
    n = weights.weights.shape[0]
    for level in sorted({c.level for c in clusters}):
        labels = np.full(n, -1, dtype=np.int64)
        at = [c for c in clusters if c.level == level]
        for j, c in enumerate(at):
            labels[c.members] = j
        inside = (labels[coo.row] >= 0) & (labels[coo.row] == labels[coo.col])
        degree = np.round(np.bincount(coo.row[inside], weights=coo.data[inside], minlength=n), 6)
        for c in at:
            c.degree = degree[c.members]


def community_ids(clusters: Sequence[Cluster], weights: EntityWeights, entity_ids: Sequence[str]) -> None:
    """Give each cluster its anchor, id, parent id and children ids (in place); see the module's docstring."""
    inner_degrees(weights, clusters)
    for c in clusters:
        degree = c.degree if c.degree is not None else np.zeros(len(c.members))
        best = degree.max() if len(degree) else 0.0
        # the smallest entity id among the most central: members are positions in id order
        c.anchor = int(c.members[int(np.flatnonzero(degree >= best)[0])]) if len(degree) else int(c.members[0])
    used: set[str] = set()
    for c in sorted(clusters, key=lambda c: (c.level, entity_ids[c.anchor])):
        digest = hashlib.blake2b(entity_ids[c.anchor].encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        for length in range(8, len(digest) + 1, 4):
            candidate = f"c{c.level}-{digest[:length]}"
            if candidate not in used:
                break
        used.add(candidate)
        c.id = candidate
    by_key = {(c.level, c.key): c for c in clusters}
    for c in clusters:
        if c.parent_key is not None and c.level > 0:
            parent = by_key.get((c.level - 1, c.parent_key))
            if parent is not None:
                c.parent = parent.id
                parent.children.append(c.id)
    for c in clusters:
        c.children.sort()
