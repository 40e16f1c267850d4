"""Entity resolution: the names a reader takes for one entity become one, and no others.

Hard cases first (two Browns, Jordan the country and the player, Apple the company and the product, one
acronym for two things), then each rule on its own, the alias table, explanations, determinism, and
the benchmark's B³ scorer.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

from kgbuild.aliases import AliasTable
from kgbuild.ids import entity_id, mention_id
from kgbuild.reconcile import entity_key, reconcile_mentions, resolve_mentions
from kgbuild.resolution import ResolutionRules, defines, initialisms, type_family
from kgbuild.types import Mention

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def doc(doc_id: str, *spans: tuple[str, str]) -> tuple[list[Mention], str]:
    """Mentions of (type, surface) pairs laid out one after another in a document's text, and the text."""
    text, mentions = "", []
    chunk = f"{doc_id}:00000"
    for label, surface in spans:
        if label == "":  # plain text between mentions, in place of the usual " ... "
            text = text.removesuffix(" ... ") + surface
            continue
        start = len(text)
        text += surface
        mentions.append(Mention(mention_id(chunk, label, start, len(text)), doc_id, chunk, label, surface, start,
                                len(text), 0.9))
        text += " ... "
    return mentions, text


def entity_of(resolution_or_map, mentions, surface, label=None, doc_id=None):
    mapping = resolution_or_map.mention_entity if hasattr(resolution_or_map, "mention_entity") else resolution_or_map
    found = {mapping[m.id] for m in mentions if m.text == surface and (label is None or m.label == label)
             and (doc_id is None or m.doc_id == doc_id)}
    assert len(found) == 1, (surface, found)
    return found.pop()


def assert_order_does_not_matter(mentions: list[Mention], texts: dict[str, str], tries: int = 6) -> None:
    """The same entities, mention map and explanations whatever order the mentions and documents come in."""
    expected = resolve_mentions(mentions, texts=texts)
    rng = random.Random(14)
    for _ in range(tries):
        shuffled = mentions[:]
        rng.shuffle(shuffled)
        got = resolve_mentions(shuffled, texts=dict(sorted(texts.items(), key=lambda _: rng.random())))
        assert got.entities == expected.entities
        assert got.mention_entity == expected.mention_entity and got.why == expected.why


# -- the hard cases --------------------------------------------------------------------------------


def test_two_browns_in_one_document_stay_apart():
    mentions, _ = doc("d", ("PERSON", "Gordon Brown"), ("PERSON", "Chris Brown"), ("PERSON", "Brown"),
                      ("PERSON", "Mr Brown"))
    _, mapping = reconcile_mentions(mentions)
    gordon, chris, brown = (entity_of(mapping, mentions, s) for s in ("Gordon Brown", "Chris Brown", "Brown"))
    assert len({gordon, chris, brown}) == 3
    assert entity_of(mapping, mentions, "Mr Brown") == brown  # a title adds nothing that would settle it


def test_one_brown_in_a_document_joins_the_full_name():
    mentions, _ = doc("d", ("PERSON", "Gordon Brown"), ("PERSON", "Brown"), ("PERSON", "Mr Brown"))
    entities, mapping = reconcile_mentions(mentions)
    assert len(set(mapping.values())) == 1
    (entity,) = entities.values()
    assert entity.name == "Gordon Brown" and entity.key == "PERSON:gordon brown"


def test_jordan_the_country_and_jordan_the_player():
    mentions, _ = doc("d", ("PERSON", "Michael Jordan"), ("LOCATION", "Jordan"), ("PERSON", "Jordan"),
                      ("LOCATION", "Jordanian"))
    _, mapping = reconcile_mentions(mentions)
    player = entity_of(mapping, mentions, "Michael Jordan")
    country = entity_of(mapping, mentions, "Jordan", "LOCATION")
    assert entity_of(mapping, mentions, "Jordan", "PERSON") == player
    assert entity_of(mapping, mentions, "Jordanian") == country
    assert player != country


