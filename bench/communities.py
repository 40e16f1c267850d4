"""Communities (issue 16): time and memory of detection + summaries, stability of ids, and quality against known topics.

    python -m bench.communities [--work DIR] [--per-topic 120] [--no-write]
    python -m bench.communities --worker DIR|synthetic:N   # one measured build; prints JSON

1. **Scale.** ``build_communities`` (entity graph, hierarchical Leiden, ids, chunk assignment, summaries with
   c-TF-IDF over the chunk texts) timed in a fresh process, with its peak resident memory, on
   (a) the whole Wikipedia passage corpus (``../shared/corpora/wiki-passages.jsonl``, 6,119 passages) ingested
   with the fake models of bench/fakes.py (``PatternExtractor``, about 18 mentions per chunk; ``HashEmbedder``),
   about 10k entities, and (b) a **synthetic** retrieval graph of about 100k entities (planted topics of about
   100 entities, 14 mentions per chunk of which one is a corpus-wide hub and one noise, two relations per chunk,
   generated texts), since no corpus here has 100k entities. Summary embeddings are not part of the time.
2. **Quality.** A corpus of five topics assembled from the passages: a passage is film, royalty, music, sport or
   politics when its text holds at least two keywords of that topic and none of another (``TOPIC_KEYWORDS``),
   ``--per-topic`` passages each, one document per passage, ingested with the demo checkpoint
   (``../shared/models/gliner2-minilm-demo``; the fake extractor where it is absent). Each document's dominant
   community at level 0 (``CommunityIndex.document_communities``) is compared with its topic: purity (each
   community counted as its majority topic) and NMI; documents in no community are counted apart.
3. **Stability.** The same index without 5 % of its documents (every 20th: a copy of the index, updated from the
   file without them, equals a fresh ingest without them), then with them added back by an incremental ingest: the share of the communities of the first ingest whose id is still there, and of those
   that have a match (Jaccard of members >= 0.5, greedy, largest overlap first), the share that kept their id.

Writes BENCHMARKS.md section "communities".
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, SHARED, git_revision, machine, peak_rss_mib, write_section

PASSAGES = SHARED / "corpora" / "wiki-passages.jsonl"
DEMO = SHARED / "models" / "gliner2-minilm-demo"
TOPIC_KEYWORDS = {
    "film": r"\b(film|films|directed|screenplay|actor|actress|starring)\b",
    "royalty": r"\b(king|queen|duke|duchess|prince|princess|count|countess|emperor|margrave|nobleman|dynasty)\b",
    "music": r"\b(album|singer|band|song|songs|musician|composer|rapper)\b",
    "sport": r"\b(footballer|football|played|club|league|cricketer|tennis|olympic|athlete)\b",
    "politics": r"\b(politician|elected|parliament|senator|minister|governor|president|party)\b",
}


# -- 1. scale ------------------------------------------------------------------------------------------


def _letters(n: int) -> str:
    out = ""
    while True:
        out = chr(ord("a") + n % 26) + out
        n //= 26
        if n == 0:
            return out


def synthetic_graph(entities: int, seed: int = 7) -> tuple[Any, dict[str, dict[str, Any]]]:
    """A retrieval graph with planted topics, and chunk payloads with generated texts (see the module's docstring)."""
    import numpy as np

    from kgbuild.ids import chunk_id, document_id
    from kgbuild.retrieve.graph_matrix import build_retrieval_graph
    from kgbuild.types import Entity, EntityGraphData

    rng = np.random.default_rng(seed)
    hubs, size = 100, 100
    topics = (entities - hubs) // size
    chunks = int(entities * 0.6)
    data = EntityGraphData()
    types = ("COMPANY", "PERSON", "PRODUCT", "LOCATION")
    ids = []
    for i in range(topics * size + hubs):
        eid = f"ent_{i:08d}"
        ids.append(eid)
        kind = "DATE" if i >= topics * size else types[i % 4]
        data.entities[eid] = Entity(eid, kind, f"{kind}:e{_letters(i)}", f"E{_letters(i)}", [], 1, 0.9)
    payloads: dict[str, dict[str, Any]] = {}
    zipf = 1.0 / np.arange(1, size + 1)
    zipf /= zipf.sum()
    for c in range(chunks):
        topic = int(rng.integers(topics))
        members = topic * size + rng.choice(size, 12, replace=False, p=zipf)
        picked = [*members.tolist(), topics * size + int(rng.integers(hubs)), int(rng.integers(topics * size))]
        cid = chunk_id(document_id(f"doc{c // 3}"), c % 3)
        data.mentions.extend((cid, ids[e]) for e in picked)
        for _ in range(2):
            a, b = rng.choice(members, 2, replace=False)
            data.relations.append((ids[int(a)], "COMPETES_WITH", ids[int(b)]))
        words = [f"w{_letters(topic * 30 + int(k))}" for k in rng.integers(30, size=40)]
        words += [f"common{_letters(int(k))}" for k in rng.integers(200, size=40)]
        payloads[cid] = {"chunk_id": cid, "doc_id": cid.rsplit(":", 1)[0], "path": f"doc{c // 3}.txt", "title": "",
                         "text": " ".join(words), "doc_class": {"document_type": [f"topic{topic % 5}"]}}
    graph = build_retrieval_graph(data, chunk_ids=sorted(payloads))
    return graph, payloads


def worker(source: str) -> dict[str, Any]:
    """Load (or generate) a retrieval graph, then time ``build_communities`` on it; JSON with time and memory."""
    from kgbuild.communities.build import build_communities

    if source.startswith("synthetic:"):
        graph, payloads = synthetic_graph(int(source.split(":", 1)[1]))
    else:
        from kgbuild.retrieve.chunk_table import ChunkTable
        from kgbuild.retrieve.graph_matrix import RetrievalGraph

        graph = RetrievalGraph.load(Path(source))
        payloads = ChunkTable.open(Path(source))
    before = peak_rss_mib()
    started, cpu = time.perf_counter(), time.process_time()
    from kgbuild.communities.detect import detect_clusters, entity_weights

    weights = entity_weights(graph)
    detect_s, detect_cpu = time.perf_counter(), time.process_time()
    detect_clusters(weights)
    detect_s, detect_cpu = time.perf_counter() - detect_s, time.process_time() - detect_cpu
    built = build_communities(graph, payloads)
    total, cpu = time.perf_counter() - started, time.process_time() - cpu
    levels = {str(level): len(built.at_level(level)) for level in built.levels}
    return {"entities": len(graph.entities), "chunks": len(graph.chunk_ids), "edges": int(weights.weights.nnz // 2),
            "seconds": round(total - detect_s, 2), "cpu_s": round(cpu - detect_cpu, 2), "leiden_s": round(detect_s, 2),
            "leiden_cpu_s": round(detect_cpu, 2), "communities": len(built),
            "levels": levels, "peak_mib": round(peak_rss_mib()), "before_mib": round(before)}


def measure(source: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.communities", "--worker", source], cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- 2 and 3. quality and stability ----------------------------------------------------------------------


def topic_corpus(per_topic: int) -> list[dict[str, str]]:
    """Passages of one clear topic each (see the module's docstring), ``per_topic`` of each, in file order."""
    picked: dict[str, list[dict[str, str]]] = {t: [] for t in TOPIC_KEYWORDS}
    with open(PASSAGES, encoding="utf-8") as fh:
        for line in fh:
            p = json.loads(line)
            text = p["text"].lower()
            hits = {t: len(re.findall(rx, text)) for t, rx in TOPIC_KEYWORDS.items()}
            best = max(hits, key=lambda t: hits[t])
            if hits[best] >= 2 and sum(1 for v in hits.values() if v) == 1 and len(picked[best]) < per_topic:
                picked[best].append({"id": p["id"], "title": p["title"], "text": p["text"], "topic": best})
    return [p for t in TOPIC_KEYWORDS for p in picked[t]]


def ingest_records(records: list[dict[str, str]], folder: Path, out: Path, model: Path | None) -> float:
    from bench.fakes import HashEmbedder, PatternExtractor
    from kgbuild.pipeline import ingest
    from kgbuild.schema import load_schema
    from kgbuild.settings import Settings

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "passages.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    settings = Settings(out_dir=out, model=str(model)) if model else Settings(out_dir=out)
    extractor = None if model else PatternExtractor(load_schema("business-news"))
    started = time.perf_counter()
    ingest(folder, settings, extractor=extractor, embedder=HashEmbedder())
    return time.perf_counter() - started


def purity_nmi(records: list[dict[str, str]], out: Path) -> dict[str, Any]:
    from kgbuild.communities import load_communities
    from kgbuild.communities.build import nmi
    from kgbuild.ids import document_id
    from kgbuild.settings import Settings

    communities = load_communities(Settings(out_dir=out))
    dominant = communities.document_communities(0)
    topic_of = {document_id(f"passages.jsonl#{r['id']}"): r["topic"] for r in records}
    placed = [(topic_of[d], c) for d, c in dominant.items() if d in topic_of]
    by_community: dict[str, dict[str, int]] = {}
    for topic, c in placed:
        by_community.setdefault(c, {})
        by_community[c][topic] = by_community[c].get(topic, 0) + 1
    majority = sum(max(v.values()) for v in by_community.values())
    return {"documents": len(records), "placed": len(placed), "communities_l0": len(communities.at_level(0)),
            "used_l0": len(by_community), "levels": communities.levels, "purity": round(majority / max(len(placed), 1), 3),
            "nmi": round(nmi([t for t, _ in placed], [c for _, c in placed]), 3)}


def stability(before: Any, after: Any) -> dict[str, Any]:
    """Share of old communities whose id is still there; of those matched by Jaccard >= 0.5, the share with their id."""
    old = {c.id: (c.level, set(c.members)) for c in before}
    new = {c.id: (c.level, set(c.members)) for c in after}
    pairs = []
    member_of: dict[tuple[int, str], list[str]] = {}
    for cid, (level, members) in new.items():
        for m in members:
            member_of.setdefault((level, m), []).append(cid)
    for oid, (level, members) in sorted(old.items()):
        for nid in sorted({n for m in members for n in member_of.get((level, m), ())}):
            both = len(members & new[nid][1])
            jaccard = both / len(members | new[nid][1])
            if jaccard >= 0.5:
                pairs.append((-both, oid, nid))
    matched: dict[str, str] = {}
    taken: set[str] = set()
    for _, oid, nid in sorted(pairs):
        if oid not in matched and nid not in taken:
            matched[oid] = nid
            taken.add(nid)
    kept = sum(1 for oid in old if oid in new)
    level0 = [oid for oid, (level, _) in old.items() if level == 0]
    return {"old": len(old), "kept_id": round(kept / max(len(old), 1), 3), "matched": round(len(matched) / max(len(old), 1), 3),
            "matched_kept_id": round(sum(1 for o, n in matched.items() if o == n) / max(len(matched), 1), 3),
            "kept_id_l0": round(sum(1 for o in level0 if o in new) / max(len(level0), 1), 3), "old_l0": len(level0)}


def quality_and_stability(work: Path, per_topic: int) -> dict[str, Any]:
    import shutil

    from kgbuild.communities import load_communities
    from kgbuild.settings import Settings

    records = topic_corpus(per_topic)
    model = DEMO if (DEMO / "model.safetensors").exists() else None
    full_s = ingest_records(records, work / "topics-full", work / "out-full", model)  # nothing to do where it exists
    quality = purity_nmi(records, work / "out-full")
    # stability: the index without 5 % of the passages (every 20th: a copy of the index, ingesting the file without
    # them, removes their records), then with them added back by an incremental ingest of the whole file
    shutil.rmtree(work / "out-inc", ignore_errors=True)
    shutil.copytree(work / "out-full", work / "out-inc")
    inc = Settings(out_dir=work / "out-inc")
    left_out = [r for i, r in enumerate(records) if i % 20 == 19]
    kept = [r for i, r in enumerate(records) if i % 20 != 19]
    ingest_records(kept, work / "topics-full", work / "out-inc", model)  # the file without them: records removed
    before = load_communities(inc)
    added_s = ingest_records(records, work / "topics-full", work / "out-inc", model)
    after = load_communities(inc)
    same = (work / "out-inc" / "communities" / "communities.json").read_bytes() == \
        (work / "out-full" / "communities" / "communities.json").read_bytes()
    return {"model": str(model) if model else "PatternExtractor (fake)", "ingest_s": round(full_s, 1),
            "add_s": round(added_s, 1), "added": len(left_out), **quality,
            "stability": stability(before, after), "incremental_equals_fresh": same}


# -- report ----------------------------------------------------------------------------------------------


def render(scale: list[dict[str, Any]], quality: dict[str, Any] | None, command: str) -> str:
    lines = [
        "## Communities (issue 16)",
        "",
        f"Command: `{command}` (git {git_revision()}, {time.strftime('%Y-%m-%d')})  ",
        f"Machine: {machine()}",
        "",
        "Detection + summaries (`build_communities`: entity graph, graspologic-native hierarchical Leiden with"
        " max cluster size 10, ids, chunk assignment, top entities, representative chunks, c-TF-IDF terms, labels;"
        " summary embeddings not included), in a fresh process; peak = the process's peak RSS, before = after"
        " loading the graph and the chunk table. Wall seconds with the process's own CPU seconds beside them: the two"
        " cores were shared with other benchmarks and test runs, so the CPU figure is the one to compare.",
        "",
        "| graph | entities | chunks | entity edges | Leiden s (CPU s) | detection + summaries s (CPU s) | communities (per level) |"
        " peak MiB (before) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in scale:
        per_level = ", ".join(f"{n:,}" for n in r["levels"].values())
        lines.append(f"| {r['label']} | {r['entities']:,} | {r['chunks']:,} | {r['edges']:,} | {r['leiden_s']:.2f} ({r['leiden_cpu_s']:.2f}) |"
                     f" {r['seconds']:.2f} ({r['cpu_s']:.2f}) | {r['communities']:,} ({per_level}) | {r['peak_mib']:,} ({r['before_mib']:,}) |")
    if quality:
        s = quality["stability"]
        lines += [
            "",
            f"Quality: {quality['documents']} Wikipedia passages of five topics (film, royalty, music, sport, politics;"
            f" `TOPIC_KEYWORDS`), one document each, ingested with {quality['model']} and the hash embedder"
            + (f" in {quality['ingest_s']} s" if quality["ingest_s"] > 5 else "")
            + ". Each document's dominant level-0 community against its topic:",
            "",
            "| documents in a community | level-0 communities (holding a document's majority) | levels | purity | NMI |",
            "|---|---|---|---|---|",
            f"| {quality['placed']} of {quality['documents']} | {quality['communities_l0']} ({quality['used_l0']}) |"
            f" {len(quality['levels'])} | {quality['purity']:.3f} | {quality['nmi']:.3f} |",
            "",
            f"Stability: the same index without every 20th passage (a copy updated from the file without them), then the"
            f" {quality['added']} passages (5 %) added back by an incremental ingest ({quality['add_s']} s):",
            "",
            "| communities before | id kept (all levels) | id kept (level 0) | matched (Jaccard ≥ 0.5) | matched that kept their id |",
            "|---|---|---|---|---|",
            f"| {s['old']} ({s['old_l0']} at level 0) | {s['kept_id']:.3f} | {s['kept_id_l0']:.3f} | {s['matched']:.3f} |"
            f" {s['matched_kept_id']:.3f} |",
            "",
            f"- after the addition, the communities equal those of a fresh ingest of the whole corpus, byte for byte:"
            f" **{'yes' if quality['incremental_equals_fresh'] else 'NO'}**",
        ]
    lines += [
        "- ids are `c<level>-<hash of the community's most central entity>` (kgbuild/communities/detect.py): a pure"
        " function of the communities, so an updated index equals a fresh ingest; a community keeps its id when it"
        " keeps its most central member. 'matched that kept their id' is the stability of communities that barely"
        " changed; the rest were split, merged or re-centred by the new documents.",
        "- the 100k point is a synthetic graph (planted topics, bench/communities.py `synthetic_graph`): no corpus"
        " here has 100k entities.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="where corpora and indexes go (default: a temporary folder)")
    parser.add_argument("--per-topic", type=int, default=120)
    parser.add_argument("--synthetic", type=int, default=100_000, help="entities of the synthetic graph (0: skip)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="kgbuild-communities-"))
    scale: list[dict[str, Any]] = []
    quality = None
    if PASSAGES.exists():
        from bench.fakes import HashEmbedder, PatternExtractor
        from kgbuild.pipeline import ingest
        from kgbuild.schema import load_schema
        from kgbuild.settings import Settings

        wiki = work / "wiki"
        if not (wiki / "out" / "retrieval" / "meta.json").exists():
            (wiki / "corpus").mkdir(parents=True, exist_ok=True)
            (wiki / "corpus" / "passages.jsonl").write_bytes(PASSAGES.read_bytes())
            ingest(wiki / "corpus", Settings(out_dir=wiki / "out"), extractor=PatternExtractor(load_schema("business-news")),
                   embedder=HashEmbedder())
        scale.append({"label": "Wikipedia passages, fake extractor", **measure(str(wiki / "out" / "retrieval"))})
        print(scale[-1], flush=True)
        quality = quality_and_stability(work, args.per_topic)
        print(quality, flush=True)
    else:
        print(f"skipping the corpus measurements: {PASSAGES} is absent", flush=True)
    if args.synthetic:
        scale.append({"label": "synthetic", **measure(f"synthetic:{args.synthetic}")})
        print(scale[-1], flush=True)
    body = render(scale, quality, "python -m bench.communities")
    print(body)
    if not args.no_write:
        write_section("communities", body)


if __name__ == "__main__":
    main()
