"""What the readers make of real-looking pages: main content only, rendered Markdown, titles from the text."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgbuild.errors import DocumentError
from kgbuild.read import ReadOptions, read_file
from kgbuild.read.base import looks_like_title
from kgbuild.types import Document, SourceFile


def read_one(root: Path, rel: str, data: str | bytes | None = None) -> Document:
    path = root / rel
    if data is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    stat = path.stat()
    (doc,) = read_file(SourceFile(str(path), rel, stat.st_size, stat.st_mtime), ReadOptions())
    assert isinstance(doc, Document)
    return doc


# --- HTML: the article, not the page around it ----------------------------------

NEWS_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Conductor Marcello Viotti dies | BBC News</title>
<script>window.analytics = {track: function () {}};</script><style>.nav { display: flex }</style></head>
<body>
<div id="cookie-banner" class="cookie-consent"><p>We use cookies on this site to improve your experience.
By continuing you agree to our cookie policy.</p><button>Accept cookies</button></div>
<header class="site-header"><div class="logo">BBC</div>
<nav class="main-nav"><ul><li><a href="/">Home</a></li><li><a href="/news">News</a></li>
<li><a href="/sport">Sport</a></li></ul></nav>
<p class="nav-text">Home | News | Sport</p></header>
<main><article>
<h1>Conductor Marcello Viotti dies</h1>
<p>Conductor Marcello Viotti has died in Munich at the age of 50, his agent said on Friday.
He had been in a coma since suffering a stroke.</p>
<p>The Swiss-born musician was principal conductor of the Munich Radio Orchestra and had worked
with <b>La Fenice</b> opera house in Venice since 2002.</p>
<template><p>Template text that no reader ever sees.</p></template>
<h2>A career in opera</h2>
<p>Viotti made his debut at the Vienna State Opera and later conducted at the Metropolitan Opera
in New York, where critics praised his Verdi.</p>
<ul><li>Munich Radio Orchestra, 1998-2005</li><li>La Fenice, Venice, 2002-2005</li></ul>
</article></main>
<aside class="related"><h3>Related stories</h3><ul><li><a href="/a">Opera star retires</a></li>
<li><a href="/b">Munich orchestra tours Asia</a></li></ul></aside>
<footer class="site-footer"><p>Copyright BBC 2005. The BBC is not responsible for the content of external
internet sites.</p><ul><li><a href="/about">About the BBC</a></li><li><a href="/privacy">Privacy</a></li></ul></footer>
</body></html>
"""


def test_html_keeps_the_article_and_drops_navigation_banners_and_footer(tmp_path: Path) -> None:
    doc = read_one(tmp_path, "web/viotti.html", NEWS_PAGE)
    assert doc.title == "Conductor Marcello Viotti dies | BBC News"  # the <title>
    assert doc.text == (
        "Conductor Marcello Viotti dies\n\n"
        "Conductor Marcello Viotti has died in Munich at the age of 50, his agent said on Friday. "
        "He had been in a coma since suffering a stroke.\n\n"
        "The Swiss-born musician was principal conductor of the Munich Radio Orchestra and had worked "
        "with La Fenice opera house in Venice since 2002.\n\n"
        "A career in opera\n\n"
        "Viotti made his debut at the Vienna State Opera and later conducted at the Metropolitan Opera "
        "in New York, where critics praised his Verdi.\n\n"
        "Munich Radio Orchestra, 1998-2005\nLa Fenice, Venice, 2002-2005"
    )
    for boilerplate in ("Home", "Sport", "cookie", "Copyright BBC", "Privacy", "Related stories", "Template text",
                        "analytics"):
        assert boilerplate not in doc.text


def test_html_with_too_little_for_an_article_is_read_whole(tmp_path: Path) -> None:
    page = "<html><body><nav>Home | News</nav><h1>Globex</h1><p>Globex opens an office in Seoul.</p></body></html>"
    assert read_one(tmp_path, "short.html", page).text == "Home | News\n\nGlobex\n\nGlobex opens an office in Seoul."


def test_html_reading_does_not_depend_on_what_was_read_before(tmp_path: Path) -> None:
    first = read_one(tmp_path, "a.html", NEWS_PAGE)
    assert read_one(tmp_path, "b.html", NEWS_PAGE).text == first.text  # no deduplication across documents


# --- Markdown: rendered, not raw ------------------------------------------------

MARKDOWN = """Launch notes
============

**Apple Inc.** CEO *Tim Cook* unveiled the [Vision Pro](https://apple.com/vision-pro) in Cupertino.

## Prices
- Vision Pro: `$3,499`
- Vision Pro 2: $2,499

```python
price = 3499  # **not** rendered
```

> Quoted: Acme Corp competes
> with Globex Ltd.

| Company | City |
|---------|------|
| Acme    | Seoul |
"""


