"""The schema-enforcing extraction step, the gliner2 output parser, and classification aggregation."""

from __future__ import annotations

import pytest

from kgbuild.extract.base import (
    DROP_BELOW_THRESHOLD,
    DROP_HEAD_UNLINKED,
    DROP_SELF,
    DROP_SOURCE_TYPE,
    DROP_TAIL_UNLINKED,
    DROP_TARGET_TYPE,
    DROP_UNKNOWN_LABEL,
    RawExtraction,
    RawRelation,
    RawSpan,
    aggregate_classifications,
    crosses_break,
    link_extraction,
)
from kgbuild.extract.gliner import parse_gliner_output
from kgbuild.types import Chunk, LabelScore

TEXT = "Apple Inc. CEO Tim Cook unveiled the Vision Pro for $2,499 in Cupertino."


def span(label: str, surface: str, confidence: float = 0.9, text: str = TEXT) -> RawSpan:
    start = text.index(surface)
    return RawSpan(label, surface, start, start + len(surface), confidence)


def chunk(text: str = TEXT, offset: int = 100, tokens: int = 12) -> Chunk:
    return Chunk("doc_x:00000", "doc_x", 0, offset, offset + len(text), text, tokens)


ENTITIES = [
    span("COMPANY", "Apple Inc."),
    span("PERSON", "Tim Cook"),
    span("PRODUCT", "Vision Pro"),
    span("MONEY", "$2,499"),
    span("LOCATION", "Cupertino"),
]


def test_mentions_are_in_document_offsets(business_schema):
    result = link_extraction(chunk(), RawExtraction(entities=ENTITIES), business_schema)
    assert [(m.label, m.text) for m in result.mentions] == [
        ("COMPANY", "Apple Inc."), ("PERSON", "Tim Cook"), ("PRODUCT", "Vision Pro"), ("MONEY", "$2,499"),
        ("LOCATION", "Cupertino"),
    ]
    for m in result.mentions:
        assert m.start >= 100 and TEXT[m.start - 100 : m.end - 100] == m.text
        assert m.chunk_id == "doc_x:00000" and m.doc_id == "doc_x"


def test_entities_below_threshold_unknown_or_empty_are_not_kept(business_schema):
    raw = RawExtraction(
        entities=[
            span("PERSON", "Tim Cook", 0.2),
            RawSpan("ALIEN", "Apple", 0, 5, 0.99),
            RawSpan("COMPANY", "  ", 10, 11, 0.99),
            RawSpan("COMPANY", "Apple Inc.", -5, 10, 0.95),  # clipped to the chunk
        ]
    )
    result = link_extraction(chunk(), raw, business_schema)
    assert [(m.label, m.text, m.start) for m in result.mentions] == [("COMPANY", "Apple Inc.", 100)]


def test_duplicate_spans_keep_the_best_confidence(business_schema):
    raw = RawExtraction(entities=[span("PERSON", "Tim Cook", 0.6), span("PERSON", "Tim Cook", 0.8)])
    (mention,) = link_extraction(chunk(), raw, business_schema).mentions
    assert mention.confidence == 0.8


def relation(label, head, tail, confidence=0.9):
    return RawRelation(label, span("", head, confidence), span("", tail, confidence))


def test_relation_with_right_types_is_kept(business_schema):
    raw = RawExtraction(entities=ENTITIES, relations=[relation("CEO_OF", "Tim Cook", "Apple Inc.")])
    result = link_extraction(chunk(), raw, business_schema)
    (rel,) = result.relations
    assert (rel.label, rel.head.text, rel.tail.text) == ("CEO_OF", "Tim Cook", "Apple Inc.")
    assert result.dropped_relations == {}


