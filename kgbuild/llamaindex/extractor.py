"""GLiNER2 multi-task extraction on LlamaIndex nodes, as a ``TransformComponent``.

For each node (in batches of ``batch_size`` through the extractor) it adds to ``node.metadata``:

- ``entities``: ``[{id, key, type, text, start, end, confidence}]``, spans in node-text offsets
- ``entity_relations``: ``[{id, label, head_id, tail_id, head, tail, confidence, head_start, ...}]``
- ``classifications``: ``{task: [{label, confidence}]}``
- flat filterable keys: ``entity_ids``, ``entity_keys``, ``entity_names``, ``entity_types``,
  ``relation_types``, ``class.<task>`` (labels), and ``class`` (``{task: labels}``, the nested form
  kgbuild's Qdrant payload uses, so a Qdrant filter key ``class.<task>`` finds it either way)
- ``KG_NODES_KEY`` / ``KG_RELATIONS_KEY``: ``KgbuildEntityNode`` / ``Relation`` objects for
  ``PropertyGraphIndex``, whose ids are kgbuild's entity ids (``ent_...``).

Entity ids come from the same reconciliation as ``kgbuild ingest`` (type vote per span, normalised
names), so they meet the ids of an index built by the CLI. The extraction keys are kept out of the
text that is embedded or shown to an LLM.
"""

from __future__ import annotations

from typing import Any, Sequence

from llama_index.core.graph_stores.types import KG_NODES_KEY, KG_RELATIONS_KEY, EntityNode, Relation
from llama_index.core.schema import BaseNode, MetadataMode, TransformComponent
from pydantic import Field, PrivateAttr

from kgbuild.errors import ConfigError
from kgbuild.extract.base import Extractor, link_extraction
from kgbuild.reconcile import reconcile
from kgbuild.schema import ExtractionSchema, load_schema
from kgbuild.types import Chunk

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
    batch_size: int = Field(default=8, ge=1, description="nodes per extractor call")
    _schema: ExtractionSchema = PrivateAttr()
    _extractor: Any = PrivateAttr(default=None)
    _device: str = PrivateAttr(default="auto")

    def __init__(
        self,
        schema: ExtractionSchema | str | None = None,
        *,
        model: str | None = None,
        extractor: Extractor | None = None,
        threshold: float | None = None,
        batch_size: int = 8,
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
        for i in range(0, len(nodes), self.batch_size):
            batch = nodes[i : i + self.batch_size]
            texts = [node.get_content(metadata_mode=MetadataMode.NONE) for node in batch]
            raws = self.extractor.extract(texts)
            if len(raws) != len(batch):
                raise ConfigError(f"extractor {self.extractor.name} returned {len(raws)} results for {len(batch)} nodes")
            for node, text, raw in zip(batch, texts, raws):
                self._annotate(node, text, raw)
        return nodes

    def _annotate(self, node: BaseNode, text: str, raw: Any) -> None:
        chunk = Chunk(id=node.node_id, doc_id=node.ref_doc_id or node.node_id, position=0, start=0, end=len(text),
                      text=text, token_count=len(text.split()))
        extraction = link_extraction(chunk, raw, self._schema)
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
        kg_nodes = list(meta.get(KG_NODES_KEY) or [])
        kg_nodes += [
            KgbuildEntityNode(entity_id=e, name=entities[e].name, label=entities[e].type,
                              properties={"kgbuild_id": e, "key": entities[e].key, "type": entities[e].type})
            for e in ordered
        ]
        kg_relations = list(meta.get(KG_RELATIONS_KEY) or [])
        kg_relations += [
            Relation(label=r["label"], source_id=r["head_id"], target_id=r["tail_id"],
                     properties={"kgbuild_id": r["id"], "confidence": r["confidence"]})
            for r in relations
        ]
        meta[KG_NODES_KEY] = kg_nodes
        meta[KG_RELATIONS_KEY] = kg_relations
        task_keys = tuple(f"class.{task}" for task in classes)
        for excluded in (node.excluded_embed_metadata_keys, node.excluded_llm_metadata_keys):
            excluded.extend(k for k in (*EXTRACTION_KEYS, *task_keys) if k not in excluded)
