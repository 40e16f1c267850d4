"""From the stored retrieval graph and chunk payloads to communities with extractive summaries (no LLM).

**Which chunks belong to a community.** A chunk's weight for an entity is the retrieval graph's chunk-entity
confidence times the entity's specificity; its score for a community is the sum of those weights over the
members it mentions. At each level a chunk belongs to its best-scoring community and to every other whose score
reaches half of the best (at most three): "the communities of the entities it mentions most strongly". A chunk
that mentions no member of any community at a level (it names nothing, only its title, or only entities with
no edge) gets its document's dominant community at that level (the one its document's chunks score highest
for), so a ``--community`` filter finds every passage of a document that is about it. These ids, every level
together, are the chunk's ``communities`` payload field.

**Summary.** Top entities: members by weighted degree inside the community (``detect.inner_degrees``), with
their types. Representative chunks: among the chunks that mention a member, by ``score^2 / total`` (how much of the community the chunk names, times the
share of the chunk's own weight that falls in the community: a focused passage beats a list of names).
Key terms: c-TF-IDF (BERTopic's class-based TF-IDF, ``tf(t, c) * log(1 + A / f(t))`` with ``A`` the average
words per community and ``f(t)`` the term's frequency over all communities of the level) of the texts of the
community's chunks against the other communities of its level, words of three letters or more, English stop
words removed (bm25s's tokenizer and list, as the BM25 channel). Labels: per classification task, the documents
of the community with each document-level label. Documents: by their summed chunk scores. Title: the first three
entity names and two terms that are not part of them.
"""

from __future__ import annotations

import math
from array import array
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from kgbuild.communities.detect import (
    Cluster, CommunityParams, EntityWeights, community_ids, entity_weights, leiden_clusters, upper_edges,
)
from kgbuild.communities.model import Community, CommunityEntity, CommunityIndex, RepresentativeChunk
from kgbuild.memory import release_heap
from kgbuild.retrieve.chunk_table import ChunkTable
from kgbuild.retrieve.graph_matrix import RetrievalGraph, doc_of

TOP_ENTITIES = 10
TOP_TERMS = 8
TOP_CHUNKS = 3
SNIPPET = 300
TEXTS_PER_PAGE = 512  # chunk texts tokenized at a time for the communities' terms
SUMMARIES_PER_RELEASE = 256  # communities summarised between two releases of the chunk table's pages
# function words bm25s's English list lets through, which c-TF-IDF would otherwise offer as key terms
EXTRA_STOPWORDS = frozenset(
    "about above across after again against also although among another any anyone became because become been before"
    " being below between both could did does doing down during each either else ever every few from further had has"
    " have having her hers herself him himself his how however into its itself just later least less many may might"
    " more most much must near neither never next nor now often once only other others our ours over own per perhaps"
    " rather said same says several she should since some still such than their theirs them themselves then there"
    " these they this those though through thus too toward towards under until upon very via was were what whatever"
    " when where whether which while who whom whose why will with within without would yet you your".split())
SECOND_BEST = 0.5  # a chunk joins every community scoring at least this share of its best one
MAX_PER_LEVEL = 3


def graph_clusters(graph: RetrievalGraph | Callable[[], RetrievalGraph],
                   params: CommunityParams = CommunityParams()) -> list[Cluster]:
    """Hierarchical Leiden over the graph's entity weights (``detect_clusters``), without the weights held beside
    Leiden: only the edges it reads are, and they are let go of as soon as it has read them. ``graph``: the graph,
    or a function that hands it over (then this function holds the only reference, and lets the graph go before
    Leiden runs: ``refresh_communities``)."""
    if callable(graph):
        graph = graph()
    edges = [upper_edges(entity_weights(graph, params))]  # handed over (popped): Leiden's caller holds no reference
    del graph
    release_heap()
    clusters = leiden_clusters(edges.pop(), params)
    release_heap()
    return clusters