def test_apple_the_company_and_apple_the_product_stay_apart():
    mentions, _ = doc("d", ("COMPANY", "Apple Inc."), ("COMPANY", "Apple"), ("PRODUCT", "Apple"),
                      ("PRODUCT", "Apple Watch"))
    entities, mapping = reconcile_mentions(mentions)
    company = entity_of(mapping, mentions, "Apple", "COMPANY")
    assert entity_of(mapping, mentions, "Apple Inc.") == company
    assert entity_of(mapping, mentions, "Apple", "PRODUCT") not in (company, entity_of(mapping, mentions, "Apple Watch"))
    assert entities[company].key == "COMPANY:apple"


@pytest.mark.parametrize("with_text", [True, False])
def test_an_acronym_for_two_things_in_two_documents(with_text):
    sports, sports_text = doc("sports", ("ORGANIZATION", "Atlantic Coast Conference"), ("", " ("),
                              ("ORGANIZATION", "ACC"), ("ORGANIZATION", "ACC"))
    medicine, medicine_text = doc("medicine", ("ORGANIZATION", "American College of Cardiology"), ("", " ("),
                                  ("ORGANIZATION", "ACC"))
    texts = {"sports": sports_text, "medicine": medicine_text} if with_text else None
    _, mapping = reconcile_mentions(sports + medicine, texts=texts)
    conference = entity_of(mapping, sports, "Atlantic Coast Conference")
    college = entity_of(mapping, medicine, "American College of Cardiology")
    assert entity_of(mapping, sports, "ACC") == conference
    assert entity_of(mapping, medicine, "ACC") == college != conference


def test_an_acronym_defined_in_parentheses_wins_over_another_expansion():
    mentions, text = doc("d", ("ORGANIZATION", "Associated Press"), ("", " ("), ("ORGANIZATION", "AP"),
                         ("ORGANIZATION", "Associated Pharmacists"), ("ORGANIZATION", "AP"))
    resolution = resolve_mentions(mentions, texts={"d": text})
    assert entity_of(resolution, mentions, "AP") == entity_of(resolution, mentions, "Associated Press")
    why = [str(m) for m in resolution.why[entity_of(resolution, mentions, "AP")]]
    assert why == ["acronym defined in parentheses: AP -> Associated Press (d)"]
    # without the text, two expansions fit: the acronym stays on its own
    _, mapping = reconcile_mentions(mentions)
    assert entity_of(mapping, mentions, "AP") not in {entity_of(mapping, mentions, "Associated Press"),
                                                       entity_of(mapping, mentions, "Associated Pharmacists")}


def test_tony_blair_mr_blair_and_blair_are_one_named_by_the_full_name():
    mentions, _ = doc("doc_x", ("PERSON", "Blair"), ("PERSON", "Mr Blair"), ("PERSON", "Blair"),
                      ("PERSON", "Tony Blair"), ("PERSON", "Prime Minister Tony Blair"), ("PERSON", "Blair"))
    resolution = resolve_mentions(mentions)
    (entity,) = resolution.entities.values()
    assert entity.name == "Tony Blair"  # not the most frequent "Blair"
    assert entity.id == entity_id("PERSON", "tony blair") and entity.mention_count == 6
    assert entity.aliases == ["Blair", "Mr Blair", "Prime Minister Tony Blair", "Tony Blair"]
    assert [str(m) for m in resolution.why[entity.id]] == [
        "surname: Blair -> Tony Blair (doc_x)",
        "surname: Mr Blair -> Tony Blair (doc_x)",  # "Mr" keeps its gender, and a surname joins as one
        "title: Prime Minister Tony Blair -> Tony Blair (doc_x)",
    ]


def test_us_united_states_and_america_are_one_across_documents():
    a, _ = doc("a", ("LOCATION", "U.S."), ("LOCATION", "the United States"))
    b, _ = doc("b", ("LOCATION", "America"), ("LOCATION", "US"), ("LOCATION", "USA"), ("LOCATION", "Americans"))
    resolution = resolve_mentions(a + b)
    (entity,) = resolution.entities.values()
    assert entity.key == "LOCATION:united states" and entity.name == "the United States"
    assert "alias: U.S. -> United States (a)" in [str(m) for m in resolution.why[entity.id]]
    assert "demonym: Americans -> United States (b)" in [str(m) for m in resolution.why[entity.id]]


