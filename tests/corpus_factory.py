"""Builds a deterministic 50-file mixed corpus for read-stage and CLI tests.

``make_mixed_corpus(root)`` writes the files and returns a ``CorpusSpec`` that
says what an ingest of ``root`` must produce: which files are ingested, which
are skipped (with a substring of the skip reason), how many documents come out
(JSON/JSONL/CSV records counted one by one) and which records are skipped.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

TOTAL_FILES = 50


@dataclass
class CorpusSpec:
    good_files: list[str]  # rel paths that must be ingested
    bad_files: dict[str, str]  # rel path -> substring of the expected skip reason
    expected_documents: int  # documents expected, JSON/JSONL/CSV records counted individually
    bad_records: list[str]  # "rel_path#line N" / "rel_path#row N" of the records that are skipped
    root: Path = field(default_factory=Path)

    @property
    def all_files(self) -> list[str]:
        return sorted([*self.good_files, *self.bad_files])


# (company, person, role, city, product, rival): one line of each makes a short news item.
_FACTS: list[tuple[str, str, str, str, str, str]] = [
    ("Apple Inc.", "Tim Cook", "CEO", "Cupertino", "the Vision Pro", "Samsung Electronics"),
    ("Acme Corp", "Wile E. Coyote", "chief engineer", "Phoenix", "the Rocket Sled 3000", "Globex Ltd."),
    ("Globex Ltd.", "Hank Scorpio", "founder", "Cypress Creek", "a hammock district", "Acme Corp"),
    ("Microsoft", "Satya Nadella", "CEO", "Redmond", "Copilot", "Google"),
    ("Google", "Sundar Pichai", "CEO", "Mountain View", "Gemini", "OpenAI"),
    ("Tesla", "Elon Musk", "CEO", "Austin", "the Cybertruck", "Ford Motor Company"),
    ("Ford Motor Company", "Jim Farley", "CEO", "Dearborn", "the F-150 Lightning", "General Motors"),
    ("General Motors", "Mary Barra", "chair", "Detroit", "the Chevrolet Equinox EV", "Tesla"),
    ("Amazon", "Andy Jassy", "CEO", "Seattle", "Project Kuiper", "Microsoft"),
    ("Nvidia", "Jensen Huang", "CEO", "Santa Clara", "the H100 accelerator", "AMD"),
    ("AMD", "Lisa Su", "CEO", "Santa Clara", "the MI300X", "Intel"),
    ("Intel", "Pat Gelsinger", "CEO", "Santa Clara", "Gaudi 3", "Nvidia"),
    ("Siemens AG", "Roland Busch", "CEO", "Munich", "a digital twin platform", "ABB"),
    ("ABB", "Björn Rosengren", "CEO", "Zurich", "a robot arm", "Siemens AG"),
    ("Initech", "Bill Lumbergh", "vice president", "Austin", "TPS report software", "Initrode"),
    ("Umbrella Corporation", "Albert Wesker", "research director", "Raccoon City", "a vaccine", "Tricell"),
    ("Stark Industries", "Pepper Potts", "CEO", "New York", "an arc reactor", "Hammer Industries"),
    ("Wayne Enterprises", "Lucius Fox", "CEO", "Gotham", "an armored vehicle", "LexCorp"),
    ("LexCorp", "Lex Luthor", "founder", "Metropolis", "a fusion plant", "Wayne Enterprises"),
    ("Cyberdyne Systems", "Miles Dyson", "director of research", "Sunnyvale", "a neural processor",
     "Skynet Labs"),
    ("Oscorp", "Norman Osborn", "founder", "New York", "a performance serum", "Stark Industries"),
    ("Soylent Corp", "Richard Fleischer", "chairman", "New York", "a green nutrition bar", "Hooli"),
    ("Hooli", "Gavin Belson", "CEO", "Palo Alto", "the Box 3", "Pied Piper"),
    ("Pied Piper", "Richard Hendricks", "CEO", "Palo Alto", "a compression engine", "Hooli"),
    ("Vandelay Industries", "Art Vandelay", "owner", "New York", "latex imports", "Kramerica"),
    ("Dunder Mifflin", "Michael Scott", "regional manager", "Scranton", "recycled paper", "Staples"),
    ("Wonka Industries", "Willy Wonka", "owner", "London", "the Everlasting Gobstopper", "Slugworth"),
    ("Tyrell Corporation", "Eldon Tyrell", "founder", "Los Angeles", "the Nexus-6", "Wallace Corp"),
    ("Weyland-Yutani", "Peter Weyland", "chairman", "Tokyo", "a terraforming station", "Seegson"),
    ("Gringotts", "Griphook", "manager", "London", "a vault service", "Gladrags"),
    ("Monsters Inc.", "Henry J. Waternoose", "CEO", "Monstropolis", "a scream canister", "Fear Co"),
    ("Buy n Large", "Shelby Forthright", "CEO", "Houston", "the Axiom cruise ship", "Costco"),
    ("Massive Dynamic", "Nina Sharp", "chief operating officer", "New York", "a quantum sensor",
     "Kelvin Gen"),
    ("Blue Sun", "Malcolm Reynolds", "investor", "Shanghai", "a protein drink", "Weyland-Yutani"),
]


def _story(index: int) -> tuple[str, str]:
    """(title, body) of news item ``index``: a few short, entity-rich sentences."""
    company, person, role, city, product, rival = _FACTS[index % len(_FACTS)]
    title = f"{company} news: {product}"
    body = (
        f"{company} {role} {person} announced {product} in {city}.\n"
        f"{company} competes with {rival} in several markets.\n"
        f"Analysts said {person} expects revenue to grow in {2020 + index % 5}."
    )
    return title, body


def _write_pdf(path: Path, title: str, lines: list[str]) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    # invariant=1: no creation date or random document id, so the bytes never change.
    pdf = canvas.Canvas(str(path), pagesize=A4, invariant=1)
    pdf.setTitle(title)
    for page, text in enumerate(lines):
        if page:
            pdf.showPage()
        pdf.drawString(72, 770, text)
    pdf.save()


def _write_docx(path: Path, title: str, paragraphs: list[str], table: list[list[str]]) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    grid = document.add_table(rows=len(table), cols=len(table[0]))
    for r, row in enumerate(table):
        for c, value in enumerate(row):
            grid.cell(r, c).text = value
    document.save(str(path))


def make_mixed_corpus(root: Path) -> CorpusSpec:
    """Write the 50-file corpus under ``root`` (created if needed) and describe it."""
    root = Path(root)
    good: list[str] = []
    bad: dict[str, str] = {}
    documents = 0

    def write(rel: str, data: bytes | str) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            path.write_text(data, encoding="utf-8", newline="")
        else:
            path.write_bytes(data)

    # 34 news items as .txt / .md / .html, two and three directory levels deep.
    for i in range(len(_FACTS)):
        title, body = _story(i)
        folder = f"news/{2022 + i % 3}/q{1 + i % 4}"
        kind = i % 3
        if kind == 0:
            rel, content = f"{folder}/story{i:02d}.txt", body + "\n"
        elif kind == 1:
            rel, content = f"{folder}/story{i:02d}.md", f"# {title}\n\n{body}\n"
        else:
            paragraphs = "".join(f"<p>{line}</p>\n" for line in body.split("\n"))
            rel = f"{folder}/story{i:02d}.html"
            content = (
                f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>"
                f"<style>p {{ color: black; }}</style></head>\n<body>\n<h1>{title}</h1>\n{paragraphs}"
                f"<script>console.log('tracking');</script>\n</body></html>\n"
            )
        write(rel, content)
        good.append(rel)
        documents += 1

    # Non-UTF-8 text that must still be read.
    write(
        "encodings/utf16_bom.txt",
        "Siemens AG opened a factory in München.\nZürich-based UBS financed the deal.\n".encode("utf-16"),
    )
    write(
        "encodings/latin1.txt",
        (
            "Nestlé S.A. chairman Paul Bulcke visited the café in Genève.\n"
            "Société Générale and Crédit Agricole signed a légère entente à Paris.\n"
            "L'équipe de Danone a présenté les résultats de l'année.\n"
        ).encode("latin-1"),
    )
    good += ["encodings/utf16_bom.txt", "encodings/latin1.txt"]
    documents += 2

    # Real PDFs and DOCX files.
    (root / "docs/reports").mkdir(parents=True, exist_ok=True)
    (root / "docs/memos").mkdir(parents=True, exist_ok=True)
    _write_pdf(
        root / "docs/reports/q1_report.pdf",
        "Q1 Report",
        ["Acme Corp reported record sales in Phoenix.", "Globex Ltd. CEO Hank Scorpio resigned."],
    )
    _write_pdf(
        root / "docs/reports/q2_report.pdf",
        "Q2 Report",
        ["Nvidia CEO Jensen Huang presented the H100 accelerator in Santa Clara."],
    )
    _write_docx(
        root / "docs/memos/merger_memo.docx",
        "Merger Memo",
        ["Initech will acquire Initrode for 40 million dollars.", "Bill Lumbergh leads the integration."],
        [["Company", "City"], ["Initech", "Austin"], ["Initrode", "Dallas"]],
    )
    _write_docx(
        root / "docs/memos/board_minutes.docx",
        "Board Minutes",
        ["The board of Stark Industries met in New York.", "Pepper Potts approved the arc reactor budget."],
        [["Director", "Vote"], ["Pepper Potts", "yes"]],
    )
    good += [
        "docs/reports/q1_report.pdf",
        "docs/reports/q2_report.pdf",
        "docs/memos/merger_memo.docx",
        "docs/memos/board_minutes.docx",
    ]
    documents += 4

    # Record files: every good record is a document; one bad record in each of JSONL and CSV.
    jsonl_lines = [
        json.dumps({"id": "p1", "name": "Tim Cook", "text": "Tim Cook is the CEO of Apple Inc.", "age": 63}),
        json.dumps({"id": "p2", "name": "Lisa Su", "text": "Lisa Su leads AMD from Santa Clara."}),
        '{"id": "p3", "text": "this line is cut off',
        json.dumps({"id": "p4", "name": "Mary Barra", "text": "Mary Barra chairs General Motors in Detroit."}),
    ]
    write("data/records/people.jsonl", "\n".join(jsonl_lines) + "\n")
    write(
        "data/records/companies.csv",
        "id,title,text,sector\n"
        "c1,Acme,Acme Corp makes rocket sleds in Phoenix.,manufacturing\n"
        "c2,Broken row,only two fields\n"
        "c3,Globex,Globex Ltd. is run by Hank Scorpio.,conglomerate\n"
        'c4,Hooli,"Hooli, based in Palo Alto, competes with Pied Piper.",software\n',
    )
    write(
        "data/records/articles.json",
        json.dumps(
            [
                {"id": 101, "title": "Chip war", "text": "Intel and Nvidia compete for AI data centers."},
                {"id": 102, "title": "EV race", "text": "Tesla and Ford Motor Company cut EV prices."},
            ],
            indent=2,
        ),
    )
    good += ["data/records/people.jsonl", "data/records/companies.csv", "data/records/articles.json"]
    documents += 3 + 3 + 2
    bad_records = ["data/records/people.jsonl#line 3", "data/records/companies.csv#row 3"]

    # Files that must be skipped, with a substring of the reason.
    rng = random.Random(1234)
    write("bad/empty.txt", b"")
    write("bad/binary.txt", b"\x00\x01\x02" + rng.randbytes(4096) + b"\x00")
    write("bad/corrupt.pdf", b"%PDF-1.7\n" + rng.randbytes(2048))
    write("bad/corrupt.docx", b"This is not a ZIP archive, just text pretending to be a DOCX.\n")
    write("bad/notes.xyz", "Unsupported format: Apple Inc. is mentioned but never read.\n")
    write("bad/deep/blank.md", "   \n\t\n   \n")
    write("bad/deep/script_only.html", "<html><body><script>alert('hi');</script></body></html>\n")
    bad.update(
        {
            "bad/empty.txt": "empty file",
            "bad/binary.txt": "binary file",
            "bad/corrupt.pdf": "corrupt PDF",
            "bad/corrupt.docx": "corrupt DOCX",
            "bad/notes.xyz": "unsupported file type '.xyz'",
            "bad/deep/blank.md": "no text content",
            "bad/deep/script_only.html": "no text content",
        }
    )

    assert len(good) + len(bad) == TOTAL_FILES, (len(good), len(bad))
    return CorpusSpec(
        good_files=sorted(good),
        bad_files=dict(sorted(bad.items())),
        expected_documents=documents,
        bad_records=bad_records,
        root=root,
    )
