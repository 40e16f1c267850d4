"""Typed data that flows through the stages: read -> chunk -> extract -> reconcile -> write -> retrieve.

Offsets are always character offsets into ``Document.text`` (end exclusive), so
``document.text[m.start:m.end] == m.text`` holds for every mention.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, TypedDict


# The graph's structural edges; every other edge between two entities is a relation (its label).
# IN_COMMUNITY (entity -> community) and SUBCOMMUNITY_OF (community -> its parent) are written by
# ``kgbuild.communities`` through ``GraphSink.replace_communities``.
STRUCTURAL_EDGES = frozenset({"HAS_CHUNK", "NEXT_CHUNK", "MENTIONS", "IN_COMMUNITY", "SUBCOMMUNITY_OF"})
# The vector payload field holding a chunk's community ids (every level; an id names its level), keyword-indexed.
COMMUNITIES_FIELD = "communities"


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file found by the walker, before it is parsed."""

    path: str  # absolute path on disk
    rel_path: str  # POSIX path relative to the ingest root; the stable name of the file
    size: int
    mtime: float


@dataclass(frozen=True, slots=True)
class Document:
    id: str  # deterministic: derived from rel_path (+ record id for JSON/CSV records)
    path: str  # rel_path, or "rel_path#record_id" for one record of a JSON/CSV file
    source_path: str  # rel_path of the file it came from
    title: str
    text: str
    mtime: float
    content_hash: str  # sha256 of title + text
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """A file or record that was not ingested, and why."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class Chunk:
    id: str  # document id + position
    doc_id: str
    position: int
    start: int
    end: int
    text: str
    token_count: int
    header: str = ""  # the document's title, read with the text (embedded, BM25-indexed, extracted); "" for none

    @property
    def contextual_text(self) -> str:
        """What the embedder, BM25 and the extractor read: the header, a blank line, the text. Offsets (``start``,
        ``end`` and every mention's) still point into the document text."""
        return f"{self.header}{HEADER_SEPARATOR}{self.text}" if self.header else self.text


HEADER_SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True)
class Mention:
    """One entity span found in one chunk, with document offsets."""

    id: str
    doc_id: str
    chunk_id: str
    label: str
    text: str
    start: int
    end: int
    confidence: float


@dataclass(frozen=True, slots=True)
class RelationMention:
    """One relation found in one chunk, its ends linked to mentions by span."""

    label: str
    head: Mention
    tail: Mention
    confidence: float


@dataclass(frozen=True, slots=True)
class LabelScore:
    label: str
    confidence: float


@dataclass(frozen=True, slots=True)
class StructureInstance:
    """One filled-in structure (for example a product with name, price, date)."""

    name: str
    fields: dict[str, Any]


@dataclass(slots=True)
class ChunkExtraction:
    """Everything one extraction pass produced for one chunk, schema-checked."""

    chunk: Chunk
    mentions: list[Mention] = field(default_factory=list)
    relations: list[RelationMention] = field(default_factory=list)
    classifications: dict[str, list[LabelScore]] = field(default_factory=dict)
    structures: list[StructureInstance] = field(default_factory=list)
    dropped_relations: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class ExtractedDocument:
    document: Document
    chunks: list[Chunk]
    extractions: list[ChunkExtraction]
    classifications: dict[str, list[LabelScore]]  # aggregated over the chunks


@dataclass(slots=True)
class Entity:
    """A canonical entity: every mention with the same type and normalised name."""

    id: str
    type: str
    key: str  # "TYPE:normalised name", the filter key
    name: str  # canonical surface form
    aliases: list[str]
    mention_count: int
    confidence: float  # highest mention confidence
    alias_counts: dict[str, int] = field(default_factory=dict)  # surface form -> mentions (distinct spans) written so


# what a mention's reason says when the writer gave none (a graph written before reasons were recorded)
RULE_UNRECORDED = ""
RULE_EXACT = "exact"