def test_relation_with_wrong_endpoint_types_is_dropped_and_counted(business_schema):
    raw = RawExtraction(
        entities=ENTITIES,
        relations=[
            relation("CEO_OF", "Apple Inc.", "Tim Cook"),  # head must be a PERSON
            relation("PRICED_AT", "Vision Pro", "Cupertino"),  # tail must be MONEY
            relation("CEO_OF", "unveiled", "Apple Inc."),  # head is no entity at all
            relation("MANUFACTURES", "Apple Inc.", "the"),  # tail is no entity at all
            relation("CEO_OF", "Tim Cook", "Apple Inc.", 0.1),  # below the threshold
            relation("INVENTED", "Tim Cook", "Vision Pro"),  # not in the schema
            relation("COMPETES_WITH", "Vision Pro", "Vision Pro"),  # a thing with itself
        ],
    )
    result = link_extraction(chunk(), raw, business_schema)
    assert result.relations == []
    assert result.dropped_relations == {
        DROP_SOURCE_TYPE: 1,
        DROP_TARGET_TYPE: 1,
        DROP_HEAD_UNLINKED: 1,
        DROP_TAIL_UNLINKED: 1,
        DROP_BELOW_THRESHOLD: 1,
        DROP_UNKNOWN_LABEL: 1,
        DROP_SELF: 1,
    }


def test_relation_end_links_to_an_overlapping_mention_of_the_allowed_type(business_schema):
    entities = [span("COMPANY", "Apple Inc."), span("PRODUCT", "Apple Inc.", 0.5), span("PERSON", "Tim Cook")]
    raw = RawExtraction(entities=entities, relations=[relation("CEO_OF", "Tim Cook", "Apple")])
    (rel,) = link_extraction(chunk(), raw, business_schema).relations
    assert rel.tail.label == "COMPANY" and rel.tail.text == "Apple Inc."


def test_parse_gliner_output_maps_prompts_and_quirky_relation_keys(business_schema):
    output = {
        "entities": {
            "company": [{"text": "Apple Inc.", "confidence": 0.9, "start": 0, "end": 10}],
            "person": [{"text": "Tim Cook", "confidence": 0.95, "start": 15, "end": 23}],
            "unknown": [{"text": "x", "confidence": 0.9, "start": 0, "end": 1}],
        },
        "relation_extraction": {
            "ceo_of: The person is the chief executive of the company.": [
                {"head": {"text": "Tim Cook", "confidence": 0.8, "start": 15, "end": 23},
                 "tail": {"text": "Apple Inc.", "confidence": 0.7, "start": 0, "end": 10}}
            ],
            "manufactures": [],
        },
        # gliner2 2.1 sometimes puts a described relation at the top level
        "priced_at: The product is sold at this price.": [
            {"head": {"text": "Vision Pro", "confidence": 0.8, "start": 37, "end": 47},
             "tail": {"text": "$2,499", "confidence": 0.8, "start": 52, "end": 58}}
        ],
        "document_type": {"label": "product_announcement", "confidence": 0.7},
    }
    raw = parse_gliner_output(output, business_schema)
    assert [(e.label, e.text) for e in raw.entities] == [("COMPANY", "Apple Inc."), ("PERSON", "Tim Cook")]
    assert sorted((r.label, r.head.text, r.tail.text) for r in raw.relations) == [
        ("CEO_OF", "Tim Cook", "Apple Inc."), ("PRICED_AT", "Vision Pro", "$2,499")
    ]
    assert raw.classifications == {"document_type": [LabelScore("product_announcement", 0.7)]}


def test_parse_gliner_output_multi_label_shapes():
    from kgbuild.schema import load_schema

    schema = load_schema("biomedical")
    raw = parse_gliner_output(
        {"entities": {}, "topics": [{"label": "oncology", "confidence": 0.8}, {"label": "immunology", "confidence": 0.6}],
         "study_type": "review",
         "trial_result": [{"drug": {"text": "metformin", "confidence": 0.9}, "phase": None}]},
        schema,
    )
    assert raw.classifications["topics"] == [LabelScore("oncology", 0.8), LabelScore("immunology", 0.6)]
    assert raw.classifications["study_type"] == [LabelScore("review", 1.0)]
    assert raw.structures[0].name == "trial_result" and raw.structures[0].fields["drug"]["text"] == "metformin"


