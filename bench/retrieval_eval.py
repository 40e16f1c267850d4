"""Retrieval evaluation: recall@2/5/10 of vector-only, BM25-only, graph-only, vector + BM25 and hybrid retrieval, in one run.

    python -m bench.retrieval_eval [--data DIR] [--model DIR|gazetteer] [--schema NAME] [--index-dir DIR]
                                   [--reingest] [--keep-retrieval-data] [--no-query-model] [--cache-query-vectors]
                                   [--no-write] [--json]
    python -m bench.retrieval_eval --data DIR --render RUN.json   # BENCHMARKS.md sections of a saved --json run

Input: a folder (default ``bench/data/multihop``, the project's own multi-hop set) holding

- ``corpus.jsonl``: one passage per line, ``{"id": "p01", "title": "...", "text": "..."}``; or
  ``passages.json``: ``{"source": {"file": "wiki-passages.jsonl", "sha256": ...}, "ids": [...]}``,
  the ids of passages read at run time from that file in ``../shared/corpora/`` (``bench/data/wikihop``,
  made by ``bench.make_wikihop``; the run skips with one line where the shared corpus is absent);
- ``qa.json``: ``{"questions": [{"id": "q01", "question": "...", "gold": ["p01", "p02"]}, ...]}``,
  ``gold`` being the ids of the passages that support the answer (``answer``, optional: the one
  passage that holds it; ``type``, optional: recall is also given per type; ``name`` and
  ``description``, optional, at the top: how BENCHMARKS.md names and describes the set);
- ``gazetteer.json`` (optional): ``{"schema": "business-news", "entities": {TYPE: [names]},
  "relations": [[head, LABEL, tail]]}`` for the deterministic gazetteer extractor.

The corpus is ingested once, each passage one record with its title (``--model gazetteer``, the
default where gazetteer.json exists: the deterministic dictionary extractor; or a GLiNER2 checkpoint
directory, which then also reads the queries). ``--index-dir DIR`` keeps the index there and reuses
it on the next run when the corpus, the model, the schema and the embedder are the same (a note says
when kgbuild's ingest code changed since; ``--reingest`` builds it again; the graph channel's stored
retrieval graph is dropped, and rebuilt on open, when ``kgbuild/retrieve`` changed, unless
``--keep-retrieval-data``). Recall@k of a question is
the share of its gold passages among the first k distinct passages, averaged over the questions. The
graph and hybrid modes run twice: with the query's entities found by name (the default, no model)
and read by the extractor (``query_model=True``). Writes the tables to BENCHMARKS.md (sections
"retrieval" and "retrieval-query-reading" for the default set, "retrieval-NAME" and
"retrieval-NAME-query-reading" for another folder). ``--json`` prints the figures and, per question,
every mode's ranked passage ids (single channels to depth 50, fused modes to 30) and the ranks of
the gold passages, for tuning fusion offline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, SHARED, git_revision, machine, write_section

DEFAULT_DATA = REPO / "bench" / "data" / "multihop"
SHARED_CORPORA = SHARED / "corpora"
KS = (2, 5, 10)
MODES = {
    "vector only": {"vector": True, "graph": False, "bm25": False},
    "BM25 only": {"vector": False, "graph": False, "bm25": True},
    "graph only": {"vector": False, "graph": True, "bm25": False},
    "hybrid (RRF of all three)": {"vector": True, "graph": True, "bm25": True},
}
# fusions of some channels, reported beside MODES (kept apart so that "modes" stays the four above)
FUSIONS = {"vector + BM25 (RRF)": {"vector": True, "graph": False, "bm25": True}}
QUERY_READING_MODES = ("graph only", "hybrid (RRF of all three)")  # the modes whose graph channel reads the query
CHANNEL_DEPTH = 50  # ranked passages kept per question for a single channel (--json), for offline fusion
FUSED_DEPTH = 30  # ... for a fused mode (the retriever's default candidates per channel)
# Source files whose change can alter what an ingest writes (a cached index warns when they changed);
# the retrieval side (kgbuild/retrieve, the CLI) is read at query time and never stales an index.
_QUERY_SIDE = ("kgbuild/retrieve/", "kgbuild/cli.py", "kgbuild/explore/", "kgbuild/llamaindex/")


class CachedQueryEmbedder:
    """An embedder that embeds the questions once, in one batch, and hands the same vectors to every mode
    (``--cache-query-vectors``: reruns while tuning spend their time on retrieval, not on the same embeddings)."""

    def __init__(self, inner, texts: list[str]):
        self._inner = inner
        unique = list(dict.fromkeys(texts))
        self._vectors = dict(zip(unique, inner.embed(unique)))

    @property
    def name(self) -> str:
        return self._inner.name

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    def embed(self, texts):
        missing = [t for t in texts if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self._inner.embed(missing)))
        return [self._vectors[t] for t in texts]


class CorpusUnavailable(Exception):
    """The shared corpus a passages.json points at is absent: the run skips."""


def load_questions(data: Path) -> list[dict]:
    questions = json.loads((data / "qa.json").read_text(encoding="utf-8"))["questions"]
    for q in questions:
        if not q.get("question") or not q.get("gold"):
            raise SystemExit(f"{data / 'qa.json'}: question {q.get('id')!r} needs 'question' and a non-empty 'gold' list")
    return questions


def build_extractor(data: Path, model: str, schema_name: str = "business-news", relation_decoding: str | None = None):
    from kgbuild.schema import load_schema

    gazetteer_file = data / "gazetteer.json"
    if model == "gazetteer":
        if not gazetteer_file.exists():
            raise SystemExit(f"--model gazetteer needs {gazetteer_file}")
        from kgbuild.extract.gazetteer import GazetteerExtractor

        spec = json.loads(gazetteer_file.read_text(encoding="utf-8"))
        schema = load_schema(spec.get("schema", "business-news"))
        return schema, GazetteerExtractor(schema, spec["entities"], [tuple(r) for r in spec.get("relations", [])], name="gazetteer")
    from kgbuild.extract.gliner import GLiNER2Extractor

    schema = load_schema(schema_name)
    decoding = {"relation_decoding": relation_decoding} if relation_decoding else {}
    return schema, GLiNER2Extractor(schema, model, device="cpu", **decoding)


def load_corpus(data: Path) -> list[dict]:
    """The passages as ``{"id", "title", "text"}`` records: ``corpus.jsonl``, or ``passages.json``'s ids in the shared corpus."""
    inline = data / "corpus.jsonl"
    if inline.exists():
        return [json.loads(line) for line in inline.read_text(encoding="utf-8").splitlines() if line.strip()]
    manifest = json.loads((data / "passages.json").read_text(encoding="utf-8"))
    source = SHARED_CORPORA / manifest["source"]["file"]
    if not source.exists():
        raise CorpusUnavailable(f"{source} is absent (the shared corpus {data / 'passages.json'} points at)")
    wanted = set(manifest["ids"])
    with source.open(encoding="utf-8") as handle:
        records = [r for r in map(json.loads, handle) if r["id"] in wanted]
    missing = wanted - {r["id"] for r in records}
    if missing:
        raise SystemExit(f"{source}: {len(missing)} passage ids of {data / 'passages.json'} are not there"
                         f" (e.g. {sorted(missing)[:3]}); regenerate with `python -m bench.make_wikihop`")
    expected = manifest["source"].get("sha256")
    if expected and hashlib.sha256(source.read_bytes()).hexdigest() != expected:
        print(f"note: {source} differs from the file {data / 'passages.json'} was made from (sha256)", file=sys.stderr)
    return sorted(records, key=lambda r: r["id"])


