"""A real ingest in its own process, for the crash tests: ``python tests/crash_runner.py CORPUS OUT [neo4j]``.

The gazetteer extractor and hash-seeded vectors (no model to load) keep the process fast;
everything else is the real pipeline, stores and state. ``KGBUILD_CRASH_AT=POINT`` (or ``POINT@N``
for the N-th time it is reached; the points are listed in ``kgbuild.hooks``) makes it SIGKILL itself
there: no cleanup, no ``finally``, like a power cut. Prints the report as JSON when it finishes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "conformance"))

from builders import fake_vectors  # noqa: E402
from conftest import BUSINESS_CLASSES, BUSINESS_ENTITIES, BUSINESS_RELATIONS  # noqa: E402

from kgbuild import hooks  # noqa: E402
from kgbuild.extract.gazetteer import GazetteerExtractor  # noqa: E402
from kgbuild.pipeline import ingest  # noqa: E402
from kgbuild.schema import load_schema  # noqa: E402
from kgbuild.settings import Settings  # noqa: E402

DIM = 16


class HashEmbedder:
    name = "hash-16"
    dimension = DIM

    def embed(self, texts):
        return fake_vectors(list(texts), DIM)


def settings_for(out: str, graph: str = "networkx") -> Settings:
    extra = {}
    if graph == "neo4j":
        extra = dict(graph="neo4j", neo4j_uri=os.environ.get("NEO4J_URI", "bolt://127.0.0.1:7687"))
    return Settings(out_dir=Path(out), chunk_size=16, chunk_overlap=4, write_batch_chunks=4, batch_size=2,
                    checkpoint_seconds=float(os.environ.get("CHECKPOINT_SECONDS", "0")), **extra)


def crash_at(spec: str) -> None:
    """SIGKILL this process the N-th time (default the first) the named point is reached."""
    target, _, nth = spec.partition("@")
    reached: Counter[str] = Counter()

    def listener(point: str) -> None:
        if point == target:
            reached[point] += 1
            if reached[point] >= int(nth or 1):
                os.kill(os.getpid(), signal.SIGKILL)

    hooks.listen(listener)


def main() -> None:
    corpus, out = sys.argv[1], sys.argv[2]
    if os.environ.get("KGBUILD_CRASH_AT"):
        crash_at(os.environ["KGBUILD_CRASH_AT"])
    graph = sys.argv[3] if len(sys.argv) > 3 else "networkx"
    schema = load_schema("business-news")
    extractor = GazetteerExtractor(schema, BUSINESS_ENTITIES, BUSINESS_RELATIONS, BUSINESS_CLASSES, max_tokens=64)
    report = ingest(corpus, settings_for(out, graph), extractor=extractor, embedder=HashEmbedder())
    print(json.dumps(report.to_dict(), default=str))


if __name__ == "__main__":
    main()