def build_communities(graph: RetrievalGraph, payloads: Mapping[str, Mapping[str, Any]],
                      params: CommunityParams = CommunityParams(), clusters: list[Cluster] | None = None) -> CommunityIndex:
    """The communities of a retrieval graph, summarised; ``payloads``: chunk id -> vector payload (the chunk table).
    ``clusters``: the graph's ``graph_clusters``, where the caller detected them already (with the graph let go of
    while Leiden ran, ``kgbuild.communities.refresh``)."""
    from scipy import sparse

    # each step's temporaries are handed back to the OS before the next (``release_heap``): glibc keeps them
    # otherwise, and on a large index each step's peak would stack on the last one's leftovers
    if clusters is None:
        clusters = graph_clusters(graph, params)
    weights = entity_weights(graph, params)
    release_heap()
    entity_ids = [graph.entities[i].id for i in weights.entities]
    community_ids(clusters, weights, entity_ids)
    n_chunks = len(graph.chunk_ids)
    # chunk x kept-entity weights: confidence x specificity
    chunk_weights = (graph.chunk_entity[:, weights.entities] @ sparse.diags(weights.specificity)).tocsr() if len(entity_ids) \
        else sparse.csr_matrix((n_chunks, 0))
    totals = np.asarray(chunk_weights.sum(axis=1)).ravel()
    doc_index: dict[str, int] = {}
    chunk_doc = np.array([doc_index.setdefault(doc_of(c), len(doc_index)) for c in graph.chunk_ids], dtype=np.int64)
    to_doc = sparse.csr_matrix((np.ones(n_chunks), (chunk_doc, np.arange(n_chunks))), shape=(len(doc_index), n_chunks))
    doc_names = list(doc_index)  # by position
    terms = _TermCounts(graph.chunk_ids, payloads)
    release_heap()

    levels = sorted({c.level for c in clusters})
    clusters_at = {level: [c for c in clusters if c.level == level] for level in levels}

    def level_scores(at: list[Any]) -> Any:
        """Chunks x communities of a level (sparse: 100k x 10k)."""
        rows = np.concatenate([c.members for c in at])
        cols = np.concatenate([np.full(len(c.members), j) for j, c in enumerate(at)])
        membership = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(entity_ids), len(at)))
        return (chunk_weights @ membership).tocsr()

    # every level's chunks and key terms first, so that the term counts are let go of before the summaries
    assigned: dict[str, list[str]] = {}
    assignments: dict[int, Any] = {}
    key_terms: dict[int, list[list[str]]] = {}
    for level in levels:
        at = clusters_at[level]
        chosen = _assign(level_scores(at), to_doc, chunk_doc)
        for chunk_pos, picks in enumerate(chosen):
            for j in picks:
                assigned.setdefault(graph.chunk_ids[chunk_pos], []).append(at[j].id)
        assignments[level] = sparse.csr_matrix(
            (np.ones(sum(len(p) for p in chosen)), ([j for p in chosen for j in p], [i for i, p in enumerate(chosen) for _ in p])),
            shape=(len(at), n_chunks))
        key_terms[level] = terms.top_terms(assignments[level])
        del chosen
    del terms
    release_heap()

    communities: list[Community] = []
    for level in levels:
        at = clusters_at[level]
        by_community = level_scores(at).tocsc()
        by_community.sort_indices()
        assignment, level_terms = assignments.pop(level), key_terms.pop(level)
        for j, cluster in enumerate(at):
            communities.append(_summarise(cluster, j, graph, weights, entity_ids, by_community, totals, assignment, chunk_doc,
                                          doc_names, payloads, level_terms[j]))
            if j % SUMMARIES_PER_RELEASE == SUMMARIES_PER_RELEASE - 1:
                _release_pages(payloads)
        _release_pages(payloads)
        del by_community, assignment, level_terms
        release_heap()
    communities.sort(key=lambda c: (c.level, c.id))
    chunk_communities = {c: sorted(ids) for c, ids in sorted(assigned.items())}
    return CommunityIndex(communities, chunk_communities, graph.signature, params.to_dict())


