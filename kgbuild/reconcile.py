"""Reconcile mentions into canonical entities, in memory, before anything is written.

Mentions of one type become one entity when their names resolve to the same key: the normalised name
(Unicode NFKC, case folding, punctuation, corporate suffixes and a leading "the" removed), after the
resolution rules of ``kgbuild.resolution`` (titles, place aliases, and the short names, first names,
surnames and acronyms that a document's full names explain). Where the model gave one span several
types, the types vote, weighted by confidence. Resolution looks at one document at a time, then (in
``reconcile_mentions``; at ingest over the whole index, ``kgbuild.corpus_links``, whose links the
per-batch ``reconcile`` receives as ``external_links``) joins a short name left alone in
its document to the one full name of the whole input that fits it ("Blair" -> "Tony Blair"); everything
else is grouping by key: cost is linear in the number of mentions, and ids are deterministic (a hash of
type and resolved key), so entities written by separate runs or batches meet on the same id.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from kgbuild.aliases import AliasTable
from kgbuild.extract.base import DROP_SELF, DROP_SOURCE_TYPE, DROP_TARGET_TYPE
from kgbuild.ids import entity_id, relation_id
from kgbuild.names import CORPORATE_SUFFIXES, fullness, normalize_name
from kgbuild.resolution import (
    CanonicalName, CrossLink, Link, Merge, ResolutionRules, canonical_key, collector_paused, resolve_names,
)
from kgbuild.schema import ExtractionSchema
from kgbuild.types import (
    RULE_EXACT, Entity, Mention, Reconciliation, Relation, RelationEvidence, RelationMention, ResolutionReason,
)

if TYPE_CHECKING:
    from kgbuild.overrides import ResolutionOverrides

__all__ = [
    "CORPORATE_SUFFIXES", "BatchReconciliation", "CrossLink", "Merge", "Resolution", "ResolutionRules", "SurfaceSummary", "SurfaceTally", "entity_key",
    "normalize_name", "parse_entity_filter", "reconcile", "reconcile_mentions", "reconcile_relations",
    "resolve_mentions", "summarize_surfaces",
]


def entity_key(entity_type: str, name: str) -> str:
    """``entity_key("COMPANY", "Apple Inc.") == "COMPANY:apple"``: the filterable key of an entity.

    The per-mention resolution rules apply as at ingest, so ``entity_key("LOCATION", "U.S.")`` is the key
    of the United States and ``entity_key("PERSON", "Mr Blair")`` that of "Blair".
    """
    return f"{entity_type}:{canonical_key(entity_type, name, _DEFAULT_RULES, _LazyAliases(None)).key}"


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
    alias_counts: dict[str, int] = field(default_factory=dict)  # alias -> mentions (distinct spans)


def summarize_surfaces(occurrences: Iterable[tuple[str, int, int, str, float]]) -> SurfaceSummary:
    """Canonical name, aliases and count from ``(doc_id, start, end, text, confidence)`` occurrences.

    The same span seen twice (two overlapping chunks) counts once. The canonical name is
    the fullest surface form (``kgbuild.names.fullness``: "Tony Blair" over "Mr Blair" and
    "Blair", "Associated Press" over "AP"; one without a title over one with), then the most frequent; ties go to the higher
    summed confidence, then to a mixed-case form over an all-capitals or all-lower-case one,
    then the longer form, then the alphabetically first, so the result never depends on order.
    Surface forms with one normalised name are equally full, so without resolution merges the
    name is simply the most frequent form.
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
        name = min(
            counts, key=lambda t: (fullness(t), -counts[t], -round(sums[t], 9), t.isupper() or t.islower(), -len(t), t)
        )
        return SurfaceSummary(name, sorted(counts), len(self._by_span), round(self._best, 6),
                              {alias: counts[alias] for alias in sorted(counts)})


_DEFAULT_RULES = ResolutionRules()


class _LazyAliases:
    """The alias table, loaded on the first place name (the built-in one takes half a second to build)."""

    __slots__ = ("_given", "_table")

    def __init__(self, given: AliasTable | Mapping[str, str] | None) -> None:
        self._given, self._table = given, None

    def find(self, surface: str) -> tuple[str, bool] | None:
        if self._table is None:
            given = self._given
            self._table = (
                given if isinstance(given, AliasTable)
                else AliasTable.default() if given is None
                else AliasTable.default().extended(given)
            )
        return self._table.find(surface)


