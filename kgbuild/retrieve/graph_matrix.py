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
    plain.txt          per chunk: its text's plain words (what title links match on)
    tokens.txt         per chunk: its BM25 tokens
    bm25/              the BM25 index over the chunks (``lexical.save_index``)
    documents.json     each document's signature and each chunk's title: what an update compares and reuses

The parts are kept raw (no specificity, no channel weights) so that the query side can switch each off
(``GraphChannelSettings``) without a rebuild. The build is a pure function of the store's entities and relations
(sorted by id) and the chunk payloads (the entities each chunk names, its title and text), so the stored matrix
after any sequence of ingests equals a fresh build of the same corpus. An ingest that changed a few documents
updates it (``update_retrieval_graph``): the unchanged chunks keep their rows, mention pairs, plain words and
tokens, and only the written chunks are read and processed, before the same assembly; entity names already
embedded are reused from the stored vectors, so only new names are embedded.
"""

from __future__ import annotations

import hashlib
import json
import math
import mmap
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from kgbuild.folders import replace_folder, staging_folder
from kgbuild.memory import release_heap, release_mapped_pages
from kgbuild.retrieve.chunk_rows import (
    BM25_DIR, PLAIN_TEXTS, TOKENS, MentionPairs, Row, SpilledPayloads, WrittenRows, merge_rows, plain_words,
    rows_from_payloads, write_rows,
)
from kgbuild.types import Entity, EntityGraphData

if TYPE_CHECKING:  # pragma: no cover
    from scipy import sparse

    from kgbuild.embed import Embedder
    from kgbuild.state import IngestState

FORMAT = 3  # 2: with the chunk table and the BM25 index; 3: title entities
RETRIEVAL_DIR = "retrieval"
DOCUMENTS = "documents.json"  # the documents' signatures and the chunks' titles (``update_retrieval_graph``)
NAME_VECTORS = "name_vectors.npy"  # one normalised vector per entity name, in entity order
TITLE = "TITLE"  # the type of the entities that document titles make
SYNONYM_THRESHOLD = 0.9
MIN_COOCCURRENCE = 2  # chunks two entities must share for a co-occurrence edge
_PARTS = ("chunk_entity", "relations", "relation_labels", "cooccurrence", "synonyms")


def retrieval_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / RETRIEVAL_DIR


def rows_staging(folder: Path) -> Path:
    """Where a build writes the rows of the graph it will store in ``folder`` (moved in by ``RetrievalGraph.save``)."""
    return staging_folder(Path(folder).with_name(Path(folder).name + ".rows"))


def document_signatures(state: IngestState) -> dict[str, str]:
    """Per document: its content hash, chunks and links across documents (a links pass moves mentions between
    entities without a new content hash), in document id order."""
    docs = state.all_documents()
    out: dict[str, str] = {}
    for doc_id in sorted(docs):
        d = docs[doc_id]
        links = json.dumps(d.cross_links, separators=(",", ":")) if d.cross_links else ""
        out[doc_id] = f"{d.content_hash}\x1f{d.chunks}\x1f{links}"
    return out


def extraction_signature(state: IngestState) -> str:
    return hashlib.sha256(json.dumps(state.manifest.extraction or {}, sort_keys=True, default=str).encode()).hexdigest()[:16]


def state_signature(state: IngestState, vector_points: int) -> str:
    """What the retrieval graph must describe: the documents (``document_signatures``) and the extraction
    fingerprint of the ingest state, and the number of points in the vector store (which a LlamaIndex writer
    changes without file records). Another value at open means the stores changed since the graph was built
    (``kgbuild remove``, a LlamaIndex writer, an index built before the graph was stored)."""
    digest = hashlib.sha256()
    for doc_id, signature in document_signatures(state).items():
        digest.update(f"{doc_id}\x1f{signature}\n".encode())
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
    rows: WrittenRows | None = field(default=None, repr=False)  # the chunk rows it was built from (``save`` stores them)
    updated: bool = False  # made by ``update_retrieval_graph`` (not a build over the stores)
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

    def save(self, folder: Path, payloads: Mapping[str, dict[str, Any]] | None = None, *,
             state: IngestState | None = None) -> None:
        """Written to a sibling folder and renamed into place: a reader sees the old graph or the new one.
        The chunk rows (``rows``, else ``payloads``: chunk id -> vector-store payload) are stored with it: the chunk
        table, their plain texts and BM25 tokens, and the BM25 index (``kgbuild.retrieve.chunk_rows``); with the
        ``state`` it describes, the documents' signatures, which ``update_retrieval_graph`` compares to find what
        changed. Rows written to a folder are moved, not copied: a graph's rows are saved once."""
        folder = Path(folder)
        tmp = staging_folder(folder)
        # the vectors first: a build maps them from a file in its rows' folder, which moving the rows removes
        saved_vectors = folder / NAME_VECTORS
        mapped = _mapped_file(self.name_vectors)
        if mapped is not None:  # the file as it is, not read through this process
            shutil.copyfile(mapped, tmp / NAME_VECTORS)
        else:
            np.save(tmp / NAME_VECTORS, self.name_vectors.astype(np.float32, copy=False))
        if self.name_vectors.size:  # read from the file from here on: the default transition's build overlapped them
            self.name_vectors = np.load(tmp / NAME_VECTORS, mmap_mode="r")
        rows = self.rows
        if rows is None and payloads is not None:
            rows = write_rows(rows_from_payloads(payloads))
        if rows is not None:
            rows.move_into(tmp)
            if state is not None:
                documents = {"extraction": extraction_signature(state), "signatures": document_signatures(state),
                             "titles": rows.titles}
                (tmp / DOCUMENTS).write_text(json.dumps(documents, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
            rows.close()
            self.rows = None
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
        nodes = {"chunks": self.chunk_ids, "labels": self.labels,
                 "entities": [[e.id, e.key, e.type, e.name, list(e.aliases), e.df, e.confidence] for e in self.entities]}
        (tmp / "nodes.json").write_text(json.dumps(nodes, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        meta = {"format": FORMAT, "signature": self.signature, "documents": self.documents, "chunks": len(self.chunk_ids),
                "entities": len(self.entities), "embedding_model": self.embedding_model, "built_s": round(self.built_s, 3),
                "updated": self.updated}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        replace_folder(tmp, folder)
        # saved, the name vectors are read from the folder on demand (a large index's are tens of MiB, and what
        # runs next, the communities, does not read them; 27 MiB at 10,000 chunks, BENCHMARKS.md scale-out)
        if self.name_vectors.size:
            self.name_vectors = np.load(saved_vectors, mmap_mode="r")

    @classmethod
    def load(cls, folder: Path, *, map_vectors: bool = False) -> RetrievalGraph | None:
        """The stored graph, or None where there is none (or of another format). ``map_vectors``: the name vectors
        mapped from their file, read only where used (27 MiB at 10,000 chunks that the communities never read)."""
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
                   name_vectors=np.load(folder / NAME_VECTORS, mmap_mode="r" if map_vectors else None), embedding_model=meta.get("embedding_model", ""),
                   signature=meta.get("signature", ""), built_s=float(meta.get("built_s", 0.0)), folder=folder,
                   updated=bool(meta.get("updated")), **parts)

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


def _mapped_file(vectors: np.ndarray) -> Path | None:
    """The ``.npy`` file a matrix is, where it is one mapped whole (``np.load(mmap_mode=...)``, ``open_memmap``)."""
    if isinstance(vectors, np.memmap) and isinstance(vectors.base, mmap.mmap) and vectors.filename:
        return Path(vectors.filename)
    return None


def _stored_name_vectors(folder: Path | None, embedding_model: str) -> dict[str, np.ndarray]:
    """Name -> vector from a stored graph built with the same embedder (reused: only new names are embedded)."""
    if folder is None or not (folder / "nodes.json").exists():
        return {}
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT or meta.get("embedding_model") != embedding_model:
            return {}
        nodes = json.loads((folder / "nodes.json").read_text(encoding="utf-8"))
        vectors = np.load(folder / NAME_VECTORS, mmap_mode="r")  # rows read as they are reused
    except (OSError, ValueError):
        return {}
    if len(vectors) != len(nodes["entities"]):
        return {}
    return {row[3]: vectors[i] for i, row in enumerate(nodes["entities"])}


def embed_names(names: Sequence[str], embedder: Embedder | None, known: Mapping[str, np.ndarray] | None = None,
                batch: int = 256, out_file: Path | None = None,
                after_block: Callable[[], Any] | None = None) -> tuple[np.ndarray, int]:
    """Normalised float32 vectors of ``names`` (rows in order); names in ``known`` are not embedded again.
    Returns the matrix and how many names were embedded now. The vectors go straight into the one matrix
    returned (a dict of per-name vectors, stacked and cast, held the names' vectors three times over); with
    ``out_file``, a ``.npy`` file mapped into memory, whose pages ``after_block`` (called after each block written)
    can let go of (``release_mapped_pages``): 27 MiB of names at 10,000 chunks then never sit in memory at once."""
    known = known or {}
    if embedder is None or not names:
        return np.zeros((0, 0), np.float32), 0
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        first.setdefault(name, i)
    todo = sorted(n for n in first if n not in known)
    reused = [n for n in first if n in known]
    out: np.ndarray | None = None

    def put(part: Sequence[str], vectors: Any) -> None:
        nonlocal out
        block = np.asarray(vectors, dtype=np.float32)
        if out is None:
            shape = (len(names), block.shape[1])
            out = np.empty(shape, dtype=np.float32) if out_file is None else \
                np.lib.format.open_memmap(out_file, mode="w+", dtype=np.float32, shape=shape)
        out[[first[n] for n in part]] = block
        if after_block is not None:
            after_block()

    for start in range(0, len(todo), batch):
        part = todo[start:start + batch]
        put(part, embedder.embed(part))
    for start in range(0, len(reused), 4096):
        part = reused[start:start + 4096]
        put(part, np.stack([np.asarray(known[n], dtype=np.float32) for n in part]))
    assert out is not None
    repeated = np.array([i for i, name in enumerate(names) if first[name] != i], dtype=np.int64)
    if repeated.size:
        out[repeated] = out[[first[names[i]] for i in repeated.tolist()]]
    for start in range(0, len(out), 4096):
        rows = out[start:start + 4096]
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        rows /= np.where(norms == 0, 1.0, norms)
        if after_block is not None:
            after_block()
    if isinstance(out, np.memmap):
        out.flush()
    return out, len(todo)


def synonym_pairs(vectors: np.ndarray, types: Sequence[str], threshold: float = SYNONYM_THRESHOLD,
                  block: int = 1024, after_block: Callable[[], Any] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) for i < j of one type with cosine >= threshold, blockwise on both sides (memory: two blocks of
    vectors and a block x block of cosines, whatever the number of names of a type). ``after_block``: called after
    each pair of blocks (vectors mapped from a file: to let go of the pages read)."""
    rows, cols, sims = [], [], []
    if vectors.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    by_type: dict[str, list[int]] = {}
    for i, t in enumerate(types):
        by_type.setdefault(t, []).append(i)
    for t in sorted(by_type):
        idx = np.array(by_type[t], dtype=np.int64)
        for start in range(0, len(idx), block):
            left = idx[start:start + block]
            a = np.asarray(vectors[left])
            for col_start in range(start, len(idx), block):
                right = idx[col_start:col_start + block]
                s = a @ (a if col_start == start else np.asarray(vectors[right])).T
                r, c = np.nonzero(s >= threshold)
                keep = c + col_start > r + start
                r, c = r[keep], c[keep]
                rows.append(left[r])
                cols.append(right[c])
                sims.append(s[r, c].astype(np.float32))
                if after_block is not None:
                    after_block()
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(sims)


_PARENTHETICAL = re.compile(r"\s*\([^)]*\)\s*$")  # "Kevin Smith (footballer)" -> "Kevin Smith"


def title_links(rows: WrittenRows) -> tuple[dict[str, Entity], list[tuple[str, str]]]:
    """Document titles as entities of type ``TITLE``, and the chunks that mention each: the chunks of its
    documents, and every chunk whose text holds a title of two words or more (word boundaries, casefolded;
    one Aho-Corasick automaton over the plain texts). On an encyclopaedia a title is the subject's name ("Norman
    Taurog"), and a passage that names another article's subject is one step from it even where the
    extractor missed the name."""
    import ahocorasick

    from kgbuild.ids import stable_id
    from kgbuild.reconcile import normalize_name

    entities: dict[str, Entity] = {}
    mentions: set[tuple[str, str]] = set()
    by_plain: dict[str, str] = {}
    entity_of_title: dict[str, str | None] = {}
    for chunk, raw in zip(rows.ids, rows.titles):
        if raw not in entity_of_title:
            title = _PARENTHETICAL.sub("", raw).strip()
            name = normalize_name(title) if title else ""
            eid = stable_id("ent", TITLE, name) if name else None
            entity_of_title[raw] = eid
            if eid is not None and eid not in entities:
                entities[eid] = Entity(eid, TITLE, f"{TITLE}:{name}", title, [], 0, 1.0)
                plain = plain_words(title)
                if plain.count(" ") >= 1:
                    by_plain.setdefault(plain, eid)
        eid = entity_of_title[raw]
        if eid is not None:
            mentions.add((chunk, eid))
    if by_plain:
        automaton = ahocorasick.Automaton()
        for plain, eid in by_plain.items():
            automaton.add_word(f" {plain} ", eid)
        automaton.make_automaton()
        for chunk, plain in zip(rows.ids, rows.plain()):
            for _, eid in automaton.iter(f" {plain} "):
                mentions.add((chunk, eid))
    return entities, sorted(mentions)


def title_entities(payloads: Mapping[str, Mapping[str, Any]]) -> tuple[dict[str, Entity], list[tuple[str, str]]]:
    """``title_links`` of chunk payloads (chunk id -> payload)."""
    return title_links(write_rows(rows_from_payloads(payloads)))


def build_retrieval_graph(data: EntityGraphData, *, embedder: Embedder | None = None, chunk_ids: Iterable[str] = (),
                          signature: str = "", reuse_from: Path | None = None,
                          synonym_threshold: float = SYNONYM_THRESHOLD,
                          payloads: Mapping[str, Mapping[str, Any]] | None = None,
                          payload_pages: Iterable[Sequence[Mapping[str, Any]]] | None = None,
                          rows_folder: Path | None = None) -> RetrievalGraph:
    """The retrieval graph of a store's entity graph (``GraphSink.entity_graph()``; its mention pairs may be left
    out, ``mentions=False``, where the payloads name them).

    ``chunk_ids``: chunks to include beyond those that mention an entity (the ingest state's, so that a
    passage the dense channel seeds is a node even when it names nothing). The chunk payloads, as ``payloads``
    (chunk id -> the vector store's payload) or ``payload_pages`` (``VectorSink.payload_pages``: read once and
    spilled to a file, never all in memory): add the entities each chunk names (its ``entity_ids``, one per entity
    it mentions, as the graph store's MENTIONS have it) and the documents' titles as ``TITLE`` entities
    (``title_links``); their rows are written to ``rows_folder`` (``rows_staging``; else a temporary folder) and
    kept on the graph (``rows``) for ``save``. ``embedder``: embeds the entity names (synonym edges, embedding
    seeds); None leaves both out. ``reuse_from``: a stored graph whose name vectors are reused where the embedder
    is the same.
    """
    started = time.perf_counter()
    mentions = MentionPairs()
    mentions.add_all(data.mentions)
    rows = None
    if payload_pages is not None:
        spilled = SpilledPayloads(payload_pages, rows_folder)
        try:
            rows = write_rows(spilled.rows(), rows_folder, mentions) if len(spilled) else None
        finally:
            spilled.close()
    elif payloads:
        rows = write_rows(rows_from_payloads(payloads), rows_folder, mentions)
    graph = _assemble(data.entities, data.relations, mentions, rows, embedder=embedder, chunk_ids=chunk_ids,
                      reuse_from=reuse_from, synonym_threshold=synonym_threshold)
    graph.signature, graph.built_s = signature, time.perf_counter() - started
    return graph


def update_retrieval_graph(folder: Path, data: EntityGraphData, written: Mapping[str, Sequence[Mapping[str, Any]]],
                           documents: Mapping[str, str], extraction: str, vector_points: int, *,
                           embedder: Embedder | None = None, chunk_ids: Iterable[str] = (), signature: str = "",
                           synonym_threshold: float = SYNONYM_THRESHOLD,
                           rows_folder: Path | None = None) -> RetrievalGraph | None:
    """The stored retrieval graph brought up to date with what one ingest wrote, or None where it cannot be.

    ``written``: the chunk payloads of every document the run wrote (doc id -> payloads); ``documents``: every
    document's signature now (``document_signatures``); ``data``: the graph store's entities and relations
    (``entity_graph(mentions=False)``: entity names, aliases and confidences are the store's). The chunks of the
    documents neither written nor removed keep their rows (payload line, title, plain text, tokens: streamed from
    the stored folder into ``rows_folder``) and their mention pairs (their rows of the stored chunk x entity matrix);
    the written ones come from ``written``. Title links and the matrices are then assembled as a fresh build
    assembles them (``_assemble``), so the result equals ``build_retrieval_graph`` over the stores, with none of
    the per-chunk work (reading every payload and every mention from the stores, normalising every text) for the
    chunks that did not change.

    None (the caller builds from the stores) where nothing is stored, it was built under another extraction, a
    changed document is not in ``written`` (a run that crashed after writing it), or the vector store holds
    other points than the stored rows and the written ones (a LlamaIndex writer).
    """
    from scipy import sparse

    from kgbuild.retrieve.chunk_table import ChunkTable

    started = time.perf_counter()
    stored = _stored_documents(folder)
    if stored is None or stored.get("extraction") != extraction:
        return None
    old = RetrievalGraph.load(folder)
    table = ChunkTable.open(folder)
    if old is None or table is None:
        return None
    before: dict[str, str] = stored["signatures"]
    changed = {d for d, sig in documents.items() if before.get(d) != sig}
    if not changed <= set(written):
        return None
    gone = changed | set(written) | (set(before) - set(documents))
    kept = [c for c in table.ids if doc_of(c) not in gone]
    new_payloads = {str(p["chunk_id"]): p for ps in written.values() for p in ps if doc_of(str(p["chunk_id"])) in documents}
    if len(kept) + len(new_payloads) != vector_points:
        return None
    titles: list[str] = stored["titles"]
    rows_in_files = [_line_count(folder / name) if table.ids else 0 for name in (PLAIN_TEXTS, TOKENS)]
    if not rows_in_files[0] == rows_in_files[1] == len(titles) == len(table.ids):
        return None

    # the mention pairs of the kept chunks: their rows of the stored matrix, without the title links (made again)
    mentions = MentionPairs()
    old_rows = np.array([old.chunk_index[c] for c in kept if c in old.chunk_index], dtype=np.int64)
    if old_rows.size:
        coo = sparse.csr_matrix(old.chunk_entity[old_rows]).tocoo()
        not_title = np.array([e.type != TITLE for e in old.entities], dtype=bool)
        keep_pair = not_title[coo.col]
        for r, c in zip(coo.row[keep_pair].tolist(), coo.col[keep_pair].tolist()):
            mentions.add(old.chunk_ids[int(old_rows[r])], old.entities[c].id)
    del old, old_rows

    def kept_rows() -> Iterable[Row]:
        offsets = table._offsets
        with open(folder / PLAIN_TEXTS, encoding="utf-8") as plain, open(folder / TOKENS, encoding="utf-8") as tokens:
            for i, (chunk, words, tokenized) in enumerate(zip(table.ids, plain, tokens)):
                if doc_of(chunk) not in gone:
                    line = bytes(table._data[int(offsets[i]):int(offsets[i + 1])])
                    yield Row(chunk, line, titles[i], words.rstrip("\n"), tokenized.rstrip("\n"))

    rows = write_rows(merge_rows(kept_rows(), rows_from_payloads(new_payloads)), rows_folder, mentions)
    graph = _assemble(data.entities, data.relations, mentions, rows if rows.ids else None, embedder=embedder,
                      chunk_ids=chunk_ids, reuse_from=folder, synonym_threshold=synonym_threshold)
    graph.rows = rows
    graph.signature, graph.built_s = signature, time.perf_counter() - started
    graph.updated = True
    return graph


def _line_count(path: Path) -> int:
    """Lines of a file whose lines are joined by newlines without one at the end (``plain.txt``, ``tokens.txt``)."""
    count = 1
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            count += block.count(b"\n")
    return count


def _stored_documents(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / DOCUMENTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _assemble(entities_by_id: Mapping[str, Entity], relation_triples: Iterable[tuple[str, str, str]],
              mentions: MentionPairs, rows: WrittenRows | None, *, embedder: Embedder | None,
              chunk_ids: Iterable[str], reuse_from: Path | None, synonym_threshold: float) -> RetrievalGraph:
    """The graph of the entities, relations and (chunk, entity) pairs, with the title links of ``rows``."""
    all_entities = dict(entities_by_id)
    if rows is not None:
        titles, title_mentions = title_links(rows)
        all_entities.update(titles)
        mentions.add_all(title_mentions)
    entity_ids = sorted(all_entities)
    e_index = {e: i for i, e in enumerate(entity_ids)}
    chunk_names, entity_names, pair_chunks, pair_entities = mentions.arrays()
    entity_of_slot = np.array([e_index.get(e, -1) for e in entity_names], dtype=np.int64)
    named = entity_of_slot[pair_entities] >= 0
    pair_chunks, pair_entities = pair_chunks[named], entity_of_slot[pair_entities[named]]
    chunks = sorted({chunk_names[i] for i in np.unique(pair_chunks).tolist()} | set(chunk_ids))
    c_index = {c: i for i, c in enumerate(chunks)}
    chunk_of_slot = np.array([c_index.get(c, -1) for c in chunk_names], dtype=np.int64)
    n_e, n_c = len(entity_ids), len(chunks)
    # the distinct pairs, sorted by (chunk, entity): indices follow the sorted ids
    pairs = np.unique(chunk_of_slot[pair_chunks] * max(n_e, 1) + pair_entities)
    pair_c, pair_e = pairs // max(n_e, 1), pairs % max(n_e, 1)
    doc_slots: dict[str, int] = {}
    doc_of_chunk = np.array([doc_slots.setdefault(doc_of(c), len(doc_slots)) for c in chunks], dtype=np.int64)
    documents = len(doc_slots)
    entity_documents = np.unique(pair_e * max(documents, 1) + doc_of_chunk[pair_c]) if pairs.size else pairs
    df = np.bincount(entity_documents // max(documents, 1), minlength=n_e) if n_e else np.zeros(0, np.int64)
    entities: list[EntityNode] = []
    for i, eid in enumerate(entity_ids):
        ent: Entity = all_entities[eid]
        entities.append(EntityNode(eid, ent.key, ent.type, ent.name, tuple(sorted(set(ent.aliases))), int(df[i]),
                                   round(float(ent.confidence or 1.0), 6)))
    confidence = np.array([e.confidence for e in entities], dtype=np.float64)
    ce = _csr(pair_c, pair_e, confidence[pair_e] if n_e else np.zeros(0), (n_c, n_e))

    triples = sorted(set(relation_triples))
    labels = sorted({label for _, label, _ in triples})
    l_index = {label: i + 1 for i, label in enumerate(labels)}
    rel_rows, rel_cols, rel_labels = [], [], {}
    for head, label, tail in triples:
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
    release_heap()  # the product of every pair sharing a chunk, before the names are embedded (20 MiB at 10,000 chunks)

    model = getattr(embedder, "name", "") if embedder is not None else ""
    known = _stored_name_vectors(reuse_from, model) if embedder is not None else {}
    # with rows, the vectors are mapped from a file in their folder, its pages let go of as they are written and read
    folder = rows.folder if rows is not None else None
    release = (lambda: release_mapped_pages(folder)) if folder is not None else None
    vectors, _ = embed_names([e.name for e in entities], embedder, known,
                             out_file=folder / NAME_VECTORS if folder is not None else None, after_block=release)
    si, sj, ss = synonym_pairs(vectors, [e.type for e in entities], synonym_threshold, after_block=release)
    synonyms = _csr(np.concatenate([si, sj]), np.concatenate([sj, si]), np.concatenate([ss, ss]), (n_e, n_e))
    return RetrievalGraph(chunks, entities, documents, ce, relations, relation_labels, labels, cooc, synonyms, vectors,
                          embedding_model=model, rows=rows)