def code_digest(query_side: bool = False) -> str:
    """A digest of the kgbuild sources that can change what an ingest writes, or (``query_side``) of the retrieval side."""
    digest = hashlib.sha256()
    for root in ("kgbuild", "connectors"):
        for path in sorted((REPO / root).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith(_QUERY_SIDE) == query_side:
                digest.update(rel.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def drop_derived_retrieval_data(out_dir: Path) -> bool:
    """Remove what the retrieval code derives from an index and keeps beside it (``<out>/retrieval/``, the graph
    channel's matrix), so that the code now in the tree builds it again on open; whether there was any."""
    try:
        from kgbuild.retrieve.graph_matrix import retrieval_dir
        folder = Path(retrieval_dir(out_dir))
    except ImportError:
        folder = out_dir / "retrieval"
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    return True


def model_fingerprint(model: str) -> str:
    """The model's name, plus its weights' size and mtime when it is a local directory."""
    path = Path(model)
    if not path.is_dir():
        return model
    weights = sorted(f"{f.name}:{f.stat().st_size}:{int(f.stat().st_mtime)}" for f in path.iterdir() if f.is_file())
    return f"{path.resolve()}|{'|'.join(weights)}"


def prepare_index(records: list[dict], work: Path, settings, extractor, embedder, fingerprint: dict, reingest: bool,
                  keep_retrieval_data: bool = False) -> dict:
    """Ingest the corpus under ``work`` unless an index made from the same fingerprint is there; its ingest figures."""
    from kgbuild.pipeline import ingest

    stamp = work / "eval-index.json"
    corpus_text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    fingerprint = {**fingerprint, "corpus_sha256": hashlib.sha256(corpus_text.encode("utf-8")).hexdigest()}
    if stamp.exists() and settings.out_dir.is_dir() and not reingest:
        cached = json.loads(stamp.read_text(encoding="utf-8"))
        if cached.get("fingerprint") == fingerprint:
            if cached.get("ingest_code") != code_digest():
                print(f"note: kgbuild's ingest code changed since the index in {work} was built; --reingest builds it again",
                      file=sys.stderr)
            retrieval_code = code_digest(query_side=True)
            if cached.get("retrieval_code") != retrieval_code and not keep_retrieval_data:
                # the retrieval code changed: what it derived from the index and stored (the graph channel's
                # matrix) may be stale, and is keyed on the index's state only, so it is dropped and rebuilt on open
                if drop_derived_retrieval_data(settings.out_dir):
                    print("note: the retrieval code changed since the last run on this index: its stored retrieval graph"
                          " is rebuilt (--keep-retrieval-data keeps it when the change is query-time only)", file=sys.stderr)
                stamp.write_text(json.dumps({**cached, "retrieval_code": retrieval_code}, indent=1), encoding="utf-8")
            return {**cached["figures"], "cached": True, "ingested": f"git {cached.get('git', '?')}, {cached.get('date', '?')}"}
    if work.exists():
        for name in ("corpus", "index", stamp.name):
            target = work / name
            shutil.rmtree(target, ignore_errors=True) if target.is_dir() else target.unlink(missing_ok=True)
    corpus = work / "corpus"
    corpus.mkdir(parents=True)
    (corpus / "corpus.jsonl").write_text(corpus_text, encoding="utf-8")
    started = time.perf_counter()
    report = ingest(corpus, settings, extractor=extractor, embedder=embedder)
    figures = {"passages": report.documents_read, "chunks": report.chunks, "entities": report.entities,
               "relations": report.relations_kept, "ingest_s": round(time.perf_counter() - started, 2)}
    stamp.write_text(json.dumps({"fingerprint": fingerprint, "ingest_code": code_digest(),
                                 "retrieval_code": code_digest(query_side=True), "figures": figures,
                                 "git": git_revision(), "date": time.strftime("%Y-%m-%d %H:%M")}, indent=1), encoding="utf-8")
    return {**figures, "cached": False}


def evaluate(data: Path, model: str, schema_name: str = "business-news", index_dir: Path | None = None,
             reingest: bool = False, keep_retrieval_data: bool = False, query_model: bool = True,
             cache_query_vectors: bool = False, relation_decoding: str | None = None) -> dict:
    from kgbuild.embed import SentenceTransformerEmbedder
    from kgbuild.settings import Settings

    questions = load_questions(data)
    records = load_corpus(data)
    schema, extractor = build_extractor(data, model, schema_name, relation_decoding)
    embedder = SentenceTransformerEmbedder(device="cpu")
    work = index_dir.resolve() if index_dir else Path(tempfile.mkdtemp(prefix="kgbuild-retrieval-"))
    try:
        settings = Settings(out_dir=work / "index", device="cpu")
        fingerprint = {"model": model_fingerprint(model), "schema": schema.name, "schema_version": getattr(schema, "version", None),
                       "embedder": embedder.name}
        if getattr(extractor, "relation_decoding", "plain") != "plain":
            fingerprint["relation_decoding"] = extractor.relation_decoding
        if model == "gazetteer":
            fingerprint["gazetteer_sha256"] = hashlib.sha256((data / "gazetteer.json").read_bytes()).hexdigest()
        ingested = prepare_index(records, work, settings, extractor, embedder, fingerprint, reingest, keep_retrieval_data)
        if cache_query_vectors:
            embedder = CachedQueryEmbedder(embedder, [q["question"] for q in questions])
        results = {mode: run_mode(settings, questions, extractor, embedder, channels, depth=CHANNEL_DEPTH if sum(channels.values()) == 1 else FUSED_DEPTH)
                   for mode, channels in MODES.items()}
        fusions = {mode: run_mode(settings, questions, extractor, embedder, channels, depth=FUSED_DEPTH)
                   for mode, channels in FUSIONS.items()}
        by_model = {mode: run_mode(settings, questions, extractor, embedder, MODES[mode], query_model=True,
                                   depth=CHANNEL_DEPTH if mode == "graph only" else FUSED_DEPTH)
                    for mode in (QUERY_READING_MODES if query_model else ())}
    finally:
        if index_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    per_question = [{"id": q["id"], "type": q.get("type", ""), "gold": q["gold"],
                     "ranked": {**{m: r["ranked"][i] for m, r in {**results, **fusions}.items()},
                                **{f"{m} (query model)": r["ranked"][i] for m, r in by_model.items()}}}
                    for i, q in enumerate(questions)]
    for entry in per_question:
        entry["gold_ranks"] = {m: [ranked.index(g) + 1 if g in ranked else None for g in entry["gold"]]
                               for m, ranked in entry["ranked"].items()}
    for r in (*results.values(), *fusions.values(), *by_model.values()):
        del r["ranked"]
    return {"questions": len(questions), "passages": len(records), "entities": ingested["entities"],
            "relations": ingested["relations"], "chunks": ingested.get("chunks"), "ingest_s": ingested["ingest_s"],
            "index_cached": ingested["cached"], "ingested": ingested.get("ingested", ""), "model": extractor.name, "schema": schema.name, "modes": results,
            "fusions": fusions, "query_model": by_model, "query_vectors_cached": cache_query_vectors,
            "per_question": per_question}


def run_mode(settings, questions: list[dict], extractor, embedder, channels: dict, query_model: bool = False,
             depth: int = max(KS)) -> dict:
    """Recall@k (overall and per question type), answers in the top 5, ms per query and the ranked passages of one channel mix."""
    from kgbuild.retrieve.hybrid import HybridRetriever

    depth = max(depth, *KS)
    candidates = max(30, depth) if sum(channels.values()) == 1 else 30  # a fused mode keeps the retriever's default
    with HybridRetriever(settings, extractor=extractor, embedder=embedder, query_model=query_model,
                         candidates=candidates, **channels) as retriever:
        retriever.retrieve(questions[0]["question"], k=1)  # warm-up: model loads are not query time
        recall = {k: 0.0 for k in KS}
        by_type: dict[str, dict[int, float]] = {}
        type_counts: dict[str, int] = {}
        answers_found: list[str] = []
        ranked_all: list[list[str]] = []
        started = time.perf_counter()
        for q in questions:
            hits = retriever.retrieve(q["question"], k=depth)
            # a passage cut into several chunks counts once, at its best chunk's rank
            ranked = list(dict.fromkeys(h.path.rsplit("#", 1)[-1] for h in hits))
            ranked_all.append(ranked)
            kind = q.get("type", "")
            type_counts[kind] = type_counts.get(kind, 0) + 1
            for k in KS:
                share = len(set(ranked[:k]) & set(q["gold"])) / len(set(q["gold"]))
                recall[k] += share
                by_type.setdefault(kind, {kk: 0.0 for kk in KS})[k] += share
            if q.get("answer") in ranked[:5]:
                answers_found.append(q["id"])
        elapsed = time.perf_counter() - started
    label = "+".join(name for name, on in channels.items() if on) + (" (query model)" if query_model else "")
    print(f"{label}: {len(questions)} questions in {elapsed:.1f} s, recall@5 {recall[5] / len(questions):.3f}", file=sys.stderr)
    return {
        "recall": {k: round(v / len(questions), 3) for k, v in recall.items()},
        "recall_by_type": {kind: {k: round(v / type_counts[kind], 3) for k, v in values.items()}
                           for kind, values in sorted(by_type.items()) if kind},
        "answers_at_5": answers_found,
        "ms_per_query": round(1000 * elapsed / len(questions), 1),
        "ranked": ranked_all,
    }


MULTIHOP_DESCRIPTION = ("two gold passages each (the answer passage shares no content word with the question and is linked"
                        " to it through an entity of the other)")


def qa_meta(data: Path) -> tuple[str, str]:
    """How BENCHMARKS.md names the set and describes its questions (qa.json's ``name`` and ``description``)."""
    qa = json.loads((data / "qa.json").read_text(encoding="utf-8"))
    return qa.get("name", "multi-hop set"), qa.get("description", MULTIHOP_DESCRIPTION).rstrip(". ")


def section_names(data: Path) -> tuple[str, str]:
    """BENCHMARKS.md sections: "retrieval" for the default set, "retrieval-NAME" for the folder NAME."""
    base = "retrieval" if data == DEFAULT_DATA else f"retrieval-{data.name}"
    return base, f"{base}-query-reading"


def _row(name: str, r: dict) -> str:
    return f"| {name} | {r['recall'][2]:.3f} | {r['recall'][5]:.3f} | {r['recall'][10]:.3f} | {r['ms_per_query']:.1f} |"


def render(result: dict, data: Path, command: str) -> str:
    modes = result["modes"]
    name, description = qa_meta(data)
    vector_answers = set(modes["vector only"]["answers_at_5"])
    hybrid_only = sorted(set(modes["hybrid (RRF of all three)"]["answers_at_5"]) - vector_answers)
    every = {**modes, **result.get("fusions", {})}
    rows = [_row(mode, r) for mode, r in every.items()]
    extractor = ("the deterministic gazetteer extractor (`gazetteer.json`: what a perfect extractor finds) at ingest"
                 if result["model"] == "gazetteer" else f"GLiNER2 checkpoint `{result['model']}` at ingest, schema `{result['schema']}`")
    extractor += "; the graph channel finds the query's entities by name (the default, no model)"
    ingest = f"ingest {result['ingest_s']:.1f} s" + (f" (an earlier run's, {result.get('ingested', '')}; index reused)"
                                                     if result.get("index_cached") else "")
    lines = [
        f"## Retrieval: vector vs BM25 vs graph vs hybrid ({name})",
        "",
        f"Command: `{command}` (git {result.get('git') or git_revision()}, {result.get('date') or time.strftime('%Y-%m-%d')})  ",
        f"Machine: {machine()}  ",
        f"Data: `{data.relative_to(REPO) if data.is_relative_to(REPO) else data}`: {result['passages']} passages,"
        f" {result['questions']} questions, {description}. Extractor: {extractor}."
        f" {result['entities']} entities, {result['relations']} relations; {ingest}."
        " Embedder all-MiniLM-L6-v2; the graph channel, its seeds and the fusion as `kgbuild/retrieve` has them"
        " at that revision (HybridRetriever defaults). Recall@k counts distinct passages."
        + (" Query vectors embedded once, in one batch, outside ms / query (`--cache-query-vectors`)."
           if result.get("query_vectors_cached") else ""),
        "",
        "| retrieval | recall@2 | recall@5 | recall@10 | ms / query |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    kinds = sorted({kind for r in every.values() for kind in r.get("recall_by_type", {})})
    if len(kinds) > 1:
        counts = {kind: sum(1 for q in result.get("per_question", []) if q["type"] == kind) for kind in kinds}
        head = " | ".join(f"{kind} ({counts[kind]}) R@2 / R@5 / R@10" for kind in kinds)
        lines += [f"| retrieval | {head} |", "|---|" + "---|" * len(kinds)]
        for mode, r in every.items():
            cells = " | ".join("{:.3f} / {:.3f} / {:.3f}".format(*(r["recall_by_type"][kind][k] for k in KS)) for kind in kinds)
            lines.append(f"| {mode} | {cells} |")
        lines.append("")
    lines.append(f"Answer passages in the top 5 that vector-only search misses but hybrid finds: "
                 f"{', '.join(hybrid_only[:20]) + (' ...' if len(hybrid_only) > 20 else '') or 'none'}"
                 f" ({len(hybrid_only)} of {result['questions']} questions).")
    return "\n".join(lines)


def render_query_reading(result: dict, data: Path, command: str) -> str:
    """Graph and hybrid recall with the query's entities found by name (default) vs read by the extractor ("" when not run)."""
    if not result["query_model"]:
        return ""
    name, _ = qa_meta(data)
    reader = "the gazetteer extractor" if result["model"] == "gazetteer" else f"GLiNER2 checkpoint `{result['model']}`"
    rows = []
    for mode in QUERY_READING_MODES:
        for how, r in (("by name (default, no model)", result["modes"][mode]), (f"query model ({reader})", result["query_model"][mode])):
            rows.append(f"| {mode} | {how} | {r['recall'][2]:.3f} | {r['recall'][5]:.3f} | {r['recall'][10]:.3f} | {r['ms_per_query']:.1f} |")
    return "\n".join([
        f"## Retrieval: the query's entities found by name vs read by a model ({name})",
        "",
        f"Command: `{command}` (git {result.get('git') or git_revision()}, {result.get('date') or time.strftime('%Y-%m-%d')};"
        " the same run writes the vector vs BM25 vs graph vs hybrid table)  ",
        f"Machine: {machine()}  ",
        "By name: `EntityNameIndex`, the query's word n-grams looked up among the canonical entities' normalised"
        " names and aliases (longest match first, no model: what `kgbuild query --hybrid` does by default)."
        f" Query model: the query read by {reader} and its mentions matched by `EntityMatcher`"
        " (`--query-model`; a GLiNER2 load costs about 7 s per CLI call, not counted here: ms / query is after a warm-up).",
        "",
        "| retrieval | query's entities | recall@2 | recall@5 | recall@10 | ms / query |",
        "|---|---|---|---|---|---|",
        *rows,
    ])


def tree_revision() -> str:
    """HEAD, and "+ uncommitted" where kgbuild's or the connectors' sources differ from it (others edit the tree while a run goes)."""
    import subprocess

    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "kgbuild", "connectors"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        dirty = ""
    return git_revision() + (" + uncommitted kgbuild changes" if dirty else "")


def render_saved(path: Path, data: Path, write: bool = True) -> None:
    """Print (and write to BENCHMARKS.md) the tables of a run saved with ``--json``: its command, revision and date."""
    result = json.loads(path.read_text(encoding="utf-8").strip().splitlines()[-1])
    for r in (*result["modes"].values(), *result.get("fusions", {}).values(), *result["query_model"].values()):
        r["recall"] = {int(k): v for k, v in r["recall"].items()}
        r["recall_by_type"] = {kind: {int(k): v for k, v in values.items()} for kind, values in r.get("recall_by_type", {}).items()}
    command = result.get("command") or "python -m bench.retrieval_eval (command not saved)"
    body, query_reading = render(result, data, command), render_query_reading(result, data, command)
    print(body + ("\n\n" + query_reading if query_reading else ""))
    if write:
        main_section, reading_section = section_names(data)
        write_section(main_section, body)
        if query_reading:
            write_section(reading_section, query_reading)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="gazetteer", help="'gazetteer' (needs gazetteer.json) or a GLiNER2 checkpoint directory")
    parser.add_argument("--schema", default="business-news", help="extraction schema (a bundled name or a YAML file) for a GLiNER2 model")
    parser.add_argument("--index-dir", type=Path, help="keep the index here and reuse it while corpus, model, schema and embedder match")
    parser.add_argument("--reingest", action="store_true", help="with --index-dir: ingest again even if the index there matches")
    parser.add_argument("--keep-retrieval-data", action="store_true",
                        help="with --index-dir: keep the stored retrieval graph although kgbuild/retrieve changed (a query-time-only change)")
    parser.add_argument("--no-query-model", action="store_true",
                        help="skip the graph and hybrid runs that read the queries with the model (the slowest; no query-reading table)")
    parser.add_argument("--cache-query-vectors", action="store_true",
                        help="embed the questions once, in one batch, for every mode (faster reruns; ms / query then leaves the query embedding out)")
    parser.add_argument("--relation-decoding", choices=["plain", "constrained"], default=None,
                        help="a GLiNER2 model's relation decoding at ingest (default: the extractor's default)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--json", action="store_true", help="print the figures and every question's ranked passages per mode as JSON")
    parser.add_argument("--render", type=Path, metavar="FILE",
                        help="write the BENCHMARKS.md sections of the run whose --json output FILE holds (no run)")
    opts = parser.parse_args()
    if opts.render:
        render_saved(opts.render, opts.data.resolve(), write=not opts.no_write)
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data = opts.data.resolve()
    if not (data / "corpus.jsonl").exists() and not (data / "passages.json").exists():
        raise SystemExit(f"{data}: no corpus.jsonl (nor passages.json) (see `python -m bench.retrieval_eval --help` for the format)")
    if not (data / "qa.json").exists():
        raise SystemExit(f"{data}: no qa.json (see `python -m bench.retrieval_eval --help` for the format)")
    started = tree_revision(), time.strftime("%Y-%m-%d")
    command = "python -m bench.retrieval_eval" + ("" if opts.model == "gazetteer" else f" --model {opts.model}") + (
        "" if data == DEFAULT_DATA else f" --data {opts.data}") + ("" if opts.schema == "business-news" else f" --schema {opts.schema}") + (
        f" --index-dir {opts.index_dir}" if opts.index_dir else "") + (" --no-query-model" if opts.no_query_model else "") + (
        " --cache-query-vectors" if opts.cache_query_vectors else "") + (
        f" --relation-decoding {opts.relation_decoding}" if opts.relation_decoding else "")
    try:
        result = evaluate(data, opts.model, opts.schema, opts.index_dir, opts.reingest, opts.keep_retrieval_data,
                          query_model=not opts.no_query_model, cache_query_vectors=opts.cache_query_vectors,
                          relation_decoding=opts.relation_decoding)
    except CorpusUnavailable as absent:
        print(f"retrieval_eval: skipped, {absent}")
        return
    result.update(command=command, git=started[0], date=started[1])
    body = render(result, data, command)
    query_reading = render_query_reading(result, data, command)
    print(json.dumps(result) if opts.json else body + ("\n\n" + query_reading if query_reading else ""))
    if not opts.no_write:
        main_section, reading_section = section_names(data)
        write_section(main_section, body)
        if query_reading:
            write_section(reading_section, query_reading)


if __name__ == "__main__":
    main()
