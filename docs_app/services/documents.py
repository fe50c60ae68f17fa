"""Writes on documents: accept an upload, retry, erase. Views and commands call these; they never touch files."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from docs_app.models import Collection, Document, DocumentStatus, UploadItem
from docs_app.pipeline.pdf_extract import ExtractionError, pdf_validate
from docs_app.services.actor import Actor
from docs_app.services.answering import answers_redact_for_document
from docs_app.services.audit import Action, audit_record
from docs_app.services.enqueue import (
    document_ingest_enqueue,
    erasure_compact_enqueue,
    queue_unreachable,
    vectors_delete_enqueue,
)
from docs_app.services.streams import streams_delete
from docs_app.storage import (
    COPY_BLOCK,
    StoreError,
    incoming_file,
    incoming_keep,
    page_renders_erase,
    stored_file_delete,
)

log = logging.getLogger(__name__)

ERASED_NAME = "(erased)"


# Said when a file was stored and recorded but its message could not reach the queue (Redis unreachable).
QUEUE_WAIT_NOTE = ("stored; processing waits for the task queue, which is not reachable now. It starts by "
                   "itself when the queue is back: nothing needs to be uploaded again.")


@dataclass(frozen=True)
class UploadOutcome:
    name: str
    status: Literal["queued", "duplicate", "rejected"]
    reason: str = ""
    document_id: int | None = None
    note: str = ""
    archive: str = ""  # where an archive member came from: "contracts.zip/2010"


def _title_from_name(name: str) -> str:
    stem = Path(name).stem if Path(name).suffix.lower() == ".pdf" else Path(name).name
    return " ".join(stem.replace("_", " ").split()) or "Untitled"


def _spool(source: IO[bytes], *, max_bytes: int) -> tuple[Path, str, int]:
    """Copy the upload into a private temp file (docs_app.storage.incoming_file), hashing as it goes; stop at the
    size cap instead of filling the disk."""
    digest = hashlib.sha256()
    size = 0
    fd, tmp_path = incoming_file()
    try:
        with os.fdopen(fd, "wb") as out:
            while block := source.read(COPY_BLOCK):
                size += len(block)
                if size > max_bytes:
                    raise ExtractionError(
                        f"file too large (over the {max_bytes // (1024 * 1024)} MB limit)"
                    )
                digest.update(block)
                out.write(block)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return tmp_path, digest.hexdigest(), size


def document_upload(
    *,
    collection: Collection,
    name: str,
    source: IO[bytes],
    actor: Actor,
) -> UploadOutcome:
    """Store one file and queue it for ingestion. Obvious misfits (not a PDF, empty, too large) are rejected
    here, with a reason, before a Document row exists; everything else is left to the sandboxed worker.
    The caller is expected to have checked the user's role on the collection."""
    display_name = Path(name.replace("\\", "/")).name[:500] or "upload.pdf"
    max_bytes = settings.UPLOAD_MAX_FILE_MB * 1024 * 1024
    try:
        tmp_path, sha256, size = _spool(source, max_bytes=max_bytes)
    except ExtractionError as exc:
        return upload_rejected(name=display_name, reason=exc.reason, collection=collection, actor=actor)
    try:
        pdf_validate(tmp_path, max_bytes=max_bytes)
    except ExtractionError as exc:
        tmp_path.unlink(missing_ok=True)
        return upload_rejected(name=display_name, reason=exc.reason, collection=collection, actor=actor)

    existing = Document.objects.filter(collection=collection, sha256=sha256).first()
    if existing is not None:
        tmp_path.unlink(missing_ok=True)
        return _duplicate(display_name, existing)

    try:
        stored_name = incoming_keep(tmp_path)
    except StoreError as exc:
        return upload_rejected(name=display_name, reason=exc.reason, collection=collection, actor=actor)
    try:
        with transaction.atomic():
            document = Document.objects.create(
                collection=collection,
                title=_title_from_name(display_name),
                original_name=display_name,
                stored_name=stored_name,
                sha256=sha256,
                size_bytes=size,
                uploaded_by=actor.account,
            )
            audit_record(
                action=Action.UPLOAD, actor=actor, target_type="document",
                target_id=document.pk, collection_id=collection.pk, document_id=document.pk,
                # No file name or title: the receipt must say nothing an erasure would have to take back.
                details={"sha256": sha256, "size_bytes": size},
            )
            document_ingest_enqueue(document_id=document.pk)
    except IntegrityError:
        # The same bytes raced in through another request; that one won.
        _stored_copy_drop(stored_name)
        winner = Document.objects.get(collection=collection, sha256=sha256)
        return _duplicate(display_name, winner)
    except BaseException:
        _stored_copy_drop(stored_name)
        raise
    return UploadOutcome(display_name, "queued", document_id=document.pk,
                         note=QUEUE_WAIT_NOTE if queue_unreachable() else "")


