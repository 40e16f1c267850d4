"""Markdown (.md, .markdown), rendered to plain text before it is indexed.

The markup is not part of what a document says: ``**bold**`` is "bold", ``[the
report](https://...)`` is "the report", ``# Results`` is a heading on its own
paragraph. markdown-it-py (CommonMark, plus tables and strikethrough) renders the
source to HTML, and the HTML reader's layout turns that into text: paragraphs,
headings and code blocks separated by blank lines, list items on their own lines,
fenced code kept verbatim, raw HTML read as HTML. Offsets are into this rendered
text, which is the Document's text.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token
from selectolax.lexbor import LexborHTMLParser

from kgbuild.errors import DocumentError
from kgbuild.read.base import NO_TEXT, ReadOptions, clean_title, make_document, prepare_text
from kgbuild.read.html import html_text
from kgbuild.read.text import read_text_file
from kgbuild.types import Document, SkippedFile, SourceFile


@functools.cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def markdown_title(tokens: Sequence[Token]) -> str:
    """The text of the first level-1 heading (``# Title`` or a ``===`` underline), or ""."""
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h1" and i + 1 < len(tokens):
            parts = []
            for child in tokens[i + 1].children or []:
                if child.type in ("text", "code_inline"):
                    parts.append(child.content)
                elif child.type in ("softbreak", "hardbreak"):
                    parts.append(" ")
            title = clean_title("".join(parts))
            if title:
                return title
    return ""


def render_markdown(source: str) -> tuple[str, str]:
    """(plain text, title) of a Markdown source."""
    parser = _parser()
    tokens = parser.parse(source)
    html = parser.renderer.render(tokens, parser.options, {})
    tree = LexborHTMLParser(html)
    text = html_text(tree.body) if tree.body is not None else ""
    return text, markdown_title(tokens)


def read_markdown(file: SourceFile, options: ReadOptions) -> Iterator[Document | SkippedFile]:
    del options  # nothing to configure for Markdown
    text, title = render_markdown(read_text_file(file))
    rendered = prepare_text(text)
    if rendered is None:
        raise DocumentError(file.rel_path, NO_TEXT)
    yield make_document(file, text=rendered, title=title, fmt="markdown")
