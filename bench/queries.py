"""P6: metadata-filtered vector query latency and recall, qdrant-edge (the embedded default) vs qdrant-client local mode.

    python -m bench.queries [--quick]      # prints the section; `python -m bench` writes it to BENCHMARKS.md

Synthetic chunks shaped like ``build_chunk_points``' payloads are written through the product's own
vector sinks (``open`` / ``upsert`` / ``flush``), the store is closed and reopened as a query process
would, and ``sink.search(vector, VectorFilter(...), limit=10)`` is timed for two filter kinds:
(a) one entity key, (b) one entity type + one class label. Every result is checked against an exact
numpy search over the points that match the same filter.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Section, machine, percentile
from kgbuild.ids import chunk_id, document_id, entity_id, point_id
from kgbuild.schema import load_schema
from kgbuild.types import ChunkPoint
from kgbuild.types import VectorFilter

DIMENSION = 384
LIMIT = 10
BATCH = 5000
SEED = 20260606
CENTROIDS = 2000
ENTITY_KEYS = 30_000
CHUNKS_PER_DOC = 8
ZIPF_EXPONENT = 1.0
POINT_NOISE = 0.75  # norm of the Gaussian noise added to a centroid (unit norm) before normalising
QUERY_NOISE = 0.5  # norm of the noise added to a stored vector to make a query
TARGET_P50_MS = 10.0
TARGET_RECALL = 0.95
FILTER_KINDS = {"entity": "one entity key", "type_class": "entity type + class label"}
STORES = {
    "edge": "qdrant-edge",
    "local": "qdrant-client local mode (on disk)",
    # on disk, local mode commits to SQLite once per point (1–11 ms each on this machine): minutes at 100k
    "local-memory": "qdrant-client local mode (in memory)",
}

# (name words, share of the key pool) per entity type; names are "<word> <n>", normalised (lower case)
NAME_WORDS = {
    "COMPANY": (("acme", "globex", "initech", "umbrella", "hooli", "vandelay", "stark", "wayne"), 0.30),
    "PERSON": (("jane park", "omar diaz", "li wei", "anna novak", "sam okafor", "maria rossi"), 0.28),
    "PRODUCT": (("model", "phone", "cloud suite", "chip", "sedan", "tablet"), 0.15),
    "LOCATION": (("city", "region", "port", "province"), 0.10),
    "DATE": (("q1", "q2", "q3", "q4", "march", "june"), 0.09),
    "MONEY": (("$ million", "eur billion", "$ billion"), 0.08),
}


@dataclass
class Dataset:
    """N synthetic chunks: unit vectors, payloads, and the indexes the exact search needs."""

    vectors: np.ndarray  # (N, DIMENSION) float32, unit norm
    payloads: list[dict[str, Any]]
    ids: list[str]  # point ids (UUIDs), by row
    key_rows: dict[str, np.ndarray]  # entity key -> rows holding it
    type_mask: dict[str, np.ndarray]  # entity type -> bool per row
    label_mask: dict[str, np.ndarray]  # class label -> bool per row (chunk or document label)
    mention_keys: list[str]  # one entry per (chunk, entity key): drawing from it weights keys by frequency

    def __len__(self) -> int:
        return len(self.ids)

    def points(self, start: int, stop: int) -> list[ChunkPoint]:
        vectors = self.vectors[start:stop].tolist()
        return [
            ChunkPoint(id=self.ids[i], chunk_id=self.payloads[i]["chunk_id"], vector=vectors[i - start], payload=self.payloads[i])
            for i in range(start, stop)
        ]


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def _noise(rng: np.random.Generator, shape: tuple[int, ...], norm: float) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(norm / np.sqrt(DIMENSION))


def make_dataset(n: int, task: str, labels: list[str], relation_labels: list[str], seed: int = SEED) -> Dataset:
    rng = np.random.default_rng(seed)
    types = list(NAME_WORDS)

    # the entity key pool: types interleaved over the frequency ranks, Zipf-like frequencies
    shares = np.array([NAME_WORDS[t][1] for t in types])
    key_type = rng.choice(len(types), size=ENTITY_KEYS, p=shares / shares.sum())
    keys, names, key_types, key_eids = [], [], [], []
    for k, t in enumerate(key_type):
        entity_type = types[t]
        words = NAME_WORDS[entity_type][0]
        name = f"{words[k % len(words)]} {k}"
        keys.append(f"{entity_type}:{name}")
        names.append(name.title())
        key_types.append(entity_type)
        key_eids.append(entity_id(entity_type, name))
    zipf = 1.0 / np.arange(1, ENTITY_KEYS + 1) ** ZIPF_EXPONENT
    zipf /= zipf.sum()

    # documents: a topic centroid, a label, and a handful of entities their chunks draw from
    n_docs = -(-n // CHUNKS_PER_DOC)
    centroids = _unit(rng.standard_normal((CENTROIDS, DIMENSION), dtype=np.float32))
    doc_topic = rng.integers(CENTROIDS, size=n_docs)
    label_weights = 1.0 / np.arange(1, len(labels) + 1)
    doc_label = rng.choice(len(labels), size=n_docs, p=label_weights / label_weights.sum())
    pool_sizes = 4 + rng.poisson(4, size=n_docs)
    drawn = rng.choice(ENTITY_KEYS, size=int(pool_sizes.sum()), p=zipf)
    doc_pools = [sorted(set(pool.tolist())) for pool in np.split(drawn, np.cumsum(pool_sizes)[:-1])]

    rows = np.arange(n)
    doc_of = rows // CHUNKS_PER_DOC
    # most chunks are about their document's topic, some wander off it
    topic = np.where(rng.random(n) < 0.75, doc_topic[doc_of], rng.integers(CENTROIDS, size=n))
    vectors = _unit(centroids[topic] + _noise(rng, (n, DIMENSION), POINT_NOISE))
    # the chunk's own label: mostly the document's, sometimes another one, sometimes none above threshold
    chunk_label = np.where(rng.random(n) < 0.8, doc_label[doc_of], rng.integers(len(labels), size=n))
    chunk_label[rng.random(n) < 0.1] = -1
    n_entities = rng.poisson(3, size=n)
    n_relations = rng.integers(0, min(3, len(relation_labels) + 1), size=n)
    sample = random.Random(seed).sample  # per-chunk draws from short lists: much cheaper than numpy calls

    payloads: list[dict[str, Any]] = []
    ids: list[str] = []
    key_rows: dict[str, list[int]] = {}
    mention_keys: list[str] = []
    type_mask = {t: np.zeros(n, dtype=bool) for t in types}
    for i in range(n):
        d = int(doc_of[i])
        position = i % CHUNKS_PER_DOC
        path = f"news/{d:06d}.txt"
        doc_id = document_id(path)
        cid = chunk_id(doc_id, position)
        pool = doc_pools[d]
        chunk_keys = sample(pool, min(len(pool), int(n_entities[i])))
        entity_types = sorted({key_types[k] for k in chunk_keys})
        for k in chunk_keys:
            key_rows.setdefault(keys[k], []).append(i)
            mention_keys.append(keys[k])
        for t in entity_types:
            type_mask[t][i] = True
        entity_names = [names[k] for k in chunk_keys]
        text = f"{' and '.join(entity_names) or 'The market'} in business news, part {position + 1} of story {d}."
        relation_types = sorted(sample(relation_labels, int(n_relations[i]))) if len(chunk_keys) > 1 else []
        payloads.append(
            {
                "doc_id": doc_id,
                "path": path,
                "source_path": path,
                "title": f"Business story {d}",
                "chunk_id": cid,
                "position": position,
                "start": position * 1200,
                "end": position * 1200 + len(text),
                "text": text,
                "entity_ids": [key_eids[k] for k in chunk_keys],
                "entity_keys": [keys[k] for k in chunk_keys],
                "entity_names": entity_names,
                "entity_types": entity_types,
                "class": {task: [labels[chunk_label[i]]] if chunk_label[i] >= 0 else []},
                "doc_class": {task: [labels[doc_label[d]]]},
                "relation_types": relation_types,
            }
        )
        ids.append(point_id(cid))
    label_mask = {label: (doc_label[doc_of] == j) | (chunk_label == j) for j, label in enumerate(labels)}
    return Dataset(
        vectors=vectors,
        payloads=payloads,
        ids=ids,
        key_rows={k: np.array(v) for k, v in key_rows.items()},
        type_mask=type_mask,
        label_mask=label_mask,
        mention_keys=mention_keys,
    )


@dataclass
class Query:
    kind: str
    vector: list[float]
    filter: VectorFilter
    exact: list[str]  # point ids of the exact top LIMIT among the matching points
    matching: int


def make_queries(data: Dataset, task: str, labels: list[str], per_kind: int, seed: int = SEED + 1) -> dict[str, list[Query]]:
    """Queries near a stored point that matches the filter. Entity keys are drawn per mention, so a key
    comes up as often as it occurs in the data: a realistic mix of rare and common keys."""
    rng = np.random.default_rng(seed)
    types = list(data.type_mask)
    queries: dict[str, list[Query]] = {kind: [] for kind in FILTER_KINDS}
    while len(queries["entity"]) < per_kind:
        key = data.mention_keys[rng.integers(len(data.mention_keys))]
        queries["entity"].append(_query(data, rng, "entity", VectorFilter(entity_keys=(key,)), data.key_rows[key]))
    while len(queries["type_class"]) < per_kind:
        entity_type, label = types[rng.integers(len(types))], labels[rng.integers(len(labels))]
        rows = np.flatnonzero(data.type_mask[entity_type] & data.label_mask[label])
        if len(rows):
            query_filter = VectorFilter(entity_types=(entity_type,), classes=((task, label),))
            queries["type_class"].append(_query(data, rng, "type_class", query_filter, rows))
    return queries


def _query(data: Dataset, rng: np.random.Generator, kind: str, query_filter: VectorFilter, rows: np.ndarray) -> Query:
    near = data.vectors[rows[rng.integers(len(rows))]]
    vector = _unit(near + _noise(rng, (DIMENSION,), QUERY_NOISE))
    scores = data.vectors[rows] @ vector
    top = rows[np.argsort(-scores, kind="stable")[:LIMIT]]
    return Query(kind, vector.tolist(), query_filter, [data.ids[r] for r in top], len(rows))


def open_sink(store: str, folder: Path, task: str) -> Any:
    if store == "edge":
        from kgbuild.connectors.qdrant_edge import QdrantEdgeVectorSink

        return QdrantEdgeVectorSink(folder, classification_tasks=[task])
    from kgbuild.connectors.qdrant_server import QdrantServerVectorSink

    if store == "local-memory":
        return QdrantServerVectorSink("chunks", location=":memory:", classification_tasks=[task])
    return QdrantServerVectorSink("chunks", path=str(folder), classification_tasks=[task])


def measure(store: str, data: Dataset, queries: dict[str, list[Query]], folder: Path, task: str) -> dict[str, Any]:
    with warnings.catch_warnings():
        # local mode warns above 20,000 points; that it is slow there is what this measures
        warnings.filterwarnings("ignore", message=".*[Ll]ocal mode.*")
        persistent = store != "local-memory"
        sink = open_sink(store, folder, task)
        try:
            sink.open(dimension=DIMENSION)
            upsert_s = 0.0
            for start in range(0, len(data), BATCH):
                points = data.points(start, min(start + BATCH, len(data)))
                t0 = time.perf_counter()
                sink.upsert(points)
                upsert_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            sink.flush()
            if persistent:
                sink.close()
            upsert_s += time.perf_counter() - t0

            reopen_s = None
            if persistent:
                # a query runs in another process than the ingest: reopen the store as `kgbuild query` does
                t0 = time.perf_counter()
                sink = open_sink(store, folder, task)
                sink.open(None)
                reopen_s = time.perf_counter() - t0

            count = sink.count()
            first = next(q for qs in queries.values() for q in qs)
            sink.search(first.vector, first.filter, LIMIT)  # warm-up, not counted
            result: dict[str, Any] = {"store": store, "points": count, "upsert_s": upsert_s,
                                      "points_per_s": len(data) / upsert_s, "reopen_s": reopen_s, "filters": {}}
            for kind, kind_queries in queries.items():
                latencies, recalls = [], []
                for q in kind_queries:
                    t0 = time.perf_counter()
                    hits = sink.search(q.vector, q.filter, LIMIT)
                    latencies.append((time.perf_counter() - t0) * 1000)
                    recalls.append(len({h.point_id for h in hits} & set(q.exact)) / min(LIMIT, q.matching))
                result["filters"][kind] = {
                    "queries": len(kind_queries),
                    "p50_ms": percentile(latencies, 0.5),
                    "p95_ms": percentile(latencies, 0.95),
                    "max_ms": max(latencies),
                    "recall_at_10": float(np.mean(recalls)),
                    "min_recall": min(recalls),
                    "mean_matching": float(np.mean([q.matching for q in kind_queries])),
                    "median_matching": float(np.median([q.matching for q in kind_queries])),
                }
            return result
        finally:
            sink.close()


def plan(quick: bool) -> list[tuple[int, dict[str, int]]]:
    """(chunks, {store: queries per filter kind}) in the order they run."""
    if quick:
        return [(10_000, {"edge": 50, "local-memory": 10}), (100_000, {"edge": 50})]
    return [(10_000, {"edge": 100, "local": 100}), (100_000, {"edge": 100, "local-memory": 20})]


def _size(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}"


def _meets(run: dict[str, Any]) -> bool:
    return all(f["p50_ms"] <= TARGET_P50_MS and f["recall_at_10"] >= TARGET_RECALL for f in run["filters"].values())


def run(quick: bool) -> Section:
    schema = load_schema("business-news")
    task = next(iter(schema.classifications))
    labels = list(schema.classifications[task].labels)
    relation_labels = list(schema.relations)
    if set(NAME_WORDS) != set(schema.entities):
        raise SystemExit(f"bench.queries: entity types {sorted(NAME_WORDS)} differ from the schema's {sorted(schema.entities)}")
    section = Section("P6", "Filtered vector queries", command=f"python -m bench.queries{' --quick' if quick else ''}")

    load_before = os.getloadavg()[0]
    runs: list[dict[str, Any]] = []
    generate_s: dict[int, float] = {}
    work = Path(tempfile.mkdtemp(prefix="kgbuild-bench-queries-"))
    try:
        for n, stores in plan(quick):
            t0 = time.perf_counter()
            data = make_dataset(n, task, labels, relation_labels)
            queries = make_queries(data, task, labels, max(stores.values()))
            generate_s[n] = time.perf_counter() - t0
            for store, per_kind in stores.items():
                subset = {kind: qs[:per_kind] for kind, qs in queries.items()}
                result = measure(store, data, subset, work / f"{store}-{n}", task)
                result["chunks"] = n
                runs.append(result)
                shutil.rmtree(work / f"{store}-{n}", ignore_errors=True)
            del data, queries
    finally:
        shutil.rmtree(work, ignore_errors=True)

    sizes = sorted({r["chunks"] for r in runs})
    section.setup = (
        f"Synthetic chunks in the business-news payload shape ({CHUNKS_PER_DOC} chunks per document, about 3 entity"
        f" keys per chunk from its document's handful, drawn Zipf-like from a pool of {ENTITY_KEYS:,} keys over {', '.join(NAME_WORDS)}, `{task}` labels on"
        f" chunks and documents), {DIMENSION}-dim unit vectors around {CENTROIDS:,} random topic centroids; sizes"
        f" {', '.join(_size(n) for n in sizes)}. Written through each store's own kgbuild vector sink in batches of"
        f" {BATCH:,} (timed: `upsert` + `flush` + `close`), reopened as a query process would, then"
        f" `search(limit={LIMIT})` with a `VectorFilter` timed per query after one warm-up query. Query vectors are a"
        " stored vector (one that matches the filter) plus noise; entity keys are drawn per mention (common keys come"
        " up often, rare ones too); type + class pairs uniformly. recall@10 is against an exact numpy search over the"
        " matching points."
        + (
            " qdrant-client local mode runs in memory where marked (`location=\":memory:\"`, not reopened): on disk it"
            " commits to SQLite once per point, which takes minutes at 100k; its queries scan the same in-memory"
            " structures either way."
            if any(r["store"] == "local-memory" for r in runs)
            else ""
        )
        + (" Quick mode: fewer queries; qdrant-client local mode at 10k only." if quick else "")
        + f" Machine: {machine()}."
    )

    for r in runs:
        name = f"{STORES[r['store']]}, {_size(r['chunks'])}"
        reopen = "" if r["reopen_s"] is None else f"; reopen {r['reopen_s']:.2f} s"
        section.row(f"{name}: upsert", f"{r['upsert_s']:.1f} s ({r['points_per_s']:,.0f} points/s){reopen}")
        for kind, f in r["filters"].items():
            section.row(
                f"{name}: {FILTER_KINDS[kind]} ({f['queries']} queries)",
                f"p50 {f['p50_ms']:.1f} ms, p95 {f['p95_ms']:.1f} ms, recall@10 {f['recall_at_10']:.3f},"
                f" matching points mean {f['mean_matching']:,.0f} (median {f['median_matching']:,.0f})",
            )

    edge_runs = [r for r in runs if r["store"] == "edge"]
    edge_top = max(edge_runs, key=lambda r: r["chunks"])
    top = _size(edge_top["chunks"])
    section.target(
        f"P6 qdrant-edge p50 ≤ {TARGET_P50_MS:g} ms at {top} (both filters)",
        all(f["p50_ms"] <= TARGET_P50_MS for f in edge_top["filters"].values()),
    )
    section.target(
        f"P6 recall@10 ≥ {TARGET_RECALL} (qdrant-edge at {top}, both filters)",
        all(f["recall_at_10"] >= TARGET_RECALL for f in edge_top["filters"].values()),
    )

    verdicts = []
    for store in dict.fromkeys(r["store"] for r in runs):
        largest = max((r for r in runs if r["store"] == store), key=lambda r: r["chunks"])
        p50 = max(f["p50_ms"] for f in largest["filters"].values())
        verdicts.append(
            f"{STORES[store]} {'meets' if _meets(largest) else 'does not meet'} it"
            f" (slowest p50 {p50:,.1f} ms at {_size(largest['chunks'])})"
        )
    section.notes.append(
        f"Target p50 ≤ {TARGET_P50_MS:g} ms with recall@10 ≥ {TARGET_RECALL}: " + "; ".join(verdicts) + "."
        " qdrant-edge (`QdrantEdgeVectorSink`, int8 scan with float rescoring) is kgbuild's embedded default store."
    )
    section.notes.append(
        "The `--qdrant-url` server path (`QdrantServerVectorSink`) is unchanged. Without a Qdrant server here,"
        " qdrant-client's local mode stands in for it: same client API and sink code, but it scans in Python and"
        " ignores payload indexes, so its latency is not a server's."
    )
    load_after = os.getloadavg()[0]
    if max(load_before, load_after) >= (os.cpu_count() or 1):
        section.notes.append(
            f"The machine was busy while this ran (1-minute load average {load_before:.1f} before, {load_after:.1f}"
            f" after, on {os.cpu_count()} cores): latencies are higher than on an idle machine."
        )
    section.figures = {
        "runs": runs,
        "generate_s": generate_s,
        "quick": quick,
        "load_average": {"before": load_before, "after": load_after},
    }
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer queries; qdrant-client local mode at 10k only")
    print(run(parser.parse_args().quick).markdown())


if __name__ == "__main__":
    main()
