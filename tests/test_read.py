"""Unit tests of the read stage: the walker and every reader, on files made in tmp_path."""

from __future__ import annotations

import codecs
import inspect
import json
import os
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kgbuild import ids
from kgbuild.errors import DocumentError
from kgbuild.read import SUPPORTED_SUFFIXES, ReadOptions, normalize_text, read_file, walk_files
from kgbuild.types import Document, SkippedFile, SourceFile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus_factory import TOTAL_FILES, make_mixed_corpus  # noqa: E402

# --- helpers -----------------------------------------------------------------


def source(root: Path, rel: str) -> SourceFile:
    path = root / rel
    st_ = path.stat()
    return SourceFile(path=str(path), rel_path=rel, size=st_.st_size, mtime=st_.st_mtime)


def write(root: Path, rel: str, data: str | bytes) -> SourceFile:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8", newline="")
    else:
        path.write_bytes(data)
    return source(root, rel)


def read_all(file: SourceFile, options: ReadOptions | None = None) -> tuple[list[Document], list[SkippedFile]]:
    docs: list[Document] = []
    skipped: list[SkippedFile] = []
    for item in read_file(file, options or ReadOptions()):
        (docs if isinstance(item, Document) else skipped).append(item)
    return docs, skipped


def read_one(file: SourceFile, options: ReadOptions | None = None) -> Document:
    docs, skipped = read_all(file, options)
    assert not skipped
    assert len(docs) == 1
    return docs[0]


def read_error(file: SourceFile, options: ReadOptions | None = None) -> str:
    with pytest.raises(DocumentError) as info:
        read_all(file, options)
    assert info.value.path == file.rel_path
    return info.value.reason


def make_pdf(path: Path, pages: list[str], title: str | None = None) -> None:
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), invariant=1)
    if title is not None:
        pdf.setTitle(title)
    for i, text in enumerate(pages):
        if i:
            pdf.showPage()
        pdf.drawString(72, 700, text)
    pdf.save()


# --- plain text and Markdown -------------------------------------------------


def test_txt_document_fields(tmp_path: Path) -> None:
    file = write(tmp_path, "notes/acme.txt", "Acme Corp competes with Globex Ltd.\n")
    doc = read_one(file)
    assert doc.path == doc.source_path == "notes/acme.txt"
    assert doc.id == ids.document_id("notes/acme.txt")
    assert doc.title == "acme"
    assert doc.text == "Acme Corp competes with Globex Ltd.\n"
    assert doc.mtime == file.mtime
    assert doc.content_hash == ids.content_hash("acme", doc.text)
    assert doc.metadata == {"format": "txt"}
    assert read_one(file) == doc  # deterministic

    changed = read_one(write(tmp_path, "notes/acme.txt", "Acme Corp acquired Globex Ltd.\n"))
    assert changed.id == doc.id
    assert changed.content_hash != doc.content_hash


def test_txt_newlines_normalised(tmp_path: Path) -> None:
    doc = read_one(write(tmp_path, "a.txt", b"one\r\ntwo\rthree\n"))
    assert doc.text == "one\ntwo\nthree\n"


def test_normalize_text() -> None:
    assert normalize_text("a\r\nb\rc\x00d\n") == "a\nb\ncd\n"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("Zürich and München\n".encode("utf-16"), "utf-16"),
        ("Zürich and München\n".encode("utf-32"), "utf-32"),
        (codecs.BOM_UTF8 + "Zürich and München\n".encode(), "utf-8-sig"),
    ],
)
def test_txt_bom_encodings(tmp_path: Path, data: bytes, encoding: str) -> None:
    assert read_one(write(tmp_path, f"{encoding}.txt", data)).text == "Zürich and München\n"


def test_txt_latin1_detected(tmp_path: Path) -> None:
    text = (
        "Nestlé S.A. chairman Paul Bulcke visited the café in Genève.\n"
        "Société Générale and Crédit Agricole signed a légère entente à Paris.\n"
    )
    assert read_one(write(tmp_path, "latin.txt", text.encode("latin-1"))).text == text


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"abc\x00\x01\x02def", "binary file"),
        (b"  \n\t\r\n ", "no text content"),
    ],
)
def test_txt_bad(tmp_path: Path, data: bytes, reason: str) -> None:
    assert read_error(write(tmp_path, "bad.txt", data)) == reason