def _stored_copy_drop(stored_name: str) -> None:
    """Delete a copy kept for an upload that then did not become a document; a store that fails here must not hide
    the error that got us here, so it is logged (the copy is an orphan no row points to)."""
    try:
        stored_file_delete(stored_name)
    except StoreError as exc:
        log.error("could not delete the orphaned stored file %s: %s", stored_name, exc.reason)


def _duplicate(name: str, existing: Document) -> UploadOutcome:
    return UploadOutcome(name, "duplicate", f"same file as “{existing.title}” already in this collection",
                         document_id=existing.pk)


def upload_rejected(*, name: str, reason: str, collection: Collection, actor: Actor) -> UploadOutcome:
    """A file that is not stored, audited so the log shows every file someone tried to add (not its name: the
    uploader sees that in the response; the log keeps no names of documents)."""
    audit_record(action=Action.UPLOAD, actor=actor, target_type="file", collection_id=collection.pk,
                 outcome="rejected", details={"reason": reason})
    return UploadOutcome(name, "rejected", reason)


def document_retry(*, document: Document, actor: Actor) -> None:
    """Queue a failed document again from scratch: fresh attempt counter, a new index version."""
    with transaction.atomic():
        Document.objects.filter(pk=document.pk).update(
            status=DocumentStatus.QUEUED, error="", attempts=0, progress=0, pages_done=0,
            version=document.version + 1, run_owner="", updated_at=timezone.now(),
        )
        audit_record(action=Action.RETRY, actor=actor, target_type="document",
                     target_id=document.pk, collection_id=document.collection_id, document_id=document.pk)
        document_ingest_enqueue(document_id=document.pk)


def document_delete(*, document: Document, actor: Actor) -> None:
    """Erase a document: its file, page renders, Chunk rows (and with them the keyword index) now, its vectors
    through the ingest queue (the web process opens no vector store; search re-checks every hit against the
    DB, so a vector awaiting purge can never surface). Answers that drew on it lose their text, and their
    Redis streams go; a worker then compacts what keeps deleted bytes on disk (the keyword index, the SQLite
    WAL, Redis's append-only file). The audit log keeps a receipt, not the content.

    The original goes first, through the store: if the store cannot delete it (unreachable, refused) StoreError
    is raised and nothing else has changed, so the person is told and can try again. Rows first would risk a
    receipt for an erasure whose file stayed in the store with no row left to find it by. If the database then
    fails, the document is still listed, without its file, and deleting it again finishes the job."""
    document_id = document.pk
    stored_file_delete(document.stored_name)
    with transaction.atomic():
        # The receipt the README promises: id, SHA-256 of the original, who, when. Never the title or file name.
        receipt = {"sha256": document.sha256, "size_bytes": document.size_bytes, "page_count": document.page_count}
        redacted = answers_redact_for_document(document_id=document_id, collection_id=document.collection_id)
        # Upload reports keep what happened to the file, not its name.
        UploadItem.objects.filter(document_id=document_id).update(name=ERASED_NAME, archive="")
        document.chunks.all().delete()
        document.delete()
        audit_record(action=Action.DELETE, actor=actor, target_type="document",
                     target_id=document_id, collection_id=document.collection_id, document_id=document_id,
                     details=receipt)
        vectors_delete_enqueue(document_id=document_id)
        transaction.on_commit(lambda: streams_delete(answer_ids=redacted))
        # The keyword index keeps erased terms until it is merged (see services.index.keyword_index_compact), and
        # Redis's append-only file keeps the deleted streams until it is rewritten.
        erasure_compact_enqueue()
    page_renders_erase(document_id=document_id)
