"""The retrieval graph: chunks and entities as one sparse matrix, stored with the index, for personalised PageRank.

In the spirit of HippoRAG 2 (Gutiérrez et al., 2025): passages and entities are nodes of one graph, and
the graph channel ranks passages by personalised PageRank (PPR) from seeds the query gives (entities it
names, passages the dense channel found). Edges, all undirected:

- chunk - entity: the chunk mentions the entity; weight = the entity's confidence (its best mention's,
  the only confidence ``GraphSink.entity_graph()`` reads back) x its specificity, an IDF over documents
  ``log(1 + N / df) / log(1 + N)`` (1 for an entity of one document, small for "2011" or "American"
  that half the corpus mentions);
- entity - entity, relation: ``relation_weight`` per relation between them (either direction);
- entity - entity, co-occurrence: ``cooccurrence_weight`` x the chunks that mention both, where they
  share at least two (one shared chunk already joins them in two steps), each pair weighted by the
  product of the two specificities (hubs get little);
- entity - entity, synonym: entities of the same type whose names' embeddings (the index's embedder,
  normalised) have a cosine of at least ``synonym_threshold`` (0.9): "Apple Inc." and "Apple Computer".

Documents' titles join as entities of type ``TITLE`` (``title_entities``): mentioned by their document's
chunks and by every chunk whose text holds the title (two words or more), so a query that names an article
seeds it, and a passage naming another article's subject links to it without the extractor's help.

What is stored (``<out>/retrieval/``, written by ``build_retrieval_graph`` + ``RetrievalGraph.save``
at the end of each ingest that changed anything, ``Index.refresh_retrieval_graph``)::

    meta.json          format, signature of the ingest state it describes, counts, embedding model
    nodes.json         chunk ids; entities (id, key, type, name, aliases, document frequency); relation labels
    matrices.npz       the raw parts, each a CSR triple: chunk x entity (confidence), relations (count and
                       label), co-occurrence (shared chunks), synonyms (cosine)
    name_vectors.npy   one normalised embedding per entity name, in entity order (the embedding seeds)
    seed_names.*       the seed matcher's names (an Aho-Corasick automaton) and their entities
    transition.npz     the adjacency under the default channel settings (``PPRGraph.save``)
    payloads.jsonl ... the chunk payloads, read on demand (``kgbuild.retrieve.chunk_table``)
    bm25/              the BM25 index over the chunks (``BM25ChunkIndex.save``)

The parts are kept raw (no specificity, no channel weights) so that the query side can switch each off
(``GraphChannelSettings``) without a rebuild. The build is a pure function of the store's entity graph
(sorted by id), so the stored matrix after any sequence of ingests equals a fresh build of the same
corpus; entity names already embedded are reused from the stored vectors, so a rebuild embeds only the
names that are new.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from kgbuild.types import Entity, EntityGraphData

if TYPE_CHECKING:  # pragma: no cover
    from scipy import sparse

    from kgbuild.embed import Embedder
    from kgbuild.state import IngestState

FORMAT = 3  # 2: with the chunk table and the BM25 index; 3: title entities
RETRIEVAL_DIR = "retrieval"
BM25_DIR = "bm25"
TITLE = "TITLE"  # the type of the entities that document titles make
SYNONYM_THRESHOLD = 0.9
MIN_COOCCURRENCE = 2  # chunks two entities must share for a co-occurrence edge
_PARTS = ("chunk_entity", "relations", "relation_labels", "cooccurrence", "synonyms")


def retrieval_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / RETRIEVAL_DIR


def state_signature(state: IngestState, vector_points: int) -> str:
    """What the retrieval graph must describe: the documents (id, content hash, chunks, links across documents) and the extraction
    fingerprint of the ingest state, and the number of points in the vector store (which a LlamaIndex writer
    changes without file records). Another value at open means the stores changed since the graph was built
    (``kgbuild remove``, a LlamaIndex writer, an index built before the graph was stored)."""
    docs = state.all_documents()
    digest = hashlib.sha256()
    for doc_id in sorted(docs):
        d = docs[doc_id]
        # the links across documents too: a links pass moves mentions between entities without a new content hash
        links = json.dumps(d.cross_links, separators=(",", ":")) if d.cross_links else ""
        digest.update(f"{doc_id}\x1f{d.content_hash}\x1f{d.chunks}\x1f{links}\n".encode())
    extraction = json.dumps(state.manifest.extraction or {}, sort_keys=True, default=str)
    digest.update(extraction.encode())
    return f"{digest.hexdigest()[:32]}:{vector_points}"


def same_documents(a: str | None, b: str) -> bool:
    """Whether two signatures agree on the documents (the vector count aside)."""
    return a is not None and a.split(":")[0] == b.split(":")[0]


def state_chunk_ids(state: IngestState) -> list[str]:
    from kgbuild.ids import chunk_id

    return [chunk_id(doc_id, position) for doc_id, d in state.all_documents().items() for position in range(d.chunks)]


def doc_of(chunk: str) -> str:
    return chunk.rsplit(":", 1)[0]


@dataclass(frozen=True, slots=True)
class EntityNode:
    id: str
    key: str
    type: str
    name: str
    aliases: tuple[str, ...]
    df: int  # documents that mention it
    confidence: float


def _csr(rows: Sequence[int] | np.ndarray, cols: Sequence[int] | np.ndarray, data: Sequence[float] | np.ndarray,
         shape: tuple[int, int], dtype: Any = np.float32) -> sparse.csr_matrix:
    from scipy import sparse

    m = sparse.coo_matrix((np.asarray(data, dtype=dtype), (np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64))),
                          shape=shape).tocsr()
    m.sum_duplicates()
    m.sort_indices()
    return m


@dataclass(slots=True)
class RetrievalGraph:
    """The stored retrieval graph (raw parts); ``kgbuild.retrieve.ppr.PPRGraph`` turns it into a transition matrix."""

    chunk_ids: list[str]
    entities: list[EntityNode]
    documents: int
    chunk_entity: sparse.csr_matrix  # chunks x entities: entity confidence where the chunk mentions it
    relations: sparse.csr_matrix  # entities x entities, symmetric: relations between the two (count)
    relation_labels: sparse.csr_matrix  # entities x entities: 1 + index into labels of one relation between them
    labels: list[str]
    cooccurrence: sparse.csr_matrix  # entities x entities, symmetric, zero diagonal: chunks mentioning both
    synonyms: sparse.csr_matrix  # entities x entities, symmetric: name cosine where >= threshold, same type
    name_vectors: np.ndarray  # entities x dim, float32, normalised (0 x 0 where names were not embedded)
    embedding_model: str = ""
    signature: str = ""
    built_s: float = 0.0
    folder: Path | None = None  # where it was loaded from (the seed automaton and default transition are there)
    _chunk_index: dict[str, int] | None = field(default=None, repr=False)

    @property
    def chunk_index(self) -> dict[str, int]:
        if self._chunk_index is None:
            self._chunk_index = {c: i for i, c in enumerate(self.chunk_ids)}
        return self._chunk_index

    def specificity(self) -> np.ndarray:
        """``log(1 + N / df) / log(1 + N)`` per entity, in (0, 1]."""
        n = max(self.documents, 1)
        df = np.array([max(e.df, 1) for e in self.entities], dtype=np.float64)
        return (np.log1p(n / df) / math.log1p(n)).astype(np.float32) if len(df) else np.zeros(0, np.float32)

    # -- storage -----------------------------------------------------------------------------------

    def save(self, folder: Path, payloads: Mapping[str, dict[str, Any]] | None = None, text_of: Any = None) -> None:
        """Written to a sibling folder and renamed into place: a reader sees the old graph or the new one.
        ``payloads`` (chunk id -> vector-store payload): the chunk table and the BM25 index over ``text_of``
        of each, stored with it (``kgbuild.retrieve.chunk_table``, ``BM25ChunkIndex.save``)."""
        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if payloads is not None:
            from kgbuild.retrieve.chunk_table import write_chunk_table
            from kgbuild.retrieve.lexical import BM25ChunkIndex

            write_chunk_table(tmp, payloads)
            BM25ChunkIndex([payloads[c] for c in sorted(payloads)], text_of).save(tmp / BM25_DIR)
        arrays: dict[str, np.ndarray] = {}
        for part in _PARTS:
            m = getattr(self, part)
            arrays[f"{part}_data"], arrays[f"{part}_indices"], arrays[f"{part}_indptr"] = m.data, m.indices, m.indptr
            arrays[f"{part}_shape"] = np.array(m.shape, dtype=np.int64)
        np.savez(tmp / "matrices.npz", **arrays)
        # what opening would otherwise build: the seed automaton and the default transition
        from kgbuild.retrieve.ppr import GraphChannelSettings, PPRGraph
        from kgbuild.retrieve.seeds import SeedMatcher

        SeedMatcher(self.entities).save(tmp)
        PPRGraph(self, GraphChannelSettings()).save(tmp)
        np.save(tmp / "name_vectors.npy", self.name_vectors.astype(np.float32, copy=False))
        nodes = {"chunks": self.chunk_ids, "labels": self.labels,
                 "entities": [[e.id, e.key, e.type, e.name, list(e.aliases), e.df, e.confidence] for e in self.entities]}
        (tmp / "nodes.json").write_text(json.dumps(nodes, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        meta = {"format": FORMAT, "signature": self.signature, "documents": self.documents, "chunks": len(self.chunk_ids),
                "entities": len(self.entities), "embedding_model": self.embedding_model, "built_s": round(self.built_s, 3)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> RetrievalGraph | None:
        """The stored graph, or None where there is none (or of another format)."""
        from scipy import sparse

        folder = Path(folder)
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("format") != FORMAT:
            return None
        nodes = json.loads((folder / "nodes.json").read_text(encoding="utf-8"))
        parts: dict[str, Any] = {}
        with np.load(folder / "matrices.npz") as z:
            for part in _PARTS:
                shape = tuple(int(x) for x in z[f"{part}_shape"])
                parts[part] = sparse.csr_matrix((z[f"{part}_data"], z[f"{part}_indices"], z[f"{part}_indptr"]), shape=shape)
        entities = [EntityNode(i, k, t, n, tuple(a), int(df), float(c)) for i, k, t, n, a, df, c in nodes["entities"]]
        return cls(nodes["chunks"], entities, int(meta["documents"]), labels=nodes["labels"],
                   name_vectors=np.load(folder / "name_vectors.npy"), embedding_model=meta.get("embedding_model", ""),
                   signature=meta.get("signature", ""), built_s=float(meta.get("built_s", 0.0)), folder=folder, **parts)

    @staticmethod
    def stored_signature(folder: Path) -> str | None:
        try:
            meta = json.loads((Path(folder) / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return meta.get("signature") if meta.get("format") == FORMAT else None

    def equals(self, other: RetrievalGraph) -> bool:
        """Same nodes, same parts, same name vectors (within float tolerance): what a fresh build must give."""
        if (self.chunk_ids, self.entities, self.labels, self.documents) != (other.chunk_ids, other.entities, other.labels,
                                                                             other.documents):
            return False
        for part in _PARTS:
            a, b = getattr(self, part), getattr(other, part)
            if a.shape != b.shape or (a != b).nnz:
                return False
        return self.name_vectors.shape == other.name_vectors.shape and bool(
            np.allclose(self.name_vectors, other.name_vectors, atol=1e-5))


def _stored_name_vectors(folder: Path | None, embedding_model: str) -> dict[str, np.ndarray]:
    """Name -> vector from a stored graph built with the same embedder (reused: only new names are embedded)."""
    if folder is None or not (folder / "nodes.json").exists():
        return {}
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("embedding_model") != embedding_model:
            return {}
        nodes = json.loads((folder / "nodes.json").read_text(encoding="utf-8"))
        vectors = np.load(folder / "name_vectors.npy")
    except (OSError, ValueError):
        return {}
    if len(vectors) != len(nodes["entities"]):
        return {}
    return {row[3]: vectors[i] for i, row in enumerate(nodes["entities"])}


def embed_names(names: Sequence[str], embedder: Embedder | None, known: Mapping[str, np.ndarray] | None = None,
                batch: int = 256) -> tuple[np.ndarray, int]:
    """Normalised float32 vectors of ``names`` (rows in order); names in ``known`` are not embedded again.
    Returns the matrix and how many names were embedded now."""
    known = dict(known or {})
    if embedder is None or not names:
        return np.zeros((0, 0), np.float32), 0
    todo = sorted({n for n in names if n not in known})
    for start in range(0, len(todo), batch):
        chunk = todo[start:start + batch]
        for name, vector in zip(chunk, embedder.embed(chunk)):
            known[name] = np.asarray(vector, dtype=np.float32)
    out = np.stack([known[n] for n in names]).astype(np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    out /= np.where(norms == 0, 1.0, norms)
    return out, len(todo)


def synonym_pairs(vectors: np.ndarray, types: Sequence[str], threshold: float = SYNONYM_THRESHOLD,
                  block: int = 2048) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) for i < j of one type with cosine >= threshold, blockwise (memory: block x type size)."""
    rows, cols, sims = [], [], []
    if vectors.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    by_type: dict[str, list[int]] = {}
    for i, t in enumerate(types):
        by_type.setdefault(t, []).append(i)
    for t in sorted(by_type):
        idx = np.array(by_type[t], dtype=np.int64)
        sub = vectors[idx]
        for start in range(0, len(idx), block):
            s = sub[start:start + block] @ sub.T
            r, c = np.nonzero(s >= threshold)
            keep = (c > r + start)
            r, c = r[keep], c[keep]
            rows.append(idx[r + start])
            cols.append(idx[c])
            sims.append(s[r, c].astype(np.float32))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(sims)


