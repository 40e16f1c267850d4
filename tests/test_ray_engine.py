"""The engine ray (``kgbuild ingest --engine ray``) on a local Ray: the same index as a local run (ids, counts,
content checksums), on NetworkX + embedded vectors and on Neo4j; updates, removal and a killed driver too.

The in-process tests share one local Ray (started once, ~10 s); the crash test runs ``tests/crash_runner.py``
in its own processes, each with its own Ray, as a user's rerun would.
"""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("ray")

from crash_runner import HashEmbedder, settings_for  # noqa: E402
from index_snapshot import assert_same_index, snapshot  # noqa: E402
from test_crash import CORPUS, completed, killed, run_ingest  # noqa: E402
from test_incremental import change_folder, write  # noqa: E402

from kgbuild.errors import ConfigError  # noqa: E402
from kgbuild.index import verify as verify_index  # noqa: E402
from kgbuild.pipeline import ingest  # noqa: E402
from kgbuild.ray_engine import actor_plan, require_ray, shared_store_warning, start_ray  # noqa: E402
from kgbuild.settings import Settings  # noqa: E402


class FailsOnPoison:
    """The gazetteer, except that it raises on any text with the word "poison" (a document the model chokes on)."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name

    def token_counter(self):
        return self.inner.token_counter()

    def max_text_tokens(self):
        return self.inner.max_text_tokens()

    def extract(self, texts):
        if any("poison" in t for t in texts):
            raise RuntimeError("the model chokes on poison")
        return self.inner.extract(texts)


@pytest.fixture(scope="module")
def local_ray():
    ray = start_ray(None, 2)
    yield ray
    ray.shutdown()


def with_engine(settings: Settings, engine: str, **more) -> Settings:
    return settings.model_copy(update={"engine": engine, **more})


def checksums(settings: Settings) -> tuple[str, str, int, int]:
    report = verify_index(settings)
    assert report.ok, report.problems
    return report.graph_checksum, report.collection_checksum, report.documents, report.vector_points


def test_ray_builds_the_index_a_local_run_builds_and_updates_it_the_same_way(local_ray, tmp_path, gazetteer):
    corpus = write(tmp_path / "corpus", {**CORPUS, "bad/poison.txt": "Acme Corp sells poison to Globex Ltd.",
                                         "bad/broken.json": "{not json"})
    extractor = FailsOnPoison(gazetteer)
    local = with_engine(settings_for(str(tmp_path / "local")), "local")
    on_ray = with_engine(settings_for(str(tmp_path / "ray")), "ray", ray_actors=2)
    want = ingest(corpus, local, extractor=extractor, embedder=HashEmbedder())
    got = ingest(corpus, on_ray, extractor=extractor, embedder=HashEmbedder())
    assert got.documents_read == want.documents_read == len(CORPUS) + 2
    assert sorted(s.path for s in got.skipped) == sorted(s.path for s in want.skipped) == ["bad/broken.json", "bad/poison.txt"]
    assert [s.reason for s in got.skipped] == [s.reason for s in want.skipped]
    assert (got.chunks, got.mentions, got.relations_kept, got.entities) == \
           (want.chunks, want.mentions, want.relations_kept, want.entities)
    assert "ray (read, extract, embed)" in got.stage_seconds
    assert checksums(on_ray) == checksums(local)
    assert_same_index(snapshot(on_ray), snapshot(local))

    # changed, deleted and added files, on Ray: the same as a fresh local ingest of the final folder
    change_folder(corpus)
    (corpus / "bad/poison.txt").write_text("Acme Corp sells skates to Globex Ltd.", encoding="utf-8")
    again = ingest(corpus, on_ray, extractor=extractor, embedder=HashEmbedder())
    assert again.documents_read > 0 and again.documents_removed > 0
    fresh = with_engine(settings_for(str(tmp_path / "fresh")), "local")
    ingest(corpus, fresh, extractor=extractor, embedder=HashEmbedder())
    assert checksums(on_ray) == checksums(fresh)
    assert_same_index(snapshot(on_ray), snapshot(fresh))

    # nothing changed: nothing reaches Ray, nothing is written
    unchanged = ingest(corpus, on_ray, extractor=extractor, embedder=HashEmbedder())
    assert unchanged.documents_read == 0 and unchanged.documents_removed == 0

    # kgbuild remove after a Ray ingest, as after a local one
    from kgbuild.index import Index

    Index(on_ray).remove([str(corpus / "news/apple.txt")])
    Index(fresh).remove([str(corpus / "news/apple.txt")])
    assert checksums(on_ray) == checksums(fresh)


@pytest.mark.neo4j
def test_ray_into_neo4j_equals_the_local_networkx_index(local_ray, tmp_path, gazetteer, neo4j_server, monkeypatch):
    from kgbuild.connectors.neo4j.sink import Neo4jGraphSink

    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server["password"])
    monkeypatch.setenv("NEO4J_URI", neo4j_server["uri"])
    sink = Neo4jGraphSink(neo4j_server["uri"], neo4j_server["user"], neo4j_server["password"], neo4j_server["database"])
    sink.clear()
    sink.close()
    corpus = write(tmp_path / "corpus", CORPUS)
    local = settings_for(str(tmp_path / "local"))
    ingest(corpus, local, extractor=gazetteer, embedder=HashEmbedder())
    on_ray = with_engine(settings_for(str(tmp_path / "ray"), "neo4j"), "ray")
    ingest(corpus, on_ray, extractor=gazetteer, embedder=HashEmbedder())
    assert checksums(on_ray) == checksums(local)
    assert_same_index(snapshot(on_ray), snapshot(local))


def test_a_killed_ray_driver_is_repaired_by_the_rerun(tmp_path, monkeypatch):
    """The driver SIGKILLed after the graph write of its second batch (Ray's workers die with it); the rerun on Ray
    equals an uninterrupted local run."""
    corpus = write(tmp_path / "corpus", CORPUS)
    completed(run_ingest(corpus, tmp_path / "reference"))
    monkeypatch.setenv("KGBUILD_ENGINE", "ray")
    monkeypatch.setenv("KGBUILD_RAY_ACTORS", "1")
    out = tmp_path / "out"
    assert killed(run_ingest(corpus, out, crash_at="graph-written@2"))
    report = completed(run_ingest(corpus, out))
    assert report["documents_recovered"] > 0
    assert_same_index(snapshot(settings_for(str(out))), snapshot(settings_for(str(tmp_path / "reference"))))


def test_without_ray_the_engine_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError) as error:
        require_ray()
    assert str(error.value) == "--engine ray needs Ray: pip install 'kgbuild[ray]' (or uv sync --extra ray)"


def test_ingest_with_the_engine_ray_and_no_ray_installed_is_one_line(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from kgbuild.cli import app

    write(tmp_path / "corpus", {"a.txt": "Acme Corp sells skates."})
    monkeypatch.setitem(sys.modules, "ray", None)
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "corpus"), "--out", str(tmp_path / "out"), "--engine", "ray",
                                      "--model", str(tmp_path / "no-model")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["error: --engine ray needs Ray: pip install 'kgbuild[ray]' (or uv sync --extra ray)"]
    assert not (tmp_path / "out" / "state.json").exists()


def test_actors_one_per_gpu_else_one_per_two_cpus():
    assert actor_plan(None, 16.0, 4, "auto") == (4, 1.0, 1.0)
    assert actor_plan(None, 16.0, 4, "cpu") == (8, 1.0, 0.0)
    assert actor_plan(None, 2.0, 0, "auto") == (1, 1.0, 0.0)
    assert actor_plan(3, 2.0, 0, "auto") == (3, 1.0, 0.0)


def test_many_machines_writing_into_embedded_stores_are_told_so():
    embedded = Settings()
    shared = Settings(graph="neo4j", qdrant_url="http://qdrant:6333")
    assert shared_store_warning(1, embedded) is None
    assert shared_store_warning(3, shared) is None
    said = shared_store_warning(3, embedded)
    assert said is not None and "3 nodes" in said and "the graph and the vectors" in said and "--graph neo4j" in said
    assert "the vectors in embedded" in shared_store_warning(2, Settings(graph="neo4j"))
