"""LlamaIndex's Neo4j property graph store, for servers without the APOC plugin.

``Neo4jPropertyGraphStore`` (llama-index-graph-stores-neo4j) writes nodes and relations with APOC
procedures (``apoc.map.clean``, ``apoc.create.addLabels``, ``apoc.merge.relationship``) and reads the
schema with ``apoc.meta.data``. A stock Neo4j 5 (Community, Aura Free) has no APOC, so this subclass
does the same writes in plain Cypher, with the dynamic labels and relationship types of Neo4j 5.26
(``SET e:$(row.label)``, ``MERGE (a)-[r:$(row.label)]->(b)``), and keeps a schema summary from
built-in procedures. Chunk properties that are maps or lists of maps are stored as JSON text. Everything else (reads, deletes, vector search) is LlamaIndex's own code.
"""

from __future__ import annotations

import json
from typing import Any, List

from llama_index.core.graph_stores.types import ChunkNode, EntityNode, LabelledNode, Relation
from llama_index.graph_stores.neo4j import Neo4jPropertyGraphStore
from llama_index.graph_stores.neo4j.neo4j_property_graph import BASE_ENTITY_LABEL, BASE_NODE_LABEL, CHUNK_SIZE


def _primitive(value: Any) -> Any:
    if isinstance(value, dict) or (isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value


class Neo4jPropertyGraphStoreWithoutApoc(Neo4jPropertyGraphStore):
    """
    >>> store = Neo4jPropertyGraphStoreWithoutApoc(username="neo4j", password=pw, url="bolt://127.0.0.1:7687")
    >>> index = PropertyGraphIndex.from_documents(docs, kg_extractors=[KgbuildExtractor(model=m)], property_graph_store=store)
    """

    def refresh_schema(self) -> None:
        labels = [r["label"] for r in self.structured_query("CALL db.labels() YIELD label RETURN label")]
        types = [r["relationshipType"] for r in self.structured_query("CALL db.relationshipTypes() YIELD relationshipType RETURN relationshipType")]
        self.structured_schema = {
            "node_props": {label: [] for label in labels},
            "rel_props": {t: [] for t in types},
            "relationships": [],
            "metadata": {"constraint": [], "index": []},
        }

    def get_schema_str(self, refresh: bool = False) -> str:
        if refresh or not self.structured_schema:
            self.refresh_schema()
        return (f"Node labels: {', '.join(self.structured_schema['node_props'])}\n"
                f"Relationship types: {', '.join(self.structured_schema['rel_props'])}")

    def upsert_nodes(self, nodes: List[LabelledNode]) -> None:
        entities: list[dict[str, Any]] = []
        chunks: list[LabelledNode] = []
        for item in nodes:
            if isinstance(item, EntityNode):
                properties = {k: v for k, v in item.properties.items() if v is not None}
                entities.append({"id": item.id, "name": item.name, "label": item.label, "properties": properties,
                                 "embedding": item.embedding})
            elif isinstance(item, ChunkNode):
                # Neo4j properties are primitives or arrays of them: nested metadata (KgbuildExtractor's
                # spans, relations, classifications) travels as JSON text
                chunks.append(item.model_copy(update={"properties": {k: _primitive(v) for k, v in item.properties.items()}}))
        if chunks:
            super().upsert_nodes(chunks)  # LlamaIndex's chunk write needs no APOC
        for index in range(0, len(entities), CHUNK_SIZE):
            self.structured_query(
                f"""
                UNWIND $data AS row
                MERGE (e:{BASE_NODE_LABEL} {{id: row.id}})
                SET e += row.properties
                SET e.name = row.name, e:`{BASE_ENTITY_LABEL}`
                SET e:$(row.label)
                WITH e, row
                CALL (e, row) {{
                    WITH e, row
                    WHERE row.embedding IS NOT NULL
                    CALL db.create.setNodeVectorProperty(e, 'embedding', row.embedding)
                    RETURN count(*) AS count
                }}
                WITH e, row WHERE row.properties.triplet_source_id IS NOT NULL
                MERGE (c:{BASE_NODE_LABEL} {{id: row.properties.triplet_source_id}})
                MERGE (e)<-[:MENTIONS]-(c)
                """,
                param_map={"data": entities[index : index + CHUNK_SIZE]},
            )

    def upsert_relations(self, relations: List[Relation]) -> None:
        params = [{**r.dict(), "properties": {k: v for k, v in r.properties.items() if v is not None}} for r in relations]
        for index in range(0, len(params), CHUNK_SIZE):
            self.structured_query(
                f"""
                UNWIND $data AS row
                MERGE (source:{BASE_NODE_LABEL} {{id: row.source_id}})
                ON CREATE SET source:Chunk
                MERGE (target:{BASE_NODE_LABEL} {{id: row.target_id}})
                ON CREATE SET target:Chunk
                MERGE (source)-[rel:$(row.label)]->(target)
                SET rel += row.properties
                """,
                param_map={"data": params[index : index + CHUNK_SIZE]},
            )