def test_british_britain_and_uk_are_one():
    mentions, _ = doc("d", ("LOCATION", "British"), ("LOCATION", "Britain"), ("LOCATION", "UK"),
                      ("LOCATION", "the U.K."), ("LOCATION", "United Kingdom"))
    entities, _ = reconcile_mentions(mentions)
    (entity,) = entities.values()
    assert entity.key == "LOCATION:united kingdom" and entity.name == "United Kingdom"


def test_resolution_does_not_depend_on_the_order_of_mentions_or_documents():
    mentions: list[Mention] = []
    texts: dict[str, str] = {}
    for doc_id, spans in {
        "a": [("PERSON", "Tony Blair"), ("PERSON", "Blair"), ("LOCATION", "U.S."), ("ORGANIZATION", "AP")],
        "b": [("ORGANIZATION", "Associated Press"), ("", " ("), ("ORGANIZATION", "AP"), ("PERSON", "Blair")],
        "c": [("PERSON", "Gordon Brown"), ("PERSON", "Chris Brown"), ("PERSON", "Brown"), ("LOCATION", "Kenyan")],
        "d": [("ORGANIZATION", "Miami Heat"), ("ORGANIZATION", "Heat"), ("LOCATION", "Calif."), ("LOCATION", "Kenya")],
    }.items():
        found, texts[doc_id] = doc(doc_id, *spans)
        mentions += found
    assert_order_does_not_matter(mentions, texts)


# -- across documents ------------------------------------------------------------------------------


def corpus(**docs: list[tuple[str, str]]) -> tuple[list[Mention], dict[str, str]]:
    """Mentions and texts of several documents: ``corpus(a=[("PERSON", "Tony Blair")], b=[...])``."""
    mentions: list[Mention] = []
    texts: dict[str, str] = {}
    for doc_id, spans in docs.items():
        found, texts[doc_id] = doc(doc_id, *spans)
        mentions += found
    return mentions, texts


def test_blair_alone_in_one_document_joins_the_tony_blair_of_another():
    mentions, texts = corpus(
        a=[("PERSON", "Tony Blair"), ("ORGANIZATION", "Labour"), ("PERSON", "Blair")],
        b=[("PERSON", "Blair"), ("ORGANIZATION", "Labour"), ("LOCATION", "Dublin")],
    )
    resolution = resolve_mentions(mentions, texts=texts)
    tony = entity_of(resolution, mentions, "Tony Blair")
    assert entity_of(resolution, mentions, "Blair", doc_id="b") == tony
    assert "across documents: Blair -> Tony Blair (b)" in [str(m) for m in resolution.why[tony]]
    # each document on its own, as ingest resolves a batch: b's Blair stays apart
    _, apart = reconcile_mentions(mentions, texts=texts, rules=ResolutionRules(cross_document=False))
    assert entity_of(apart, mentions, "Blair", doc_id="b") != entity_of(apart, mentions, "Tony Blair")


def test_a_short_name_needs_evidence_beyond_its_name_to_cross_documents():
    # nothing else in common: "White" of an architects' firm is not the footballer Danny White
    mentions, _ = corpus(a=[("PERSON", "Danny White"), ("ORGANIZATION", "Dallas Cowboys")],
                         b=[("PERSON", "White"), ("ORGANIZATION", "McKim, Mead and White")])
    _, mapping = reconcile_mentions(mentions)
    assert entity_of(mapping, mentions, "White") != entity_of(mapping, mentions, "Danny White")
    # an entity in common that most documents hold is no evidence either
    hub = [("LOCATION", "United States")]
    others = {f"o{i}": [("PERSON", f"Person{i} Other{i}"), *hub] for i in range(8)}
    mentions, _ = corpus(a=[("PERSON", "Danny White"), *hub], b=[("PERSON", "White"), *hub], **others)
    _, mapping = reconcile_mentions(mentions)
    assert entity_of(mapping, mentions, "White") != entity_of(mapping, mentions, "Danny White")


def test_two_browns_across_documents_leave_a_third_brown_alone():
    mentions, _ = corpus(
        a=[("PERSON", "Gordon Brown"), ("LOCATION", "London")],
        b=[("PERSON", "Chris Brown"), ("LOCATION", "London")],
        c=[("PERSON", "Brown"), ("PERSON", "Mr Brown"), ("LOCATION", "London")],
    )
    _, mapping = reconcile_mentions(mentions)
    gordon, chris = entity_of(mapping, mentions, "Gordon Brown"), entity_of(mapping, mentions, "Chris Brown")
    brown = entity_of(mapping, mentions, "Brown")
    assert len({gordon, chris, brown}) == 3 and entity_of(mapping, mentions, "Mr Brown") == brown


