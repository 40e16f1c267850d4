"""The extractor interface, and the schema-enforcing step every extractor's output goes through.

An extractor turns chunk texts into ``RawExtraction`` (spans in chunk offsets, schema
labels). ``link_extraction`` then makes typed mentions in document offsets, links each
relation's ends to mentions by span, checks them against the schema's source/target
types, and counts every relation it drops by reason.

Stored precision: every confidence that leaves this module (mentions, relations,
classification scores, floats inside structures) is rounded to ``CONFIDENCE_DIGITS``
decimal places, and thresholds are compared with the rounded value, so what is kept
agrees with what is stored. The model's floats shift in the last digits with the other
chunks that share its batch; rounding hides shifts below 5e-5, so a rerun that batches
chunks differently stores the same graph. (A value that lies within the shift of a
rounding boundary, such as x.xxxx5, can still round either way: rounding makes such a
flip rare, it cannot make it impossible.)
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

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
    confidence: float | None = None  # the decoder's own (constrained decoding); None: the weaker end's


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


CONFIDENCE_DIGITS = 4

# An ATX Markdown heading line ("# Title", "## Part"): not "#hashtag", not "#" inside a line.
_HEADING_LINE = re.compile(r"[ \t]{0,3}#{1,6}(?:[ \t]|$)")


def stored_confidence(value: float) -> float:
    """A confidence at the stored precision (``CONFIDENCE_DIGITS`` decimal places)."""
    return round(float(value), CONFIDENCE_DIGITS)


def _clean_span(chunk_text: str, start: int, end: int) -> tuple[int, int] | None:
    """The span clipped to the chunk and stripped of whitespace; None when empty or crossing a break."""
    start = max(0, start)
    end = min(len(chunk_text), end)
    while start < end and chunk_text[start].isspace():
        start += 1
    while end > start and chunk_text[end - 1].isspace():
        end -= 1
    if start >= end or crosses_break(chunk_text, start, end):
        return None
    return start, end


def crosses_break(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` runs across a paragraph or heading boundary.

    A boundary is a blank line (two newlines with only whitespace between), or a newline
    that ends or starts an ATX Markdown heading line. The readers put a blank line after
    every heading and title they recognise (HTML, rendered Markdown, DOCX heading styles,
    a plain-text headline), so the heading rule is for text that was not rendered: plain
    text and JSON/CSV records. A single newline after any other short line is not a
    boundary: it cannot be told from a hard wrap inside a sentence ("Marcello\nViotti").

    A span across a boundary is dropped, not trimmed to its longest part: the model
    scored and typed the whole span, so a trimmed part would be stored with a type and a
    confidence nobody gave it (``COMPANY:"Viotti dies\n\nConductor Marcello Viotti"``
    trimmed is ``COMPANY:"Conductor Marcello Viotti"``). A real entity in it is normally
    also found as a span of its own.
    """
    newline = text.find("\n", start, end)
    while newline != -1:
        line_start = text.rfind("\n", 0, newline) + 1
        next_end = text.find("\n", newline + 1)
        next_line = text[newline + 1 : len(text) if next_end == -1 else next_end]
        if (
            not next_line.strip()
            or _HEADING_LINE.match(text, line_start, newline)
            or _HEADING_LINE.match(next_line)
        ):
            return True
        newline = text.find("\n", newline + 1, end)
    return False


def without_header(raw: RawExtraction, header_length: int, text: str = "") -> RawExtraction:
    """What the model found in a chunk read with its header (``Chunk.contextual_text``), in offsets into the
    chunk's ``text``: entity spans inside the header are dropped (they have no place in the document); a
    relation end there moves to the same name in the text when the text has it ("Title: Acme" / "Acme bought
    Globex"), else the relation is dropped. Classifications and structures read the whole input and stay."""
    if not header_length:
        return raw

    def shifted(span: RawSpan) -> RawSpan | None:
        if span.start >= header_length:
            return RawSpan(span.label, span.text, span.start - header_length, span.end - header_length, span.confidence)
        at = text.find(span.text) if span.text else -1
        if at < 0:
            return None
        return RawSpan(span.label, span.text, at, at + len(span.text), span.confidence)

    entities = [RawSpan(e.label, e.text, e.start - header_length, e.end - header_length, e.confidence)
                for e in raw.entities if e.start >= header_length]
    relations = []
    for relation in raw.relations:
        head, tail = shifted(relation.head), shifted(relation.tail)
        if head is not None and tail is not None:
            relations.append(RawRelation(relation.label, head, tail, relation.confidence))
    return RawExtraction(entities, relations, raw.classifications, raw.structures)


