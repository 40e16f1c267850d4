"""A corpus of hostile files, generated on the spot, and what kgbuild must make of each one.

``build(root)`` writes every kind under ``root`` next to a few good files, and returns the
kinds: name -> Kind(paths, expect), where ``expect`` is "ingested" (its text ends up in the
index), "records" (some records in, the bad ones skipped by record), or "skipped: <reason>"
(reported with a reason containing that text). Kinds whose outcome depends on the machine
(an unreadable file where tests run as root) say "either".
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

GOOD = {
    "good/apple.txt": "Apple Inc. CEO Tim Cook will unveil the Vision Pro in Cupertino. The Vision Pro costs $2,499.",
    "good/acme.md": "# Acme\nAcme Corp, led by CEO Jane Park, will launch Rocket Skates. Acme Corp competes with Globex Ltd.",
    "good/feed.jsonl": json.dumps({"id": "g1", "text": "Globex Ltd. reported profit in Europe."}) + "\n",
}


@dataclass
class Kind:
    paths: list[str]
    expect: str


def _pdf(text: str, *, encrypt: str | None = None) -> bytes:
    from reportlab.lib.pdfencrypt import StandardEncryption
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, encrypt=StandardEncryption(encrypt, canPrint=0) if encrypt else None)
    pdf.drawString(72, 720, text)
    pdf.save()
    return buffer.getvalue()


def build(root: Path) -> dict[str, Kind]:
    root.mkdir(parents=True, exist_ok=True)
    kinds: dict[str, Kind] = {}

    def put(name: str, rel: str, data: bytes | str, expect: str) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        kinds[name] = Kind([rel], expect)

    for rel, text in GOOD.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    put("zero-byte file", "h/empty.txt", b"", "skipped: empty file")
    put("binary bytes named .txt", "h/binary.txt", bytes(range(256)) * 64, "skipped: binary")
    put("invalid UTF-8", "h/invalid-utf8.txt", b"Acme Corp \xff\xfe\xfa sells Rocket Skates.\n", "ingested")
    put("UTF-16 with BOM", "h/utf16.txt", "Globex Ltd. sued Acme Corp in Seoul.".encode("utf-16"), "ingested")
    put("Latin-1", "h/latin1.txt", "Café Müller: Acme Corp est présent à Genève, déjà.".encode("latin-1"), "ingested")
    put("UTF-8 BOM only", "h/bom-only.txt", b"\xef\xbb\xbf", "skipped: no text")
    put("HTML without a body", "h/nobody.html", "<html><head><title>t</title></head></html>", "skipped: no text")
    put("HTML of scripts only", "h/scripts.html", "<html><body><script>var a = 'Acme Corp';</script></body></html>",
        "skipped: no text")
    put("corrupt PDF", "h/corrupt.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage", "skipped: PDF")
    put("encrypted PDF", "h/encrypted.pdf", _pdf("Acme Corp secret plans", encrypt="s3cret"), "skipped: encrypted")
    put("truncated PDF", "h/truncated.pdf", _pdf("Acme Corp launches Rocket Skates.")[:300], "skipped: PDF")
    put("corrupt DOCX", "h/corrupt.docx", b"PK\x03\x04 this is not a zip archive at all", "skipped: DOCX")
    zip_buffer = io.BytesIO()
    with zipfile.ZipFile(zip_buffer, "w") as archive:
        archive.writestr("hello.txt", "a zip without word/document.xml")
    put("DOCX that is another zip", "h/other-zip.docx", zip_buffer.getvalue(), "skipped: DOCX")
    lines = [json.dumps({"id": "r1", "text": "Tim Cook leads Apple Inc."}), "{not json", json.dumps({"id": "r3", "text": "Meta unveils Quest 5."}),
             json.dumps(["a", "list"]), json.dumps({"id": "r5", "body": "no text field"})]
    put("JSONL with bad lines among good", "h/mixed.jsonl", "\n".join(lines) + "\n", "records")
    put("JSONL of bad lines only", "h/bad-only.jsonl", "{oops\n[1, 2]\n", "records")
    put("JSON lone surrogate escape", "h/surrogate.json", '{"id": "s", "title": "T \\udc00", "text": "Acme Corp \\ud800 sells Rocket Skates."}',
        "ingested")
    put("JSON of the wrong shape", "h/number.json", "42", "skipped: JSON")
    put("CSV with a ragged row", "h/ragged.csv", "id,text\n1,Acme Corp sells Rocket Skates.\n2,too,many,fields\n3\n",
        "records")
    put("CSV without the text column", "h/notext.csv", "id,body\n1,Acme Corp\n", "skipped: text")
    put("one 1 MB line without spaces", "h/long-line.txt", "x" * (1 << 20), "ingested")
    put("whitespace only", "h/blank.txt", " \n\t\n \r\n" * 100, "skipped: no text")
    put("control characters", "h/control.txt", "Acme\x01 Corp\x02 sells\x07 Rocket\x1b[31m Skates\x7f.\x0b\x0c\x1f", "ingested")
    put("NUL bytes in text", "h/nul.txt", "Acme Corp\x00 sells Rocket Skates.", "skipped: binary")
    put("right-to-left and zero-width", "h/bidi.txt",
        "\u202eAcme Corp\u202c \u200bsells\u200d Rocket\ufeff Skates; \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627.", "ingested")
    put("thousands of mentions in one chunk", "h/mentions.txt", "Acme Corp, Globex Ltd., " * 3000, "ingested")
    put("duplicate content", "h/copy-of-apple.txt", GOOD["good/apple.txt"], "ingested")
    deep = "/".join(f"d{i}" for i in range(60))
    put("very deep directories", f"h/{deep}/deep.txt", "Jane Park visited Seoul.", "ingested")
    put("newline in the file name", "h/new\nline.txt", "Oliver Blume leads Volkswagen AG.", "ingested")
    put("unsupported type", "h/image.png", b"\x89PNG\r\n\x1a\n", "skipped: unsupported")
    put("markdown with HTML and a huge heading", "h/heading.md", "#" * 6 + " " + "Acme Corp " * 200 + "\n<div>Globex</div>\n", "ingested")
    put("CR-only newlines", "h/old-mac.txt", "Acme Corp\rsells\rRocket Skates.\r", "ingested")
    put("gzip bytes named .txt", "h/gzipped.txt", b"\x1f\x8b\x08\x00" + bytes(range(200)) * 8, "skipped: binary")
    put("255-byte file name", "h/" + "n" * 251 + ".txt", "Tim Cook spoke.", "ingested")

    # not expressible with put()
    bad_name = os.fsdecode(b"h/latin1-\xe9t\xe9.txt")
    (root / bad_name).write_bytes(b"Meta opened an office in Europe.")
    kinds["file name that is not UTF-8"] = Kind(["h/latin1-\\xe9t\\xe9.txt"], "ingested")  # shown with escapes
    (root / "h/loop").mkdir(parents=True, exist_ok=True)
    os.symlink("..", root / "h/loop/parent")
    kinds["symlink loop"] = Kind(["h/loop/parent"], "skipped: symlink loop")
    os.symlink("missing-target.txt", root / "h/dangling.txt")
    kinds["dangling symlink"] = Kind(["h/dangling.txt"], "skipped: broken symlink")
    (root / "h/fifo.txt").parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(root / "h/fifo.txt")
    kinds["named pipe"] = Kind(["h/fifo.txt"], "skipped: not a regular file")
    locked = root / "h/unreadable.txt"
    locked.write_text("Acme Corp", encoding="utf-8")
    locked.chmod(0)
    kinds["unreadable file"] = Kind(["h/unreadable.txt"], "either: permission denied")
    (root / "h/vanishing.txt").write_text("This file is deleted while the run is under way.", encoding="utf-8")
    kinds["deleted during the run"] = Kind(["h/vanishing.txt"], "skipped: no such file")
    return kinds
