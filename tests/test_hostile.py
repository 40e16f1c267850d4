"""Hostile input: one run over a generated corpus of 30+ kinds of bad files (tests/hostile_corpus.py).

For every file: no crash, a named reason in the report when skipped; every good file in the
same run is ingested exactly as in a run without the bad ones; a bad record loses that record only.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crash_runner import HashEmbedder
from hostile_corpus import GOOD, build
from index_snapshot import snapshot

from kgbuild.pipeline import ingest
from kgbuild.settings import Settings
from kgbuild.index import verify as verify_index


class DeleteDuringRun:
    """A progress listener that deletes a file after the walk started and before the walk reaches it."""

    def __init__(self, when_seen: str, victim: Path):
        self.when_seen, self.victim = when_seen, victim

    def on_chunks_added(self, count: int) -> None:
        pass

    def on_chunks_done(self, count: int) -> None:
        pass

    def on_file(self, rel_path: str) -> None:
        if rel_path == self.when_seen:
            self.victim.unlink()


def documents_by_file(graph: dict) -> dict[str, list[dict]]:
    """Graph documents grouped by the file they came from (records of a JSONL file share one)."""
    grouped: dict[str, list[dict]] = {}
    for doc in graph["documents"].values():
        grouped.setdefault(doc["source_path"], []).append(doc)
    return grouped


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, business_schema):
    from conftest import BUSINESS_CLASSES, BUSINESS_ENTITIES, BUSINESS_RELATIONS

    from kgbuild.extract.gazetteer import GazetteerExtractor

    root = tmp_path_factory.mktemp("hostile")
    corpus = root / "corpus"
    kinds = build(corpus)
    extractor = GazetteerExtractor(business_schema, BUSINESS_ENTITIES, BUSINESS_RELATIONS, BUSINESS_CLASSES, max_tokens=64)
    settings = Settings(out_dir=root / "out", chunk_size=64, chunk_overlap=8)
    report = ingest(corpus, settings, extractor=extractor, embedder=HashEmbedder(),
                    progress=DeleteDuringRun("h/utf16.txt", corpus / "h/vanishing.txt"))

    good_only = root / "good"
    for rel, text in GOOD.items():
        (good_only / rel).parent.mkdir(parents=True, exist_ok=True)
        (good_only / rel).write_text(text, encoding="utf-8")
    clean = Settings(out_dir=root / "clean", chunk_size=64, chunk_overlap=8)
    ingest(good_only, clean, extractor=extractor, embedder=HashEmbedder())
    return kinds, report, settings, snapshot(settings), snapshot(clean)


def test_at_least_thirty_kinds(hostile_run):
    kinds, *_ = hostile_run
    assert len(kinds) >= 30


def test_every_kind_has_its_outcome(hostile_run):
    kinds, report, _, index, _ = hostile_run
    skipped = {s.path: s.reason for s in report.skipped}
    by_file = documents_by_file(index["graph"])
    problems = []
    for name, kind in kinds.items():
        for rel in kind.paths:
            records_skipped = {p: r for p, r in skipped.items() if p.startswith(rel + "#")}
            ingested = by_file.get(rel, [])
            outcome, _, reason = kind.expect.partition(": ")
            if outcome == "ingested" and (not ingested or rel in skipped or records_skipped):
                problems.append(f"{name}: expected ingested, got skipped={skipped.get(rel)} records={records_skipped}")
            elif outcome == "records" and not records_skipped:
                problems.append(f"{name}: expected bad records reported by record, got {skipped.get(rel)}")
            elif outcome == "skipped" and (ingested or reason.lower() not in skipped.get(rel, "").lower()):
                problems.append(f"{name}: expected skipped for '{reason}', got {skipped.get(rel)!r}, {len(ingested)} docs")
            elif outcome == "either" and not ingested and reason not in skipped.get(rel, ""):
                problems.append(f"{name}: neither ingested nor skipped for '{reason}': {skipped.get(rel)!r}")
    assert not problems, "\n".join(problems)


def test_every_skip_names_its_file_and_reason(hostile_run):
    kinds, report, *_ = hostile_run
    known = {rel for kind in kinds.values() for rel in kind.paths}
    for item in report.skipped:
        assert item.reason.strip(), item
        assert item.path.split("#")[0] in known, f"skipped a file no kind expects: {item}"


def test_bad_records_lose_only_themselves(hostile_run):
    _, report, _, index, _ = hostile_run
    by_file = documents_by_file(index["graph"])
    mixed = sorted(d["path"] for d in by_file["h/mixed.jsonl"])
    assert len(mixed) == 2  # r1 and r3 of five lines
    assert {s.path for s in report.skipped if s.path.startswith("h/mixed.jsonl#")} == {
        "h/mixed.jsonl#line 2", "h/mixed.jsonl#line 4", "h/mixed.jsonl#line 5"}
    assert len(by_file["h/ragged.csv"]) == 1


def test_good_files_are_ingested_as_without_the_bad_ones(hostile_run):
    _, _, _, index, clean = hostile_run
    good_docs = set(clean["graph"]["documents"])
    assert good_docs and good_docs <= set(index["graph"]["documents"])
    for part in ("documents", "chunks"):
        got = {k: v for k, v in index["graph"][part].items() if k in good_docs or v.get("doc_id") in good_docs}
        assert got == clean["graph"][part], part
    got_mentions = [m for m in index["graph"]["mentions"] if m["doc_id"] in good_docs]
    assert got_mentions == clean["graph"]["mentions"]
    got_points = {pid: p["text"] for pid, p in index["points"].items() if p["doc_id"] in good_docs}
    assert got_points == {pid: p["text"] for pid, p in clean["points"].items()}


def test_odd_texts_keep_exact_offsets_and_the_index_is_consistent(hostile_run):
    _, _, settings, index, _ = hostile_run
    corpus = Path(settings.out_dir).parent / "corpus"
    for chunk in index["graph"]["chunks"].values():
        doc = index["graph"]["documents"][chunk["doc_id"]]
        if doc["path"] in ("h/bidi.txt", "h/control.txt", "h/long-line.txt", "h/mentions.txt"):
            text = (corpus / doc["path"]).read_text(encoding="utf-8")
            assert text[chunk["start"] : chunk["end"]] == chunk["text"]
    assert sum(1 for m in index["graph"]["mentions"] if m["doc_id"] == doc_id_of(index, "h/mentions.txt")) >= 1000
    assert verify_index(settings).ok


def doc_id_of(index: dict, path: str) -> str:
    return next(d for d, doc in index["graph"]["documents"].items() if doc["path"] == path)


def test_a_second_run_changes_nothing(hostile_run, business_schema):
    """Skipped files are not retried forever as 'changed', and the good ones are not read again."""
    from conftest import BUSINESS_CLASSES, BUSINESS_ENTITIES, BUSINESS_RELATIONS

    from kgbuild.extract.gazetteer import GazetteerExtractor

    _, first, settings, index, _ = hostile_run
    extractor = GazetteerExtractor(business_schema, BUSINESS_ENTITIES, BUSINESS_RELATIONS, BUSINESS_CLASSES, max_tokens=64)
    again = ingest(Path(settings.out_dir).parent / "corpus", settings, extractor=extractor, embedder=HashEmbedder())
    assert again.documents_read == 0 and again.documents_removed == 0
    assert snapshot(settings)["graph_checksum"] == index["graph_checksum"]


@pytest.mark.slow
def test_a_50_mb_text_file(tmp_path, business_schema):
    """Read, chunked and written in bounded batches; every character lands in some chunk."""
    from conftest import BUSINESS_CLASSES, BUSINESS_ENTITIES, BUSINESS_RELATIONS
    from kgbuild.extract.gazetteer import GazetteerExtractor

    # a window of 512 tokens, as the chunk size asks (the shared gazetteer's 64 made 112k chunks: 141 s of CI)
    gazetteer = GazetteerExtractor(business_schema, BUSINESS_ENTITIES, BUSINESS_RELATIONS, BUSINESS_CLASSES, max_tokens=512)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sentence = "The committee reviewed the quarterly logistics figures without further comment today. "
    big = corpus / "big.txt"
    with open(big, "w", encoding="utf-8") as fh:
        for _ in range((50 << 20) // len(sentence) + 1):
            fh.write(sentence)
    (corpus / "small.txt").write_text("Acme Corp sells Rocket Skates.", encoding="utf-8")
    assert big.stat().st_size >= 50 << 20
    settings = Settings(out_dir=tmp_path / "out", chunk_size=512, chunk_overlap=0, write_batch_chunks=4096)
    report = ingest(corpus, settings, extractor=gazetteer, embedder=HashEmbedder())
    assert report.skipped == [] and report.documents_read == 2
    stats = verify_index(settings)
    assert stats.ok, stats.problems
    assert stats.vector_points == report.chunks > 10_000
    os.remove(big)
