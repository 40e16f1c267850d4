"""The command line: parse flags, call the library, print. The only place that prints or exits."""

from __future__ import annotations

import functools
import inspect
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

from kgbuild.errors import ConfigError, KgbuildError
from kgbuild.registry import DEFAULT_GRAPH, DEFAULT_VECTOR, GRAPH_BACKENDS, VECTOR_BACKENDS, graph_backend, vector_backend

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Build a knowledge graph and a vector index with GLiNER2.")
schema_app = typer.Typer(no_args_is_help=True, help="Check and show extraction schemas.")
app.add_typer(schema_app, name="schema")
graph_app = typer.Typer(no_args_is_help=True, help="Look at the knowledge graph.")
app.add_typer(graph_app, name="graph")
entities_app = typer.Typer(
    no_args_is_help=True,
    help="Look up entities: why their names are one entity, and pin merges and splits in the index's resolution.yaml.")
app.add_typer(entities_app, name="entities")
communities_app = typer.Typer(
    help="Communities of the entity graph (hierarchical Leiden), each with an extractive summary: a map of the corpus.")
app.add_typer(communities_app, name="communities")

out = Console(emoji=False)
err = Console(stderr=True, emoji=False)
_state: dict[str, bool] = {"debug": False}


def _backend_help(kind: str, names: Any, default: str, when_unset: str = "") -> str:
    return (f"{kind} backend: {', '.join(sorted(names))} (default {default}{when_unset};"
            " reading an index: the one it was built with).")


# Each option is declared once, here, and reused by every command that takes it.
# The store options say where an index lives; every command that opens one takes all of them (_store_options).
OutDir = Annotated[Optional[Path], typer.Option(
    "--out", rich_help_panel="Stores",
    help="Index directory: its state, and the stores of embedded backends (default ./.kgbuild).")]
GraphName = Annotated[Optional[str], typer.Option(
    "--graph", metavar="NAME", rich_help_panel="Stores", help=_backend_help("Graph", GRAPH_BACKENDS, DEFAULT_GRAPH))]
VectorName = Annotated[Optional[str], typer.Option(
    "--vector", metavar="NAME", rich_help_panel="Stores",
    help=_backend_help("Vector", VECTOR_BACKENDS, DEFAULT_VECTOR, ", or qdrant-server with --qdrant-url"))]
QdrantUrl = Annotated[Optional[str], typer.Option(
    "--qdrant-url", rich_help_panel="Stores", help="Qdrant server URL, for the qdrant-server backend (or KGBUILD_QDRANT_URL).")]
Collection = Annotated[Optional[str], typer.Option(
    "--collection", rich_help_panel="Stores", help="Qdrant server collection name (default kgbuild).")]
QdrantApiKeyEnv = Annotated[Optional[str], typer.Option(
    "--qdrant-api-key-env", rich_help_panel="Stores",
    help="Environment variable holding the Qdrant API key (default QDRANT_API_KEY).")]
Neo4jUri = Annotated[Optional[str], typer.Option(
    "--neo4j-uri", rich_help_panel="Stores", help="Neo4j Bolt URI, for the neo4j backend (or NEO4J_URI).")]
Neo4jUser = Annotated[Optional[str], typer.Option("--neo4j-user", rich_help_panel="Stores", help="Neo4j user (or NEO4J_USER).")]
Neo4jDatabase = Annotated[Optional[str], typer.Option(
    "--neo4j-database", rich_help_panel="Stores", help="Neo4j database (or NEO4J_DATABASE).")]
STORE_OPTIONS = {
    "out_dir": OutDir, "graph": GraphName, "vector": VectorName, "qdrant_url": QdrantUrl, "collection": Collection,
    "qdrant_api_key_env": QdrantApiKeyEnv, "neo4j_uri": Neo4jUri, "neo4j_user": Neo4jUser, "neo4j_database": Neo4jDatabase,
}
StoreFlags = dict[str, Any]  # what a command got for each of STORE_OPTIONS, by setting name (None: not given)

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Docs = Annotated[list[str], typer.Option(
    "--doc", help="Only this document (repeatable): a path absolute, relative to here, or as stored in the index.")]
SchemaFile = Annotated[str, typer.Argument(help="Schema YAML file or bundled name.")]
# the channel names are hybrid.CHANNELS (not imported here: `kgbuild --help` stays light; a test keeps them equal)
Adapter = Annotated[Optional[str], typer.Option(
    "--adapter", help="A LoRA adapter directory (written by `kgbuild train --lora`) applied to --model.")]
RelationDecoding = Annotated[Optional[str], typer.Option(
    "--relation-decoding", metavar="plain|constrained",
    help="constrained (default): decode relations with the schema's constraints (gliner2's joint decoder);"
         " plain: each relation's best head and tail, checked against the schema afterwards.")]
