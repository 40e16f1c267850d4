"""The extractor interface, and the schema-enforcing step every extractor's output goes through.

An extractor turns chunk texts into ``RawExtraction`` (spans in chunk offsets, schema
labels). ``link_extraction`` then makes typed mentions in document offsets, links each
relation's ends to mentions by span, checks them against the schema's source/target
types, and counts every relation it drops by reason.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from kgbuild.chunk import TokenCounter
from kgbuild.ids import mention_id
from kgbuild.schema import ExtractionSchema
from kgbuild.types import Chunk, ChunkExtraction, LabelScore, Mention, RelationMention, StructureInstance


@dataclass(frozen=True, slots=True)
class RawSpan:
    label: str
    text: str
    start: int  # offsets into the chunk text
    end: int
    confidence: float


@dataclass(frozen=True, slots=True)
class RawRelation:
    label: str
    head: RawSpan  # head/tail labels are unused: their types come from linked mentions
    tail: RawSpan


@dataclass(slots=True)
class RawExtraction:
    entities: list[RawSpan] = field(default_factory=list)
    relations: list[RawRelation] = field(default_factory=list)
    classifications: dict[str, list[LabelScore]] = field(default_factory=dict)
    structures: list[StructureInstance] = field(default_factory=list)


class Extractor(Protocol):
    """What the pipeline needs of an extraction model. Constructing one must not load anything."""

    @property
    def name(self) -> str:
        """Model identifier recorded as provenance."""
        ...

    def token_counter(self) -> TokenCounter: ...

    def max_text_tokens(self) -> int:
        """How many text tokens fit in one pass next to the schema prompt."""
        ...

    def extract(self, texts: Sequence[str]) -> list[RawExtraction]:
        """One multi-task pass per text, sent in batches; one result per text, in order."""
        ...


# Reasons a relation is dropped; reported in the ingest summary.
DROP_UNKNOWN_LABEL = "unknown relation type"
DROP_BELOW_THRESHOLD = "below threshold"
DROP_HEAD_UNLINKED = "head is not an extracted entity"
DROP_TAIL_UNLINKED = "tail is not an extracted entity"
DROP_SOURCE_TYPE = "head type not allowed by schema"
DROP_TARGET_TYPE = "tail type not allowed by schema"
DROP_SELF = "head and tail are the same entity"


def _clean_span(chunk_text: str, start: int, end: int) -> tuple[int, int] | None:
    start = max(0, start)
    end = min(len(chunk_text), end)
    while start < end and chunk_text[start].isspace():
        start += 1
    while end > start and chunk_text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def link_extraction(chunk: Chunk, raw: RawExtraction, schema: ExtractionSchema) -> ChunkExtraction:
    """Schema-check one chunk's raw output and express it in document offsets."""
    best: dict[tuple[str, int, int], Mention] = {}
    for span in raw.entities:
        if span.label not in schema.entities or span.confidence < schema.entity_threshold(span.label):
            continue
        cleaned = _clean_span(chunk.text, span.start, span.end)
        if cleaned is None:
            continue
        start, end = cleaned
        doc_start, doc_end = chunk.start + start, chunk.start + end
        key = (span.label, doc_start, doc_end)
        if key in best and best[key].confidence >= span.confidence:
            continue
        best[key] = Mention(
            id=mention_id(chunk.id, span.label, doc_start, doc_end),
            doc_id=chunk.doc_id,
            chunk_id=chunk.id,
            label=span.label,
            text=chunk.text[start:end],
            start=doc_start,
            end=doc_end,
            confidence=float(span.confidence),
        )
    mentions = sorted(best.values(), key=lambda m: (m.start, m.end, m.label))

    dropped: Counter[str] = Counter()
    relations: dict[tuple[str, str, str], RelationMention] = {}
    for rel in raw.relations:
        if rel.label not in schema.relations:
            dropped[DROP_UNKNOWN_LABEL] += 1
            continue
        confidence = min(rel.head.confidence, rel.tail.confidence)
        if confidence < schema.relation_threshold(rel.label):
            dropped[DROP_BELOW_THRESHOLD] += 1
            continue
        spec = schema.relations[rel.label]
        head, reason = _link_end(chunk, rel.head, mentions, spec.source, DROP_HEAD_UNLINKED, DROP_SOURCE_TYPE)
        if head is None:
            dropped[reason] += 1
            continue
        tail, reason = _link_end(chunk, rel.tail, mentions, spec.target, DROP_TAIL_UNLINKED, DROP_TARGET_TYPE)
        if tail is None:
            dropped[reason] += 1
            continue
        if (head.start, head.end) == (tail.start, tail.end) or head.text.casefold() == tail.text.casefold():
            dropped[DROP_SELF] += 1
            continue
        key = (rel.label, head.id, tail.id)
        if key not in relations or relations[key].confidence < confidence:
            relations[key] = RelationMention(rel.label, head, tail, float(confidence))

    classifications = {
        task: sorted(scores, key=lambda s: (-s.confidence, s.label))
        for task, scores in raw.classifications.items()
        if task in schema.classifications and scores
    }
    return ChunkExtraction(
        chunk=chunk,
        mentions=mentions,
        relations=sorted(relations.values(), key=lambda r: (r.label, r.head.start, r.tail.start)),
        classifications=classifications,
        structures=[s for s in raw.structures if s.name in schema.structures],
        dropped_relations=dict(dropped),
    )


