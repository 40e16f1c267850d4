"""Graph channel latency: open time and p50/p95 per channel of a held ``HybridRetriever`` at 10k and 100k chunks.

    python -m bench.graph_latency [--sizes 10000 100000] [--queries 200] [--work DIR] [--no-write]
    python -m bench.graph_latency --query-worker INDEX_DIR QUERIES   # one measured retriever; prints JSON

For each size, a folder of Wikipedia passages (``bench.scale.build_corpus``) is ingested with the fake
models of bench/fakes.py (``PatternExtractor``: about 18 mentions per chunk; ``HashEmbedder``), which
also stores the retrieval graph (``<out>/retrieval/``). Then a fresh process opens a ``HybridRetriever``
(all three channels; the query embedder is the hash embedder, so no model time is in the figures),
runs one warm-up query, and times ``QUERIES`` queries: the first twelve words of passages spread over the
corpus, so each names a few entities. Per query it records the time of each channel
(``HybridRetriever.timings``: vector = query embedding + search, graph = seeds + PPR + explanations,
bm25) and of the whole ``retrieve``. Targets (issue 15): graph p50 <= 20 ms and hybrid p50 <= 60 ms at
10k chunks, hybrid p50 <= 150 ms at 100k chunks, open <= 3 s at 100k. Writes BENCHMARKS.md section
"graph-latency".
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, git_revision, machine, write_section

SIZES = (10_000, 100_000)
UPDATE_DOCUMENTS = 20  # documents the second ingest adds (the retrieval graph's update)
TARGETS = {10_000: {"graph": 20.0, "hybrid": 60.0}, 100_000: {"hybrid": 150.0, "open_s": 3.0}}


def build_index(size: int, work: Path) -> dict[str, Any]:
    """Corpus + ingest with the fake models; reuses an index already built in ``work``."""
    from bench.fakes import HashEmbedder, PatternExtractor
    from bench.scale import build_corpus
    from kgbuild.chunk import TokenChunker
    from kgbuild.pipeline import ingest
    from kgbuild.schema import load_schema
    from kgbuild.settings import Settings

    stamp = work / "built.json"
    if stamp.exists():
        return json.loads(stamp.read_text())
    schema = load_schema("business-news")
    extractor, embedder = PatternExtractor(schema), HashEmbedder()
    settings = Settings(out_dir=work / "index")
    budget = min(settings.chunk_size, extractor.max_text_tokens())
    chunker = TokenChunker(extractor.token_counter(), budget, min(settings.chunk_overlap, budget // 2))
    if not (work / "corpus").exists():
        build_corpus(work / "corpus", size, chunker)
    started = time.perf_counter()
    report = ingest(work / "corpus", settings, extractor=extractor, embedder=embedder)
    meta = json.loads((work / "index" / "retrieval" / "meta.json").read_text())
    built = {"chunks": report.totals.chunks, "entities": report.totals.entities, "relations": report.totals.relations,
             "ingest_s": round(time.perf_counter() - started, 1), "retrieval_graph_s": meta["built_s"]}
    built.update(add_documents(work, settings, extractor, embedder))
    stamp.write_text(json.dumps(built))
    return built


def add_documents(work: Path, settings: Any, extractor: Any, embedder: Any, count: int = UPDATE_DOCUMENTS) -> dict[str, Any]:
    """A second ingest that adds ``count`` documents (copies of the first passages under new ids): the retrieval
    graph is then updated (``update_retrieval_graph``), not built again. Returns its time and the run's."""
    from kgbuild.pipeline import ingest

    first = sorted((work / "corpus").glob("*.jsonl"))[0]
    with open(first, encoding="utf-8") as fh:
        records = [json.loads(next(fh)) for _ in range(count)]
    with open(work / "corpus" / "zz-added.jsonl", "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps({**r, "id": f"added-{r['id']}"}) + "\n")
    started = time.perf_counter()
    report = ingest(work / "corpus", settings, extractor=extractor, embedder=embedder)
    meta = json.loads((work / "index" / "retrieval" / "meta.json").read_text())
    return {"added_documents": report.documents_read, "added_ingest_s": round(time.perf_counter() - started, 1),
            "retrieval_update_s": meta["built_s"], "updated": bool(meta.get("updated"))}


def queries_of(index_dir: Path, count: int) -> list[str]:
    corpus = index_dir.parent / "corpus"
    texts: list[str] = []
    for path in sorted(corpus.glob("*.jsonl")):
        with open(path, encoding="utf-8") as fh:
            texts.extend(json.loads(line)["text"] for line in fh)
    step = max(1, len(texts) // count)
    return [" ".join(t.split()[:12]) + "?" for t in texts[::step][:count]]


def query_worker(index_dir: Path, count: int) -> dict[str, Any]:
    """Open a retriever (timed), one warm-up query, then ``count`` timed queries."""
    import numpy as np

    from bench.fakes import HashEmbedder
    from kgbuild.retrieve.hybrid import HybridRetriever
    from kgbuild.settings import Settings

    questions = queries_of(index_dir, count)
    started = time.perf_counter()
    retriever = HybridRetriever(Settings(out_dir=index_dir), embedder=HashEmbedder()).open()
    open_s = time.perf_counter() - started
    graph = retriever.graph_channel.graph
    retriever.retrieve(questions[0], k=10)
    per: dict[str, list[float]] = {"vector": [], "graph": [], "bm25": [], "hybrid": []}
    for q in questions:
        started = time.perf_counter()
        retriever.retrieve(q, k=10)
        per["hybrid"].append(1000 * (time.perf_counter() - started))
        for channel in ("vector", "graph", "bm25"):
            per[channel].append(1000 * retriever.timings.get(channel, 0.0))
    retriever.close()
    nnz = int(retriever.graph_channel.ppr.adjacency.nnz)
    return {"open_s": round(open_s, 2), "queries": len(questions), "graph_nodes": len(graph.chunk_ids) + len(graph.entities),
            "graph_edges": nnz // 2,
            "ms": {c: {"p50": round(float(np.percentile(v, 50)), 1), "p95": round(float(np.percentile(v, 95)), 1)}
                   for c, v in per.items()}}


def measure(size: int, work: Path, count: int) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    built = build_index(size, work)
    done = subprocess.run([sys.executable, "-m", "bench.graph_latency", "--query-worker", str(work / "index"), str(count)],
                          cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return {"size": size, **built, **json.loads(done.stdout.strip().splitlines()[-1])}


def render(results: list[dict[str, Any]], command: str) -> str:
    rows = []
    for r in results:
        ms = r["ms"]
        update = f"{r['retrieval_update_s']:.1f}" if r.get("updated") else "(built)"
        rows.append(f"| {r['chunks']:,} | {r['entities']:,} | {r['graph_edges']:,} | {r['retrieval_graph_s']:.1f} | {update} |"
                    f" {r['open_s']:.2f} | {ms['graph']['p50']:.1f} / {ms['graph']['p95']:.1f} |"
                    f" {ms['vector']['p50']:.1f} / {ms['vector']['p95']:.1f} | {ms['bm25']['p50']:.1f} / {ms['bm25']['p95']:.1f} |"
                    f" {ms['hybrid']['p50']:.1f} / {ms['hybrid']['p95']:.1f} |")
    targets = []
    for r in results:
        for what, limit in TARGETS.get(r["size"], {}).items():
            value = r["open_s"] if what == "open_s" else r["ms"][what]["p50"]
            label = "open" if what == "open_s" else f"{what} p50"
            unit = "s" if what == "open_s" else "ms"
            targets.append(f"- {label} ≤ {limit:g} {unit} at {r['size']:,} chunks: {value:g} {unit}, "
                           f"**{'met' if value <= limit else 'not met'}**")
    return "\n".join([
        "## Graph channel latency (held retriever, fake models)",
        "",
        f"Command: `{command}` (git {git_revision()}, {time.strftime('%Y-%m-%d')})  ",
        f"Machine: {machine()}  ",
        "Index: Wikipedia passages ingested with `PatternExtractor` + `HashEmbedder` (bench/fakes.py), NetworkX graph,"
        " qdrant-edge vectors. A fresh process opens one `HybridRetriever` (all channels; open = state, vector store,"
        " payloads, BM25 index, retrieval graph and seed automaton), then times queries (the first twelve words of"
        " passages across the corpus). Graph = seeds + PPR + explanations of the hits; vector = query embedding (hash)"
        " + search; hybrid = the whole `retrieve(k=10)`.",
        "",
        f"| chunks | entities | graph edges | graph build s (ingest) | graph update s (+{UPDATE_DOCUMENTS} documents) | open s |"
        " graph ms p50 / p95 | vector ms p50 / p95 |"
        " bm25 ms p50 / p95 | hybrid ms p50 / p95 |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        *targets,
        "",
        "Notes: opening loads the qdrant-edge shard in a thread while the retrieval folder (graph, transition, seed"
        " automaton, chunk table, memory-mapped BM25) is read. 'graph build s' is the build at the end of the first"
        " ingest (export of the payloads, entities and relations, matrices, title links, BM25 tokens and index,"
        " automaton, transition); 'graph update s' is the end of a second ingest that adds"
        f" {UPDATE_DOCUMENTS} documents: the stored graph is updated with what the run wrote"
        " (`update_retrieval_graph`: the other chunks keep their rows, mention pairs, plain words and BM25 tokens;"
        " the matrices, title links, BM25 index, automaton and transition are assembled again from them).",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--work", type=Path, help="keep (and reuse) the indexes here")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--query-worker", nargs=2, metavar=("INDEX_DIR", "QUERIES"), help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.query_worker:
        print(json.dumps(query_worker(Path(opts.query_worker[0]), int(opts.query_worker[1]))))
        return
    work = opts.work or Path(tempfile.mkdtemp(prefix="kgbuild-graph-latency-"))
    results = [measure(size, work / str(size), opts.queries) for size in opts.sizes]
    command = "python -m bench.graph_latency" + ("" if tuple(opts.sizes) == SIZES else " --sizes " + " ".join(map(str, opts.sizes)))
    body = render(results, command)
    print(body)
    if not opts.no_write:
        write_section("graph-latency", body)


if __name__ == "__main__":
    main()
