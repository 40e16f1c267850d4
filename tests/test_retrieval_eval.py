"""The retrieval evaluation command runs on the project's multi-hop set, and hybrid beats vector-only there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_eval(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "bench.retrieval_eval", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_retrieval_eval_reports_every_mode_and_hybrid_finds_what_vector_misses(tmp_path):
    done = run_eval("--no-write", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    modes = result["modes"]
    assert set(modes) == {"vector only", "BM25 only", "graph only", "hybrid (RRF of all three)"}
    assert result["questions"] == 8 and result["passages"] == 32
    hybrid, vector = modes["hybrid (RRF of all three)"], modes["vector only"]
    assert set(hybrid["recall"]) == {"2", "5", "10"}
    assert hybrid["recall"]["5"] > vector["recall"]["5"]
    assert set(hybrid["answers_at_5"]) - set(vector["answers_at_5"])


def test_retrieval_eval_names_a_missing_input(tmp_path):
    done = run_eval("--no-write", "--data", str(tmp_path))
    assert done.returncode != 0 and "no corpus.jsonl" in done.stderr