def test_jordan_the_country_and_jordan_the_player_across_documents():
    mentions, _ = corpus(
        a=[("PERSON", "Michael Jordan"), ("ORGANIZATION", "Chicago Bulls")],
        b=[("LOCATION", "Jordan"), ("LOCATION", "Amman"), ("ORGANIZATION", "Chicago Bulls")],
        c=[("PERSON", "Jordan"), ("ORGANIZATION", "Chicago Bulls")],
    )
    _, mapping = reconcile_mentions(mentions)
    player = entity_of(mapping, mentions, "Michael Jordan")
    assert entity_of(mapping, mentions, "Jordan", "PERSON") == player
    assert entity_of(mapping, mentions, "Jordan", "LOCATION") != player


def test_an_acronym_joins_the_one_expansion_of_the_corpus_but_not_one_of_two():
    conference = [("ORGANIZATION", "Atlantic Coast Conference"), ("ORGANIZATION", "Duke University")]
    college = [("ORGANIZATION", "American College of Cardiology"), ("LOCATION", "New Orleans")]
    lone = [("ORGANIZATION", "ACC"), ("ORGANIZATION", "Duke University"), ("LOCATION", "New Orleans")]
    mentions, _ = corpus(sports=conference, lone=lone)
    _, mapping = reconcile_mentions(mentions)
    assert entity_of(mapping, mentions, "ACC") == entity_of(mapping, mentions, "Atlantic Coast Conference")
    mentions, _ = corpus(sports=conference, medicine=college, lone=lone)
    _, mapping = reconcile_mentions(mentions)
    assert entity_of(mapping, mentions, "ACC") not in {
        entity_of(mapping, mentions, "Atlantic Coast Conference"),
        entity_of(mapping, mentions, "American College of Cardiology"),
    }
    # two letters say too little to cross documents ("CW" is not "CNN Worldwide")
    mentions, _ = corpus(a=[("ORGANIZATION", "CNN Worldwide"), ("LOCATION", "Atlanta")],
                         b=[("ORGANIZATION", "CW"), ("LOCATION", "Atlanta")])
    assert len(reconcile_mentions(mentions)[0]) == 3


def test_cross_document_resolution_does_not_depend_on_the_order_of_mentions_or_documents():
    mentions, texts = corpus(
        a=[("PERSON", "Tony Blair"), ("ORGANIZATION", "Labour Party"), ("ORGANIZATION", "Labour")],
        b=[("PERSON", "Blair"), ("ORGANIZATION", "Labour"), ("ORGANIZATION", "NATO"), ("LOCATION", "Brussels")],
        c=[("PERSON", "Gordon Brown"), ("ORGANIZATION", "North Atlantic Treaty Organization"),
           ("LOCATION", "Brussels")],
        d=[("PERSON", "Chris Brown"), ("PERSON", "Mrs Obama"), ("LOCATION", "Hawaii")],
        e=[("PERSON", "Brown"), ("PERSON", "Mr Obama"), ("PERSON", "Barack Obama"), ("LOCATION", "Hawaii")],
        f=[("PERSON", "Mrs Obama"), ("PERSON", "Michelle Obama"), ("LOCATION", "Hawaii")],
    )
    expected = resolve_mentions(mentions, texts=texts)
    joined = {str(m) for merges in expected.why.values() for m in merges if m.rule == "cross_document"}
    assert joined == {"across documents: Blair -> Tony Blair (b)",
                      "across documents: NATO -> North Atlantic Treaty Organization (b)",
                      "across documents: Mrs Obama -> Michelle Obama (d)"}
    assert_order_does_not_matter(mentions, texts)