@dataclass(slots=True)
class Resolution:
    """What ``resolve_mentions`` found: the entities, the mention map, and why each entity holds its names."""

    entities: dict[str, Entity]  # by entity id
    mention_entity: dict[str, str]  # mention id -> entity id
    why: dict[str, list[Merge]] = field(default_factory=dict)  # entity id -> the merges that formed it
    mention_reasons: dict[str, ResolutionReason] = field(default_factory=dict)  # mention id -> why it is in its entity
    summaries: dict[str, list[list]] = field(default_factory=dict)  # doc id -> its own resolution, when asked for
    cross_links: dict[str, dict[tuple[str, str], CrossLink]] = field(default_factory=dict)  # doc id -> links applied


@collector_paused()
def resolve_mentions(
    mentions: Sequence[Mention],
    *,
    rules: ResolutionRules | None = None,
    aliases: AliasTable | Mapping[str, str] | None = None,
    texts: Mapping[str, str] | None = None,
    overrides: ResolutionOverrides | None = None,
    external_links: Mapping[str, Mapping[tuple[str, str], CrossLink]] | None = None,
    summaries: bool = False,
) -> Resolution:
    """Mentions -> canonical entities, resolved within each document and across them, with the evidence for
    every merge.

    ``rules`` switches resolution rules off (``ResolutionRules.none()``: grouping by normalised name only;
    ``ResolutionRules(cross_document=False)``: each document on its own);
    ``aliases`` replaces the place alias table (an ``AliasTable``) or extends the built-in one (a mapping
    ``{"Big Apple": "New York City"}``); ``texts`` (document id -> text) lets acronyms defined in
    parentheses join their names; ``overrides`` (the index's resolution.yaml, ``kgbuild.overrides``) are
    applied last, a mention at a time. A mention whose span lost the type vote maps to the winning entity at
    that span. ``external_links`` and ``summaries``: see ``kgbuild.resolution.resolve_names`` (ingest's links
    across the documents of its whole index, and what it keeps of each document to find them).
    """
    rules = _DEFAULT_RULES if rules is None else rules
    resolved = resolve_names(mentions, rules, _LazyAliases(aliases), texts, external_links=external_links,
                             summaries=summaries)
    span_type, canonical, links = resolved.span_type, resolved.canonical, resolved.links

    groups: defaultdict[str, list[Mention]] = defaultdict(list)
    mention_entity: dict[str, str] = {}
    entity_keys: dict[str, tuple[str, str]] = {}
    evidence: defaultdict[str, defaultdict[tuple[str, str, str], set[str]]] = defaultdict(lambda: defaultdict(set))
    mention_reasons: dict[str, ResolutionReason] = {}
    for m in mentions:
        winning_type = span_type[(m.doc_id, m.start, m.end)]
        name = canonical[(winning_type, m.text)]
        link = links[m.doc_id].get((winning_type, name.key)) if m.doc_id in links else None
        key = link.root_key if link is not None else name.key
        # the last step: the user's pinned merges and splits, a mention at a time
        pinned = overrides.decide(winning_type, m.text, name, link, key) if overrides else None
        if pinned is not None:
            name, link, key = pinned.name, pinned.link, pinned.key
        eid = entity_id(winning_type, key)
        mention_entity[m.id] = eid
        entity_keys[eid] = (winning_type, key)
        mention_reasons[m.id] = _reason(m.text, name, link, pinned.merged_into if pinned is not None else None)
        if m.label != winning_type:
            continue
        groups[eid].append(m)
        if name.rule is not None:
            evidence[eid][(name.rule, m.text, name.name or _without_titles(m.text, name.key))].add(m.doc_id)
        if link is not None:
            evidence[eid][(link.rule, link.alias, link.name)].add(m.doc_id)
        if pinned is not None and pinned.merged_into is not None:
            evidence[eid][("override", m.text, pinned.merged_into)].add(m.doc_id)

    entities: dict[str, Entity] = {}
    for eid, members in groups.items():
        entity_type, key = entity_keys[eid]
        summary = summarize_surfaces((m.doc_id, m.start, m.end, m.text, m.confidence) for m in members)
        entities[eid] = Entity(
            id=eid,
            type=entity_type,
            key=f"{entity_type}:{key}",
            name=summary.name,
            aliases=summary.aliases,
            mention_count=summary.mention_count,
            confidence=summary.confidence,
            alias_counts=summary.alias_counts,
        )
    why = {
        eid: sorted(Merge(rule, alias, name, tuple(sorted(docs))) for (rule, alias, name), docs in found.items())
        for eid, found in evidence.items()
    }
    return Resolution(entities, mention_entity, why, mention_reasons, resolved.summaries, resolved.cross_links)


_EXACT = ResolutionReason(RULE_EXACT, "")


