"""kgbuild eval: metrics on hand-made gold/prediction pairs with known answers, gold validation messages, and the
command on a real (untrained) checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kgbuild.cli import app
from kgbuild.schema import parse_schema
from kgbuild.train.gold import GoldDataError, GoldExample, GoldRelation, GoldSpan, load_gold, parse_record
from kgbuild.train.metrics import Prediction, score

SCHEMA = parse_schema("""
name: eval-test
entities:
  PERSON: {description: a person}
  COMPANY: {description: a company}
  CITY: {}
relations:
  CEO_OF: {source: [PERSON], target: [COMPANY]}
  BASED_IN: {source: [COMPANY], target: [CITY]}
classifications:
  tone:
    labels: [positive, negative]
""")

TEXT = "Tim Cook runs Apple Inc. in Cupertino."  # Tim Cook 0-8, Apple Inc. 14-24, Apple 14-19, Cupertino 28-37


def span(label: str, text: str, surface: str) -> GoldSpan:
    start = text.index(surface)
    return GoldSpan(label, surface, start, start + len(surface))


def rel(label: str, head: str, tail: str) -> GoldRelation:
    return GoldRelation(label, span("", TEXT, head), span("", TEXT, tail))


def gold_example() -> GoldExample:
    return GoldExample(
        TEXT, [span("PERSON", TEXT, "Tim Cook"), span("COMPANY", TEXT, "Apple Inc."), span("CITY", TEXT, "Cupertino")],
        {"PERSON", "COMPANY", "CITY"}, [rel("CEO_OF", "Tim Cook", "Apple Inc."), rel("BASED_IN", "Apple Inc.", "Cupertino")])


def test_entity_scores_exact_partial_per_label_micro_and_macro():
    predicted = Prediction(entities=[
        span("PERSON", TEXT, "Tim Cook"),  # right
        span("COMPANY", TEXT, "Apple"),  # boundary: partial only
        span("PERSON", TEXT, "Cupertino"),  # wrong type
        span("CITY", TEXT, "runs"),  # spurious
    ])
    s = score([gold_example()], [predicted])
    exact = s.entities
    assert (exact.micro.tp, exact.micro.fp, exact.micro.fn) == (1, 3, 2)
    assert exact.micro.precision == pytest.approx(0.25) and exact.micro.recall == pytest.approx(1 / 3)
    assert exact.micro.f1 == pytest.approx(2 * 0.25 * (1 / 3) / (0.25 + 1 / 3))
    assert exact.per_label["PERSON"].to_dict()["tp"] == 1 and exact.per_label["PERSON"].fp == 1
    # macro: PERSON P 0.5 R 1, COMPANY P 0 R 0, CITY P 0 R 0
    assert exact.macro["precision"] == pytest.approx(round(0.5 / 3, 4))
    assert exact.macro["recall"] == pytest.approx(round(1 / 3, 4))
    partial = s.entities_partial.micro
    assert (partial.tp, partial.fp, partial.fn) == (2, 2, 1)  # Apple overlaps Apple Inc.
    kinds = {(e.kind, e.gold, e.predicted) for e, _, _ in s.errors.most_common(20) if e.task == "entities"}
    assert kinds == {("boundary", "COMPANY", "COMPANY"), ("wrong type", "CITY", "PERSON"), ("spurious", "", "CITY")}


def test_perfect_and_empty_predictions():
    gold = gold_example()
    perfect = Prediction(entities=list(gold.entities), relations=list(gold.relations))
    s = score([gold], [perfect])
    assert s.entities.micro.f1 == 1.0 and s.relations.micro.f1 == 1.0 and not s.errors.counts
    empty = score([gold], [Prediction()])
    assert empty.entities.micro.to_dict() == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 0, "fn": 3}
    assert {e.kind for e in empty.errors.counts} == {"missed"}


def test_relations_compare_names_case_insensitively_with_coreference_and_sort_errors():
    gold = gold_example()
    gold.coreference = [["Apple Inc.", "Apple"]]
    predicted = Prediction(relations=[
        GoldRelation("CEO_OF", GoldSpan("", "tim cook"), GoldSpan("", "Apple")),  # right: Apple is Apple Inc.
        GoldRelation("CEO_OF", GoldSpan("", "Apple Inc."), GoldSpan("", "Cupertino")),  # wrong type (BASED_IN)
        GoldRelation("CEO_OF", GoldSpan("", "Apple Inc."), GoldSpan("", "Tim Cook")),  # reversed
    ])
    s = score([gold], [predicted])
    assert (s.relations.micro.tp, s.relations.micro.fp, s.relations.micro.fn) == (1, 2, 1)
    assert s.relations.per_label["CEO_OF"].precision == pytest.approx(1 / 3)
    assert s.relations.per_label["BASED_IN"].recall == 0.0
    kinds = {(e.kind, e.gold, e.predicted) for e in s.errors.counts if e.task == "relations"}
    assert kinds == {("wrong type", "BASED_IN", "CEO_OF"), ("reversed", "CEO_OF", "CEO_OF")}


def test_classification_scores_and_surface_only_gold():
    gold = GoldExample(TEXT, [GoldSpan("PERSON", "tim cook")], {"PERSON"})
    from kgbuild.train.gold import GoldClassification

    gold.classifications = [GoldClassification("tone", ("positive", "negative"), ("positive",))]
    predicted = Prediction(entities=[span("PERSON", TEXT, "Tim Cook"), span("COMPANY", TEXT, "Apple Inc.")],
                           classifications={"tone": ("negative",)})
    s = score([gold], [predicted])
    assert s.entities.micro.f1 == 1.0  # by surface; COMPANY is not labelled in this example, so not counted
    assert s.classifications.per_label["tone=positive"].fn == 1
    assert s.classifications.per_label["tone=negative"].fp == 1
    assert any(e.kind == "wrong label" for e in s.errors.counts)


def write(path: Path, records: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def test_gold_is_read_with_labels_or_prompts_and_written_back(tmp_path):
    gold = write(tmp_path / "gold.jsonl", [
        {"input": TEXT, "output": {"entities": {"person": [{"text": "Tim Cook", "start": 0, "end": 8}],
                                                "COMPANY": ["Apple Inc."], "city": []},
                                   "relations": [{"ceo_of": {"head": "Tim Cook", "tail": "Apple Inc."}}],
                                   "classifications": [{"task": "tone", "labels": ["positive", "negative"],
                                                        "true_label": ["positive"]}]}},
    ])
    (example,) = load_gold(gold, SCHEMA)
    assert example.entity_types == {"PERSON", "COMPANY", "CITY"}
    assert [(e.label, e.start) for e in example.entities] == [("PERSON", 0), ("COMPANY", None)]
    assert example.relations[0].label == "CEO_OF"
    record = example.to_record(SCHEMA)
    assert record["output"]["entities"]["person"] == [{"text": "Tim Cook", "start": 0, "end": 8}]
    assert record["output"]["entities"]["city"] == [] and "entity_descriptions" in record["output"]
    again, problems = parse_record(record, SCHEMA)
    assert not problems and again.entities == example.entities


def test_validation_names_the_line_and_field_of_every_problem(tmp_path):
    gold = write(tmp_path / "bad.jsonl", [
        {"input": TEXT, "output": {"entities": {"person": [{"text": "Tim", "start": 0, "end": 8}]}}},
        "{not json",
        {"input": TEXT, "output": {"entities": {"animal": ["Tim Cook"]}}},
        {"input": TEXT, "output": {"entities": {"company": [{"text": "Apple", "start": 30, "end": 90}]}}},
        {"input": TEXT, "output": {"relations": [{"owns": {"head": "Tim Cook", "tail": "Apple"}}]}},
        {"input": TEXT, "output": {"classifications": [{"task": "tone", "labels": ["positive"], "true_label": "great"}]}},
        {"input": TEXT, "output": {"entities": {"person": ["Steve Jobs"]}}},
        {"text": TEXT, "label": [[0, 8, "PER"]]},
    ])
    with pytest.raises(GoldDataError) as caught:
        load_gold(gold, SCHEMA)
    lines = str(caught.value).splitlines()[1:]
    assert len(lines) == 8
    assert lines[0] == f"{gold}:1: output.entities.person[0]: offsets [0, 8) cut 'Tim Cook' from the text, not 'Tim'"
    assert lines[1].startswith(f"{gold}:2: not valid JSON")
    assert lines[2] == (f"{gold}:3: output.entities.animal: unknown entity type (schema 'eval-test' has:"
                        " PERSON, COMPANY, CITY)")
    assert lines[3].startswith(f"{gold}:4: output.entities.company[0]: offsets [30, 90) are outside the text")
    assert lines[4].startswith(f"{gold}:5: output.relations[0].owns: unknown relation type")
    assert lines[5].startswith(f"{gold}:6: output.classifications[0]: tone.true_label: 'great' is not a label")
    assert lines[6] == f"{gold}:7: output.entities.person[0]: 'Steve Jobs' is not in the text"
    assert "kgbuild labels convert" in lines[7]


def test_eval_command_checks_the_gold_before_loading_a_model(tmp_path):
    gold = write(tmp_path / "bad.jsonl", [{"input": TEXT, "output": {"entities": {"animal": ["Tim Cook"]}}}])
    result = CliRunner().invoke(app, ["eval", str(gold), "--model", str(tmp_path / "no-such-model")])
    assert result.exit_code == 1
    assert f"{gold}:1: output.entities.animal: unknown entity type" in result.output


@pytest.mark.gliner2
def test_eval_command_on_a_real_checkpoint_prints_scores_and_json(tmp_path, untrained_checkpoint):
    gold = write(tmp_path / "gold.jsonl", [gold_example().to_record(SCHEMA), gold_example().to_record(SCHEMA)])
    schema_file = tmp_path / "schema.yaml"
    schema_file.write_text(json.dumps(SCHEMA.model_dump(mode="json")), encoding="utf-8")
    result = CliRunner().invoke(app, ["eval", str(gold), "--schema", str(schema_file), "--model", str(untrained_checkpoint),
                                      "--device", "cpu", "--json", "--threshold", "0.5"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["examples"] == 2 and report["entities"]["micro"]["tp"] + report["entities"]["micro"]["fn"] == 6
    assert set(report["entities"]["per_label"]) <= {"PERSON", "COMPANY", "CITY"}
    assert report["relation_decoding"] == "constrained"  # the default
    text = CliRunner().invoke(app, ["eval", str(gold), "--schema", str(schema_file), "--model", str(untrained_checkpoint),
                                    "--device", "cpu", "--limit", "1", "--relation-decoding", "plain"])
    assert text.exit_code == 0, text.output
    words = " ".join(text.output.split())  # the title wraps where the terminal ends
    assert "entities (exact)" in words and "plain relation decoding" in words