def test_ingest_reconciles_each_batch_without_the_cross_document_rule(business_schema):
    from kgbuild.reconcile import reconcile

    mentions, texts = corpus(a=[("PERSON", "Tony Blair"), ("COMPANY", "Labour")],
                             b=[("PERSON", "Blair"), ("COMPANY", "Labour")])
    for rules in (None, ResolutionRules()):
        reconciliation, _ = reconcile(mentions, [], business_schema, rules=rules, texts=texts)
        assert len({e.key for e in reconciliation.entities.values()}) == 3  # tony blair, blair, labour
    assert len(reconcile_mentions(mentions, texts=texts)[0]) == 2


# -- gendered titles -------------------------------------------------------------------------------


def test_mr_and_mrs_obama_are_two_people():
    mentions, _ = doc("d", ("PERSON", "Mr Obama"), ("PERSON", "Mrs Obama"), ("PERSON", "Obama"))
    _, mapping = reconcile_mentions(mentions)
    assert len({entity_of(mapping, mentions, s) for s in ("Mr Obama", "Mrs Obama", "Obama")}) == 3
    # with only one of them, a plain "Obama" is that one
    mentions, _ = doc("d", ("PERSON", "Mrs Obama"), ("PERSON", "Obama"), ("PERSON", "Ms Obama"))
    assert len(reconcile_mentions(mentions)[0]) == 1


def test_a_gendered_title_still_joins_the_one_full_name():
    mentions, _ = doc("d", ("PERSON", "Barack Obama"), ("PERSON", "Mr Obama"), ("PERSON", "Obama"))
    entities, _ = reconcile_mentions(mentions)
    assert [e.key for e in entities.values()] == ["PERSON:barack obama"]
    # but not Mr and Mrs Obama both to the one full name: which of them it is, the document does not say
    mentions, _ = doc("d", ("PERSON", "Barack Obama"), ("PERSON", "Mr Obama"), ("PERSON", "Mrs Obama"))
    _, mapping = reconcile_mentions(mentions)
    assert len({entity_of(mapping, mentions, s) for s in ("Barack Obama", "Mr Obama", "Mrs Obama")}) == 3
    # a full name that carries a gendered title settles it
    mentions, _ = doc("d", ("PERSON", "Mr Barack Obama"), ("PERSON", "Mrs Michelle Obama"), ("PERSON", "Mr Obama"),
                      ("PERSON", "Mrs Obama"))
    _, mapping = reconcile_mentions(mentions)
    assert entity_of(mapping, mentions, "Mr Obama") == entity_of(mapping, mentions, "Mr Barack Obama")
    assert entity_of(mapping, mentions, "Mrs Obama") == entity_of(mapping, mentions, "Mrs Michelle Obama")


def test_mr_here_and_mrs_there_do_not_both_join_one_full_name_across_documents():
    mentions, _ = corpus(a=[("PERSON", "Barack Obama"), ("LOCATION", "Hawaii")],
                         b=[("PERSON", "Mr Obama"), ("LOCATION", "Hawaii")],
                         c=[("PERSON", "Mrs Obama"), ("LOCATION", "Hawaii")])
    _, mapping = reconcile_mentions(mentions)
    assert len({entity_of(mapping, mentions, s) for s in ("Barack Obama", "Mr Obama", "Mrs Obama")}) == 3
    # nor two names of one document to the same full name
    mentions, _ = corpus(a=[("PERSON", "Barack Obama"), ("LOCATION", "Hawaii")],
                         b=[("PERSON", "Mr Obama"), ("PERSON", "Mrs Obama"), ("LOCATION", "Hawaii")])
    _, mapping = reconcile_mentions(mentions)
    assert len({entity_of(mapping, mentions, s) for s in ("Barack Obama", "Mr Obama", "Mrs Obama")}) == 3


