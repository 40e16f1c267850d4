"""First ingest vs re-ingest of the passage corpus, through the real CLI, in one run.

    python -m bench.ingest_corpus [--limit N] [--model DIR] [--corpus FILE.jsonl]

Defaults: ../shared/corpora/wiki-passages.jsonl and the demo checkpoint ../shared/models/gliner2-minilm-demo
(the public checkpoint cannot be downloaded here). Skips with a message where either is absent.
Writes its figures to BENCHMARKS.md (section "ingest").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, SHARED, git_revision, machine, write_section


def run_cli(args: list[str]) -> tuple[float, dict, int]:
    """Wall time, the --json report, and the peak RSS (KiB) of one `kgbuild ingest` process."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "kgbuild.cli", *args, "--json"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"kgbuild ingest failed:\n{done.stderr[-3000:]}")
    peak_kib = int(done.stderr.strip().splitlines()[-1])
    return elapsed, json.loads(done.stdout), peak_kib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpora" / "wiki-passages.jsonl")
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "gliner2-minilm-demo")
    parser.add_argument("--limit", type=int, default=0, help="only the first N passages (0: all)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    opts = parser.parse_args()
    for what, path in (("corpus", opts.corpus), ("model", opts.model)):
        if not path.exists():
            print(f"skipped: the {what} is not at {path}")
            return

    work = Path(tempfile.mkdtemp(prefix="kgbuild-bench-"))
    try:
        corpus_dir = work / "corpus"
        corpus_dir.mkdir()
        with open(opts.corpus, encoding="utf-8") as src, open(corpus_dir / "passages.jsonl", "w", encoding="utf-8") as dst:
            for n, line in enumerate(src):
                if opts.limit and n >= opts.limit:
                    break
                dst.write(line)
        args = ["ingest", str(corpus_dir), "--model", str(opts.model), "--out", str(work / "out"),
                "--batch-size", str(opts.batch_size), "--device", "cpu"]
        first_s, first, first_rss = run_cli(args)
        second_s, second, second_rss = run_cli(args)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    totals = first["totals"]
    ratio = first_s / second_s
    rows = [
        ("documents", first["documents_read"]),
        ("chunks", first["chunks"]),
        ("mentions", first["mentions"]),
        ("canonical entities", totals["entities"]),
        ("relations kept / dropped", f"{first['relations_kept']} / {first['relations_dropped_total']}"),
        ("vector points", totals["vector_points"]),
        ("first ingest, wall (CLI process)", f"{first_s:.1f} s"),
        ("first ingest, chunks/s (pipeline)", f"{first['chunks_per_s']:.1f}"),
        ("first ingest, peak RSS", f"{first_rss / 1024:.0f} MiB"),
        ("re-ingest unchanged, wall (CLI process)", f"{second_s:.2f} s"),
        ("re-ingest unchanged, in-library time", f"{second['elapsed_s']:.3f} s"),
        ("re-ingest peak RSS", f"{second_rss / 1024:.0f} MiB"),
        ("**first / re-ingest (wall)**", f"**{ratio:.0f}×** (target ≥ 20×)"),
    ]
    same = second["documents_unchanged"] == first["documents_read"] and second["totals"] == totals
    body = "\n".join(
        [
            "## Ingest: first run vs unchanged re-run (passage corpus)",
            "",
            f"Command: `python -m bench.ingest_corpus{' --limit ' + str(opts.limit) if opts.limit else ''}`"
            f" (git {git_revision()}, {time.strftime('%Y-%m-%d')})  ",
            f"Machine: {machine()}  ",
            f"Corpus: {opts.corpus.name}, one JSONL file, one document per passage. Model: `{opts.model.name}`"
            " (the small trained demo checkpoint on MiniLM; the public base checkpoint cannot be downloaded here),"
            f" CPU, batch size {opts.batch_size}, schema business-news, embedder all-MiniLM-L6-v2.",
            "",
            "| figure | value |",
            "|---|---|",
            *[f"| {name} | {value} |" for name, value in rows],
            "",
            f"The re-run found every document unchanged by content hash and left the index as it was: {same}.",
        ]
    )
    print(body)
    if not opts.no_write:
        write_section("ingest", body)


if __name__ == "__main__":
    main()
