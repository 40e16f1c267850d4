"""kgbuild labels: converters on small samples in each tool's real export format, and the export of an index's
extractions, which round-trips into eval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kgbuild.cli import app
from kgbuild.errors import ConfigError
from kgbuild.pipeline import ingest
from kgbuild.settings import Settings
from kgbuild.train.convert import ConvertError, convert_file, parse_label_map
from kgbuild.train.evaluate import evaluate
from kgbuild.train.gold import GoldDataError, load_gold

TEXT = "Tim Cook runs Apple Inc. in Cupertino."

# Label Studio's JSON export (NER with a relation and a choices control), abridged from a real export
LABEL_STUDIO = [{
    "id": 7, "data": {"text": TEXT},
    "annotations": [
        {"id": 1, "was_cancelled": True, "result": []},
        {"id": 2, "was_cancelled": False, "result": [
            {"id": "a1", "from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": 0, "end": 8, "text": "Tim Cook", "labels": ["PER"]}},
            {"id": "a2", "from_name": "label", "to_name": "text", "type": "labels",
             "value": {"start": 14, "end": 24, "text": "Apple Inc.", "labels": ["ORG"]}},
            {"from_id": "a2", "to_id": "a1", "type": "relation", "direction": "left", "labels": ["CEO_OF"]},
            {"id": "c1", "from_name": "document_type", "to_name": "text", "type": "choices",
             "value": {"choices": ["earnings_report"]}},
        ]},
    ],
    "predictions": [],
}]


def test_label_studio_export(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(LABEL_STUDIO), encoding="utf-8")
    (record,) = convert_file(path, "labelstudio", label_map={"PER": "PERSON", "ORG": "COMPANY"})
    assert record["input"] == TEXT and record["id"] == 7
    assert record["output"]["entities"] == {"PERSON": [{"text": "Tim Cook", "start": 0, "end": 8}],
                                            "COMPANY": [{"text": "Apple Inc.", "start": 14, "end": 24}]}
    # direction "left": the arrow points from the second region to the first
    assert record["output"]["relations"] == [{"CEO_OF": {"head": {"text": "Tim Cook", "start": 0, "end": 8},
                                                         "tail": {"text": "Apple Inc.", "start": 14, "end": 24}}}]
    assert record["output"]["classifications"] == [
        {"task": "document_type", "labels": ["earnings_report"], "true_label": ["earnings_report"]}]


def test_doccano_exports_sequence_relation_and_classification(tmp_path):
    path = tmp_path / "doccano.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"id": 1, "text": TEXT, "label": [[0, 8, "PERSON"], [28, 37, "LOCATION"]]},
        {"id": 2, "text": TEXT, "entities": [{"id": 10, "label": "PERSON", "start_offset": 0, "end_offset": 8},
                                             {"id": 11, "label": "COMPANY", "start_offset": 14, "end_offset": 24}],
         "relations": [{"id": 3, "from_id": 10, "to_id": 11, "type": "CEO_OF"}]},
        {"id": 3, "text": TEXT, "label": ["earnings_report"]},
    ]) + "\n", encoding="utf-8")
    with pytest.raises(ConvertError, match=r"doccano.jsonl:3: text classification labels .*--task NAME"):
        convert_file(path, "doccano")
    first, second, third = convert_file(path, "doccano", classification_task="document_type")
    assert first["output"]["entities"]["LOCATION"] == [{"text": "Cupertino", "start": 28, "end": 37}]
    assert second["output"]["relations"][0]["CEO_OF"]["tail"]["text"] == "Apple Inc."
    assert third["output"]["classifications"][0]["true_label"] == ["earnings_report"]


def test_conll_bio_iob1_and_bioes(tmp_path):
    path = tmp_path / "train.conll"
    path.write_text(
        "-DOCSTART- -X- O O\n\n"
        "Tim NNP B-NP B-PER\nCook NNP I-NP I-PER\nruns VBZ B-VP O\nApple NNP B-NP B-ORG\nInc. NNP I-NP I-ORG\n. . O O\n\n"
        "Globex I-ORG\nand O\nAcme S-ORG\nmet O\nin O\nNew B-LOC\nYork E-LOC\n", encoding="utf-8")
    first, second = convert_file(path, "conll")
    assert first["input"] == "Tim Cook runs Apple Inc. ."
    assert first["output"]["entities"] == {"PER": [{"text": "Tim Cook", "start": 0, "end": 8}],
                                           "ORG": [{"text": "Apple Inc.", "start": 14, "end": 24}]}
    assert [s["text"] for s in second["output"]["entities"]["ORG"]] == ["Globex", "Acme"]  # IOB1 start, S- single
    assert second["output"]["entities"]["LOC"][0]["text"] == "New York"
    (tmp_path / "bad.conll").write_text("Tim X-PER\n", encoding="utf-8")
    with pytest.raises(ConvertError, match=r"bad.conll:1: tag 'X-PER'"):
        convert_file(tmp_path / "bad.conll", "conll")


def test_redocred_windows_keep_clusters_as_coreference(tmp_path):
    path = tmp_path / "windows.jsonl"
    window = {"title": "Apple", "text": TEXT + " Cook also visited Cupertino.",
              "entities": [[0, 8, "person", "Tim Cook"], [14, 24, "organization", "Apple Inc."], [39, 43, "person", "Cook"]],
              "clusters": {"0": ["Tim Cook", "Cook"], "1": ["Apple Inc."]}, "relations": [["employer", "0", "1"]],
              "subject": "organization"}
    path.write_text(json.dumps(window) + "\n", encoding="utf-8")
    (record,) = convert_file(path, "redocred")
    assert record["coreference"] == [["Tim Cook", "Cook"]]
    assert record["output"]["relations"] == [{"employer": {"head": "Tim Cook", "tail": "Apple Inc."}}]
    assert len(record["output"]["entities"]["person"]) == 2


def test_convert_command_checks_against_the_schema_and_maps_labels(tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(LABEL_STUDIO), encoding="utf-8")
    out = tmp_path / "gold.jsonl"
    runner = CliRunner()
    unmapped = runner.invoke(app, ["labels", "convert", str(path), "--from", "labelstudio", "--out", str(out),
                                   "--schema", "business-news"])
    assert unmapped.exit_code == 1 and "output.entities.PER: unknown entity type" in unmapped.output
    assert not out.exists()
    mapped = runner.invoke(app, ["labels", "convert", str(path), "--from", "labelstudio", "--out", str(out),
                                 "--schema", "business-news", "--map", "PER=PERSON", "--map", "ORG=COMPANY"])
    assert mapped.exit_code == 0, mapped.output
    assert "1 records" in mapped.output
    checked = runner.invoke(app, ["labels", "validate", str(out), "--schema", "business-news"])
    assert checked.exit_code == 0 and "1 valid examples" in checked.output
    with pytest.raises(ConvertError, match="FROM=TO"):
        parse_label_map(["PER"])


DOCS = {
    "news/apple.txt": "Apple Inc. CEO Tim Cook will unveil the Vision Pro in Cupertino. The Vision Pro costs $2,499.",
    "news/acme.txt": "Acme Corp, led by CEO Jane Park, will launch Rocket Skates. Acme Corp competes with Globex Ltd.",
}


@pytest.fixture(scope="module")
def index(tmp_path_factory, business_schema, embedder) -> Settings:
    from conftest import BUSINESS_CLASSES, BUSINESS_ENTITIES, BUSINESS_RELATIONS
    from kgbuild.extract.gazetteer import GazetteerExtractor

    tmp_path = tmp_path_factory.mktemp("labels-index")
    gazetteer = GazetteerExtractor(business_schema, BUSINESS_ENTITIES, BUSINESS_RELATIONS, BUSINESS_CLASSES, max_tokens=64)
    corpus = tmp_path / "corpus"
    for rel, text in DOCS.items():
        (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
        (corpus / rel).write_text(text, encoding="utf-8")
    settings = Settings(out_dir=tmp_path / "out", chunk_size=16, chunk_overlap=4, title_header=False)
    ingest(corpus, settings, extractor=gazetteer, embedder=embedder)
    return settings


def test_export_round_trips_into_eval(index, gazetteer, business_schema, tmp_path):
    out = tmp_path / "labels.jsonl"
    result = CliRunner().invoke(app, ["labels", "export", "--index", str(index.out_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 records from 2 documents" in result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    apple = next(r for r in records if r["id"] == "news/apple.txt")
    assert {"text": "Tim Cook", "start": 15, "end": 23} in apple["output"]["entities"]["PERSON"]
    assert {"CEO_OF": {"head": {"text": "Tim Cook", "start": 15, "end": 23},
                       "tail": {"text": "Apple Inc.", "start": 0, "end": 10}}} in apple["output"]["relations"]
    assert apple["output"]["classifications"][0]["task"] == "document_type"
    # what the index holds is exactly what the same extractor finds again
    report = evaluate(out, business_schema, extractor=gazetteer, chunk_size=16)
    assert report.scores.entities.micro.f1 == 1.0
    assert report.scores.relations.micro.f1 == 1.0 and report.scores.relations.micro.tp >= 3
    assert report.scores.classifications.micro.f1 == 1.0
    assert load_gold(out, business_schema)


def test_export_of_one_document_per_chunk(index, tmp_path):
    from kgbuild.train.export import export_labels

    out = tmp_path / "one.jsonl"
    report = export_labels(index, out, docs=["news/acme.txt"], per_chunk=True)
    assert report.documents == 1 and report.records > 1
    for line in out.read_text().splitlines():
        record = json.loads(line)
        assert record["id"].startswith("news/acme.txt@")
        for spans in record["output"]["entities"].values():
            for s in spans:
                assert record["input"][s["start"]:s["end"]] == s["text"]
    with pytest.raises(ConfigError, match="--doc news/nothing.txt"):
        export_labels(index, out, docs=["news/nothing.txt"])


def test_export_without_an_index_says_so(tmp_path):
    result = CliRunner().invoke(app, ["labels", "export", "--index", str(tmp_path / "none"), "--out", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 1 and "no kgbuild index" in result.output


def test_converted_records_that_do_not_fit_the_schema_are_all_named(tmp_path):
    path = tmp_path / "windows.jsonl"
    path.write_text(json.dumps({"text": TEXT, "entities": [[0, 8, "person", "Tim Cook"]], "clusters": {},
                                "relations": []}) + "\n", encoding="utf-8")
    from kgbuild.schema import load_schema
    from kgbuild.train.convert import convert_labels

    with pytest.raises(GoldDataError, match="record 1: output.entities.person"):
        convert_labels(path, "redocred", tmp_path / "out.jsonl", schema=load_schema("biomedical"))