def test_markdown_title_and_text(tmp_path: Path) -> None:
    md = "Intro line\n\n```\n# not a title\n```\n\n# Apple Vision Pro #\n\nTim Cook **announced** it.\n"
    doc = read_one(write(tmp_path, "docs/launch.md", md))
    assert doc.title == "Apple Vision Pro"
    # rendered: markup gone, the heading a paragraph of its own, fenced code kept verbatim
    assert doc.text == "Intro line\n\n# not a title\n\nApple Vision Pro\n\nTim Cook announced it."
    assert doc.metadata == {"format": "markdown"}
    assert read_one(write(tmp_path, "docs/plain.markdown", "## Only a subtitle\ntext\n")).title == "plain"


# --- HTML --------------------------------------------------------------------

_HTML = """<!DOCTYPE html>
<html><head><title> Apple  launches Vision Pro </title>
<style>p { color: red; }</style><script>var tracking = 1;</script></head>
<body>
<h1>Launch day</h1>
<p>Apple Inc. CEO <b>Tim Cook</b> announced the Vision Pro in Cupertino &amp; beyond.</p>
<div>Line one<br>Line two</div>
<noscript>Enable JavaScript</noscript>
<template><p>hidden template</p></template>
<ul><li>Acme Corp</li><li>Globex Ltd.</li></ul>
<script>document.write("ads")</script>
</body></html>
"""


def test_html_text_and_title(tmp_path: Path) -> None:
    doc = read_one(write(tmp_path, "web/launch.html", _HTML))
    assert doc.title == "Apple launches Vision Pro"
    assert doc.metadata == {"format": "html"}
    assert doc.text == (
        "Launch day\n\n"
        "Apple Inc. CEO Tim Cook announced the Vision Pro in Cupertino & beyond.\n\n"
        "Line one\nLine two\n\n"
        "Acme Corp\nGlobex Ltd."
    )
    for hidden in ("tracking", "color", "Enable JavaScript", "hidden template", "ads"):
        assert hidden not in doc.text


def test_html_title_fallbacks(tmp_path: Path) -> None:
    h1 = read_one(write(tmp_path, "h1.htm", "<html><body><h1>Globex news</h1><p>Text.</p></body></html>"))
    assert h1.title == "Globex news"
    bare = read_one(write(tmp_path, "bare.html", "<p>Just a paragraph.</p>"))
    assert (bare.title, bare.text) == ("bare", "Just a paragraph.")


def test_html_declared_charset(tmp_path: Path) -> None:
    markup = '<html><head><meta charset="iso-8859-1"></head><body><p>Café Genève</p></body></html>'
    assert read_one(write(tmp_path, "latin.html", markup.encode("latin-1"))).text == "Café Genève"


def test_html_pre_kept(tmp_path: Path) -> None:
    doc = read_one(write(tmp_path, "pre.html", "<p>Code:</p><pre>  a = 1\n    b = 2</pre>"))
    assert doc.text == "Code:\n\n  a = 1\n    b = 2"


@pytest.mark.parametrize(
    "markup", ["<html><body><script>alert(1)</script></body></html>", "<html><head><title>T</title></head></html>"]
)
def test_html_without_text(tmp_path: Path, markup: str) -> None:
    assert read_error(write(tmp_path, "empty.html", markup)) == "no text content"


# --- PDF ---------------------------------------------------------------------


def test_pdf_pages_and_title(tmp_path: Path) -> None:
    make_pdf(tmp_path / "report.pdf", ["Acme Corp reported record sales.", "Globex Ltd. lost money."], "Q1 Report")
    doc = read_one(source(tmp_path, "report.pdf"))
    assert doc.title == "Q1 Report"
    assert doc.metadata == {"format": "pdf"}
    first = doc.text.index("Acme Corp reported record sales.")
    second = doc.text.index("Globex Ltd. lost money.")
    assert "\n\n" in doc.text[first:second]