def test_document_classification_is_a_weighted_vote(business_schema):
    def extraction(label, confidence, tokens):
        raw = RawExtraction(classifications={"document_type": [LabelScore(label, confidence)]})
        return link_extraction(chunk(tokens=tokens), raw, business_schema)

    parts = [extraction("earnings_report", 0.9, 100), extraction("legal_filing", 0.95, 10), extraction("earnings_report", 0.6, 50)]
    (top,) = aggregate_classifications(parts, business_schema)["document_type"]
    assert top.label == "earnings_report"
    assert top.confidence == pytest.approx((0.9 * 100 + 0.6 * 50) / 160)
    assert aggregate_classifications([], business_schema) == {}


# --- spans never cross a paragraph or heading boundary -------------------------

VIOTTI = "Viotti dies\n\nConductor Marcello Viotti led Acme Corp until 2005."


def test_a_mention_across_a_blank_line_is_dropped_not_trimmed(business_schema):
    raw = RawExtraction(
        entities=[
            span("COMPANY", "Viotti dies\n\nConductor Marcello Viotti", text=VIOTTI),
            span("PERSON", "Marcello Viotti", text=VIOTTI),
            span("COMPANY", "Acme Corp", text=VIOTTI),
        ],
        # the head runs across the break: it must not link to the PERSON it overlaps
        relations=[RawRelation("CEO_OF", span("", "dies\n\nConductor Marcello Viotti", text=VIOTTI),
                               span("", "Acme Corp", text=VIOTTI))],
    )
    result = link_extraction(chunk(VIOTTI), raw, business_schema)
    assert [(m.label, m.text) for m in result.mentions] == [("PERSON", "Marcello Viotti"), ("COMPANY", "Acme Corp")]
    assert result.relations == []
    assert result.dropped_relations == {DROP_HEAD_UNLINKED: 1}


def test_a_mention_across_a_heading_line_is_dropped(business_schema):
    text = "# Viotti dies\nConductor Marcello Viotti led Acme Corp.\n## Acme Corp\nnews"
    raw = RawExtraction(
        entities=[
            span("PERSON", "Viotti dies\nConductor Marcello Viotti", text=text),  # ends a heading line
            span("COMPANY", "Acme Corp.\n## Acme Corp", text=text),  # runs into a heading line
            span("PERSON", "Marcello Viotti", text=text),
        ]
    )
    result = link_extraction(chunk(text), raw, business_schema)
    assert [m.text for m in result.mentions] == ["Marcello Viotti"]


@pytest.mark.parametrize(
    ("text", "crosses"),
    [
        ("Viotti dies\n\nConductor Marcello", True),
        ("Viotti dies\n \t \nConductor Marcello", True),  # a blank line holding only spaces
        ("# Viotti dies\nConductor Marcello", True),
        ("Viotti dies\n   ### Conductor", True),
        ("Conductor Marcello\nViotti led it", False),  # a hard wrap inside a sentence
        ("Acme Corp\n#1 seller", False),  # "#1" opens no heading
        ("Viotti dies in Munich", False),
    ],
)
def test_crosses_break(text, crosses):
    assert crosses_break(text, 0, len(text)) is crosses


def test_a_name_wrapped_across_one_newline_is_kept(business_schema):
    text = "The conductor Marcello\nViotti died."
    (mention,) = link_extraction(chunk(text), RawExtraction(entities=[span("PERSON", "Marcello\nViotti", text=text)]),
                                 business_schema).mentions
    assert mention.text == "Marcello\nViotti"


# --- classification labels below their task's threshold are not stored ---------


def test_a_chunk_label_below_the_threshold_is_not_stored(business_schema):
    raw = RawExtraction(classifications={"document_type": [LabelScore("legal_filing", 0.28)]})
    assert business_schema.classifications["document_type"].threshold == 0.5
    assert link_extraction(chunk(), raw, business_schema).classifications == {}


