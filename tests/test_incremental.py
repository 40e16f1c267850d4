"""Incremental updates: after changes, deletions and additions, the index equals a fresh ingest of the final folder.

Compared through ``kgbuild.verify``: the graph export and the vector points (ids and payloads),
by checksum and by content, on the NetworkX default and on the real Neo4j server.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kgbuild.cli import app
from kgbuild.errors import ConfigError
from kgbuild.index import remove
from kgbuild.pipeline import ingest
from kgbuild.settings import Settings
from kgbuild.registry import make_vector_sink
from kgbuild.index import verify as verify_index
from index_snapshot import assert_same_index, snapshot

FIRST = {
    "news/apple.txt": "Apple Inc. CEO Tim Cook will unveil the Vision Pro in Cupertino. The Vision Pro costs $2,499.",
    "news/acme.md": "# Acme\nAcme Corp, led by CEO Jane Park, will launch Rocket Skates. Acme Corp competes with Globex Ltd.",
    "news/results.txt": "APPLE INC. reported revenue for the quarter. Globex said profit fell in Europe.",
    "legal/suit.txt": "In a lawsuit filed in Seoul, Globex accused Acme Corp before the court.",
    "feed/items.jsonl": "\n".join(
        json.dumps(r)
        for r in (
            {"id": "a1", "title": "one", "text": "Acme Corp competes with Globex Ltd. in Europe."},
            {"id": "a2", "title": "two", "text": "Tim Cook said Apple Inc. will launch Quest 5."},
            {"id": "a3", "title": "three", "text": "Jane Park is CEO of Acme Corp."},
        )
    ),
}
CHANGED = "Acme Corp will launch Rocket Skates in Seoul. Initech GmbH competes with Acme Corp."
ADDED = "Volkswagen AG and Meta announce a lawsuit; Oliver Blume spoke in Europe about the ID.7."
CHANGED_FEED = "\n".join(
    json.dumps(r)
    for r in (
        {"id": "a1", "title": "one", "text": "Acme Corp competes with Globex Ltd. in Europe."},  # unchanged record
        {"id": "a2", "title": "two", "text": "Meta unveils Quest 5 in Seoul."},  # changed record
        # a3 removed, a4 added
        {"id": "a4", "title": "four", "text": "Globex Ltd. reported profit for the quarter."},
    )
)


def write(root: Path, docs: dict[str, str]) -> Path:
    for rel, text in docs.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def change_folder(root: Path) -> None:
    (root / "news/acme.md").write_text(CHANGED, encoding="utf-8")  # changed
    (root / "legal/suit.txt").unlink()  # deleted
    write(root, {"news/added.txt": ADDED})  # added
    (root / "feed/items.jsonl").write_text(CHANGED_FEED, encoding="utf-8")  # records changed, removed, added


def small(tmp_path: Path, name: str, **kwargs) -> Settings:
    return Settings(out_dir=tmp_path / name, chunk_size=16, chunk_overlap=4, checkpoint_seconds=0, **kwargs)


def test_updates_equal_a_fresh_ingest_of_the_final_folder(tmp_path, gazetteer, embedder):
    corpus = write(tmp_path / "corpus", FIRST)
    updated = small(tmp_path, "updated")
    ingest(corpus, updated, extractor=gazetteer, embedder=embedder)
    before = snapshot(updated)
    change_folder(corpus)
    report = ingest(corpus, updated, extractor=gazetteer, embedder=embedder)
    # acme.md, added.txt and the changed and added records are read; suit.txt and record a3 removed
    assert report.documents_read == 4
    assert report.documents_removed == 2
    assert report.documents_unchanged == 3  # apple.txt, results.txt, record a1

    fresh = small(tmp_path, "fresh")
    ingest(corpus, fresh, extractor=gazetteer, embedder=embedder)
    after, want = snapshot(updated), snapshot(fresh)
    assert_same_index(after, want)
    assert after["graph_checksum"] != before["graph_checksum"]
    # facts only the old versions supported are gone; those still supported keep only their live evidence
    names = {e["name"] for e in after["graph"]["entities"].values()}
    assert "Jane Park" not in names and "Rocket Skates" in names and "Initech GmbH" in names
    assert verify_index(updated).ok and verify_index(fresh).ok
    # the staged folders of the retrieval graph (its rows are streamed into one, then moved) are gone
    for out in (updated.out_dir, fresh.out_dir):
        assert not [p.name for p in Path(out).iterdir() if p.name.endswith((".tmp", ".old"))]


def test_remove_a_file_and_a_folder(tmp_path, gazetteer, embedder):
    corpus = write(tmp_path / "corpus", FIRST)
    settings = small(tmp_path, "out")
    ingest(corpus, settings, extractor=gazetteer, embedder=embedder)

    report = remove([corpus / "news/acme.md", corpus / "feed"], settings)
    assert report.files == sorted([str(corpus / "news/acme.md"), str(corpus / "feed/items.jsonl")])
    assert report.documents == 4  # acme.md and the three records
    assert verify_index(settings).ok
    # equal to an index of the folder without those files
    without = tmp_path / "without"
    write(without, {k: v for k, v in FIRST.items() if k not in ("news/acme.md", "feed/items.jsonl")})
    # same relative paths under another root give the same ids: compare with an ingest of that root
    fresh = small(tmp_path, "fresh")
    ingest(without, fresh, extractor=gazetteer, embedder=embedder)
    assert_same_index(snapshot(settings), snapshot(fresh))
    assert report.totals.documents == snapshot(fresh)["graph"]["documents"].__len__()

    # the files are still on disk: the next ingest of the folder adds them back
    again = ingest(corpus, settings, extractor=gazetteer, embedder=embedder)
    assert again.documents_read == 4


def test_remove_unknown_path_removes_nothing(tmp_path, gazetteer, embedder):
    corpus = write(tmp_path / "corpus", FIRST)
    settings = small(tmp_path, "out")
    ingest(corpus, settings, extractor=gazetteer, embedder=embedder)
    before = snapshot(settings)
    with pytest.raises(ConfigError, match="nowhere.txt: not in the index"):
        remove([corpus / "news/apple.txt", corpus / "nowhere.txt"], settings)
    assert_same_index(snapshot(settings), before)


def test_cli_remove_and_verify(tmp_path, gazetteer, embedder):
    corpus = write(tmp_path / "corpus", FIRST)
    settings = small(tmp_path, "out")
    ingest(corpus, settings, extractor=gazetteer, embedder=embedder)
    runner = CliRunner()
    ok = runner.invoke(app, ["verify", "--out", str(settings.out_dir), "--json"])
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)
    assert data["ok"] and data["documents"] == 7 and data["problems"] == []

    removed = runner.invoke(app, ["remove", str(corpus / "legal/suit.txt"), "--out", str(settings.out_dir)])
    assert removed.exit_code == 0, removed.output
    assert "removed " + str(corpus / "legal/suit.txt") in removed.stdout
    assert "1 file(s), 1 document(s) removed" in removed.stdout
    missing = runner.invoke(app, ["remove", str(corpus / "legal/suit.txt"), "--out", str(settings.out_dir)])
    assert missing.exit_code == 1 and "not in the index" in missing.output

    # damage the index behind kgbuild's back: verify names what differs, and exit 1
    vectors = make_vector_sink(settings)
    vectors.open()
    doc = next(iter(vectors.export().points.values()))
    vectors.delete_documents([doc["doc_id"]])
    vectors.close()
    bad = runner.invoke(app, ["verify", "--out", str(settings.out_dir)])
    assert bad.exit_code == 1
    assert "missing from the vectors" in bad.output and doc["path"] in bad.output


@pytest.mark.neo4j
def test_updates_equal_a_fresh_ingest_on_neo4j(tmp_path, gazetteer, embedder, neo4j_server, monkeypatch):
    from kgbuild.connectors.neo4j.sink import Neo4jGraphSink

    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server["password"])
    sink = Neo4jGraphSink(neo4j_server["uri"], neo4j_server["user"], neo4j_server["password"], neo4j_server["database"])
    sink.clear()
    sink.close()
    corpus = write(tmp_path / "corpus", FIRST)
    neo = dict(graph="neo4j", neo4j_uri=neo4j_server["uri"], neo4j_user=neo4j_server["user"],
               neo4j_database=neo4j_server["database"])
    updated = small(tmp_path, "updated", **neo)
    ingest(corpus, updated, extractor=gazetteer, embedder=embedder)
    change_folder(corpus)
    ingest(corpus, updated, extractor=gazetteer, embedder=embedder)
    after = snapshot(updated)
    assert verify_index(updated).ok

    # a fresh ingest of the final folder, in the emptied database (Community has one)
    sink = Neo4jGraphSink(neo4j_server["uri"], neo4j_server["user"], neo4j_server["password"], neo4j_server["database"])
    sink.clear()
    sink.close()
    fresh = small(tmp_path, "fresh", **neo)
    ingest(corpus, fresh, extractor=gazetteer, embedder=embedder)
    assert_same_index(after, snapshot(fresh))
    # and the same content as the NetworkX default builds
    embedded = small(tmp_path, "embedded")
    ingest(corpus, embedded, extractor=gazetteer, embedder=embedder)
    assert_same_index(after, snapshot(embedded))
