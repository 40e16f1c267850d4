"""Crash safety: a real ingest process SIGKILLed at named points, then run again, ends with exactly
the index of an uninterrupted run (same ids, counts and content checksums, nothing duplicated).

The processes run ``tests/crash_runner.py`` (the real pipeline and stores; the gazetteer extractor
and hash vectors so that no model loads); ``KGBUILD_CRASH_AT`` (a point of kgbuild.hooks, heard by the runner) picks the point.
Write batches of 4 chunks and a checkpoint after each batch give every point several chances.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from crash_runner import settings_for
from index_snapshot import assert_same_index, snapshot
from test_incremental import FIRST, change_folder, write

from kgbuild.state import JOURNAL_FILE, TEMP_PREFIXES
from kgbuild.index import verify as verify_index

RUNNER = Path(__file__).resolve().parent / "crash_runner.py"
MORE = {
    f"extra/note-{i:02d}.txt": f"{a} met {b} in {c}. {a} will launch {d}; revenue rose for the quarter."
    for i, (a, b, c, d) in enumerate(
        [("Tim Cook", "Jane Park", "Seoul", "Vision Pro"), ("Oliver Blume", "Tim Cook", "Europe", "ID.7"),
         ("Jane Park", "Oliver Blume", "Cupertino", "Rocket Skates"), ("Tim Cook", "Oliver Blume", "Seoul", "Quest 5"),
         ("Jane Park", "Tim Cook", "Europe", "Vision Pro"), ("Oliver Blume", "Jane Park", "Seoul", "ID.7")]
    )
}
CORPUS = {**FIRST, **MORE}


def run_ingest(corpus: Path, out: Path, *, crash_at: str | None = None, graph: str = "networkx",
               checkpoint_seconds: float = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, "CHECKPOINT_SECONDS": str(checkpoint_seconds), "HF_HUB_OFFLINE": "1"}
    env.pop("KGBUILD_CRASH_AT", None)
    if crash_at:
        env["KGBUILD_CRASH_AT"] = crash_at
    args = [sys.executable, str(RUNNER), str(corpus), str(out)] + ([graph] if graph != "networkx" else [])
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)


def killed(result: subprocess.CompletedProcess) -> bool:
    return result.returncode == -signal.SIGKILL


def completed(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The corpus, and the index of one uninterrupted run."""
    root = tmp_path_factory.mktemp("crash")
    corpus = write(root / "corpus", CORPUS)
    report = completed(run_ingest(corpus, root / "reference"))
    assert report["documents_read"] == len(CORPUS) + 2  # the JSONL file holds three records
    return corpus, snapshot(settings_for(str(root / "reference")))


def assert_clean(out: Path) -> None:
    assert not (out / JOURNAL_FILE).exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(TEMP_PREFIXES)]
    report = verify_index(settings_for(str(out)))
    assert report.ok, report.problems


CRASH_POINTS = [
    "extract@2",  # during extraction, after two checkpoints
    "graph-written@3",  # the graph holds the batch, the vectors do not
    "vectors-written@2",  # both hold it, the state does not vouch for it
    "write:journal.json@4",  # the journal's temporary file written, not renamed
    "write:graph.json@2",  # the graph file's temporary file written, not renamed
    "write:state.json@3",  # the state's temporary file written, not renamed
]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_killed_then_rerun_equals_an_uninterrupted_run(reference, tmp_path, point):
    corpus, want = reference
    out = tmp_path / "out"
    assert killed(run_ingest(corpus, out, crash_at=point)), f"the run was not killed at {point}"
    completed(run_ingest(corpus, out))
    assert_same_index(snapshot(settings_for(str(out))), want)
    assert_clean(out)


def test_killed_twice_in_a_row(reference, tmp_path):
    corpus, want = reference
    out = tmp_path / "out"
    assert killed(run_ingest(corpus, out, crash_at="graph-written@2"))
    assert killed(run_ingest(corpus, out, crash_at="vectors-written@2"))  # killed again while recovering
    second = completed(run_ingest(corpus, out))
    assert second["documents_recovered"] > 0
    assert_same_index(snapshot(settings_for(str(out))), want)
    assert_clean(out)


def test_killed_before_any_checkpoint(reference, tmp_path):
    """No checkpoint for an hour: the journal alone tells the rerun what to undo."""
    corpus, want = reference
    out = tmp_path / "out"
    assert killed(run_ingest(corpus, out, crash_at="vectors-written@3", checkpoint_seconds=3600))
    assert json.loads((out / JOURNAL_FILE).read_text())["documents"]
    assert not (out / "state.json").exists()
    completed(run_ingest(corpus, out, checkpoint_seconds=3600))
    assert_same_index(snapshot(settings_for(str(out))), want)
    assert_clean(out)