def test_multi_label_keeps_only_labels_at_the_threshold():
    from kgbuild.schema import load_schema

    schema = load_schema("biomedical")
    raw = RawExtraction(classifications={"topics": [LabelScore("oncology", 0.8), LabelScore("immunology", 0.3),
                                                    LabelScore("cardiology", 0.5)]})
    result = link_extraction(chunk(), raw, schema)
    assert result.classifications == {"topics": [LabelScore("oncology", 0.8), LabelScore("cardiology", 0.5)]}
    assert aggregate_classifications([result], schema) == {"topics": [LabelScore("oncology", 0.8), LabelScore("cardiology", 0.5)]}


def test_a_document_whose_chunks_are_all_below_the_threshold_gets_no_label(business_schema):
    parts = [
        link_extraction(chunk(tokens=50), RawExtraction(classifications={"document_type": [LabelScore(label, conf)]}),
                        business_schema)
        for label, conf in (("legal_filing", 0.28), ("earnings_report", 0.45), ("legal_filing", 0.31))
    ]
    assert aggregate_classifications(parts, business_schema) == {}


def test_a_document_label_whose_weighted_mean_is_below_the_threshold_is_not_stored(business_schema):
    def extraction(label, confidence, tokens):
        raw = RawExtraction(classifications={"document_type": [LabelScore(label, confidence)]} if label else {})
        return link_extraction(chunk(tokens=tokens), raw, business_schema)

    # one confident chunk in four: the document as a whole is not confidently a legal filing
    parts = [extraction("legal_filing", 0.9, 25), extraction(None, 0, 25), extraction(None, 0, 25), extraction(None, 0, 25)]
    assert aggregate_classifications(parts, business_schema) == {}


# --- stored confidences do not depend on the batch -----------------------------


def _raw_with_noise(noise: float) -> RawExtraction:
    def s(label, surface, confidence):
        return span(label, surface, confidence + noise)

    return RawExtraction(
        entities=[s("COMPANY", "Apple Inc.", 0.91234567), s("PERSON", "Tim Cook", 0.73456781),
                  s("PRODUCT", "Vision Pro", 0.66666666)],
        relations=[RawRelation("CEO_OF", s("", "Tim Cook", 0.81818181), s("", "Apple Inc.", 0.72727272))],
        classifications={"document_type": [LabelScore("product_announcement", 0.87654321 + noise)]},
    )


def test_confidences_differing_by_1e_7_give_identical_extractions(business_schema):
    first = link_extraction(chunk(), _raw_with_noise(0.0), business_schema)
    second = link_extraction(chunk(), _raw_with_noise(1e-7), business_schema)
    assert first == second
    assert [m.confidence for m in first.mentions] == [0.9123, 0.7346, 0.6667]
    assert [r.confidence for r in first.relations] == [0.7273]
    assert first.classifications == {"document_type": [LabelScore("product_announcement", 0.8765)]}


def test_thresholds_apply_to_the_stored_value(business_schema):
    raw = RawExtraction(
        entities=[span("PERSON", "Tim Cook", 0.49996), span("COMPANY", "Apple Inc.", 0.49994)],
        classifications={"document_type": [LabelScore("product_announcement", 0.49996)]},
    )
    result = link_extraction(chunk(), raw, business_schema)
    assert [(m.text, m.confidence) for m in result.mentions] == [("Tim Cook", 0.5)]  # stored as 0.5, so kept
    assert result.classifications == {"document_type": [LabelScore("product_announcement", 0.5)]}


def test_structure_confidences_are_stored_at_the_same_precision():
    from kgbuild.schema import load_schema
    from kgbuild.types import StructureInstance

    schema = load_schema("biomedical")
    raw = RawExtraction(structures=[StructureInstance("trial_result", {"drug": {"text": "metformin", "confidence": 0.912345678}})])
    (structure,) = link_extraction(chunk(), raw, schema).structures
    assert structure.fields == {"drug": {"text": "metformin", "confidence": 0.9123}}


