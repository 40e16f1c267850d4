"""Relation P/R/F1, plain vs constrained decoding, on the held-out Re-DocRED windows with the demo checkpoint.

    python -m bench.relations_eval [--limit N] [--model DIR] [--speed-passages N] [--write]

Builds the Re-DocRED schema (``redocred.yaml``: the six entity types and 30 relation types of
``../shared/training/labels.json``, each relation's head and tail types from the same file) and the gold file
(``kgbuild labels convert heldout_redocred.jsonl --from redocred``) in a scratch folder, then runs
``kgbuild eval`` twice (``--relation-decoding plain`` and ``constrained``) through the library, and prints the
table (``--write``: into BENCHMARKS.md, section ``relations-eval``). The scratch folder is printed so the
same ``kgbuild eval`` commands can be run by hand.

The Re-DocRED schema (36 prompts) leaves the model 26 tokens of text per window, far from an ingest; so a second
table times what an ingest does: the first ``--speed-passages`` Wikipedia passages of ``../shared/corpora``
chunked as ``ingest`` chunks them and extracted with the bundled business-news schema, both ways, and counts
the relations that pass the schema's checks.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.common import SHARED, git_revision, machine, write_section

TRAINING = SHARED / "training"
DEMO_MODEL = SHARED / "models" / "gliner2-minilm-demo"
REDOCRED_TYPES = ["person", "organization", "location", "date", "number", "miscellaneous"]
# labels.json's head/tail kinds that are not Re-DocRED entity types: works and products are MISC there
_KIND = {"work": ["miscellaneous"], "product": ["miscellaneous"], "any": REDOCRED_TYPES}
# relations whose meaning is symmetric, and pairs that are each other's inverse (Re-DocRED labels both ways)
SYMMETRIC = {"spouse", "sibling"}
INVERSES = {"part_of": "has_part", "parent_organization": "subsidiary"}


def _types(kinds: str) -> list[str]:
    found: list[str] = []
    for kind in kinds.split("/"):
        for t in _KIND.get(kind, [kind]):
            if t not in found:
                found.append(t)
    return found


def redocred_schema(labels: dict) -> dict:
    relations = {}
    for name, spec in labels["relations_redocred"].items():
        source, target = _types(spec["head"]), _types(spec["tail"])
        relations[name] = {"source": source, "target": target}
        if name in SYMMETRIC:
            both = sorted(set(source) | set(target), key=REDOCRED_TYPES.index)
            relations[name].update(source=both, target=both, symmetric=True)
    for a, b in INVERSES.items():
        union_a = sorted(set(relations[a]["source"]) | set(relations[b]["target"]), key=REDOCRED_TYPES.index)
        union_b = sorted(set(relations[a]["target"]) | set(relations[b]["source"]), key=REDOCRED_TYPES.index)
        relations[a].update(source=union_a, target=union_b, inverse_of=b)
        relations[b].update(source=union_b, target=union_a, inverse_of=a)
    return {
        "name": "redocred", "version": 1, "threshold": 0.5,
        "description": "Re-DocRED entity and relation types (held-out evaluation of the demo checkpoint)",
        "entities": {t: {"description": labels["entity_labels"][t]} for t in REDOCRED_TYPES},
        "relations": relations,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N windows only")
    parser.add_argument("--model", default=str(DEMO_MODEL))
    parser.add_argument("--work", default=None, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--speed-passages", type=int, default=60, help="Wikipedia passages for the ingest-speed table")
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    args = parser.parse_args(argv)

    from kgbuild.schema import load_schema
    from kgbuild.train.convert import convert_labels
    from kgbuild.train.evaluate import evaluate

    work = Path(args.work or tempfile.mkdtemp(prefix="relations-eval-"))
    work.mkdir(parents=True, exist_ok=True)
    labels = json.loads((TRAINING / "labels.json").read_text())
    schema_path, gold = work / "redocred.yaml", work / "heldout_redocred.gold.jsonl"
    schema_path.write_text(yaml.safe_dump(redocred_schema(labels), sort_keys=False))
    schema = load_schema(schema_path)
    written = convert_labels(TRAINING / "heldout_redocred.jsonl", "redocred", gold, schema=schema)
    windows = min(written, args.limit or written)
    print(f"scratch folder {work}: {written} windows, evaluating {windows}", file=sys.stderr)

    results = {}
    for decoding in ("plain", "constrained"):
        started = time.perf_counter()
        report = evaluate(gold, schema, args.model, relation_decoding=decoding, device="cpu", limit=args.limit)
        results[decoding] = report
        r, e = report.scores.relations.micro, report.scores.entities.micro
        print(f"{decoding}: relations P {r.precision:.3f} R {r.recall:.3f} F1 {r.f1:.3f} (tp {r.tp} fp {r.fp} fn {r.fn});"
              f" entities F1 {e.f1:.3f}; {time.perf_counter() - started:.0f} s", file=sys.stderr)

    speeds = extraction_speed(args.model, args.speed_passages)

    limit = f" --limit {args.limit}" if args.limit else ""
    lines = [
        "## Relations: plain vs constrained decoding (held-out Re-DocRED windows)",
        "",
        f"Command: `python -m bench.relations_eval{limit} --write` (git {git_revision()}, {time.strftime('%Y-%m-%d')}),"
        f" which runs `kgbuild eval GOLD --schema redocred.yaml --model {Path(args.model).name}{limit}"
        " --relation-decoding plain|constrained` on the converted file (`kgbuild labels convert"
        " ../shared/training/heldout_redocred.jsonl --from redocred`)  ",
        f"Machine: {machine()}  ",
        f"Data: {windows} of the {written} held-out Re-DocRED windows"
        + (" (a subset: the first windows of the file)" if windows < written else "")
        + f"; schema: 6 entity types, {len(schema.relations)} relation types with head/tail types from labels.json,"
          " spouse and sibling `symmetric`, part_of/has_part and parent_organization/subsidiary `inverse_of`;"
          " threshold 0.5; model `gliner2-minilm-demo`, CPU.",
        "",
        "| decoding | relation P | relation R | relation F1 | tp / fp / fn | relation macro F1 | entity F1 (exact) | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for decoding, report in results.items():
        r, e = report.scores.relations.micro, report.scores.entities.micro
        lines.append(f"| {decoding} | {r.precision:.3f} | {r.recall:.3f} | **{r.f1:.3f}** | {r.tp} / {r.fp} / {r.fn} |"
                     f" {report.scores.relations.macro['f1']:.3f} | {e.f1:.3f} | {report.seconds:.0f} |")
    best = max(results, key=lambda d: results[d].scores.relations.micro.f1)
    lines += ["", f"Better relation F1: **{best}**.", "",
              f"Ingest speed: the first {args.speed_passages} passages of ../shared/corpora/wiki-passages.jsonl, chunked as"
              " `ingest` chunks them, extracted in one process with the bundled business-news schema (6 entity types,"
              " 4 relations, 1 classification) and the same model; model seconds after a warm-up, relations that pass"
              " the schema's checks (`link_extraction`).", "",
              "| decoding | chunks | model s | chunks/s | x plain time | relations kept | entities kept |",
              "|---|---|---|---|---|---|---|"]
    for decoding, speed in speeds.items():
        lines.append(f"| {decoding} | {speed['chunks']} | {speed['seconds']:.1f} | {speed['chunks'] / speed['seconds']:.2f} |"
                     f" {speed['seconds'] / speeds['plain']['seconds']:.2f} | {speed['relations']} | {speed['entities']} |")
    body = "\n".join(lines)
    print(body)
    (work / "results.json").write_text(json.dumps({d: r.to_dict() for d, r in results.items()}, indent=1))
    if args.write:
        write_section("relations-eval", body)
    return 0


STOCK_SEARCH = "constrained (gliner2's own candidates and beam search)"


def _use_gliner2s_own_search(extractor) -> None:
    """The extractor's joint decoder on gliner2's stock candidate builder and beam search (kgbuild.extract.joint_search
    makes the same choices faster): the 'before' of that speed-up."""
    from gliner2.joint_ie import JointIEEngine

    from kgbuild.extract.constrained import build_joint_schema

    extractor.warm_up()
    joint = extractor._joint
    joint.engine = JointIEEngine(extractor.model, device=next(extractor.model.parameters()).device)
    joint.compiled = joint.engine.compile_schema(build_joint_schema(extractor.schema))


def extraction_speed(model: str, passages: int) -> dict[str, dict]:
    """Model seconds and what survives the schema checks, per decoding, on an ingest's chunks of real passages."""
    from kgbuild.chunk import TokenChunker
    from kgbuild.extract.gliner import GLiNER2Extractor
    from kgbuild.extract.runner import extract_chunks
    from kgbuild.schema import load_schema
    from kgbuild.settings import Settings
    from kgbuild.timing import StageTimer
    from kgbuild.types import Document

    schema, settings = load_schema(None), Settings()
    rows = [json.loads(line) for line in (SHARED / "corpora" / "wiki-passages.jsonl").open(encoding="utf-8")][:passages]
    results = {}
    for decoding in ("plain", "constrained", STOCK_SEARCH):
        extractor = GLiNER2Extractor(schema, model, device="cpu", relation_decoding=decoding.split()[0])
        if decoding == STOCK_SEARCH:
            _use_gliner2s_own_search(extractor)
        budget = min(settings.chunk_size, extractor.max_text_tokens())
        chunker = TokenChunker(extractor.token_counter(), budget, min(settings.chunk_overlap, budget // 2))
        chunks = [chunk for i, row in enumerate(rows) for chunk in chunker.chunk(
            Document(f"p{i}", f"p{i}", "", row.get("title", ""), row["text"], 0.0, ""))]
        extract_chunks(extractor, schema, chunks[:8], window=64, timer=StageTimer(), on_done=lambda n: None)  # warm-up
        started = time.perf_counter()
        found = extract_chunks(extractor, schema, chunks, window=64, timer=StageTimer(), on_done=lambda n: None)
        seconds = time.perf_counter() - started
        kept = [r for r in found if not isinstance(r, str)]
        results[decoding] = {"chunks": len(chunks), "seconds": seconds,
                             "relations": sum(len(r.relations) for r in kept), "entities": sum(len(r.mentions) for r in kept)}
        print(f"{decoding}: {len(chunks)} chunks in {seconds:.1f} s, {results[decoding]['relations']} relations kept",
              file=sys.stderr)
    return results


if __name__ == "__main__":
    sys.exit(main())
