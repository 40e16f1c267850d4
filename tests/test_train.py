"""kgbuild train on a small generated set, from the untrained MiniLM-built checkpoint, a few steps on CPU: full
fine-tuning and a LoRA adapter, both loaded by `kgbuild ingest` through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kgbuild.cli import app
from kgbuild.extract.checkpoint import CheckpointIdentity
from kgbuild.schema import parse_schema
from kgbuild.train.evaluate import evaluate
from kgbuild.train.finetune import split_examples, train
from kgbuild.train.gold import GoldExample, GoldRelation, GoldSpan, write_jsonl

pytestmark = pytest.mark.gliner2

SCHEMA_YAML = """
name: staff
entities:
  PERSON: {description: a person}
  COMPANY: {description: a company}
relations:
  WORKS_AT: {source: [PERSON], target: [COMPANY]}
"""
SCHEMA = parse_schema(SCHEMA_YAML)
PEOPLE = ["Anna Berg", "Tom Hale", "Rita Moss", "Ben Ocho", "Lia Park", "Sam Ruiz", "Ivo Dahl", "Eva Lund"]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli"]


def examples(n: int = 16) -> list[GoldExample]:
    made = []
    for i in range(n):
        person, company = PEOPLE[i % len(PEOPLE)], COMPANIES[i % len(COMPANIES)]
        text = f"{person} works at {company}." if i % 2 else f"At {company}, {person} leads sales."
        p, c = text.index(person), text.index(company)
        head, tail = GoldSpan("PERSON", person, p, p + len(person)), GoldSpan("COMPANY", company, c, c + len(company))
        made.append(GoldExample(text, [head, tail], {"PERSON", "COMPANY"},
                                [GoldRelation("WORKS_AT", GoldSpan("", person, p, head.end), GoldSpan("", company, c, tail.end))]))
    return made


@pytest.fixture(scope="module")
def setup(tmp_path_factory, untrained_checkpoint) -> dict:
    root = tmp_path_factory.mktemp("train")
    schema_file = root / "staff.yaml"
    schema_file.write_text(SCHEMA_YAML, encoding="utf-8")
    data = root / "staff.jsonl"
    write_jsonl((e.to_record(SCHEMA) for e in examples()), data)
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "staff.txt").write_text("Anna Berg works at Acme. At Globex, Tom Hale leads sales.", encoding="utf-8")
    return {"root": root, "schema": schema_file, "data": data, "corpus": corpus, "base": str(untrained_checkpoint)}


@pytest.fixture(scope="module")
def full(setup) -> dict:
    """Full fine-tuning through the CLI: one step over the twelve training examples, a quarter held out
    (validation loss, best weights), the before/after table on the held-out examples."""
    out = setup["root"] / "full"
    result = CliRunner().invoke(app, [
        "train", str(setup["data"]), "--schema", str(setup["schema"]), "--base", setup["base"], "--out", str(out),
        "--max-steps", "1", "--eval-split", "0.25", "--device", "cpu", "--batch-size", "12"])
    assert result.exit_code == 0, result.output
    return {"out": out, "output": result.output, "report": json.loads((out / "kgbuild-train.json").read_text())}


@pytest.fixture(scope="module")
def lora(setup) -> dict:
    """A LoRA adapter through the library: six steps on the sixteen examples, nothing held out."""
    pytest.importorskip("peft", reason="LoRA needs the peft package (gliner2's LoRA is PEFT's)")
    out = setup["root"] / "lora"
    report = train(setup["data"], SCHEMA, setup["base"], out, lora=True, epochs=3, eval_split=0, device="cpu",
                   batch_size=8, learning_rate=5e-3, compare=False)
    return {"out": out, "report": report}


def test_full_training_writes_a_checkpoint_with_validation_and_a_before_after_table(full):
    report = full["report"]
    assert report["kind"] == "full" and report["steps"] == 1
    assert (report["train_examples"], report["eval_examples"]) == (12, 4)
    assert report["eval_losses"] and report["best_eval_loss"] is not None  # validated once per epoch (one step)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in full["out"].iterdir()}
    assert not (full["out"] / ".trainer").exists()
    assert "before and after training, on the held-out examples (4)" in full["output"]
    assert f"use it with: kgbuild ingest PATH --model {full['out']}" in " ".join(full["output"].split())
    assert report["before"]["entities"]["micro"]["tp"] + report["before"]["entities"]["micro"]["fn"] == 8


def test_lora_trains_an_adapter_of_a_few_mb_and_the_loss_decreases(lora):
    report = lora["report"]
    assert report.kind == "lora" and report.steps == 6 and report.examples_per_second > 0
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in lora["out"].iterdir()}
    assert report.size_mb < 5
    losses = [loss for _, loss in report.losses]
    assert sum(losses[-2:]) / 2 < sum(losses[:2]) / 2, losses


def test_training_improves_eval_on_the_training_examples(setup, lora):
    # Six steps from randomly initialised heads teach the model to rank the labelled spans above the rest long
    # before their scores pass 0.5 (it first learns to say "no" everywhere, and the count head to expect none),
    # so this compares the two models by the span scores, through the joint decoder, at a low threshold.
    gold = examples()[:8]
    kwargs = {"device": "cpu", "relation_decoding": "constrained", "threshold": 0.05}
    before = evaluate(gold, SCHEMA, setup["base"], **kwargs).scores.entities.micro
    after = evaluate(gold, SCHEMA, setup["base"], adapter=str(lora["out"]), **kwargs).scores.entities.micro
    assert after.f1 > before.f1, (before.to_dict(), after.to_dict())
    assert after.precision > before.precision


def test_checkpoint_and_adapter_load_in_ingest_and_another_adapter_extracts_again(setup, full, lora):
    runner = CliRunner()
    common = [str(setup["corpus"]), "--schema", str(setup["schema"]), "--device", "cpu", "--json"]
    with_full = runner.invoke(app, ["ingest", *common, "--model", str(full["out"]), "--out", str(setup["root"] / "idx-full")])
    assert with_full.exit_code == 0, with_full.output
    assert json.loads(with_full.stdout)["documents_read"] == 1

    index = str(setup["root"] / "idx-lora")
    with_adapter = runner.invoke(app, ["ingest", *common, "--model", setup["base"], "--adapter", str(lora["out"]),
                                       "--out", index])
    assert with_adapter.exit_code == 0, with_adapter.output
    manifest = json.loads((Path(index) / "state.json").read_text())["manifest"]
    assert f"+ adapter {lora['out'].resolve()}" in manifest["model"]
    again = runner.invoke(app, ["ingest", *common, "--model", setup["base"], "--adapter", str(lora["out"]), "--out", index])
    assert json.loads(again.stdout)["documents_read"] == 0  # same adapter: nothing to do
    without = runner.invoke(app, ["ingest", *common, "--model", setup["base"], "--out", index])
    assert without.exit_code == 0, without.output
    report = json.loads(without.stdout)
    assert report["documents_read"] == 1 and "model" in report["reextraction_reason"]


def test_adapter_and_decoding_are_part_of_the_model_identity(tmp_path, lora):
    base = CheckpointIdentity("/m", "sha256:" + "0" * 64, "/m")
    adapted = base.with_adapter(str(lora["out"]))
    assert adapted.fingerprint != base.fingerprint and adapted.load_from == "/m"
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in lora["out"].iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    assert base.with_adapter(str(copy)).fingerprint == adapted.fingerprint  # the same adapter by content
    assert base.with_part("relations", "constrained").fingerprint != base.fingerprint


def test_bad_data_and_settings_are_refused_before_any_model_loads(setup, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"input": "Anna Berg works at Acme.",
                               "output": {"entities": {"person": [{"text": "Anna", "start": 0, "end": 9}]}}}) + "\n")
    result = CliRunner().invoke(app, ["train", str(bad), "--schema", str(setup["schema"]), "--base", "/no/such/model",
                                      "--out", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert f"{bad}:1: output.entities.person[0]: offsets [0, 9) cut 'Anna Berg' from the text, not 'Anna'" in result.output
    from kgbuild.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot be split"):
        split_examples(examples(1), 0.5)
    train_set, held = split_examples(examples(10), 0.2)
    assert len(held) == 2 and not {e.text for e in held} & {e.text for e in train_set}