# --- constrained relation decoding (kgbuild.extract.constrained) ------------------------------------------


def _constrained_schema():
    from kgbuild.schema import parse_schema

    return parse_schema("""
name: constrained
entities:
  PERSON: {description: a person}
  COMPANY: {}
relations:
  SPOUSE_OF: {source: [PERSON], target: [PERSON], symmetric: true}
  WORKS_FOR: {source: [PERSON], target: [COMPANY], inverse_of: EMPLOYS, max_per_head: 1}
  EMPLOYS: {source: [COMPANY], target: [PERSON], inverse_of: WORKS_FOR}
""")


def test_joint_schema_carries_the_schema_constraints():
    from gliner2.joint_ie import MaxRelationsPerHead, NoSelfLoops, TypedEndpoints
    from gliner2.joint_ie.compiler import compile_schema

    from kgbuild.extract.constrained import build_joint_schema

    compiled = compile_schema(build_joint_schema(_constrained_schema()))
    assert set(compiled.entity_order) == {"person", "company"}
    assert TypedEndpoints("works_for", ("person",), ("company",)) in compiled.constraints
    assert NoSelfLoops("spouse_of") in compiled.constraints
    assert MaxRelationsPerHead(1, "works_for") in compiled.constraints
    assert not compiled.relation_specs["spouse_of"].directed  # decoded once per pair, mirrored afterwards
    assert compiled.entity_specs["person"].description == "a person"


def test_joint_result_becomes_raw_spans_and_mirrored_relations():
    from gliner2.joint_ie.result import JointEntity, JointRelation, JointResult

    from kgbuild.extract.constrained import parse_joint_result

    text = "Ann Lee married Bo Lee and works for Acme."
    result = JointResult(text, [
        JointEntity("e1", "person", "Ann Lee", 0, 7, 0.9), JointEntity("e2", "person", "Bo Lee", 16, 22, 0.8),
        JointEntity("e3", "company", "Acme", 37, 41, 0.95), JointEntity("e4", "animal", "x", 0, 1, 0.9),
    ], [JointRelation("spouse_of", "e1", "e2", 0.7), JointRelation("works_for", "e1", "e3", 0.6)])
    entities, relations = parse_joint_result(result, _constrained_schema())
    assert [(e.label, e.text, e.start, e.end) for e in entities] == [
        ("PERSON", "Ann Lee", 0, 7), ("PERSON", "Bo Lee", 16, 22), ("COMPANY", "Acme", 37, 41)]
    found = {(r.label, r.head.text, r.tail.text, r.confidence) for r in relations}
    assert found == {("SPOUSE_OF", "Ann Lee", "Bo Lee", 0.7), ("SPOUSE_OF", "Bo Lee", "Ann Lee", 0.7),
                     ("WORKS_FOR", "Ann Lee", "Acme", 0.6), ("EMPLOYS", "Acme", "Ann Lee", 0.6)}


def test_a_decoded_relation_keeps_its_own_confidence_through_linking():
    from kgbuild.extract.base import RawExtraction, RawRelation, RawSpan, link_extraction
    from kgbuild.types import Chunk

    schema = _constrained_schema()
    text = "Ann Lee works for Acme."
    chunk = Chunk("d:0", "d", 0, 0, len(text), text, 6)
    ann, acme = RawSpan("PERSON", "Ann Lee", 0, 7, 0.9), RawSpan("COMPANY", "Acme", 18, 22, 0.95)
    linked = link_extraction(chunk, RawExtraction([ann, acme], [RawRelation("WORKS_FOR", ann, acme, 0.61234)]), schema)
    assert [(r.label, r.confidence) for r in linked.relations] == [("WORKS_FOR", 0.6123)]
    plain = link_extraction(chunk, RawExtraction([ann, acme], [RawRelation("WORKS_FOR", ann, acme)]), schema)
    assert plain.relations[0].confidence == 0.9  # without one: the weaker end's
