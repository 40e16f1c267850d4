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


# -- options declared once; backends from the registry; hybrid channels; stats --recount -------------------------

STORE_COMMANDS = (["ingest"], ["query"], ["stats"], ["verify"], ["remove"], ["graph", "view"], ["entities", "show"],
                  ["entities", "list"], ["entities", "merge"], ["entities", "split"])
STORE_FLAGS = ("--out", "--graph", "--vector", "--qdrant-url", "--collection", "--qdrant-api-key-env", "--neo4j-uri",
               "--neo4j-user", "--neo4j-database")


def one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def help_panel(command: list[str], title: str) -> str:
    result = runner.invoke(app, [*command, "--help"], terminal_width=160)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = next(i for i, line in enumerate(lines) if f"─ {title} ─" in line)
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("╰"))
    return "\n".join(lines[start:end + 1])


def click_options(command: list[str]) -> dict[str, object]:
    import typer.main

    found = typer.main.get_command(app)
    for name in command:
        found = found.commands[name]
    return {opt: param for param in found.params for opt in param.opts}


def test_every_command_that_opens_an_index_has_the_same_store_options():
    from kgbuild.registry import GRAPH_BACKENDS, VECTOR_BACKENDS

    panels = {" ".join(command): help_panel(command, "Stores") for command in STORE_COMMANDS}
    assert len(set(panels.values())) == 1, panels  # the same flags, in the same order, with the same help
    panel = panels["stats"]
    assert [flag for flag in STORE_FLAGS if flag in panel] == list(STORE_FLAGS)
    options = [click_options(command) for command in STORE_COMMANDS]
    for flag in STORE_FLAGS:
        assert len({(o[flag].help, o[flag].metavar, o[flag].default) for o in options}) == 1, flag
    graph_help, vector_help = options[0]["--graph"].help, options[0]["--vector"].help
    assert all(name in graph_help for name in GRAPH_BACKENDS) and all(name in vector_help for name in VECTOR_BACKENDS)
    json_helps = {click_options(c)["--json"].help for c in [*STORE_COMMANDS[:5], ["schema", "show"]]}
    assert len(json_helps) == 1
    assert click_options(["query"])["--doc"].help == click_options(["graph", "view"])["--doc"].help
    assert click_options(["stats"]).keys() - {"--recount"} == click_options(["verify"]).keys()


@pytest.fixture(scope="module")
def multihop(tmp_path_factory, business_schema, embedder):
    """The multi-hop set ingested with its gazetteer: an index whose graph channel finds entities."""
    from multihop import corpus_folder, gazetteer

    from kgbuild.pipeline import ingest
    from kgbuild.settings import Settings

    root = tmp_path_factory.mktemp("multihop-cli")
    settings = Settings(out_dir=root / "index", device="cpu")
    ingest(corpus_folder(root / "corpus"), settings, extractor=gazetteer(business_schema), embedder=embedder)
    return root / "index"


QUESTION = "What snack comes from the business that Tobias Reyes runs?"


def test_channels_choose_the_hybrid_channels(multihop):
    from kgbuild.retrieve.hybrid import CHANNELS

    def channels_of(*option: str) -> set[str]:
        result = runner.invoke(app, ["query", QUESTION, "--out", str(multihop), "-k", "5", "--json", *option])
        assert result.exit_code == 0, result.output
        hits = json.loads(result.stdout)
        assert hits
        return {reason["channel"] for hit in hits for reason in hit["reasons"]}

    assert channels_of("--channels", "graph") == {"graph"}  # --channels implies --hybrid
    assert channels_of("--hybrid", "--channels", "graph") == {"graph"}
    assert channels_of("--hybrid", "--channels", " bm25 , graph") <= {"bm25", "graph"}
    assert channels_of("--hybrid") == set(CHANNELS)
    assert ", ".join(CHANNELS) in click_options(["query"])["--channels"].help  # the help names what the library has


