"""Retrieval evaluation: recall@2/5/10 of vector-only, BM25-only, graph-only and hybrid retrieval, in one run.

    python -m bench.retrieval_eval [--data DIR] [--model DIR|gazetteer] [--no-write] [--json]

Input: a folder (default ``bench/data/multihop``, the project's own multi-hop set) holding

- ``corpus.jsonl``: one passage per line, ``{"id": "p01", "title": "...", "text": "..."}``;
- ``qa.json``: ``{"questions": [{"id": "q01", "question": "...", "gold": ["p01", "p02"]}, ...]}``,
  ``gold`` being the ids of the passages that support the answer (``answer``, optional: the one
  passage that holds it);
- ``gazetteer.json`` (optional): ``{"schema": "business-news", "entities": {TYPE: [names]},
  "relations": [[head, LABEL, tail]]}`` for the deterministic gazetteer extractor.

The corpus is ingested once (``--model gazetteer``, the default where gazetteer.json exists: the
deterministic dictionary extractor; or a GLiNER2 checkpoint directory, which then also reads the
queries). Recall@k of a question is the share of its gold passages among the first k results,
averaged over the questions. The graph and hybrid modes run twice: with the query's entities
found by name (the default, no model) and read by the extractor (``query_model=True``). Writes the
tables to BENCHMARKS.md (sections "retrieval" and "retrieval-query-reading").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import REPO, git_revision, machine, write_section

DEFAULT_DATA = REPO / "bench" / "data" / "multihop"
KS = (2, 5, 10)
MODES = {
    "vector only": {"vector": True, "graph": False, "bm25": False},
    "BM25 only": {"vector": False, "graph": False, "bm25": True},
    "graph only": {"vector": False, "graph": True, "bm25": False},
    "hybrid (RRF of all three)": {"vector": True, "graph": True, "bm25": True},
}
QUERY_READING_MODES = ("graph only", "hybrid (RRF of all three)")  # the modes whose graph channel reads the query


def load_questions(data: Path) -> list[dict]:
    questions = json.loads((data / "qa.json").read_text(encoding="utf-8"))["questions"]
    for q in questions:
        if not q.get("question") or not q.get("gold"):
            raise SystemExit(f"{data / 'qa.json'}: question {q.get('id')!r} needs 'question' and a non-empty 'gold' list")
    return questions


def build_extractor(data: Path, model: str):
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

    schema = load_schema("business-news")
    return schema, GLiNER2Extractor(schema, model, device="cpu")


def evaluate(data: Path, model: str) -> dict:
    from kgbuild.embed import SentenceTransformerEmbedder
    from kgbuild.pipeline import ingest
    from kgbuild.settings import Settings

    questions = load_questions(data)
    schema, extractor = build_extractor(data, model)
    embedder = SentenceTransformerEmbedder(device="cpu")
    work = Path(tempfile.mkdtemp(prefix="kgbuild-retrieval-"))
    try:
        corpus = work / "corpus"
        corpus.mkdir()
        shutil.copy(data / "corpus.jsonl", corpus / "corpus.jsonl")
        settings = Settings(out_dir=work / "index", device="cpu")
        started = time.perf_counter()
        report = ingest(corpus, settings, extractor=extractor, embedder=embedder)
        ingest_s = time.perf_counter() - started
        results = {mode: run_mode(settings, questions, extractor, embedder, channels) for mode, channels in MODES.items()}
        by_model = {mode: run_mode(settings, questions, extractor, embedder, MODES[mode], query_model=True)
                    for mode in QUERY_READING_MODES}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"questions": len(questions), "passages": report.documents_read, "entities": report.entities,
            "relations": report.relations_kept, "ingest_s": round(ingest_s, 2), "model": extractor.name, "modes": results,
            "query_model": by_model}


def run_mode(settings, questions: list[dict], extractor, embedder, channels: dict, query_model: bool = False) -> dict:
    """Recall@k, answers in the top 5 and ms per query of one channel mix over the questions."""
    from kgbuild.retrieve.hybrid import HybridRetriever

    with HybridRetriever(settings, extractor=extractor, embedder=embedder, query_model=query_model, **channels) as retriever:
        retriever.retrieve(questions[0]["question"], k=1)  # warm-up: model loads are not query time
        recall = {k: 0.0 for k in KS}
        answers_found: list[str] = []
        started = time.perf_counter()
        for q in questions:
            ranked = [h.path.rsplit("#", 1)[-1] for h in retriever.retrieve(q["question"], k=max(KS))]
            for k in KS:
                recall[k] += len(set(ranked[:k]) & set(q["gold"])) / len(set(q["gold"]))
            if q.get("answer") in ranked[:5]:
                answers_found.append(q["id"])
        elapsed = time.perf_counter() - started
    return {
        "recall": {k: round(v / len(questions), 3) for k, v in recall.items()},
        "answers_at_5": answers_found,
        "ms_per_query": round(1000 * elapsed / len(questions), 1),
    }


def render(result: dict, data: Path, command: str) -> str:
    modes = result["modes"]
    vector_answers = set(modes["vector only"]["answers_at_5"])
    hybrid_only = sorted(set(modes["hybrid (RRF of all three)"]["answers_at_5"]) - vector_answers)
    rows = [f"| {mode} | {r['recall'][2]:.3f} | {r['recall'][5]:.3f} | {r['recall'][10]:.3f} | {r['ms_per_query']:.1f} |"
            for mode, r in modes.items()]
    extractor = ("the deterministic gazetteer extractor (`gazetteer.json`: what a perfect extractor finds) at ingest"
                 if result["model"] == "gazetteer" else f"GLiNER2 checkpoint `{result['model']}` at ingest")
    extractor += "; the graph channel finds the query's entities by name (the default, no model)"
    return "\n".join([
        "## Retrieval: vector vs BM25 vs graph vs hybrid (multi-hop set)",
        "",
        f"Command: `{command}` (git {git_revision()}, {time.strftime('%Y-%m-%d')})  ",
        f"Machine: {machine()}  ",
        f"Data: `{data.relative_to(REPO) if data.is_relative_to(REPO) else data}`: {result['passages']} passages,"
        f" {result['questions']} questions, two gold passages each (the answer passage shares no content word with the"
        f" question and is linked to it through an entity of the other). Extractor: {extractor}."
        f" {result['entities']} entities, {result['relations']} relations; ingest {result['ingest_s']:.1f} s."
        " Embedder all-MiniLM-L6-v2; graph expansion 2 hops, personalised PageRank; fusion RRF (k = 60).",
        "",
        "| retrieval | recall@2 | recall@5 | recall@10 | ms / query |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"Answer passages in the top 5 that vector-only search misses but hybrid finds: {', '.join(hybrid_only) or 'none'}"
        f" ({len(hybrid_only)} of {result['questions']} questions).",
    ])


def render_query_reading(result: dict, command: str) -> str:
    """Graph and hybrid recall with the query's entities found by name (default) vs read by the extractor."""
    reader = "the gazetteer extractor" if result["model"] == "gazetteer" else f"GLiNER2 checkpoint `{result['model']}`"
    rows = []
    for mode in QUERY_READING_MODES:
        for how, r in (("by name (default, no model)", result["modes"][mode]), (f"query model ({reader})", result["query_model"][mode])):
            rows.append(f"| {mode} | {how} | {r['recall'][2]:.3f} | {r['recall'][5]:.3f} | {r['recall'][10]:.3f} | {r['ms_per_query']:.1f} |")
    return "\n".join([
        "## Retrieval: the query's entities found by name vs read by a model (multi-hop set)",
        "",
        f"Command: `{command}` (git {git_revision()}, {time.strftime('%Y-%m-%d')}; the same run writes the vector vs BM25 vs graph vs hybrid table)  ",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--model", default="gazetteer", help="'gazetteer' (needs gazetteer.json) or a GLiNER2 checkpoint directory")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    opts = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data = opts.data.resolve()
    for name in ("corpus.jsonl", "qa.json"):
        if not (data / name).exists():
            raise SystemExit(f"{data}: no {name} (see `python -m bench.retrieval_eval --help` for the format)")
    result = evaluate(data, opts.model)
    command = "python -m bench.retrieval_eval" + ("" if opts.model == "gazetteer" else f" --model {opts.model}") + (
        "" if data == DEFAULT_DATA else f" --data {opts.data}")
    body = render(result, data, command)
    query_reading = render_query_reading(result, command)
    print(json.dumps(result) if opts.json else body + "\n\n" + query_reading)
    if not opts.no_write:
        write_section("retrieval", body)
        write_section("retrieval-query-reading", query_reading)


if __name__ == "__main__":
    main()
