"""What a new user's first hour hit: each test failed on the code before the fix.

No model, no hub, no index left behind on failures; the same checkpoint by another path is not
extracted again; data under unreadable folders is kept; services are checked before any model
loads; the manifest is there from the first checkpoint; one path rule; progress counted ahead.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kgbuild.cli import app
from kgbuild.errors import ConfigError, ModelLoadError
from kgbuild.index import remove
from kgbuild.pipeline import ingest
from kgbuild.settings import Settings
from test_pipeline import DOCS, write_corpus

runner = CliRunner()


class NoModelExtractor:
    """Wraps an extractor and fails the test if anything asks it to load or run its model."""

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name

    def _never(self, *args, **kwargs):
        raise AssertionError("the model was loaded before the stores were checked")

    token_counter = max_text_tokens = extract = _never


# -- 2. the default model where the Hub cannot be reached ------------------------------------------


def _hub_out_of_reach(monkeypatch, tmp_path, offline: bool) -> list[bool]:
    """The Hub switched off (HF_HUB_OFFLINE) or unreachable, an empty cache; returns the snapshot_download calls'
    local_files_only, as they are made."""
    import huggingface_hub

    calls: list[bool] = []
    real = huggingface_hub.snapshot_download

    def recording(*args, **kwargs):
        calls.append(kwargs.get("local_files_only", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", recording)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1" if offline else "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens, the probe fails at once
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    return calls


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE", "hub-unreachable"])
def test_hub_model_unreachable_fails_at_once_with_one_line_and_leaves_nothing(tmp_path, monkeypatch, offline):
    calls = _hub_out_of_reach(monkeypatch, tmp_path, offline)
    corpus = write_corpus(tmp_path / "corpus")
    out = tmp_path / "fresh" / "index"
    result = runner.invoke(app, ["ingest", str(corpus), "--out", str(out), "--model", "fastino/gliner2-base-v1"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "fastino/gliner2-base-v1" in lines[0] and "--model PATH" in lines[0]
    assert calls == [True], "only the local cache may be asked: no download, no retries"
    assert not (tmp_path / "fresh" / "index").exists(), "a failed first run leaves no lock and no empty index"


@pytest.mark.parametrize("offline", [True, False], ids=["HF_HUB_OFFLINE", "hub-unreachable"])
def test_hub_embedding_model_unreachable_fails_before_the_index_with_one_line(tmp_path, monkeypatch, offline,
                                                                              untrained_checkpoint):
    calls = _hub_out_of_reach(monkeypatch, tmp_path, offline)
    corpus = write_corpus(tmp_path / "corpus")
    out = tmp_path / "fresh" / "index"
    result = runner.invoke(app, ["ingest", str(corpus), "--out", str(out), "--model", str(untrained_checkpoint),
                                 "--embedding-model", "someone/no-such-embedder"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "embedding model 'someone/no-such-embedder'" in lines[0] and "--embedding-model PATH" in lines[0]
    assert ("switched off" in lines[0]) == offline
    assert set(calls) == {True}, "only the local cache may be asked: no download, no retries"
    assert not (tmp_path / "fresh" / "index").exists(), "a failed first run leaves no lock and no empty index"


# -- 7. the model's identity ---------------------------------------------------------------------


@pytest.mark.gliner2
def test_same_checkpoint_by_another_path_is_not_extracted_again_and_a_different_one_is(
    tmp_path, untrained_checkpoint, embedder, monkeypatch
):
    import kgbuild.pipeline as pipeline

    monkeypatch.setattr(pipeline, "build_embedder", lambda settings: embedder)
    corpus = write_corpus(tmp_path / "corpus")
    copy = tmp_path / "models" / "copy"
    shutil.copytree(untrained_checkpoint, copy)
    link = tmp_path / "models" / "link"
    link.symlink_to(untrained_checkpoint)
    out = tmp_path / "out"

    def run(model: Path | str, cwd: Path):
        monkeypatch.chdir(cwd)
        return ingest(corpus, Settings(out_dir=out, model=str(model), threshold=0.99))

    first = run(untrained_checkpoint, tmp_path)
    assert first.documents_read == 4
    manifest = json.loads((out / "state.json").read_text())["manifest"]
    # resolved, so other folders can load it; the default decoding named with it
    assert manifest["model"] == f"{Path(untrained_checkpoint).resolve()} + constrained relation decoding"

    relative = os.path.relpath(link, tmp_path / "corpus")
    for model, cwd in ((relative, tmp_path / "corpus"), (copy, tmp_path)):
        again = run(model, cwd)
        assert (again.documents_read, again.documents_unchanged, again.reextraction_reason) == (0, 4, ""), model

    (copy / "NOTES.md").write_text("fine-tuned on our own labels\n")  # different content: a different checkpoint
    changed = run(copy, tmp_path)
    assert changed.documents_read == 4
    assert changed.reextraction_reason.startswith("model sha256:"), changed.reextraction_reason
    result = runner.invoke(app, ["stats", "--out", str(out), "--json"])
    assert json.loads(result.stdout)["model"] == f"{copy.resolve()} + constrained relation decoding"


def test_reextraction_reason_names_what_changed(tmp_path, gazetteer, embedder):
    corpus = write_corpus(tmp_path / "corpus")
    settings = Settings(out_dir=tmp_path / "out", chunk_size=16, chunk_overlap=4)
    ingest(corpus, settings, extractor=gazetteer, embedder=embedder)
    again = ingest(corpus, settings.model_copy(update={"chunk_size": 32}), extractor=gazetteer, embedder=embedder)
    assert again.documents_read == 4
    assert again.reextraction_reason == "chunk size 16 -> 32"
    result = runner.invoke(app, ["stats", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0


# -- 6. nothing indexed is pruned because it could not be read this time --------------------------


def test_documents_under_an_unreadable_folder_are_kept_and_reported(tmp_path, gazetteer, embedder, monkeypatch):
    import kgbuild.read.walk as walk

    corpus = write_corpus(tmp_path / "corpus")
    settings = Settings(out_dir=tmp_path / "out", chunk_size=16, chunk_overlap=4)
    first = ingest(corpus, settings, extractor=gazetteer, embedder=embedder)
    assert first.totals.documents == 4

    real_list_dir = walk._list_dir

    def list_dir(abs_dir, rel_dir):
        if rel_dir == "news":  # root can read anything, so play the permission error
            raise PermissionError(13, "Permission denied")
        return real_list_dir(abs_dir, rel_dir)

    monkeypatch.setattr(walk, "_list_dir", list_dir)
    second = ingest(corpus, settings, extractor=gazetteer, embedder=embedder)
    assert second.documents_removed == 0
    assert second.documents_kept_unreadable == 3
    assert second.totals.documents == 4
    assert any("news" in w and "kept 3" in w for w in second.warnings)
    assert [(s.path, s.reason) for s in second.skipped] == [("news", "cannot read directory: Permission denied")]

    monkeypatch.setattr(walk, "_list_dir", real_list_dir)
    shutil.rmtree(corpus / "news")  # really gone now: pruned
    third = ingest(corpus, settings, extractor=gazetteer, embedder=embedder)
    assert third.documents_removed == 3 and third.totals.documents == 1


# -- 8. services before models ----------------------------------------------------------------------


def test_neo4j_without_password_fails_before_any_model_loads(tmp_path, gazetteer, embedder, monkeypatch):
    monkeypatch.delenv("NEO4J_PASSWORD", raising=False)
    corpus = write_corpus(tmp_path / "corpus")
    with pytest.raises(ConfigError, match="NEO4J_PASSWORD"):
        ingest(corpus, Settings(out_dir=tmp_path / "out", graph="neo4j"), extractor=NoModelExtractor(gazetteer),
               embedder=embedder)
    assert not (tmp_path / "out").exists()


def test_neo4j_down_fails_before_any_model_loads_with_one_line(tmp_path, gazetteer, embedder, monkeypatch):
    import kgbuild.pipeline as pipeline

    monkeypatch.setenv("NEO4J_PASSWORD", "some-password")
    monkeypatch.setattr(pipeline, "build_extractor", lambda settings, schema: NoModelExtractor(gazetteer))
    monkeypatch.setattr(pipeline, "build_embedder", lambda settings: embedder)
    corpus = write_corpus(tmp_path / "corpus")
    result = runner.invoke(app, ["ingest", str(corpus), "--out", str(tmp_path / "out"), "--graph", "neo4j",
                                 "--neo4j-uri", "bolt://127.0.0.1:9"], env={"KGBUILD_RETRY_SECONDS": "1"})
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "bolt://127.0.0.1:9" in lines[0] and "unavailable" in lines[0]
    assert "50N42" not in result.output and "PreviewWarning" not in result.output
    assert "some-password" not in result.output


# -- 9. the manifest from the first checkpoint --------------------------------------------------------


def test_an_interrupted_first_run_is_an_index_stats_and_verify_can_read(tmp_path):
    from test_crash import CORPUS, killed, run_ingest
    from test_incremental import write

    corpus = write(tmp_path / "corpus", CORPUS)
    out = tmp_path / "out"
    assert killed(run_ingest(corpus, out, crash_at="extract@3"))
    state = json.loads((out / "state.json").read_text())
    assert state["roots"] and state["manifest"]["schema"]["name"] == "business-news"
    result = runner.invoke(app, ["stats", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["documents"] > 0


# -- 10. --out and empty folders ---------------------------------------------------------------------


def test_out_that_is_a_file_or_cannot_be_created_is_one_line(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    a_file = tmp_path / "index.txt"
    a_file.write_text("not an index")
    for out, expected in ((a_file, "is a file"), (a_file / "inner", "is a file"),
                          (Path("/proc/kgbuild-cannot-be-here"), "cannot create")):
        result = runner.invoke(app, ["ingest", str(corpus), "--out", str(out), "--model", str(tmp_path)])
        assert result.exit_code == 1, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and expected in lines[0] and str(out) in lines[0], result.output


def test_an_empty_folder_warns_and_creates_no_index(tmp_path, gazetteer, embedder, monkeypatch):
    import kgbuild.pipeline as pipeline

    monkeypatch.setattr(pipeline, "build_extractor", lambda settings, schema: NoModelExtractor(gazetteer))
    monkeypatch.setattr(pipeline, "build_embedder", lambda settings: embedder)
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["ingest", str(tmp_path / "empty"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "warning: no documents found in" in result.output
    assert not (tmp_path / "out").exists()


# -- 11. one path rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["absolute", "relative to cwd", "as stored"])
def test_remove_takes_absolute_cwd_relative_and_stored_paths(tmp_path, gazetteer, embedder, monkeypatch, form):
    corpus = write_corpus(tmp_path / "corpus")
    settings = Settings(out_dir=tmp_path / "out", chunk_size=16, chunk_overlap=4)
    ingest(corpus, settings, extractor=gazetteer, embedder=embedder)
    monkeypatch.chdir(tmp_path)
    given = {"absolute": str(corpus / "news" / "apple.txt"), "relative to cwd": "corpus/news/apple.txt",
             "as stored": "news/apple.txt"}[form]
    report = remove([given], settings)
    assert report.files == [str(corpus / "news" / "apple.txt")] and report.totals.documents == 3
    with pytest.raises(ConfigError, match="not in the index"):
        remove(["news/no-such.txt"], settings)


def test_stored_folder_path_removes_every_file_under_it(tmp_path, gazetteer, embedder, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus")
    settings = Settings(out_dir=tmp_path / "out", chunk_size=16, chunk_overlap=4)
    ingest(corpus, settings, extractor=gazetteer, embedder=embedder)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["remove", "news", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "3 file(s)" in result.output and "0 document" not in result.output


# -- 16. progress ----------------------------------------------------------------------------------------


class RecordingProgress:
    def __init__(self):
        self.events: list[tuple[str, object]] = []

    def on_phase(self, phase):
        self.events.append(("phase", phase))

    def on_chunks_added(self, count):
        self.events.append(("added", count))

    def on_chunks_done(self, count):
        self.events.append(("done", count))

    def on_file(self, rel_path):
        self.events.append(("file", rel_path))


def test_progress_counts_every_chunk_before_extracting(tmp_path, gazetteer, embedder):
    docs = {**DOCS, "notes/binary.txt": "\x00\x01\x02", "notes/readme.xyz": "unsupported"}
    corpus = write_corpus(tmp_path / "corpus", docs)
    progress = RecordingProgress()
    settings = Settings(out_dir=tmp_path / "out", chunk_size=16, chunk_overlap=4, write_batch_chunks=2)
    report = ingest(corpus, settings, extractor=gazetteer, embedder=embedder, progress=progress)
    phases = [value for kind, value in progress.events if kind == "phase"]
    assert phases == ["scanning", "loading model", "chunking", "extracting"]
    first_done = next(i for i, (kind, _) in enumerate(progress.events) if kind == "done")
    added_before = sum(v for kind, v in progress.events[:first_done] if kind == "added")
    assert added_before == report.chunks == sum(v for kind, v in progress.events if kind == "done")
    assert not [e for e in progress.events[first_done:] if e[0] == "added"], "the total never jumps"
    assert report.files_seen == len(docs)  # skipped files are files seen too


def test_graph_view_doc_takes_the_same_paths(tmp_path, gazetteer, embedder, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus")
    settings = Settings(out_dir=tmp_path / "out", chunk_size=16, chunk_overlap=4)
    ingest(corpus, settings, extractor=gazetteer, embedder=embedder)
    monkeypatch.chdir(tmp_path)
    described = set()
    for given in (str(corpus / "legal" / "suit.txt"), "corpus/legal/suit.txt", "legal/suit.txt", "legal"):
        result = runner.invoke(app, ["graph", "view", "--html", str(tmp_path / "g.html"), "--out", str(tmp_path / "out"),
                                     "--doc", given])
        assert result.exit_code == 0, result.output
        described.add(" ".join(result.output.split()))
    # Seoul, Globex, Acme Corp, and Acme COMPETES_WITH Globex
    assert described == {f"wrote {tmp_path / 'g.html'}: 3 nodes (3 entities), 1 edges (1 relations)"}
    result = runner.invoke(app, ["graph", "view", "--html", str(tmp_path / "g.html"), "--out", str(tmp_path / "out"),
                                 "--doc", "legal/none.txt"])
    assert result.exit_code == 1 and "--doc legal/none.txt" in result.output


@pytest.mark.parametrize("hybrid", [False, True], ids=["vector", "hybrid"])
def test_query_doc_takes_absolute_cwd_relative_and_stored_paths(tmp_path, gazetteer, embedder, monkeypatch, hybrid):
    from kgbuild.retrieve.hybrid import HybridRetriever
    from kgbuild.retrieve.vector import query

    corpus = write_corpus(tmp_path / "corpus")
    settings = Settings(out_dir=tmp_path / "out", chunk_size=16, chunk_overlap=4)
    ingest(corpus, settings, extractor=gazetteer, embedder=embedder)
    monkeypatch.chdir(tmp_path)

    def paths(doc: str) -> set[str]:
        if hybrid:
            with HybridRetriever(settings, extractor=gazetteer, embedder=embedder) as retriever:
                return {h.path for h in retriever.retrieve("who sued whom", docs=[doc], k=10)}
        return {h.path for h in query("who sued whom", settings, docs=[doc], embedder=embedder, k=10)}

    for doc in (str(corpus / "legal" / "suit.txt"), "corpus/legal/suit.txt", "legal/suit.txt", "corpus/legal"):
        assert paths(doc) == {"legal/suit.txt"}, doc
    assert paths("news") == {"news/apple.txt", "news/acme.md", "news/results.txt"}
    with pytest.raises(ConfigError, match="--doc legal/none.txt"):
        paths("legal/none.txt")


@pytest.mark.parametrize("name, parsed", [
    ("/models/x", ("/models/x", None, "plain")),
    ("fastino/gliner2-base-v1 + constrained relation decoding", ("fastino/gliner2-base-v1", None, "constrained")),
    ("/models/x + adapter /runs/lora one", ("/models/x", "/runs/lora one", "plain")),
    ("/models/a + b + adapter /runs/l + constrained relation decoding", ("/models/a + b", "/runs/l", "constrained")),
])
def test_a_manifests_model_name_gives_back_what_loads_it(name, parsed):
    from kgbuild.extract.checkpoint import parse_model_name

    assert parse_model_name(name) == parsed


@pytest.mark.gliner2
def test_queries_are_read_with_the_indexs_checkpoint_and_decoding(tmp_path, untrained_checkpoint, embedder, monkeypatch):
    """The manifest names the model with its decoding; the query reader loads the checkpoint and decodes the same way."""
    import kgbuild.pipeline as pipeline
    from kgbuild.retrieve.hybrid import HybridRetriever

    monkeypatch.setattr(pipeline, "build_embedder", lambda settings: embedder)
    settings = Settings(out_dir=tmp_path / "out", model=str(untrained_checkpoint), threshold=0.99)
    ingest(write_corpus(tmp_path / "corpus"), settings)
    manifest = json.loads((settings.out_dir / "state.json").read_text())["manifest"]
    assert manifest["model"] == f"{Path(untrained_checkpoint).resolve()} + constrained relation decoding"
    with HybridRetriever(settings, embedder=embedder, query_model=True) as retriever:
        reader = retriever.extractor
        assert reader.relation_decoding == "constrained" and reader.checkpoint().load_from == str(Path(untrained_checkpoint).resolve())
        assert isinstance(retriever.query_entities("Acme Corp hired Jane Doe."), list)


def test_a_model_change_is_told_by_name_where_the_names_differ():
    from kgbuild.plan import describe_fingerprint_change

    before, now = {"model": "sha256:" + "a" * 64, "chunk_size": 256}, {"model": "sha256:" + "b" * 64, "chunk_size": 256}
    assert describe_fingerprint_change(before, now, ("/m/x", "/m/x + constrained relation decoding")) == (
        "model /m/x -> /m/x + constrained relation decoding")
    assert describe_fingerprint_change(before, now, ("/m/x", "/m/x")) == "model sha256:aaaaaaaaaaaa -> sha256:bbbbbbbbbbbb"


def test_the_embedding_model_is_checked_once_per_embedder(monkeypatch):
    """The pipeline asks before the run and warm_up asks again: one look at the cache (and the Hub), not two."""
    import pickle

    import kgbuild.embed as embed

    checked = []
    monkeypatch.setattr(embed, "require_reachable", checked.append)
    embedder = embed.SentenceTransformerEmbedder("someone/an-embedder")
    embedder.check_available()
    embedder.check_available()
    assert checked == ["someone/an-embedder"]
    pickle.loads(pickle.dumps(embedder)).check_available()  # another machine looks for itself
    assert len(checked) == 2
