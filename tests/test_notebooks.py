"""The notebooks in notebooks/ execute without error (nbclient, a real kernel) against a locally built checkpoint.

KGBUILD_MODEL points them at the trained demo checkpoint where it exists, else at the seeded untrained one
the conftest builds; a high threshold keeps the untrained model's output small. Outputs are checked for
errors and for what each notebook must show."""

from __future__ import annotations

import os
from pathlib import Path

import nbclient  # dev dependencies: a missing one must fail CI, never skip the notebooks silently
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def model_dir(untrained_checkpoint):
    from conftest import DEMO_CHECKPOINT

    if (DEMO_CHECKPOINT / "model.safetensors").exists():
        return str(DEMO_CHECKPOINT), "0.5"
    return str(untrained_checkpoint), "0.95"


def execute(name: str, model_dir, monkeypatch, **env: str):
    model, threshold = model_dir
    for key, value in {"KGBUILD_MODEL": model, "KGBUILD_THRESHOLD": threshold, "HF_HUB_OFFLINE": "1",
                       "TRANSFORMERS_OFFLINE": "1", **env}.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this environment
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    return notebook, outputs, text


def test_quickstart_notebook_ingests_queries_and_draws_the_graph(model_dir, monkeypatch):
    _, outputs, text = execute("01-quickstart.ipynb", model_dir, monkeypatch)
    assert "documents," in text and "chunks" in text
    assert any("image/png" in o.get("data", {}) for o in outputs), "the graph picture is missing"


def test_llamaindex_notebook_runs_the_pipeline_and_the_hybrid_retriever(model_dir, monkeypatch):
    _, _, text = execute("02-llamaindex-hybrid-retrieval.ipynb", model_dir, monkeypatch)
    assert "nodes" in text and "source nodes" in text
    assert "hybrid ['p01', 'p02']" in text


def test_neo4j_notebook_skips_cleanly_without_a_server(model_dir, monkeypatch):
    _, _, text = execute("03-neo4j-exploration.ipynb", model_dir, monkeypatch, NEO4J_URI="bolt://127.0.0.1:9")
    assert "skipped: no Neo4j server answers at bolt://127.0.0.1:9" in text


@pytest.mark.neo4j
def test_neo4j_notebook_explores_a_real_server(neo4j_server, model_dir, monkeypatch):
    import neo4j

    with neo4j.GraphDatabase.driver(neo4j_server["uri"], auth=(neo4j_server["user"], neo4j_server["password"])) as driver:
        driver.execute_query("MATCH (n) DETACH DELETE n", database_=neo4j_server["database"])
    _, _, text = execute("03-neo4j-exploration.ipynb", model_dir, monkeypatch, NEO4J_URI=neo4j_server["uri"],
                         NEO4J_USER=neo4j_server["user"], NEO4J_PASSWORD=neo4j_server["password"],
                         NEO4J_DATABASE=neo4j_server["database"])
    assert "skipped: no Neo4j" not in text and "{'Chunk': " in text and "'Document': 5" in text, text
    assert "graph channel's view" in text


def test_notebooks_are_committed_without_outputs():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), path.name
    assert os.path.exists(NOTEBOOKS / "sample-corpus")