Channels = Annotated[Optional[str], typer.Option(
    "--channels", metavar="vector,graph,bm25",
    help="Hybrid channels to fuse, comma-separated: vector, graph, bm25 (default all three; implies --hybrid).")]


def _store_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command every option of STORE_OPTIONS, which it receives together as ``stores: StoreFlags``.

    Typer reads a command's parameters from its signature: the wrapper's lists the command's own, then these.
    """
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "stores"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
             for name, annotation in STORE_OPTIONS.items()]

    @functools.wraps(command)
    def with_stores(*args: Any, **kwargs: Any) -> Any:
        stores = {name: kwargs.pop(name) for name in STORE_OPTIONS}
        return command(*args, stores=stores, **kwargs)

    with_stores.__signature__ = inspect.Signature([*own, *added])  # type: ignore[attr-defined]  # what Typer reads
    return with_stores


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


def _store_settings(stores: StoreFlags, **flags: Any) -> Any:
    """Settings from the store options and a command's own flags. A backend chosen by flag is checked now,
    so that what it lacks (a Qdrant URL, a Neo4j password) is one line before anything is opened."""
    settings = _settings(**stores, **flags)
    chosen = [graph_backend(settings.graph)] if stores["graph"] else []
    chosen += [vector_backend(settings.vector_backend)] if stores["vector"] else []
    for backend in chosen:
        if backend.check is not None:
            _run(functools.partial(backend.check, settings))
    return settings


def _parse_channels(value: str | None) -> dict[str, bool]:
    """``"graph,bm25"`` -> ``{"vector": False, "graph": True, "bm25": True}``, the hybrid retriever's switches
    (``None``: all on)."""
    from kgbuild.retrieve.hybrid import CHANNELS

    if value is None:
        return dict.fromkeys(CHANNELS, True)
    chosen = {name.strip() for name in value.split(",")} - {""}
    known = ", ".join(CHANNELS)
    if not chosen:
        raise ConfigError(f"--channels {value!r}: name at least one channel ({known})")
    unknown = sorted(chosen - set(CHANNELS))
    if unknown:
        raise ConfigError(f"--channels {value!r}: unknown channel {', '.join(map(repr, unknown))} (known: {known})")
    return {name: name in chosen for name in CHANNELS}


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
@_store_options
def ingest(
    path: Path = typer.Argument(..., help="A folder (walked recursively) or one file."),
    schema: Optional[str] = typer.Option(None, "--schema", help="Schema YAML file or bundled name (default business-news)."),
    model: Optional[str] = typer.Option(None, "--model", help="GLiNER2 hub id or local checkpoint directory."),
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
    text_field: Optional[str] = typer.Option(None, "--text-field", help="JSON/JSONL field holding the text."),
    id_field: Optional[str] = typer.Option(None, "--id-field", help="JSON/JSONL field holding the record id."),
    title_field: Optional[str] = typer.Option(None, "--title-field", help="JSON/JSONL field holding the title."),
    csv_text_column: Optional[str] = typer.Option(None, "--csv-text-column", help="CSV column holding the text."),
    prune: Optional[bool] = typer.Option(None, "--prune/--no-prune", help="Remove documents deleted from the folder."),
    adapter: Adapter = None,
    relation_decoding: RelationDecoding = None,
    engine: Optional[str] = typer.Option(
        None, "--engine", metavar="local|ray",
        help="ray: read, chunk, extract and embed on a Ray cluster (pip install 'kgbuild[ray]'); default local."),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="The Ray cluster to join (host:6379 or ray://host:10001); default a Ray on this machine."),
    ray_actors: Optional[int] = typer.Option(
        None, "--ray-actors", min=1, help="Model actors on Ray, each holding the model once; default one per GPU, else one per 2 CPUs."),
    as_json: AsJson = False,
    *,
    stores: StoreFlags,
) -> None:
    """Read, chunk, extract, reconcile and write a folder of documents."""
    settings = _store_settings(
        stores, schema_path=schema, model=model, threshold=threshold, batch_size=batch_size, device=device,
        adapter=adapter, relation_decoding=relation_decoding, engine=engine, ray_address=ray_address, ray_actors=ray_actors,
        chunk_size=chunk_size, chunk_overlap=chunk_overlap, embedding_model=embedding_model, text_field=text_field,
        id_field=id_field, title_field=title_field, csv_text_column=csv_text_column, prune=prune, precision=precision,
        fast_attention=fast_attention,
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
@_store_options
def query(
    text: str = typer.Argument(..., help="What to search for."),
    entity: list[str] = typer.Option([], "--entity", help="TYPE:NAME; the chunk must mention it (repeatable)."),
    entity_type: list[str] = typer.Option([], "--type", help="Entity type the chunk must mention (repeatable)."),
    class_: list[str] = typer.Option([], "--class", help="TASK=LABEL the chunk or its document has (repeatable)."),
    doc: Docs = [],
    k: int = typer.Option(10, "-k", help="How many chunks."),
    hybrid: bool = typer.Option(False, "--hybrid", help="Fuse vector, graph (personalised PageRank) and BM25 (weighted reciprocal rank fusion)."),
    channels: Channels = None,
    hops: int = typer.Option(2, "--hops", help="Hybrid: how far a graph hit's explanation reaches back to the query's entities."),
    query_model: bool = typer.Option(False, "--query-model", help="Hybrid: read the query with GLiNER2 (default: find entities by name, no model)."),
    model: Optional[str] = typer.Option(None, "--model", help="Hybrid: GLiNER2 model reading the query (implies --query-model; default: the index's)."),
    community: list[str] = typer.Option([], "--community", metavar="ID",
                                        help="Only chunks of this community (repeatable: any of them; `kgbuild communities` lists ids)."),
    global_: bool = typer.Option(False, "--global", help="Rank communities by their summaries (questions about themes); -k communities."),
    level: Optional[int] = typer.Option(None, "--level", help="--global: only communities of this level (0 is the coarsest)."),
    as_json: AsJson = False,
    *,
    stores: StoreFlags,
) -> None:
    """Ranked chunks by meaning, filtered by what was extracted (--hybrid: plus graph and BM25; --global: communities)."""
    settings = _store_settings(stores)
    if global_:
        _global_query(text, settings, k, level, as_json)
        return
    if hybrid or channels is not None:
        from kgbuild.retrieve.hybrid import hybrid_query

        switches = _run(lambda: _parse_channels(channels))
        hits = _run(lambda: hybrid_query(text, settings, k=k, **switches, hops=hops, model=model, query_model=query_model,
                                         entities=entity, types=entity_type, classes=class_, docs=doc, communities=community))
    else:
        from kgbuild.retrieve.vector import query as run_query

        hits = _run(lambda: run_query(text, settings, entities=entity, types=entity_type, classes=class_, docs=doc, k=k,
                                      communities=community))
    if as_json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False))
        return
    if not hits:
        out.print("no matching chunks")
        return
    chunk_names = _ChunkNames(settings) if any(r.path for h in hits for r in h.reasons) else None
    for rank, hit in enumerate(hits, 1):
        out.print(Text.assemble((f"{rank}. {hit.path}", "bold"), f" [{hit.start}:{hit.end}] score {hit.score:.3f}"))
        for reason in hit.reasons:
            why = f"   via {reason.channel} #{reason.rank} ({reason.score:.3f})"
            if reason.path and chunk_names is not None:  # chunks by their document's name (--json keeps the ids)
                why += ": " + " -> ".join(hit.path if step == hit.chunk_id else chunk_names.name(step) for step in reason.path)
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


def _global_query(text: str, settings: Any, k: int, level: int | None, as_json: bool) -> None:
    from kgbuild.communities import global_query

    found = _run(lambda: global_query(text, settings, k=k, level=level))
    if as_json:
        print(json.dumps([h.to_dict() for h in found], ensure_ascii=False))
        return
    if not found:
        out.print("no matching communities")
        return
    for rank, hit in enumerate(found, 1):
        c = hit.community
        out.print(Text.assemble((f"{rank}. {c.id}", "bold"), f"  {c.title}  ({c.size} entities, level {c.level})"),
                  highlight=False)
        out.print("   via " + ", ".join(f"{ch} #{r}" for ch, r in sorted(hit.reasons.items())), highlight=False, markup=False)
        for chunk in c.chunks:
            snippet = " ".join(chunk.text.split())
            out.print(f"   {chunk.path}: {snippet[:200]}{'…' if len(snippet) > 200 else ''}", highlight=False, markup=False)


@app.command()
@_store_options
def stats(
    recount: bool = typer.Option(
        False, "--recount", help="Count the graph store instead of reading the totals the last ingest recorded (slower)."),
    as_json: AsJson = False,
    *,
    stores: StoreFlags,
) -> None:
    """What the index holds, and what it was built with."""
    settings = _store_settings(stores)
    from kgbuild.index import stats as run_stats

    result = _run(lambda: run_stats(settings, recount=recount))
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
@_store_options
def verify(as_json: AsJson = False, *, stores: StoreFlags) -> None:
    """Check that the graph, the vectors and the ingest state agree; exit 1 and say what differs if not."""
    settings = _store_settings(stores)
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
@_store_options
def remove(
    paths: list[Path] = typer.Argument(..., help="Ingested files, or folders (every ingested file under them)."),
    as_json: AsJson = False,
    *,
    stores: StoreFlags,
) -> None:
    """Remove files from the graph, the vectors and the state (the files themselves are left alone)."""
    settings = _store_settings(stores)
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


@app.command()
@_store_options
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; off loopback KGBUILD_API_TOKEN must be set."),
    port: int = typer.Option(8000, "--port", help="TCP port of the HTTP API."),
    mcp: bool = typer.Option(False, "--mcp", help="Serve the MCP tools too: at /mcp (streamable HTTP), or over stdio."),
    transport: str = typer.Option("http", "--transport", metavar="http|stdio",
                                  help="http: the API (and /mcp); stdio: MCP alone on stdin/stdout (with --mcp)."),
    max_k: int = typer.Option(100, "--max-k", help="Largest k a query may ask for."),
    max_body_bytes: int = typer.Option(65536, "--max-body-bytes", help="Largest request body accepted (413 above)."),
    poll_seconds: float = typer.Option(0.5, "--poll-seconds", help="How often to look for a state committed by an ingest."),
    *,
    stores: StoreFlags,
) -> None:
    """Answer from the index over HTTP (and MCP) in one long-lived process; picks up what each ingest commits."""
    settings = _store_settings(stores)
    from kgbuild.serve import ServeOptions, serve as run_serve

    options = ServeOptions(host=host, port=port, mcp=mcp, transport=transport, max_k=max_k,  # type: ignore[arg-type]
                           max_body_bytes=max_body_bytes, poll_seconds=poll_seconds)
    _run(lambda: run_serve(settings, options))


@schema_app.command("validate")
def schema_validate(file: SchemaFile) -> None:
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
def schema_show(file: SchemaFile, as_json: AsJson = False) -> None:
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
@_store_options
def graph_view(
    html_file: Path = typer.Option(..., "--html", help="Write the interactive view to this HTML file."),
    entity: Optional[str] = typer.Option(None, "--entity", help="TYPE:NAME; show the entities around this one."),
    hops: int = typer.Option(1, "--hops", min=0, help="With --entity: how many steps (relation or co-mention) away to show."),
    chunks: bool = typer.Option(False, "--chunks", help="Draw the graph store as it is: also the chunks and documents that mention the entities."),
    max_nodes: Optional[int] = typer.Option(None, "--max-nodes", min=1,
                                            help="Draw at most this many nodes (default 300; 200 with --entity; 2000 with --chunks or --doc)."),
    labels: int = typer.Option(150, "--labels", min=0, help="Name this many nodes, the best connected (the others on hover)."),
    communities: int = typer.Option(12, "--communities", min=1, help="Draw this many communities, the largest, as clusters."),
    level: int = typer.Option(0, "--level", min=0, help="The community level to cluster and colour by (0: the coarsest)."),
    colour: str = typer.Option("community", "--colour", help="Colour nodes by 'community' or 'type' at first (the page switches)."),
    doc: Docs = [],
    *,
    stores: StoreFlags,
) -> None:
    """Write a self-contained interactive HTML view of the entity graph (opens offline in any browser): the largest
    communities as labelled clusters, relations and co-mentions, a legend, a search box, click to expand."""
    settings = _store_settings(stores)
    if chunks or doc:
        from kgbuild.explore import view_index

        summary = _run(lambda: view_index(settings, html_file, entity_key=entity, hops=hops, include_chunks=chunks,
                                          max_nodes=max_nodes or 2000, docs=doc))
        out.print(summary.describe(), highlight=False, markup=False)
        if summary.truncated:
            err.print(f"note: the view holds the {summary.nodes} highest-degree of {summary.total_nodes} nodes;"
                      " use --entity or a larger --max-nodes", highlight=False, markup=False)
        return
    from kgbuild.explore import map_index

    summary = _run(lambda: map_index(settings, html_file, entity_key=entity, hops=hops, level=level,
                                     top_communities=communities, max_nodes=max_nodes, labels=labels, colour_by=colour))
    out.print(summary.describe(), highlight=False, markup=False, soft_wrap=True)
    if summary.note:
        err.print(f"note: {summary.note}", highlight=False, markup=False)


EntityName = Annotated[str, typer.Argument(metavar="TYPE:NAME", help="An entity: its key, its name or one of its aliases.")]


@entities_app.command("show")
@_store_options
def entities_show(name: EntityName, as_json: AsJson = False, *, stores: StoreFlags) -> None:
    """An entity's name, key, aliases with their counts, why each joined (rule, evidence, documents), and its documents."""
    settings = _store_settings(stores)
    from kgbuild.entities import show_entity

    report = _run(lambda: show_entity(name, settings))
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    e = report.entity
    lines = [f"{e.key}  {e.name}"]
    if report.matched == "alias":
        lines.append(f"  (found as a name of this entity: {name})")
    elif report.matched == "merge":
        lines.append(f"  (found through a merge of {report.overrides_file}: {name})")
    documents = len(report.documents)
    lines += [
        f"  type      {e.type}",
        f"  id        {e.id}",
        f"  mentions  {e.mention_count} in {documents} document{'s' if documents != 1 else ''}",
        "  aliases   " + (", ".join(f"{alias} ({count})" for alias, count in
                                    sorted(e.alias_counts.items(), key=lambda item: (-item[1], item[0])))
                          or ", ".join(e.aliases)),  # a graph written before counts per alias were kept
        "  why each name joined (name, mentions, rule -> the name it joined, documents)",
    ]
    columns = [(r.alias, str(r.mentions), r.describe(), ", ".join(r.documents)) for r in report.reasons]
    widths = [max((len(row[i]) for row in columns), default=0) for i in range(3)]
    for alias, count, why, docs in columns:
        lines.append(f"    {alias.ljust(widths[0])}  {count.rjust(widths[1])}  {why.ljust(widths[2])}  {docs}")
    lines.append("  documents")
    width = max((len(d.path) for d in report.documents), default=0)
    for doc in report.documents:
        lines.append(f"    {doc.path.ljust(width)}  {doc.mentions} mention{'s' if doc.mentions != 1 else ''}")
    if report.pinned:
        lines.append(f"  pinned in {report.overrides_file}")
        lines += [f"    {pair}" for pair in report.pinned]
    for line in lines:
        out.print(line, highlight=False, markup=False, soft_wrap=True)


