"""The Neo4j graph backend (``--graph neo4j``): the sink, and the style and starter queries for Neo4j Browser."""

from kgbuild.connectors.neo4j.sink import Neo4jGraphSink

__all__ = ["Neo4jGraphSink"]
