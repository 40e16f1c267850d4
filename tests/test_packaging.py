"""The package installs as kgbuild only: connectors/ is reachable as kgbuild.connectors, never as `connectors`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_connectors_live_only_inside_kgbuild(tmp_path):
    probe = (
        "import importlib.util, kgbuild.connectors.networkx_graph as m;"
        "print(importlib.util.find_spec('connectors'));"
        "print(m.__name__)"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["None", "kgbuild.connectors.networkx_graph"]


def test_bundled_schemas_ship_with_the_package():
    from kgbuild.schema import bundled_schema_names

    assert {"business-news", "biomedical"} <= set(bundled_schema_names())


def test_importing_the_library_does_not_import_torch(tmp_path):
    probe = "import sys, kgbuild, kgbuild.cli, kgbuild.pipeline; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_repository_layout():
    root = Path(__file__).resolve().parents[1]
    for name in ("pyproject.toml", "kgbuild", "connectors", "schemas", "tests", "notebooks", "README.md", ".ci/run"):
        assert (root / name).exists(), name


def test_neo4j_driver_uses_the_rust_packstream_codec():
    # neo4j-rust-ext is a dependency for the write rate (BENCHMARKS.md, neo4j-write); losing it
    # silently would cost about a third of the relationship write rate.
    from neo4j._codec.packstream import v1

    assert v1._rust_pack is not None and v1._rust_unpack is not None


def test_the_library_and_hybrid_retrieval_import_neither_torch_nor_llama_index(tmp_path):
    probe = ("import sys, kgbuild, kgbuild.cli, kgbuild.pipeline, kgbuild.retrieve.hybrid;"
             "print('torch' in sys.modules, any(m.startswith('llama_index') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_the_llamaindex_integration_installs_as_a_subpackage(tmp_path):
    probe = "import kgbuild.llamaindex as m; print(m.__name__, sorted(m.__all__)[0])"
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["kgbuild.llamaindex", "KgbuildEmbedding"]


def test_top_level_functions_stay_functions_after_the_cli_imported_everything():
    import kgbuild
    import kgbuild.cli  # noqa: F401
    import kgbuild.index  # noqa: F401
    import kgbuild.pipeline  # noqa: F401

    for name in ("ingest", "query", "stats", "hybrid_query"):
        assert callable(getattr(kgbuild, name)), name


def test_llamaindex_sentence_splitter_can_split_sentences():
    """NLTK refuses data files with several hard links (uv's default install): pyproject sets link-mode copy."""
    from llama_index.core.node_parser import SentenceSplitter

    text = "Acme Corp opened a plant in Ohio. " * 60
    chunks = SentenceSplitter(chunk_size=32, chunk_overlap=0).split_text(text)
    assert len(chunks) > 5
    assert all(chunk.strip().endswith(".") for chunk in chunks)


def test_every_subpackage_is_listed_for_the_wheel():
    """pyproject's explicit package list (connectors/ installs as kgbuild.connectors) must name every folder of
    the library that holds Python modules: a package left out is missing from a wheel install, though an
    editable install (the test suite's) still finds it."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    found = set()
    for base, name in ((root / "kgbuild", "kgbuild"), (root / "connectors", "kgbuild.connectors")):
        for init in base.rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                rel = init.parent.relative_to(base).parts
                found.add(".".join((name, *rel)))
    assert found <= listed, sorted(found - listed)