def test_markdown_is_rendered_to_plain_text(tmp_path: Path) -> None:
    """Headings become paragraphs, links keep their text, emphasis, bullets and fences go; code stays verbatim."""
    doc = read_one(tmp_path, "notes.md", MARKDOWN)
    assert doc.title == "Launch notes"  # a setext level-1 heading is a first heading too
    assert doc.text == (
        "Launch notes\n\n"
        "Apple Inc. CEO Tim Cook unveiled the Vision Pro in Cupertino.\n\n"
        "Prices\n\n"
        "Vision Pro: $3,499\nVision Pro 2: $2,499\n\n"
        "price = 3499  # **not** rendered\n\n"
        "Quoted: Acme Corp competes with Globex Ltd.\n\n"
        "Company\tCity\nAcme\tSeoul"
    )
    for markup in ("**", "](", "https://", "## ", "- Vision", "`", "> ", "|"):
        assert markup not in doc.text.replace("# **not** rendered", "")


def test_markdown_html_and_nothing_but_markup(tmp_path: Path) -> None:
    doc = read_one(tmp_path, "mixed.md", "# Acme\n\n<div>Globex <script>var x = 1;</script>Ltd.</div>\n")
    assert (doc.title, doc.text) == ("Acme", "Acme\n\nGlobex Ltd.")
    path = tmp_path / "rule.md"
    path.write_text("---\n\n***\n", encoding="utf-8")
    stat = path.stat()
    with pytest.raises(DocumentError, match="no text content"):
        list(read_file(SourceFile(str(path), "rule.md", stat.st_size, stat.st_mtime)))


# --- titles of plain text and Word documents --------------------------------------


def test_txt_headline_is_the_title(tmp_path: Path) -> None:
    text = "Viotti dies\n\nConductor Marcello Viotti has died in Munich at the age of 50.\n"
    doc = read_one(tmp_path, "news/viotti.txt", text)
    assert doc.title == "Viotti dies"
    assert doc.text == text  # the headline stays in the text
    assert read_one(tmp_path, "news/md-style.txt", "# Acme results #\nAcme Corp made a profit.\n").title == "Acme results"


@pytest.mark.parametrize(
    "text",
    [
        # a long first sentence is not a headline
        "Conductor Marcello Viotti has died in Munich at the age of 50, his agent said on Friday, after a stroke\n\n"
        "He was principal conductor of the Munich Radio Orchestra.\n",
        "Viotti died on Friday.\n\nHe was 50.\n",  # a sentence, not a headline
        "Conductor Marcello Viotti\nhas died in Munich.\n",  # the first line of a wrapped paragraph
        "Viotti dies\n",  # a headline with nothing under it
    ],
)
def test_txt_without_a_headline_keeps_the_file_name(tmp_path: Path, text: str) -> None:
    assert read_one(tmp_path, "news/viotti.txt", text).title == "viotti"


def test_looks_like_title() -> None:
    assert looks_like_title("Is this the end of the CD?")
    assert not looks_like_title("Dear shareholders,")
    assert not looks_like_title(" ".join(["word"] * 16))
    assert not looks_like_title("2005 - 2006")


def test_docx_heading_style_is_the_title_and_stands_apart(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("Draft, not for circulation")
    document.add_heading("Viotti dies", level=1)
    document.add_paragraph("Conductor Marcello Viotti has died.")
    document.add_heading("Career", level=2)
    document.add_paragraph("He led the Munich Radio Orchestra.")
    document.save(str(tmp_path / "viotti.docx"))
    doc = read_one(tmp_path, "viotti.docx")
    assert doc.title == "Viotti dies"
    assert doc.text == (
        "Draft, not for circulation\n\nViotti dies\n\nConductor Marcello Viotti has died.\n\n"
        "Career\n\nHe led the Munich Radio Orchestra."
    )


def test_docx_headline_paragraph_is_the_title(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("Viotti dies")
    document.add_paragraph("Conductor Marcello Viotti has died.")
    document.save(str(tmp_path / "plain.docx"))
    doc = read_one(tmp_path, "plain.docx")
    assert (doc.title, doc.text) == ("Viotti dies", "Viotti dies\n\nConductor Marcello Viotti has died.")

    table_first = docx.Document()
    table = table_first.add_table(rows=1, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Company", "City"
    table_first.add_paragraph("Acme Corp is based in Seoul.")
    table_first.save(str(tmp_path / "table.docx"))
    assert read_one(tmp_path, "table.docx").title == "table"  # a table row is never a headline