def _link_end(
    chunk: Chunk,
    end: RawSpan,
    mentions: list[Mention],
    allowed: list[str],
    unlinked_reason: str,
    type_reason: str,
) -> tuple[Mention | None, str]:
    """The mention at this span (exact first, else overlapping) whose type the schema allows."""
    cleaned = _clean_span(chunk.text, end.start, end.end)
    if cleaned is None:
        return None, unlinked_reason
    start, stop = chunk.start + cleaned[0], chunk.start + cleaned[1]
    exact = [m for m in mentions if m.start == start and m.end == stop]
    candidates = exact or [m for m in mentions if m.start < stop and start < m.end]
    if not candidates:
        return None, unlinked_reason
    typed = [m for m in candidates if m.label in allowed]
    if not typed:
        return None, type_reason
    return max(typed, key=lambda m: (m.confidence, -abs((m.end - m.start) - (stop - start)), m.label)), ""


def aggregate_classifications(
    extractions: Sequence[ChunkExtraction], schema: ExtractionSchema
) -> dict[str, list[LabelScore]]:
    """Document-level labels from chunk-level ones.

    Single-label task: each chunk votes for its label with its confidence, weighted by
    the chunk's token count; the label with the highest weighted mean wins. Multi-label
    task: a label the document carries if any chunk carries it, with the highest chunk
    confidence.
    """
    result: dict[str, list[LabelScore]] = {}
    total_weight = sum(max(e.chunk.token_count, 1) for e in extractions) or 1
    for task, spec in schema.classifications.items():
        if spec.multi_label:
            best: dict[str, float] = {}
            for extraction in extractions:
                for score in extraction.classifications.get(task, []):
                    best[score.label] = max(best.get(score.label, 0.0), score.confidence)
            scores = [LabelScore(label, conf) for label, conf in best.items()]
        else:
            votes: Counter[str] = Counter()
            for extraction in extractions:
                top = extraction.classifications.get(task)
                if top:
                    votes[top[0].label] += top[0].confidence * max(extraction.chunk.token_count, 1)
            scores = [LabelScore(label, weight / total_weight) for label, weight in votes.items()]
            scores = sorted(scores, key=lambda s: (-s.confidence, s.label))[:1]
        if scores:
            result[task] = sorted(scores, key=lambda s: (-s.confidence, s.label))
    return result