def _reason(surface: str, name: CanonicalName, link: Link | None, merged_into: str | None) -> ResolutionReason:
    """Why one mention is in its entity: its own name's rule, its document's link, an override's merge."""
    steps, via = [], ""
    if name.rule is not None:
        steps.append(name.rule)
        via = name.name or _without_titles(surface, name.key)
    if link is not None:
        steps.append(link.rule)
        via = link.name
    if merged_into is not None:
        steps.append("override")  # kgbuild.overrides.OVERRIDE_RULE
        via = merged_into
    return ResolutionReason("+".join(steps), via) if steps else _EXACT


def _without_titles(surface: str, key: str) -> str:
    """"Prime Minister Tony Blair" with key "tony blair" -> "Tony Blair", for explanations."""
    words = surface.split()
    kept = len(key.split(" "))
    return " ".join(words[-kept:]) if kept <= len(words) else key


def reconcile_mentions(
    mentions: Sequence[Mention],
    *,
    rules: ResolutionRules | None = None,
    aliases: AliasTable | Mapping[str, str] | None = None,
    texts: Mapping[str, str] | None = None,
) -> tuple[dict[str, Entity], dict[str, str]]:
    """Mentions -> (entities by id, mention id -> entity id); ``resolve_mentions`` also says why.

    Every rule is on by default, the cross-document one included: given the mentions of a whole corpus,
    "Blair" alone in one article joins the "Tony Blair" of another when no other full name fits. A mention
    whose span lost the type vote maps to the winning entity at that span.
    """
    resolution = resolve_mentions(mentions, rules=rules, aliases=aliases, texts=texts)
    return resolution.entities, resolution.mention_entity


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


@dataclass(slots=True)
class BatchReconciliation:
    """What ``reconcile_batch`` found for a write batch: what is written, and what ingest keeps per document to
    find the links across documents (``kgbuild.corpus_links``)."""

    reconciliation: Reconciliation
    dropped: Counter[str]  # relations dropped, by reason
    summaries: dict[str, list[list]]  # doc id -> kgbuild.resolution.DocumentResolution.summary()
    cross_links: dict[str, dict[tuple[str, str], CrossLink]]  # doc id -> the external links applied to it


@collector_paused()
def reconcile_batch(
    mentions: Sequence[Mention],
    relation_mentions: Sequence[RelationMention],
    schema: ExtractionSchema,
    *,
    rules: ResolutionRules | None = None,
    aliases: AliasTable | Mapping[str, str] | None = None,
    texts: Mapping[str, str] | None = None,
    overrides: ResolutionOverrides | None = None,
    external_links: Mapping[str, Mapping[tuple[str, str], CrossLink]] | None = None,
) -> BatchReconciliation:
    """``reconcile`` for ingest: also each document's resolution summary, and the external links it applied."""
    rules = (_DEFAULT_RULES if rules is None else rules).without("cross_document")
    resolution = resolve_mentions(mentions, rules=rules, aliases=aliases, texts=texts, overrides=overrides,
                                  external_links=external_links, summaries=True)
    entities, mention_entity = resolution.entities, resolution.mention_entity
    relations, dropped = reconcile_relations(relation_mentions, mention_entity, entities, schema)
    return BatchReconciliation(
        Reconciliation(entities=entities, mention_entity=mention_entity, relations=relations,
                       mention_reasons=resolution.mention_reasons),
        dropped, resolution.summaries, resolution.cross_links)


def reconcile(
    mentions: Sequence[Mention],
    relation_mentions: Sequence[RelationMention],
    schema: ExtractionSchema,
    *,
    rules: ResolutionRules | None = None,
    aliases: AliasTable | Mapping[str, str] | None = None,
    texts: Mapping[str, str] | None = None,
    overrides: ResolutionOverrides | None = None,
    external_links: Mapping[str, Mapping[tuple[str, str], CrossLink]] | None = None,
) -> tuple[Reconciliation, Counter[str]]:
    """The whole reconciliation step: canonical entities, the mention map (with why each mention is in its
    entity), and canonical relations.

    Ingest calls this once per write batch of whole documents, a part of the corpus, so the cross-document
    rule (``ResolutionRules.cross_document``) is off whatever ``rules`` say, or an entity would depend on how
    the documents were batched; the links across documents come as ``external_links`` instead (doc id ->
    (type, key) -> ``CrossLink``), found over the whole index (``kgbuild.corpus_links``).
    ``reconcile_mentions`` applies the rule itself.
    """
    batch = reconcile_batch(mentions, relation_mentions, schema, rules=rules, aliases=aliases, texts=texts,
                            overrides=overrides, external_links=external_links)
    return batch.reconciliation, batch.dropped
