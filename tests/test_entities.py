"""Explainable and overridable resolution: why each alias joined its entity (stored per mention, exact under
incremental updates), `kgbuild entities show/list/merge/split`, and the override file (resolution.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from index_snapshot import assert_same_index, snapshot
from kgbuild.cli import app
from kgbuild.entities import (
    EntityNotFoundError, abbreviated_entity, describe_rule, entity_filter_keys, explain_mentions, find_entity, list_entities, pin_merge, pin_split, show_entity,
)
from kgbuild.errors import ConfigError
from kgbuild.extract.gazetteer import GazetteerExtractor
from kgbuild.ids import entity_id, mention_id
from kgbuild.index import remove
from kgbuild.overrides import (
    OVERRIDES_FILE, OverridesError, ResolutionOverrides, load_overrides, parse_overrides, save_overrides,
)
from kgbuild.pipeline import ingest
from kgbuild.plan import describe_fingerprint_change, extraction_fingerprint_parts
from kgbuild.reconcile import resolve_mentions
from kgbuild.settings import Settings
from kgbuild.types import Entity, Mention

runner = CliRunner()

CORPUS = {
    "news/london.txt": "Tony Blair arrived in London. Blair thanked the U.S. for its help.",
    "news/leeds.txt": "Blair spoke to voters in Leeds. Blair left early.",
    "news/budget.txt": "Gordon Brown presented the budget in London. Brown said taxes would not rise.",
    "sport/jordan.txt": "Michael Jordan played in Chicago. Jordan scored 40 points.",
}
NAMES = {
    "PERSON": ["Tony Blair", "Blair", "Gordon Brown", "Brown", "Michael Jordan", "Jordan"],
    "LOCATION": ["London", "Leeds", "Chicago", "U.S.", "United States"],
}
PINNED = """\
# what we know better than the rules
version: 1
merge:
  - [PERSON:Blair, PERSON:Tony Blair]    # the Blair of leeds.txt is Tony Blair
never_merge:
  - [PERSON:Jordan, PERSON:Michael Jordan]
