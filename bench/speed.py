"""P1–P5: kgbuild ingest against the model's own speed, on the base-size benchmark checkpoint.

Every ratio divides two timings taken in this one process, on exactly the same chunks: the plain
loop gets the texts kgbuild's own chunker cut from the same documents, and the ingest report's chunk
count is checked against them. Models are loaded and warmed before any timing on both sides.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench.common import SHARED, Section, peak_rss_mib

CORPUS = SHARED / "corpora" / "wiki-passages.jsonl"
DEMO_MODEL = SHARED / "models" / "gliner2-minilm-demo"
PASSAGES_PER_DOCUMENT = 8  # passages joined into document-length texts (about 2 chunks each)
BENCH_THRESHOLD = 0.99  # the random-weight model scores near 0.5 everywhere: keep decoding out of the timing
BATCH_SIZE = 8


@dataclass
class Workload:
    documents: list[tuple[str, str]]  # (id, text)
    chunk_texts: list[str]  # what kgbuild's chunker cuts from them, in order

    def write_corpus(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "documents.jsonl", "w", encoding="utf-8") as out:
            for doc_id, text in self.documents:
                out.write(json.dumps({"id": doc_id, "title": "", "text": text}) + "\n")
        return folder


def build_workload(extractor: Any, settings: Any, chunks_wanted: int) -> Workload:
    """The first documents of the corpus (passages joined) until kgbuild's chunker has cut chunks_wanted chunks."""
    from kgbuild.chunk import TokenChunker
    from kgbuild.read import ReadOptions, read_file
    from kgbuild.types import SourceFile

    budget = min(settings.chunk_size, extractor.max_text_tokens())
    chunker = TokenChunker(extractor.token_counter(), budget, min(settings.chunk_overlap, budget // 2),
                           headers=settings.title_header)
    documents: list[tuple[str, str]] = []
    chunk_texts: list[str] = []
    with open(CORPUS, encoding="utf-8") as lines:
        passages = [json.loads(line)["text"] for line in lines]
    with tempfile.TemporaryDirectory() as tmp:
        for start in range(0, len(passages), PASSAGES_PER_DOCUMENT):
            if len(chunk_texts) >= chunks_wanted:
                break
            documents.append((f"doc{start // PASSAGES_PER_DOCUMENT:05d}", " ".join(passages[start : start + PASSAGES_PER_DOCUMENT])))
            # read the document back through kgbuild's reader, so the text is exactly what ingest chunks
            Workload(documents[-1:], []).write_corpus(Path(tmp))
            path = Path(tmp) / "documents.jsonl"
            source = SourceFile(path=str(path), rel_path="documents.jsonl", size=path.stat().st_size, mtime=path.stat().st_mtime)
            for document in read_file(source, ReadOptions()):
                chunk_texts.extend(chunk.text for chunk in chunker.chunk(document))
    return Workload(documents, chunk_texts)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def plain_batch_extract(model: Any, gliner_schema: Any, texts: list[str]) -> list[dict]:
    """What a user of gliner2 writes: one batch_extract over the texts, fp32, in their order."""
    return model.batch_extract(
        texts, gliner_schema, batch_size=BATCH_SIZE, threshold=BENCH_THRESHOLD, include_confidence=True, include_spans=True
    )


class Bench:
    """Holds the loaded models and the timings P1–P5 share."""

    def __init__(self, quick: bool, device: str, work: Path):
        from bench.model import base_checkpoint
        from kgbuild.embed import SentenceTransformerEmbedder
        from kgbuild.extract.gliner import GLiNER2Extractor
        from kgbuild.schema import load_schema
        from kgbuild.settings import Settings

        self.quick = quick
        self.device = device
        self.work = work
        self.checkpoint = base_checkpoint()
        self.schema = load_schema("business-news").with_threshold(BENCH_THRESHOLD)
        self.fp32 = GLiNER2Extractor(self.schema, str(self.checkpoint), device=device, batch_size=BATCH_SIZE,
                                     precision="fp32", fast_attention=False)
        self.fast = GLiNER2Extractor(self.schema, str(self.checkpoint), device=device, batch_size=BATCH_SIZE)
        self.embedder = SentenceTransformerEmbedder(device=device)
        for model in (self.fp32, self.fast, self.embedder):
            model.warm_up()
        self.settings = lambda out, **extra: Settings(out_dir=out, threshold=BENCH_THRESHOLD, batch_size=BATCH_SIZE,
                                                      device=device, **extra)
        self.workload = build_workload(self.fp32, self.settings(work / "unused"), 16 if quick else 96)
        self.corpus = self.workload.write_corpus(work / "corpus")
        self.texts = self.workload.chunk_texts
        # one small pass each, so first-call costs (allocator, kernel selection) stay out of the timings
        plain_batch_extract(self.fp32.model, self.fp32._gliner_schema, self.texts[:2])
        self.fast.extract(self.texts[:2])
        self.embedder.embed(self.texts[:2])
        self.times: dict[str, float] = {}

    def ingest(self, name: str, extractor: Any) -> Any:
        from kgbuild.pipeline import ingest

        out = self.work / f"out-{name}"
        seconds, report = timed(lambda: ingest(self.corpus, self.settings(out), extractor=extractor, embedder=self.embedder))
        if report.chunks != len(self.texts):
            raise SystemExit(f"bench: ingest cut {report.chunks} chunks, the plain loop got {len(self.texts)}")
        self.times[name] = seconds
        return report

    def description(self) -> str:
        from bench.model import describe_short

        return (f"Model: {describe_short(self.checkpoint)}, random weights (stands for `fastino/gliner2-base-v1`),"
                f" threshold {BENCH_THRESHOLD} (an untrained model scores near 0.5 everywhere; decoding is kept out)."
                f" Schema business-news (entities, relations and a classification in one pass), device {self.device},"
                f" batch size {BATCH_SIZE}; embedder all-MiniLM-L6-v2. Data: {len(self.workload.documents)} documents"
                f" of {PASSAGES_PER_DOCUMENT} passages from wiki-passages.jsonl, {len(self.texts)} chunks.")


def stage_breakdown(report: Any) -> str:
    return ", ".join(f"{name} {seconds:.2f} s ({100 * seconds / report.elapsed_s:.1f}%)"
                     for name, seconds in report.time_breakdown() if seconds >= 0.005)


def p1_overhead(bench: Bench) -> Section:
    section = Section("P1", "overhead of the pipeline over the model's own loop")
    section.setup = bench.description()
    plain_s, _ = timed(lambda: plain_batch_extract(bench.fp32.model, bench.fp32._gliner_schema, bench.texts))
    embed_s, _ = timed(lambda: bench.embedder.embed(bench.texts))
    report = bench.ingest("fp32", bench.fp32)
    bench.times["plain"] = plain_s
    bench.times["embed"] = embed_s
    ratio = bench.times["fp32"] / (plain_s + embed_s)
    section.row("plain `batch_extract`, fp32", f"{plain_s:.2f} s ({len(bench.texts) / plain_s:.2f} chunks/s)")
    section.row("embedding the same chunks", f"{embed_s:.2f} s")
    section.row("`kgbuild ingest` (library call), fp32, fast path off", f"{bench.times['fp32']:.2f} s")
    section.row("**ingest ÷ (batch_extract + embedding)**", f"**{ratio:.3f}**")
    section.row("where the ingest's time went", stage_breakdown(report))
    section.target("P1 overhead ≤ 1.05", ratio <= 1.05)
    section.figures.update(plain_s=plain_s, embed_s=embed_s, ingest_fp32_s=bench.times["fp32"], ratio=ratio,
                           stages=report.stage_seconds)
    return section


def p2_fast_path(bench: Bench) -> Section:
    section = Section("P2", "the fast path against the plain fp32 loop")
    report = bench.ingest("fast", bench.fast)
    model_s, _ = timed(lambda: bench.fast.extract(bench.texts))
    ratio = bench.times["fast"] / bench.times["plain"]
    runtime = ", ".join(f"{k} {v}" for k, v in report.model_runtime.items())
    section.setup = (f"Same model, chunks and machine as P1. Fast path as shipped (defaults): {runtime}; batches of"
                     " similar length.")
    section.row("plain `batch_extract`, fp32 (from P1)", f"{bench.times['plain']:.2f} s")
    section.row("the fast path's model calls alone (`GLiNER2Extractor.extract`)",
                f"{model_s:.2f} s ({bench.times['plain'] / model_s:.2f}× the plain loop)")
    section.row("`kgbuild ingest` end to end, fast path on (includes embedding and writes)",
                f"{bench.times['fast']:.2f} s ({len(bench.texts) / bench.times['fast']:.2f} chunks/s)")
    section.row("**ingest ÷ plain batch_extract**", f"**{ratio:.3f}**")
    section.row("where the ingest's time went", stage_breakdown(report))
    section.target("P2 fast ingest ÷ plain fp32 loop ≤ 0.5", ratio <= 0.5)
    agreement = base_model_agreement(bench)
    section.row("base model, encoder output, DisentangledFlash fp32 vs eager fp32",
                f"relative error {agreement['flash_fp32']:.1e}")
    section.row("base model, encoder output, fast path (bf16 + DisentangledFlash) vs eager fp32",
                f"relative error {agreement['fast']:.1e}, min cosine {agreement['fast_cos']:.5f}")
    section.figures.update(ingest_fast_s=bench.times["fast"], model_fast_s=model_s, ratio=ratio, stages=report.stage_seconds,
                           runtime=report.model_runtime, base_agreement=agreement)
    return section


def base_model_agreement(bench: Bench) -> dict[str, float]:
    """Encoder outputs of the fast path vs eager fp32 on real text (the random model has no entities to compare)."""
    import torch

    tokenizer = bench.fp32.model.processor.tokenizer
    batch = tokenizer(bench.texts[:8], padding=True, truncation=True, max_length=512, return_tensors="pt")
    batch = {k: v.to(next(bench.fp32.model.parameters()).device) for k, v in batch.items()}
    mask = batch["attention_mask"].bool()

    def encode(extractor: Any, cast: Any) -> Any:
        with torch.inference_mode(), cast:
            return extractor.model.encoder(**batch).last_hidden_state.float()[mask]

    from kgbuild.extract.gliner import GLiNER2Extractor

    # its own model: DisentangledFlash caches position projections in the dtype of the first call
    flash = GLiNER2Extractor(bench.schema, str(bench.checkpoint), device=bench.device, precision="fp32")
    eager = encode(bench.fp32, contextlib.nullcontext())
    flash_fp32 = encode(flash, contextlib.nullcontext())
    fast = encode(bench.fast, bench.fast._autocast())
    rel = lambda x: float((x - eager).norm() / eager.norm())  # noqa: E731
    cos = torch.nn.functional.cosine_similarity(fast, eager, dim=-1).min()
    return {"flash_fp32": rel(flash_fp32), "fast": rel(fast), "fast_cos": float(cos)}


def demo_agreement(device: str, quick: bool) -> Section:
    """P2's output agreement, on the MiniLM demo checkpoint (real weights, so real entities)."""
    section = Section("P2-agreement", "fast path vs plain fp32 outputs, on the MiniLM demo checkpoint")
    if not DEMO_MODEL.exists():
        section.notes.append(f"skipped: the demo checkpoint is not at {DEMO_MODEL}")
        return section
    from kgbuild.extract.gliner import GLiNER2Extractor, parse_gliner_output
    from kgbuild.schema import load_schema
    from kgbuild.settings import Settings

    schema = load_schema("business-news")
    plain = GLiNER2Extractor(schema, str(DEMO_MODEL), device=device, precision="fp32", fast_attention=False)
    fast = GLiNER2Extractor(schema, str(DEMO_MODEL), device=device)
    plain.warm_up()
    fast.warm_up()
    texts = build_workload(plain, Settings(), 64 if quick else 256).chunk_texts
    threshold = schema.threshold
    plain.extract(texts[:2])
    fast.extract(texts[:2])
    plain_s, outputs = timed(lambda: plain.model.batch_extract(texts, plain._gliner_schema, batch_size=BATCH_SIZE, threshold=threshold,
                                                               include_confidence=True, include_spans=True))
    fast_s, fast_raw = timed(lambda: fast.extract(texts))
    plain_raw = [parse_gliner_output(o, schema) for o in outputs]
    figures = compare_extractions(plain_raw, fast_raw)
    section.setup = (f"Checkpoint `{DEMO_MODEL.name}` (MiniLM encoder, trained), schema business-news at its own threshold"
                     f" ({threshold}), {len(texts)} chunks; fast path: precision {fast.resolved_precision},"
                     f" attention {fast.attention} (DisentangledFlash is for DeBERTa only), length-sorted batches.")
    section.row("entities kept, fp32 / fast path", f"{figures['plain_entities']} / {figures['fast_entities']}")
    section.row("**fp32 entities also kept by the fast path** (same chunk, type, start, end)", f"**{figures['kept_share']:.2%}**")
    section.row("identical over both (intersection ÷ union)", f"{figures['jaccard']:.2%}")
    section.row("span score difference on common entities: max / mean", f"{figures['max_diff']:.4f} / {figures['mean_diff']:.4f}")
    section.row("classification labels identical", f"{figures['class_share']:.2%}")
    section.row("model time fp32 → fast path", f"{plain_s:.2f} s → {fast_s:.2f} s ({plain_s / fast_s:.2f}×)")
    section.target("P2 agreement ≥ 98% of kept entities identical", figures["kept_share"] >= 0.98 and figures["jaccard"] >= 0.98)
    section.notes.append("Tolerance stated: span scores within 0.05 of fp32; entities within 0.05 of the threshold can"
                         " flip, which is what the ≤ 2% difference is.")
    section.target("span scores within 0.05", figures["max_diff"] <= 0.05)
    section.figures.update(figures, plain_s=plain_s, fast_s=fast_s)
    return section


def compare_extractions(reference: list[Any], candidate: list[Any]) -> dict[str, float]:
    def spans(raws: list[Any]) -> dict[tuple, float]:
        return {(k, s.label, s.start, s.end): s.confidence for k, raw in enumerate(raws) for s in raw.entities}

    ref, cand = spans(reference), spans(candidate)
    common = ref.keys() & cand.keys()
    diffs = [abs(ref[key] - cand[key]) for key in common]
    def labels(raw: Any) -> dict[str, list[str]]:
        return {task: [score.label for score in scores] for task, scores in raw.classifications.items()}

    classes = [labels(a) == labels(b) for a, b in zip(reference, candidate)]
    return {
        "plain_entities": len(ref),
        "fast_entities": len(cand),
        "kept_share": len(common) / max(len(ref), 1),
        "jaccard": len(common) / max(len(ref.keys() | cand.keys()), 1),
        "max_diff": max(diffs, default=0.0),
        "mean_diff": sum(diffs) / max(len(diffs), 1),
        "class_share": sum(classes) / max(len(classes), 1),
    }


def one_vs_three_passes(bench: Bench, schema: Any) -> dict[str, Any]:
    """Seconds for one multi-task pass and for one pass per task, on the same loaded model and chunks."""
    from kgbuild.extract.gliner import GLiNER2Extractor

    parts = {
        "entities": schema.model_copy(update={"relations": {}, "classifications": {}, "structures": {}}),
        "relations": schema.model_copy(update={"entities": {}, "classifications": {}, "structures": {}}),
        "classification": schema.model_copy(update={"entities": {}, "relations": {}, "structures": {}}),
    }
    one = GLiNER2Extractor(schema, bench.fast.model, device=bench.device, batch_size=BATCH_SIZE)
    passes = {name: GLiNER2Extractor(part, bench.fast.model, device=bench.device, batch_size=BATCH_SIZE) for name, part in parts.items()}
    one_s, _ = timed(lambda: one.extract(bench.texts))
    three = {name: timed(lambda e=extractor: e.extract(bench.texts))[0] for name, extractor in passes.items()}
    tokens = {name: extractor._schema_tokens for name, extractor in passes.items()}
    text_tokens = sum(len(one.token_counter().token_spans(t)) for t in bench.texts) / len(bench.texts)
    # every pass encodes its schema prompt + the text: with a cost linear in tokens the ratio would be
    # (3 text + the three prompts) / (text + the whole prompt)
    token_ratio = (3 * text_tokens + sum(tokens.values())) / (text_tokens + one._schema_tokens)
    return {"one_s": one_s, "three": three, "ratio": sum(three.values()) / one_s, "prompt_tokens": one._schema_tokens,
            "part_tokens": tokens, "text_tokens": text_tokens, "token_ratio": token_ratio}


def lean_schema(schema: Any) -> Any:
    """The same labels without descriptions: a much shorter prompt."""
    return schema.model_copy(update={
        "entities": {k: v.model_copy(update={"description": ""}) for k, v in schema.entities.items()},
        "relations": {k: v.model_copy(update={"description": ""}) for k, v in schema.relations.items()},
        "classifications": {k: v.model_copy(update={"labels": {label: "" for label in v.labels}})
                            for k, v in schema.classifications.items()},
    })


def p3_one_pass(bench: Bench) -> Section:
    section = Section("P3", "one multi-task pass vs separate entity, relation and classification passes")
    described = one_vs_three_passes(bench, bench.schema)
    lean = one_vs_three_passes(bench, lean_schema(bench.schema))
    section.setup = ("Same model and chunks as P1, fast path on for all passes (the same loaded model);"
                     f" {described['text_tokens']:.0f} text tokens per chunk on average. Two schemas: business-news as"
                     " shipped (every type described) and the same labels without descriptions.")
    for name, run in (("business-news", described), ("labels only", lean)):
        parts = ", ".join(f"{n} {t}" for n, t in run["part_tokens"].items())
        section.row(f"{name}: prompt tokens, all tasks / per task", f"{run['prompt_tokens']} / {parts}")
        section.row(f"{name}: one pass / three passes",
                    f"{run['one_s']:.2f} s / {sum(run['three'].values()):.2f} s ("
                    + ", ".join(f"{n} {t:.2f}" for n, t in run["three"].items()) + ")")
        section.row(f"**{name}: three passes ÷ one pass**", f"**{run['ratio']:.2f}×** (tokens encoded: {run['token_ratio']:.2f}×)")
    section.target("P3 one pass ≥ 2.5× faster than three (business-news)", described["ratio"] >= 2.5)
    section.target("P3 one pass ≥ 2.5× faster than three (labels only)", lean["ratio"] >= 2.5)
    section.notes.append(
        "Why the target is out of reach here: GLiNER2 encodes the schema prompt together with the text in every pass,"
        " so one pass saves re-encoding the text twice, not the prompts. The ratio is bounded by the tokens encoded,"
        " (3·text + prompt) ÷ (text + prompt), which reaches 2.5 only when the text is at least 3× the prompt. With"
        " business-news's 272-token prompt and a 512-token window that cannot happen (the text gets at most 236 tokens);"
        " without descriptions the prompt is 108 tokens, and 2.5× needs chunks of about 330 tokens or more. The measured"
        " ratio follows the token ratio (a little below it: decoding is per pass, and shorter sequences attend more cheaply)."
    )
    section.figures.update(described=described, lean=lean)
    return section


def llamaindex_seconds(extractor: Any, embedder: Any, documents: list[tuple[str, str]], budget: int) -> tuple[float, int]:
    """PropertyGraphIndex.from_documents with kgbuild's extractor component and embedder: seconds, nodes."""
    from llama_index.core import Document, PropertyGraphIndex
    from llama_index.core.node_parser import SentenceSplitter

    from kgbuild.llamaindex import KgbuildEmbedding, KgbuildExtractor

    tokenizer = extractor.model.processor.tokenizer
    li_documents = [Document(text=text, id_=doc_id) for doc_id, text in documents]

    def build() -> Any:
        return PropertyGraphIndex.from_documents(
            li_documents,
            kg_extractors=[KgbuildExtractor(extractor.schema, extractor=extractor, batch_size=BATCH_SIZE)],
            embed_model=KgbuildEmbedding(embedder=embedder),
            transformations=[SentenceSplitter(chunk_size=budget, chunk_overlap=32, tokenizer=tokenizer.tokenize)],
            show_progress=False,
        )

    seconds, index = timed(build)
    return seconds, len(index.docstore.docs)


def p4_llamaindex(bench: Bench) -> Section:
    section = Section("P4", "kgbuild ingest vs LlamaIndex PropertyGraphIndex.from_documents")
    budget = min(bench.settings(bench.work).chunk_size, bench.fast.max_text_tokens())
    base_li_s, base_nodes = llamaindex_seconds(bench.fast, bench.embedder, bench.workload.documents, budget)
    base_ratio = base_li_s / bench.times["fast"]
    section.setup = ("The same documents on both sides; LlamaIndex runs kgbuild's own extractor component (`KgbuildExtractor`,"
                     " the same loaded model and fast path) and the same embedder, its SentenceSplitter cutting chunks of"
                     " the same token budget with the model's tokenizer, into its default in-memory stores"
                     " (`embed_kg_nodes` on: it also embeds every entity). Two models: the base-size benchmark model,"
                     " which at threshold 0.99 extracts nothing, so only the shared model pass and the chunk work"
                     " count; and the MiniLM demo checkpoint, which extracts real entities (about 18 per chunk).")
    section.row(f"base model: `kgbuild ingest`, fast path (from P2)", f"{bench.times['fast']:.2f} s, {len(bench.texts)} chunks")
    section.row(f"base model: `PropertyGraphIndex.from_documents`", f"{base_li_s:.2f} s, {base_nodes} nodes")
    section.row("base model: LlamaIndex ÷ kgbuild", f"{base_ratio:.2f}×")
    section.figures.update(base_llamaindex_s=base_li_s, base_kgbuild_s=bench.times["fast"], base_ratio=base_ratio)
    if not DEMO_MODEL.exists():
        section.notes.append(f"The demo-checkpoint half is skipped: the checkpoint is not at {DEMO_MODEL}.")
        section.target("P4 kgbuild ≥ 1.5× faster than PropertyGraphIndex (base model)", base_ratio >= 1.5)
        return section

    from kgbuild.extract.gliner import GLiNER2Extractor
    from kgbuild.pipeline import ingest
    from kgbuild.schema import load_schema

    demo = GLiNER2Extractor(load_schema("business-news"), str(DEMO_MODEL), device=bench.device, batch_size=BATCH_SIZE)
    demo.warm_up()
    settings = lambda out: bench.settings(out).model_copy(update={"threshold": None})  # noqa: E731
    workload = build_workload(demo, settings(bench.work), 64 if bench.quick else 256)
    corpus = workload.write_corpus(bench.work / "corpus-demo")
    demo.extract(workload.chunk_texts[:2])
    budget = min(settings(bench.work).chunk_size, demo.max_text_tokens())
    kg_s, report = timed(lambda: ingest(corpus, settings(bench.work / "out-demo"), extractor=demo, embedder=bench.embedder))
    li_s, nodes = llamaindex_seconds(demo, bench.embedder, workload.documents, budget)
    ratio = li_s / kg_s
    section.row("demo checkpoint: `kgbuild ingest`, fast path",
                f"{kg_s:.2f} s, {report.chunks} chunks, {report.mentions} mentions, {report.entities} entities")
    section.row("demo checkpoint: `PropertyGraphIndex.from_documents`", f"{li_s:.2f} s, {nodes} nodes")
    section.row("**demo checkpoint: LlamaIndex ÷ kgbuild**", f"**{ratio:.2f}×**")
    section.row("demo checkpoint: where kgbuild's time went", stage_breakdown(report))
    section.target("P4 kgbuild ≥ 1.5× faster than PropertyGraphIndex (demo checkpoint, real entities)", ratio >= 1.5)
    section.target("P4 kgbuild ≥ 1.5× faster than PropertyGraphIndex (base model, no entities)", base_ratio >= 1.5)
    section.figures.update(demo_llamaindex_s=li_s, demo_kgbuild_s=kg_s, demo_ratio=ratio, nodes=nodes)
    return section


def p5_incremental(bench: Bench) -> Section:
    section = Section("P5", "re-ingesting an unchanged corpus")
    from kgbuild.pipeline import ingest

    out = bench.work / "out-fast"
    again_s, again = timed(lambda: ingest(bench.corpus, bench.settings(out), extractor=bench.fast, embedder=bench.embedder))
    ratio = bench.times["fast"] / again_s
    section.setup = "The index P2 built, ingested again with nothing changed (library call, models loaded)."
    section.row("first ingest (P2)", f"{bench.times['fast']:.2f} s")
    section.row("re-ingest", f"{again_s:.3f} s ({again.documents_unchanged} documents unchanged, {again.chunks} chunks re-extracted)")
    section.row("**first ÷ re-ingest**", f"**{ratio:.0f}×**")
    section.target("P5 re-ingest ≥ 50× faster", ratio >= 50 and again.chunks == 0)
    section.notes.append("`python -m bench.ingest_corpus` measures the same through the CLI on the whole passage corpus"
                         " (6,119 documents): 448–499×.")
    section.figures.update(first_s=bench.times["fast"], again_s=again_s, ratio=ratio)
    return section


def profile_ingest(bench: Bench) -> Section:
    """pyinstrument over one fast-path ingest into a fresh index; the HTML goes to bench/.cache."""
    from pyinstrument import Profiler

    from bench.common import REPO
    from kgbuild.pipeline import ingest

    section = Section("profile", "pyinstrument, one fast-path ingest")
    profiler = Profiler(interval=0.002)
    with profiler:
        ingest(bench.corpus, bench.settings(bench.work / "out-profile"), extractor=bench.fast, embedder=bench.embedder)
    html = REPO / "bench" / ".cache" / "profile-ingest.html"
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(profiler.output_html())
    text = profiler.output_text(unicode=False, color=False, show_all=False)
    tree = "\n".join(line for line in text.splitlines()[:40] if line.strip())
    section.setup = f"Full profile: {html.relative_to(REPO)} (not committed). The top of the call tree:\n\n```\n{tree}\n```"
    return section


def run(quick: bool, device: str = "cpu", profile: bool = False) -> list[Section]:
    if not CORPUS.exists():
        section = Section("P1–P5", "model benchmarks")
        section.notes.append(f"skipped: the corpus is not at {CORPUS}")
        return [section]
    work = Path(tempfile.mkdtemp(prefix="kgbuild-bench-speed-"))
    try:
        bench = Bench(quick, device, work)
        sections = [p1_overhead(bench), p2_fast_path(bench)]
        sections.append(demo_agreement(device, quick))
        sections += [p3_one_pass(bench), p4_llamaindex(bench), p5_incremental(bench)]
        if profile:
            sections.append(profile_ingest(bench))
        sections[0].figures["peak_rss_mib"] = peak_rss_mib()
        return sections
    finally:
        shutil.rmtree(work, ignore_errors=True)
