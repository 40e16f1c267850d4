"""The typed requests and answers of ``kgbuild serve``: the HTTP API's OpenAPI schema and the MCP tools' output.

Built from the library's own results (``QueryHit``, ``Entity``, ``entities.AliasReason``, ``IndexStats``), one
converter each, so the HTTP routes and the MCP tools return the same shapes.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

Channel = Literal["vector", "graph", "bm25"]


def _as_list(value: Any) -> Any:
    """A filter given once may be a string; several, a list."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


class QueryRequest(BaseModel):
    """``POST /query``. Filters are those of ``kgbuild query``: every one given must hold."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra={
        "examples": [{"text": "who runs the company that makes the Vision Pro?", "k": 5, "hybrid": True,
                      "entity": ["COMPANY:Apple"], "type": ["PERSON"]}]})

    text: str = Field(description="What to search for.")
    k: int = Field(default=10, description="How many chunks (1 to the server's --max-k).")
    entity: list[str] = Field(default_factory=list, description="TYPE:NAME, resolved as `--entity` is: the chunk mentions it.")
    type: list[str] = Field(default_factory=list, description="Entity types the chunk must mention.")
    class_: list[str] = Field(default_factory=list, alias="class", description="TASK=LABEL the chunk or its document has.")
    doc: list[str] = Field(default_factory=list, description="Only these documents: a path as stored in the index (or under it).")
    community: list[str] = Field(default_factory=list, description="Only chunks of these communities (where the index has them).")
    hybrid: bool = Field(default=False, description="Fuse the vector, graph and BM25 channels (weighted RRF).")
    channels: Optional[list[Channel]] = Field(default=None, description="Hybrid channels to fuse (implies hybrid); default all.")

    _lists = field_validator("entity", "type", "class_", "doc", "community", mode="before")(_as_list)


class EntityRefModel(BaseModel):
    id: str
    key: str
    name: str
    type: str


class ReasonModel(BaseModel):
    """Why a hybrid query returned a chunk: one per channel that found it."""

    channel: Channel
    rank: int = Field(description="1-based rank within the channel.")
    score: float = Field(description="The channel's own score: cosine, personalised PageRank mass, BM25.")
    entity: Optional[str] = Field(default=None, description="Graph: the query entity the path starts from.")
    path: list[str] = Field(default_factory=list, description="Graph: entity -> relation -> ... -> chunk.")


class HitModel(BaseModel):
    rank: int
    chunk_id: str
    doc_id: str
    path: str = Field(description="The document, as stored in the index (relative to the ingested folder).")
    title: str
    start: int = Field(description="Character offset of the chunk in its document's text.")
    end: int
    score: float = Field(description="Cosine similarity (vector query) or the fused RRF score (hybrid).")
    text: str
    entities: list[EntityRefModel]
    matched_entities: list[str] = Field(description="Entity keys of the chunk that satisfied an entity filter.")
    classes: dict[str, list[str]]
    reasons: list[ReasonModel] = Field(default_factory=list, description="Hybrid: each channel that found it.")
    why: list[str] = Field(default_factory=list, description="The reasons in words.")


class GenerationModel(BaseModel):
    """The committed state of the index that answered: it changes when an ingest commits."""

    number: int
    loaded_at: float = Field(description="Unix time the server started answering from it.")
    documents: int
    chunks: int


class QueryResponse(BaseModel):
    text: str
    mode: Literal["vector", "hybrid"]
    channels: list[Channel]
    k: int
    took_ms: float
    fusion_weights: dict[str, float] = Field(default_factory=dict, description="Hybrid: the weights the fusion used.")
    generation: GenerationModel
    hits: list[HitModel]


class EntityModel(BaseModel):
    id: str
    key: str = Field(description="TYPE:normalised name; the filter key.")
    type: str
    name: str
    aliases: dict[str, int] = Field(description="Each name it is written as, with its mentions.")
    mention_count: int
    confidence: float = Field(description="The highest confidence of its mentions.")


class AliasReasonModel(BaseModel):
    """One way the entity is written, and why those mentions are in it."""

    alias: str
    rule: str = Field(description="The resolution rule: exact, surname, titles+surname, aliases, acronym, override, ...")
    via: str = Field(description="The name it joined.")
    explanation: str
    mentions: int
    documents: list[str]


class EntityDocumentModel(BaseModel):
    doc_id: str
    path: str
    mentions: int


class MentionModel(BaseModel):
    """One mention with its provenance."""

    doc_id: str
    path: str
    chunk_id: str
    start: int = Field(description="Character offset in the document's text.")
    end: int
    text: str
    confidence: float
    rule: str
    via: str


class EntityResponse(BaseModel):
    entity: EntityModel
    matched: str = Field(description="How the name asked for found it: key, alias, merge (resolution.yaml) or id.")
    why_merged: list[AliasReasonModel]
    documents: list[EntityDocumentModel]
    mentions: list[MentionModel] = Field(description="Its mentions, document by document (at most `mention_limit`).")
    mentions_total: int
    pinned: list[str] = Field(default_factory=list, description="The resolution.yaml pairs that name it.")
    generation: GenerationModel


class NeighbourModel(BaseModel):
    entity: EntityModel
    hops: int = Field(description="Relation steps from the entity asked for.")


class RelationEdgeModel(BaseModel):
    head: str = Field(description="Entity key.")
    label: str
    tail: str
    head_id: str
    tail_id: str


class NeighbourhoodResponse(BaseModel):
    entity: EntityModel
    hops: int
    neighbours: list[NeighbourModel]
    relations: list[RelationEdgeModel]
    truncated: bool = Field(description="True when more entities were in reach than the limit returned.")
    generation: GenerationModel


class ChunkModel(BaseModel):
    chunk_id: str
    position: int
    start: int
    end: int
    text: str
    entities: list[str] = Field(description="Entity keys mentioned in the chunk.")
    classes: dict[str, list[str]]


class DocumentResponse(BaseModel):
    doc_id: str
    path: str
    title: str
    content_hash: str
    classes: dict[str, list[str]] = Field(description="Labels of the whole document, per classification task.")
    entities: dict[str, int] = Field(description="Entity key -> chunks of the document that mention it.")
    chunks: list[ChunkModel]
    generation: GenerationModel


class StatsResponse(BaseModel):
    documents: int
    chunks: int
    mentions: int
    entities: int
    relations: int
    vector_points: int
    entities_by_type: dict[str, int]
    relations_by_type: dict[str, int]
    schema_name: str
    schema_version: str
    model: str
    embedding_model: str
    kgbuild_version: str
    graph_store: str
    vector_store: str
    generation: GenerationModel


class HealthResponse(BaseModel):
    status: Literal["ok", "unavailable"]
    index: str
    reason: str = Field(default="", description="Why the index cannot be served, when it cannot.")
    ingest_running: bool
    generation: Optional[GenerationModel] = None
    last_reload_error: str = ""
    reloads: int


class ErrorResponse(BaseModel):
    error: str = Field(description="What went wrong, and what to do about it.")
    field: Optional[str] = Field(default=None, description="The request field at fault, for a 400.")
    candidates: list[str] = Field(default_factory=list, description="404: close names that exist.")