@entities_app.command("list")
@_store_options
def entities_list(
    entity_type: Optional[str] = typer.Option(None, "--type", help="Only entities of this type."),
    top: int = typer.Option(20, "--top", min=1, help="How many, most mentioned first."),
    as_json: AsJson = False,
    *,
    stores: StoreFlags,
) -> None:
    """Entities by mention count, with their aliases."""
    settings = _store_settings(stores)
    from kgbuild.entities import list_entities

    found = _run(lambda: list_entities(settings, entity_type=entity_type, top=top))
    if as_json:
        from dataclasses import asdict

        print(json.dumps([asdict(e) for e in found], ensure_ascii=False))
        return
    if not found:
        out.print(f"no entities{f' of type {entity_type}' if entity_type else ''}", highlight=False, markup=False)
        return
    width = max(len(e.key) for e in found)
    for e in found:
        others = [a for a in e.aliases if a != e.name]
        line = f"{e.mention_count:>6}  {e.key.ljust(width)}  {e.name}" + (f"  (also: {', '.join(others)})" if others else "")
        out.print(line, highlight=False, markup=False, soft_wrap=True)


def _pinned(kind: str, a: str, b: str, stores: StoreFlags) -> None:
    settings = _store_settings(stores)
    from kgbuild.entities import pin_merge, pin_split

    report = _run(lambda: (pin_merge if kind == "merge" else pin_split)(a, b, settings))
    what = f"merge {report.pair[0]} -> {report.pair[1]}" if kind == "merge" else f"never_merge {report.pair[0]} / {report.pair[1]}"
    note = " (in place of the opposite decision for the same pair)" if report.replaced else ""
    out.print(f"{report.path}: {what}{note}; the next `kgbuild ingest` applies it", highlight=False, markup=False,
              soft_wrap=True)


