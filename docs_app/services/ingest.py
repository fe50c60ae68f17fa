"""Ingestion, the worker side: validate -> extract (sandboxed child) -> chunk -> embed -> upsert -> Chunk rows.

Contract: `document_ingest` may be called any number of times for the same document (redelivery, reconciler,
a retry after a crash) and always ends with either every chunk indexed and the document READY, or no chunk
rows and the document FAILED with a reason. Vector ids are deterministic, so a replay overwrites, never adds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from docs_app import registry
from docs_app.models import Chunk, Document, DocumentStatus
from docs_app.pipeline.pdf_extract import ExtractedPage, ExtractionError, pdf_extract_pages, pdf_validate
from docs_app.pipeline.prepare import CONTEXT_TOKENS, PreparedDocument, chunk_embedding_text, document_prepare
from docs_app.services.audit import Action, audit_record
from docs_app.services.index import ChunkPlace, vectors_upsert
from docs_app.storage import document_file_path

log = logging.getLogger(__name__)

NO_TEXT_LAYER = "no text layer (needs OCR)"
# Progress bar split: extraction fills the first half, embedding the second.
_EXTRACT_SHARE = 50
_PROGRESS_EVERY_S = 0.5


class _Progress:
    """Writes progress to the DB at most twice a second: a 3,000-page file must not cost 3,000 UPDATEs."""

    def __init__(self, document_id: int) -> None:
        self._document_id = document_id
        self._last = 0.0

    def update(self, *, percent: int, force: bool = False, **fields: object) -> None:
        now = time.monotonic()
        if not force and now - self._last < _PROGRESS_EVERY_S:
            return
        self._last = now
        Document.objects.filter(pk=self._document_id).update(progress=min(99, percent), **fields)


def document_ingest(*, document_id: int) -> None:
    document = Document.objects.filter(pk=document_id).first()
    if document is None or document.is_terminal:
        return  # erased meanwhile, or a redelivered message for finished work
    attempts = _attempt_begin(document)
    if attempts > settings.INGEST_MAX_ATTEMPTS:
        last = document.error or "the worker stopped while processing it"
        document_fail(document_id=document_id, reason=f"gave up after {attempts - 1} attempts ({last})")
        return
    try:
        prepared, page_count = _extract_and_chunk(document)
    except ExtractionError as exc:
        document_fail(document_id=document_id, reason=exc.reason)
        return
    _embed_and_store(document, prepared, page_count)


def _attempt_begin(document: Document) -> int:
    Document.objects.filter(pk=document.pk).update(
        attempts=F("attempts") + 1, status=DocumentStatus.EXTRACTING, progress=0, pages_done=0
    )
    return Document.objects.values_list("attempts", flat=True).get(pk=document.pk)


def _extract_and_chunk(document: Document) -> tuple[PreparedDocument, int]:
    path = document_file_path(document)
    if not path.exists():
        raise ExtractionError("the stored file is missing")
    pdf_validate(path, max_bytes=settings.UPLOAD_MAX_FILE_MB * 1024 * 1024)
    progress = _Progress(document.pk)

    def on_page(done: int, total: int) -> None:
        progress.update(percent=(_EXTRACT_SHARE * done) // max(total, 1), force=done == 0,
                        pages_done=done, page_count=total)

    pages: Sequence[ExtractedPage] = pdf_extract_pages(
        path,
        max_pages=settings.INGEST_MAX_PAGES,
        timeout_s=settings.INGEST_EXTRACT_TIMEOUT_S,
        memory_limit_mb=settings.INGEST_EXTRACT_MEMORY_MB,
        on_page=on_page,
    )
    if not any(page.text.strip() for page in pages):
        raise ExtractionError(NO_TEXT_LAYER)
    embedder = registry.embedder()
    prepared = document_prepare(
        pages,
        file_name=document.original_name,
        max_tokens=min(settings.CHUNK_MAX_TOKENS, embedder.max_tokens - 2 - CONTEXT_TOKENS),
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
        token_len=embedder.count_tokens,
    )
    if not prepared.spans:
        raise ExtractionError(NO_TEXT_LAYER)
    return prepared, len(pages)


def _embed_and_store(document: Document, prepared: PreparedDocument, page_count: int) -> None:
    metadata = prepared.metadata
    effective = metadata.effective_date or None
    # The metadata is shown as soon as it is known; retrieval only reads READY documents.
    Document.objects.filter(pk=document.pk).update(
        status=DocumentStatus.EMBEDDING, page_count=page_count, pages_done=page_count, progress=_EXTRACT_SHARE,
        metadata=metadata.as_dict(), doc_type=metadata.doc_type[:100], effective_date=effective,
        year=metadata.year, names=prepared.names,
    )
    spans = prepared.spans
    embedder = registry.embedder()
    store = registry.vector_store()
    progress = _Progress(document.pk)
    batch = max(1, settings.EMBED_BATCH_SIZE)
    vectors = np.zeros((len(spans), embedder.dimension), dtype=np.float32)
    for start in range(0, len(spans), batch):
        part = spans[start:start + batch]
        vectors[start:start + len(part)] = embedder.embed([
            chunk_embedding_text(title=metadata.title, heading=span.heading, text=span.text,
                                 token_len=embedder.count_tokens) for span in part])
        done = start + len(part)
        progress.update(percent=_EXTRACT_SHARE + (100 - _EXTRACT_SHARE) * done // len(spans))

    places = [ChunkPlace(document.pk, document.collection_id, document.version, s.ordinal, s.page) for s in spans]
    # Vectors first, rows second: the document only turns READY in the same transaction that writes its chunk
    # rows, so a crash in between leaves a not-ready document whose stray vectors search ignores (every hit is
    # checked against Chunk rows) and a replay overwrites (same ids).
    store.delete_document(document_id=document.pk)
    vectors_upsert(places=places, embeddings=vectors)
    with transaction.atomic():
        if not Document.objects.filter(pk=document.pk).exists():
            transaction.on_commit(lambda: store.delete_document(document_id=document.pk))
            return  # erased while we worked
        Chunk.objects.filter(document_id=document.pk).delete()
        Chunk.objects.bulk_create(
            [
                Chunk(document_id=document.pk, ordinal=s.ordinal, page=s.page, char_start=s.char_start,
                      char_end=s.char_end, text=s.text, heading=s.heading[:200], embedding=vectors[i].tobytes())
                for i, s in enumerate(spans)
            ],
            batch_size=500,
        )
        Document.objects.filter(pk=document.pk).update(
            status=DocumentStatus.READY, progress=100, error="", updated_at=timezone.now()
        )
        audit_record(action=Action.INGEST, target_type="document", target_id=document.pk,
                     collection_id=document.collection_id, document_id=document.pk, outcome="ready",
                     details={"pages": page_count, "chunks": len(spans)})


def document_fail(*, document_id: int, reason: str) -> None:
    """Terminal failure with a reason a person can act on; no chunk of the document stays behind."""
    with transaction.atomic():
        document = Document.objects.filter(pk=document_id).first()
        if document is None:
            return
        Chunk.objects.filter(document_id=document_id).delete()
        Document.objects.filter(pk=document_id).update(status=DocumentStatus.FAILED, error=reason[:2000], progress=0)
        audit_record(action=Action.INGEST, target_type="document", target_id=document_id,
                     collection_id=document.collection_id, document_id=document_id, outcome="failed",
                     details={"reason": reason[:500]})
    try:
        # Stray vectors of an attempt that crashed between upsert and commit: search already ignores them.
        registry.vector_store().delete_document(document_id=document_id)
    except Exception:
        log.warning("could not purge vectors of failed document %s", document_id, exc_info=True)
    log.info("document %s failed: %s", document_id, reason)
