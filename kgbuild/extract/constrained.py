"""Constrained relation decoding: entities and relations of a chunk chosen together by gliner2's joint decoder
(``gliner2.joint_ie``) under the schema's constraints, instead of read off each relation's best head and tail.

What the decoder enforces, from the YAML schema: a relation's head has one of its ``source`` types and its tail
one of its ``target`` types, no relation links a mention to itself, each (head, tail) pair carries a relation
type at most once, ``max_per_head`` caps the relations of one type per head, and entity spans do not overlap.
Plain decoding (``GLiNER2Extractor`` with ``relation_decoding="plain"``) reads each relation prompt's best
head/tail spans and leaves the type checks to ``link_extraction``, which can only drop what does not fit;
the joint decoder picks, for each relation, the endpoints that the types allow.

``symmetric`` and ``inverse_of`` are applied here, after decoding, by adding the mirrored relation (same
spans and confidence): gliner2 2.1.0's decoder, given ``SymmetricRelation`` or ``InverseRelation``, derives the
companion edges itself and then rejects its own assignment as violating them, returning nothing at all for the
chunk (seen on the demo checkpoint: "greedy joint-IE decoding produced a constraint-violating assignment").
A symmetric relation is decoded undirected (one edge per pair), then mirrored.

Each relation keeps the decoder's own confidence (``RawRelation.confidence``), and each end its span and
entity confidence. Relations across the chunk windows of one document are consolidated downstream as
before: ``kgbuild.reconcile`` makes one ``Relation`` per (head entity, type, tail entity) with one piece of
evidence per window that found it.
"""

from __future__ import annotations

from typing import Any, Sequence

from kgbuild.extract.base import RawRelation, RawSpan
from kgbuild.schema import ExtractionSchema, default_prompt

RELATION_DECODINGS = ("plain", "constrained")


def build_joint_schema(schema: ExtractionSchema) -> Any:
    """The gliner2 ``JointSchema`` of a kgbuild schema's entities and relations, keyed by their prompts."""
    from gliner2.joint_ie import JointSchema

    joint = JointSchema()
    entity_prompt = {label: (spec.prompt or default_prompt(label)) for label, spec in schema.entities.items()}
    for label, spec in schema.entities.items():
        joint.entity(entity_prompt[label], spec.description or None, threshold=schema.entity_threshold(label))
    for label, spec in schema.relations.items():
        joint.relation(
            spec.prompt or default_prompt(label),
            [entity_prompt[t] for t in spec.source],
            [entity_prompt[t] for t in spec.target],
            threshold=schema.relation_threshold(label),
            directed=not spec.symmetric,  # one edge per pair; mirrored in mirror_relations
            allow_self=False,
            max_per_head=spec.max_per_head,
        )
    return joint


def parse_joint_result(result: Any, schema: ExtractionSchema) -> tuple[list[RawSpan], list[RawRelation]]:
    """A ``JointResult`` as kgbuild's raw spans and relations (schema labels, chunk offsets), mirrored."""
    entity_labels = schema.entity_prompts()
    relation_labels = schema.relation_prompts()
    spans: dict[str, RawSpan] = {}
    for entity in result.entities:
        label = entity_labels.get(entity.type)
        if label is not None:
            spans[entity.id] = RawSpan(label, entity.text, int(entity.start), int(entity.end),
                                       float(entity.confidence if entity.confidence is not None else 1.0))
    relations = []
    for relation in result.relations:
        label = relation_labels.get(relation.type)
        head, tail = spans.get(relation.head), spans.get(relation.tail)
        if label is None or head is None or tail is None:
            continue
        confidence = relation.confidence if relation.confidence is not None else min(head.confidence, tail.confidence)
        relations.append(RawRelation(label, head, tail, float(confidence)))
    return list(spans.values()), mirror_relations(relations, schema)


def mirror_relations(relations: Sequence[RawRelation], schema: ExtractionSchema) -> list[RawRelation]:
    """Add B r A for each symmetric A r B, and B s A for each A r B where s is r's ``inverse_of`` (either way)."""
    inverse: dict[str, str] = {}
    for label, spec in schema.relations.items():
        if spec.symmetric:
            inverse[label] = label
        if spec.inverse_of:
            inverse[label] = spec.inverse_of
            inverse.setdefault(spec.inverse_of, label)
    seen = {(r.label, r.head.start, r.head.end, r.tail.start, r.tail.end) for r in relations}
    result = list(relations)
    for r in relations:
        other = inverse.get(r.label)
        if other is None:
            continue
        key = (other, r.tail.start, r.tail.end, r.head.start, r.head.end)
        if key not in seen:
            seen.add(key)
            result.append(RawRelation(other, r.tail, r.head, r.confidence))
    return result


class JointDecoder:
    """gliner2's ``JointIEEngine`` around an already loaded model, with a kgbuild schema compiled once."""

    def __init__(self, model: Any, schema: ExtractionSchema, *, batch_size: int = 8):
        from gliner2.joint_ie import JointIEConfig, JointIEEngine

        from kgbuild.extract.joint_search import IndexedBeamOptimizer, ListCandidateBuilder

        device = next(model.parameters()).device
        self.schema = schema
        self.config = JointIEConfig(batch_size=batch_size, include_confidence=True, include_spans=True)
        # gliner2's own candidates and beam search, made faster without changing a choice (kgbuild.extract.joint_search)
        optimizer = IndexedBeamOptimizer(beam_width=self.config.beam_size)
        self.engine = JointIEEngine(model, device=device, optimizer=optimizer, candidate_generator=ListCandidateBuilder)
        self.compiled = self.engine.compile_schema(build_joint_schema(schema))

    def decode(self, texts: Sequence[str]) -> list[tuple[list[RawSpan], list[RawRelation]]]:
        if not texts:
            return []
        results = self.engine.batch_extract(list(texts), self.compiled, config=self.config)
        return [parse_joint_result(result, self.schema) for result in results]
