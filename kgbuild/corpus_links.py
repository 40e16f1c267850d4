"""Links across documents at ingest: the third layer of resolution over a whole index, kept exact under updates.

``reconcile_mentions`` (the library) joins "Blair" alone in one article to the "Tony Blair" of another by
reading the whole input at once (``kgbuild.resolution.cross_document_links``). Ingest resolves a write batch
at a time, and what a batch would find depends on which documents share it; so the per-batch ``reconcile``
resolves each document on its own, and ingest finds the links across documents after the batches, over the
whole index:

1. each written document leaves its own resolution's summary (``DocumentResolution.summary``, a few fields
   per name) in the extraction cache (``kgbuild.extract.cache``), with the model's output for it;
2. after the batches and the pruning of a run, ``index_links`` runs the library's own code over the summaries
   of every document the state holds; the result depends on the documents alone, not on their order, their
   batches, or the runs that brought them;
3. a document whose links differ from those it was written with (``DocumentState.cross_links``) is resolved
   again with the links imposed (``reconcile(external_links=...)``) from its cached extraction, embedded and
   written through the journaled write path; its state then records the links. Only those documents are
   rewritten: the others' mentions keep their entities, and entity names and counts are the stores' own
   (recomputed from the mentions they hold).

Crash safety comes from the write path: a document rewritten and not yet checkpointed is in the journal, so
the next run removes it, reads it again, writes it without links, and its own pass links it again.
``IngestState.cross_document`` (the digest of the documents when links were last brought up to date, cleared
by any write) makes a run that changed nothing still finish a pass an earlier run did not.

Cost: a run that wrote or removed anything reads every summary (about 2.7 kB per document of 50 mentions)
and runs the third layer over them, linear in the index: 4,000 documents with 200,000 mentions take 4.7 s
here (0.2 s of it reading JSON), where resolving those documents one by one takes about 9 s; most of it is
the per-name facts (``NameBook.static``) worked out again. A run that changed nothing skips it. Only the
documents whose links changed are written again, and none of them goes through the model.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Mapping

from kgbuild.resolution import CrossLink, DocumentResolution, NameBook, ResolutionRules, cross_document_links

Links = dict[tuple[str, str], CrossLink]


def index_links(summaries: Mapping[str, list | None] | Iterable[tuple[str, list | None]],
                rules: ResolutionRules | None = None) -> dict[str, Links]:
    """Doc id -> the links across documents of its names, from every document's summary (None: a document
    without mentions, which does not count, as in ``reconcile_mentions``); a mapping, or (doc id, summary) pairs
    read one at a time (``ExtractionCache.iter_summaries``)."""
    rules = rules or ResolutionRules()
    if not rules.cross_document:
        return {}
    book = NameBook(rules)
    pairs = summaries.items() if isinstance(summaries, Mapping) else summaries
    docs = {doc_id: DocumentResolution.from_summary(summary, book) for doc_id, summary in pairs if summary is not None}
    return cross_document_links(docs, rules, book) if len(docs) > 1 else {}


def links_record(links: Mapping[tuple[str, str], CrossLink] | None) -> list[list[str]]:
    """Links as the state keeps them: ``[[type, short key, full key, full name], ...]``, sorted."""
    return sorted([ident[0], ident[1], link.root_key, link.name] for ident, link in (links or {}).items())


def links_from_record(record: Iterable[list[str]]) -> Links:
    return {(entity_type, key): CrossLink(root_key, name) for entity_type, key, root_key, name in record}


def documents_digest(documents: Iterable[tuple[str, str, str]]) -> str:
    """What the links across documents depend on: each (doc id, content hash, extraction fingerprint)."""
    digest = hashlib.sha256()
    for doc_id, content_hash, fingerprint in sorted(documents):
        digest.update(f"{doc_id}\x1f{content_hash}\x1f{fingerprint}\n".encode())
    return digest.hexdigest()[:32]
