"""The sink step: LlamaIndex nodes (annotated by ``KgbuildExtractor``) into kgbuild's graph and vector stores.

Nodes are grouped by their source document (``ref_doc_id``), ordered by ``start_char_idx``, and
rebuilt as kgbuild chunks and extractions; reconciliation, the graph sink and the vector sink then
do exactly what ``kgbuild ingest`` does, so a LlamaIndex pipeline that ends in this step builds the
same graph and collection (and an index ``kgbuild query`` / ``stats`` can read: the manifest is
written to ``settings.out_dir``). A document's id is kgbuild's id of its path (metadata ``path``,
``file_path`` or ``file_name``, else LlamaIndex's ``ref_doc_id``); writing a document again
replaces its earlier chunks. Node embeddings are used where present, else kgbuild's embedder.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

from llama_index.core.schema import BaseNode, MetadataMode, TransformComponent
from pydantic import PrivateAttr

from kgbuild.embed import Embedder, SentenceTransformerEmbedder
from kgbuild.errors import ConfigError
from kgbuild.extract.base import aggregate_classifications
from kgbuild.ids import chunk_id, content_hash, document_id, mention_id
from kgbuild.reconcile import reconcile
from kgbuild.schema import ExtractionSchema, load_schema
from kgbuild.index import Index
from kgbuild.settings import Settings
from kgbuild.sinks import GraphSink, VectorSink
from kgbuild.types import Chunk, ChunkExtraction, Document, ExtractedDocument, GraphBatch, LabelScore, Mention, RelationMention
from kgbuild.write import build_chunk_points


class KgbuildWriter(TransformComponent):
    """
    >>> pipeline = IngestionPipeline(transformations=[SentenceSplitter(), KgbuildExtractor(model=m),
    ...                                               KgbuildWriter(Settings(out_dir=".kgbuild"))])
    """

    out_dir: str
    _settings: Settings = PrivateAttr()
    _schema: ExtractionSchema = PrivateAttr()
    _embedder: Any = PrivateAttr()
    _graph_sink: Any = PrivateAttr()
    _vector_sink: Any = PrivateAttr()

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        schema: ExtractionSchema | str | None = None,
        embedder: Embedder | None = None,
        graph_sink: GraphSink | None = None,
        vector_sink: VectorSink | None = None,
    ):
        settings = settings or Settings()
        super().__init__(out_dir=str(settings.out_dir))
        self._settings = settings
        loaded = schema if isinstance(schema, ExtractionSchema) else load_schema(schema or settings.schema_path)
        self._schema = loaded.with_threshold(settings.threshold)
        self._embedder = embedder or SentenceTransformerEmbedder(settings.embedding_model, device=settings.device)
        self._graph_sink = graph_sink  # None: the stores the settings name (kgbuild.registry)
        self._vector_sink = vector_sink

    @classmethod
    def class_name(cls) -> str:
        return "KgbuildWriter"

    def __call__(self, nodes: Sequence[BaseNode], **kwargs: Any) -> Sequence[BaseNode]:
        if not nodes:
            return nodes
        missing = [n.node_id for n in nodes if "entities" not in n.metadata]
        if missing:
            raise ConfigError(f"node {missing[0]} has no extraction metadata: put KgbuildExtractor before KgbuildWriter")
        documents = [self._document(group) for group in self._by_document(nodes)]
        extractions = [e for d in documents for e in d.extractions]
        mentions = [m for e in extractions for m in e.mentions]
        reconciliation, _ = reconcile(mentions, [r for e in extractions for r in e.relations], self._schema)
        batch = GraphBatch(documents, reconciliation.entities, reconciliation.mention_entity, reconciliation.relations,
                           reconciliation.mention_reasons)
        by_chunk = {c.id: n for d, group in zip(documents, self._by_document(nodes)) for c, n in zip(d.chunks, group)}
        vectors = self._vectors([by_chunk[e.chunk.id] for e in extractions], [e.chunk.text for e in extractions])
        doc_ids = [d.document.id for d in documents]
        index = Index(self._settings, graph_sink=self._graph_sink, vector_sink=self._vector_sink)
        with index.writing() as journal:
            index.check_same_stores()
            with index.new_stores(len(vectors[0]), classification_tasks=list(self._schema.classifications)) as stores:
                index.recover(stores, journal)  # what an interrupted write of an earlier call left
                journal.record(doc_ids)
                stores.open().graph.write(batch)
                stores.vectors.delete_documents(doc_ids)
                stores.vectors.upsert(build_chunk_points(batch, vectors))
                index.record_build(schema=self._schema, model=str(nodes[0].metadata.get("extraction_model") or ""),
                                   embedding_model=getattr(self._embedder, "name", self._settings.embedding_model))
                index.record_totals(stores.counts())
                # as at the end of an ingest: the retrieval graph, then the communities (Community nodes, payloads)
                from kgbuild.communities import refresh_communities

                refresh_communities(index, stores, index.refresh_retrieval_graph(stores, self._embedder), embedder=self._embedder)
                index.checkpoint(stores, journal)
        return nodes

    @staticmethod
    def _by_document(nodes: Sequence[BaseNode]) -> list[list[BaseNode]]:
        groups: dict[str, list[BaseNode]] = defaultdict(list)
        for node in nodes:
            groups[node.ref_doc_id or node.node_id].append(node)
        return [sorted(group, key=lambda n: (n.start_char_idx or 0, n.node_id)) for group in groups.values()]

    def _document(self, group: list[BaseNode]) -> ExtractedDocument:
        first = group[0].metadata
        path = str(first.get("path") or first.get("file_path") or first.get("file_name") or group[0].ref_doc_id or group[0].node_id)
        doc_id = document_id(path)
        texts = [n.get_content(metadata_mode=MetadataMode.NONE) for n in group]
        document = Document(id=doc_id, path=path, source_path=path, title=str(first.get("title") or first.get("file_name") or path),
                            text="", mtime=0.0, content_hash=content_hash(*texts))
        chunks, extractions = [], []
        for position, (node, text) in enumerate(zip(group, texts)):
            start = node.start_char_idx or 0
            chunk = Chunk(id=chunk_id(doc_id, position), doc_id=doc_id, position=position, start=start,
                          end=start + len(text), text=text, token_count=len(text.split()))
            chunks.append(chunk)
            extractions.append(self._extraction(chunk, node.metadata))
        return ExtractedDocument(document, chunks, extractions, aggregate_classifications(extractions, self._schema))

    def _extraction(self, chunk: Chunk, meta: dict[str, Any]) -> ChunkExtraction:
        def mention(label: str, text: str, start: int, end: int, confidence: float) -> Mention:
            s, e = chunk.start + start, chunk.start + end
            return Mention(mention_id(chunk.id, label, s, e), chunk.doc_id, chunk.id, label, text, s, e, confidence)

        mentions = [mention(m["type"], m["text"], m["start"], m["end"], m["confidence"]) for m in meta["entities"]]
        at = {(m.start, m.end): m for m in mentions}
        relations = []
        for r in meta.get("entity_relations", []):
            head, tail = at.get((chunk.start + r["head_start"], chunk.start + r["head_end"])), at.get((chunk.start + r["tail_start"], chunk.start + r["tail_end"]))
            if head is not None and tail is not None:
                relations.append(RelationMention(r["label"], head, tail, r["confidence"]))
        classifications = {task: [LabelScore(s["label"], s["confidence"]) for s in scores]
                           for task, scores in (meta.get("classifications") or {}).items()}
        return ChunkExtraction(chunk=chunk, mentions=mentions, relations=relations, classifications=classifications)

    def _vectors(self, nodes: list[BaseNode], texts: list[str]) -> list[list[float]]:
        if all(n.embedding is not None for n in nodes) and len({len(n.embedding) for n in nodes}) == 1:  # type: ignore[arg-type]
            return [list(n.embedding) for n in nodes]  # type: ignore[arg-type]
        return self._embedder.embed(texts)
