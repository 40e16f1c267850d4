"""The Neo4j graph backend (``--graph neo4j``), one module per concern.

- ``sink``: :class:`Neo4jGraphSink`, the connection, its errors and the ``GraphSink`` methods;
- ``values``: property encoding (lone surrogates, JSON strings) and quoted labels;
- ``queries``: the Cypher and the transaction functions that write, remove and count;
- ``export``: reading the graph back (``export()``, ``entity_graph()``);
- ``browser/``: the style and starter queries for Neo4j Browser, shipped as package data.
"""

from kgbuild.connectors.neo4j.sink import Neo4jGraphSink

__all__ = ["Neo4jGraphSink"]
