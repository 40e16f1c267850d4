"""The command line: parse flags, call the library, print. The only place that prints or exits."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from kgbuild.errors import KgbuildError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Build a knowledge graph and a vector index with GLiNER2.")
schema_app = typer.Typer(no_args_is_help=True, help="Check and show extraction schemas.")
app.add_typer(schema_app, name="schema")
graph_app = typer.Typer(no_args_is_help=True, help="Look at the knowledge graph.")
app.add_typer(graph_app, name="graph")

out = Console(emoji=False)
err = Console(stderr=True, emoji=False)
_state: dict[str, bool] = {"debug": False}


# options shared by the commands that read an existing index
OutDir = Annotated[Optional[Path], typer.Option("--out", help="Index directory (default ./.kgbuild).")]
QdrantUrl = Annotated[Optional[str], typer.Option("--qdrant-url", help="Qdrant server holding the vectors.")]
Collection = Annotated[Optional[str], typer.Option("--collection", help="Qdrant collection name.")]
Neo4jUri = Annotated[Optional[str], typer.Option("--neo4j-uri", help="Neo4j Bolt URI, for a graph kept in Neo4j.")]
Neo4jUser = Annotated[Optional[str], typer.Option("--neo4j-user", help="Neo4j user.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print as JSON.")]


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors.")) -> None:
    _state["debug"] = debug


def _run(action: Callable[[], Any]) -> Any:
    """Run a library call; turn a failure into one line on stderr and a non-zero exit."""
    try:
        return action()
    except KgbuildError as exc:
        if _state["debug"]:
            raise
        err.print(Text.assemble(("error: ", "bold red"), str(exc)), highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:  # an unexpected bug: still one line unless --debug
        if _state["debug"]:
            raise
        message = f"{type(exc).__name__}: {exc} (run with --debug for the traceback)"
        err.print(Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _settings(**flags: Any) -> Any:
    from kgbuild.settings import make_settings

    return _run(lambda: make_settings(**flags))


def _index_settings(out_dir: Any, qdrant_url: Any, collection: Any, neo4j_uri: Any, neo4j_user: Any) -> Any:
    return _settings(out_dir=out_dir, qdrant_url=qdrant_url, collection=collection, neo4j_uri=neo4j_uri, neo4j_user=neo4j_user)


class _RichProgress:
    """The progress display: a spinner while scanning and loading the model, then a bar over chunks whose
    total is counted ahead (chunking comes before extraction), with chunks per second and an ETA."""

    PHASES = {"scanning": "scanning files", "loading model": "loading model", "chunking": "chunking",
              "extracting": "extracting"}

    def __init__(self, progress: Progress):
        self.progress = progress
        self.task = progress.add_task("scanning files", total=None, files=0)
        self.files = 0

    def on_phase(self, phase: str) -> None:
        self.progress.update(self.task, description=self.PHASES.get(phase, phase))
        if phase == "chunking":
            self.progress.update(self.task, total=0, completed=0)

    def on_chunks_added(self, count: int) -> None:
        total = (self.progress.tasks[0].total or 0) + count
        self.progress.update(self.task, total=total)

    def on_chunks_done(self, count: int) -> None:
        self.progress.advance(self.task, count)

    def on_file(self, rel_path: str) -> None:
        self.files += 1
        self.progress.update(self.task, files=self.files)


class _ChunkRate(ProgressColumn):
    def render(self, task: Any) -> Text:
        return Text(f"{task.speed:.1f} chunks/s" if task.speed else "", style="progress.data.speed")


def _progress_columns() -> list[Any]:
    return [
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("chunks"),
        TextColumn("· {task.fields[files]} files"), _ChunkRate(), TimeElapsedColumn(), TextColumn("ETA"),
        TimeRemainingColumn(),
    ]


@app.command()
def ingest(
    path: Path = typer.Argument(..., help="A folder (walked recursively) or one file."),
    schema: Optional[str] = typer.Option(None, "--schema", help="Schema YAML file or bundled name (default business-news)."),
    model: Optional[str] = typer.Option(None, "--model", help="GLiNER2 hub id or local checkpoint directory."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Output directory (default ./.kgbuild)."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Confidence threshold, overrides the schema's."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Chunks per model forward pass."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda or auto."),
    precision: Optional[str] = typer.Option(
        None, "--precision", help="auto (bf16 where the device has it natively), fp32 or bf16."
    ),
    fast_attention: Optional[bool] = typer.Option(
        None, "--fast-attention/--no-fast-attention", help="DisentangledFlash attention for DeBERTa encoders (default on)."
    ),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help="Maximum tokens per chunk."),
    chunk_overlap: Optional[int] = typer.Option(None, "--chunk-overlap", help="Tokens shared by neighbouring chunks."),
    embedding_model: Optional[str] = typer.Option(None, "--embedding-model", help="sentence-transformers model."),
    qdrant_url: Optional[str] = typer.Option(None, "--qdrant-url", help="Write vectors to this Qdrant server."),
    graph: Optional[str] = typer.Option(None, "--graph", help="networkx (embedded, default) or neo4j."),
    neo4j_uri: Optional[str] = typer.Option(None, "--neo4j-uri", help="Neo4j Bolt URI (or NEO4J_URI)."),
    neo4j_user: Optional[str] = typer.Option(None, "--neo4j-user", help="Neo4j user (or NEO4J_USER)."),
    neo4j_database: Optional[str] = typer.Option(None, "--neo4j-database", help="Neo4j database (or NEO4J_DATABASE)."),
    qdrant_api_key_env: Optional[str] = typer.Option(None, "--qdrant-api-key-env", help="Env var holding the API key."),
    collection: Optional[str] = typer.Option(None, "--collection", help="Qdrant collection name."),
    text_field: Optional[str] = typer.Option(None, "--text-field", help="JSON/JSONL field holding the text."),
    id_field: Optional[str] = typer.Option(None, "--id-field", help="JSON/JSONL field holding the record id."),
    title_field: Optional[str] = typer.Option(None, "--title-field", help="JSON/JSONL field holding the title."),
    csv_text_column: Optional[str] = typer.Option(None, "--csv-text-column", help="CSV column holding the text."),
    prune: Optional[bool] = typer.Option(None, "--prune/--no-prune", help="Remove documents deleted from the folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Read, chunk, extract, reconcile and write a folder of documents."""
    settings = _settings(
        schema_path=schema, model=model, out_dir=out_dir, threshold=threshold, batch_size=batch_size, device=device,
        chunk_size=chunk_size, chunk_overlap=chunk_overlap, embedding_model=embedding_model, qdrant_url=qdrant_url,
        qdrant_api_key_env=qdrant_api_key_env, collection=collection, text_field=text_field, id_field=id_field,
        title_field=title_field, csv_text_column=csv_text_column, prune=prune, graph=graph, neo4j_uri=neo4j_uri,
        neo4j_user=neo4j_user, neo4j_database=neo4j_database, precision=precision, fast_attention=fast_attention,
    )
    from kgbuild.pipeline import ingest as run_ingest

    show_progress = not as_json and err.is_terminal
    if show_progress:
        with Progress(*_progress_columns(), console=err, transient=True) as progress:
            report = _run(lambda: run_ingest(path, settings, progress=_RichProgress(progress)))
    else:
        report = _run(lambda: run_ingest(path, settings))
    for warning in report.warnings:
        err.print(Text.assemble(("warning: ", "bold yellow"), warning), highlight=False, soft_wrap=True)
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    if not report.files_seen and not report.totals.documents:
        return
    _print_report(report)