_PARENTHETICAL = re.compile(r"\s*\([^)]*\)\s*$")  # "Kevin Smith (footballer)" -> "Kevin Smith"
_NON_WORD = re.compile(r"[^\w]+")


def _plain(text: str) -> str:
    """Casefolded words joined by single spaces: what title links match on."""
    return " ".join(_NON_WORD.sub(" ", text.casefold()).split())


def title_entities(payloads: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, Entity], list[tuple[str, str]]]:
    """Document titles as entities of type ``TITLE``, and the chunks that mention each: the chunks of its
    documents, and every chunk whose text holds a title of two words or more (word boundaries, casefolded;
    one Aho-Corasick pass over the texts). On an encyclopaedia a title is the subject's name ("Norman
    Taurog"), and a passage that names another article's subject is one step from it even where the
    extractor missed the name."""
    import ahocorasick

    from kgbuild.ids import stable_id
    from kgbuild.reconcile import normalize_name

    entities: dict[str, Entity] = {}
    mentions: set[tuple[str, str]] = set()
    by_plain: dict[str, str] = {}
    for chunk in sorted(payloads):
        title = _PARENTHETICAL.sub("", str(payloads[chunk].get("title") or "")).strip()
        name = normalize_name(title) if title else ""
        if not name:
            continue
        eid = stable_id("ent", TITLE, name)
        if eid not in entities:
            entities[eid] = Entity(eid, TITLE, f"{TITLE}:{name}", title, [], 0, 1.0)
            plain = _plain(title)
            if plain.count(" ") >= 1:
                by_plain.setdefault(plain, eid)
        mentions.add((chunk, eid))
    if by_plain:
        automaton = ahocorasick.Automaton()
        for plain, eid in by_plain.items():
            automaton.add_word(f" {plain} ", eid)
        automaton.make_automaton()
        for chunk in sorted(payloads):
            line = f" {_plain(str(payloads[chunk].get('text') or ''))} "
            for _, eid in automaton.iter(line):
                mentions.add((chunk, eid))
    return entities, sorted(mentions)