def _ranked_rows(m: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The positive entries of a CSR matrix as (row, column, value, rank within the row), each row best first
    (ties: the smaller column)."""
    m = m.tocsr()
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    keep = m.data > 0
    rows, cols, data = rows[keep], m.indices[keep], m.data[keep]
    order = np.lexsort((cols, -data, rows))
    rows, cols, data = rows[order], cols[order], data[order]
    first = np.searchsorted(rows, rows)  # where each row's entries start
    return rows, cols, data, np.arange(len(rows)) - first


def _assign(scores: Any, to_doc: Any, chunk_doc: np.ndarray) -> list[list[int]]:
    """Each chunk's communities at one level (positions into the level's list); see the module's docstring."""
    n = scores.shape[0]
    drows, dcols, _, drank = _ranked_rows(to_doc @ scores)
    doc_best = np.full(to_doc.shape[0], -1, dtype=np.int64)
    doc_best[drows[drank == 0]] = dcols[drank == 0]
    rows, cols, data, rank = _ranked_rows(scores)
    best = np.zeros(n)
    best[rows[rank == 0]] = data[rank == 0]
    keep = (rank < MAX_PER_LEVEL) & (data >= SECOND_BEST * best[rows])
    out: list[list[int]] = [[] for _ in range(n)]
    for i, j in zip(rows[keep].tolist(), cols[keep].tolist()):
        out[i].append(j)
    for i in range(n):
        if out[i]:
            out[i].sort()
        elif doc_best[chunk_doc[i]] >= 0:
            out[i].append(int(doc_best[chunk_doc[i]]))
    return out


def _summarise(cluster: Any, j: int, graph: RetrievalGraph, weights: EntityWeights, entity_ids: Sequence[str],
               by_community: Any, totals: np.ndarray, assignment: Any, chunk_doc: np.ndarray, doc_names: Sequence[str],
               payloads: Mapping[str, Mapping[str, Any]], terms: list[str]) -> Community:
    degree = cluster.degree  # inside the community, rounded (detect.inner_degrees)
    order = np.lexsort((cluster.members, -degree))  # members are positions in entity-id order: ties by id
    top = []
    for k in order[:TOP_ENTITIES]:
        node = graph.entities[int(weights.entities[cluster.members[k]])]
        top.append(CommunityEntity(node.id, node.key, node.type, node.name, round(float(degree[k]), 6)))
    start, end = by_community.indptr[j], by_community.indptr[j + 1]
    candidates, column = by_community.indices[start:end], by_community.data[start:end]
    positive = column > 0
    candidates, column = candidates[positive], column[positive]
    # how much of the community the chunk names x the share of the chunk's weight in the community
    score = np.round(column * column / np.where(totals[candidates] > 0, totals[candidates], 1.0), 6)
    chunks = []
    for k in np.lexsort((candidates, -score))[:TOP_CHUNKS]:  # chunk positions are in id order
        chunk = graph.chunk_ids[int(candidates[k])]
        p = _payload(payloads, chunk)
        text = " ".join(str(p.get("text") or "").split())
        chunks.append(RepresentativeChunk(chunk, str(p.get("doc_id") or doc_of(chunk)), str(p.get("path") or ""),
                                          str(p.get("title") or ""), float(score[k]), text[:SNIPPET]))
    own = assignment.indices[assignment.indptr[j]:assignment.indptr[j + 1]]
    in_docs = np.isin(candidates, own) if len(own) else np.ones(len(candidates), dtype=bool)
    positions, inverse = np.unique(chunk_doc[candidates[in_docs]], return_inverse=True)
    doc_weight = np.round(np.bincount(inverse, weights=column[in_docs], minlength=len(positions)), 9)
    first_chunk = {}
    for i in candidates[in_docs].tolist():
        first_chunk.setdefault(int(chunk_doc[i]), graph.chunk_ids[i])
    labels: dict[str, dict[str, int]] = {}
    documents = []
    for k in np.lexsort((positions, -doc_weight)):  # doc positions are in id order
        position = int(positions[k])
        p = _payload(payloads, first_chunk[position])
        documents.append((doc_names[position], str(p.get("path") or "")))
        for task, values in sorted((p.get("doc_class") or {}).items()):
            for label in sorted(set(values or ())):
                labels.setdefault(task, {})
                labels[task][label] = labels[task].get(label, 0) + 1
    labels = {task: dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) for task, counts in sorted(labels.items())}
    return Community(cluster.id, cluster.level, _title(top, terms), cluster.parent, list(cluster.children),
                     sorted(entity_ids[m] for m in cluster.members), top, terms, chunks, documents, labels, int(len(own)))