@entities_app.command("merge")
@_store_options
def entities_merge(a: EntityName, b: EntityName, *, stores: StoreFlags) -> None:
    """Pin a merge: what resolves to A joins B (added to <out>/resolution.yaml; its comments are not kept)."""
    _pinned("merge", a, b, stores)


@entities_app.command("split")
@_store_options
def entities_split(a: EntityName, b: EntityName, *, stores: StoreFlags) -> None:
    """Pin a split: A's mentions never join B's entity (added to <out>/resolution.yaml as never_merge)."""
    _pinned("never_merge", a, b, stores)


def _labels(labels: dict[str, dict[str, int]]) -> str:
    return "; ".join(", ".join(f"{label} {n}" for label, n in counts.items()) for counts in labels.values())


@communities_app.callback(invoke_without_command=True)
@_store_options
def communities_list(
    ctx: typer.Context,
    level: Optional[int] = typer.Option(None, "--level", help="Only this level (0 is the coarsest; default: all)."),
    top: int = typer.Option(50, "--top", min=1, help="How many, largest first within each level."),
    as_json: AsJson = False,
    *,
    stores: StoreFlags,
) -> None:
    """List the communities: id, title, size, top entities, key terms, labels of their documents."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = stores
        return
    settings = _store_settings(stores)
    from kgbuild.communities import load_communities

    found = _run(lambda: load_communities(settings))
    chosen = found.at_level(_run(lambda: found.check_level(level)))
    if as_json:
        print(json.dumps([c.to_dict() for c in chosen], ensure_ascii=False))
        return
    if not chosen:
        out.print("no communities (no entity shares a chunk or a relation with another)", highlight=False)
        return
    table = Table(title=f"communities of {settings.out_dir}" + (f", level {level}" if level is not None else ""),
                  title_justify="left")
    for name, justify in (("id", "left"), ("lvl", "right"), ("title", "left"), ("size", "right"), ("top entities", "left"),
                          ("top terms", "left"), ("labels", "left")):
        table.add_column(name, justify=justify, overflow="fold", no_wrap=name in ("id", "lvl", "size"))  # type: ignore[arg-type]
    shown: dict[int, int] = {}
    for c in chosen:
        shown[c.level] = shown.get(c.level, 0) + 1
        if shown[c.level] > top:
            continue
        table.add_row(c.id, str(c.level), escape(c.title), str(c.size), escape(", ".join(e.name for e in c.top_entities[:4])),
                      escape(", ".join(c.top_terms[:4])), escape(_labels(c.labels)))
    out.print(table)
    hidden = sum(max(0, n - top) for n in shown.values())
    if hidden:
        out.print(f"({hidden} smaller communities not shown: --top N, --level N or --json)", highlight=False)


@communities_app.command("show")
@_store_options
def communities_show(
    ctx: typer.Context,
    community_id: str = typer.Argument(..., metavar="ID", help="A community id from `kgbuild communities`."),
    as_json: AsJson = False,
    *,
    stores: StoreFlags,
) -> None:
    """One community: its title, entities, key terms, labels, representative chunks, documents, parent and children."""
    given = ctx.obj or {}  # store options given before `show` (kgbuild communities --out DIR show ID)
    settings = _store_settings({k: v if v is not None else given.get(k) for k, v in stores.items()})
    from kgbuild.communities import load_communities

    c = _run(lambda: load_communities(settings).get(community_id))
    if as_json:
        print(json.dumps(c.to_dict(), ensure_ascii=False))
        return
    lines = [f"{c.id}  {c.title}", f"  level     {c.level}", f"  size      {c.size} entities, {c.chunk_count} chunks,"
             f" {len(c.documents)} documents", f"  parent    {c.parent or '-'}", f"  children  {', '.join(c.children) or '-'}",
             "  top entities"]
    lines += [f"    {e.type}:{e.name}  ({e.weight:.3f})" for e in c.top_entities]
    lines.append(f"  top terms  {', '.join(c.top_terms)}")
    if c.labels:
        lines.append(f"  labels     {_labels(c.labels)}")
    lines.append("  representative chunks")
    for chunk in c.chunks:
        lines.append(f"    {chunk.path} ({chunk.chunk_id.rsplit(':', 1)[-1]}): {chunk.text[:200]}")
    lines.append("  documents")
    lines += [f"    {path or doc_id}" for doc_id, path in c.documents[:20]]
    if len(c.documents) > 20:
        lines.append(f"    ... and {len(c.documents) - 20} more (--json lists them all)")
    for line in lines:
        out.print(line, highlight=False, markup=False, soft_wrap=True)


# -- eval, train, labels (kgbuild.train) -------------------------------------------------------------------------

labels_app = typer.Typer(no_args_is_help=True, help="Labelled data: convert from annotation tools, check, export the index's.")
app.add_typer(labels_app, name="labels")
LabelSchema = Annotated[str, typer.Option("--schema", help="Schema YAML file or bundled name (default business-news).")]
Device = Annotated[str, typer.Option("--device", help="cpu, cuda or auto.")]


def _example_progress(total: int, what: str) -> Any:
    return Progress(SpinnerColumn(), TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=True)


@app.command("eval")
def eval_command(
    gold: Path = typer.Argument(..., help="Labelled examples: gliner2 JSONL (kgbuild labels convert makes it from other formats)."),
    schema: LabelSchema = "business-news",
    model: Optional[str] = typer.Option(None, "--model", help="GLiNER2 hub id or local checkpoint directory."),
    adapter: Adapter = None,
    relation_decoding: RelationDecoding = None,
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Confidence threshold, overrides the schema's."),
    device: Device = "auto",
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Texts per model forward pass."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Only the first N examples."),
    top_errors: int = typer.Option(10, "--errors", min=0, help="How many of the commonest errors to list."),
    as_json: AsJson = False,
) -> None:
    """Precision, recall and F1 of a model on labelled examples: entities, relations, classifications."""
    from kgbuild.settings import DEFAULT_MODEL
    from kgbuild.train.evaluate import evaluate
    from kgbuild.train.gold import load_gold
    from kgbuild.schema import load_schema

    loaded = _run(lambda: load_schema(schema).with_threshold(threshold))
    examples = _run(lambda: load_gold(gold, loaded, limit=limit))  # checked before any model loads
    run = functools.partial(evaluate, examples, loaded, model or os.environ.get("KGBUILD_MODEL") or DEFAULT_MODEL,
                            adapter=adapter, relation_decoding=relation_decoding, device=device, batch_size=batch_size)
    if not as_json and err.is_terminal:
        with _example_progress(len(examples), "evaluating") as progress:
            task = progress.add_task("examples", total=len(examples))
            report = _run(lambda: run(on_done=lambda n: progress.advance(task, n)))
    else:
        report = _run(run)
    report.source = str(gold)
    if as_json:
        print(json.dumps(report.to_dict(top_errors), ensure_ascii=False))
        return
    from kgbuild.train.tables import errors_table, per_label_table, summary_table

    out.print(summary_table(report))
    out.print(per_label_table(report.scores))
    errors = errors_table(report.scores, top_errors)
    if errors is not None and top_errors:
        out.print(errors)
    out.print(f"{report.scores.examples} examples in {report.seconds:.1f} s ({report.examples_per_second:.2f} examples/s)",
              highlight=False)
    for failure in report.failed:
        err.print(Text.assemble(("warning: ", "bold yellow"), f"the model failed on {failure}"), highlight=False)


@app.command("train")
def train_command(
    data: Path = typer.Argument(..., help="Labelled examples: gliner2 JSONL, checked against the schema first."),
    schema: LabelSchema = "business-news",
    base: str = typer.Option(..., "--base", help="The GLiNER2 checkpoint to start from (hub id or directory)."),
    out_dir: Path = typer.Option(..., "--out", help="A new folder for the result: a checkpoint, or with --lora an adapter."),
    lora: bool = typer.Option(False, "--lora", help="Train a LoRA adapter (a few MB) instead of the whole model."),
    epochs: int = typer.Option(3, "--epochs", min=1, help="Passes over the training examples (at most)."),
    eval_split: float = typer.Option(0.1, "--eval-split", min=0.0, max=0.9,
                                     help="Share held out for validation loss, early stopping and the before/after table."),
    device: Device = "auto",
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Examples per training step."),
    learning_rate: Optional[float] = typer.Option(None, "--learning-rate", help="Task heads (and LoRA) learning rate (default 5e-4)."),
    lora_rank: int = typer.Option(8, "--lora-rank", min=1, help="LoRA rank."),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1, help="Stop after this many steps."),
    patience: int = typer.Option(2, "--patience", min=1, help="Epochs without a better validation loss before stopping."),
    compare: bool = typer.Option(True, "--compare/--no-compare", help="Evaluate the base and the result (before/after table)."),
    as_json: AsJson = False,
) -> None:
    """Fine-tune a GLiNER2 checkpoint on labelled examples (full, or a LoRA adapter)."""
    from kgbuild.train.finetune import train

    run = functools.partial(train, data, schema, base, out_dir, lora=lora, epochs=epochs, eval_split=eval_split,
                            device=device, batch_size=batch_size, learning_rate=learning_rate, lora_rank=lora_rank,
                            max_steps=max_steps, patience=patience, compare=compare)
    if not as_json and err.is_terminal:
        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("steps · loss {task.fields[loss]} · val {task.fields[val]}"), TimeElapsedColumn(),
                   TextColumn("ETA"), TimeRemainingColumn()]
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task("loading model", total=None, loss="-", val="-")

            def on_step(p: Any) -> None:
                progress.update(task, description="training", total=p.total_steps or None, completed=p.step,
                                loss=f"{p.loss:.3f}", val="-" if p.eval_loss is None else f"{p.eval_loss:.3f}")

            report = _run(lambda: run(on_step=on_step, on_phase=lambda phase: progress.update(task, description=phase)))
    else:
        report = _run(run)
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    kind = f"LoRA adapter ({report.size_mb:.1f} MB)" if report.kind == "lora" else f"checkpoint ({report.size_mb:.0f} MB)"
    first = report.losses[0][1] if report.losses else float("nan")
    last = report.losses[-1][1] if report.losses else float("nan")
    out.print(f"trained {report.steps} steps ({report.epochs} epochs{', stopped early' if report.stopped_early else ''})"
              f" on {report.train_examples} examples in {report.seconds:.1f} s ({report.examples_per_second:.2f} examples/s);"
              f" loss {first:.3f} -> {last:.3f}"
              + (f", best validation loss {report.best_eval_loss:.3f}" if report.best_eval_loss is not None else ""),
              highlight=False, soft_wrap=True)
    if report.before is not None and report.after is not None:
        from kgbuild.train.tables import before_after_table

        out.print(before_after_table(report.before, report.after, report.compared_on))
    use = (f"--model {report.base} --adapter {report.out_dir}" if report.kind == "lora" else f"--model {report.out_dir}")
    out.print(f"{kind} in {report.out_dir}; use it with: kgbuild ingest PATH {use}", highlight=False, soft_wrap=True)


@labels_app.command("export")
def labels_export(
    out_file: Path = typer.Option(..., "--out", help="The JSONL file to write (gliner2 training format)."),
    index_dir: Optional[Path] = typer.Option(None, "--index", help="Index directory (default ./.kgbuild, or KGBUILD_OUT_DIR)."),
    doc: Docs = [],
    per_chunk: bool = typer.Option(False, "--per-chunk", help="One record per chunk instead of per document."),
    as_json: AsJson = False,
) -> None:
    """Write what the index extracted (spans, types, relations, classes) as labelled examples to correct and train on."""
    settings = _settings(out_dir=index_dir)
    from kgbuild.train.export import export_labels

    report = _run(lambda: export_labels(settings, out_file, docs=doc, per_chunk=per_chunk))
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    out.print(f"{out_file}: {report.records} records from {report.documents} documents, {report.entities} entity spans,"
              f" {report.relations} relations", highlight=False, markup=False, soft_wrap=True)
    if report.missing:
        err.print(f"note: {len(report.missing)} document(s) have no cached extraction (run `kgbuild ingest` on them again):"
                  f" {', '.join(report.missing[:5])}", highlight=False, markup=False, soft_wrap=True)


@labels_app.command("convert")
def labels_convert(
    source: Path = typer.Argument(..., help="An export of an annotation tool, or a CoNLL / Re-DocRED file."),
    fmt: str = typer.Option(..., "--from", metavar="labelstudio|doccano|conll|redocred", help="The format of SOURCE."),
    out_file: Path = typer.Option(..., "--out", help="The JSONL file to write (gliner2 training format)."),
    schema: Optional[str] = typer.Option(None, "--schema", help="Check every record against this schema first."),
    label_map: list[str] = typer.Option([], "--map", metavar="FROM=TO", help="Rename a label, e.g. PER=PERSON (repeatable)."),
    text_field: str = typer.Option("text", "--text-field", help="Label Studio / doccano: the field holding the text."),
    task: Optional[str] = typer.Option(None, "--task", help="The classification task that document labels belong to."),
) -> None:
    """Convert labelled data from Label Studio, doccano, CoNLL BIO or Re-DocRED into gliner2's training format."""
    from kgbuild.schema import load_schema
    from kgbuild.train.convert import convert_labels, parse_label_map

    mapping = _run(lambda: parse_label_map(label_map))
    loaded = _run(lambda: load_schema(schema)) if schema else None
    count = _run(lambda: convert_labels(source, fmt, out_file, schema=loaded, label_map=mapping, text_field=text_field,
                                        classification_task=task))
    out.print(f"{out_file}: {count} records from {source} ({fmt})", highlight=False, markup=False, soft_wrap=True)