# -- each rule -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "label, short, full, rule",
    [
        ("PERSON", "Saddam", "Saddam Hussein", "first_name"),
        ("PERSON", "Trump", "Donald Trump", "surname"),
        ("PERSON", "Gerald Ford", "Gerald R. Ford", "name_variant"),
        ("PERSON", "J. Smith", "John Smith", "name_variant"),
        ("PERSON", "Van Gogh", "Vincent van Gogh", "surname"),
        ("ORGANIZATION", "Heat", "Miami Heat", "head_word"),
        ("ORGANIZATION", "Congress", "U.S. Congress", "head_word"),
        ("ORGANIZATION", "AP", "Associated Press", "acronym"),
        ("ORGANIZATION", "CFR", "Council on Foreign Relations", "acronym"),
        ("COMPANY", "IBM", "International Business Machines", "acronym"),
        ("GENE", "TNF", "tumor necrosis factor", "acronym"),
        ("LOCATION", "Palace", "Kyoto Imperial Palace", "head_word"),
        ("ORGANIZATION", "Interscope", "Interscope Records", "designator"),
        ("COMPANY", "Butler", "Butler University", "designator"),
    ],
)
def test_a_short_name_joins_the_one_full_name_it_abbreviates(label, short, full, rule):
    mentions, _ = doc("d", (label, full), (label, short))
    resolution = resolve_mentions(mentions)
    assert len(resolution.entities) == 1
    (why,) = resolution.why[entity_of(resolution, mentions, full)]
    assert why.rule == rule and why.alias == short and why.name == full
    # and the rule switched off leaves them apart
    assert len(resolve_mentions(mentions, rules=ResolutionRules().without(rule)).entities) == 2


@pytest.mark.parametrize(
    "label, short, full",
    [
        ("LOCATION", "Sudan", "South Sudan"),  # a qualifier makes another place
        ("LOCATION", "York", "New York"),
        ("LOCATION", "Brandenburg", "Margraviate of Brandenburg"),  # never across "of"
        ("ORGANIZATION", "Catholic Church", "Catholic Church in the Maldives"),
        ("ORGANIZATION", "CNN", "CNN International"),  # an acronym is not a short name
        ("PERSON", "Elizabeth", "Elizabeth II"),  # regnal numbers tell monarchs apart
        ("PERSON", "Paul Desmarais", "Paul Desmarais Jr."),  # and generations tell father and son apart
        ("PERSON", "George W. Bush", "George H. W. Bush"),
        ("ORGANIZATION", "Samsung", "Samsung Electronics"),  # short names of companies are off by default
        ("DATE", "1971", "February 2, 1971"),  # values are never resolved
        ("ORGANIZATION", "ACC", "Atlantic Coast"),  # an acronym must spell the whole name
        ("LOCATION", "Prussia", "Brandenburg-Prussia"),  # never across a hyphen
        ("PERSON", "Jean", "Jean-Pierre Raffarin"),
        ("LOCATION", "Wielbark", "Gmina Wielbark"),  # the district is not the village
        ("LOCATION", "Caves", "Camp Caves"),
        ("LOCATION", "Albany", "Albany County"),  # a city is not its county, nor its province or river
        ("LOCATION", "Guayas", "Guayas River"),
        ("ORGANIZATION", "Beijing Jinyu", "Beijing Jinyu Group"),  # a group is a company of its own
        ("ORGANIZATION", "Warner Bros.", "Warner Bros. Television"),
    ],
)
def test_names_a_reader_keeps_apart(label, short, full):
    mentions, _ = doc("d", (label, full), (label, short))
    assert len(reconcile_mentions(mentions)[0]) == 2


def test_a_name_beside_a_regnal_name_of_the_same_word_is_unclear():
    mentions, _ = doc("d", ("PERSON", "Carol II"), ("PERSON", "Michael Carol"), ("PERSON", "Carol"))
    assert len(reconcile_mentions(mentions)[0]) == 3


def test_every_rule_off_is_grouping_by_normalised_name():
    mentions, _ = doc("d", ("PERSON", "Tony Blair"), ("PERSON", "Mr Blair"), ("LOCATION", "U.S."),
                      ("LOCATION", "United States"), ("ORGANIZATION", "AP"), ("ORGANIZATION", "Associated Press"))
    entities, _ = reconcile_mentions(mentions, rules=ResolutionRules.none())
    assert sorted(e.key for e in entities.values()) == [
        "LOCATION:u s", "LOCATION:united states", "ORGANIZATION:ap", "ORGANIZATION:associated press",
        "PERSON:mr blair", "PERSON:tony blair",
    ]
    with pytest.raises(ValueError, match="unknown resolution rule"):
        ResolutionRules().without("nicknames")


def test_short_names_of_companies_can_be_switched_on():
    mentions, _ = doc("d", ("COMPANY", "Goldman Sachs"), ("COMPANY", "Goldman"))
    assert len(reconcile_mentions(mentions, rules=ResolutionRules(short_name=True))[0]) == 1