def test_a_bad_channel_list_is_one_line_naming_the_value_and_the_channels(multihop):
    cases = (("vector,grpah", "unknown channel 'grpah'"), ("", "at least one channel"), (" , ", "at least one channel"))
    for value, says in cases:
        result = runner.invoke(app, ["query", "x", "--out", str(multihop), "--hybrid", "--channels", value])
        assert result.exit_code == 1, result.output
        line = one_line(result)
        assert says in line and f"--channels {value!r}" in line and "vector, graph, bm25" in line, line
    for removed in ("--no-graph", "--no-vector", "--no-bm25"):  # the old switches are gone, not ignored
        assert runner.invoke(app, ["query", "x", "--out", str(multihop), "--hybrid", removed]).exit_code == 2


def test_backend_flags_name_what_is_missing_or_unknown(multihop, tmp_path, monkeypatch):
    for name in ("KGBUILD_QDRANT_URL", "KGBUILD_VECTOR", "KGBUILD_GRAPH", "NEO4J_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Tim Cook runs Apple.", encoding="utf-8")
    out = tmp_path / "out"
    no_url = runner.invoke(app, ["ingest", str(corpus), "--out", str(out), "--vector", "qdrant-server"])
    assert no_url.exit_code == 1 and "--vector qdrant-server needs --qdrant-url" in one_line(no_url)
    assert not out.exists()
    unknown = runner.invoke(app, ["ingest", str(corpus), "--out", str(out), "--vector", "faiss"])
    line = one_line(unknown)
    assert unknown.exit_code == 1 and "unknown vector backend 'faiss'" in line and "qdrant-edge, qdrant-server" in line
    # the read commands take the same flags, over what the manifest records
    read_commands = (["stats"], ["verify"], ["query", "x"], ["remove", "corpus.jsonl"],
                     ["graph", "view", "--html", str(tmp_path / "g.html")])
    for command in read_commands:
        read = runner.invoke(app, [*command, "--out", str(multihop), "--vector", "qdrant-server"])
        assert read.exit_code == 1 and "needs --qdrant-url" in one_line(read), command
    no_password = runner.invoke(app, ["verify", "--out", str(multihop), "--graph", "neo4j"])
    assert no_password.exit_code == 1 and "NEO4J_PASSWORD" in one_line(no_password)
    monkeypatch.setenv("NEO4J_PASSWORD", "some-password")
    elsewhere = runner.invoke(app, ["verify", "--out", str(multihop), "--graph", "neo4j", "--neo4j-uri", "bolt://127.0.0.1:9"],
                              env={"KGBUILD_RETRY_SECONDS": "0"})
    assert elsewhere.exit_code == 1 and "bolt://127.0.0.1:9" in one_line(elsewhere)  # it went where the flag said
    assert "some-password" not in elsewhere.output
    as_built = runner.invoke(app, ["verify", "--out", str(multihop), "--graph", "networkx", "--vector", "qdrant-edge"])
    assert as_built.exit_code == 0, as_built.output


def test_stats_recount_counts_the_graph_store(multihop, tmp_path):
    import shutil

    out = tmp_path / "index"
    shutil.copytree(multihop, out)

    def entities(*option: str) -> int:
        result = runner.invoke(app, ["stats", "--out", str(out), "--json", *option])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["entities"]

    counted = entities("--recount")
    assert counted > 0 and entities() == counted
    state_file = out / "state.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    state["totals"]["entities"] = counted + 1000  # what ingest recorded no longer matches the graph
    state_file.write_text(json.dumps(state), encoding="utf-8")
    assert entities() == counted + 1000  # read from the recorded totals
    assert entities("--recount") == counted  # counted in the graph store
    table = runner.invoke(app, ["stats", "--out", str(out), "--recount"])
    assert table.exit_code == 0 and f"entities {counted}" in " ".join(table.stdout.replace("│", " ").split())
