"""``kgbuild serve`` through HTTP: latency, throughput, the ratio against ``kgbuild query``, and a load run beside an ingest.

    python -m bench.serve [--chunks 10000] [--queries 200] [--load-seconds 60] [--clients 8] [--work DIR] [--no-write]
    python -m bench.serve --server INDEX_DIR PORT [--embedder hash|minilm]    # the served process (internal)
    python -m bench.serve --ingest INDEX_DIR CORPUS_DIR                        # an ingest with the fake models (internal)

The index: Wikipedia passages (``bench.scale.build_corpus``) ingested with the fake models of bench/fakes.py
(``PatternExtractor``, ``HashEmbedder`` under MiniLM's name, so that ``kgbuild query`` can read it), NetworkX graph,
qdrant-edge vectors, as bench/graph_latency.py builds its index. The server is its own process
(``IndexService`` + the FastAPI app under uvicorn, as ``kgbuild serve`` runs them) with the hash embedder as query
embedder, so no model time is in the latency figures (as in graph_latency); the client is httpx on the same machine.

1. Latency, one client, keep-alive: a vector query with filters (an entity type and a classification label) and a
   hybrid query (all channels), ``QUERIES`` each: the first twelve words of passages spread over the corpus.
2. Throughput: 8 clients (threads, one connection each) for 10 s each, vector+filters then hybrid.
3. The same vector query with filters from the CLI (``kgbuild query ... --type --class``, a fresh process each,
   the packaged MiniLM embedding the query) against a server holding the same MiniLM: the ratio of wall times.
4. Load: 8 clients (half hybrid, half vector with filters) for ``--load-seconds`` while an ingest adds documents in
   another process. Counted: failed requests (any status but 200: the documented 503 window is only before a first
   ingest has committed, so none is expected here), answers from a generation that is neither the state before the
   ingest nor after it (a half-written index), and the server's RSS at the start, the end and its peak.

Targets (issue 19): vector query with filters p50 <= 25 ms, hybrid p50 <= 80 ms. Writes BENCHMARKS.md section "serve".
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, git_revision, machine, write_section
from bench.fakes import HashEmbedder
from bench.graph_latency import queries_of

TARGETS_MS = {"vector": 25.0, "hybrid": 80.0}
CLIENTS = 8
THROUGHPUT_S = 10.0
ADDED_DOCUMENTS = 200
SETTLE_S = 20.0  # the load run goes on this long after the new state answers


class MiniLMNamedHashEmbedder(HashEmbedder):
    """Hash vectors under the packaged MiniLM's name: the manifest names a model ``kgbuild query`` can load."""

    name = "all-MiniLM-L6-v2"


# -- the index --------------------------------------------------------------------------------------------------