def test_pdf_title_falls_back_to_stem(tmp_path: Path) -> None:
    make_pdf(tmp_path / "annual.pdf", ["Some text."])  # ReportLab writes the title "untitled"
    assert read_one(source(tmp_path, "annual.pdf")).title == "annual"


def test_pdf_encrypted(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    make_pdf(tmp_path / "plain.pdf", ["Secret merger plans."])
    locked = PdfWriter(clone_from=str(tmp_path / "plain.pdf"))
    locked.encrypt("secret", algorithm="RC4-128")
    locked.write(str(tmp_path / "locked.pdf"))
    assert read_error(source(tmp_path, "locked.pdf")) == "encrypted PDF"

    # Encrypted with an empty user password (permissions only): readable.
    open_pdf = PdfWriter(clone_from=str(tmp_path / "plain.pdf"))
    open_pdf.encrypt("", owner_password="owner", algorithm="RC4-128")
    open_pdf.write(str(tmp_path / "open.pdf"))
    assert "Secret merger plans." in read_one(source(tmp_path, "open.pdf")).text


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"%PDF-1.4\n" + bytes(range(256)) * 4, "corrupt PDF"),
        (b"not a pdf at all", "corrupt PDF"),
        (b"", "empty file"),
    ],
)
def test_pdf_bad(tmp_path: Path, data: bytes, reason: str) -> None:
    assert read_error(write(tmp_path, "bad.pdf", data)).startswith(reason)


# --- DOCX --------------------------------------------------------------------


