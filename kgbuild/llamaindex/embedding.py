"""kgbuild's sentence-transformers embedder as a LlamaIndex ``BaseEmbedding`` (local; never a network default)."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from kgbuild.embed import PACKAGED_MINILM, Embedder, SentenceTransformerEmbedder


class KgbuildEmbedding(BaseEmbedding):
    """
    >>> from llama_index.core import Settings
    >>> Settings.embed_model = KgbuildEmbedding()   # the packaged all-MiniLM-L6-v2, offline
    """

    _embedder: Any = PrivateAttr()

    def __init__(self, model_name: str = PACKAGED_MINILM, *, device: str = "cpu", embedder: Embedder | None = None,
                 embed_batch_size: int = 64, **kwargs: Any):
        super().__init__(model_name=model_name, embed_batch_size=embed_batch_size, **kwargs)
        self._embedder = embedder or SentenceTransformerEmbedder(model_name, device=device, batch_size=embed_batch_size)

    @classmethod
    def class_name(cls) -> str:
        return "KgbuildEmbedding"

    @property
    def embedder(self) -> Embedder:
        return self._embedder

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embedder.embed([query])[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embedder.embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embedder.embed(texts)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)
