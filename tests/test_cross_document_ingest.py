"""Links across documents at ingest (issue 14): "Blair" alone in one article joins the "Tony Blair" of another,
and every sequence of incremental ingests ends with exactly the index of a fresh ingest of the final folder.

The gazetteer extractor finds "Tony Blair" and "Blair" (persons) and "Labour" (a party, as a company); the
two articles share Labour, which is the evidence the cross-document rule asks for.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from index_snapshot import assert_same_index, snapshot
from test_incremental import write

from kgbuild.corpus_links import index_links
from kgbuild.extract.cache import CACHE_FILE, ExtractionCache
from kgbuild.extract.gazetteer import GazetteerExtractor
from kgbuild.ids import entity_id
from kgbuild.index import Index, verify as verify_index
from kgbuild.pipeline import IngestPipeline, ingest
from kgbuild.reconcile import resolve_mentions
from kgbuild.settings import Settings
from kgbuild.state import IngestState

ENTITIES = {
    "PERSON": ["Tony Blair", "Blair", "Gordon Brown", "Brown", "Jane Park"],
    "COMPANY": ["Labour", "Acme Corp", "Globex"],
    "LOCATION": ["London", "Seoul", "Sedgefield"],
}
A = "Tony Blair led Labour to victory in London. Tony Blair thanked Sedgefield."
B = "Blair spoke to Labour members in Seoul. Blair said little."
C = "Acme Corp opened an office in Seoul. Jane Park runs Acme Corp."
D = "Globex hired Jane Park in London. Globex grew."
A_WITHOUT_BLAIR = "Gordon Brown led Labour in London. Brown thanked Sedgefield."
BLAIR = entity_id("PERSON", "tony blair")
LONE_BLAIR = entity_id("PERSON", "blair")
RUNNER = Path(__file__).resolve().parent / "cross_document_runner.py"


@pytest.fixture
def extractor(business_schema):
    return GazetteerExtractor(business_schema, ENTITIES, max_tokens=64)


def settings(tmp_path: Path, name: str, **kwargs) -> Settings:
    kwargs.setdefault("write_batch_chunks", 4)
    return Settings(out_dir=tmp_path / name, chunk_size=16, chunk_overlap=4, checkpoint_seconds=0, **kwargs)


def blair_mentions(snap: dict, path: str) -> list[dict]:
    doc_id = next(d for d, rec in snap["graph"]["documents"].items() if rec["path"] == path)
    return [m for m in snap["graph"]["mentions"] if m["doc_id"] == doc_id and m["text"] == "Blair"]


def fresh(tmp_path: Path, docs: dict[str, str], extractor, embedder, name: str, **kwargs) -> dict:
    corpus = write(tmp_path / f"{name}-corpus", docs)
    out = settings(tmp_path, name, **kwargs)
    ingest(corpus, out, extractor=extractor, embedder=embedder)
    return snapshot(out)


class WriteSpy:
    """The documents each ``_write`` of the pipeline writes, per run."""

    def __init__(self, monkeypatch):
        self.written: list[str] = []
        original = IngestPipeline._write

        def spy(pipeline, graph, vectors):
            self.written.extend(sorted(d.document.path for d in graph.documents))
            return original(pipeline, graph, vectors)

        monkeypatch.setattr(IngestPipeline, "_write", spy)

    def take(self) -> list[str]:
        taken, self.written = self.written, []
        return taken


def test_fresh_ingest_joins_a_surname_to_the_full_name_of_another_document(tmp_path, extractor, embedder):
    corpus = write(tmp_path / "corpus", {"a.txt": A, "b.txt": B, "c.txt": C})
    out = settings(tmp_path, "out")
    ingest(corpus, out, extractor=extractor, embedder=embedder)
    snap = snapshot(out)
    lone = blair_mentions(snap, "b.txt")
    assert lone and {m["entity_id"] for m in lone} == {BLAIR}
    assert {(m["rule"], m["via"]) for m in lone} == {("cross_document", "Tony Blair")}
    assert LONE_BLAIR not in snap["graph"]["entities"]
    entity = snap["graph"]["entities"][BLAIR]
    assert entity["name"] == "Tony Blair" and entity["aliases"] == ["Blair", "Tony Blair"] and entity["mention_count"] == 4
    # the vector payloads of b.txt name the joined entity
    b_points = [p for p in snap["points"].values() if p["path"] == "b.txt" and "Blair" in p["text"]]
    assert b_points and all("PERSON:tony blair" in p["entity_keys"] for p in b_points)
    assert verify_index(out).ok

    # the library gives the same map, mention for mention
    cache = ExtractionCache(out.out_dir)
    state = IngestState.load(out.out_dir)
    mentions = []
    for doc_id, doc in sorted(state.all_documents().items()):
        extracted = cache.extracted(doc_id, doc.content_hash, state.roots[str(corpus.resolve())]["a.txt"].fingerprint)
        mentions += [m for e in extracted.extractions for m in e.mentions]
    cache.close()
    library = resolve_mentions(mentions)
    assert {m["id"]: m["entity_id"] for m in snap["graph"]["mentions"]} == library.mention_entity
    # and the state records the link b.txt was written with
    b_state = next(d for d in state.all_documents().values() if d.path == "b.txt")
    assert b_state.cross_links == [["PERSON", "blair", "tony blair", "Tony Blair"]]


def test_entities_show_explains_the_join(tmp_path, extractor, embedder):
    from kgbuild.entities import show_entity

    corpus = write(tmp_path / "corpus", {"a.txt": A, "b.txt": B, "c.txt": C})
    out = settings(tmp_path, "out")
    ingest(corpus, out, extractor=extractor, embedder=embedder)
    report = show_entity('PERSON:"Tony Blair"', out)
    reasons = {(r.alias, r.rule, r.via): r.documents for r in report.reasons}
    assert reasons[("Blair", "cross_document", "Tony Blair")] == ["b.txt"]
    assert reasons[("Tony Blair", "exact", "")] == ["a.txt"]


@pytest.mark.parametrize("batch_chunks", [1, 1000])
def test_batching_and_order_do_not_change_the_index(tmp_path, extractor, embedder, batch_chunks):
    docs = {"a.txt": A, "b.txt": B, "c.txt": C, "d.txt": D}
    want = fresh(tmp_path, docs, extractor, embedder, "want")
    # the same documents in other write batches
    got = fresh(tmp_path, docs, extractor, embedder, "got", write_batch_chunks=batch_chunks)
    assert_same_index(got, want)
    # added one run at a time, in reverse order
    corpus = tmp_path / "stepwise"
    out = settings(tmp_path, "stepwise-out", write_batch_chunks=batch_chunks)
    for rel in sorted(docs, reverse=True):
        write(corpus, {rel: docs[rel]})
        ingest(corpus, out, extractor=extractor, embedder=embedder)
    assert_same_index(snapshot(out), want)


def test_deleting_adding_and_changing_the_full_name_rewrites_only_the_linked_document(
        tmp_path, extractor, embedder, monkeypatch):
    spy = WriteSpy(monkeypatch)
    corpus = write(tmp_path / "corpus", {"a.txt": A, "b.txt": B, "c.txt": C, "d.txt": D})
    out = settings(tmp_path, "out")
    ingest(corpus, out, extractor=extractor, embedder=embedder)
    assert spy.take().count("b.txt") == 2  # once per batch, once with its link
    assert {m["entity_id"] for m in blair_mentions(snapshot(out), "b.txt")} == {BLAIR}

    # A deleted: B's Blair is its own entity again, as in a fresh ingest of what is left
    (corpus / "a.txt").unlink()
    report = ingest(corpus, out, extractor=extractor, embedder=embedder)
    assert report.documents_removed == 1 and report.documents_read == 0
    assert spy.take() == ["b.txt"]
    after = snapshot(out)
    assert {m["entity_id"] for m in blair_mentions(after, "b.txt")} == {LONE_BLAIR}
    assert {(m["rule"], m["via"]) for m in blair_mentions(after, "b.txt")} == {("exact", "")}
    assert BLAIR not in after["graph"]["entities"]
    spy.take()
    assert_same_index(after, fresh(tmp_path, {"b.txt": B, "c.txt": C, "d.txt": D}, extractor, embedder, "f1"))
    spy.take()

    # nothing changed: nothing is written
    ingest(corpus, out, extractor=extractor, embedder=embedder)
    assert spy.take() == []

    # A back: B joins Tony Blair again; A is written by its batch, B alone by the links
    write(corpus, {"a.txt": A})
    ingest(corpus, out, extractor=extractor, embedder=embedder)
    assert spy.take() == ["a.txt", "b.txt"]
    assert_same_index(snapshot(out), fresh(tmp_path, {"a.txt": A, "b.txt": B, "c.txt": C, "d.txt": D},
                                           extractor, embedder, "f2"))
    spy.take()

    # B changed, still a Blair beside Labour: written once, its link kept
    write(corpus, {"b.txt": B + " Blair left early."})
    ingest(corpus, out, extractor=extractor, embedder=embedder)
    assert spy.take() == ["b.txt"]
    assert {m["entity_id"] for m in blair_mentions(snapshot(out), "b.txt")} == {BLAIR}
    write(corpus, {"b.txt": B})
    ingest(corpus, out, extractor=extractor, embedder=embedder)
    spy.take()

    # A changed so that it no longer names Tony Blair: B's link goes
    write(corpus, {"a.txt": A_WITHOUT_BLAIR})
    ingest(corpus, out, extractor=extractor, embedder=embedder)
    assert spy.take() == ["a.txt", "b.txt"]
    changed = snapshot(out)
    assert {m["entity_id"] for m in blair_mentions(changed, "b.txt")} == {LONE_BLAIR}
    assert_same_index(changed, fresh(tmp_path, {"a.txt": A_WITHOUT_BLAIR, "b.txt": B, "c.txt": C, "d.txt": D},
                                     extractor, embedder, "f3"))
    assert verify_index(out).ok


def test_kgbuild_remove_then_ingest_brings_links_up_to_date(tmp_path, extractor, embedder):
    from kgbuild.index import remove

    corpus = write(tmp_path / "corpus", {"a.txt": A, "b.txt": B, "c.txt": C})
    out = settings(tmp_path, "out")
    ingest(corpus, out, extractor=extractor, embedder=embedder)
    remove([corpus / "a.txt"], out)
    (corpus / "a.txt").unlink()
    ingest(corpus, out, extractor=extractor, embedder=embedder)
    assert_same_index(snapshot(out), fresh(tmp_path, {"b.txt": B, "c.txt": C}, extractor, embedder, "fresh"))


def test_a_lost_extraction_cache_is_rebuilt_without_changing_the_index(tmp_path, extractor, embedder):
    """An index built before the cache existed: its documents are read and extracted again once."""
    docs = {"a.txt": A, "b.txt": B, "c.txt": C}
    corpus = write(tmp_path / "corpus", docs)
    out = settings(tmp_path, "out")
    ingest(corpus, out, extractor=extractor, embedder=embedder)
    want = snapshot(out)
    (out.out_dir / CACHE_FILE).unlink()
    state = IngestState.load(out.out_dir)
    state.cross_document = ""  # as an older kgbuild left it
    state.save()
    calls = extractor.calls
    report = ingest(corpus, out, extractor=extractor, embedder=embedder)
    assert extractor.calls > calls
    assert report.warnings == ["3 indexed document(s) had no kept extraction (an index built by an earlier kgbuild, or"
                               " an interrupted run): extracted again, once, to link their names across documents"]
    assert_same_index(snapshot(out), want)
    # and from then on the cache serves: deleting the full name's document costs no model call
    calls = extractor.calls
    (corpus / "a.txt").unlink()
    ingest(corpus, out, extractor=extractor, embedder=embedder)
    assert extractor.calls == calls
    assert_same_index(snapshot(out), fresh(tmp_path, {"b.txt": B, "c.txt": C}, extractor, embedder, "fresh"))


def test_old_state_files_load(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "state.json").write_text(json.dumps({
        "format": 1, "manifest": {},
        "roots": {"/c": {"files": {"a.txt": {"hash": "h", "size": 1, "mtime": 0.0, "fingerprint": "f",
                                             "documents": {"doc_1": {"path": "a.txt", "content_hash": "x", "chunks": 2}}}}}},
        "totals": {}}))
    state = IngestState.load(out)
    assert state.all_documents()["doc_1"].cross_links == [] and state.cross_document == ""
    assert state.to_dict()["roots"]["/c"]["files"]["a.txt"]["documents"]["doc_1"] == {
        "path": "a.txt", "content_hash": "x", "chunks": 2}


def test_index_links_depend_on_the_summaries_alone():
    from kgbuild.resolution import NameSpan, ResolutionRules, NameBook, _resolve_document

    rules = ResolutionRules()
    book = NameBook(rules)

    def summary(*names: tuple[str, str]) -> list:
        spans = [NameSpan(i * 20, i * 20 + len(s), t, s, s.casefold()) for i, (t, s) in enumerate(names)]
        return _resolve_document(spans, rules, None, book).summary()

    summaries = {"a": summary(("PERSON", "Tony Blair"), ("COMPANY", "Labour")),
                 "b": summary(("PERSON", "Blair"), ("COMPANY", "Labour")),
                 "c": None}
    links = index_links(summaries)
    assert {d: {k: tuple(v) for k, v in found.items()} for d, found in links.items()} == {
        "b": {("PERSON", "blair"): ("tony blair", "Tony Blair")}}
    assert index_links(dict(reversed(list(summaries.items())))) == links
    assert index_links(iter(summaries.items())) == links  # pairs read one at a time, as the links pass does
    assert json.loads(json.dumps(summaries)) == summaries
    assert index_links({"b": summaries["b"], "c": None}) == {}


# -- crashes in the pass -------------------------------------------------------------------------------


def run(corpus: Path, out: Path, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("KGBUILD_CRASH_AT", None)
    if crash_at:
        env["KGBUILD_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, str(RUNNER), str(corpus), str(out)], env=env, capture_output=True,
                          text=True, timeout=120)


# two articles that say "Blair" alone, long enough to be linked in two write batches
MANY = {f"n{i:02d}.txt": " ".join([f"Blair spoke to Labour members in Sedgefield on day {i}."] * 5) for i in range(2)}


@pytest.mark.parametrize("point", ["relink@1", "relink@2", "graph-written-after-relink@1",
                                   "vectors-written-after-relink@2", "write:state.json-after-relink@1"])
def test_killed_while_linking_then_rerun_equals_an_uninterrupted_run(tmp_path, point):
    from cross_document_runner import settings_for

    docs = {"a.txt": A, "c.txt": C, "d.txt": D, **MANY}
    corpus = write(tmp_path / "corpus", docs)
    assert run(corpus, tmp_path / "want").returncode == 0
    want = snapshot(settings_for(str(tmp_path / "want")))
    assert {m["entity_id"] for m in blair_mentions(want, "n00.txt")} == {BLAIR}

    out = tmp_path / "out"
    killed = run(corpus, out, point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    again = run(corpus, out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert_same_index(snapshot(settings_for(str(out))), want)
    assert verify_index(settings_for(str(out))).ok

    # killed while an update unlinks them: the rerun equals a fresh ingest of the final folder
    (corpus / "a.txt").unlink()
    killed = run(corpus, out, point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert run(corpus, out).returncode == 0
    assert run(corpus, tmp_path / "fresh").returncode == 0
    assert_same_index(snapshot(settings_for(str(out))), snapshot(settings_for(str(tmp_path / "fresh"))))
    assert not (out / "journal.json").exists()


@pytest.mark.neo4j
def test_updates_with_links_equal_a_fresh_ingest_on_neo4j(tmp_path, extractor, embedder, neo4j_server, monkeypatch):
    from kgbuild.connectors.neo4j.sink import Neo4jGraphSink

    def clear() -> None:
        sink = Neo4jGraphSink(neo4j_server["uri"], neo4j_server["user"], neo4j_server["password"],
                              neo4j_server["database"])
        sink.clear()
        sink.close()

    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server["password"])
    neo = dict(graph="neo4j", neo4j_uri=neo4j_server["uri"], neo4j_user=neo4j_server["user"],
               neo4j_database=neo4j_server["database"])
    clear()
    corpus = write(tmp_path / "corpus", {"a.txt": A, "b.txt": B, "c.txt": C, "d.txt": D})
    out = settings(tmp_path, "out", **neo)
    ingest(corpus, out, extractor=extractor, embedder=embedder)
    assert {m["entity_id"] for m in blair_mentions(snapshot(out), "b.txt")} == {BLAIR}
    assert_same_index(snapshot(out), fresh(tmp_path, {"a.txt": A, "b.txt": B, "c.txt": C, "d.txt": D},
                                           extractor, embedder, "embedded"))
    for change in ("delete", "add", "change"):
        if change == "delete":
            (corpus / "a.txt").unlink()
        else:
            write(corpus, {"a.txt": A if change == "add" else A_WITHOUT_BLAIR})
        ingest(corpus, out, extractor=extractor, embedder=embedder)
        assert verify_index(out).ok
        final = {p.name: p.read_text() for p in corpus.iterdir()}
        # the same content as a fresh NetworkX ingest of the final folder
        assert_same_index(snapshot(out), fresh(tmp_path, final, extractor, embedder, f"embedded-{change}"))
    after = snapshot(out)
    clear()
    again = settings(tmp_path, "fresh-neo4j", **neo)
    ingest(corpus, again, extractor=extractor, embedder=embedder)
    assert_same_index(after, snapshot(again))


def test_a_summary_without_its_extraction_is_extracted_again_when_its_links_change(tmp_path, extractor, embedder):
    import sqlite3

    corpus = write(tmp_path / "corpus", {"a.txt": A, "b.txt": B, "c.txt": C})
    out = settings(tmp_path, "out")
    ingest(corpus, out, extractor=extractor, embedder=embedder)
    with sqlite3.connect(out.out_dir / CACHE_FILE) as db:
        db.execute("UPDATE documents SET extraction = NULL")
    db.close()
    calls = extractor.calls
    (corpus / "a.txt").unlink()
    ingest(corpus, out, extractor=extractor, embedder=embedder)
    assert extractor.calls == calls + 1  # b.txt alone, whose link went
    assert_same_index(snapshot(out), fresh(tmp_path, {"b.txt": B, "c.txt": C}, extractor, embedder, "fresh"))


def test_the_cache_keeps_what_the_model_found_exactly(tmp_path, business_schema):
    from kgbuild.chunk import TokenChunker
    from kgbuild.extract.base import aggregate_classifications
    from kgbuild.extract.runner import extract_chunks
    from kgbuild.read.base import make_document
    from kgbuild.timing import StageTimer
    from kgbuild.types import ExtractedDocument, SourceFile
    from conftest import BUSINESS_CLASSES, BUSINESS_ENTITIES, BUSINESS_RELATIONS

    gazetteer = GazetteerExtractor(business_schema, BUSINESS_ENTITIES, BUSINESS_RELATIONS, BUSINESS_CLASSES,
                                   max_tokens=64)
    text = "Apple Inc. CEO Tim Cook will unveil the Vision Pro in Cupertino. The Vision Pro costs $2,499. " * 3
    document = make_document(SourceFile("/x/a.jsonl", "a.jsonl", 1, 2.5), text=text, title="t", fmt="jsonl",
                             record_id="r1", extra={"n": 1.5, "tags": ["x"]})
    chunks = TokenChunker(gazetteer.token_counter(), 16, 4).chunk(document)
    results = extract_chunks(gazetteer, business_schema, chunks, window=8, timer=StageTimer(), on_done=lambda n: None)
    extracted = ExtractedDocument(document, chunks, results, aggregate_classifications(results, business_schema))
    assert any(e.relations for e in extracted.extractions)
    cache = ExtractionCache(tmp_path)
    assert not (tmp_path / CACHE_FILE).exists()  # nothing is touched before the first write
    odd = ExtractedDocument(make_document(SourceFile("/x/b.txt", "b.txt", 1, 2.5), text="x", title="b", fmt="txt",
                                          extra={"pair": (1, 2)}), [], [], {})
    assert cache.put([(extracted, "fp", [["PERSON", "tim cook"]]), (odd, "fp", None)]) == [odd.document.id]
    assert cache.extracted(document.id, document.content_hash, "fp") == extracted
    assert cache.extracted(document.id, document.content_hash, "other") is None
    assert cache.extracted(odd.document.id, odd.document.content_hash, "fp") is None
    wanted = {document.id: (document.content_hash, "fp"), odd.document.id: (odd.document.content_hash, "fp"),
              "doc_gone": ("h", "fp")}
    assert cache.summaries(wanted) == {document.id: [["PERSON", "tim cook"]], odd.document.id: None}
    assert dict(cache.iter_summaries(wanted)) == cache.summaries(wanted)
    assert cache.summary_ids(wanted) == {document.id, odd.document.id}
    assert cache.summary_ids({document.id: (document.content_hash, "other")}) == set()
    assert cache.prune({document.id}) == 1
    assert cache.summaries(wanted) == {document.id: [["PERSON", "tim cook"]]}
    cache.close()


# -- any sequence of updates ----------------------------------------------------------------------------

SENTENCES = [
    "Tony Blair met Labour.", "Blair spoke in Sedgefield.", "Mr Blair left Labour.", "Gordon Brown led Labour.",
    "Brown spoke in London.", "Chris Brown sang in London.", "NATO met in Brussels.",
    "The North Atlantic Treaty Organization met in Brussels.", "Jane Park runs Acme Corp.", "Park visited Seoul.",
    "Acme Corp opened in Seoul.", "Mrs Blair spoke in Sedgefield.",
]
MORE_ENTITIES = {
    "PERSON": ENTITIES["PERSON"] + ["Mr Blair", "Mrs Blair", "Chris Brown", "Park"],
    "COMPANY": ENTITIES["COMPANY"] + ["NATO", "North Atlantic Treaty Organization"],
    "LOCATION": ENTITIES["LOCATION"] + ["Brussels"],
}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_any_sequence_of_updates_equals_a_fresh_ingest(tmp_path, business_schema, seed):
    import random

    from crash_runner import HashEmbedder

    rng = random.Random(seed)
    names = GazetteerExtractor(business_schema, MORE_ENTITIES, max_tokens=64)
    vectors = HashEmbedder()
    corpus = tmp_path / "corpus"
    out = settings(tmp_path, "out", write_batch_chunks=rng.choice([1, 3, 50]))
    docs: dict[str, str] = {}
    joined = 0
    for step in range(6):
        for _ in range(rng.randint(1, 3)):
            rel = f"d{rng.randrange(8)}.txt"
            if rel in docs and rng.random() < 0.3:
                del docs[rel]
                (corpus / rel).unlink()
            else:
                docs[rel] = " ".join(rng.sample(SENTENCES, rng.randint(1, 3)))
                write(corpus, {rel: docs[rel]})
        if not docs:
            continue
        ingest(corpus, out, extractor=names, embedder=vectors)
        want = fresh(tmp_path, docs, names, vectors, f"fresh-{step}")
        got = snapshot(out)
        assert_same_index(got, want)
        joined += sum(m["rule"].endswith("cross_document") for m in got["graph"]["mentions"])
    assert joined  # the sequences do exercise the links