def test_docx_paragraphs_tables_title(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = "Merger Memo"
    document.add_paragraph("Initech will acquire Initrode.")
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([["Company", "City"], ["Initech", "Austin"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("Bill Lumbergh leads the integration.")
    document.save(str(tmp_path / "memo.docx"))

    doc = read_one(source(tmp_path, "memo.docx"))
    assert doc.title == "Merger Memo"
    assert doc.metadata == {"format": "docx"}
    assert doc.text == (
        "Initech will acquire Initrode.\nCompany\tCity\nInitech\tAustin\nBill Lumbergh leads the integration."
    )

    untitled = docx.Document()
    untitled.add_paragraph("Text.")
    untitled.save(str(tmp_path / "minutes.docx"))
    assert read_one(source(tmp_path, "minutes.docx")).title == "minutes"


def test_docx_bad(tmp_path: Path) -> None:
    assert read_error(write(tmp_path, "a.docx", b"not a zip")).startswith("corrupt DOCX")
    with zipfile.ZipFile(tmp_path / "b.docx", "w") as zf:
        zf.writestr("hello.txt", "a zip, but not a Word document")
    assert read_error(source(tmp_path, "b.docx")).startswith("corrupt DOCX")
    assert read_error(write(tmp_path, "c.docx", b"")) == "empty file"


# --- JSONL -------------------------------------------------------------------


def test_jsonl_records(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "p1", "title": "Cook", "text": "Tim Cook runs Apple Inc.", "age": 63, "tags": ["x"]}),
        "",
        json.dumps({"text": "Lisa Su leads AMD.", "active": True, "score": 0.5, "none": None}),
        "{broken json",
        json.dumps({"id": "p4", "text": "Mary Barra chairs General Motors."}),
    ]
    file = write(tmp_path, "data/people.jsonl", "\n".join(lines) + "\n")
    docs, skipped = read_all(file)

    assert [d.path for d in docs] == ["data/people.jsonl#p1", "data/people.jsonl#3", "data/people.jsonl#p4"]
    assert [d.id for d in docs] == [ids.document_id(d.path) for d in docs]
    assert all(d.source_path == "data/people.jsonl" for d in docs)
    assert [d.title for d in docs] == ["Cook", "people #3", "people #p4"]
    assert docs[0].metadata == {"age": 63, "format": "jsonl"}
    assert docs[1].metadata == {"active": True, "score": 0.5, "format": "jsonl"}
    assert docs[0].content_hash == ids.content_hash("Cook", "Tim Cook runs Apple Inc.")

    assert len(skipped) == 1
    assert skipped[0].path == "data/people.jsonl#line 4"
    assert skipped[0].reason.startswith("invalid JSON")


def test_jsonl_record_problems(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a", "text": "First."}),
        json.dumps({"id": "a", "text": "Duplicate id."}),
        json.dumps({"id": "b", "body": "No text field."}),
        json.dumps({"id": "c", "text": "   "}),
        json.dumps({"id": "d", "text": 42}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"id": "e", "text": "Last.\r\nLine."}),
    ]
    docs, skipped = read_all(write(tmp_path, "r.ndjson", "\r\n".join(lines)))
    assert [(d.path, d.text) for d in docs] == [("r.ndjson#a", "First."), ("r.ndjson#e", "Last.\nLine.")]
    assert {s.path: s.reason for s in skipped} == {
        "r.ndjson#line 2": "duplicate record id 'a'",
        "r.ndjson#line 3": "missing text field 'text'",
        "r.ndjson#line 4": "no text content",
        "r.ndjson#line 5": "text field 'text' is not a string (got number)",
        "r.ndjson#line 6": "not a JSON object (got array)",
    }


def test_jsonl_custom_fields(tmp_path: Path) -> None:
    record = {"uid": 7, "headline": "Chips", "body": {"content": "Intel and Nvidia compete."}, "id": "x"}
    options = ReadOptions(text_field="body.content", id_field="uid", title_field="headline")
    doc = read_one(write(tmp_path, "n.jsonl", json.dumps(record) + "\n"), options)
    assert (doc.path, doc.title, doc.text) == ("n.jsonl#7", "Chips", "Intel and Nvidia compete.")
    assert doc.metadata == {"id": "x", "format": "jsonl"}


@pytest.mark.parametrize(("data", "reason"), [(b"", "empty file"), (b"\n\n  \n", "no text content"),
                                              (b"\x00\x01binary\x00", "binary file")])
def test_jsonl_bad_file(tmp_path: Path, data: bytes, reason: str) -> None:
    assert read_error(write(tmp_path, "x.jsonl", data)) == reason


def test_jsonl_invalid_utf8_line(tmp_path: Path) -> None:
    data = b'{"text": "ok"}\n{"text": "caf\xe9"}\n'
    docs, skipped = read_all(write(tmp_path, "x.jsonl", data))
    assert len(docs) == 1
    assert skipped == [SkippedFile("x.jsonl#line 2", "not valid UTF-8")]


# --- JSON --------------------------------------------------------------------


def test_json_list_and_object(tmp_path: Path) -> None:
    items = [{"id": 101, "title": "Chip war", "text": "Intel and Nvidia compete."},
             {"text": "Tesla cuts prices."}, "not an object"]
    docs, skipped = read_all(write(tmp_path, "a.json", json.dumps(items)))
    assert [(d.path, d.title) for d in docs] == [("a.json#101", "Chip war"), ("a.json#1", "a #1")]
    assert skipped == [SkippedFile("a.json#item 2", "not a JSON object (got string)")]

    single = read_one(write(tmp_path, "b.json", json.dumps({"text": "One record.", "lang": "en"})))
    assert (single.path, single.metadata) == ("b.json#0", {"lang": "en", "format": "json"})


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('[\n  {"text": "a"},\n  {"text": \n]', "invalid JSON: line 4 column 1"),
        ("42", "JSON top level must be an object or an array of objects (got number)"),
        ("[]", "no records"),
        ('{"title": "no text"}', "missing text field 'text'"),
    ],
)
def test_json_bad_file(tmp_path: Path, content: str, reason: str) -> None:
    assert read_error(write(tmp_path, "bad.json", content)).startswith(reason)


# --- CSV ---------------------------------------------------------------------