def test_killed_during_an_update(reference, tmp_path):
    """Changed, deleted and added files, killed mid-update: the rerun equals a fresh ingest of the final folder."""
    corpus, _ = reference
    folder = write(tmp_path / "corpus", CORPUS)
    out = tmp_path / "out"
    completed(run_ingest(folder, out))
    change_folder(folder)
    assert killed(run_ingest(folder, out, crash_at="graph-written@1"))
    completed(run_ingest(folder, out))
    fresh = tmp_path / "fresh"
    completed(run_ingest(folder, fresh))
    assert_same_index(snapshot(settings_for(str(out))), snapshot(settings_for(str(fresh))))
    assert_clean(out)


def test_killed_then_the_new_file_is_deleted_before_the_rerun(reference, tmp_path):
    """What the killed run wrote for a file that is gone by the rerun must not linger (the state never knew it)."""
    corpus, want = reference
    folder = write(tmp_path / "corpus", CORPUS)
    out = tmp_path / "out"
    completed(run_ingest(folder, out))
    write(folder, {"late/new.txt": "Initech GmbH will launch Rocket Skates in Seoul with Meta."})
    assert killed(run_ingest(folder, out, crash_at="vectors-written@1"))
    (folder / "late/new.txt").unlink()
    report = completed(run_ingest(folder, out))
    assert report["documents_recovered"] == 1
    assert_same_index(snapshot(settings_for(str(out))), want)
    assert_clean(out)


def test_killed_then_the_changed_file_is_reverted_before_the_rerun(reference, tmp_path):
    """The state vouches for the old version the folder holds again; the stores held the new one."""
    corpus, want = reference
    folder = write(tmp_path / "corpus", CORPUS)
    out = tmp_path / "out"
    completed(run_ingest(folder, out))
    original = (folder / "news/acme.md").read_bytes()
    (folder / "news/acme.md").write_text("Meta will launch Quest 5 in Seoul.", encoding="utf-8")
    assert killed(run_ingest(folder, out, crash_at="vectors-written@1"))
    (folder / "news/acme.md").write_bytes(original)
    completed(run_ingest(folder, out))
    assert_same_index(snapshot(settings_for(str(out))), want)
    assert_clean(out)


def test_second_process_on_the_same_index_is_refused(reference, tmp_path):
    from typer.testing import CliRunner

    from kgbuild.cli import app
    from kgbuild.state import IndexLock

    corpus, _ = reference
    out = tmp_path / "out"
    with IndexLock(out):  # held by this process: the runner is another one
        result = run_ingest(corpus, out)
        cli = CliRunner().invoke(app, ["ingest", str(corpus), "--out", str(out), "--model", str(tmp_path / "no-model")])
    assert result.returncode == 1
    assert f"{out} is being written by another kgbuild process" in result.stderr
    assert cli.exit_code == 1
    assert cli.output.strip().splitlines() == [f"error: {out} is being written by another kgbuild process; wait for it"
                                               " to finish or use another --out"]
    assert not (out / "state.json").exists()


@pytest.mark.neo4j
@pytest.mark.parametrize("point", ["neo4j-transaction@2", "graph-written@2", "write:state.json@2"])
def test_killed_then_rerun_on_neo4j(reference, tmp_path, neo4j_server, monkeypatch, point):
    from kgbuild.connectors.neo4j.sink import Neo4jGraphSink

    corpus, want = reference
    monkeypatch.setenv("NEO4J_PASSWORD", neo4j_server["password"])
    monkeypatch.setenv("NEO4J_URI", neo4j_server["uri"])
    sink = Neo4jGraphSink(neo4j_server["uri"], neo4j_server["user"], neo4j_server["password"], neo4j_server["database"])
    sink.clear()
    sink.close()
    out = tmp_path / "out"
    assert killed(run_ingest(corpus, out, crash_at=point, graph="neo4j")), f"the run was not killed at {point}"
    completed(run_ingest(corpus, out, graph="neo4j"))
    # the same content as the uninterrupted NetworkX run
    assert_same_index(snapshot(settings_for(str(out), "neo4j")), want)
    report = verify_index(settings_for(str(out), "neo4j"))
    assert report.ok, report.problems