"""


def eid(entity_type: str, key: str) -> str:
    return entity_id(entity_type, key)


TONY, BLAIR, JORDAN, MICHAEL = eid("PERSON", "tony blair"), eid("PERSON", "blair"), eid("PERSON", "jordan"), eid("PERSON", "michael jordan")


@pytest.fixture
def names(business_schema):
    return GazetteerExtractor(business_schema, NAMES, max_tokens=64)


def write(root: Path, docs: dict[str, str]) -> Path:
    for rel, text in docs.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
    return root


def settings_for(out: Path) -> Settings:
    return Settings(out_dir=out, checkpoint_seconds=0)


@pytest.fixture
def built(tmp_path, names, embedder):
    """The corpus ingested without overrides."""
    corpus = write(tmp_path / "corpus", CORPUS)
    settings = settings_for(tmp_path / "index")
    ingest(corpus, settings, extractor=names, embedder=embedder)
    return {"corpus": corpus, "settings": settings}


def mention(doc: str, text: str, surface: str, label: str = "PERSON", nth: int = 0) -> Mention:
    start = -1
    for _ in range(nth + 1):
        start = text.index(surface, start + 1)
    return Mention(mention_id(f"{doc}:0", label, start, start + len(surface)), doc, f"{doc}:0", label, surface, start,
                   start + len(surface), 0.9)


# -- the override file -------------------------------------------------------------------------


def test_the_override_file_is_validated_with_the_line_and_the_field():
    cases = {
        "version: 2\n": "x.yaml:1: version: version 2 is not one this kgbuild reads (it reads version 1)",
        "merge: []\n": "x.yaml:1: version: missing (write `version: 1` at the top)",
        "version: 1\nmerge:\n  - [PERSON:Blair]\n": "x.yaml:3: merge[0]: each entry must be a pair of names",
        "version: 1\nnever_merge:\n  - [PERSON:A, PERSON:B]\n  - [Blair, PERSON:Tony Blair]\n":
            "x.yaml:4: never_merge[1][0]: 'Blair' must look like TYPE:NAME",
        "version: 1\nmerges: []\n": "x.yaml:2: merges: unknown field",
        "version: 1\nmerge:\n  - [PERSON:Blair, COMPANY:Blair]\n": "x.yaml:3: merge[0]: PERSON:Blair and COMPANY:Blair have different types",
        "version: 1\nmerge:\n  - [PERSON:Blair, PERSON:blair]\n": "x.yaml:3: merge[0]: PERSON:Blair and PERSON:blair are the same name",
        "version: 1\nmerge:\n  - [PERSON:A, PERSON:B]\n  - [PERSON:B, PERSON:C]\nnever_merge:\n  - [PERSON:C, PERSON:A]\n":
            "x.yaml:6: never_merge[0]: PERSON:C and PERSON:A are also merged",
        "version: 1\nmerge: [PERSON:A, PERSON:B\n": "x.yaml:3: invalid YAML",
        "": "x.yaml: empty",
        "- 1\n": "x.yaml:1: must be a mapping",
    }
    for text, message in cases.items():
        with pytest.raises(OverridesError) as caught:
            parse_overrides(text, "x.yaml")
        assert str(caught.value).startswith(message), (text, str(caught.value))
        assert "\n" not in str(caught.value)


def test_the_fingerprint_ignores_comments_layout_and_order():
    a = parse_overrides(PINNED)
    b = parse_overrides("version: 1\nnever_merge: [['PERSON:Michael Jordan', 'PERSON:Jordan']]\n"
                        "merge:\n  - - PERSON:Blair\n    - PERSON:Tony Blair\n")
    assert a.fingerprint == b.fingerprint and a.fingerprint.startswith("sha256:")
    assert parse_overrides(a.to_yaml()).fingerprint == a.fingerprint  # what the CLI writes reads back the same
    assert parse_overrides("version: 1\n").fingerprint is None and not parse_overrides("version: 1\n")
    assert a.with_merge("PERSON:Brown", "PERSON:Gordon Brown").fingerprint != a.fingerprint


def test_merges_chain_and_take_the_key_of_a_name_only_merged_into():
    overrides = ResolutionOverrides.from_pairs(merge=[("PERSON:Blair", "PERSON:Tony Blair"),
                                                      ("PERSON:Tony Blair", "PERSON:Anthony Blair")])
    for name in ("PERSON:Blair", "PERSON:Tony Blair", "PERSON:Anthony Blair"):
        assert overrides.merged_key(f"PERSON:{name.partition(':')[2].lower()}") == "PERSON:anthony blair"
    assert overrides.merged_key("PERSON:gordon brown") == "PERSON:gordon brown"
    # the same pair in the other list replaces it
    split = overrides.with_never_merge("PERSON:Tony Blair", "PERSON:Blair")
    assert [(a.text, b.text) for a, b in split.merge] == [("PERSON:Tony Blair", "PERSON:Anthony Blair")]
    assert [(a.text, b.text) for a, b in split.never_merge] == [("PERSON:Tony Blair", "PERSON:Blair")]


def test_overrides_are_applied_last_and_say_so():
    doc1 = "Tony Blair met Michael Jordan. Blair and Jordan spoke. The U.S. and the United States."
    doc2 = "Blair spoke."
    mentions = [mention("d1", doc1, "Tony Blair"), mention("d1", doc1, "Michael Jordan"), mention("d1", doc1, "Blair", nth=1),
                mention("d1", doc1, "Jordan", nth=1), mention("d1", doc1, "U.S.", "LOCATION"),
                mention("d1", doc1, "United States", "LOCATION"), mention("d2", doc2, "Blair")]
    plain = resolve_mentions(mentions)
    assert [plain.mention_entity[m.id] for m in mentions[:4]] == [TONY, MICHAEL, TONY, MICHAEL]
    reasons = {(m.doc_id, m.text): plain.mention_reasons[m.id] for m in mentions}
    assert (reasons[("d1", "Blair")].rule, reasons[("d1", "Blair")].via) == ("surname", "Tony Blair")
    assert (reasons[("d1", "Tony Blair")].rule, reasons[("d1", "Tony Blair")].via) == ("exact", "")
    assert (reasons[("d1", "U.S.")].rule, reasons[("d1", "U.S.")].via) == ("aliases", "United States")
    assert plain.mention_entity[mentions[-1].id] == BLAIR

    overrides = ResolutionOverrides.from_pairs(
        merge=[("PERSON:Blair", "PERSON:Tony Blair")],
        never_merge=[("PERSON:Jordan", "PERSON:Michael Jordan"), ("LOCATION:U.S.", "LOCATION:United States")])
    pinned = resolve_mentions(mentions, overrides=overrides)
    got = {(m.doc_id, m.text): (pinned.mention_entity[m.id], pinned.mention_reasons[m.id]) for m in mentions}
    assert got[("d2", "Blair")][0] == TONY and got[("d2", "Blair")][1].rule == "override"
    assert got[("d2", "Blair")][1].via == "Tony Blair"
    assert got[("d1", "Blair")][0] == TONY and got[("d1", "Blair")][1].rule == "surname"  # the rules had it already
    assert got[("d1", "Jordan")][0] == JORDAN and got[("d1", "Jordan")][1].rule == "exact"  # kept apart
    assert got[("d1", "Michael Jordan")][0] == MICHAEL
    assert got[("d1", "U.S.")][0] == eid("LOCATION", "u s")  # an alias kept apart keeps its own spelling
    assert got[("d1", "United States")][0] == eid("LOCATION", "united states")
    assert pinned.entities[TONY].alias_counts == {"Blair": 2, "Tony Blair": 1}
    assert any(m.rule == "override" and m.doc_ids == ("d2",) for m in pinned.why[TONY])
    # deterministic: the order of the mentions does not matter
    again = resolve_mentions(list(reversed(mentions)), overrides=overrides)
    assert again.mention_entity == pinned.mention_entity and again.mention_reasons == pinned.mention_reasons


def test_the_override_fingerprint_is_an_extraction_part_only_when_there_are_overrides(business_schema):
    settings = Settings()
    plain = extraction_fingerprint_parts(settings, business_schema, "m", "e")
    assert "resolution_overrides" not in plain  # an index without overrides keeps the fingerprint it had
    pinned = extraction_fingerprint_parts(settings, business_schema, "m", "e", parse_overrides(PINNED).fingerprint)
    assert describe_fingerprint_change(plain, pinned).startswith("resolution overrides none -> sha256:")


# -- finding and explaining entities -------------------------------------------------------------


def _entity(key: str, name: str, aliases: dict[str, int]) -> Entity:
    entity_type, _, bare = key.partition(":")
    return Entity(eid(entity_type, bare), entity_type, key, name, sorted(aliases), sum(aliases.values()), 0.9, aliases)


def test_find_entity_by_key_alias_or_merge_and_close_candidates():
    entities = {e.id: e for e in (
        _entity("PERSON:tony blair", "Tony Blair", {"Tony Blair": 2, "Blair": 3}),
        _entity("PERSON:cherie blair", "Cherie Blair", {"Cherie Blair": 1, "Blair": 1}),
        _entity("PERSON:gordon brown", "Gordon Brown", {"Gordon Brown": 1, "Brown": 1}),
        _entity("LOCATION:united states", "United States", {"United States": 1, "U.S.": 1}),
    )}
    assert find_entity(entities, "PERSON:tony BLAIR")[1] == "key"
    assert find_entity(entities, "person:Tony Blair")[0].key == "PERSON:tony blair"  # the type as the graph spells it
    assert find_entity(entities, "LOCATION:U.S.") == (entities[eid("LOCATION", "united states")], "key")
    assert find_entity(entities, "PERSON:Brown") == (entities[eid("PERSON", "gordon brown")], "alias")
    with pytest.raises(ConfigError, match=r"PERSON:Blair is a name of 2 entities: PERSON:tony blair \(Tony Blair, 5 mentions\)"):
        find_entity(entities, "PERSON:Blair")
    merged = ResolutionOverrides.from_pairs(merge=[("PERSON:Blair", "PERSON:Tony Blair")])
    assert find_entity(entities, "PERSON:Blair", merged) == (entities[TONY], "merge")
    with pytest.raises(EntityNotFoundError) as caught:
        find_entity(entities, "PERSON:Tony Blaer")
    assert str(caught.value).startswith("no entity PERSON:Tony Blaer; close: PERSON:tony blair (Tony Blair, 5 mentions)")
    assert caught.value.candidates[0].key == "PERSON:tony blair"
    with pytest.raises(EntityNotFoundError, match="entities list --type PERSON"):
        find_entity(entities, "PERSON:Zzyzx Qwv")
    with pytest.raises(ConfigError, match="must look like TYPE:NAME"):
        find_entity(entities, "Tony Blair")


def test_entity_filters_resolve_as_ingest_does():
    entities = {e.id: e for e in (
        _entity("PERSON:tony blair", "Tony Blair", {"Tony Blair": 2, "Mr Blair": 3}),
        _entity("PERSON:blair", "Blair", {"Blair": 1}),
        _entity("PERSON:gordon brown", "Gordon Brown", {"Gordon Brown": 1}),
        _entity("PERSON:james brown", "James Brown", {"James Brown": 1}),
        _entity("ORGANIZATION:north atlantic treaty organization", "North Atlantic Treaty Organization",
                {"North Atlantic Treaty Organization": 1}),
        _entity("ORGANIZATION:miami heat", "Miami Heat", {"Miami Heat": 1}),
        _entity("LOCATION:united states", "United States", {"United States": 1}),
        _entity("LOCATION:jordan", "Jordan", {"Jordan": 1}),
        _entity("PERSON:michael jordan", "Michael Jordan", {"Michael Jordan": 1}),
    )}
    # the key itself, and every entity whose mentions were written so ("Mr Blair" is "Blair")
    assert entity_filter_keys(entities, "PERSON:Blair") == ["PERSON:blair", "PERSON:tony blair"]
    assert entity_filter_keys(entities, "person:tony blair") == ["PERSON:tony blair"]
    # no such key and no alias: the one full name it abbreviates, by the resolution rules
    assert entity_filter_keys(entities, "PERSON:Tony") == ["PERSON:tony blair"]
    assert entity_filter_keys(entities, "ORGANIZATION:NATO") == ["ORGANIZATION:north atlantic treaty organization"]
    assert entity_filter_keys(entities, "ORGANIZATION:Heat") == ["ORGANIZATION:miami heat"]
    assert entity_filter_keys(entities, "LOCATION:America") == ["LOCATION:united states"]  # the alias table
    # two full names fit: neither is guessed; nor does a type reach across ("Jordan" the country)
    assert entity_filter_keys(entities, "PERSON:Brown") == ["PERSON:brown"]
    assert abbreviated_entity(entities, "PERSON", "Brown") is None
    assert entity_filter_keys(entities, "LOCATION:Jordan") == ["LOCATION:jordan"]
    assert entity_filter_keys(entities, "PERSON:Jordan") == ["PERSON:michael jordan"]
    assert entity_filter_keys(entities, "PERSON:Nobody") == ["PERSON:nobody"]
    merged = ResolutionOverrides.from_pairs(merge=[("PERSON:Gordon", "PERSON:James Brown")])
    assert entity_filter_keys(entities, "PERSON:Gordon", merged) == ["PERSON:james brown"]


def test_query_entity_filters_find_the_resolved_entity(built):
    from kgbuild.retrieve.hybrid import hybrid_query
    from kgbuild.retrieve.vector import query

    settings = built["settings"]
    def docs(hits):
        return sorted({h.path for h in hits})

    # "Blair" alone in leeds.txt is its own entity; in london.txt it is Tony Blair: the filter finds both
    assert docs(query("who spoke", settings, entities=["PERSON:Blair"])) == ["news/leeds.txt", "news/london.txt"]
    assert docs(query("who spoke", settings, entities=["PERSON:Tony"])) == ["news/london.txt"]
    assert docs(query("who spoke", settings, entities=["PERSON:Michael"])) == ["sport/jordan.txt"]
    hits = hybrid_query("who spoke", settings, entities=["PERSON:Tony"])
    assert docs(hits) == ["news/london.txt"]
    assert hits[0].matched_entities == ["PERSON:tony blair"]
    result = runner.invoke(app, ["query", "who spoke", "--entity", "PERSON:Michael", "--out", str(settings.out_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert {hit["path"] for hit in json.loads(result.stdout)} == {"sport/jordan.txt"}


def test_explain_mentions_counts_a_span_once_and_names_the_documents():
    def record(doc, start, text, rule, via, chunk="c0"):
        return {"id": f"{doc}{chunk}{start}", "chunk_id": chunk, "entity_id": TONY, "doc_id": doc, "label": "PERSON",
                "text": text, "start": start, "end": start + len(text), "confidence": 0.9, "rule": rule, "via": via}

    mentions = [record("d1", 0, "Tony Blair", "exact", ""), record("d1", 30, "Blair", "surname", "Tony Blair"),
                record("d1", 30, "Blair", "surname", "Tony Blair", chunk="c1"),  # the same span in two chunks
                record("d2", 0, "Blair", "override", "Tony Blair"), record("d3", 5, "Blair", "", "")]
    reasons, documents = explain_mentions(mentions, {"d1": "news/a.txt", "d2": "news/b.txt"})
    assert [(r.alias, r.rule, r.via, r.mentions, r.documents) for r in reasons] == [
        ("Tony Blair", "exact", "", 1, ["news/a.txt"]),
        ("Blair", "", "", 1, ["d3"]),
        ("Blair", "override", "Tony Blair", 1, ["news/b.txt"]),
        ("Blair", "surname", "Tony Blair", 1, ["news/a.txt"]),
    ]
    assert [(d.path, d.mentions) for d in documents] == [("news/a.txt", 2), ("d3", 1), ("news/b.txt", 1)]
    assert describe_rule("titles+surname", "Tony Blair") == "title + surname -> Tony Blair"
    assert describe_rule("override", "Tony Blair") == "override (resolution.yaml) -> Tony Blair"
    assert describe_rule("exact", "") == "same name"
    assert describe_rule("", "").startswith("not recorded")


# -- through ingest -------------------------------------------------------------------------------


def test_show_explains_each_alias_of_an_ingested_entity(built):
    settings = built["settings"]
    report = show_entity("PERSON:Tony Blair", settings)
    assert (report.entity.key, report.entity.name, report.matched) == ("PERSON:tony blair", "Tony Blair", "key")
    assert report.entity.alias_counts == {"Blair": 1, "Tony Blair": 1}
    assert [(r.alias, r.rule, r.via, r.documents) for r in report.reasons] == [
        ("Tony Blair", "exact", "", ["news/london.txt"]), ("Blair", "surname", "Tony Blair", ["news/london.txt"])]
    assert [(d.path, d.mentions) for d in report.documents] == [("news/london.txt", 2)]
    assert report.pinned == [] and report.overrides_file == ""
    # "Brown" is no entity of its own: it is a name of Gordon Brown's
    brown = show_entity("PERSON:Brown", settings)
    assert (brown.entity.key, brown.matched) == ("PERSON:gordon brown", "alias")
    assert show_entity("LOCATION:United States", settings).reasons[0].rule == "aliases"  # only "U.S." was written
    with pytest.raises(EntityNotFoundError, match=r"^no entity PERSON:Tony Blaer; close: PERSON:tony blair"):
        show_entity("PERSON:Tony Blaer", settings)
    top = list_entities(settings, entity_type="person", top=2)
    assert [(e.key, e.mention_count) for e in top] == [("PERSON:blair", 2), ("PERSON:gordon brown", 2)]


def test_explanations_follow_the_documents_that_remain(built, names, embedder):
    corpus, settings = built["corpus"], built["settings"]
    remove([corpus / "news/london.txt"], settings)
    with pytest.raises(EntityNotFoundError):
        show_entity("PERSON:Tony Blair", settings)
    assert not [e for e in list_entities(settings) if e.key == "LOCATION:united states"]
    (corpus / "news/london.txt").write_text(CORPUS["news/london.txt"] + " Blair smiled.", encoding="utf-8")
    ingest(corpus, settings, extractor=names, embedder=embedder)
    report = show_entity("PERSON:Tony Blair", settings)
    assert report.entity.alias_counts == {"Blair": 2, "Tony Blair": 1}
    assert [(r.alias, r.mentions) for r in report.reasons] == [("Tony Blair", 1), ("Blair", 2)]


def test_an_override_file_applies_at_ingest_and_equals_a_fresh_ingest(tmp_path, names, embedder):
    corpus = write(tmp_path / "corpus", CORPUS)
    updated = settings_for(tmp_path / "updated")
    ingest(corpus, updated, extractor=names, embedder=embedder)
    assert {e.key for e in list_entities(updated)} >= {"PERSON:blair", "PERSON:tony blair"}

    (tmp_path / "updated" / OVERRIDES_FILE).write_text(PINNED, encoding="utf-8")
    report = ingest(corpus, updated, extractor=names, embedder=embedder)
    assert report.documents_read == len(CORPUS)  # a changed override file re-resolves every document
    assert report.reextraction_reason.startswith("resolution overrides none -> sha256:")
    assert ingest(corpus, updated, extractor=names, embedder=embedder).documents_read == 0  # and then nothing

    tony = show_entity("PERSON:Blair", updated)  # found through the file's merge
    assert (tony.entity.key, tony.matched) == ("PERSON:tony blair", "merge")
    assert tony.entity.alias_counts == {"Blair": 3, "Tony Blair": 1}
    assert ("Blair", "override", "Tony Blair", ["news/leeds.txt"]) in [(r.alias, r.rule, r.via, r.documents) for r in tony.reasons]
    assert tony.pinned == ["merge PERSON:Blair -> PERSON:Tony Blair"]
    assert show_entity("PERSON:Jordan", updated).entity.key == "PERSON:jordan"
    assert show_entity("PERSON:Michael Jordan", updated).entity.alias_counts == {"Michael Jordan": 1}

    fresh = settings_for(tmp_path / "fresh")
    (tmp_path / "fresh").mkdir()
    (tmp_path / "fresh" / OVERRIDES_FILE).write_text(PINNED, encoding="utf-8")
    ingest(corpus, fresh, extractor=names, embedder=embedder)
    assert_same_index(snapshot(updated), snapshot(fresh))

    # the document that held the full name goes: the merged entity keeps leeds.txt's mentions and reasons only
    (corpus / "news/london.txt").unlink()
    ingest(corpus, updated, extractor=names, embedder=embedder)
    tony = show_entity("PERSON:Tony Blair", updated)
    assert (tony.entity.name, tony.entity.alias_counts) == ("Blair", {"Blair": 2})
    assert [(r.alias, r.rule, r.documents) for r in tony.reasons] == [("Blair", "override", ["news/leeds.txt"])]
    final = settings_for(tmp_path / "final")
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / OVERRIDES_FILE).write_text(PINNED, encoding="utf-8")
    ingest(corpus, final, extractor=names, embedder=embedder)
    assert_same_index(snapshot(updated), snapshot(final))

    # and without the file, the index is a fresh one without overrides
    (tmp_path / "updated" / OVERRIDES_FILE).unlink()
    report = ingest(corpus, updated, extractor=names, embedder=embedder)
    assert report.reextraction_reason.endswith("-> none")
    plain = settings_for(tmp_path / "plain")
    ingest(corpus, plain, extractor=names, embedder=embedder)
    assert_same_index(snapshot(updated), snapshot(plain))


@pytest.mark.neo4j
def test_an_override_file_on_neo4j_equals_a_fresh_ingest_and_networkx(tmp_path, names, embedder, neo4j_server, monkeypatch):
    """The same steps on the Neo4j backend: the file comes in, a document goes; then a fresh ingest of the final
    folder with the file (in the emptied database: Community has one) and the NetworkX default agree."""
    from kgbuild.connectors.neo4j.sink import Neo4jGraphSink

    def clear() -> None:
        sink = Neo4jGraphSink(neo4j_server["uri"], neo4j_server["user"], neo4j_server["password"], neo4j_server["database"])
        sink.clear()
        sink.close()

    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server["password"])
    neo = dict(graph="neo4j", neo4j_uri=neo4j_server["uri"], neo4j_user=neo4j_server["user"],
               neo4j_database=neo4j_server["database"], out_dir=tmp_path / "updated", checkpoint_seconds=0)
    clear()
    corpus = write(tmp_path / "corpus", CORPUS)
    updated = Settings(**neo)
    ingest(corpus, updated, extractor=names, embedder=embedder)
    (tmp_path / "updated" / OVERRIDES_FILE).write_text(PINNED, encoding="utf-8")
    assert ingest(corpus, updated, extractor=names, embedder=embedder).documents_read == len(CORPUS)
    (corpus / "news/london.txt").unlink()
    ingest(corpus, updated, extractor=names, embedder=embedder)
    after = snapshot(updated)
    tony = show_entity("PERSON:Blair", updated)
    assert (tony.entity.key, tony.entity.alias_counts, tony.matched) == ("PERSON:tony blair", {"Blair": 2}, "merge")
    assert [(r.alias, r.rule) for r in tony.reasons] == [("Blair", "override")]

    clear()
    for name in ("fresh", "embedded"):
        (tmp_path / name).mkdir()
        (tmp_path / name / OVERRIDES_FILE).write_text(PINNED, encoding="utf-8")
    ingest(corpus, Settings(**{**neo, "out_dir": tmp_path / "fresh"}), extractor=names, embedder=embedder)
    assert_same_index(after, snapshot(Settings(**{**neo, "out_dir": tmp_path / "fresh"})))
    embedded = settings_for(tmp_path / "embedded")
    ingest(corpus, embedded, extractor=names, embedder=embedder)
    assert_same_index(after, snapshot(embedded))


def test_a_bad_override_file_stops_ingest_before_the_model(tmp_path, names, embedder):
    corpus = write(tmp_path / "corpus", CORPUS)
    out = tmp_path / "index"
    out.mkdir()
    (out / OVERRIDES_FILE).write_text("version: 1\nmerge:\n  - [Blair, PERSON:Tony Blair]\n", encoding="utf-8")
    with pytest.raises(OverridesError, match=r"resolution.yaml:3: merge\[0\]\[0\]: 'Blair' must look like TYPE:NAME"):
        ingest(corpus, settings_for(out), extractor=names, embedder=embedder)
    assert names.calls == 0
    (out / OVERRIDES_FILE).write_text("version: 1\nnever_merge:\n  - [PERSN:Blair, PERSN:Tony Blair]\n", encoding="utf-8")
    with pytest.raises(OverridesError, match=r"resolution.yaml:3: never_merge\[0\]: PERSN is not an entity type of schema"
                                             r" business-news \(COMPANY, DATE, LOCATION, MONEY, PERSON, PRODUCT\)"):
        ingest(corpus, settings_for(out), extractor=names, embedder=embedder)
    assert names.calls == 0


# -- the command line -----------------------------------------------------------------------------


def test_cli_show_prints_the_aliases_and_why_each_joined(built):
    out = str(built["settings"].out_dir)
    result = runner.invoke(app, ["entities", "show", "PERSON:Tony Blair", "--out", out])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "PERSON:tony blair  Tony Blair"
    assert "  aliases   Blair (1), Tony Blair (1)" in lines
    assert any(line.split() == ["Blair", "1", "surname", "->", "Tony", "Blair", "news/london.txt"] for line in lines), lines
    assert any(line.split() == ["Tony", "Blair", "1", "same", "name", "news/london.txt"] for line in lines), lines
    data = json.loads(runner.invoke(app, ["entities", "show", "person:brown", "--out", out, "--json"]).stdout)
    assert (data["entity"]["key"], data["matched"]) == ("PERSON:gordon brown", "alias")
    assert data["entity"]["alias_counts"] == {"Brown": 1, "Gordon Brown": 1}
    assert {(r["alias"], r["explanation"]) for r in data["reasons"]} == {("Gordon Brown", "same name"),
                                                                           ("Brown", "surname -> Gordon Brown")}


def test_cli_show_names_close_candidates_in_one_line(built):
    out = str(built["settings"].out_dir)
    result = runner.invoke(app, ["entities", "show", "PERSON:Gordn Brown", "--out", out])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: no entity PERSON:Gordn Brown; close: PERSON:gordon brown (Gordon Brown, 2 mentions)"]
    bad = runner.invoke(app, ["entities", "show", "Gordon Brown", "--out", out])
    assert bad.exit_code == 1 and "must look like TYPE:NAME" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    none = runner.invoke(app, ["entities", "show", "PERSON:Blair", "--out", str(built["settings"].out_dir) + "-nowhere"])
    assert none.exit_code == 1 and "no kgbuild index" in none.stderr


def test_cli_list(built):
    out = str(built["settings"].out_dir)
    result = runner.invoke(app, ["entities", "list", "--type", "PERSON", "--top", "2", "--out", out])
    assert result.exit_code == 0, result.output
    assert [line.split()[:2] for line in result.stdout.splitlines()] == [["2", "PERSON:blair"], ["2", "PERSON:gordon"]]
    assert "(also: Brown)" in result.stdout
    data = json.loads(runner.invoke(app, ["entities", "list", "--out", out, "--json"]).stdout)
    assert len(data) == 8 and data[0]["mention_count"] >= data[-1]["mention_count"]
    assert runner.invoke(app, ["entities", "list", "--type", "MONEY", "--out", out]).stdout.strip() == "no entities of type MONEY"


def test_cli_merge_and_split_edit_the_override_file(built, names, embedder):
    out = built["settings"].out_dir
    merged = runner.invoke(app, ["entities", "merge", "PERSON:Blair", "PERSON:Tony Blair", "--out", str(out)])
    assert merged.exit_code == 0, merged.output
    assert "merge PERSON:Blair -> PERSON:Tony Blair" in merged.stdout and "next `kgbuild ingest`" in merged.stdout
    split = runner.invoke(app, ["entities", "split", "PERSON:Jordan", "PERSON:Michael Jordan", "--out", str(out)])
    assert split.exit_code == 0, split.output
    assert load_overrides(out).fingerprint == parse_overrides(PINNED).fingerprint
    again = runner.invoke(app, ["entities", "split", "PERSON:Tony Blair", "PERSON:Blair", "--out", str(out)])
    assert "in place of the opposite decision" in again.stdout
    assert [(a.text, b.text) for a, b in load_overrides(out).never_merge][-1] == ("PERSON:Tony Blair", "PERSON:Blair")
    assert load_overrides(out).merge == ()
    bad = runner.invoke(app, ["entities", "merge", "Blair", "PERSON:Tony Blair", "--out", str(out)])
    assert bad.exit_code == 1 and "must look like TYPE:NAME" in bad.stderr
    # the next ingest applies the file
    pin_merge("PERSON:Blair", "PERSON:Tony Blair", built["settings"])
    ingest(built["corpus"], built["settings"], extractor=names, embedder=embedder)
    shown = runner.invoke(app, ["entities", "show", "PERSON:Blair", "--out", str(out)])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[0] == "PERSON:tony blair  Tony Blair"
    assert "override (resolution.yaml) -> Tony Blair" in shown.stdout
    assert "merge PERSON:Blair -> PERSON:Tony Blair" in shown.stdout


def test_pin_split_writes_a_file_the_next_ingest_reads(tmp_path):
    settings = settings_for(tmp_path / "index")
    report = pin_split("LOCATION:U.S.", "LOCATION:United States", settings)
    assert report.path == str(tmp_path / "index" / OVERRIDES_FILE) and report.kind == "never_merge"
    text = (tmp_path / "index" / OVERRIDES_FILE).read_text(encoding="utf-8")
    assert text.startswith("# kgbuild resolution overrides") and "version: 1" in text
    assert [(a.text, b.text) for a, b in parse_overrides(text).never_merge] == [("LOCATION:U.S.", "LOCATION:United States")]
    save_overrides(ResolutionOverrides(), tmp_path / "index")
    assert not load_overrides(tmp_path / "index")