def test_csv_rows(tmp_path: Path) -> None:
    content = (
        "id,title,text,sector\r\n"
        "c1,Acme,Acme Corp makes sleds.,manufacturing\r\n"
        "c2,Ragged,too few\r\n"
        ",,\"Globex Ltd.\nis run by Hank Scorpio.\",conglomerate\r\n"
        "c3,Hooli,Hooli competes with Pied Piper.,software,extra\r\n"
        "\r\n"
        "c1,Again,Duplicate id.,x\r\n"
        "c5,Empty,,x\r\n"
    )
    docs, skipped = read_all(write(tmp_path, "d/companies.csv", content))
    assert [(d.path, d.title, d.text) for d in docs] == [
        ("d/companies.csv#c1", "Acme", "Acme Corp makes sleds."),
        ("d/companies.csv#4", "companies #4", "Globex Ltd.\nis run by Hank Scorpio."),
    ]
    assert docs[0].metadata == {"sector": "manufacturing", "format": "csv"}
    assert {s.path: s.reason for s in skipped} == {
        "d/companies.csv#row 3": "row 3 has 3 fields, expected 4",
        "d/companies.csv#row 6": "row 6 has 5 fields, expected 4",
        "d/companies.csv#row 8": "duplicate record id 'c1'",
        "d/companies.csv#row 9": "no text content",
    }


def test_csv_custom_columns_and_encodings(tmp_path: Path) -> None:
    options = ReadOptions(csv_text_column="body", csv_id_column="key", csv_title_column="name")
    bom = codecs.BOM_UTF8 + "key,name,body\nk1,Zürich,UBS is based in Zürich.\n".encode()
    doc = read_one(write(tmp_path, "bom.csv", bom), options)
    assert (doc.path, doc.title, doc.text) == ("bom.csv#k1", "Zürich", "UBS is based in Zürich.")

    latin = "text\nNestlé S.A. chairman Paul Bulcke visited the café in Genève and Besançon.\n"
    assert read_one(write(tmp_path, "latin.csv", latin.encode("latin-1"))).text.startswith("Nestlé")


def test_csv_bad_file(tmp_path: Path) -> None:
    reason = read_error(write(tmp_path, "a.csv", "id,body\n1,hello\n"))
    assert reason == "no 'text' column (columns: id, body)"
    assert read_error(write(tmp_path, "b.csv", "id,text\n")).startswith("no records")
    assert read_error(write(tmp_path, "c.csv", "")) == "empty file"


# --- dispatch ----------------------------------------------------------------


def test_read_file_dispatch_and_limits(tmp_path: Path) -> None:
    assert SUPPORTED_SUFFIXES == {
        ".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".json", ".jsonl", ".ndjson", ".csv"
    }
    assert read_error(write(tmp_path, "x.xyz", "text")) == "unsupported file type '.xyz'"
    assert read_one(write(tmp_path, "UPPER.TXT", "Suffixes are case-insensitive.")).title == "UPPER"

    big = write(tmp_path, "big.txt", "x" * 3 * 1024 * 1024)
    reason = read_error(big, ReadOptions(max_file_bytes=1024 * 1024))
    assert reason == "file too large (3.0 MB > 1.0 MB)"

    missing = SourceFile(str(tmp_path / "gone.txt"), "gone.txt", 1, 0.0)
    assert read_error(missing).startswith("cannot read file")


# --- walker ------------------------------------------------------------------


def walk(root: Path, **kwargs: object) -> list[SourceFile | SkippedFile]:
    return list(walk_files(root, **kwargs))  # type: ignore[arg-type]


def test_walk_order_hidden_and_unsupported(tmp_path: Path) -> None:
    for rel in ["b.txt", "a/z.md", "a.txt", "a0.txt", "a/b/c.html", "A.TXT", "data.xyz", "README",
                ".hidden.txt", ".git/config.txt", "a/.cache/x.txt"]:
        write(tmp_path, rel, "text")
    items = walk(tmp_path)
    rels = [item.rel_path if isinstance(item, SourceFile) else item.path for item in items]
    assert rels == sorted(rels)
    assert rels == ["A.TXT", "README", "a.txt", "a/b/c.html", "a/z.md", "a0.txt", "b.txt", "data.xyz"]
    skipped = {item.path: item.reason for item in items if isinstance(item, SkippedFile)}
    assert skipped == {"data.xyz": "unsupported file type '.xyz'", "README": "unsupported file type (no suffix)"}
    sample = next(item for item in items if isinstance(item, SourceFile) and item.rel_path == "a/b/c.html")
    assert sample.path == str(tmp_path / "a" / "b" / "c.html")
    assert sample.size == 4