def test_accents_of_latin_letters_do_not_split_a_name():
    mentions, _ = doc("d", ("LOCATION", "Élysée Palace"), ("LOCATION", "Elysee Palace"), ("PERSON", "Nikos Aliagas"),
                      ("PERSON", "Níkos Aliágas"))
    assert len(reconcile_mentions(mentions)[0]) == 2


def test_types_are_sorted_into_families_by_name_and_by_the_caller():
    assert [type_family(t) for t in ("PERSON", "COMPANY", "ORGANIZATION", "LOCATION", "GPE", "DATE", "MONEY",
                                     "PRODUCT", "MISC", "GENE", "CELL_TYPE")] == [
        "person", "organization", "organization", "place", "place", "value", "value",
        "other", "other", "other", "other"]
    rules = ResolutionRules(families={"CHIEF": "person"})
    mentions, _ = doc("d", ("CHIEF", "Satya Nadella"), ("CHIEF", "Nadella"))
    assert len(reconcile_mentions(mentions)[0]) == 2
    assert len(reconcile_mentions(mentions, rules=rules)[0]) == 1
    with pytest.raises(ValueError, match="must be one of"):
        ResolutionRules(families={"CHIEF": "human"}).family("CHIEF")


def test_acronym_helpers():
    assert {"cfr", "cofr"} <= initialisms(("council", "on", "foreign", "relations"))
    assert "tf104" in initialisms(("task", "force", "104"))
    assert defines("riaj", "Recording Industry Association of Japan")
    assert defines("asean", "Association of Southeast Asian Nations")
    assert not defines("ibm", "Apple Computer")


# -- the alias table -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "surface, canonical",
    [
        ("U.S.", "United States"), ("the United States", "United States"), ("USA", "United States"),
        ("America", "United States"), ("UK", "United Kingdom"), ("the UK", "United Kingdom"),
        ("Britain", "United Kingdom"), ("British", "United Kingdom"), ("Kenyan", "Kenya"), ("Kenyans", "Kenya"),
        ("Calif.", "California"), ("N.Y.", "New York"), ("Burma", "Myanmar"), ("Chinese", "China"),
        ("Wales", "Wales"),  # shares the UK's ISO code, but is a place of its own
        ("us", None),  # codes match in capitals only
        ("CA", None),  # Canada, and California's postal code: no alias of either
        ("Congolese", None),  # two Congos: no clear winner
        ("Korean", None),
    ],
)
def test_the_built_in_alias_table(surface, canonical):
    assert AliasTable.default().lookup(surface) == canonical


def test_users_extend_the_alias_table():
    table = AliasTable.default().extended({"Big Apple": "New York City", "Holland": "Holland"})
    assert table.lookup("the Big Apple") == "New York City" and table.lookup("Holland") == "Holland"
    assert table.lookup("U.S.") == "United States" and AliasTable.default().lookup("Big Apple") is None
    mentions, _ = doc("d", ("LOCATION", "Big Apple"), ("LOCATION", "New York City"))
    assert len(reconcile_mentions(mentions, aliases={"Big Apple": "New York City"})[0]) == 1
    assert len(reconcile_mentions(mentions, aliases=AliasTable.from_mapping({}))[0]) == 2
    with pytest.raises(ValueError, match="both sides"):
        AliasTable.default().extended({"Big Apple": " "})


def test_entity_filters_resolve_names_as_ingest_does():
    assert entity_key("LOCATION", "U.S.") == entity_key("LOCATION", "America") == "LOCATION:united states"
    assert entity_key("PERSON", "President Blair") == "PERSON:blair"
    assert entity_key("PERSON", "Mr Blair") == "PERSON:blair (m)" != entity_key("PERSON", "Mrs Blair")
    assert entity_key("COMPANY", "Apple Inc.") == "COMPANY:apple"


