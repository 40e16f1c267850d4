"""Where an ingest's memory goes, phase by phase: resident memory (heap and mapped files) and the peak of each phase.

    python -m bench.memory_phases 10000 [--graph neo4j|networkx] [--every 8]

One measured ingest in this process (``bench.scale``'s corpus and fake models, after the same one-document warm-up),
with the peak reset (``/proc/self/clear_refs``) at each phase: the write batches, the links across documents, the
retrieval graph, the communities. Linux only. For Neo4j the development server's database is cleared before and after
(scripts/neo4j-dev.sh, or NEO4J_*). What the figures in BENCHMARKS.md "scale-out" break down.
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable


def resident() -> dict[str, int]:
    """MiB: VmRSS, RssAnon (heap), RssFile (mapped files), VmHWM (peak since the last reset)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0]) // 1024
    return out


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _show(label: str) -> None:
    r = resident()
    print(f"{label:<28} rss {r['VmRSS']:>5}  heap {r['RssAnon']:>5}  files {r['RssFile']:>4}  peak {r['VmHWM']:>5} MiB",
          flush=True)


def _phase(owner: Any, name: str, label: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    def measured(*args: Any, **kwargs: Any) -> Any:
        _show(f"before {label}")
        reset_peak()
        result = original(*args, **kwargs)
        _show(f"after {label}")
        reset_peak()
        return result

    setattr(owner, name, measured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chunks", type=int)
    parser.add_argument("--graph", default="neo4j", choices=("neo4j", "networkx"))
    parser.add_argument("--every", type=int, default=8, help="a line every this many write batches")
    opts = parser.parse_args()
    os.environ.setdefault("NEO4J_PASSWORD", "kgbuild-dev-password")

    import kgbuild.communities as communities
    import kgbuild.pipeline as pipeline
    from bench.fakes import HashEmbedder, PatternExtractor
    from bench.scale import build_corpus, clear_neo4j
    from kgbuild.chunk import TokenChunker
    from kgbuild.index import Index
    from kgbuild.schema import load_schema
    from kgbuild.settings import Settings

    with tempfile.TemporaryDirectory(prefix="kgbuild-phases-") as tmp:
        work = Path(tmp)
        extractor, embedder = PatternExtractor(load_schema("business-news")), HashEmbedder()
        settings = Settings(out_dir=work / "index", graph=opts.graph)
        budget = min(settings.chunk_size, extractor.max_text_tokens())
        chunker = TokenChunker(extractor.token_counter(), budget, min(settings.chunk_overlap, budget // 2),
                               headers=settings.title_header)
        build_corpus(work / "corpus", opts.chunks, chunker)
        one = work / "one-document"
        one.mkdir()
        with open(work / "corpus" / "part-0000.jsonl", encoding="utf-8") as fh:
            (one / "one.jsonl").write_text(fh.readline(), encoding="utf-8")
        for name in ("warm-up-1", "warm-up-2"):
            pipeline.ingest(one, settings.model_copy(update={"out_dir": work / name}), extractor=extractor, embedder=embedder)
        if opts.graph == "neo4j":
            clear_neo4j(settings)
        gc.collect()
        _show("start")
        reset_peak()
        batches = [0]
        commit = pipeline.IngestPipeline._commit

        def counted(self: Any, *args: Any, **kwargs: Any) -> None:
            commit(self, *args, **kwargs)
            batches[0] += 1
            if batches[0] % max(opts.every, 1) == 0:
                _show(f"write batch {batches[0]}")

        pipeline.IngestPipeline._commit = counted  # type: ignore[method-assign]
        _phase(pipeline.IngestPipeline, "_link_across_documents", "links")
        _phase(Index, "refresh_retrieval_graph", "retrieval graph")
        _phase(communities, "refresh_communities", "communities")
        started = time.perf_counter()
        report = pipeline.ingest(work / "corpus", settings, extractor=extractor, embedder=embedder)
        _show("done")
        print(f"{report.chunks:,} chunks, {report.totals.entities:,} entities, {time.perf_counter() - started:.0f} s")
        if opts.graph == "neo4j":
            clear_neo4j(settings)


if __name__ == "__main__":
    main()