@dataclass(frozen=True, slots=True)
class ResolutionReason:
    """Why one mention belongs to its entity: the resolution rules that took its name there, and the name it
    joined. Stored with every mention, so an entity's explanation is derived from the mentions it still has.

    ``rule`` is ``"exact"`` when the mention's normalised name is the entity's, else the rules in the order
    they applied, joined by ``+`` (``"surname"``, ``"titles+surname"``, ``"aliases"``, ``"override"``: a
    ``merge`` of the index's resolution.yaml); ``via`` is the name it joined ("Tony Blair", "United States").

    >>> ResolutionReason("titles+surname", "Tony Blair").rules
    ('titles', 'surname')
    """

    rule: str = RULE_EXACT
    via: str = ""

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(r for r in self.rule.split("+") if r and r != RULE_EXACT)


UNRECORDED = ResolutionReason(RULE_UNRECORDED, "")


@dataclass(frozen=True, slots=True)
class RelationEvidence:
    doc_id: str
    chunk_id: str
    head_start: int
    head_end: int
    tail_start: int
    tail_end: int
    confidence: float


@dataclass(slots=True)
class Relation:
    id: str
    label: str
    head_id: str
    tail_id: str
    confidence: float  # highest evidence confidence
    evidence: list[RelationEvidence]

    @property
    def count(self) -> int:
        return len(self.evidence)


@dataclass(slots=True)
class Reconciliation:
    entities: dict[str, Entity]  # by entity id
    mention_entity: dict[str, str]  # mention id -> entity id
    relations: list[Relation]
    mention_reasons: dict[str, ResolutionReason] = field(default_factory=dict)  # mention id -> why it is in its entity


@dataclass(slots=True)
class GraphBatch:
    """What a graph sink writes at once: whole documents with their canonical entities and relations.

    ``mention_reasons`` says why each mention is in its entity; sinks store it on the mention (a mention
    it does not name is stored with an unrecorded reason, ``rule == ""``).
    """

    documents: list[ExtractedDocument]
    entities: dict[str, Entity]
    mention_entity: dict[str, str]
    relations: list[Relation]
    mention_reasons: dict[str, ResolutionReason] = field(default_factory=dict)

    def reason(self, mention_id: str) -> ResolutionReason:
        return self.mention_reasons.get(mention_id, UNRECORDED)


@dataclass(frozen=True, slots=True)
class ChunkPoint:
    """One vector-store point: a chunk, its embedding and its filterable payload."""

    id: str  # a UUID derived from the chunk id
    chunk_id: str
    vector: list[float]
    payload: dict[str, Any]


@dataclass(slots=True)
class IndexStats:
    documents: int = 0
    chunks: int = 0
    mentions: int = 0
    entities: int = 0
    relations: int = 0
    entities_by_type: dict[str, int] = field(default_factory=dict)
    relations_by_type: dict[str, int] = field(default_factory=dict)
    vector_points: int = 0
    schema_name: str = ""
    schema_version: str = ""
    model: str = ""
    embedding_model: str = ""
    kgbuild_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class IngestReport:
    root: str
    out_dir: str
    files_seen: int = 0
    documents_read: int = 0  # new or changed, sent through the model
    documents_unchanged: int = 0
    documents_removed: int = 0
    documents_recovered: int = 0  # left half-written by an interrupted run, removed and read again
    skipped: list[SkippedFile] = field(default_factory=list)
    chunks: int = 0
    mentions: int = 0
    entities: int = 0  # canonical entities touched by this run
    relations_kept: int = 0
    relations_dropped: dict[str, int] = field(default_factory=dict)
    classifications: int = 0
    elapsed_s: float = 0.0
    # wall seconds per stage (model, embed, graph write, ...); the rest of elapsed_s is reading and bookkeeping
    stage_seconds: dict[str, float] = field(default_factory=dict)
    model_runtime: dict[str, str] = field(default_factory=dict)  # e.g. {"precision": "bf16", "attention": "eager"}
    totals: IndexStats = field(default_factory=IndexStats)
    # why files were extracted again although their content did not change (model, schema, chunking ...)
    reextraction_reason: str = ""
    documents_kept_unreadable: int = 0  # indexed documents kept because their folder or file could not be read
    warnings: list[str] = field(default_factory=list)

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def time_breakdown(self) -> list[tuple[str, float]]:
        """(stage, seconds), largest first; what no stage timed (reading, hashing, state) is "read and the rest"."""
        stages = dict(self.stage_seconds)
        stages["read and the rest"] = max(self.elapsed_s - sum(stages.values()), 0.0)
        return sorted(stages.items(), key=lambda item: -item[1])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["chunks_per_s"] = round(self.chunks_per_s, 2)
        data["relations_dropped_total"] = sum(self.relations_dropped.values())
        return data


