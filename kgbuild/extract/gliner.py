"""The GLiNER2 adapter: one multi-task schema, one forward pass per chunk, chunks in batches."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from pathlib import Path
from typing import Any, Sequence

from kgbuild.chunk import TokenSpans, split_word_spans
from kgbuild.extract.runtime import bound_onednn_cache, resolve_device, resolve_precision
from kgbuild.errors import ConfigError, ModelLoadError
from kgbuild.extract.base import RawExtraction, RawRelation, RawSpan
from kgbuild.extract.constrained import RELATION_DECODINGS
from kgbuild.schema import ExtractionSchema
from kgbuild.types import LabelScore, StructureInstance

log = logging.getLogger(__name__)

# Constrained decoding lifts relation F1 on held-out Re-DocRED (0.086 -> 0.144), keeps the wikihop retrieval recall, and
# costs 1.5-1.8x plain's model time on an ingest's chunks (BENCHMARKS.md, "relations-eval"): the default.
# Settings repeats it.
DEFAULT_RELATION_DECODING = "constrained"

# Tokens kept free beside schema + text: the encoder's [CLS]/[SEP], and the "." that
# gliner2 appends to a text that does not end with punctuation.
_RESERVED_TOKENS = 4


class GLiNER2Extractor:
    """Runs a GLiNER2 checkpoint (hub id or local directory) with a kgbuild schema.

    Nothing is loaded until ``warm_up()`` or the first call that needs the model.

    The fast path (on by default, measured in BENCHMARKS.md "model"): texts are sent in batches of
    similar length, so less padding is computed; ``precision="auto"`` runs the model under bfloat16
    autocast where the device multiplies bf16 natively (99% of kept entities identical to fp32 on the
    demo checkpoint, a test keeps it so); ``fast_attention`` swaps a DeBERTa encoder's attention for
    DisentangledFlash on unpadded sequences (same math, measured on the base-size benchmark model).

    >>> extractor = GLiNER2Extractor(load_schema("business-news"), model="./my-gliner2")
    >>> extractor.extract(["Tim Cook is the CEO of Apple Inc."])
    """

    def __init__(
        self,
        schema: ExtractionSchema,
        model: str | Any = "fastino/gliner2-base-v1",
        *,
        device: str = "auto",
        batch_size: int = 8,
        torch_threads: int | None = None,
        precision: str = "auto",
        fast_attention: bool = True,
        adapter: str | Path | None = None,
        relation_decoding: str = DEFAULT_RELATION_DECODING,
    ):
        if precision not in ("auto", "fp32", "bf16"):
            raise ConfigError(f"precision must be auto, fp32 or bf16, got {precision!r}")
        if relation_decoding not in RELATION_DECODINGS:
            raise ConfigError(f"relation decoding must be {' or '.join(RELATION_DECODINGS)}, got {relation_decoding!r}")
        self.schema = schema
        self._model_ref = model
        self.adapter = str(adapter) if adapter else None  # a LoRA adapter directory (kgbuild train --lora)
        self.relation_decoding = relation_decoding
        self._joint: Any = None  # JointDecoder, for constrained relation decoding
        self._rest_schema: Any = None  # the multi-task schema without entities and relations, beside the joint decoder
        self.device = device
        self.batch_size = batch_size
        self.torch_threads = torch_threads
        self.precision = precision
        self.fast_attention = fast_attention
        self.resolved_precision: str | None = None  # known after warm_up()
        self.attention = "eager"  # "disentangled-flash" once the fast attention is on
        self._model: Any = None
        self._gliner_schema: Any = None
        self._schema_tokens: int | None = None
        self._identity: Any = None  # CheckpointIdentity, once checkpoint() has run

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the loaded model (the Ray engine's actors each load their own); a model object given
        in place of a checkpoint travels with it."""
        state = dict(self.__dict__)
        if isinstance(self._model_ref, (str, Path)):
            state.update(_model=None, _gliner_schema=None, _schema_tokens=None, _joint=None, _rest_schema=None)
        return state

    # -- loading ----------------------------------------------------------------

    @property
    def name(self) -> str:
        if self._identity is not None:
            return self._identity.location
        if isinstance(self._model_ref, (str, Path)):
            return str(self._model_ref)
        return type(self._model_ref).__name__

    def checkpoint(self, known_hashes: dict[str, Any] | None = None) -> Any:
        """The checkpoint's identity (``kgbuild.extract.checkpoint``), resolved without loading the model.

        A hub id that is neither cached nor reachable fails here at once. A model object passed in
        directly is identified by its class name. The identity covers what else decides the output: the
        LoRA adapter (its directory's content) and constrained relation decoding, so an index extracted
        with another adapter, or decoded the other way, is extracted again.
        """
        from kgbuild.extract.checkpoint import CheckpointIdentity, resolve_checkpoint

        if self._identity is None:
            if isinstance(self._model_ref, (str, Path)):
                identity = resolve_checkpoint(str(self._model_ref), known_hashes)
            else:
                name = type(self._model_ref).__name__
                identity = CheckpointIdentity(name, name)
            if self.adapter:
                identity = identity.with_adapter(self.adapter, known_hashes)
            if self.relation_decoding != "plain" and self.schema.relations:
                identity = identity.with_part("relations", self.relation_decoding, shown=f"{self.relation_decoding} relation decoding")
            self._identity = identity
        return self._identity

    def warm_up(self) -> None:
        if self._model is not None:
            return
        bound_onednn_cache()
        import torch

        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        if isinstance(self._model_ref, (str, Path)):
            model = load_gliner2(self._identity.load_from if self._identity is not None else str(self._model_ref))
        else:
            model = self._model_ref
        if self.adapter:
            model = apply_adapter(model, self.adapter)
        device = resolve_device(self.device)
        model = model.to(device)
        model.eval()
        self.resolved_precision = resolve_precision(self.precision, device)
        if self.fast_attention:
            self.attention = enable_fast_attention(model, device)
        self._model = model
        self._gliner_schema = build_gliner_schema(model, self.schema)
        self._schema_tokens = self._count_schema_tokens()
        if self.relation_decoding == "constrained" and self.schema.relations:
            from kgbuild.extract.constrained import JointDecoder

            self._joint = JointDecoder(model, self.schema, batch_size=self.batch_size)
            # classifications and structures still come from the multi-task pass, without entities and relations
            rest = self.schema.model_copy(update={"entities": {}, "relations": {}})
            self._rest_schema = build_gliner_schema(model, rest) if rest.classifications or rest.structures else None

    @property
    def model(self) -> Any:
        self.warm_up()
        return self._model

    def _count_schema_tokens(self) -> int:
        processor = self._model.processor
        record = processor.transform_record(".", copy.deepcopy(self._gliner_schema.build()))
        return len(record.input_ids) - 1  # minus the one token of the "." text

    def max_text_tokens(self) -> int:
        self.warm_up()
        window = _encoder_window(self._model)
        budget = window - _RESERVED_TOKENS - int(self._schema_tokens or 0)
        if budget < 16:
            raise ConfigError(
                f"schema '{self.schema.name}' needs {self._schema_tokens} tokens of the model's {window}-token window,"
                " leaving no room for text: split it into smaller schemas or shorten its descriptions"
            )
        return budget

    # -- token counting (the model's own tokenizer) ----------------------------------

    def token_counter(self) -> GLiNER2TokenCounter:
        self.warm_up()
        return GLiNER2TokenCounter(self._model.processor)

    # -- extraction -------------------------------------------------------------------

    def extract(self, texts: Sequence[str]) -> list[RawExtraction]:
        if not texts:
            return []
        model = self.model
        threshold = min(
            [self.schema.threshold]
            + [self.schema.entity_threshold(label) for label in self.schema.entities]
            + [self.schema.relation_threshold(label) for label in self.schema.relations]
        )
        # similar lengths share a batch (less padding); results go back in the caller's order
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ordered = [texts[i] for i in order]
        with self._autocast():
            if self._joint is not None:
                raws = self._extract_constrained(model, ordered, threshold)
            else:
                outputs = model.batch_extract(ordered, self._gliner_schema, batch_size=self.batch_size,
                                              threshold=threshold, include_confidence=True, include_spans=True)
                raws = [parse_gliner_output(output, self.schema) for output in outputs]
        by_position = dict(zip(order, raws))
        return [by_position[i] for i in range(len(texts))]

    def _extract_constrained(self, model: Any, texts: list[str], threshold: float) -> list[RawExtraction]:
        """Entities and relations from the joint decoder; classifications and structures from a pass without them."""
        raws = [RawExtraction() for _ in texts]
        if self._rest_schema is not None:
            outputs = model.batch_extract(texts, self._rest_schema, batch_size=self.batch_size, threshold=threshold,
                                          include_confidence=True, include_spans=True)
            raws = [parse_gliner_output(output, self.schema) for output in outputs]
        for raw, (entities, relations) in zip(raws, self._joint.decode(texts)):
            raw.entities, raw.relations = entities, relations
        return raws

    @property
    def runtime(self) -> dict[str, str]:
        """How the model runs, once loaded: precision and attention (the ingest report's ``model_runtime``)."""
        if self._model is None:
            return {}
        return {"precision": str(self.resolved_precision), "attention": self.attention}

    def _autocast(self) -> Any:
        if self.resolved_precision != "bf16":
            return contextlib.nullcontext()
        import torch

        device_type = next(self._model.parameters()).device.type
        return torch.autocast(device_type, dtype=torch.bfloat16)


