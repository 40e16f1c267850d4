"""P7 memory and P8 scaling: ingests of 1k, 3k and 10k chunks with fake models, and reconciling 1M mentions.

    python -m bench.scale [--quick] [--sizes N ...]   # prints the sections' Markdown (--quick: 1k and 3k only)
    python -m bench.scale --worker N WORKDIR [--graph neo4j] [--models demo]   # one measured ingest; prints JSON

Each size runs in a fresh process, so its peak RSS is that ingest's alone. The process builds a
folder of JSONL files (500 documents each, a document being 4 to 12 Wikipedia passages of
../shared/corpora/wiki-passages.jsonl, cycled with new ids when more are needed) until the documents
hold N chunks, counted with the chunker the pipeline uses. It ingests one of the documents into a
fresh index twice (imports and lazy loads, then the fixed cost of an ingest), then the folder, timed:
the real pipeline, default settings, the NetworkX graph and qdrant-edge vectors, with
``PatternExtractor`` and ``HashEmbedder`` (bench/fakes.py) in place of the models. The reconcile
figure runs in this process, on synthetic mentions built before the clock starts.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from bench.common import REPO, SHARED, Section, peak_rss_mib
from kgbuild.schema import ExtractionSchema
from kgbuild.types import Mention, RelationMention

CORPUS = SHARED / "corpora" / "wiki-passages.jsonl"
SIZES = (1_000, 3_000, 10_000)
QUICK_SIZES = (1_000, 3_000)
DOCUMENTS_PER_FILE = 500
PASSAGES_PER_DOCUMENT = (4, 12)  # cycled through, so documents run from about 1 to 5 chunks

RSS_LIMIT_MIB = 2.5e9 / 2**20  # P7: 2.5 GB at 10k chunks
FLAT_LIMIT = 1.25  # P7: peak RSS at the largest size over the smallest
SCALING_LIMIT = 1.15  # P8: max / min seconds per chunk

RECONCILE_MENTIONS = 1_000_000
RECONCILE_RELATIONS = 200_000
RECONCILE_DOCUMENTS = 20_000
RECONCILE_NAMES = 100_000
RECONCILE_LIMIT_S = 60.0


# -- one ingest, in a worker process ---------------------------------------------------------


def read_passages(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8") as fh:
        return [(record["title"], record["text"]) for record in map(json.loads, fh)]


def generate_documents(passages: list[tuple[str, str]]) -> Iterator[dict[str, str]]:
    """Endless JSONL records: consecutive passages joined as paragraphs, ids d000000, d000001, ..."""
    low, high = PASSAGES_PER_DOCUMENT
    cursor = n = 0
    while True:
        count = low + n % (high - low + 1)
        picked = [passages[(cursor + k) % len(passages)] for k in range(count)]
        cursor += count
        yield {"id": f"d{n:06d}", "title": picked[0][0], "text": "\n\n".join(text for _, text in picked)}
        n += 1


def build_corpus(corpus_dir: Path, target_chunks: int, chunker: Any) -> tuple[int, int]:
    """Write documents until they hold ``target_chunks`` chunks; returns (documents, chunks)."""
    from kgbuild.types import Document

    corpus_dir.mkdir(parents=True)
    documents = chunks = 0
    out = None
    for record in generate_documents(read_passages(CORPUS)):
        if chunks >= target_chunks:
            break
        if documents % DOCUMENTS_PER_FILE == 0:
            if out is not None:
                out.close()
            out = open(corpus_dir / f"part-{documents // DOCUMENTS_PER_FILE:04d}.jsonl", "w", encoding="utf-8")
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        chunks += len(chunker.chunk(Document(record["id"], "", "", record["title"], record["text"], 0.0, "")))
        documents += 1
    if out is not None:
        out.close()
    return documents, chunks


def resident_split_mib() -> dict[str, float]:
    """Resident memory by kind after the ingest (Linux): anonymous (heap) vs file-backed (memory-mapped files)."""
    split: dict[str, float] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "RssShmem"):
                split[key] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return split


def current_rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def clear_neo4j(settings: Any) -> None:
    """An empty database before each size, so every run writes into the same state."""
    from neo4j import GraphDatabase

    with GraphDatabase.driver(settings.neo4j_uri, auth=(settings.neo4j_user, settings.neo4j_password)) as driver:
        with driver.session(database=settings.neo4j_database) as session:  # auto-commit: IN TRANSACTIONS needs it
            session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()


def run_worker(target_chunks: int, workdir: Path, graph: str = "networkx", models: str = "fake") -> dict[str, Any]:
    """Build a corpus of ``target_chunks`` chunks under ``workdir`` and ingest it, timed. ``models``: "fake"
    (``PatternExtractor``, ``HashEmbedder``) or "demo" (bench.scale_out's: the demo checkpoint and MiniLM, on CPU)."""
    from bench.fakes import HashEmbedder, PatternExtractor
    from kgbuild.chunk import TokenChunker
    from kgbuild.pipeline import ingest
    from kgbuild.schema import load_schema
    from kgbuild.settings import Settings

    settings = Settings(out_dir=workdir / "index", graph=graph)
    if models == "demo":
        from bench.scale_out import _models

        extractor, embedder = _models(settings)
    else:
        extractor, embedder = PatternExtractor(load_schema("business-news")), HashEmbedder()
    # the pipeline's chunker: the extractor's window, the overlap capped at half of it
    budget = min(settings.chunk_size, extractor.max_text_tokens())
    chunker = TokenChunker(extractor.token_counter(), budget, min(settings.chunk_overlap, budget // 2),
                           headers=settings.title_header)

    started = time.perf_counter()
    documents, counted_chunks = build_corpus(workdir / "corpus", target_chunks, chunker)
    build_s = time.perf_counter() - started

    # one document, twice into a fresh index: first for the imports and lazy loads, then timed for the fixed cost
    one_document = workdir / "one-document"
    one_document.mkdir()
    with open(workdir / "corpus" / "part-0000.jsonl", encoding="utf-8") as fh:
        (one_document / "one.jsonl").write_text(fh.readline(), encoding="utf-8")
    one_document_s = 0.0
    for name in ("warm-up-index", "fixed-cost-index"):
        started = time.perf_counter()
        ingest(one_document, settings.model_copy(update={"out_dir": workdir / name}), extractor=extractor, embedder=embedder)
        one_document_s = time.perf_counter() - started

    if graph == "neo4j":
        clear_neo4j(settings)
    gc.collect()
    rss_before = current_rss_mib()
    started, cpu_started = time.perf_counter(), time.process_time()
    report = ingest(workdir / "corpus", settings, extractor=extractor, embedder=embedder)
    ingest_s, ingest_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    resident = resident_split_mib()
    if graph == "neo4j":
        clear_neo4j(settings)  # leave the shared development server as it was found
    return {
        "target_chunks": target_chunks,
        "documents": report.documents_read,
        "files": report.files_seen,
        "chunks": report.chunks,
        "counted_chunks": counted_chunks,
        "mentions": report.mentions,
        "entities": report.totals.entities,
        "relations": report.totals.relations,
        "vector_points": report.totals.vector_points,
        "skipped": len(report.skipped),
        "corpus_build_s": round(build_s, 3),
        "one_document_s": round(one_document_s, 3),
        "ingest_s": round(ingest_s, 3),
        "ingest_cpu_s": round(ingest_cpu_s, 3),  # all threads; less exposed than wall time to other load
        "rss_before_ingest_mib": round(rss_before, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "rss_anon_after_mib": resident.get("RssAnon"),  # heap: what the process itself holds
        "rss_file_after_mib": resident.get("RssFile"),  # mapped files (the vector store's segments and WAL): reclaimable
        "settings": {k: getattr(settings, k) for k in ("chunk_size", "chunk_overlap", "write_batch_chunks", "batch_size")},
        "chunk_tokens": budget,
        "graph": graph,
        "models": models,
    }


def measure_ingest(target_chunks: int, graph: str = "networkx", models: str = "fake") -> dict[str, Any]:
    """One worker process: its figures, or RuntimeError with its stderr."""
    with tempfile.TemporaryDirectory(prefix="kgbuild-scale-") as work:
        done = subprocess.run(
            [sys.executable, "-m", "bench.scale", "--worker", str(target_chunks), work, "--graph", graph, "--models", models],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
    if done.returncode != 0:
        raise RuntimeError(f"ingest of {target_chunks} chunks failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- reconciling a million mentions, in this process -----------------------------------------

# (type, share of the names); DATE and MONEY names look like dates and amounts
NAME_TYPES = (("COMPANY", 0.30), ("PERSON", 0.30), ("PRODUCT", 0.15), ("LOCATION", 0.15), ("DATE", 0.05), ("MONEY", 0.05))
_SYLLABLES = "ka lo mi ra ve sun tor an el is ber gen ha mar co pol ni tek vo lux den sa ri zen qua dor fi".split()
_MONTHS = "January February March April May June July August September October November December".split()


def synthetic_names(count: int, rng: Any) -> list[tuple[str, str]]:
    """``count`` distinct (type, name) pairs."""
    types = rng.choice(len(NAME_TYPES), size=count, p=[share for _, share in NAME_TYPES])
    seen: set[tuple[str, str]] = set()
    names: list[tuple[str, str]] = []
    for type_index in types:
        entity_type = NAME_TYPES[type_index][0]
        while True:
            if entity_type == "DATE":
                name = f"{rng.integers(1, 29)} {_MONTHS[rng.integers(12)]} {rng.integers(1950, 2030)}"
            elif entity_type == "MONEY":
                name = f"${rng.integers(1, 100_000):,} {('million', 'billion')[rng.integers(2)]}"
            else:
                name = " ".join(
                    "".join(_SYLLABLES[s] for s in rng.integers(len(_SYLLABLES), size=rng.integers(2, 4))).capitalize()
                    for _ in range(rng.integers(1, 4))
                )
            if (entity_type, name) not in seen:
                break
        seen.add((entity_type, name))
        names.append((entity_type, name))
    return names


def surface_form(entity_type: str, name: str, variant: float) -> str:
    """How a text writes the name: mostly as is, sometimes in capitals, with a company suffix, or after "the"."""
    if variant < 0.75 or entity_type in ("DATE", "MONEY"):
        return name
    if variant < 0.85:
        return name.upper()
    if variant < 0.95:
        return f"{name} Inc." if entity_type == "COMPANY" else name.lower()
    return f"the {name}"


def synthetic_mentions(
    schema: ExtractionSchema,
    count: int = RECONCILE_MENTIONS,
    relation_count: int = RECONCILE_RELATIONS,
    documents: int = RECONCILE_DOCUMENTS,
    names: int = RECONCILE_NAMES,
    seed: int = 7,
) -> tuple[list[Mention], list[RelationMention]]:
    """Mentions as the extract stage makes them: ``count`` over ``documents`` documents of 4 chunks.

    Names are drawn from a Zipf distribution (exponent 1) over ``names`` names in 6 types. One
    mention in 12 is the span before it with another type (the type vote), and each chunk starts
    with the span that ended the previous one (chunk overlap: the same span in two chunks).
    Relations join neighbouring spans of one chunk whose types the schema allows, ``relation_count``
    of them drawn evenly from all such pairs.
    """
    import numpy as np

    from kgbuild.ids import chunk_id, document_id, mention_id

    rng = np.random.default_rng(seed)
    vocabulary = synthetic_names(names, rng)
    zipf = 1.0 / np.arange(1, names + 1)
    picks = rng.choice(names, size=count, p=zipf / zipf.sum()).tolist()
    variants = rng.random(count).tolist()
    confidences = rng.uniform(0.5, 1.0, count).round(4).tolist()
    type_names = [t for t, _ in NAME_TYPES]
    per_document = count // documents
    per_chunk = -(-per_document // 4)

    mentions: list[Mention] = []
    previous = None
    cursor = 0
    for i in range(count):
        doc_index, j = divmod(i, per_document)
        if doc_index >= documents:  # the remainder goes to the last document
            doc_index, j = documents - 1, i - (documents - 1) * per_document
        doc_id = document_id(f"synthetic/{doc_index:05d}.txt")
        cid = chunk_id(doc_id, min(j // per_chunk, 3))
        if j == 0:
            cursor = 0
        if previous is not None and j > 0 and variants[i] < 1 / 12:  # the span before, with another type
            label = type_names[(type_names.index(previous.label) + 1) % len(type_names)]
            text, start, end = previous.text, previous.start, previous.end
        elif previous is not None and j > 0 and j % per_chunk == 0:  # the overlap: the previous chunk's last span
            label, text, start, end = previous.label, previous.text, previous.start, previous.end
        else:
            label, name = vocabulary[picks[i]]
            text = surface_form(label, name, variants[i])
            start, end = cursor, cursor + len(text)
            cursor = end + 1 + picks[i] % 40
        previous = Mention(mention_id(cid, label, start, end), doc_id, cid, label, text, start, end, confidences[i])
        mentions.append(previous)

    allowed: dict[tuple[str, str], list[str]] = {}
    for label, spec in schema.relations.items():
        for source in spec.source:
            for target in spec.target:
                allowed.setdefault((source, target), []).append(label)
    candidates = [
        (allowed[(head.label, tail.label)], head, tail)
        for head, tail in zip(mentions, mentions[1:])
        if head.chunk_id == tail.chunk_id and head.start != tail.start and (head.label, tail.label) in allowed
    ]
    chosen = np.sort(rng.choice(len(candidates), size=min(relation_count, len(candidates)), replace=False)).tolist()
    relations = []
    for k in chosen:
        labels, head, tail = candidates[k]
        relations.append(RelationMention(labels[k % len(labels)], head, tail, min(head.confidence, tail.confidence)))
    return mentions, relations


def measure_reconcile() -> dict[str, Any]:
    from kgbuild.memory import release_heap
    from kgbuild.reconcile import reconcile, reconcile_mentions
    from kgbuild.schema import load_schema

    schema = load_schema("business-news")
    started = time.perf_counter()
    mentions, relation_mentions = synthetic_mentions(schema)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    reconciliation, dropped = reconcile(mentions, relation_mentions, schema)
    seconds = time.perf_counter() - started
    entities, relations, dropped_count = len(reconciliation.entities), len(reconciliation.relations), sum(dropped.values())
    del reconciliation
    gc.collect()
    # the corpus-wide resolution (cross-document rule on), which the per-batch reconcile of ingest leaves out
    started = time.perf_counter()
    corpus_entities, _ = reconcile_mentions(mentions)
    corpus_seconds = time.perf_counter() - started
    figures = {
        "mentions": len(mentions),
        "relation_mentions": len(relation_mentions),
        "documents": len({m.doc_id for m in mentions}),
        "entities": entities,
        "relations": relations,
        "relations_dropped": dropped_count,
        "build_s": round(build_s, 2),
        "reconcile_s": round(seconds, 2),
        "corpus_entities": len(corpus_entities),
        "corpus_resolve_s": round(corpus_seconds, 2),
    }
    del mentions, relation_mentions, corpus_entities
    gc.collect()
    release_heap()
    return figures


# -- the sections ----------------------------------------------------------------------------


def run(quick: bool, sizes: tuple[int, ...] | None = None, graph: str = "networkx") -> list[Section]:
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    command = "python -m bench.scale" + (" --quick" if quick else "") + (f" --graph {graph}" if graph != "networkx" else "")
    p7 = Section("P7", "memory: peak RSS of an ingest as the corpus grows", command=command)
    p8 = Section("P8", "scaling: seconds per chunk as the corpus grows, and reconciling 1M mentions", command=command)
    if CORPUS.exists():
        _ingest_figures(p7, p8, [measure_ingest(size, graph) for size in sizes])
    else:
        p7.notes.append(f"skipped: corpus not at {CORPUS}")
        p8.notes.append(f"ingest sizes skipped: corpus not at {CORPUS}")
    _reconcile_figures(p8, measure_reconcile())
    return [p7, p8]


def _mib(value: float) -> str:
    return f"{value:,.0f} MiB"


def _ingest_figures(p7: Section, p8: Section, runs: list[dict[str, Any]]) -> None:
    first, last = runs[0], runs[-1]
    settings = first["settings"]
    sizes = ", ".join(f"{r['target_chunks']:,}" for r in runs)
    p7.setup = p8.setup = (
        f"Sizes {sizes} chunks, each ingested in a fresh process: JSONL files of {DOCUMENTS_PER_FILE} documents, each"
        f" {PASSAGES_PER_DOCUMENT[0]}–{PASSAGES_PER_DOCUMENT[1]} passages of wiki-passages.jsonl (cycled with new ids"
        " past its 6,119 passages). The real pipeline with default settings (chunks of"
        f" {first['chunk_tokens']} tokens, overlap {settings['chunk_overlap']}, writes every"
        f" {settings['write_batch_chunks']} chunks), {'Neo4j' if first.get('graph') == 'neo4j' else 'NetworkX'} graph,"
        " qdrant-edge vectors, and fake models"
        f" (bench/fakes.py): `PatternExtractor` (names, years, amounts; {last['mentions'] / last['chunks']:.0f}"
        " mentions per chunk) and `HashEmbedder` (384-dim). The ingest call alone is timed, after two one-document"
        " ingests into fresh indexes (imports, then the fixed cost of an ingest)."
    )
    p7.figures["runs"] = p8.figures["runs"] = runs

    # P7
    for r in runs:
        p7.row(
            f"peak RSS, {r['chunks']:,} chunks ({r['documents']:,} documents)",
            f"{_mib(r['peak_rss_mib'])} ({_mib(r['rss_before_ingest_mib'])} before the ingest; after it, heap"
            f" {_mib(r.get('rss_anon_after_mib') or 0)}, mapped files {_mib(r.get('rss_file_after_mib') or 0)})",
        )
    added_chunks = last["chunks"] - first["chunks"]
    growth = (last["peak_rss_mib"] - first["peak_rss_mib"]) / (added_chunks / 1000) if added_chunks else 0.0
    flat_ratio = last["peak_rss_mib"] / first["peak_rss_mib"]
    p7.row("growth, smallest to largest", f"{growth:+.1f} MiB per 1,000 chunks (×{flat_ratio:.2f})")
    p7.figures.update(growth_mib_per_1k_chunks=round(growth, 2), flat_ratio=round(flat_ratio, 3))
    at = f"{last['chunks']:,} chunks"
    limit = f"P7 peak RSS ≤ 2.5 GB ({_mib(RSS_LIMIT_MIB)}) at 10k chunks (fake models)"
    if last["target_chunks"] < SIZES[-1]:
        limit += f"; this quick run stops at {at}, the 10k figure comes from the full run `python -m bench.scale`"
    p7.target(limit, last["peak_rss_mib"] <= RSS_LIMIT_MIB)
    p7.target(
        f"P7 flat: peak RSS at the largest size ≤ {FLAT_LIMIT} × the smallest ({at} vs {first['chunks']:,}: ×{flat_ratio:.2f})",
        flat_ratio <= FLAT_LIMIT,
    )
    p7.notes.append(
        "Fake models: the real extraction and embedding models add their weights and working memory on top,"
        " a constant that does not grow with the corpus (reported with the model benchmarks)."
    )
    p7.notes.append(
        "What grows is the index held in the process, not the pipeline's batches (one write batch of"
        f" {settings['write_batch_chunks']} chunks at a time): the embedded NetworkX graph lives in memory (about"
        " 30 MiB per 1,000 chunks here); qdrant-edge's payload index (the keyword fields filtered queries use) is in"
        " memory, while the pages it writes through its mapped files are let go of after each write; and the end of"
        " a run holds per chunk its id, mention pairs and BM25 token ids, streaming the payloads from the vector"
        " store to disk. `python -m bench.scale --graph neo4j` moves the graph to the server;"
        " `python -m bench.memory_phases N` breaks a run down by phase (BENCHMARKS.md, scale-out)."
    )

    # P8
    rates = [r["ingest_s"] / r["chunks"] for r in runs]
    cpu_rates = [r["ingest_cpu_s"] / r["chunks"] for r in runs]
    for r, rate, cpu_rate in zip(runs, rates, cpu_rates):
        p8.row(
            f"ingest, {r['chunks']:,} chunks",
            f"{r['ingest_s']:.1f} s: {rate * 1000:.2f} ms/chunk, {1 / rate:,.0f} chunks/s (CPU {cpu_rate * 1000:.2f} ms/chunk)",
        )
    ratio = max(rates) / min(rates)
    p8.row("s/chunk, max / min", f"{ratio:.2f} (CPU time: {max(cpu_rates) / min(cpu_rates):.2f})")
    # what the chunks a larger run adds cost: free of fixed costs, it shows a per-chunk cost that grows
    marginal = [
        f"{(b['ingest_s'] - a['ingest_s']) / (b['chunks'] - a['chunks']) * 1000:.2f} ms/chunk"
        f" from {a['chunks']:,} to {b['chunks']:,}"
        for a, b in zip(runs, runs[1:])
    ]
    if marginal:
        p8.row("marginal cost (wall)", "; ".join(marginal))
    p8.row("fixed cost: one document into a fresh index", " / ".join(f"{r['one_document_s']:.2f} s" for r in runs))
    p8.figures["s_per_chunk_ratio"] = round(ratio, 3)
    p8.target(f"P8 s/chunk constant within 15% (max / min ≤ {SCALING_LIMIT})", ratio <= SCALING_LIMIT)
    mismatched = [r for r in runs if r["chunks"] != r["counted_chunks"] or r["skipped"]]
    if mismatched:
        p8.notes.append(
            "The pipeline ingested other chunk counts than the corpus builder counted: "
            + "; ".join(f"{r['counted_chunks']:,} counted, {r['chunks']:,} ingested, {r['skipped']} skipped" for r in mismatched)
        )


def _reconcile_figures(p8: Section, figures: dict[str, Any]) -> None:
    p8.figures["reconcile"] = figures
    seconds = figures["reconcile_s"]
    p8.row(
        f"reconcile {figures['mentions']:,} mentions + {figures['relation_mentions']:,} relation mentions",
        f"{seconds:.1f} s ({figures['mentions'] / seconds:,.0f} mentions/s)",
    )
    p8.row(
        "reconciled into",
        f"{figures['entities']:,} entities, {figures['relations']:,} relations"
        f" ({figures['relations_dropped']:,} relation mentions dropped by the re-check after the type vote)",
    )
    p8.row(
        f"resolve the same {figures['mentions']:,} mentions as one corpus (`reconcile_mentions`, cross-document rule on)",
        f"{figures['corpus_resolve_s']:.1f} s, {figures['corpus_entities']:,} entities",
    )
    p8.target(f"P8 reconcile {figures['mentions']:,} mentions < {RECONCILE_LIMIT_S:.0f} s", seconds < RECONCILE_LIMIT_S)
    p8.notes.append(
        f"Reconcile input: synthetic mentions over {figures['documents']:,} documents of 4 chunks, names drawn Zipf(1)"
        f" from {RECONCILE_NAMES:,} names in 6 types (about 1 in 4 written in another form: capitals, \"Inc.\", lower"
        " case, \"the\"), 1 in 12 a second type at the same span, the chunk overlap repeating a span; built in"
        f" {figures['build_s']:.0f} s before the clock starts; `kgbuild.reconcile.reconcile` timed alone, in one call."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"sizes {', '.join(map(str, QUICK_SIZES))} only")
    parser.add_argument("--sizes", type=int, nargs="+", help="chunk counts to ingest (default: 1000 3000 10000)")
    parser.add_argument("--graph", choices=["networkx", "neo4j"], default="networkx",
                        help="graph store (neo4j: the server from scripts/neo4j-dev.sh or NEO4J_*; its database is cleared)")
    parser.add_argument("--worker", nargs=2, metavar=("CHUNKS", "WORKDIR"), help=argparse.SUPPRESS)
    parser.add_argument("--models", choices=["fake", "demo"], default="fake",
                        help="with --worker: the fake models (default) or the demo checkpoint and MiniLM, on CPU")
    opts = parser.parse_args()
    if opts.worker:
        print(json.dumps(run_worker(int(opts.worker[0]), Path(opts.worker[1]), opts.graph, opts.models)))
        return
    for section in run(opts.quick, tuple(opts.sizes) if opts.sizes else None, opts.graph):
        print(section.markdown())


if __name__ == "__main__":
    main()