# -- what the stores give back (the read side of the sink Protocols) -------------------------


@dataclass(slots=True)
class EntityGraphData:
    """The entity graph as retrieval reads it: entities with their names, which chunk mentions which
    entity (one pair per chunk and entity), and the relation edges between entities."""

    entities: dict[str, Entity] = field(default_factory=dict)  # by entity id
    mentions: list[tuple[str, str]] = field(default_factory=list)  # (chunk id, entity id)
    relations: list[tuple[str, str, str]] = field(default_factory=list)  # (head id, label, tail id)


class DocumentRecord(TypedDict):
    path: str
    source_path: str
    title: str
    content_hash: str
    classifications: dict[str, list[dict[str, Any]]]  # task -> [{"label", "confidence"}]


class ChunkRecord(TypedDict):
    doc_id: str
    position: int
    start: int
    end: int
    text: str
    token_count: int
    classifications: dict[str, list[dict[str, Any]]]


class EntityRecord(TypedDict):
    type: str
    key: str
    name: str
    aliases: list[str]
    alias_counts: dict[str, int]  # alias -> mentions (distinct spans), from the mentions that remain
    mention_count: int
    confidence: float


class MentionRecord(TypedDict):
    id: str
    chunk_id: str
    entity_id: str
    doc_id: str
    label: str
    text: str
    start: int
    end: int
    confidence: float
    rule: str  # ResolutionReason.rule: why the mention is in its entity ("exact", "titles+surname", ...)
    via: str  # ResolutionReason.via: the name it joined


class EvidenceRecord(TypedDict):
    doc_id: str
    chunk_id: str
    head_start: int
    head_end: int
    tail_start: int
    tail_end: int
    confidence: float


class RelationRecord(TypedDict):
    id: str
    label: str
    head_id: str
    tail_id: str
    confidence: float
    count: int
    evidence: list[EvidenceRecord]


@dataclass(slots=True)
class GraphExport:
    """A whole graph in one store-independent form: what ``GraphSink.export()`` returns.

    Two stores hold the same graph exactly when their exports are equal once every list is sorted
    (``kgbuild.verify.canonical_export``); ``problems`` lists what a store holds that kgbuild would not write.
    """

    documents: dict[str, DocumentRecord] = field(default_factory=dict)
    chunks: dict[str, ChunkRecord] = field(default_factory=dict)
    entities: dict[str, EntityRecord] = field(default_factory=dict)
    mentions: list[MentionRecord] = field(default_factory=list)  # one per MENTIONS edge
    has_chunk: list[list[str]] = field(default_factory=list)  # [doc id, chunk id]
    next_chunk: list[list[str]] = field(default_factory=list)  # [chunk id, next chunk id]
    relations: list[RelationRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents, "chunks": self.chunks, "entities": self.entities, "mentions": self.mentions,
            "has_chunk": self.has_chunk, "next_chunk": self.next_chunk, "relations": self.relations,
            "problems": self.problems,
        }


