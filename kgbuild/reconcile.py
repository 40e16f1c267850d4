"""Reconcile mentions into canonical entities, in memory, before anything is written.

Two mentions are the same entity when they have the same type and the same
normalised name (Unicode NFKC, case folding, punctuation, corporate suffixes and a
leading "the" removed). Where the model gave one span several types, the types vote,
weighted by confidence. Everything is grouping by key: cost is linear in the number
of mentions, and ids are deterministic (a hash of type and normalised name), so
entities written by separate runs or batches meet on the same id.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

from kgbuild.extract.base import DROP_SELF, DROP_SOURCE_TYPE, DROP_TARGET_TYPE
from kgbuild.ids import entity_id, relation_id
from kgbuild.schema import ExtractionSchema
from kgbuild.types import Entity, Mention, Reconciliation, Relation, RelationEvidence, RelationMention

CORPORATE_SUFFIXES = frozenset(
    {
        "inc", "incorporated", "ltd", "limited", "corp", "corporation", "llc", "plc", "gmbh",
        "ag", "sa", "nv", "bv", "oyj", "spa", "pty", "llp", "kk", "co",
    }
)
_APOSTROPHES = re.compile(r"['’`´]")
_DIGIT_COMMA = re.compile(r"(?<=\d),(?=\d)")
_WHITESPACE = re.compile(r"\s+")


def normalize_name(text: str) -> str:
    """The matching key of a surface form: ``normalize_name("APPLE, Inc.") == "apple"``."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    folded = _APOSTROPHES.sub("", folded)
    folded = _DIGIT_COMMA.sub("", folded)
    chars = []
    for i, ch in enumerate(folded):
        if unicodedata.category(ch).startswith("P"):
            # keep a decimal point between digits ("3.5"), drop every other punctuation mark
            keep = ch == "." and 0 < i < len(folded) - 1 and folded[i - 1].isdigit() and folded[i + 1].isdigit()
            chars.append(ch if keep else " ")
        elif unicodedata.category(ch) in ("Cc", "Cf"):
            chars.append(" ")
        else:
            chars.append(ch)
    words = _WHITESPACE.sub(" ", "".join(chars)).strip().split(" ")
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    while len(words) > 1 and words[-1] in CORPORATE_SUFFIXES:
        words = words[:-1]
    key = " ".join(w for w in words if w)
    return key or _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def entity_key(entity_type: str, name: str) -> str:
    """``entity_key("COMPANY", "Apple Inc.") == "COMPANY:apple"``: the filterable key of an entity."""
    return f"{entity_type}:{normalize_name(name)}"


def parse_entity_filter(value: str) -> tuple[str, str]:
    """``"COMPANY:apple inc."`` -> ``("COMPANY", "COMPANY:apple")``; raises ValueError on a bad form."""
    entity_type, sep, name = value.partition(":")
    if not sep or not entity_type.strip() or not name.strip():
        raise ValueError(f"entity filter {value!r} must look like TYPE:NAME, for example COMPANY:Apple")
    entity_type = entity_type.strip()
    return entity_type, entity_key(entity_type, name)


@dataclass(frozen=True, slots=True)
class SurfaceSummary:
    name: str
    aliases: list[str]
    mention_count: int
    confidence: float


def summarize_surfaces(occurrences: Iterable[tuple[str, int, int, str, float]]) -> SurfaceSummary:
    """Canonical name, aliases and count from ``(doc_id, start, end, text, confidence)`` occurrences.

    The same span seen twice (two overlapping chunks) counts once. The canonical name is
    the most frequent surface form; ties go to the higher summed confidence, then to a
    mixed-case form over an all-capitals or all-lower-case one, then the longer form,
    then the alphabetically first, so the result never depends on order.
    """
    tally = SurfaceTally()
    for occurrence in occurrences:
        tally.add(*occurrence)
    return tally.summary()


class SurfaceTally:
    """The occurrences behind ``summarize_surfaces``, kept up to date as they come and go: a store that
    holds an entity's mentions across many writes pays for each update's own occurrences, not all of them.

    Occurrences are removed a document at a time (a store re-writes whole documents).
    """

    __slots__ = ("_by_span", "_counts", "_confidence_sums", "_best")

    def __init__(self) -> None:
        self._by_span: dict[tuple[str, int, int], tuple[str, float]] = {}
        self._counts: Counter[str] = Counter()
        self._confidence_sums: defaultdict[str, float] = defaultdict(float)
        self._best: float | None = 0.0  # None: a removal took the maximum away; recomputed on demand

    def __len__(self) -> int:
        return len(self._by_span)

    def add(self, doc_id: str, start: int, end: int, text: str, confidence: float) -> None:
        key = (doc_id, start, end)
        old = self._by_span.get(key)
        if old is not None:
            if old[1] >= confidence:
                return
            self._forget(*old)
        self._by_span[key] = (text, confidence)
        self._counts[text] += 1
        self._confidence_sums[text] += confidence
        if self._best is not None:
            self._best = max(self._best, confidence)

    def remove_document(self, doc_id: str, spans: Iterable[tuple[int, int]]) -> None:
        for start, end in spans:
            old = self._by_span.pop((doc_id, start, end), None)
            if old is not None:
                self._forget(*old)
                if self._best is not None and old[1] >= self._best:
                    self._best = None

    def _forget(self, text: str, confidence: float) -> None:
        self._counts[text] -= 1
        self._confidence_sums[text] -= confidence
        if not self._counts[text]:
            del self._counts[text]
            del self._confidence_sums[text]

    def summary(self) -> SurfaceSummary:
        counts, sums = self._counts, self._confidence_sums
        if self._best is None:
            self._best = max((c for _, c in self._by_span.values()), default=0.0)
        name = min(counts, key=lambda t: (-counts[t], -round(sums[t], 9), t.isupper() or t.islower(), -len(t), t))
        return SurfaceSummary(name, sorted(counts), len(self._by_span), round(self._best, 6))


