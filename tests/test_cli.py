"""The command line, through Typer's test runner, on a generated 50-file mixed folder with broken files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus_factory import TOTAL_FILES, make_mixed_corpus
from typer.testing import CliRunner

from kgbuild.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    return make_mixed_corpus(root / "corpus")


@pytest.fixture(scope="module")
def ingested(mixed, untrained_checkpoint, tmp_path_factory):
    """One ingest of the mixed folder with a real (untrained) GLiNER2 at a high threshold, then a re-run."""
    out = tmp_path_factory.mktemp("cli") / "index"
    args = ["ingest", str(mixed.root), "--model", str(untrained_checkpoint), "--out", str(out),
            "--threshold", "0.95", "--batch-size", "4", "--device", "cpu"]
    first = runner.invoke(app, [*args, "--json"])
    files_after_first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and "qdrant" not in p.parts}
    second = runner.invoke(app, [*args, "--json"])
    files_after_second = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and "qdrant" not in p.parts}
    table = runner.invoke(app, args)
    return {"out": out, "first": first, "second": second, "table": table,
            "files": (files_after_first, files_after_second)}


def test_every_good_file_is_ingested_and_every_bad_one_named(mixed, ingested):
    result = ingested["first"]
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["files_seen"] == TOTAL_FILES  # every file the walk met, skipped ones too
    assert report["documents_read"] == mixed.expected_documents
    skipped = {s["path"]: s["reason"] for s in report["skipped"]}
    for path, reason in mixed.bad_files.items():
        assert path in skipped, f"{path} was not reported as skipped"
        assert reason.lower() in skipped[path].lower()
    for record in mixed.bad_records:
        assert record in skipped
    assert set(skipped) == set(mixed.bad_files) | set(mixed.bad_records)
    assert report["chunks"] >= mixed.expected_documents
    assert report["totals"]["documents"] == mixed.expected_documents
    assert report["totals"]["vector_points"] == report["chunks"]
    assert report["chunks_per_s"] > 0
    stages = report["stage_seconds"]
    assert {"chunk", "model", "link", "reconcile", "embed", "graph write", "vector write"} <= set(stages)
    assert 0 < sum(stages.values()) <= report["elapsed_s"]
    assert report["model_runtime"]["precision"] in ("bf16", "fp32")
    assert report["model_runtime"]["attention"] == "eager"  # a MiniLM encoder: DisentangledFlash is for DeBERTa


def test_the_summary_says_where_the_time_went(capsys):
    from kgbuild.cli import _print_report
    from kgbuild.types import IngestReport

    report = IngestReport(root="corpus", out_dir="out", chunks=10, elapsed_s=10.0,
                          stage_seconds={"model": 8.0, "embed": 1.0, "graph write": 0.04},
                          model_runtime={"precision": "bf16", "attention": "disentangled-flash"})
    _print_report(report)
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("time:"))
    assert line == "time: model 80% · embed 10% · read and the rest 10% (model: precision bf16, attention disentangled-flash)"


def test_rerun_changes_nothing(mixed, ingested):
    first, second = json.loads(ingested["first"].stdout), json.loads(ingested["second"].stdout)
    assert second["documents_read"] == 0 and second["chunks"] == 0
    assert second["documents_unchanged"] == mixed.expected_documents
    assert second["totals"] == first["totals"]
    before, after = ingested["files"]
    assert before == after


def test_summary_table(ingested):
    result = ingested["table"]
    assert result.exit_code == 0
    for line in ("documents unchanged", "canonical entities", "relations dropped", "chunks per second", "skipped"):
        assert line in result.stdout
    assert "empty" in result.stdout  # the zero-byte file is named with its reason


def test_stats_and_query_commands(ingested):
    out = str(ingested["out"])
    stats = runner.invoke(app, ["stats", "--out", out, "--json"])
    assert stats.exit_code == 0, stats.output
    data = json.loads(stats.stdout)
    first = json.loads(ingested["first"].stdout)
    assert data["documents"] == first["totals"]["documents"] and data["vector_points"] == first["chunks"]
    assert data["schema_name"] == "business-news" and data["kgbuild_version"]
    table = runner.invoke(app, ["stats", "--out", out])
    assert "vector points" in table.stdout and "business-news" in table.stdout

    hits = runner.invoke(app, ["query", "electric vehicles", "--out", out, "-k", "3", "--json"])
    assert hits.exit_code == 0, hits.output
    results = json.loads(hits.stdout)
    assert len(results) == 3 and all({"path", "start", "end", "score", "entities", "classes"} <= set(r) for r in results)
    plain = runner.invoke(app, ["query", "electric vehicles", "--out", out, "-k", "2"])
    assert "score" in plain.stdout
    filtered = runner.invoke(app, ["query", "x", "--out", out, "--doc", "data/records/people.jsonl", "--json"])
    assert filtered.exit_code == 0 and all(r["path"].startswith("data/records/people.jsonl#") for r in json.loads(filtered.stdout))


def test_errors_are_one_line_and_exit_non_zero(tmp_path, ingested):
    missing = runner.invoke(app, ["ingest", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert missing.exit_code == 1 and "no such file or directory" in missing.output
    assert "Traceback" not in missing.output
    bad_flag = runner.invoke(app, ["ingest", str(tmp_path), "--batch-size", "0", "--out", str(tmp_path / "o")])
    assert bad_flag.exit_code == 1 and "batch_size" in bad_flag.output
    bad_schema = runner.invoke(app, ["ingest", str(tmp_path), "--schema", str(tmp_path / "none.yaml")])
    assert bad_schema.exit_code == 1 and "none.yaml" in bad_schema.output
    no_index = runner.invoke(app, ["query", "x", "--out", str(tmp_path / "empty")])
    assert no_index.exit_code == 1 and "kgbuild ingest" in no_index.output
    bad_entity = runner.invoke(app, ["query", "x", "--out", str(ingested["out"]), "--entity", "Apple"])
    assert bad_entity.exit_code == 1 and "TYPE:NAME" in bad_entity.output


def test_offline_hub_model_error_names_the_model(tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.txt").write_text("Tim Cook runs Apple.")
    result = runner.invoke(app, ["ingest", str(tmp_path / "c"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "fastino/gliner2-base-v1" in result.output and "--model" in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1


def test_debug_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["--debug", "query", "x", "--out", str(tmp_path / "none")])
    assert result.exit_code != 0 and result.exception is not None


def test_graph_view_writes_an_offline_html_file(ingested, tmp_path):
    html_file = tmp_path / "graph.html"
    result = runner.invoke(app, ["graph", "view", "--out", str(ingested["out"]), "--html", str(html_file)])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.stdout and html_file.exists()
    page = html_file.read_text(encoding="utf-8")
    assert "vis-network" in page or "vis.Network" in page
    assert 'src="http' not in page and 'href="http' not in page
    missing = runner.invoke(app, ["graph", "view", "--out", str(ingested["out"]), "--html", str(html_file),
                                  "--entity", "COMPANY:No Such Company"])
    assert missing.exit_code == 1 and "No Such Company".casefold() in missing.output.casefold()
