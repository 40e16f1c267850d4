"""The model runtime: the models a run builds from its settings, where they run (device), how
(precision, oneDNN's cache), and giving their memory back to the OS.

Imported by the query path too (kgbuild.embed), so it imports torch, the settings and the models
only inside the functions that need them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from kgbuild.errors import ConfigError

if TYPE_CHECKING:
    from kgbuild.embed import Embedder
    from kgbuild.extract.base import Extractor
    from kgbuild.schema import ExtractionSchema
    from kgbuild.settings import Settings


def build_extractor(settings: Settings, schema: ExtractionSchema) -> Extractor:
    from kgbuild.extract.gliner import GLiNER2Extractor

    return GLiNER2Extractor(
        schema,
        settings.model,
        device=settings.device,
        batch_size=settings.batch_size,
        torch_threads=settings.torch_threads,
        precision=settings.precision,
        fast_attention=settings.fast_attention,
        adapter=settings.adapter,
        relation_decoding=settings.relation_decoding,
    )


def build_embedder(settings: Settings) -> Embedder:
    from kgbuild.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(settings.embedding_model, device=settings.device, batch_size=settings.embedding_batch_size)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; asking for a missing GPU is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for, but torch sees no CUDA GPU; use --device cpu")
    return device


def cpu_has_native_bf16() -> bool:
    """True where the CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` -> ``bf16`` where the device computes it natively, else ``fp32``; ``bf16`` on a CPU without it is slow but allowed."""
    if precision != "auto":
        return precision
    if device == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_native_bf16() else "fp32"


# oneDNN (torch's CPU matmul library) caches a compiled primitive per input shape, 1,024 by default.
# Chunks of every length up to the window make hundreds of shapes, and the cache grew an ingest's
# memory by ~0.5 GB per 1,000 chunks (BENCHMARKS.md, P7); 128 kept the speed and bounded the memory.
ONEDNN_CACHE_CAPACITY = "128"


def bound_onednn_cache() -> None:
    """Cap oneDNN's primitive cache unless the user set it; read by oneDNN when it first creates a primitive."""
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE_CAPACITY)


