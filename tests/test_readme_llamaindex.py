"""README's LlamaIndex example runs as a user pastes it, from a copy of the repository's layout.

The code block is written out unchanged and run in a fresh interpreter whose working directory is a
temporary folder holding what the example reads: ``notebooks/sample-corpus`` (copied) and
``../shared/models/gliner2-minilm-demo`` (a link to the demo checkpoint). Its index is written there,
never into the repository. A small driver counts the texts that go through the model.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_index.core")

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"

DRIVER = """
import collections, json, runpy, sys
from kgbuild.extract.gliner import GLiNER2Extractor

seen = collections.Counter()
extract = GLiNER2Extractor.extract

def counting_extract(self, texts):
    seen.update(texts)
    return extract(self, texts)

GLiNER2Extractor.extract = counting_extract
names = runpy.run_path(sys.argv[1], run_name="__main__")
nodes = names["nodes"]
store = names["graph_index"].property_graph_store
entity_ids = sorted({e for n in nodes for e in n.metadata["entity_ids"]})
print("CHECK " + json.dumps({
    "extracted": dict(seen),
    "texts": [n.get_content(metadata_mode="none") for n in nodes],
    "entity_ids": entity_ids,
    "graph_entity_ids": sorted(n.id for n in store.get(ids=entity_ids)),
    "entity_keys": sorted({k for n in nodes for k in n.metadata["entity_keys"]}),
}))
"""


def readme_llamaindex_code(readme: str) -> str:
    section = readme.split("\n### LlamaIndex\n", 1)[1].split("\n### ", 1)[0]
    blocks = re.findall(r"^```python\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)
    assert blocks, "README's LlamaIndex section has no python code block"
    return "\n".join(blocks)


def test_the_llamaindex_section_has_its_code_in_python_blocks():
    code = readme_llamaindex_code(README.read_text(encoding="utf-8"))
    assert "KgbuildExtractor(" in code and "PropertyGraphIndex" in code


@pytest.mark.gliner2
def test_readme_llamaindex_example_runs_as_pasted_and_extracts_each_text_once(demo_checkpoint, tmp_path):
    code = readme_llamaindex_code(README.read_text(encoding="utf-8"))
    work = tmp_path / "work"
    shutil.copytree(REPO / "notebooks" / "sample-corpus", work / "notebooks" / "sample-corpus")
    (tmp_path / "shared" / "models").mkdir(parents=True)
    (tmp_path / "shared" / "models" / "gliner2-minilm-demo").symlink_to(demo_checkpoint, target_is_directory=True)
    (work / "readme_llamaindex.py").write_text(code, encoding="utf-8")
    (tmp_path / "driver.py").write_text(DRIVER, encoding="utf-8")

    run = subprocess.run([sys.executable, str(tmp_path / "driver.py"), "readme_llamaindex.py"], cwd=work,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    check = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("CHECK "))[len("CHECK "):])

    # the pipeline and the graph index share one extraction: every node text went through the model once
    # (the short sample nodes are one window each); the hybrid retriever finds the query's entities by
    # name, so the query itself never goes through the model
    node_texts = set(check["texts"])
    assert node_texts and set(check["extracted"]) == node_texts and set(check["extracted"].values()) == {1}
    assert check["entity_ids"] and check["graph_entity_ids"] == check["entity_ids"]
    assert "PERSON:tim cook" in check["entity_keys"]
    # the query printed its sources; the index lies in the temporary folder
    printed = [line for line in run.stdout.splitlines() if re.match(r"^\d\.\d{3}  ", line)]
    assert printed and "vision-pro.md" in printed[0]
    state = json.loads((work / ".kgbuild" / "state.json").read_text(encoding="utf-8"))
    assert state["manifest"]["model"] == "../shared/models/gliner2-minilm-demo"