def _print_report(report: Any) -> None:
    table = Table(title=f"kgbuild ingest {report.root}", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("files seen", report.files_seen),
        ("documents read (new or changed)", report.documents_read),
        ("documents unchanged", report.documents_unchanged),
        ("documents removed", report.documents_removed),
        ("skipped", len(report.skipped)),
        ("chunks", report.chunks),
        ("mentions", report.mentions),
        ("canonical entities", report.entities),
        ("relations kept", report.relations_kept),
        ("relations dropped", sum(report.relations_dropped.values())),
        ("classifications", report.classifications),
        ("elapsed", f"{report.elapsed_s:.1f} s"),
        ("chunks per second", f"{report.chunks_per_s:.1f}"),
    ]
    if report.documents_recovered:
        rows.insert(4, ("documents recovered from an interrupted run", report.documents_recovered))
    if report.documents_kept_unreadable:
        rows.insert(4, ("documents kept (path unreadable this time)", report.documents_kept_unreadable))
    for name, value in rows:
        table.add_row(name, str(value))
    for reason, count in report.relations_dropped.items():
        table.add_row(f"  dropped: {reason}", str(count))
    out.print(table)
    t = report.totals
    out.print(
        f"index {report.out_dir}: {t.documents} documents, {t.chunks} chunks, {t.mentions} mentions,"
        f" {t.entities} entities, {t.relations} relations, {t.vector_points} vector points",
        highlight=False,
    )
    if report.chunks and report.elapsed_s > 0:
        shares = " · ".join(f"{name} {100 * seconds / report.elapsed_s:.0f}%"
                            for name, seconds in report.time_breakdown() if seconds / report.elapsed_s >= 0.01)
        runtime = ", ".join(f"{k} {v}" for k, v in report.model_runtime.items())
        out.print(f"time: {shares}" + (f" (model: {runtime})" if runtime else ""), highlight=False, soft_wrap=True)
    if report.reextraction_reason:
        out.print(f"extracted again because {report.reextraction_reason}", highlight=False, markup=False, soft_wrap=True)
    if report.skipped:
        out.print(f"skipped ({len(report.skipped)}):", highlight=False)
        for item in report.skipped:
            out.print(f"  {item.path}: {item.reason}", highlight=False, markup=False)


