"""Ingestion, the worker side: validate -> extract (sandboxed child) -> OCR the pages without a usable text layer
(sandboxed children, services.ocr) -> chunk -> embed -> upsert -> Chunk and Page rows.

Contract: `document_ingest` may be called any number of times for the same document (redelivery, reconciler,
a retry after a crash) and always ends with either every chunk indexed and the document READY, or no chunk
rows and the document FAILED with a reason. Vector ids are deterministic, so a replay overwrites, never adds.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from docs_app import registry
from docs_app.models import Chunk, Document, DocumentStatus, Page, PageSource
from docs_app.pipeline.chunking import ChunkSpan, chunk_pages
from docs_app.pipeline.pdf_extract import ExtractionError, pdf_extract_pages, pdf_validate
from docs_app.services.audit import Action, audit_record
from docs_app.services.index import ChunkPlace, vectors_upsert
from docs_app.services.ocr import PageReading, no_text_reason, pages_ocr
from docs_app.storage import document_file_path

log = logging.getLogger(__name__)

_PROGRESS_EVERY_S = 0.5


@dataclass(frozen=True)
class _Work:
    """The progress bar as a share of the expected work, counted per page: reading a text layer (1), OCR (about a
    hundred times that, a few seconds a page), embedding the page's chunks (about ten). The OCR pages are known
    only after the text pass, which adds work and never takes the bar back."""

    pages: int
    ocr_pages: int = 0
    ocr_seconds: float = 0.0  # wall clock of the OCR, for the audit record
    _TEXT, _OCR, _EMBED = 1, 100, 10

    @property
    def total(self) -> int:
        return max(1, self.pages * (self._TEXT + self._EMBED) + self.ocr_pages * self._OCR)

    def text_read(self, done: int) -> int:
        return 100 * done * self._TEXT // self.total

    def ocr_read(self, done: int) -> int:
        return 100 * (self.pages * self._TEXT + done * self._OCR) // self.total

    def embedded(self, share: float) -> int:
        return int(100 * (self.pages * self._TEXT + self.ocr_pages * self._OCR + share * self.pages * self._EMBED)
                   // self.total)


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
        spans, readings, work = _extract_and_chunk(document)
    except ExtractionError as exc:
        document_fail(document_id=document_id, reason=exc.reason)
        return
    _embed_and_store(document, spans, readings, work)


def _attempt_begin(document: Document) -> int:
    Document.objects.filter(pk=document.pk).update(
        attempts=F("attempts") + 1, status=DocumentStatus.EXTRACTING, progress=0, pages_done=0, ocr_page_count=0,
        ocr_pages_done=0,
    )
    return Document.objects.values_list("attempts", flat=True).get(pk=document.pk)


def _extract_and_chunk(document: Document) -> tuple[list[ChunkSpan], list[PageReading], _Work]:
    path = document_file_path(document)
    if not path.exists():
        raise ExtractionError("the stored file is missing")
    pdf_validate(path, max_bytes=settings.UPLOAD_MAX_FILE_MB * 1024 * 1024)
    progress = _Progress(document.pk)
    work = _Work(pages=0)

    def on_page(done: int, total: int) -> None:
        progress.update(percent=_Work(pages=total).text_read(done), force=done == 0, pages_done=done,
                        page_count=total)

    def on_ocr_start(count: int) -> None:
        nonlocal work
        work = _Work(pages=work.pages, ocr_pages=count)
        progress.update(percent=work.ocr_read(0), force=True, ocr_page_count=count, ocr_pages_done=0)

    def on_ocr_page(done: int) -> None:
        progress.update(percent=work.ocr_read(done), ocr_pages_done=done)

    pages = pdf_extract_pages(
        path,
        max_pages=settings.INGEST_MAX_PAGES,
        timeout_s=settings.INGEST_EXTRACT_TIMEOUT_S,
        memory_limit_mb=settings.INGEST_EXTRACT_MEMORY_MB,
        on_page=on_page,
    )
    work = _Work(pages=len(pages))
    started = time.monotonic()
    pages, readings = pages_ocr(path, pages, on_start=on_ocr_start, on_page=on_ocr_page)
    if work.ocr_pages:
        work = replace(work, ocr_seconds=round(time.monotonic() - started, 1))
    if not any(page.text.strip() for page in pages):
        raise ExtractionError(no_text_reason(readings))
    embedder = registry.embedder()
    spans = chunk_pages(
        pages,
        max_tokens=min(settings.CHUNK_MAX_TOKENS, embedder.max_tokens - 2),
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
        token_len=embedder.count_tokens,
    )
    if not spans:
        raise ExtractionError(no_text_reason(readings))
    return spans, readings, work


def _embed_and_store(document: Document, spans: list[ChunkSpan], readings: list[PageReading], work: _Work) -> None:
    page_count = len(readings)
    Document.objects.filter(pk=document.pk).update(
        status=DocumentStatus.EMBEDDING, page_count=page_count, pages_done=page_count, progress=work.embedded(0)
    )
    embedder = registry.embedder()
    store = registry.vector_store()
    progress = _Progress(document.pk)
    batch = max(1, settings.EMBED_BATCH_SIZE)
    vectors = np.zeros((len(spans), embedder.dimension), dtype=np.float32)
    for start in range(0, len(spans), batch):
        part = spans[start:start + batch]
        vectors[start:start + len(part)] = embedder.embed([" ".join(span.text.split()) for span in part])
        done = start + len(part)
        progress.update(percent=work.embedded(done / len(spans)))

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
                      char_end=s.char_end, text=s.text, embedding=vectors[i].tobytes())
                for i, s in enumerate(spans)
            ],
            batch_size=500,
        )
        Page.objects.filter(document_id=document.pk).delete()
        Page.objects.bulk_create(
            [
                Page(document_id=document.pk, number=number, source=r.source, ocr_confidence=r.confidence,
                     ocr_failed=r.failed, note=r.note, ocr_words=[list(word) for word in r.words])
                for number, r in enumerate(readings, start=1)
            ],
            batch_size=500,
        )
        Document.objects.filter(pk=document.pk).update(
            status=DocumentStatus.READY, progress=100, error="", updated_at=timezone.now()
        )
        details: dict[str, object] = {"pages": page_count, "chunks": len(spans)}
        if work.ocr_pages:
            details.update(ocr_pages=sum(r.source == PageSource.OCR for r in readings), ocr_seconds=work.ocr_seconds)
        audit_record(action=Action.INGEST, target_type="document", target_id=document.pk,
                     collection_id=document.collection_id, document_id=document.pk, outcome="ready",
                     details=details)


def document_fail(*, document_id: int, reason: str) -> None:
    """Terminal failure with a reason a person can act on; no chunk of the document stays behind."""
    with transaction.atomic():
        document = Document.objects.filter(pk=document_id).first()
        if document is None:
            return
        Chunk.objects.filter(document_id=document_id).delete()
        Page.objects.filter(document_id=document_id).delete()
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
