"""``kgbuild train``: fine-tune a GLiNER2 checkpoint on labelled examples with gliner2's own trainer.

Full fine-tuning writes a whole checkpoint to ``out`` (use it as ``--model out``); LoRA (``lora=True``) trains
low-rank adapters only and writes a PEFT adapter of a few MB (use it as ``--model BASE --adapter out``).

The data is checked against the schema first (``kgbuild.train.gold``: every problem, one line each, before a
model loads). Examples are given to the trainer as the model reads them at ingest: the schema's prompts and
entity descriptions, every entity type of the schema listed (a type with no mention is a negative). A share
of the examples (``eval_split``) is held out: the trainer's validation loss is computed on it once per epoch,
the best epoch's weights are kept, and training stops after ``patience`` epochs without improvement. At the
end, the untrained base and the result are both evaluated (``kgbuild eval``) on the held-out examples (on the
training examples when nothing is held out), loading the result from ``out`` as ingest will.

>>> report = train("labels.jsonl", "business-news", "./gliner2-base", "./my-adapter", lora=True, epochs=5)
>>> report.after.scores.entities.micro.f1
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from kgbuild.errors import ConfigError, KgbuildError
from kgbuild.schema import ExtractionSchema, load_schema
from kgbuild.train.evaluate import EvalReport, build_eval_extractor, evaluate
from kgbuild.train.gold import GoldExample, load_gold

REPORT_FILE = "kgbuild-train.json"
_WORK = ".trainer"  # gliner2's trainer writes its checkpoints here, inside ``out``; removed at the end


class TrainingError(KgbuildError):
    """Training could not run or finish (the message says why)."""


@dataclass(slots=True)
class TrainProgress:
    """What the progress callback gets after each optimizer step."""

    step: int
    total_steps: int
    epoch: float
    loss: float | None  # the step's training loss
    eval_loss: float | None = None  # the last validation loss, once there is one


@dataclass(slots=True)
class TrainReport:
    out_dir: str
    kind: str  # "full" or "lora"
    base: str
    schema: str
    train_examples: int
    eval_examples: int
    steps: int
    epochs: int
    seconds: float
    examples_per_second: float
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)
    best_eval_loss: float | None = None
    stopped_early: bool = False
    size_mb: float = 0.0
    compared_on: str = ""  # "held-out examples" or "training examples"
    before: EvalReport | None = None
    after: EvalReport | None = None

    def to_dict(self) -> dict[str, Any]:
        result = {k: getattr(self, k) for k in (
            "out_dir", "kind", "base", "schema", "train_examples", "eval_examples", "steps", "epochs", "seconds",
            "examples_per_second", "losses", "eval_losses", "best_eval_loss", "stopped_early", "size_mb", "compared_on")}
        result["before"] = self.before.to_dict() if self.before else None
        result["after"] = self.after.to_dict() if self.after else None
        return result


def split_examples(examples: Sequence[GoldExample], eval_split: float, seed: int = 42) -> tuple[list, list]:
    """(train, held out): a seeded shuffle, ``eval_split`` of it held out (at least one when the share is > 0)."""
    if not 0.0 <= eval_split < 1.0:
        raise ConfigError(f"eval split must be in [0, 1), got {eval_split}")
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    held = 0 if eval_split == 0 else max(1, round(len(examples) * eval_split))
    if held and len(examples) - held < 1:
        raise ConfigError(f"{len(examples)} examples cannot be split into training and held-out ones: label more,"
                          " or pass --eval-split 0")
    return [examples[i] for i in order[held:]], [examples[i] for i in order[:held]]


def train(data: str | Path | Sequence[GoldExample], schema: str | ExtractionSchema, base: str, out: str | Path, *,
          lora: bool = False, epochs: int = 3, eval_split: float = 0.1, device: str = "auto", batch_size: int = 8,
          learning_rate: float | None = None, encoder_learning_rate: float | None = None, lora_rank: int = 8,
          max_steps: int | None = None, patience: int = 2, seed: int = 42, compare: bool = True,
          on_step: Callable[[TrainProgress], None] | None = None,
          on_phase: Callable[[str], None] | None = None) -> TrainReport:
    """Fine-tune ``base`` on ``data`` (gliner2 JSONL or examples) under ``schema`` and write the result to ``out``."""
    from kgbuild.extract.runtime import resolve_device

    loaded = schema if isinstance(schema, ExtractionSchema) else load_schema(schema)
    examples = load_gold(data, loaded) if isinstance(data, (str, Path)) else list(data)
    if epochs < 1:
        raise ConfigError(f"epochs must be at least 1, got {epochs}")
    train_set, held_out = split_examples(examples, eval_split, seed)
    out = Path(out)
    if out.exists() and any(p.name != _WORK for p in out.iterdir()):
        raise ConfigError(f"{out}: the output folder exists and is not empty; choose a new one")
    if lora:
        try:
            import peft  # noqa: F401
        except ImportError:
            raise ConfigError("--lora needs the peft package (pip install peft)") from None
    resolved_device = resolve_device(device)
    phase = on_phase or (lambda _: None)

    phase("loading model")
    from kgbuild.extract.gliner import load_gliner2

    model = load_gliner2(base)
    compared_on = "held-out examples" if held_out else "training examples"
    compare_set = held_out or train_set
    before = None
    if compare:
        phase("evaluating the base model")
        # the model about to be trained: no attention hooks on it (DeBERTa's fast attention is for inference)
        extractor = build_eval_extractor(loaded, model, device=resolved_device, batch_size=batch_size,
                                         fast_attention=False)
        before = evaluate(compare_set, loaded, extractor=extractor)

    phase("training")
    work = out / _WORK
    trainer, result, progress = _run_trainer(
        model, loaded, train_set, held_out, work, lora=lora, epochs=epochs, device=resolved_device,
        batch_size=batch_size, learning_rate=learning_rate, encoder_learning_rate=encoder_learning_rate,
        lora_rank=lora_rank, max_steps=max_steps, patience=patience, seed=seed, on_step=on_step)
    chosen = work / ("best" if held_out and (work / "best").is_dir() else "final")
    for item in chosen.iterdir():
        shutil.move(str(item), out / item.name)
    shutil.rmtree(work, ignore_errors=True)

    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
    report = TrainReport(
        out_dir=str(out), kind="lora" if lora else "full", base=base, schema=f"{loaded.name} {loaded.version}",
        train_examples=len(train_set), eval_examples=len(held_out), steps=int(result["total_steps"]),
        epochs=int(result["total_epochs"]), seconds=float(result["total_time_seconds"]),
        examples_per_second=float(result["samples_per_second"]), losses=progress.losses,
        eval_losses=progress.eval_losses, best_eval_loss=min((l for _, l in progress.eval_losses), default=None),
        stopped_early=progress.stopped_early(result, epochs, max_steps), size_mb=round(size, 2),
        compared_on=compared_on, before=before)
    if compare:
        phase("evaluating the result")
        model_ref, adapter = (base, str(out)) if lora else (str(out), None)
        report.after = evaluate(compare_set, loaded, model_ref, adapter=adapter, device=resolved_device,
                                batch_size=batch_size)
    (out / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=1), encoding="utf-8")
    return report


class _Progress:
    def __init__(self, on_step: Callable[[TrainProgress], None] | None):
        self.on_step = on_step
        self.losses: list[tuple[int, float]] = []
        self.eval_losses: list[tuple[int, float]] = []
        self.total = 0

    def stopped_early(self, result: dict, epochs: int, max_steps: int | None) -> bool:
        planned = self.total or (max_steps or 0)
        return bool(planned) and int(result["total_steps"]) < planned


def _run_trainer(model: Any, schema: ExtractionSchema, train_set: list[GoldExample], held_out: list[GoldExample],
                 work: Path, *, lora: bool, epochs: int, device: str, batch_size: int, learning_rate: float | None,
                 encoder_learning_rate: float | None, lora_rank: int, max_steps: int | None, patience: int, seed: int,
                 on_step: Callable[[TrainProgress], None] | None) -> tuple[Any, dict, _Progress]:
    import torch
    from gliner2.training.trainer import ExtractorTrainer, TrainingConfig

    progress = _Progress(on_step)
    steps_per_epoch = max(1, math.ceil(len(train_set) / batch_size))

    class Trainer(ExtractorTrainer):
        """gliner2's trainer on the device asked for (it takes CUDA whenever there is one), reporting to kgbuild."""

        def _setup_device(self) -> None:
            self.device = torch.device(device)
            self.is_distributed = False
            self.model.to(self.device)
            if not self.config.fp16 and not self.config.bf16:
                self.model.float()

        def _log_metrics(self, metrics: Any, prefix: str = "") -> None:
            super()._log_metrics(metrics, prefix)
            values = metrics if isinstance(metrics, dict) else metrics.to_dict()
            step = int(values.get("step", self.global_step))
            if prefix == "train" and "loss" in values:
                progress.losses.append((step, float(values["loss"])))
            elif prefix == "eval" and "eval_loss" in values:
                progress.eval_losses.append((step, float(values["eval_loss"])))
            if prefix == "train" and progress.on_step:
                progress.total = int(getattr(self, "_planned_max_steps", 0) or 0)
                progress.on_step(TrainProgress(step, progress.total, float(values.get("epoch", 0.0)),
                                               float(values.get("loss", float("nan"))),
                                               progress.eval_losses[-1][1] if progress.eval_losses else None))

    use_bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    config = TrainingConfig(
        output_dir=str(work), num_epochs=epochs, max_steps=max_steps or -1, batch_size=batch_size,
        eval_batch_size=batch_size,
        encoder_lr=encoder_learning_rate or 1e-5, task_lr=learning_rate or 5e-4,
        warmup_ratio=0.1, scheduler_type="linear", fp16=False, bf16=use_bf16,
        eval_strategy="steps" if held_out else "no", eval_steps=steps_per_epoch, save_best=bool(held_out),
        early_stopping=bool(held_out), early_stopping_patience=patience, save_total_limit=1,
        logging_steps=1, num_workers=0, pin_memory=False, seed=seed, validate_data=False,
        use_lora=lora, lora_r=lora_rank, lora_alpha=2.0 * lora_rank,
    )
    records = [_training_record(e, schema) for e in train_set]
    held = [_training_record(e, schema) for e in held_out] or None
    with _quiet_trainer():
        try:
            trainer = Trainer(model, config)
            result = trainer.train(train_data=records, eval_data=held)
        except (ValueError, RuntimeError) as exc:
            raise TrainingError(f"gliner2's trainer stopped: {type(exc).__name__}: {str(exc).splitlines()[0]}") from None
    if not progress.total:
        progress.total = int(getattr(trainer, "_planned_max_steps", 0) or 0)
    return trainer, result, progress


def _training_record(example: GoldExample, schema: ExtractionSchema) -> dict[str, Any]:
    record = example.to_record(schema)
    return {"input": record["input"], "output": record["output"]}


@contextlib.contextmanager
def _quiet_trainer() -> Iterator[None]:
    """gliner2's trainer logs at INFO and draws tqdm bars; kgbuild shows its own progress, so both are muted."""
    import gliner2.training.trainer as module

    original = module.tqdm

    def silent(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **{**kwargs, "disable": True})

    logger = logging.getLogger("gliner2")
    level = logger.level
    module.tqdm = silent
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        module.tqdm = original
        logger.setLevel(level)