def build_index(chunks: int, work: Path) -> dict[str, Any]:
    """Corpus + ingest with the fake models; reuses an index already built in ``work``."""
    from bench.scale import build_corpus
    from kgbuild.chunk import TokenChunker
    from kgbuild.settings import Settings

    stamp = work / "built.json"
    if stamp.exists():
        return json.loads(stamp.read_text())
    extractor = _extractor()
    settings = Settings(out_dir=work / "index")
    budget = min(settings.chunk_size, extractor.max_text_tokens())
    chunker = TokenChunker(extractor.token_counter(), budget, min(settings.chunk_overlap, budget // 2))
    documents, _ = build_corpus(work / "corpus", chunks, chunker)
    started = time.perf_counter()
    report = _ingest(work / "corpus", work / "index")
    built = {"documents": documents, "chunks": report.totals.chunks, "entities": report.totals.entities,
             "ingest_s": round(time.perf_counter() - started, 1)}
    stamp.write_text(json.dumps(built))
    return built


def _extractor() -> Any:
    from bench.fakes import PatternExtractor
    from kgbuild.schema import load_schema

    return PatternExtractor(load_schema("business-news"))


def _ingest(corpus: Path, out: Path) -> Any:
    from kgbuild.pipeline import ingest
    from kgbuild.settings import Settings

    return ingest(corpus, Settings(out_dir=out), extractor=_extractor(), embedder=MiniLMNamedHashEmbedder())


def write_more_documents(corpus: Path, skip: int, count: int) -> Path:
    """``count`` documents after the first ``skip`` of the corpus generator, as one more JSONL file."""
    from bench.scale import CORPUS, generate_documents, read_passages

    path = corpus / "added.jsonl"
    records = generate_documents(read_passages(CORPUS))
    with open(path, "w", encoding="utf-8") as fh:
        for n, record in enumerate(records):
            if n >= skip + count:
                break
            if n >= skip:
                fh.write(json.dumps({**record, "id": f"added-{record['id']}"}, ensure_ascii=False) + "\n")
    return path


# -- the served process -------------------------------------------------------------------------------------------


def run_server(index_dir: Path, port: int, embedder: str) -> None:
    import uvicorn

    from kgbuild.serve import ServeOptions, create_app
    from kgbuild.serve.service import IndexService
    from kgbuild.settings import Settings

    settings = Settings(out_dir=index_dir)
    service = IndexService(settings, embedder=MiniLMNamedHashEmbedder() if embedder == "hash" else None).start()
    app = create_app(settings, ServeOptions(port=port), service=service, token="")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


class Served:
    """``python -m bench.serve --server`` as a process, answering on a free port."""

    def __init__(self, index_dir: Path, embedder: str = "hash"):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([sys.executable, "-m", "bench.serve", "--server", str(index_dir), str(self.port),
                                         "--embedder", embedder], cwd=REPO, stderr=subprocess.PIPE, text=True)

    def __enter__(self) -> Served:
        import httpx

        started = time.perf_counter()
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(self.process.stderr.read()[-3000:] if self.process.stderr else "the server exited")
            try:
                if httpx.get(self.url + "/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.perf_counter() - started > 600:
                raise RuntimeError("the server did not start")
            time.sleep(0.2)
        self.start_s = time.perf_counter() - started
        return self

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- measurements -------------------------------------------------------------------------------------------------


def bodies(questions: list[str], mode: str) -> list[dict[str, Any]]:
    if mode == "vector":  # an entity type and a label of the schema: PatternExtractor labels every chunk
        return [{"text": q, "k": 10, "type": ["PERSON"], "class": ["document_type=product_announcement"]} for q in questions]
    return [{"text": q, "k": 10, "hybrid": True} for q in questions]


def latency(url: str, requests: list[dict[str, Any]]) -> list[float]:
    import httpx

    times = []
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post("/query", json=requests[0])  # the connection, once
        for body in requests:
            started = time.perf_counter()
            response = client.post("/query", json=body)
            times.append(1000 * (time.perf_counter() - started))
            if response.status_code != 200:
                raise RuntimeError(f"{response.status_code}: {response.text}")
    return times


def hammer(url: str, requests: list[dict[str, Any]], seconds: float, clients: int, log: list | None = None,
           until: threading.Event | None = None) -> dict[str, Any]:
    """``clients`` threads posting ``requests`` round-robin for ``seconds`` (and, with ``until``, until it is set);
    counts and (with ``log``) every answer's (time, status, generation documents)."""
    import httpx

    stop = time.perf_counter() + seconds
    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()

    def running() -> bool:
        return time.perf_counter() < stop or (until is not None and not until.is_set())

    def client(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            i = offset
            while running():
                body = requests[i % len(requests)]
                i += clients
                try:
                    response = http.post("/query", json=body)
                    status = response.status_code
                    documents = response.json()["generation"]["documents"] if status == 200 else None
                except httpx.HTTPError:
                    status, documents = 0, None
                with lock:
                    counts["ok" if status == 200 else "failed"] += 1
                    if log is not None:
                        log.append((time.perf_counter(), status, documents))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {**counts, "per_s": round(counts["ok"] / elapsed, 1)}


def cli_seconds(index_dir: Path, body: dict[str, Any], runs: int = 5) -> float:
    """Median wall time of ``kgbuild query`` with the same text and filters, a fresh process each."""
    args = [sys.executable, "-m", "kgbuild.cli", "query", body["text"], "--out", str(index_dir), "-k", str(body["k"])]
    for t in body.get("type", []):
        args += ["--type", t]
    for c in body.get("class", []):
        args += ["--class", c]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(args, cwd=REPO, capture_output=True, text=True)
        times.append(time.perf_counter() - started)
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
    return statistics.median(times)


def load_run(index_dir: Path, corpus: Path, documents: int, questions: list[str], seconds: float) -> dict[str, Any]:
    """8 clients for ``seconds`` while another process ingests ``ADDED_DOCUMENTS`` new documents."""
    import httpx

    requests = [b for pair in zip(bodies(questions, "hybrid"), bodies(questions, "vector")) for b in pair]
    log: list[tuple[float, int, int | None]] = []
    rss: list[float] = []
    with Served(index_dir) as served:
        before = httpx.get(served.url + "/health").json()["generation"]["documents"]
        result: dict[str, Any] = {}
        swapped = threading.Event()  # the clients go on until the server answers from the new state (and `seconds`)
        runner = threading.Thread(target=lambda: result.update(hammer(served.url, requests, seconds, CLIENTS, log, swapped)))
        started = time.perf_counter()
        runner.start()
        rss.append(served.rss_mib())
        time.sleep(min(5.0, seconds / 6))
        write_more_documents(corpus, documents, ADDED_DOCUMENTS)
        ingest_started = time.perf_counter()
        ingest = subprocess.Popen([sys.executable, "-m", "bench.serve", "--ingest", str(index_dir), str(corpus)], cwd=REPO,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ingest_s = seen_new = None
        while runner.is_alive():
            rss.append(served.rss_mib())
            if ingest_s is None and ingest.poll() is not None:
                ingest_s = time.perf_counter() - ingest_started
                if ingest.returncode:
                    swapped.set()
                    raise RuntimeError(ingest.stderr.read()[-3000:] if ingest.stderr else "the ingest failed")
            if ingest_s is not None and any(docs not in (None, before) for _, _, docs in log[-CLIENTS:]):
                seen_new = seen_new or time.perf_counter()
                if time.perf_counter() - seen_new >= SETTLE_S:  # the end RSS once the old state is gone
                    swapped.set()
            if time.perf_counter() - started > 10 * seconds:
                swapped.set()  # never picked up: reported below
            time.sleep(1.0)
        runner.join()
        health = httpx.get(served.url + "/health").json()
        after = health["generation"]["documents"]
        rss.append(served.rss_mib())
    picked_up = next((t - started for t, status, docs in log if docs == after and after != before), None)
    return {**result, "seconds": round(time.perf_counter() - started), "before": before, "after": after,
            "ingest_started_s": round(ingest_started - started, 1), "ingest_s": round(ingest_s or 0.0, 1),
            "picked_up_s": round(picked_up, 1) if picked_up is not None else None,
            "half_written": sum(1 for _, status, docs in log if status == 200 and docs not in (before, after)),
            "non_200": sorted({status for _, status, _ in log if status != 200}),
            "rss_start": round(rss[0]), "rss_end": round(rss[-1]), "rss_peak": round(max(rss)),
            "reload_s": health.get("reloads")}


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return round(float(np.percentile(values, q)), 1)


def measure(chunks: int, queries: int, load_seconds: float, work: Path) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    built = build_index(chunks, work)
    index_dir, corpus = work / "index", work / "corpus"
    (corpus / "added.jsonl").unlink(missing_ok=True)
    if (work / "index" / "state.json").exists() and built.get("documents") and _documents(index_dir) != built["documents"]:
        _ingest(corpus, index_dir)  # a previous load run added documents: back to the corpus as built
    questions = queries_of(index_dir, queries)  # graph_latency's: from the corpus beside the index (added.jsonl is gone)
    out: dict[str, Any] = {"built": built, "queries": len(questions), "load_average": [os.getloadavg()[0]]}
    with Served(index_dir) as served:
        out["server_start_s"] = round(served.start_s, 1)
        for mode in ("vector", "hybrid"):
            times = latency(served.url, bodies(questions, mode))
            out[mode] = {"p50": percentile(times, 50), "p95": percentile(times, 95)}
        for mode in ("vector", "hybrid"):
            out[mode]["throughput"] = hammer(served.url, bodies(questions, mode), THROUGHPUT_S, CLIENTS)
        out["rss_idle"] = round(served.rss_mib())
    sample = bodies(questions[:1], "vector")[0]
    with Served(index_dir, embedder="minilm") as served:
        minilm = latency(served.url, bodies(questions[:50], "vector"))
    out["minilm_vector_p50"] = percentile(minilm, 50)
    out["cli_s"] = round(cli_seconds(index_dir, sample), 2)
    out["load"] = load_run(index_dir, corpus, built["documents"], questions, load_seconds)
    out["load_average"].append(os.getloadavg()[0])
    return out


def _documents(index_dir: Path) -> int:
    from kgbuild.state import IngestState

    return len(IngestState.load(index_dir).all_documents())


def render(r: dict[str, Any], command: str) -> str:
    v, h, load = r["vector"], r["hybrid"], r["load"]
    ratio = 1000 * r["cli_s"] / r["minilm_vector_p50"]
    failed = load["failed"]
    targets = [f"- vector query with filters p50 ≤ {TARGETS_MS['vector']:g} ms: {v['p50']:g} ms,"
               f" **{'met' if v['p50'] <= TARGETS_MS['vector'] else 'not met'}**",
               f"- hybrid p50 ≤ {TARGETS_MS['hybrid']:g} ms: {h['p50']:g} ms,"
               f" **{'met' if h['p50'] <= TARGETS_MS['hybrid'] else 'not met'}**",
               f"- under load, no failed request outside the 503 window and no half-written answer: {failed} failed,"
               f" {load['half_written']} half-written, **{'met' if not failed and not load['half_written'] else 'not met'}**"]
    return "\n".join([
        "## kgbuild serve: HTTP latency, throughput and a load run beside an ingest (fake models)",
        "",
        f"Command: `{command}` (git {git_revision()}, {time.strftime('%Y-%m-%d')})  ",
        f"Machine: {machine()}  ",
        f"Index: {r['built']['chunks']:,} chunks ({r['built']['documents']:,} documents, {r['built']['entities']:,} entities) of"
        " Wikipedia passages ingested with `PatternExtractor` + hash vectors (bench/fakes.py), NetworkX graph, qdrant-edge"
        " vectors. The server is `IndexService` + the FastAPI app under uvicorn in its own process, with the hash embedder"
        " as query embedder (no model time, as in graph-latency), started in"
        f" {r['server_start_s']} s; the client is httpx on the same two cores, {r['queries']} queries (the first twelve words"
        " of passages across the corpus). Vector + filters = `type PERSON` and `class document_type=product_announcement`;"
        " hybrid = all three channels, no filter; k = 10.",
        "",
        "| measure | vector + filters | hybrid |",
        "|---|---|---|",
        f"| latency ms p50 / p95, one client | {v['p50']:g} / {v['p95']:g} | {h['p50']:g} / {h['p95']:g} |",
        f"| throughput, {CLIENTS} clients for {THROUGHPUT_S:g} s (requests/s) | {v['throughput']['per_s']:g} |"
        f" {h['throughput']['per_s']:g} |",
        f"| failed requests in the throughput runs | {v['throughput']['failed']} | {h['throughput']['failed']} |",
        "",
        f"Against the CLI: `kgbuild query TEXT --type PERSON --class document_type=product_announcement` (a fresh process:"
        f" imports, store open, the packaged MiniLM embedding the query) takes {r['cli_s']:g} s (median of 5); the same"
        f" query through a server holding the same MiniLM takes {r['minilm_vector_p50']:g} ms p50: **{ratio:.0f}x** faster"
        f" ({1000 * r['cli_s'] / v['p50']:.0f}x against the hash-embedder figure above).",
        "",
        f"Load: {CLIENTS} clients (half hybrid, half vector + filters) for {load['seconds']:g} s while `ingest` added"
        f" {ADDED_DOCUMENTS} documents ({load['before']:,} -> {load['after']:,} documents) in another process, started"
        f" {load['ingest_started_s']:g} s in ({load['ingest_s']:g} s, retrieval graph rebuild included; the clients ran on"
        f" until the new state answered): {load['ok']:,} answers ({load['per_s']:g}/s), {load['failed']} failed"
        f" (statuses other than 200: {load['non_200'] or 'none'}), {load['half_written']} from a generation that was neither"
        f" the state before nor after the ingest; the server answered from the new state"
        f" {load['picked_up_s']} s into the run, {load['picked_up_s'] - load['ingest_started_s'] - load['ingest_s']:.1f} s"
        f" after the ingest ended (a snapshot taken and opened while the old state kept answering). Server RSS"
        f" {load['rss_start']} MiB at the start, {load['rss_end']} MiB at the end, {SETTLE_S:g} s after the swap (peak"
        f" {load['rss_peak']} MiB: two states open during the swap, and the new one's entities read from graph.json);"
        f" {r['rss_idle']} MiB idle after the latency runs.",
        "",
        *targets,
        "",
        f"Notes: the two cores were shared with other engineers' test runs (load average {r['load_average'][0]:.1f} at the"
        f" start, {r['load_average'][1]:.1f} at the end), which weighs most on the MiniLM figures (the numpy forward of one"
        " query) and the throughput.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--load-seconds", type=float, default=60.0)
    parser.add_argument("--work", type=Path, help="keep (and reuse) the index here")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--server", nargs=2, metavar=("INDEX_DIR", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--embedder", choices=("hash", "minilm"), default="hash", help=argparse.SUPPRESS)
    parser.add_argument("--ingest", nargs=2, metavar=("INDEX_DIR", "CORPUS_DIR"), help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.server:
        run_server(Path(opts.server[0]), int(opts.server[1]), opts.embedder)
        return
    if opts.ingest:
        _ingest(Path(opts.ingest[1]), Path(opts.ingest[0]))
        return
    work = opts.work or Path(tempfile.mkdtemp(prefix="kgbuild-serve-bench-"))
    result = measure(opts.chunks, opts.queries, opts.load_seconds, work)
    defaults = (opts.chunks, opts.queries, opts.load_seconds) == (10_000, 200, 60.0)
    command = "python -m bench.serve" + ("" if defaults else
                                         f" --chunks {opts.chunks} --queries {opts.queries} --load-seconds {opts.load_seconds:g}")
    print(json.dumps(result), file=sys.stderr)
    body = render(result, command)
    print(body)
    if not opts.no_write:
        write_section("serve", body)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