class GLiNER2TokenCounter:
    """Counts tokens exactly as gliner2 does: its word splitter, then the tokenizer per word.

    Token counts are cached per word: words repeat (Zipf), and calling the tokenizer on every word
    of a document was 8% of a fast-path ingest (the profile in BENCHMARKS.md).
    """

    MAX_CACHED_WORDS = 500_000

    def __init__(self, processor: Any):
        self._split_words = processor.word_splitter
        self._tokenizer = processor.tokenizer
        self._counts: dict[str, int] = {}

    def token_spans(self, text: str) -> TokenSpans:
        words = list(self._split_words(text, lower=True))
        if not words:
            return TokenSpans([], [], [])
        counts = self._counts
        unseen = list(dict.fromkeys(w for w, _, _ in words if w not in counts))
        if unseen:
            if len(counts) + len(unseen) > self.MAX_CACHED_WORDS:
                counts.clear()
                unseen = list(dict.fromkeys(w for w, _, _ in words))
            encoded = self._tokenizer(unseen, add_special_tokens=False)["input_ids"]
            counts.update(zip(unseen, map(len, encoded)))
        return split_word_spans([(s, e) for _, s, e in words], [counts[w] for w, _, _ in words])


def enable_fast_attention(model: Any, device: str) -> str:
    """DisentangledFlash attention on unpadded ("packed") sequences for a DeBERTa-v2/v3 encoder.

    Returns the attention now in use. Other encoders keep their own attention, and so does a
    DeBERTa model where the optional package is missing (said once in the log).
    """
    config = getattr(getattr(model, "encoder", None), "config", None)
    if type(config).__name__ != "DebertaV2Config" or not hasattr(model, "enable_disentangled_flash"):
        return "eager"
    if getattr(model, "_disentangled_flash_hook_handle", None) is not None:  # a model shared by several extractors
        return "disentangled-flash"
    try:
        # the Triton kernels are CUDA-only; the PyTorch backend shares position work across layers
        model.enable_disentangled_flash(backend="auto" if device == "cuda" else "torch", packed=True)
    except ImportError:
        log.warning("disentangled-flash is not installed: DeBERTa attention stays eager (pip install disentangled-flash)")
        return "eager"
    return "disentangled-flash"