def _release_pages(payloads: Mapping[str, Mapping[str, Any]]) -> None:
    """Let go of the chunk table's pages read so far: the representative chunks of every community touch most of
    the file (24 MiB at 10,000 chunks, resident through the rest of the refresh otherwise)."""
    if isinstance(payloads, ChunkTable):
        payloads.release_pages()


def _payload(payloads: Mapping[str, Mapping[str, Any]], chunk: str) -> Mapping[str, Any]:
    """A chunk's payload, not kept where the payloads are the chunk table (``ChunkTable.read``); {} if absent."""
    if chunk not in payloads:
        return {}
    read = getattr(payloads, "read", None)
    return read(chunk) if read is not None else payloads[chunk]


def _title(top: Sequence[CommunityEntity], terms: Sequence[str]) -> str:
    """The first three top entities, names before values (a date or an amount says little about a topic), and two
    terms that are not words of those names."""
    names = [e.name for e in sorted(top, key=lambda e: any(ch.isdigit() for ch in e.name))[:3]]
    words = {w for name in names for w in name.casefold().replace("-", " ").split()}
    extra = [t for t in terms if t.casefold() not in words][:2]
    return ", ".join(names) + (" · " + ", ".join(extra) if extra else "")


def _is_term(word: str) -> bool:
    """A word c-TF-IDF may offer as a key term: three letters or more, and not a function word."""
    return len(word) >= 3 and word.isalpha() and word not in EXTRA_STOPWORDS