def test_resolution_stays_linear():
    # 100k mentions in 1k documents, every document full of short names that share words with full names
    mentions: list[Mention] = []
    for d in range(1_000):
        for i in range(100):
            surname = f"Name{(d + i) % 300}"
            surface = f"Person{i % 7} {surname}" if i % 3 else surname
            chunk = f"doc{d}:00000"
            mentions.append(Mention(mention_id(chunk, "PERSON", i * 40, i * 40 + len(surface)), f"doc{d}", chunk,
                                    "PERSON", surface, i * 40, i * 40 + len(surface), 0.9))
    import time

    started = time.perf_counter()
    entities, mapping = reconcile_mentions(mentions)
    assert time.perf_counter() - started < 20 and len(mapping) == 100_000 and entities


# -- the benchmark's scorer ------------------------------------------------------------------------


def test_b_cubed_by_hand():
    from bench.resolution import b_cubed

    # gold {1,2} {3,4,5}; predicted {1,2,3} {4,5}: every item's precision and recall worked out by hand
    score = b_cubed(["a", "a", "b", "b", "b"], [1, 1, 1, 2, 2])
    assert score.precision == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1 + 1) / 5)
    assert score.recall == pytest.approx((1 + 1 + 1 / 3 + 2 / 3 + 2 / 3) / 5)
    assert score.f1 == pytest.approx(11 / 15)
    assert b_cubed(["a", "b"], [1, 2]) == b_cubed(["x", "y"], ["p", "q"])
    perfect = b_cubed(["a", "a", "b"], [7, 7, 8])
    assert (perfect.precision, perfect.recall, perfect.f1) == (1.0, 1.0, 1.0)


def test_the_scorer_on_a_tiny_marked_up_set():
    from bench.resolution import ablation, parse_marked, score

    gold = parse_marked(
        "intro\n## a\n[Tony Blair](PERSON:tb) spoke. [Blair](PERSON:tb) left for [the U.S.](LOCATION:us).\n"
        "## b\n[Blair](PERSON:tb) returned from [America](LOCATION:us).\n"
    )
    assert gold.texts["a"] == "Tony Blair spoke. Blair left for the U.S.."
    assert [m.text for m in gold.mentions] == ["Tony Blair", "Blair", "the U.S.", "Blair", "America"]
    # each document on its own: {Tony Blair, Blair}a {Blair}b {the U.S., America}: precision 1; Blair's recall
    # 2/3, 2/3, 1/3
    result = score(gold, ResolutionRules(cross_document=False))
    assert result.precision == 1.0
    assert result.recall == pytest.approx((2 / 3 + 2 / 3 + 1 / 3 + 1 + 1) / 5)
    # across documents, b's "Blair" (beside the United States, as a's "Tony Blair") joins a's
    assert score(gold) == type(result)(1.0, 1.0, 1.0)
    rows = dict(ablation(gold))
    assert rows["without cross_document"] == result
    assert rows["baseline: no rules (type + normalised name)"].recall < result.recall
    assert rows["without aliases"].recall < 1.0


def test_ingest_resolves_with_the_document_text_an_acronym_defined_in_parentheses(tmp_path, business_schema, embedder):
    """The pipeline hands resolution the document texts: "Associated Press (AP)" makes AP that press, not the
    pharmacists the same article also names; the graph holds one entity for both names, named in full."""
    from kgbuild.connectors.networkx_graph import load_graph
    from kgbuild.extract.gazetteer import GazetteerExtractor
    from kgbuild.pipeline import ingest
    from kgbuild.settings import Settings

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "wire.txt").write_text(
        "Reporters of the Associated Press (AP) met the Associated Pharmacists in Seoul.\n\n"
        "AP said the meeting went well.\n", encoding="utf-8")
    extractor = GazetteerExtractor(business_schema, {"COMPANY": ["Associated Press", "Associated Pharmacists", "AP"],
                                                     "LOCATION": ["Seoul"]})
    settings = Settings(out_dir=tmp_path / "out", chunk_size=64, chunk_overlap=8)
    ingest(corpus, settings, extractor=extractor, embedder=embedder)
    graph = load_graph(tmp_path / "out" / "graph.json")
    companies = {data["name"]: data for _, data in graph.nodes(data=True)
                 if data.get("kind") == "Entity" and data["type"] == "COMPANY"}
    assert set(companies) == {"Associated Press", "Associated Pharmacists"}
    assert companies["Associated Press"]["mention_count"] == 3 and "AP" in companies["Associated Press"]["aliases"]