def reconcile_mentions(mentions: Sequence[Mention]) -> tuple[dict[str, Entity], dict[str, str]]:
    """Mentions -> (entities by id, mention id -> entity id).

    A mention whose span lost the type vote maps to the winning entity at that span.
    """
    votes: defaultdict[tuple[str, int, int], Counter[str]] = defaultdict(Counter)
    for m in mentions:
        votes[(m.doc_id, m.start, m.end)][m.label] += m.confidence
    span_type = {span: min(c, key=lambda label: (-c[label], label)) for span, c in votes.items()}

    groups: defaultdict[str, list[Mention]] = defaultdict(list)
    mention_entity: dict[str, str] = {}
    entity_types: dict[str, tuple[str, str]] = {}
    for m in mentions:
        winning_type = span_type[(m.doc_id, m.start, m.end)]
        normalized = normalize_name(m.text)
        eid = entity_id(winning_type, normalized)
        mention_entity[m.id] = eid
        entity_types[eid] = (winning_type, normalized)
        if m.label == winning_type:
            groups[eid].append(m)

    entities: dict[str, Entity] = {}
    for eid, members in groups.items():
        entity_type, normalized = entity_types[eid]
        summary = summarize_surfaces((m.doc_id, m.start, m.end, m.text, m.confidence) for m in members)
        entities[eid] = Entity(
            id=eid,
            type=entity_type,
            key=f"{entity_type}:{normalized}",
            name=summary.name,
            aliases=summary.aliases,
            mention_count=summary.mention_count,
            confidence=summary.confidence,
        )
    return entities, mention_entity


def reconcile_relations(
    relation_mentions: Iterable[RelationMention],
    mention_entity: dict[str, str],
    entities: dict[str, Entity],
    schema: ExtractionSchema,
) -> tuple[list[Relation], Counter[str]]:
    """Group relation mentions by (label, head entity, tail entity); re-check types after the type vote."""
    dropped: Counter[str] = Counter()
    evidence: defaultdict[tuple[str, str, str], dict[tuple, RelationEvidence]] = defaultdict(dict)
    for rel in relation_mentions:
        head_id, tail_id = mention_entity[rel.head.id], mention_entity[rel.tail.id]
        spec = schema.relations[rel.label]
        if entities[head_id].type not in spec.source:
            dropped[DROP_SOURCE_TYPE] += 1
            continue
        if entities[tail_id].type not in spec.target:
            dropped[DROP_TARGET_TYPE] += 1
            continue
        if head_id == tail_id:
            dropped[DROP_SELF] += 1
            continue
        span_key = (rel.head.doc_id, rel.head.start, rel.head.end, rel.tail.start, rel.tail.end)
        item = RelationEvidence(
            doc_id=rel.head.doc_id,
            chunk_id=rel.head.chunk_id,
            head_start=rel.head.start,
            head_end=rel.head.end,
            tail_start=rel.tail.start,
            tail_end=rel.tail.end,
            confidence=round(rel.confidence, 6),
        )
        bucket = evidence[(rel.label, head_id, tail_id)]
        previous = bucket.get(span_key)
        # the same sentence seen in two overlapping chunks is one piece of evidence
        if previous is None or previous.confidence < item.confidence:
            bucket[span_key] = item
    relations = [
        Relation(
            id=relation_id(label, head_id, tail_id),
            label=label,
            head_id=head_id,
            tail_id=tail_id,
            confidence=max(e.confidence for e in items.values()),
            evidence=sorted(items.values(), key=lambda e: (e.doc_id, e.head_start, e.tail_start, e.chunk_id)),
        )
        for (label, head_id, tail_id), items in evidence.items()
    ]
    relations.sort(key=lambda r: r.id)
    return relations, dropped


def reconcile(
    mentions: Sequence[Mention], relation_mentions: Sequence[RelationMention], schema: ExtractionSchema
) -> tuple[Reconciliation, Counter[str]]:
    """The whole reconciliation step: canonical entities, the mention map, and canonical relations."""
    entities, mention_entity = reconcile_mentions(mentions)
    relations, dropped = reconcile_relations(relation_mentions, mention_entity, entities, schema)
    return Reconciliation(entities=entities, mention_entity=mention_entity, relations=relations), dropped
