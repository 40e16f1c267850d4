"""Reconciliation: normalisation, canonical entities, type vote, relations."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kgbuild.extract.base import DROP_TARGET_TYPE
from kgbuild.ids import entity_id, mention_id
from kgbuild.reconcile import (
    SurfaceTally,
    entity_key,
    normalize_name,
    parse_entity_filter,
    reconcile,
    reconcile_mentions,
    summarize_surfaces,
)
from kgbuild.types import Mention, RelationMention


@pytest.mark.parametrize(
    "a, b",
    [
        ("Apple Inc.", "Apple Inc"),
        ("Apple Inc.", "APPLE INC."),
        ("Apple Inc.", "apple, inc."),
        ("Apple Inc.", "Apple"),
        ("Volkswagen AG", "volkswagen"),
        ("Initech GmbH", "INITECH"),
        ("Globex Ltd.", "Globex Limited"),
        ("The Coca-Cola Corp.", "coca cola"),
        ("McDonald's", "McDonalds"),
        ("Ｔｏｙｏｔａ", "Toyota"),  # full-width letters (NFKC)
        ("Tim  Cook", "tim cook"),
        ("Tim\u200bCook", "Tim Cook"),  # a zero-width space is a separator
        ("$2,499", "$2499"),
    ],
)
def test_same_entity_normalises_alike(a, b):
    assert normalize_name(a) == normalize_name(b)


@pytest.mark.parametrize("a, b", [("Apple", "Pineapple"), ("$2,499", "€2,499"), ("3.5 billion", "35 billion")])
def test_different_entities_stay_apart(a, b):
    assert normalize_name(a) != normalize_name(b)


def test_normalisation_never_returns_empty():
    assert normalize_name("Inc.") == "inc"
    assert normalize_name("...") == "..."


def test_entity_filters_use_the_same_normalisation():
    assert entity_key("COMPANY", "Apple Inc.") == "COMPANY:apple"
    assert parse_entity_filter("COMPANY:apple inc.") == ("COMPANY", "COMPANY:apple")
    assert parse_entity_filter("PERSON:Tim Cook:Jr") == ("PERSON", "PERSON:tim cook jr")
    for bad in ("Apple", ":Apple", "COMPANY:", "COMPANY:  "):
        with pytest.raises(ValueError, match="TYPE:NAME"):
            parse_entity_filter(bad)


def mention(label, text, start, confidence=0.9, doc="doc_a", chunk="doc_a:00000"):
    return Mention(mention_id(chunk, label, start, start + len(text)), doc, chunk, label, text, start, start + len(text), confidence)


def test_variants_become_one_company_and_aliases_are_kept():
    mentions = [
        mention("COMPANY", "Apple Inc.", 0),
        mention("COMPANY", "Apple Inc", 50),
        mention("COMPANY", "APPLE INC.", 0, doc="doc_b", chunk="doc_b:00000"),
        mention("COMPANY", "Apple Inc.", 90, doc="doc_c", chunk="doc_c:00003"),
    ]
    entities, mapping = reconcile_mentions(mentions)
    (entity,) = entities.values()
    assert entity.id == entity_id("COMPANY", "apple") and entity.key == "COMPANY:apple"
    assert entity.name == "Apple Inc." and entity.mention_count == 4
    assert entity.aliases == ["APPLE INC.", "Apple Inc", "Apple Inc."]
    assert set(mapping.values()) == {entity.id}


def test_product_and_company_with_the_same_surface_stay_apart():
    mentions = [mention("COMPANY", "Apple", 0), mention("PRODUCT", "Apple", 40)]
    entities, _ = reconcile_mentions(mentions)
    assert sorted(e.key for e in entities.values()) == ["COMPANY:apple", "PRODUCT:apple"]


def test_one_span_with_two_types_is_settled_by_a_confidence_vote():
    mentions = [
        mention("COMPANY", "Apple", 0, 0.8),
        mention("PRODUCT", "Apple", 0, 0.6),
        # the same span seen again through an overlapping chunk adds its votes
        mention("PRODUCT", "Apple", 0, 0.5, chunk="doc_a:00001"),
    ]
    entities, mapping = reconcile_mentions(mentions)
    (entity,) = entities.values()
    assert entity.type == "PRODUCT"  # 0.6 + 0.5 > 0.8
    assert entity.mention_count == 1  # one span, seen from two chunks
    assert set(mapping.values()) == {entity.id}  # the losing mention maps to the winner


def test_reconciliation_is_order_independent_and_deterministic():
    mentions = [mention("PERSON", n, i * 20) for i, n in enumerate(["Tim Cook", "TIM COOK", "Tim Cook", "tim cook"])]
    a, _ = reconcile_mentions(mentions)
    b, _ = reconcile_mentions(list(reversed(mentions)))
    assert a == b
    assert next(iter(a.values())).name == "Tim Cook"


def test_relations_are_grouped_and_re_checked_after_the_type_vote(business_schema):
    cook = mention("PERSON", "Tim Cook", 0)
    apple = mention("COMPANY", "Apple Inc.", 20)
    apple_product = mention("PRODUCT", "Apple Inc.", 20, 0.95)  # wins the vote at that span
    cook2 = mention("PERSON", "Tim Cook", 0, doc="doc_b", chunk="doc_b:00000")
    apple2 = mention("COMPANY", "Apple", 30, doc="doc_b", chunk="doc_b:00000")
    relation_mentions = [
        RelationMention("CEO_OF", cook, apple, 0.8),  # apple became a PRODUCT: dropped
        RelationMention("CEO_OF", cook2, apple2, 0.7),
        RelationMention("CEO_OF", cook2, apple2, 0.9),  # same evidence again: one piece
    ]
    result, dropped = reconcile([cook, apple, apple_product, cook2, apple2], relation_mentions, business_schema)
    assert dropped == {DROP_TARGET_TYPE: 1}
    (rel,) = result.relations
    assert rel.label == "CEO_OF" and rel.count == 1 and rel.confidence == 0.9
    assert result.entities[rel.head_id].name == "Tim Cook"
    assert result.entities[rel.tail_id].key == "COMPANY:apple"


def test_reconciling_many_mentions_scales_linearly():
    # 200k mentions over 2k names: grouping, not pairwise comparison
    mentions = [mention("COMPANY", f"Company {i % 2000} Inc.", i * 30, doc=f"doc_{i // 100}") for i in range(200_000)]
    entities, mapping = reconcile_mentions(mentions)
    assert len(entities) == 2000 and len(mapping) == 200_000


_occurrence = st.tuples(
    st.sampled_from(["d1", "d2", "d3"]),
    st.integers(0, 6),
    st.integers(1, 3),
    st.sampled_from(["Acme", "ACME", "Acme Corp", "acme"]),
    st.sampled_from([0.5, 0.61, 0.7, 0.9, 0.123457]),
)


@given(st.lists(_occurrence, max_size=40), st.lists(st.sampled_from(["d1", "d2", "d3"]), max_size=3))
def test_surface_tally_equals_a_fresh_summary_after_adds_and_document_removals(occurrences, removed):
    """The NetworkX sink keeps a tally per entity instead of re-reading every mention on each write."""
    tally = SurfaceTally()
    kept = []
    for doc_id, start, length, text, confidence in occurrences:
        tally.add(doc_id, start, start + length, text, confidence)
        kept.append((doc_id, start, start + length, text, confidence))
    for doc_id in removed:
        tally.remove_document(doc_id, [(s, e) for d, s, e, _, _ in kept if d == doc_id])
        kept = [o for o in kept if o[0] != doc_id]
    if not kept:
        assert len(tally) == 0
        return
    assert tally.summary() == summarize_surfaces(kept)