def test_walk_is_lazy(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "x")
    assert inspect.isgenerator(walk_files(tmp_path))


def test_walk_single_file_root(tmp_path: Path) -> None:
    file = write(tmp_path, "sub/report.md", "# T\n")
    (item,) = walk(tmp_path / "sub" / "report.md")
    assert isinstance(item, SourceFile)
    assert (item.rel_path, item.path, item.size) == ("report.md", file.path, file.size)
    with pytest.raises(FileNotFoundError):
        walk(tmp_path / "nope")


def test_walk_exclude(tmp_path: Path) -> None:
    write(tmp_path, "docs/a.txt", "x")
    write(tmp_path, "out/index.json", "{}")
    write(tmp_path, "out/nested/b.txt", "x")
    rels = [i.rel_path for i in walk(tmp_path, exclude=[tmp_path / "out", tmp_path / "missing"])]
    assert rels == ["docs/a.txt"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_walk_symlinks(tmp_path: Path) -> None:
    write(tmp_path, "corpus/sub/a.txt", "x")
    write(tmp_path, "outside/b.txt", "x")
    os.symlink(tmp_path / "corpus", tmp_path / "corpus" / "sub" / "loop")  # a directory loop
    os.symlink(tmp_path / "outside", tmp_path / "corpus" / "linked")
    os.symlink(tmp_path / "outside" / "b.txt", tmp_path / "corpus" / "file_link.txt")
    os.symlink(tmp_path / "nowhere.txt", tmp_path / "corpus" / "dangling.txt")

    items = walk(tmp_path / "corpus")
    found = {i.rel_path for i in items if isinstance(i, SourceFile)}
    skipped = {i.path: i.reason for i in items if isinstance(i, SkippedFile)}
    assert found == {"file_link.txt", "linked/b.txt", "sub/a.txt"}
    assert skipped["dangling.txt"] == "broken symlink"
    assert "already visited" in skipped["sub/loop"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read anything")
def test_walk_unreadable_dir(tmp_path: Path) -> None:
    write(tmp_path, "locked/a.txt", "x")
    write(tmp_path, "open/b.txt", "x")
    (tmp_path / "locked").chmod(0)
    try:
        items = walk(tmp_path)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert SkippedFile("locked", "cannot read directory: Permission denied") in items
    assert any(isinstance(i, SourceFile) and i.rel_path == "open/b.txt" for i in items)


# --- the mixed corpus --------------------------------------------------------


def test_mixed_corpus(tmp_path: Path) -> None:
    spec = make_mixed_corpus(tmp_path)
    on_disk = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert len(on_disk) == TOTAL_FILES == 50
    assert on_disk == spec.all_files
    assert max(rel.count("/") for rel in on_disk) >= 2

    documents: list[Document] = []
    skipped: dict[str, str] = {}
    ingested: set[str] = set()
    for item in walk_files(tmp_path):
        if isinstance(item, SkippedFile):
            skipped[item.path] = item.reason
            continue
        try:
            for result in read_file(item, ReadOptions()):
                if isinstance(result, Document):
                    documents.append(result)
                    ingested.add(result.source_path)
                else:
                    skipped[result.path] = result.reason
        except DocumentError as exc:
            skipped[exc.path] = exc.reason

    assert len(documents) == spec.expected_documents
    assert len({d.id for d in documents}) == len(documents)
    assert ingested == set(spec.good_files)
    for rel, expected in spec.bad_files.items():
        assert expected in skipped[rel], (rel, skipped.get(rel))
    assert set(skipped) == set(spec.bad_files) | set(spec.bad_records)
    by_path = {d.path: d for d in documents}
    assert "München" in by_path["encodings/utf16_bom.txt"].text
    assert "Genève" in by_path["encodings/latin1.txt"].text


# --- property ----------------------------------------------------------------

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=300
).filter(lambda s: bool(s.strip()) and not s.startswith("\ufeff"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_text)
def test_txt_roundtrip(tmp_path: Path, text: str) -> None:
    file = write(tmp_path, "prop.txt", text.encode("utf-8"))
    doc = read_one(file)
    assert doc.text == text.replace("\r\n", "\n").replace("\r", "\n")