def link_extraction(chunk: Chunk, raw: RawExtraction, schema: ExtractionSchema) -> ChunkExtraction:
    """Schema-check one chunk's raw output and express it in document offsets."""
    best: dict[tuple[str, int, int], Mention] = {}
    for span in raw.entities:
        confidence = stored_confidence(span.confidence)
        if span.label not in schema.entities or confidence < schema.entity_threshold(span.label):
            continue
        cleaned = _clean_span(chunk.text, span.start, span.end)
        if cleaned is None:
            continue
        start, end = cleaned
        doc_start, doc_end = chunk.start + start, chunk.start + end
        key = (span.label, doc_start, doc_end)
        if key in best and best[key].confidence >= confidence:
            continue
        best[key] = Mention(
            id=mention_id(chunk.id, span.label, doc_start, doc_end),
            doc_id=chunk.doc_id,
            chunk_id=chunk.id,
            label=span.label,
            text=chunk.text[start:end],
            start=doc_start,
            end=doc_end,
            confidence=confidence,
        )
    mentions = sorted(best.values(), key=lambda m: (m.start, m.end, m.label))

    dropped: Counter[str] = Counter()
    relations: dict[tuple[str, str, str], RelationMention] = {}
    for rel in raw.relations:
        if rel.label not in schema.relations:
            dropped[DROP_UNKNOWN_LABEL] += 1
            continue
        confidence = stored_confidence(
            min(rel.head.confidence, rel.tail.confidence) if rel.confidence is None else rel.confidence)
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
            relations[key] = RelationMention(rel.label, head, tail, confidence)

    classifications: dict[str, list[LabelScore]] = {}
    for task, scores in raw.classifications.items():
        if task not in schema.classifications:
            continue
        kept = _at_threshold(scores, schema.classifications[task].threshold)
        if kept:
            classifications[task] = kept
    return ChunkExtraction(
        chunk=chunk,
        mentions=mentions,
        relations=sorted(relations.values(), key=lambda r: (r.label, r.head.start, r.tail.start)),
        classifications=classifications,
        structures=[
            StructureInstance(s.name, _round_floats(s.fields)) for s in raw.structures if s.name in schema.structures
        ],
        dropped_relations=dict(dropped),
    )


def _at_threshold(scores: Sequence[LabelScore], threshold: float) -> list[LabelScore]:
    """The labels scoring at least ``threshold`` at stored precision, best first; [] when none does.

    gliner2 answers a single-label task with its top label whatever its score, so the
    threshold is applied here: a chunk no label fits gets no label, not the least bad one.
    """
    rounded = (LabelScore(s.label, stored_confidence(s.confidence)) for s in scores)
    return sorted((s for s in rounded if s.confidence >= threshold), key=lambda s: (-s.confidence, s.label))


def _round_floats(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _round_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_round_floats(v) for v in value]
    if isinstance(value, float):
        return stored_confidence(value)
    return value


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
    """Document-level labels from chunk-level ones, kept only at or above the task's threshold.

    Single-label task: each chunk votes for its label with its confidence, weighted by
    the chunk's token count; a chunk without a label abstains but still counts in the
    total weight. The label with the highest weighted mean wins, if that mean reaches the
    threshold: a document whose chunks mostly have no label, or disagree, gets none.
    Multi-label task: a label the document carries if any chunk carries it, with the
    highest chunk confidence. A task without a label is left out of the result, as it
    is in a chunk's ``classifications``. Scores are at the stored precision.
    """
    result: dict[str, list[LabelScore]] = {}
    total_weight = sum(max(e.chunk.token_count, 1) for e in extractions) or 1
    for task, spec in schema.classifications.items():
        if spec.multi_label:
            best: dict[str, float] = {}
            for extraction in extractions:
                for score in extraction.classifications.get(task, []):
                    best[score.label] = max(best.get(score.label, 0.0), score.confidence)
            scores = _at_threshold([LabelScore(label, conf) for label, conf in best.items()], spec.threshold)
        else:
            votes: Counter[str] = Counter()
            for extraction in extractions:
                top = extraction.classifications.get(task)
                if top:
                    votes[top[0].label] += top[0].confidence * max(extraction.chunk.token_count, 1)
            means = [LabelScore(label, weight / total_weight) for label, weight in votes.items()]
            scores = _at_threshold(means, spec.threshold)[:1]
        if scores:
            result[task] = scores
    return result
