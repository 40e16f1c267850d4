"""GLiNER2 multi-task extraction on LlamaIndex nodes, as a ``TransformComponent``.

For each node it adds to ``node.metadata``:

- ``entities``: ``[{id, key, type, text, start, end, confidence}]``, spans in node-text offsets
- ``entity_relations``: ``[{id, label, head_id, tail_id, head, tail, confidence, head_start, ...}]``
- ``classifications``: ``{task: [{label, confidence}]}``
- flat filterable keys: ``entity_ids``, ``entity_keys``, ``entity_names``, ``entity_types``,
  ``relation_types``, ``class.<task>`` (labels), and ``class`` (``{task: labels}``, the nested form
  kgbuild's Qdrant payload uses, so a Qdrant filter key ``class.<task>`` finds it either way)
- ``KG_NODES_KEY`` / ``KG_RELATIONS_KEY``: ``KgbuildEntityNode`` / ``Relation`` objects for
  ``PropertyGraphIndex``, whose ids are kgbuild's entity ids (``ent_...``).

A node longer than the model's window (its tokens beside the schema prompt, ``max_text_tokens()``)
is cut into overlapping windows by kgbuild's ``TokenChunker``, as ``kgbuild ingest`` cuts a document;
each window is extracted, its spans are moved to node-text offsets, and a mention or relation found
in two windows is kept once, with its highest confidence. Classifications are the windows' votes,
weighted by their token counts (``aggregate_classifications``, as for a document's chunks).

Entity ids come from the same reconciliation as ``kgbuild ingest`` (type vote per span, normalised
names), so they meet the ids of an index built by the CLI. The extraction keys are kept out of the
text that is embedded or shown to an LLM.

The windows' results are kept in memory, keyed by (node text hash, schema fingerprint, model): a
second pass over the same text (the same extractor in an ``IngestionPipeline`` and then as a
``kg_extractor`` of ``PropertyGraphIndex``) annotates again without running the model.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

from llama_index.core.graph_stores.types import KG_NODES_KEY, KG_RELATIONS_KEY, EntityNode, Relation
from llama_index.core.schema import BaseNode, MetadataMode, TransformComponent
from pydantic import Field, PrivateAttr

from kgbuild.chunk import TokenChunker
from kgbuild.errors import ConfigError
from kgbuild.extract.base import Extractor, RawExtraction, aggregate_classifications, link_extraction
from kgbuild.ids import content_hash
from kgbuild.reconcile import reconcile
from kgbuild.schema import ExtractionSchema, load_schema
from kgbuild.types import Chunk, ChunkExtraction, Document, Mention, RelationMention

EXTRACTION_KEYS = (
    "entities", "entity_relations", "classifications", "entity_ids", "entity_keys", "entity_names", "entity_types",
    "relation_types", "class", "extraction_model", KG_NODES_KEY, KG_RELATIONS_KEY,
)


class KgbuildEntityNode(EntityNode):
    """A LlamaIndex entity node whose id is kgbuild's entity id (``ent_<hash of type and normalised name>``)."""

    entity_id: str = Field(description="kgbuild's deterministic entity id")

    @property
    def id(self) -> str:
        return self.entity_id


@dataclass(frozen=True, slots=True)
class Window:
    """One slice of a node's text that fits the model's window: ``text[start:end]``, ``tokens`` model tokens."""

    start: int
    end: int
    tokens: int


@dataclass(frozen=True, slots=True)
class WindowExtraction:
    window: Window
    raw: RawExtraction


