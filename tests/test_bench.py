"""The benchmark harness itself: its comparisons and its workers compute what their tables claim."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpora" / "wiki-passages.jsonl"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import Section, percentile, write_section  # noqa: E402
from bench.speed import compare_extractions  # noqa: E402
from kgbuild.extract.base import RawExtraction, RawSpan  # noqa: E402
from kgbuild.types import LabelScore  # noqa: E402


def _bench(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def test_agreement_counts_identical_spans_and_score_differences():
    def raw(*spans, label="earnings_report"):
        return RawExtraction(entities=[RawSpan(t, "x", s, e, c) for t, s, e, c in spans],
                             classifications={"document_type": [LabelScore(label, 0.9)]})

    reference = [raw(("COMPANY", 0, 4, 0.9), ("PERSON", 10, 14, 0.6)), raw(("MONEY", 3, 8, 0.7))]
    candidate = [raw(("COMPANY", 0, 4, 0.88), ("PERSON", 10, 15, 0.6)), raw(("MONEY", 3, 8, 0.7), label="legal_filing")]
    figures = compare_extractions(reference, candidate)
    assert figures["kept_share"] == pytest.approx(2 / 3)
    assert figures["jaccard"] == pytest.approx(2 / 4)
    assert figures["max_diff"] == pytest.approx(0.02)
    assert figures["class_share"] == pytest.approx(0.5)


def test_sections_render_and_replace_their_block(tmp_path, monkeypatch):
    import bench.common

    target = tmp_path / "BENCHMARKS.md"
    target.write_text("# Benchmarks\n\nhand-written notes\n")
    monkeypatch.setattr(bench.common, "BENCHMARKS_MD", target)
    section = Section("P9", "a figure")
    section.row("ratio", "2.0×")
    section.target("P9 ratio ≥ 1.5", True)
    write_section("p9", section.markdown())
    write_section("p9", section.markdown().replace("2.0×", "3.0×"))
    text = target.read_text()
    assert "hand-written notes" in text and text.count("<!-- bench:p9 -->") == 1
    assert "| ratio | 3.0× |" in text and "2.0×" not in text and "**met**" in text
    assert percentile([1, 2, 3, 4], 0.5) == pytest.approx(2.5)


def test_an_unknown_part_is_named():
    done = _bench("bench", "--only", "P9")
    assert done.returncode != 0 and "unknown part(s) P9" in done.stderr


@pytest.mark.skipif(not CORPUS.exists(), reason=f"the passage corpus is not at {CORPUS}")
def test_the_scale_worker_ingests_exactly_the_chunks_it_counted(tmp_path):
    done = _bench("bench.scale", "--worker", "120", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["chunks"] == figures["counted_chunks"] >= 120
    assert figures["vector_points"] == figures["chunks"] and figures["mentions"] > figures["chunks"]
    assert 50 < figures["peak_rss_mib"] < 2000 and figures["ingest_s"] > 0


DEMO_MODEL = REPO.parent / "shared" / "models" / "gliner2-minilm-demo"


@pytest.mark.skipif(not (CORPUS.exists() and DEMO_MODEL.exists()), reason="the passage corpus or the demo checkpoint is absent")
def test_the_scale_worker_measures_an_ingest_with_the_real_models(tmp_path):
    done = _bench("bench.scale", "--worker", "12", str(tmp_path), "--models", "demo")
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["models"] == "demo" and figures["chunks"] == figures["counted_chunks"] >= 12
    assert figures["entities"] > 0 and figures["vector_points"] == figures["chunks"]
    # the encoders are loaded before the clock: the process holds them, which the fake models' run does not
    assert figures["rss_before_ingest_mib"] > 500


def test_scale_out_tells_a_moved_confidence_from_another_graph():
    from bench.scale_out import _largest_difference, same_index

    single = {"ok": True, "checksums": ["g", "c"], "structure": "s", "confidences": [0.5, 0.9739]}
    assert same_index(dict(single), single) == "same checksums"
    moved = {**single, "checksums": ["g2", "c"], "confidences": [0.5, 0.9738]}
    assert same_index(moved, single) == ("same ids, spans, labels and chunk payloads; 1 of 2 confidences differ,"
                                         " by at most 0.0001")
    assert _largest_difference(moved, single) == pytest.approx(0.0001)
    assert same_index({**moved, "structure": "other"}, single) == "**another graph**"
    assert same_index({**moved, "checksums": ["g2", "c2"]}, single) == "**other chunk payloads**"
    assert _largest_difference({**moved, "confidences": [0.5]}, single) == float("inf")
