"""Ingestion, the worker side: validate -> extract (sandboxed child) -> OCR the pages without a usable text layer
(sandboxed children, services.ocr) -> chunk -> embed -> upsert -> Chunk and Page rows.

Contract: `document_ingest` may be called any number of times for the same document (redelivery, reconciler,
a retry after a crash) and always ends with either every chunk indexed and the document READY, or no chunk
rows and the document FAILED with a reason. Vector ids are deterministic, so a replay overwrites, never adds.

One run at a time: a run claims the document in the database (run_owner) and a thread beats its heartbeat while
the run's process lives. A second delivery of the same document (a duplicate, a redelivery, the reconciler)
finds a live claim and leaves; it takes over a claim whose process is gone (same host) or whose heartbeat is
older than settings.WORK_STALE_S (a lost host). A run that was taken over writes nothing more: its last write,
READY with the chunk rows, only happens while it still holds the claim.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from docs_app import registry
from docs_app.models import Chunk, Document, DocumentStatus, Page, PageSource, chunk_keyword_scope
from docs_app.pipeline.pdf_extract import ExtractionError, pdf_extract_pages, pdf_validate
from docs_app.pipeline.prepare import CONTEXT_TOKENS, PreparedDocument, chunk_embedding_text, document_prepare
from docs_app.services.audit import Action, audit_record
from docs_app.services.index import ChunkPlace, vectors_upsert
from docs_app.services.liveness import Beat, run_dead_here, run_identity
from docs_app.services.ocr import PageReading, no_text_reason, pages_ocr
from docs_app.services.sandboxing import pdf_sandbox
from docs_app.storage import stored_file_local

log = logging.getLogger(__name__)

_PROGRESS_EVERY_S = 0.5
_EMBED_GROUP_BATCHES = 8


class ClaimLost(Exception):
    """Another run took the document over (this one stalled past settings.WORK_STALE_S): stop, write nothing."""


@dataclass(frozen=True)
class _Run:
    document: Document
    owner: str
    attempts: int
    beat: Beat | None = None

    def check(self) -> None:
        if self.beat is not None and self.beat.lost.is_set():
            raise ClaimLost(f"document {self.document.pk} was taken over by another run")

    def mine(self) -> QuerySet[Document]:
        """The document, only while this run holds it: every write of the run goes through here."""
        return Document.objects.filter(pk=self.document.pk, run_owner=self.owner)


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

    def __init__(self, run: _Run) -> None:
        self._run = run
        self._last = 0.0

    def update(self, *, percent: int, force: bool = False, **fields: object) -> None:
        now = time.monotonic()
        if not force and now - self._last < _PROGRESS_EVERY_S:
            return
        self._last = now
        self._run.mine().update(progress=min(99, percent), **fields)


def run_is_stale(*, owner: str, heartbeat_at: datetime | None, now: datetime | None = None) -> bool:
    """The claim's run is dead: there is none, its process is gone (this host), or it has not beaten for
    settings.WORK_STALE_S (any host)."""
    if not owner or heartbeat_at is None:
        return True
    now = now or timezone.now()
    return heartbeat_at < now - timedelta(seconds=settings.WORK_STALE_S) or run_dead_here(owner)


def document_ingest(*, document_id: int) -> None:
    claimed = _claim(document_id)
    if claimed is None:
        return  # erased meanwhile, finished, or a live run has it
    with _heartbeat(claimed) as run:
        if run.attempts > settings.INGEST_MAX_ATTEMPTS:
            last = run.document.error or "the worker stopped while processing it"
            document_fail(document_id=document_id, reason=f"gave up after {run.attempts - 1} attempts ({last})",
                          owner=run.owner)
            return
        try:
            # The original on this host's disk only while the sandboxed children read it (a copy from an object
            # store is removed at the end of the block); chunking and embedding need the text alone.
            with stored_file_local(run.document.stored_name) as path:
                if path is None:
                    raise ExtractionError("the stored file is missing")
                prepared, readings, work = _extract_and_chunk(run, path)
        except ExtractionError as exc:
            document_fail(document_id=document_id, reason=exc.reason, owner=run.owner)
            return
        _embed_and_store(run, prepared, readings, work)


def _claim(document_id: int) -> _Run | None:
    """Take the document for this run and count an attempt; None when there is nothing to do here."""
    owner = run_identity()
    with transaction.atomic():  # IMMEDIATE on SQLite, a row lock elsewhere: two runs cannot both claim it
        document = Document.objects.select_for_update().filter(pk=document_id).first()
        if document is None or document.is_terminal:
            return None  # erased meanwhile, or a redelivered message for finished work
        now = timezone.now()
        if not run_is_stale(owner=document.run_owner, heartbeat_at=document.heartbeat_at, now=now):
            log.info("document %s: a live run (%s) has it; this delivery leaves", document_id, document.run_owner)
            return None
        Document.objects.filter(pk=document_id).update(
            run_owner=owner, heartbeat_at=now, attempts=F("attempts") + 1, status=DocumentStatus.EXTRACTING,
            progress=0, pages_done=0, ocr_page_count=0, ocr_pages_done=0,
        )
        document.refresh_from_db()
    return _Run(document=document, owner=owner, attempts=document.attempts)


@contextlib.contextmanager
def _heartbeat(claimed: _Run) -> Iterator[_Run]:
    """The run, with a thread beating its heartbeat every settings.WORK_HEARTBEAT_S while it works."""

    def beat() -> bool:
        return bool(claimed.mine().update(heartbeat_at=timezone.now()))

    def missed(exc: BaseException) -> None:
        log.warning("document %s: heartbeat not written (%s)", claimed.document.pk, exc)

    def finish() -> None:
        connection.close()  # looked up in the beating thread: its own database connection

    thread = Beat(beat=beat, every_s=settings.WORK_HEARTBEAT_S, name=f"heartbeat-{claimed.document.pk}",
                  on_error=missed, finish=finish)
    thread.start()
    try:
        yield _Run(document=claimed.document, owner=claimed.owner, attempts=claimed.attempts, beat=thread)
    finally:
        thread.stop()
        # A run that ends unfinished (an error its task retries) lets go at once: the next run need not wait
        # for the heartbeat to lapse.
        claimed.mine().update(run_owner="")


def _extract_and_chunk(run: _Run, path: Path) -> tuple[PreparedDocument, list[PageReading], _Work]:
    pdf_validate(path, max_bytes=settings.UPLOAD_MAX_FILE_MB * 1024 * 1024)
    progress = _Progress(run)
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
        sandbox=pdf_sandbox(),
        served=True,  # forked by this worker process's PDF server: no interpreter and PyMuPDF start per document
    )
    work = _Work(pages=len(pages))
    started = time.monotonic()
    pages, readings = pages_ocr(path, pages, on_start=on_ocr_start, on_page=on_ocr_page)
    if work.ocr_pages:
        work = replace(work, ocr_seconds=round(time.monotonic() - started, 1))
    if not any(page.text.strip() for page in pages):
        raise ExtractionError(no_text_reason(readings))
    embedder = registry.embedder()
    prepared = document_prepare(
        pages,
        file_name=run.document.original_name,
        max_tokens=min(settings.CHUNK_MAX_TOKENS, embedder.max_tokens - 2 - CONTEXT_TOKENS),
        overlap_tokens=settings.CHUNK_OVERLAP_TOKENS,
        token_len=embedder.count_tokens,
    )
    if not prepared.spans:
        raise ExtractionError(no_text_reason(readings))
    return prepared, readings, work


def _embed_and_store(run: _Run, prepared: PreparedDocument, readings: list[PageReading], work: _Work) -> None:
    document = run.document
    run.check()
    page_count = len(readings)
    metadata = prepared.metadata
    effective = metadata.effective_date or None
    # The metadata is shown as soon as it is known; retrieval only reads READY documents.
    run.mine().update(
        status=DocumentStatus.EMBEDDING, page_count=page_count, pages_done=page_count, progress=work.embedded(0),
        metadata=metadata.as_dict(), doc_type=metadata.doc_type[:100], effective_date=effective,
        year=metadata.year, names=prepared.names,
    )
    spans = prepared.spans
    embedder = registry.embedder()
    store = registry.vector_store()
    progress = _Progress(run)
    vectors = np.zeros((len(spans), embedder.dimension), dtype=np.float32)
    texts = [chunk_embedding_text(title=metadata.title, heading=span.heading, text=span.text,
                                  token_len=embedder.count_tokens) for span in spans]
    # Longest first over the whole document, so each batch holds texts of about one length and little of the
    # model's work goes to padding (in page order, a page's short last chunk padded a batch of full ones); the
    # groups are only there to report progress.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    group = max(1, settings.EMBED_BATCH_SIZE) * _EMBED_GROUP_BATCHES
    for start in range(0, len(order), group):
        part = order[start:start + group]
        vectors[part] = embedder.embed([texts[i] for i in part])
        done = start + len(part)
        progress.update(percent=work.embedded(done / len(spans)))

    places = [ChunkPlace(document.pk, document.collection_id, document.version, s.ordinal, s.page) for s in spans]
    # Vectors first, rows second: the document only turns READY in the same transaction that writes its chunk
    # rows, so a crash in between leaves a not-ready document whose stray vectors search ignores (every hit is
    # checked against Chunk rows) and a replay overwrites (same ids). A Chroma server that restarts meanwhile
    # is waited for (the adapter retries with backoff, settings.VECTOR_STORE_RETRY_S) while the heartbeat goes on.
    run.check()
    store.delete_document(document_id=document.pk)
    vectors_upsert(places=places, embeddings=vectors)
    with transaction.atomic():
        if not Document.objects.filter(pk=document.pk).exists():
            transaction.on_commit(lambda: store.delete_document(document_id=document.pk))
            return  # erased while we worked
        if not run.mine().exists():
            raise ClaimLost(f"document {document.pk} was taken over by another run")
        Chunk.objects.filter(document_id=document.pk).delete()
        Chunk.objects.bulk_create(
            [
                Chunk(document_id=document.pk, ordinal=s.ordinal, page=s.page, char_start=s.char_start,
                      char_end=s.char_end, text=s.text, heading=s.heading[:200], embedding=vectors[i].tobytes(),
                      keyword_scope=chunk_keyword_scope(collection_id=document.collection_id,
                                                        document_id=document.pk, ordinal=s.ordinal))
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
        run.mine().update(status=DocumentStatus.READY, progress=100, error="", updated_at=timezone.now(),
                          run_owner="", chunk_count=len(spans))
        details: dict[str, object] = {"pages": page_count, "chunks": len(spans)}
        if work.ocr_pages:
            details.update(ocr_pages=sum(r.source == PageSource.OCR for r in readings), ocr_seconds=work.ocr_seconds)
        audit_record(action=Action.INGEST, target_type="document", target_id=document.pk,
                     collection_id=document.collection_id, document_id=document.pk, outcome="ready",
                     details=details)


def document_fail(*, document_id: int, reason: str, owner: str | None = None) -> None:
    """Terminal failure with a reason a person can act on; no chunk of the document stays behind. With `owner`,
    only while that run still holds the document; without, unless a live run holds it (a task that gives up
    must not fail a document another run is finishing)."""
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(pk=document_id).first()
        if document is None or document.is_terminal:
            return
        if owner is not None and document.run_owner != owner:
            return
        if owner is None and not run_is_stale(owner=document.run_owner, heartbeat_at=document.heartbeat_at):
            return
        Chunk.objects.filter(document_id=document_id).delete()
        Page.objects.filter(document_id=document_id).delete()
        Document.objects.filter(pk=document_id).update(status=DocumentStatus.FAILED, error=reason[:2000], progress=0,
                                                       run_owner="", updated_at=timezone.now())
        audit_record(action=Action.INGEST, target_type="document", target_id=document_id,
                     collection_id=document.collection_id, document_id=document_id, outcome="failed",
                     details={"reason": reason[:500]})
    try:
        # Stray vectors of an attempt that crashed between upsert and commit: search already ignores them.
        registry.vector_store().delete_document(document_id=document_id)
    except Exception:
        log.warning("could not purge vectors of failed document %s", document_id, exc_info=True)
    log.info("document %s failed: %s", document_id, reason)
