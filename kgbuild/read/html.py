"""HTML (.html, .htm): the page's main content, found by trafilatura, laid out by selectolax.

trafilatura decides what the article is, leaving out navigation, headers, footers,
cookie banners and link lists. Its result, and the whole page where it finds too
little, is laid out the way a browser would roughly show it: inline whitespace
collapsed, block elements on their own lines, paragraphs and headings separated by a
blank line, ``<pre>`` kept verbatim. Offsets are into this text, which is the
Document's text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from configparser import ConfigParser

from selectolax.lexbor import LexborHTMLParser, LexborNode

from kgbuild.errors import DocumentError
from kgbuild.read.base import NO_TEXT, ReadOptions, clean_title, make_document, prepare_text
from kgbuild.read.text import UNDECODABLE, decode_bytes, read_bytes_checked
from kgbuild.types import Document, SkippedFile, SourceFile

_DROP = frozenset({"script", "style", "noscript", "template", "iframe", "svg", "head"})
_PRE = frozenset({"pre", "textarea", "listing", "plaintext", "xmp"})
# Blocks that end a paragraph (a blank line after them) ...
_PARAGRAPH = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "table", "ul", "ol", "dl",
     "figure", "hr", "address", "listing", "xmp", "plaintext"}
)
# ... and blocks that only end a line.
_LINE = frozenset(
    {"article", "aside", "body", "caption", "center", "dd", "details", "dialog", "dir", "div",
     "dt", "fieldset", "figcaption", "footer", "form", "header", "hgroup", "legend", "li", "main",
     "menu", "nav", "option", "section", "summary", "tbody", "tfoot", "thead", "tr", "textarea"}
)
_CELL = frozenset({"td", "th"})

_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_MANY_NEWLINES = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)


class _TextBuilder:
    """Accumulates text, tracking line starts so blocks never produce stray spaces or blank lines."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.trailing_newlines = 0
        self.trailing_space = False

    def inline(self, text: str) -> None:
        text = _HTML_SPACE.sub(" ", text)
        if not self.parts or self.trailing_newlines or self.trailing_space:
            text = text.lstrip(" ")
        if text:
            self.parts.append(text)
            self.trailing_newlines = 0
            self.trailing_space = text.endswith(" ")

    def verbatim(self, text: str) -> None:
        if not text:
            return
        self.parts.append(text)
        stripped = text.rstrip("\n")
        newlines = len(text) - len(stripped)
        self.trailing_newlines = newlines if stripped else self.trailing_newlines + newlines
        self.trailing_space = text.endswith(" ")

    def cell(self) -> None:
        if self.parts and not self.trailing_newlines:
            self.parts.append("\t")
            self.trailing_space = True  # the tab separates: whitespace before the next cell's text goes

    def newline(self, count: int) -> None:
        if not self.parts or self.trailing_newlines >= count:
            return
        self.parts.append("\n" * (count - self.trailing_newlines))
        self.trailing_newlines = count
        self.trailing_space = False

    def text(self) -> str:
        text = "".join(self.parts)
        text = _TRAILING_SPACE.sub("", text)
        return _MANY_NEWLINES.sub("\n\n", text).strip("\n")


def html_text(root: LexborNode) -> str:
    """The visible text under ``root``, without script/style/noscript/template content."""
    out = _TextBuilder()
    pre_depth = 0
    # (node, True) visits a node; (node, False) closes an element. An explicit stack
    # because real-world HTML can nest deeper than Python's recursion limit.
    stack: list[tuple[LexborNode, bool]] = [(root, True)]
    while stack:
        node, entering = stack.pop()
        tag = node.tag or ""
        if not entering:
            if tag in _PRE:
                pre_depth -= 1
            if tag in _PARAGRAPH:
                out.newline(2)
            elif tag in _LINE:
                out.newline(1)
            elif tag in _CELL:
                out.cell()
            continue
        if node.is_text_node:
            content = node.text_content or ""
            if pre_depth:
                out.verbatim(content)
            else:
                out.inline(content)
            continue
        if not node.is_element_node and not node.is_document_node:
            continue  # comments, doctype
        if tag in _DROP:
            continue
        if tag == "br":
            out.newline(1)
            continue
        if tag in _PARAGRAPH:
            out.newline(2)
        elif tag in _LINE:
            out.newline(1)
        if tag in _PRE:
            pre_depth += 1
        stack.append((node, False))
        children = list(node.iter(include_text=True))
        stack.extend((child, True) for child in reversed(children))
    return out.text()


@functools.cache
def _trafilatura_config() -> tuple[ConfigParser, int]:
    """trafilatura's settings without its baseline rescue, and its own idea of too little text.

    When its main extractor finds less than MIN_EXTRACTED_SIZE characters, trafilatura
    falls back to a baseline that dumps the page as one paragraph of lines, which loses
    the headings and paragraphs a later stage relies on. That rescue is switched off here;
    such a page is read whole instead (``main_text``).
    """
    import trafilatura.settings  # imported when a page is read: 0.2 s that a query never needs

    config = trafilatura.settings.use_config()
    too_little = config.getint("DEFAULT", "MIN_EXTRACTED_SIZE")
    config.set("DEFAULT", "MIN_EXTRACTED_SIZE", "0")
    return config, too_little


def main_text(tree: LexborHTMLParser) -> str:
    """The article's text, or the whole page's when trafilatura finds less than an article's worth.

    Script, style, template and the like are removed from ``tree`` first: trafilatura
    would keep a ``<template>``'s text. Extraction is per document (no deduplication
    across documents), so a page reads the same whatever was read before it.
    """
    tree.strip_tags(sorted(_DROP - {"head"}))
    page = tree.body if tree.body is not None else tree.root
    if page is None:
        return ""
    import trafilatura

    config, too_little = _trafilatura_config()
    try:
        extracted = trafilatura.extract(
            tree.html or "",
            output_format="html",
            include_comments=False,
            include_tables=True,
            include_images=False,
            include_links=False,
            include_formatting=False,
            deduplicate=False,
            config=config,
        )
    except Exception:  # noqa: BLE001 - a heuristic that fails on odd markup must not lose the page
        extracted = None
    if extracted:
        main = LexborHTMLParser(extracted)
        article = html_text(main.body) if main.body is not None else ""
        if len(article) >= too_little:
            return article
    return html_text(page)


def html_title(tree: LexborHTMLParser) -> str:
    """The <title>, else the first <h1>, else ""."""
    for selector in ("title", "h1"):
        node = tree.css_first(selector)
        if node is not None:
            title = clean_title(node.text(deep=True))
            if title:
                return title
    return ""


def declared_charset(data: bytes) -> str | None:
    match = _META_CHARSET.search(data[:4096])
    return match.group(1).decode("ascii") if match else None


def read_html(file: SourceFile, options: ReadOptions) -> Iterator[Document | SkippedFile]:
    del options
    data = read_bytes_checked(file)
    markup = decode_bytes(data, declared=declared_charset(data))
    if markup is None:
        raise DocumentError(file.rel_path, UNDECODABLE)
    tree = LexborHTMLParser(markup)
    title = html_title(tree)
    text = prepare_text(main_text(tree))
    if text is None:
        raise DocumentError(file.rel_path, NO_TEXT)
    yield make_document(file, text=text, title=title, fmt="html")