@app.command()
def query(
    text: str = typer.Argument(..., help="What to search for."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Index directory (default ./.kgbuild)."),
    entity: list[str] = typer.Option([], "--entity", help="TYPE:NAME; the chunk must mention it (repeatable)."),
    entity_type: list[str] = typer.Option([], "--type", help="Entity type the chunk must mention (repeatable)."),
    class_: list[str] = typer.Option([], "--class", help="TASK=LABEL the chunk or its document has (repeatable)."),
    doc: list[str] = typer.Option([], "--doc", help="Only this document path (repeatable)."),
    k: int = typer.Option(10, "-k", help="How many chunks."),
    qdrant_url: Optional[str] = typer.Option(None, "--qdrant-url", help="Read vectors from this Qdrant server."),
    collection: Optional[str] = typer.Option(None, "--collection", help="Qdrant collection name."),
    hybrid: bool = typer.Option(False, "--hybrid", help="Fuse vector, graph expansion and BM25 (reciprocal rank fusion)."),
    vector: bool = typer.Option(True, "--vector/--no-vector", help="Hybrid: use the dense vector channel."),
    graph: bool = typer.Option(True, "--graph/--no-graph", help="Hybrid: use graph expansion from the query's entities."),
    bm25: bool = typer.Option(True, "--bm25/--no-bm25", help="Hybrid: use the BM25 lexical channel."),
    hops: int = typer.Option(2, "--hops", help="Hybrid: how far graph expansion goes from the query's entities."),
    query_model: bool = typer.Option(False, "--query-model", help="Hybrid: read the query with GLiNER2 (default: find entities by name, no model)."),
    model: Optional[str] = typer.Option(None, "--model", help="Hybrid: GLiNER2 model reading the query (implies --query-model; default: the index's)."),
    as_json: bool = typer.Option(False, "--json", help="Print the results as JSON."),
) -> None:
    """Ranked chunks by meaning, filtered by what was extracted (--hybrid: plus graph and BM25)."""
    settings = _settings(out_dir=out_dir, qdrant_url=qdrant_url, collection=collection)
    if hybrid:
        from kgbuild.retrieve.hybrid import hybrid_query

        hits = _run(lambda: hybrid_query(text, settings, k=k, vector=vector, graph=graph, bm25=bm25, hops=hops, model=model,
                                         query_model=query_model, entities=entity, types=entity_type, classes=class_, docs=doc))
    else:
        from kgbuild.retrieve.vector import query as run_query

        hits = _run(lambda: run_query(text, settings, entities=entity, types=entity_type, classes=class_, docs=doc, k=k))
    if as_json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False))
        return
    if not hits:
        out.print("no matching chunks")
        return
    for rank, hit in enumerate(hits, 1):
        out.print(Text.assemble((f"{rank}. {hit.path}", "bold"), f" [{hit.start}:{hit.end}] score {hit.score:.3f}"))
        for reason in hit.reasons:
            why = f"   via {reason.channel} #{reason.rank} ({reason.score:.3f})"
            if reason.path:
                why += ": " + " -> ".join(reason.path)
            out.print(why, highlight=False, markup=False)
        if hit.matched_entities:
            out.print(f"   matched: {', '.join(hit.matched_entities)}", highlight=False, markup=False)
        names = ", ".join(f"{e.type}:{e.name}" for e in hit.entities[:8])
        if names:
            out.print(f"   entities: {names}", highlight=False, markup=False)
        if hit.classes:
            out.print("   classes: " + "; ".join(f"{t}={','.join(v)}" for t, v in hit.classes.items()), highlight=False, markup=False)
        snippet = " ".join(hit.text.split())
        out.print(f"   {snippet[:240]}{'…' if len(snippet) > 240 else ''}", highlight=False, markup=False)