class KgbuildExtractor(TransformComponent):
    """
    >>> from llama_index.core.ingestion import IngestionPipeline
    >>> from llama_index.core.node_parser import SentenceSplitter
    >>> pipeline = IngestionPipeline(transformations=[SentenceSplitter(chunk_size=256),
    ...                                               KgbuildExtractor(model="./my-gliner2"), KgbuildEmbedding()])
    """

    schema_name: str = Field(description="schema name (provenance and cache key)")
    schema_fingerprint: str = Field(description="schema fingerprint (cache key)")
    model: str = Field(description="extraction model name or path")
    batch_size: int = Field(default=8, ge=1, description="texts (node windows) per extractor call")
    window_overlap: int = Field(default=32, ge=0, description="tokens shared by neighbouring windows of a long node "
                                                              "(at most half a window)")
    cache_size: int = Field(default=10_000, ge=0, description="node texts whose extraction is kept in memory (0: none)")
    _schema: ExtractionSchema = PrivateAttr()
    _extractor: Any = PrivateAttr(default=None)
    _device: str = PrivateAttr(default="auto")
    _chunker: Any = PrivateAttr(default=None)
    _cache: OrderedDict = PrivateAttr(default_factory=OrderedDict)

    def __init__(
        self,
        schema: ExtractionSchema | str | None = None,
        *,
        model: str | None = None,
        extractor: Extractor | None = None,
        threshold: float | None = None,
        batch_size: int = 8,
        window_overlap: int = 32,
        cache_size: int = 10_000,
        device: str = "auto",
    ):
        loaded = schema if isinstance(schema, ExtractionSchema) else load_schema(schema)
        loaded = loaded.with_threshold(threshold)
        if extractor is None and not model:
            raise ConfigError("KgbuildExtractor needs model= (a GLiNER2 checkpoint) or extractor=")
        super().__init__(
            schema_name=loaded.name,
            schema_fingerprint=loaded.fingerprint,
            model=extractor.name if extractor is not None else str(model),
            batch_size=batch_size,
            window_overlap=window_overlap,
            cache_size=cache_size,
        )
        self._schema = loaded
        self._extractor = extractor
        self._device = device

    @classmethod
    def class_name(cls) -> str:
        return "KgbuildExtractor"

    @property
    def schema(self) -> ExtractionSchema:
        return self._schema

    @property
    def extractor(self) -> Extractor:
        if self._extractor is None:  # the model loads on first use, never in the constructor
            from kgbuild.extract.gliner import GLiNER2Extractor

            self._extractor = GLiNER2Extractor(self._schema, self.model, device=self._device, batch_size=self.batch_size)
        return self._extractor

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        texts = [node.get_content(metadata_mode=MetadataMode.NONE) for node in nodes]
        keys = [self._cache_key(text) for text in texts]
        found = {key: self._cache[key] for key in keys if key in self._cache}
        for key in found:
            self._cache.move_to_end(key)
        missing = {key: text for key, text in zip(keys, texts) if key not in found}  # one pass per distinct text
        found.update(self._extract(missing))
        for node, text, key in zip(nodes, texts, keys):
            self._annotate(node, self._link(node, text, found[key]))
        return nodes

    # -- windows and extraction ---------------------------------------------------------

    def _cache_key(self, text: str) -> tuple[str, str, str]:
        return content_hash(text), self.schema_fingerprint, self.model

    def windows(self, text: str) -> list[Window]:
        """The slices of ``text`` the model reads: the whole text where it fits, else overlapping windows."""
        if self._chunker is None:  # the model's own tokenizer and window: loads the model
            budget = self.extractor.max_text_tokens()
            self._chunker = TokenChunker(self.extractor.token_counter(), budget, min(self.window_overlap, budget // 2))
        tokens = len(self._chunker.counter.token_spans(text))
        if tokens <= self._chunker.max_tokens:
            return [Window(0, len(text), tokens)]
        document = Document(id="", path="", source_path="", title="", text=text, mtime=0.0, content_hash="")
        return [Window(c.start, c.end, c.token_count) for c in self._chunker.chunk(document)]

    def _extract(self, texts: dict[Any, str]) -> dict[Any, list[WindowExtraction]]:
        jobs = [(key, window) for key, text in texts.items() for window in self.windows(text)]
        results: dict[Any, list[WindowExtraction]] = {key: [] for key in texts}
        for i in range(0, len(jobs), self.batch_size):
            batch = jobs[i : i + self.batch_size]
            raws = self.extractor.extract([texts[key][w.start : w.end] for key, w in batch])
            if len(raws) != len(batch):
                raise ConfigError(f"extractor {self.extractor.name} returned {len(raws)} results for {len(batch)} texts")
            for (key, window), raw in zip(batch, raws):
                results[key].append(WindowExtraction(window, raw))
        if self.cache_size:
            for key, extracted in results.items():
                self._cache[key] = extracted
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return results

    def _link(self, node: BaseNode, text: str, extracted: list[WindowExtraction]) -> ChunkExtraction:
        """Schema-checked mentions and relations in node-text offsets, each found once across the windows."""
        doc_id = node.ref_doc_id or node.node_id

        def chunk(start: int, end: int, tokens: int) -> Chunk:
            # every window has the node's id, so a span has one mention id whichever window found it
            return Chunk(id=node.node_id, doc_id=doc_id, position=0, start=start, end=end, text=text[start:end],
                         token_count=tokens)

        if len(extracted) == 1:  # the node fits: its text is the one window
            return link_extraction(chunk(0, len(text), extracted[0].window.tokens), extracted[0].raw, self._schema)
        parts = [link_extraction(chunk(w.window.start, w.window.end, w.window.tokens), w.raw, self._schema) for w in extracted]
        mentions: dict[str, Mention] = {}
        for m in (m for part in parts for m in part.mentions):
            if m.id not in mentions or mentions[m.id].confidence < m.confidence:
                mentions[m.id] = m
        relations: dict[tuple[str, str, str], RelationMention] = {}
        for r in (r for part in parts for r in part.relations):
            key = (r.label, r.head.id, r.tail.id)
            if key not in relations or relations[key].confidence < r.confidence:
                relations[key] = RelationMention(r.label, mentions[r.head.id], mentions[r.tail.id], r.confidence)
        structures = list({repr(s): s for part in parts for s in part.structures}.values())
        return ChunkExtraction(
            chunk=chunk(0, len(text), sum(w.window.tokens for w in extracted)),
            mentions=sorted(mentions.values(), key=lambda m: (m.start, m.end, m.label)),
            relations=sorted(relations.values(), key=lambda r: (r.label, r.head.start, r.tail.start)),
            classifications=aggregate_classifications(parts, self._schema),
            structures=structures,
        )

    # -- node metadata ------------------------------------------------------------------

    def _annotate(self, node: BaseNode, extraction: ChunkExtraction) -> None:
        reconciliation, _ = reconcile(extraction.mentions, extraction.relations, self._schema)
        entities, mention_entity = reconciliation.entities, reconciliation.mention_entity
        spans = [
            {"id": mention_entity[m.id], "key": entities[mention_entity[m.id]].key, "type": entities[mention_entity[m.id]].type,
             "text": m.text, "start": m.start, "end": m.end, "confidence": round(m.confidence, 6)}
            for m in extraction.mentions
            if mention_entity[m.id] in entities and m.label == entities[mention_entity[m.id]].type
        ]
        relations = []
        for rel in extraction.relations:
            head_id, tail_id = mention_entity[rel.head.id], mention_entity[rel.tail.id]
            kept = next((r for r in reconciliation.relations if (r.label, r.head_id, r.tail_id) == (rel.label, head_id, tail_id)), None)
            if kept is None:  # dropped by the type check after the vote
                continue
            relations.append({
                "id": kept.id, "label": rel.label, "head_id": head_id, "tail_id": tail_id,
                "head": rel.head.text, "tail": rel.tail.text, "confidence": round(rel.confidence, 6),
                "head_start": rel.head.start, "head_end": rel.head.end, "tail_start": rel.tail.start, "tail_end": rel.tail.end,
            })
        ordered = list(dict.fromkeys(s["id"] for s in spans))
        classes = {task: [s.label for s in scores] for task, scores in extraction.classifications.items()}
        meta = node.metadata
        meta["entities"] = spans
        meta["entity_relations"] = relations
        meta["classifications"] = {task: [{"label": s.label, "confidence": round(s.confidence, 6)} for s in scores]
                                   for task, scores in extraction.classifications.items()}
        meta["entity_ids"] = ordered
        meta["entity_keys"] = [entities[e].key for e in ordered]
        meta["entity_names"] = [entities[e].name for e in ordered]
        meta["entity_types"] = sorted({entities[e].type for e in ordered})
        meta["relation_types"] = sorted({r["label"] for r in relations})
        meta["class"] = classes
        for task, labels in classes.items():
            meta[f"class.{task}"] = labels
        meta["extraction_model"] = self.model
        kg_nodes = [
            KgbuildEntityNode(entity_id=e, name=entities[e].name, label=entities[e].type,
                              properties={"kgbuild_id": e, "key": entities[e].key, "type": entities[e].type})
            for e in ordered
        ]
        kg_relations = [
            Relation(label=r["label"], source_id=r["head_id"], target_id=r["tail_id"],
                     properties={"kgbuild_id": r["id"], "confidence": r["confidence"]})
            for r in relations
        ]
        # a node annotated again (the same extractor in a pipeline, then in PropertyGraphIndex) gets its kgbuild
        # entries replaced, not repeated; what other kg_extractors put there stays
        ours = {n.properties["kgbuild_id"] for n in kg_nodes} | {r.properties["kgbuild_id"] for r in kg_relations}
        meta[KG_NODES_KEY] = [n for n in meta.get(KG_NODES_KEY) or [] if n.properties.get("kgbuild_id") not in ours] + kg_nodes
        meta[KG_RELATIONS_KEY] = [r for r in meta.get(KG_RELATIONS_KEY) or []
                                  if r.properties.get("kgbuild_id") not in ours] + kg_relations
        task_keys = tuple(f"class.{task}" for task in classes)
        for excluded in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
            excluded.extend(k for k in (*EXTRACTION_KEYS, *task_keys) if k not in excluded)