def build_retrieval_graph(data: EntityGraphData, *, embedder: Embedder | None = None, chunk_ids: Iterable[str] = (),
                          signature: str = "", reuse_from: Path | None = None,
                          synonym_threshold: float = SYNONYM_THRESHOLD,
                          payloads: Mapping[str, Mapping[str, Any]] | None = None) -> RetrievalGraph:
    """The retrieval graph of a store's entity graph (``GraphSink.entity_graph()``).

    ``chunk_ids``: chunks to include beyond those that mention an entity (the ingest state's, so that a
    passage the dense channel seeds is a node even when it names nothing). ``payloads`` (chunk id -> the
    vector store's payload): adds the documents' titles as ``TITLE`` entities (``title_entities``). ``embedder``: embeds the entity
    names (synonym edges, embedding seeds); None leaves both out. ``reuse_from``: a stored graph whose
    name vectors are reused where the embedder is the same.
    """
    started = time.perf_counter()
    if payloads:
        titles, title_mentions = title_entities(payloads)
        data = EntityGraphData({**data.entities, **titles}, [*data.mentions, *title_mentions], data.relations)
    entity_ids = sorted(data.entities)
    e_index = {e: i for i, e in enumerate(entity_ids)}
    pairs = sorted({(c, e) for c, e in data.mentions if e in e_index})
    chunks = sorted({c for c, _ in pairs} | set(chunk_ids))
    c_index = {c: i for i, c in enumerate(chunks)}
    docs_of_entity: list[set[str]] = [set() for _ in entity_ids]
    for c, e in pairs:
        docs_of_entity[e_index[e]].add(doc_of(c))
    documents = len({doc_of(c) for c in chunks})
    entities: list[EntityNode] = []
    for i, eid in enumerate(entity_ids):
        ent: Entity = data.entities[eid]
        entities.append(EntityNode(eid, ent.key, ent.type, ent.name, tuple(sorted(set(ent.aliases))), len(docs_of_entity[i]),
                                   round(float(ent.confidence or 1.0), 6)))
    n_e, n_c = len(entities), len(chunks)
    ce = _csr([c_index[c] for c, _ in pairs], [e_index[e] for _, e in pairs],
              [entities[e_index[e]].confidence for _, e in pairs], (n_c, n_e))

    labels = sorted({label for _, label, _ in data.relations})
    l_index = {label: i + 1 for i, label in enumerate(labels)}
    rel_rows, rel_cols, rel_labels = [], [], {}
    for head, label, tail in sorted(set(data.relations)):
        if head in e_index and tail in e_index and head != tail:
            a, b = e_index[head], e_index[tail]
            rel_rows += [a, b]
            rel_cols += [b, a]
            rel_labels.setdefault((a, b), l_index[label])  # the first label in sorted order explains the pair
            rel_labels.setdefault((b, a), l_index[label])
    relations = _csr(rel_rows, rel_cols, np.ones(len(rel_rows)), (n_e, n_e))
    keys = sorted(rel_labels)
    relation_labels = _csr([a for a, _ in keys], [b for _, b in keys], [rel_labels[k] for k in keys], (n_e, n_e), np.int32)

    binary = ce.copy()
    binary.data[:] = 1.0
    cooc = (binary.T @ binary).tocsr()
    cooc.setdiag(0)
    # a pair that shares one chunk is already two steps apart through it: only repeated company adds an edge
    # (and keeps the matrix near the size of the mentions: all pairs would be ~18^2 per chunk)
    cooc.data[cooc.data < MIN_COOCCURRENCE] = 0
    cooc.eliminate_zeros()
    cooc.sort_indices()
    cooc = cooc.astype(np.float32)

    model = getattr(embedder, "name", "") if embedder is not None else ""
    known = _stored_name_vectors(reuse_from, model) if embedder is not None else {}
    vectors, _ = embed_names([e.name for e in entities], embedder, known)
    si, sj, ss = synonym_pairs(vectors, [e.type for e in entities], synonym_threshold)
    synonyms = _csr(np.concatenate([si, sj]), np.concatenate([sj, si]), np.concatenate([ss, ss]), (n_e, n_e))
    return RetrievalGraph(chunks, entities, documents, ce, relations, relation_labels, labels, cooc, synonyms, vectors,
                          embedding_model=model, signature=signature, built_s=time.perf_counter() - started)