def _encoder_window(model: Any) -> int:
    config = getattr(getattr(model, "encoder", None), "config", None)
    window = getattr(config, "max_position_embeddings", None) or 512
    tokenizer_limit = getattr(model.processor.tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < window:
        window = tokenizer_limit
    return int(window)


def apply_adapter(model: Any, adapter: str) -> Any:
    """The model with a LoRA adapter (a PEFT adapter directory, as ``kgbuild train --lora`` writes) merged in."""
    directory = Path(adapter).expanduser()
    if not (directory / "adapter_config.json").is_file():
        raise ModelLoadError(f"adapter '{adapter}': not a LoRA adapter directory (no adapter_config.json);"
                             " pass the directory kgbuild train --lora wrote")
    try:
        from peft import PeftModel
    except ImportError:
        raise ModelLoadError("a LoRA adapter needs the peft package (pip install peft)") from None
    try:
        return PeftModel.from_pretrained(model, str(directory)).merge_and_unload()
    except Exception as exc:  # peft raises many kinds on an adapter made for another model
        raise ModelLoadError(f"adapter '{adapter}': cannot be applied to this model ({type(exc).__name__}: {exc})") from None


def load_gliner2(model: str) -> Any:
    """Load a GLiNER2 checkpoint from a local directory or the Hugging Face Hub (or its cache).

    A hub id that is neither cached nor reachable fails at once (``checkpoint_location``), with one
    line saying how to pass a local checkpoint.
    """
    from kgbuild.extract.checkpoint import checkpoint_location

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    location = checkpoint_location(model)
    try:
        import transformers
        from gliner2 import GLiNER2
    except ImportError as exc:  # pragma: no cover - a broken install
        raise ModelLoadError(f"gliner2 is not installed ({exc}); reinstall kgbuild") from None
    transformers.logging.set_verbosity_error()
    try:
        return GLiNER2.from_pretrained(location)
    except OSError as exc:
        raise ModelLoadError(f"model '{model}': not a loadable GLiNER2 checkpoint ({exc})") from None
    except Exception as exc:  # gliner2/transformers raise many kinds on a bad checkpoint
        raise ModelLoadError(f"model '{model}': cannot be loaded as GLiNER2 ({type(exc).__name__}: {exc})") from None


def build_gliner_schema(model: Any, schema: ExtractionSchema) -> Any:
    """The gliner2 multi-task Schema for a kgbuild schema (prompts in place of labels)."""
    builder = model.create_schema()
    if schema.entities:
        builder = builder.entities(
            {(t.prompt or label.lower()): t.description for label, t in schema.entities.items()}
        )
    if schema.relations:
        builder = builder.relations(
            {(t.prompt or label.lower()): t.description for label, t in schema.relations.items()}
        )
    for task, spec in schema.classifications.items():
        builder = builder.classification(
            task,
            {label: desc for label, desc in spec.labels.items()} if any(spec.labels.values()) else list(spec.labels),
            multi_label=spec.multi_label,
            cls_threshold=spec.threshold,
        )
    for name, structure in schema.structures.items():
        struct = builder.structure(name)
        for field_name, spec in structure.fields.items():
            struct = struct.field(
                field_name,
                dtype=spec.type,
                choices=spec.choices,
                description=spec.description or None,
                threshold=spec.threshold,
            )
    return builder


def _label_for(key: str, prompts: dict[str, str]) -> str | None:
    """gliner2 may key a described relation as "prompt: description"; map either form back."""
    if key in prompts:
        return prompts[key]
    head = key.split(":", 1)[0].strip()
    return prompts.get(head)


def _span(label: str, item: Any) -> RawSpan | None:
    if not isinstance(item, dict) or "start" not in item or "end" not in item:
        return None
    return RawSpan(label, str(item.get("text", "")), int(item["start"]), int(item["end"]), float(item.get("confidence", 1.0)))


def _label_scores(value: Any) -> list[LabelScore]:
    items = value if isinstance(value, list) else [value]
    scores = []
    for item in items:
        if isinstance(item, dict) and "label" in item:
            scores.append(LabelScore(str(item["label"]), float(item.get("confidence", 1.0))))
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            scores.append(LabelScore(str(item[0]), float(item[1])))
        elif isinstance(item, str) and item:
            scores.append(LabelScore(item, 1.0))
    return scores


def parse_gliner_output(output: dict[str, Any], schema: ExtractionSchema) -> RawExtraction:
    """Turn one gliner2 result (with confidences and spans) into a RawExtraction with schema labels."""
    entity_prompts = schema.entity_prompts()
    relation_prompts = schema.relation_prompts()
    raw = RawExtraction()
    for key, items in (output.get("entities") or {}).items():
        label = entity_prompts.get(key)
        if label is None:
            continue
        for item in items or []:
            span = _span(label, item)
            if span is not None:
                raw.entities.append(span)

    # Relations normally sit under "relation_extraction", but gliner2 2.1 sometimes puts a
    # described relation at the top level: look in both places.
    relation_sources = dict(output.get("relation_extraction") or {})
    for key, value in output.items():
        if key not in ("entities", "relation_extraction") and _label_for(key, relation_prompts) and isinstance(value, list):
            relation_sources.setdefault(key, value)
    for key, items in relation_sources.items():
        label = _label_for(key, relation_prompts)
        if label is None:
            continue
        for item in items or []:
            if not isinstance(item, dict):
                continue
            head, tail = _span(label, item.get("head")), _span(label, item.get("tail"))
            if head is not None and tail is not None:
                raw.relations.append(RawRelation(label, head, tail))

    for task in schema.classifications:
        if task in output and output[task] is not None:
            raw.classifications[task] = _label_scores(output[task])

    for name in schema.structures:
        for instance in output.get(name) or []:
            if isinstance(instance, dict):
                raw.structures.append(StructureInstance(name, _plain_fields(instance)))
    return raw


def _plain_fields(instance: dict[str, Any]) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, float):
            return round(value, 6)
        return value

    return {key: plain(value) for key, value in instance.items()}
