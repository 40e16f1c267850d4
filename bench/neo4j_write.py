"""Neo4j graph sink: batched relationship writes vs one transaction per relationship, in one run.

    python -m bench.neo4j_write [--relationships 100000] [--entities 20000] [--single 2000] [--no-write]

Needs a Neo4j 5 server: NEO4J_URI (default bolt://127.0.0.1:7687), NEO4J_USER (neo4j),
NEO4J_PASSWORD (the dev password), NEO4J_DATABASE (neo4j); ``scripts/neo4j-dev.sh start``
gives one. **It clears that database** at the start and at the end.

What it does:

1. builds a realistic GraphBatch without a model: documents of chunks, each chunk
   mentioning a few entities (every entity at least once) and holding relations between
   them, each relation with its evidence (the same pair in two chunks is one relation with
   two pieces of evidence), until there are ``--relationships`` distinct relations;
2. writes it with ``Neo4jGraphSink.write`` (batches of ``--batch-size`` rows), timed end to
   end, and checks the node and relationship counts;
3. deletes the relation layer and writes it again through the sink's own relation path
   (``queries.merge_relations_tx``, one transaction per ``--batch-size`` rows, as ``write`` runs it),
   timed: the batched relationships/s;
4. deletes it again and writes the first ``--single`` relations with the same transaction
   function, one ``execute_write`` (one transaction) per relationship, timed; the rate is
   extrapolated to all relations;
5. checks the counts after 3 and 4, and writes the figures to BENCHMARKS.md ("neo4j-write").
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from typing import Any

from bench.common import git_revision, machine, write_section
from kgbuild.connectors.graph_records import evidence_record
from kgbuild.connectors.neo4j.queries import batches, merge_relations_tx
from kgbuild.connectors.neo4j.sink import Neo4jGraphSink
from kgbuild.connectors.neo4j.values import relation_type
from kgbuild.ids import chunk_id, content_hash, document_id, entity_id, mention_id, relation_id
from kgbuild.reconcile import normalize_name
from kgbuild.types import (
    STRUCTURAL_EDGES,
    Chunk,
    ChunkExtraction,
    Document,
    Entity,
    ExtractedDocument,
    GraphBatch,
    Mention,
    Relation,
    RelationEvidence,
)

DEV_PASSWORD = "kgbuild-dev-password"
TYPES = ("COMPANY", "PERSON", "PRODUCT", "LOCATION")
NAMES = {"COMPANY": "Company", "PERSON": "Person", "PRODUCT": "Product", "LOCATION": "Place"}
LABELS = {
    ("COMPANY", "COMPANY"): "COMPETES_WITH",
    ("PERSON", "COMPANY"): "WORKS_FOR",
    ("COMPANY", "PRODUCT"): "MANUFACTURES",
    ("COMPANY", "LOCATION"): "LOCATED_IN",
    ("PERSON", "LOCATION"): "LIVES_IN",
}
MENTIONS_PER_CHUNK = 6
RELATIONS_PER_CHUNK = 10
CHUNKS_PER_DOC = 5


def build_batch(n_relations: int, n_entities: int, seed: int = 7) -> GraphBatch:
    """Documents, chunks, mentions, entities and exactly ``n_relations`` distinct relations."""
    rng = random.Random(seed)
    names = [f"{NAMES[TYPES[i % len(TYPES)]]} {i:06d}" for i in range(n_entities)]
    types = [TYPES[i % len(TYPES)] for i in range(n_entities)]
    ids = [entity_id(t, normalize_name(n)) for t, n in zip(types, names)]
    mention_counts = [0] * n_entities
    mention_entity: dict[str, str] = {}
    relations: dict[tuple[str, int, int], list[RelationEvidence]] = {}
    documents: list[ExtractedDocument] = []
    fixed = MENTIONS_PER_CHUNK // 2  # the first few mentions of a chunk walk through every entity in turn
    c = 0
    while len(relations) < n_relations:
        path = f"bench/doc-{len(documents):06d}.txt"
        doc = document_id(path)
        chunk_rows: list[tuple[Chunk, list[Mention], list[tuple[int, int]]]] = []
        text_parts: list[str] = []
        offset = 0
        for position in range(CHUNKS_PER_DOC):
            picked = [(c * fixed + j) % n_entities for j in range(fixed)]
            while len(picked) < MENTIONS_PER_CHUNK:
                e = rng.randrange(n_entities)
                if e not in picked:
                    picked.append(e)
            c += 1
            cid = chunk_id(doc, position)
            pieces, mentions, cursor = [], [], offset
            for e in picked:
                start = cursor
                end = start + len(names[e])
                mention = Mention(mention_id(cid, types[e], start, end), doc, cid, types[e], names[e], start, end,
                                  round(0.6 + 0.4 * rng.random(), 6))
                mentions.append(mention)
                mention_entity[mention.id] = ids[e]
                mention_counts[e] += 1
                pieces.append(names[e])
                cursor = end + 2
            chunk_text = ", ".join(pieces) + ".\n"
            chunk = Chunk(cid, doc, position, offset, offset + len(chunk_text), chunk_text, len(chunk_text.split()))
            text_parts.append(chunk_text)
            offset += len(chunk_text)
            # relations among the chunk's entities
            pairs = [(a, b) for a in range(MENTIONS_PER_CHUNK) for b in range(MENTIONS_PER_CHUNK) if a != b]
            rng.shuffle(pairs)
            for a, b in pairs[:RELATIONS_PER_CHUNK]:
                ha, ta = picked[a], picked[b]
                label = LABELS.get((types[ha], types[ta]), "RELATED_TO")
                key = (label, ha, ta)
                if key not in relations and len(relations) >= n_relations:
                    continue
                h, t = mentions[a], mentions[b]
                relations.setdefault(key, []).append(
                    RelationEvidence(doc, cid, h.start, h.end, t.start, t.end, round(0.5 + 0.5 * rng.random(), 6))
                )
            chunk_rows.append((chunk, mentions, []))
        text = "".join(text_parts)
        document = Document(doc, path, path, path, text, 1_700_000_000.0, content_hash(path, text), {"format": "txt"})
        extractions = [ChunkExtraction(chunk=ch, mentions=ms) for ch, ms, _ in chunk_rows]
        documents.append(ExtractedDocument(document, [ch for ch, _, _ in chunk_rows], extractions, {}))
    entities = {
        ids[i]: Entity(ids[i], types[i], f"{types[i]}:{normalize_name(names[i])}", names[i], [names[i]],
                       mention_counts[i], 0.9)
        for i in range(n_entities)
        if mention_counts[i]
    }
    rels = [
        Relation(relation_id(label, ids[h], ids[t]), label, ids[h], ids[t], max(e.confidence for e in ev), ev)
        for (label, h, t), ev in relations.items()
    ]
    return GraphBatch(documents, entities, mention_entity, rels)


def relation_rows(batch: GraphBatch) -> list[tuple[str, dict[str, Any]]]:
    """(quoted type, row) as ``Neo4jGraphSink.write`` prepares them (relations here are already distinct)."""
    return [
        (relation_type(r.label), {"id": r.id, "head": r.head_id, "tail": r.tail_id, "evidence": [evidence_record(e) for e in r.evidence]})
        for r in batch.relations
    ]


def count(sink: Neo4jGraphSink, query: str, **params: Any) -> int:
    return sink.run_read(query, **params)[0]["n"]


def count_relations(sink: Neo4jGraphSink) -> int:
    return count(sink, "MATCH (:Entity)-[x]->(:Entity) WHERE NOT type(x) IN $s RETURN count(x) AS n", s=sorted(STRUCTURAL_EDGES))


def delete_relations(sink: Neo4jGraphSink) -> None:
    with sink._session() as session:
        session.run("MATCH (:Entity)-[x]->(:Entity) CALL { WITH x DELETE x } IN TRANSACTIONS OF 10000 ROWS").consume()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--relationships", type=int, default=100_000)
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=2000, help="relations written one transaction each (a sample)")
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    opts = parser.parse_args()
    uri = os.environ.get("NEO4J_URI", "bolt://127.0.0.1:7687")
    sink = Neo4jGraphSink(uri, os.environ.get("NEO4J_USER", "neo4j"), os.environ.get("NEO4J_PASSWORD", DEV_PASSWORD),
                          os.environ.get("NEO4J_DATABASE", "neo4j"), batch_size=opts.batch_size, retry_time=60.0)

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.perf_counter()
    batch = build_batch(opts.relationships, opts.entities)
    build_s = time.perf_counter() - started
    n_docs = len(batch.documents)
    n_chunks = sum(len(d.chunks) for d in batch.documents)
    n_mentions = len(batch.mention_entity)
    n_rel = len(batch.relations)
    n_evidence = sum(len(r.evidence) for r in batch.relations)
    say(f"built {n_docs} documents, {n_chunks} chunks, {n_mentions} mentions, {len(batch.entities)} entities, "
        f"{n_rel} relations ({n_evidence} pieces of evidence) in {build_s:.1f} s")
    rows = relation_rows(batch)
    sample = rows[: min(opts.single, len(rows))]
    try:
        sink.open()
        sink.clear()

        # 1. the whole batch through the public write()
        t0 = time.perf_counter()
        sink.write(batch)
        write_s = time.perf_counter() - t0
        stats = sink.stats()
        say(f"Neo4jGraphSink.write: {write_s:.1f} s; {stats.relations} relations, {stats.entities} entities")
        assert (stats.documents, stats.chunks, stats.entities, stats.relations) == (
            n_docs, n_chunks, len(batch.entities), n_rel), stats

        # 2. the relation layer again, batched, through the sink's relation transaction function
        delete_relations(sink)
        assert count_relations(sink) == 0
        t0 = time.perf_counter()
        prepared = relation_rows(batch)  # preparing the rows is part of the writer's work
        by_type: dict[str, list[dict[str, Any]]] = {}
        for rel_type, row in prepared:
            by_type.setdefault(rel_type, []).append(row)
        transactions = 0
        with sink._session() as session:
            for rel_type, type_rows in by_type.items():
                for part in batches(type_rows, opts.batch_size):
                    session.execute_write(merge_relations_tx, rel_type, part)
                    transactions += 1
        batched_s = time.perf_counter() - t0
        batched_count = count_relations(sink)
        batched_rate = n_rel / batched_s
        say(f"batched: {n_rel} relations in {transactions} transactions, {batched_s:.2f} s = {batched_rate:,.0f} rels/s; "
            f"database holds {batched_count}")

        # 3. one transaction per relationship, same transaction function, on a sample
        delete_relations(sink)
        assert count_relations(sink) == 0
        t0 = time.perf_counter()
        with sink._session() as session:
            for rel_type, row in sample:
                session.execute_write(merge_relations_tx, rel_type, [row])
        single_s = time.perf_counter() - t0
        single_count = count_relations(sink)
        single_rate = len(sample) / single_s
        say(f"single: {len(sample)} relations, {single_s:.2f} s = {single_rate:,.0f} rels/s; database holds {single_count}")
    finally:
        try:
            sink.clear()
        finally:
            sink.close()

    ratio = batched_rate / single_rate
    ok_batched = batched_count == n_rel
    ok_single = single_count == len(sample)
    target = "met" if batched_rate >= 15_000 else "**not met**"
    command = "python -m bench.neo4j_write"
    for flag, value, default in (("--relationships", opts.relationships, 100_000), ("--entities", opts.entities, 20_000),
                                 ("--single", opts.single, 2000), ("--batch-size", opts.batch_size, 5000)):
        if value != default:
            command += f" {flag} {value}"
    server = server_version(uri)
    rows_md = [
        ("documents / chunks / mentions", f"{n_docs:,} / {n_chunks:,} / {n_mentions:,}"),
        ("entities", f"{len(batch.entities):,}"),
        ("relations (distinct type, head, tail) / pieces of evidence", f"{n_rel:,} / {n_evidence:,}"),
        ("relation types", f"{len(by_type)}"),
        ("`Neo4jGraphSink.write` of the whole batch (all layers)", f"{write_s:.1f} s"),
        (f"**batched** relation layer ({opts.batch_size:,} rows per transaction, {transactions} transactions)",
         f"{batched_s:.2f} s, **{batched_rate:,.0f} rels/s** (target ≥ 15,000: {target})"),
        ("relationships in the database after the batched write", f"{batched_count:,} (expected {n_rel:,}: {ok_batched})"),
        (f"one transaction per relationship (sample of {len(sample):,})",
         f"{single_s:.2f} s, **{single_rate:,.0f} rels/s**, so ≈ {n_rel / single_rate:,.0f} s for all {n_rel:,} (extrapolated)"),
        ("relationships in the database after the single writes", f"{single_count:,} (expected {len(sample):,}: {ok_single})"),
        ("**batched / single**", f"**{ratio:.0f}×**"),
    ]
    body = "\n".join(
        [
            "## Neo4j: batched relationship writes vs one transaction per relationship",
            "",
            f"Command: `{command}` (git {git_revision()}, {time.strftime('%Y-%m-%d')})  ",
            f"Machine: {machine()}; Neo4j {server} on the same machine (`scripts/neo4j-dev.sh`, heap and page cache"
            f" from its defaults), Bolt on 127.0.0.1; driver's packstream codec: {packstream_codec()}  ",
            "Data: a generated GraphBatch (no model): documents of 5 chunks, each chunk mentioning 6 entities"
            " (every entity at least once) and holding up to 10 relations between them, each with its evidence.",
            "",
            "| figure | value |",
            "|---|---|",
            *[f"| {name} | {value} |" for name, value in rows_md],
            "",
            "Both relation figures run the sink's own transaction function (`queries.merge_relations_tx`: one"
            " `UNWIND … MERGE (h)-[x:TYPE]->(t) ON CREATE SET x = … ON MATCH SET` (evidence appended) statement per"
            " transaction) into a graph whose documents,"
            " chunks, mentions and entities are already written and whose relation layer was deleted first; the"
            " batched figure includes preparing the rows. The single-transaction rate is measured on the first"
            f" {len(sample):,} relations and extrapolated, not run for all {n_rel:,}. The database was cleared before and after.",
        ]
    )
    print(body)
    if not (ok_batched and ok_single):
        raise SystemExit("relationship counts differ from what was written (is another client using this database?)")
    if not opts.no_write:
        write_section("neo4j-write", body)


def packstream_codec() -> str:
    """Which Bolt encoder the driver uses: the Rust extension (a dependency) or the pure-Python one."""
    from neo4j._codec.packstream import v1

    return "Rust (`neo4j-rust-ext`)" if getattr(v1, "_rust_pack", None) else "pure Python (`neo4j-rust-ext` not installed)"


def server_version(uri: str) -> str:
    try:
        from neo4j import GraphDatabase

        with GraphDatabase.driver(uri, auth=(os.environ.get("NEO4J_USER", "neo4j"),
                                             os.environ.get("NEO4J_PASSWORD", DEV_PASSWORD))) as driver:
            info = driver.get_server_info()
            return info.agent.split("/", 1)[-1]
    except Exception:  # a description only
        return "server"


if __name__ == "__main__":
    main()