@dataclass(frozen=True, slots=True)
class CommunityRecord:
    """A community as the graph stores hold it (``GraphSink.replace_communities``): a ``Community`` node with
    ``IN_COMMUNITY {level}`` edges from its member entities and ``SUBCOMMUNITY_OF`` to its parent.
    The full summary is in ``<out>/communities/`` (``kgbuild.communities``)."""

    id: str
    level: int
    title: str
    parent: str  # "" at level 0
    members: tuple[str, ...]  # entity ids, sorted
    top_entities: tuple[str, ...] = ()  # "TYPE:name", most central first
    top_terms: tuple[str, ...] = ()
    summary: str = ""

    @property
    def size(self) -> int:
        return len(self.members)


@dataclass(slots=True)
class VectorExport:
    """Every point of a vector store: payload by point id (``VectorSink.export()``)."""

    points: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.points)


@dataclass(frozen=True, slots=True)
class VectorFilter:
    """Metadata conditions; every listed condition must hold.

    ``classes`` matches a label given to the chunk or to its whole document;
    ``paths`` matches a document path or the file it came from (any of them).
    """

    entity_keys: tuple[str, ...] = ()
    entity_types: tuple[str, ...] = ()
    classes: tuple[tuple[str, str], ...] = ()
    paths: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()  # any of them
    # each group: any one of its keys ("PERSON:Blair" -> the keys of Tony Blair and of a Blair left on his own)
    entity_any: tuple[tuple[str, ...], ...] = ()
    communities: tuple[str, ...] = ()  # any of them (payload field ``communities``)

    def is_empty(self) -> bool:
        return not (self.entity_keys or self.entity_types or self.classes or self.paths or self.doc_ids
                    or self.entity_any or self.communities)

    @property
    def all_entity_keys(self) -> tuple[str, ...]:
        """Every key the filter names, in its own groups or alone: the keys a hit is said to match."""
        return self.entity_keys + tuple(k for group in self.entity_any for k in group)

    def matches(self, payload: dict[str, Any]) -> bool:
        """The same conditions evaluated on one point payload in Python (graph and BM25 channels)."""
        keys, types = set(payload.get("entity_keys") or ()), set(payload.get("entity_types") or ())
        if not (set(self.entity_keys) <= keys and set(self.entity_types) <= types):
            return False
        if any(keys.isdisjoint(group) for group in self.entity_any):
            return False
        for task, label in self.classes:
            labels = {*((payload.get("class") or {}).get(task) or ()), *((payload.get("doc_class") or {}).get(task) or ())}
            if label not in labels:
                return False
        if self.paths and payload.get("path") not in self.paths and payload.get("source_path") not in self.paths:
            return False
        if self.communities and set(payload.get(COMMUNITIES_FIELD) or ()).isdisjoint(self.communities):
            return False
        return not self.doc_ids or payload.get("doc_id") in self.doc_ids


@dataclass(frozen=True, slots=True)
class VectorHit:
    point_id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)


# -- what queries return -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EntityRef:
    """An entity as a query hit names it (from the chunk's payload)."""

    id: str
    key: str
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class RetrievalReason:
    """Why a hybrid query returned a chunk: one per channel that found it.

    ``path`` (graph channel) runs from a query entity to the chunk, alternating node and edge
    labels: ``["PERSON:jane park", "CEO_OF", "COMPANY:acme", "MENTIONED_IN", "doc_...:00000"]``.
    """

    channel: str  # vector | graph | bm25
    rank: int  # 1-based rank within the channel
    score: float  # the channel's own score (cosine, personalised PageRank, BM25)
    entity: str | None = None  # graph channel: the query entity (key) the path starts from
    path: tuple[str, ...] = ()


@dataclass(slots=True)
class QueryHit:
    chunk_id: str
    doc_id: str
    path: str
    title: str
    start: int
    end: int
    score: float
    text: str
    entities: list[EntityRef]  # the chunk's entities; those that matched a filter come first
    matched_entities: list[str]  # entity keys that satisfied an --entity filter
    classes: dict[str, list[str]]
    reasons: list[RetrievalReason] = field(default_factory=list)  # hybrid queries: why it was retrieved
    communities: list[str] = field(default_factory=list)  # the chunk's community ids (every level)
    # hybrid with community context: {id, level, title, top_entities, top_terms} of each of its communities
    community_context: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