@labels_app.command("validate")
def labels_validate(
    data: Path = typer.Argument(..., help="Labelled examples: gliner2 JSONL."),
    schema: LabelSchema = "business-news",
) -> None:
    """Check labelled data against a schema: one line per problem, naming the line and the field."""
    from kgbuild.schema import load_schema
    from kgbuild.train.gold import load_gold

    loaded = _run(lambda: load_schema(schema))
    examples = _run(lambda: load_gold(data, loaded))
    entities = sum(len(e.entities) for e in examples)
    relations = sum(len(e.relations) for e in examples)
    classes = sum(len(e.classifications) for e in examples)
    out.print(f"{data}: {len(examples)} valid examples for schema '{loaded.name}': {entities} entity spans,"
              f" {relations} relations, {classes} classifications", highlight=False, markup=False, soft_wrap=True)


class _ChunkNames:
    """A chunk on a graph path by its document's path (the retrieval folder's chunk table), else as given."""

    def __init__(self, settings: Any):
        from kgbuild.retrieve.chunk_table import ChunkTable
        from kgbuild.retrieve.graph_matrix import retrieval_dir

        try:
            self._table = ChunkTable.open(retrieval_dir(settings.out_dir))
        except (OSError, ValueError):
            self._table = None

    def name(self, step: str) -> str:
        if self._table is None or step not in self._table:
            return step
        return str(self._table.read(step).get("path") or step)


def main() -> None:
    # the library's own progress bar is the only one: silence the model loaders' bars
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
