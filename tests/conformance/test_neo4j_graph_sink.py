"""The Neo4j graph sink against the graph-sink conformance suite, on a real Neo4j server.

The server comes from ``scripts/neo4j-dev.sh start`` (or any Neo4j 5 reachable at NEO4J_URI,
with NEO4J_USER / NEO4J_PASSWORD / NEO4J_DATABASE). These tests **clear that database**.

Neo4j Community has one user database, so the suite's separate stores (one per folder) are
played one after another: the first ``make_sink`` for a folder clears the database, a second
one for the same folder (close and reopen) finds the data as it was left.

When no server answers, the tests are skipped only where the dev server cannot be started
here (no java or no mvn); otherwise they fail and say how to start it.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import builders as b  # noqa: E402
from graph_sink_suite import GraphSinkConformance, canonical_export, checksum  # noqa: E402

from kgbuild.connectors.neo4j.sink import Neo4jGraphSink  # noqa: E402
from kgbuild.types import STRUCTURAL_EDGES as STRUCTURAL_TYPES, GraphExport  # noqa: E402
from kgbuild.errors import SinkError, TransientError  # noqa: E402
from kgbuild.ids import document_id  # noqa: E402

pytestmark = pytest.mark.neo4j

DEV_PASSWORD = "kgbuild-dev-password"
URI = os.environ.get("NEO4J_URI", "bolt://127.0.0.1:7687")
USER = os.environ.get("NEO4J_USER", "neo4j")
PASSWORD = os.environ.get("NEO4J_PASSWORD", DEV_PASSWORD)
DATABASE = os.environ.get("NEO4J_DATABASE", "neo4j")
SMALL_BATCH = 4  # the suite's data is small: tiny transactions exercise the batch boundaries


def make_neo4j_sink(**kwargs: Any) -> Neo4jGraphSink:
    return Neo4jGraphSink(URI, USER, PASSWORD, DATABASE, **kwargs)


def clear_database() -> None:
    sink = make_neo4j_sink()
    try:
        sink.clear()
    finally:
        sink.close()


def export_neo4j(sink: Neo4jGraphSink) -> GraphExport:
    out = sink.export()
    assert not out.problems, "the database holds what kgbuild would not write"
    return out


@pytest.mark.usefixtures("neo4j_server")
class TestNeo4jGraphSink(GraphSinkConformance):
    def make_sink(self, folder: Path) -> Neo4jGraphSink:
        # one database stands in for every folder's store: the first sink made for a folder
        # starts it empty; a later one for the same folder (a reopen) finds what was left
        marker = folder / ".neo4j-store"
        if not marker.exists():
            clear_database()
            marker.touch()
        return make_neo4j_sink(batch_size=SMALL_BATCH)


    # -- Neo4j-only ------------------------------------------------------------------------------

    def test_default_batch_size_gives_the_same_graph(self, open_sink):
        small = self.fresh_content(open_sink, "small", b.corpus_batch(), b.apple_v2_batch())
        clear_database()
        sink = make_neo4j_sink()
        sink.open()
        try:
            assert sink.batch_size == 5000
            sink.write(b.corpus_batch())
            sink.write(b.apple_v2_batch())
            assert self.content(sink) == small
        finally:
            sink.close()

    def test_hostile_values_are_parameters_not_cypher(self, open_sink):
        sink = open_sink()
        sink.write(b.corpus_batch(b.ACME))
        hostile = "x}) DETACH DELETE n //"
        batch = b.make_batch({"notes/hostile.txt": f"{hostile} bought Acme Corp.\n"}, [("notes/hostile.txt", "COMPANY", hostile)])
        sink.write(batch)
        rows = sink.run_read("MATCH (e:Entity {name: $name}) RETURN e.aliases AS aliases, labels(e) AS labels", name=hostile)
        assert len(rows) == 1 and rows[0]["aliases"] == [hostile]
        assert set(rows[0]["labels"]) == {"Entity", "COMPANY"}
        texts = sink.run_read("MATCH ()-[m:MENTIONS]->() RETURN m.text AS text")
        assert hostile in [r["text"] for r in texts]
        stats = sink.stats()
        assert (stats.documents, stats.entities) == (2, 3)  # nothing was deleted by the name
        # and a Cypher-looking string used as a parameter is only ever a value
        assert sink.run_read("MATCH (n:Entity {name: $name}) RETURN count(n) AS n", name="x}) RETURN 1 //") == [{"n": 0}]

    @pytest.mark.parametrize(
        "bad_type",
        ["COMPANY`) DETACH DELETE n //", "CO`MPANY", "1COMPANY", "COMPANY NAME", "", "Document", "Ünïcødé"],
    )
    def test_bad_entity_label_is_refused_before_any_write(self, open_sink, bad_type):
        sink = open_sink()
        sink.write(b.corpus_batch(b.ACME))
        before = checksum(self.export(sink))
        batch = b.corpus_batch(b.ACME_BIS)
        entity = next(iter(batch.entities.values()))
        entity.type = bad_type
        with pytest.raises(SinkError):
            sink.write(batch)
        assert checksum(self.export(sink)) == before

    @pytest.mark.parametrize("bad_label", ["COMPETES`]->() DETACH DELETE n //", "COMPETES WITH", "MENTIONS", "HAS_CHUNK"])
    def test_bad_relation_type_is_refused_before_any_write(self, open_sink, bad_label):
        sink = open_sink()
        sink.write(b.corpus_batch(b.ACME))
        before = checksum(self.export(sink))
        batch = b.corpus_batch(b.WIRE_2)
        assert batch.relations
        batch.relations[0].label = bad_label
        with pytest.raises(SinkError):
            sink.write(batch)
        assert checksum(self.export(sink)) == before
        assert not STRUCTURAL_TYPES & {r["label"] for r in self.content(sink)["relations"]}

    def test_uniqueness_constraints_exist(self, open_sink):
        sink = open_sink()
        rows = sink.run_read("SHOW CONSTRAINTS YIELD labelsOrTypes, properties, type RETURN labelsOrTypes, properties, type")
        unique = {(r["labelsOrTypes"][0], tuple(r["properties"])) for r in rows if r["type"] == "UNIQUENESS"}
        assert {("Document", ("id",)), ("Chunk", ("id",)), ("Entity", ("id",))} <= unique

    def test_lone_surrogate_is_kept_exactly_and_readable(self, open_sink):
        sink = open_sink()
        sink.write(b.make_batch({b.ODD_PATH: b.ODD_TEXT}, b.ODD_MENTIONS))
        raw = sink.run_read("MATCH (c:Chunk) RETURN c.text AS text, c.text__exact AS exact")
        assert raw[0]["text"] == b.ODD_TEXT.replace("\ud800", "\ufffd")  # what Browser shows
        assert json.loads(raw[0]["exact"]) == b.ODD_TEXT
        sink.write(b.make_batch({b.ODD_PATH: "Paris again.\n"}, b.ODD_MENTIONS))  # the twin goes with the value
        assert sink.run_read("MATCH (c:Chunk) RETURN c.text__exact AS exact") == [{"exact": None}]

    def test_canonical_export_equals_networkx(self, open_sink, tmp_path):
        from kgbuild.connectors.networkx_graph import NetworkXGraphSink
        from test_networkx_graph_sink import _export_graph

        batches = [b.corpus_batch(), b.hostile_batch(), b.apple_v2_batch()]
        nx_sink = NetworkXGraphSink(tmp_path / "graph.json")
        nx_sink.open()
        sink = open_sink()
        for batch in batches:
            nx_sink.write(batch)
            sink.write(batch)
        nx_sink.remove_documents([document_id(b.ACME)])
        sink.remove_documents([document_id(b.ACME)])
        assert canonical_export(self.export(sink)) == canonical_export(_export_graph(nx_sink.graph))
        assert sink.stats() == nx_sink.stats()

    def test_wrong_password_is_a_sink_error_without_the_password(self):
        sink = Neo4jGraphSink(URI, USER, "wrong-sekret-pw", DATABASE)
        with pytest.raises(SinkError) as caught:
            sink.open()
        assert not isinstance(caught.value, TransientError)
        assert "wrong-sekret-pw" not in str(caught.value)
        assert USER in str(caught.value)
        sink.close()

    def test_bad_cypher_is_a_sink_error(self, open_sink):
        sink = open_sink()
        with pytest.raises(SinkError, match="failed while reading"):
            sink.run_read("THIS IS NOT CYPHER")


class TestNeo4jGraphSinkWithoutServer:
    """What needs no server: construction, repr, and the error for one that does not answer."""

    def test_constructor_does_no_io(self):
        sink = Neo4jGraphSink("bolt://kgbuild-no-such-host.invalid:1", password="sekret")
        assert sink._driver is None
        sink.flush()
        sink.close()

    def test_repr_hides_the_password(self):
        sink = Neo4jGraphSink("bolt://db.example.invalid:7687", "neo4j", "sekret-pw")
        assert "sekret-pw" not in repr(sink) and "sekret-pw" not in str(sink)
        assert "db.example.invalid" in repr(sink)

    @pytest.mark.parametrize("uri", ["http://127.0.0.1:7474", "127.0.0.1:7687", ""])
    def test_a_uri_that_is_not_bolt_is_refused(self, uri):
        with pytest.raises(SinkError, match="bad Neo4j URI"):
            Neo4jGraphSink(uri, password="sekret-pw").open()

    def test_unreachable_server_is_a_transient_error_without_the_password(self):
        with socket.socket() as probe:  # a local port nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        sink = Neo4jGraphSink(f"bolt://127.0.0.1:{port}", "neo4j", "sekret-pw", connection_timeout=2.0)
        with pytest.raises(TransientError) as caught:
            sink.open()
        assert f"127.0.0.1:{port}" in str(caught.value)
        assert "sekret-pw" not in str(caught.value) and "sekret-pw" not in repr(caught.value)
        assert caught.value.transient
        sink.close()