class _TermCounts:
    """Chunk x term counts of the chunks' texts (bm25s's tokenizer, English stop words out), for c-TF-IDF."""

    def __init__(self, chunk_ids: Sequence[str], payloads: Mapping[str, Mapping[str, Any]]):
        from scipy import sparse

        from kgbuild.retrieve.vector import payload_text

        # a page of texts at a time, read without keeping the payloads (``ChunkTable.read``): the tokens of every
        # chunk as Python lists were most of what the communities' build held on a large index. Each chunk's counts
        # go straight into the matrix's rows (one entry per distinct kept word, not one per token: a COO matrix of
        # every token and its conversions peaked at +57 MiB at 10,000 chunks, BENCHMARKS.md scale-out)
        from collections import Counter

        vocabulary: dict[str, int] = {}
        indices, data, indptr = array("i"), array("f"), array("q", [0])
        self.vocab: list[str] = []
        self.counts = sparse.csr_matrix((len(chunk_ids), 0))
        for start in range(0, len(chunk_ids), TEXTS_PER_PAGE):
            texts = [payload_text(_payload(payloads, c)) for c in chunk_ids[start:start + TEXTS_PER_PAGE]]
            if any(texts):
                import bm25s

                tokenized = bm25s.tokenize(texts, stopwords="en", show_progress=False, return_ids=False)
            else:
                tokenized = [[] for _ in texts]
            for words in tokenized:
                for word, count in Counter(w for w in words if _is_term(w)).items():  # columns sorted once, below
                    indices.append(vocabulary.setdefault(word, len(vocabulary)))
                    data.append(count)
                indptr.append(len(indices))
            _release_pages(payloads)
        if not vocabulary:
            return
        # vocabulary in alphabetical order: the same terms tie the same way whatever order the tokenizer met them in
        self.vocab = sorted(vocabulary)
        rank = np.empty(len(self.vocab), dtype=np.int32)
        rank[[vocabulary[w] for w in self.vocab]] = np.arange(len(self.vocab), dtype=np.int32)
        del vocabulary
        columns = rank[np.frombuffer(indices, dtype=np.int32)]
        del indices
        # counts are whole numbers: float32 holds them exactly, in half the memory
        self.counts = sparse.csr_matrix((np.frombuffer(data, dtype=np.float32), columns, np.frombuffer(indptr, dtype=np.int64)),
                                        shape=(len(chunk_ids), len(self.vocab)))
        self.counts.sort_indices()

    def top_terms(self, assignment: Any, k: int = TOP_TERMS) -> list[list[str]]:
        """The ``k`` best terms of each community (rows of ``assignment``: communities x chunks) by c-TF-IDF."""
        n = assignment.shape[0]
        if not self.vocab or n == 0:
            return [[] for _ in range(n)]
        per = (assignment @ self.counts).tocsr()  # communities x terms
        words = np.asarray(per.sum(axis=1)).ravel()
        frequency = np.asarray(per.sum(axis=0)).ravel()
        idf = np.log1p(words.mean() / np.where(frequency > 0, frequency, 1.0))
        out = []
        for r in range(n):
            cols = per.indices[per.indptr[r]:per.indptr[r + 1]]
            score = per.data[per.indptr[r]:per.indptr[r + 1]] / max(words[r], 1.0) * idf[cols]
            order = np.lexsort((cols, -np.round(score, 12)))[:k]
            out.append([self.vocab[int(cols[t])] for t in order if score[t] > 0])
        return out


def summary_vectors(index: CommunityIndex, embedder: Any, previous: CommunityIndex | None = None,
                    batch: int = 64) -> None:
    """Embed each community's summary text with the index's embedder (in place), reusing the vectors of summaries
    that did not change (same text, same embedding model). Without an embedder, reused vectors only; the rest are
    rows of zeros (global retrieval embeds those when it runs)."""
    texts = [c.summary_text() for c in index.communities]
    model = getattr(embedder, "name", "") if embedder is not None else (previous.embedding_model if previous else "")
    known: dict[str, np.ndarray] = {}
    if previous is not None and previous.vectors is not None and previous.embedding_model == model:
        for c, v in zip(previous.communities, previous.vectors):
            if v.any():
                known[c.summary_text()] = v
    todo = sorted({t for t in texts if t not in known})
    if embedder is not None:
        for start in range(0, len(todo), batch):
            part = todo[start:start + batch]
            for text, vector in zip(part, embedder.embed(part)):
                known[text] = np.asarray(vector, dtype=np.float32)
    dim = next((len(v) for v in known.values()), 0)
    if not texts or dim == 0:
        index.vectors, index.embedding_model = None, model
        return
    out = np.stack([known.get(t, np.zeros(dim, np.float32)) for t in texts]).astype(np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    out /= np.where(norms == 0, 1.0, norms)
    index.vectors, index.embedding_model = out, model


def nmi(labels_a: Sequence[Any], labels_b: Sequence[Any]) -> float:
    """Normalised mutual information (arithmetic mean normalisation, as scikit-learn's default)."""
    from collections import Counter

    n = len(labels_a)
    if n == 0:
        return 0.0
    joint = Counter(zip(labels_a, labels_b))
    a, b = Counter(labels_a), Counter(labels_b)
    mi = sum(c / n * math.log((c / n) / ((a[x] / n) * (b[y] / n))) for (x, y), c in joint.items())
    ha = -sum(c / n * math.log(c / n) for c in a.values())
    hb = -sum(c / n * math.log(c / n) for c in b.values())
    return 0.0 if ha + hb == 0 else 2 * mi / (ha + hb)