@app.command()
def stats(
    out_dir: OutDir = None,
    qdrant_url: QdrantUrl = None,
    collection: Collection = None,
    neo4j_uri: Neo4jUri = None,
    neo4j_user: Neo4jUser = None,
    as_json: AsJson = False,
) -> None:
    """What the index holds, and what it was built with."""
    settings = _index_settings(out_dir, qdrant_url, collection, neo4j_uri, neo4j_user)
    from kgbuild.index import stats as run_stats

    result = _run(lambda: run_stats(settings))
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        return
    table = Table(title=f"kgbuild index {settings.out_dir}", show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    for name in ("documents", "chunks", "mentions", "entities", "relations", "vector_points"):
        table.add_row(name.replace("_", " "), str(getattr(result, name)))
    for entity_type, count in result.entities_by_type.items():
        table.add_row(f"  entities {entity_type}", str(count))
    for label, count in result.relations_by_type.items():
        table.add_row(f"  relations {label}", str(count))
    table.add_row("schema", f"{result.schema_name} {result.schema_version}")
    table.add_row("model", result.model)
    table.add_row("embedding model", result.embedding_model)
    table.add_row("built with kgbuild", result.kgbuild_version)
    out.print(table)


@app.command()
def verify(
    out_dir: OutDir = None,
    qdrant_url: QdrantUrl = None,
    collection: Collection = None,
    neo4j_uri: Neo4jUri = None,
    neo4j_user: Neo4jUser = None,
    as_json: AsJson = False,
) -> None:
    """Check that the graph, the vectors and the ingest state agree; exit 1 and say what differs if not."""
    settings = _index_settings(out_dir, qdrant_url, collection, neo4j_uri, neo4j_user)
    from kgbuild.index import verify as run_verify

    report = _run(lambda: run_verify(settings))
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        out.print(
            f"index {report.out_dir}: {report.documents} documents in the state, {report.graph_documents} in the graph,"
            f" {report.vector_points} vector points",
            highlight=False, markup=False, soft_wrap=True,
        )
        out.print(f"graph checksum      {report.graph_checksum}", highlight=False)
        out.print(f"collection checksum {report.collection_checksum}", highlight=False)
        if report.ok:
            out.print("ok: graph, vectors and state agree", highlight=False)
        for problem in report.problems:
            err.print(Text.assemble(("problem: ", "bold red"), problem), highlight=False, soft_wrap=True)
        if not report.ok:
            err.print("run `kgbuild ingest` on the same folder again to repair the index", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def remove(
    paths: list[Path] = typer.Argument(..., help="Ingested files, or folders (every ingested file under them)."),
    out_dir: OutDir = None,
    as_json: AsJson = False,
) -> None:
    """Remove files from the graph, the vectors and the state (the files themselves are left alone)."""
    settings = _settings(out_dir=out_dir)
    from kgbuild.index import remove as run_remove

    report = _run(lambda: run_remove(paths, settings))
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    for path in report.files:
        out.print(f"removed {path}", highlight=False, markup=False, soft_wrap=True)
    t = report.totals
    out.print(
        f"{len(report.files)} file(s), {report.documents} document(s) removed; index {report.out_dir}: {t.documents} documents,"
        f" {t.chunks} chunks, {t.entities} entities, {t.relations} relations, {t.vector_points} vector points",
        highlight=False, markup=False, soft_wrap=True,
    )


@schema_app.command("validate")
def schema_validate(file: str = typer.Argument(..., help="Schema YAML file or bundled name.")) -> None:
    """Check a schema; print what it declares, or the errors that name the key."""
    from kgbuild.schema import load_schema

    loaded = _run(lambda: load_schema(file))
    out.print(
        f"{file}: valid schema '{loaded.name}' version {loaded.version}: {len(loaded.entities)} entity types,"
        f" {len(loaded.relations)} relation types, {len(loaded.classifications)} classification tasks,"
        f" {len(loaded.structures)} structures",
        highlight=False,
    )


@schema_app.command("show")
def schema_show(
    file: str = typer.Argument(..., help="Schema YAML file or bundled name."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Print a schema, with defaults filled in."""
    from kgbuild.schema import load_schema

    loaded = _run(lambda: load_schema(file))
    if as_json:
        print(json.dumps(loaded.model_dump(mode="json"), ensure_ascii=False))
        return
    # schema text is user data: escape it so brackets are shown, never read as markup
    out.print(f"[bold]{escape(loaded.name)}[/] version {escape(loaded.version)} (fingerprint {loaded.fingerprint}),"
              f" threshold {loaded.threshold}", highlight=False)
    if loaded.description:
        out.print(loaded.description, highlight=False, markup=False)
    table = Table("entity type", "threshold", "description", title="entities", title_justify="left")
    for label in loaded.entities:
        table.add_row(label, f"{loaded.entity_threshold(label):g}", Text(loaded.entities[label].description))
    out.print(table)
    if loaded.relations:
        table = Table("relation", "source", "target", "threshold", "description", title="relations", title_justify="left")
        for label, rel in loaded.relations.items():
            table.add_row(label, ", ".join(rel.source), ", ".join(rel.target), f"{loaded.relation_threshold(label):g}",
                          Text(rel.description))
        out.print(table)
    for task, spec in loaded.classifications.items():
        kind = "multi-label" if spec.multi_label else "single-label"
        out.print(Text(f"classification {task} ({kind}): {', '.join(spec.labels)}"))
    for name, structure in loaded.structures.items():
        out.print(Text(f"structure {name}: {', '.join(structure.fields)}"))


@graph_app.command("view")
def graph_view(
    html_file: Path = typer.Option(..., "--html", help="Write the interactive view to this HTML file."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Index directory (default ./.kgbuild)."),
    entity: Optional[str] = typer.Option(None, "--entity", help="TYPE:NAME; show only the graph around this entity."),
    hops: int = typer.Option(1, "--hops", min=0, help="With --entity: how many relation steps away to show."),
    chunks: bool = typer.Option(False, "--chunks", help="Also show the chunks and documents that mention the entities."),
    max_nodes: int = typer.Option(2000, "--max-nodes", min=1, help="Keep at most this many nodes (highest degree first)."),
    doc: list[str] = typer.Option([], "--doc", help="Only the entities of this document (path: absolute, relative, or as stored)."),
) -> None:
    """Write a self-contained interactive HTML view of the entity graph (opens offline in any browser)."""
    settings = _settings(out_dir=out_dir)
    from kgbuild.explore import view_index

    summary = _run(lambda: view_index(settings, html_file, entity_key=entity, hops=hops, include_chunks=chunks,
                                      max_nodes=max_nodes, docs=doc))
    out.print(summary.describe(), highlight=False, markup=False)
    if summary.truncated:
        err.print(f"note: the view holds the {summary.nodes} highest-degree of {summary.total_nodes} nodes;"
                  " use --entity or a larger --max-nodes", highlight=False, markup=False)


def main() -> None:
    # the library's own progress bar is the only one: silence the model loaders' bars
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
