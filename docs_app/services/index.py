"""The vector index is derived: rebuild it from Chunk rows (stored embeddings) whenever it is lost, stale or
bloated. Chroma's deletes are soft, so a rebuild is also how erased vectors leave its files for good."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from django.db import connection

from docs_app import registry
from docs_app.models import Chunk, Document, DocumentStatus, chunk_vector_id, chunk_vector_key
from docs_app.pipeline.prepare import chunk_embedding_text
from docs_app.services.audit import Action, audit_record
from docs_app.services.streams import redis_files_compact

log = logging.getLogger(__name__)

_BATCH = 2000


def vector_store_prepare() -> None:
    """Build this process's vector store client when a worker process starts, so that its first document or
    question does not wait for the client library's import and set-up (0.4 s of CPU per process in a profile of
    bench/ingest.py). Never raises: a store that cannot be reached yet is built, and waited for, by the first
    task that needs it."""
    try:
        reachable = registry.vector_store().ping()
    except Exception as exc:
        log.warning("the vector store client could not be built at start (%s: %s); the first task that needs it "
                    "builds it", type(exc).__name__, exc)
        return
    if not reachable:
        log.warning("the vector store does not answer yet; tasks that need it wait for it")


@dataclass(frozen=True)
class ChunkPlace:
    """Where a chunk's vector belongs: what its id is made of and what queries filter on."""

    document_id: int
    collection_id: int
    version: int
    ordinal: int
    page: int

    @classmethod
    def of(cls, chunk: Chunk) -> ChunkPlace:
        document = chunk.document
        return cls(document.pk, document.collection_id, document.version, chunk.ordinal, chunk.page)


def vectors_upsert(*, places: Sequence[ChunkPlace], embeddings: npt.NDArray[np.float32]) -> None:
    """The one writer of vector records: deterministic ids (a replay overwrites) and the metadata that
    queries filter on (collection, document)."""
    registry.vector_store().upsert(
        ids=[chunk_vector_id(document_id=p.document_id, version=p.version, ordinal=p.ordinal) for p in places],
        embeddings=embeddings,
        metadatas=[{"document_id": p.document_id, "collection_id": p.collection_id, "page": p.page,
                    "ordinal": p.ordinal} for p in places],
    )


def index_rebuild(*, reembed: bool = False) -> int:
    """Drop the vector collection and write every READY document's chunks again. With `reembed`, vectors are
    recomputed by the current embedder (after changing models) and stored back in the DB."""
    store = registry.vector_store()
    store.reset()
    chunks = Chunk.objects.filter(document__status=DocumentStatus.READY).select_related("document").order_by("id")
    written = 0
    batch: list[Chunk] = []
    for chunk in chunks.iterator(chunk_size=_BATCH):
        batch.append(chunk)
        if len(batch) == _BATCH:
            written += _write(batch, reembed=reembed)
            batch = []
    if batch:
        written += _write(batch, reembed=reembed)
    audit_record(action=Action.INDEX_REBUILD, target_type="index", details={"chunks": written, "reembed": reembed})
    keyword_index_compact()
    return written


@dataclass
class IndexReport:
    """What check_index found: the DB's side (READY documents and their chunk rows), the store's, the drift."""

    documents_ready: int = 0
    chunk_rows: int = 0
    vectors: int = 0
    missing: int = 0  # chunk rows of READY documents with no vector: re-upserted from the stored embedding
    orphans: int = 0  # vectors no READY document's chunk row accounts for: deleted
    ready_without_chunks: list[int] = field(default_factory=list)  # cannot be repaired from the DB: reported
    repaired: bool = False

    @property
    def drift(self) -> bool:
        return bool(self.missing or self.orphans or self.ready_without_chunks)

    def summary(self) -> str:
        text = (f"{self.documents_ready} ready documents, {self.chunk_rows} chunk rows, {self.vectors} vectors; "
                f"missing {self.missing}, orphans {self.orphans}")
        if self.ready_without_chunks:
            text += f"; ready without chunk rows: {self.ready_without_chunks[:20]}"
        if self.repaired:
            text += " (repaired)"
        return text


def index_check(*, repair: bool = True) -> IndexReport:
    """Compare Documents, Chunk rows and the vector store, and (with `repair`) mend the drift: vectors missing for
    READY documents are written again from the DB's stored embeddings, vectors that no READY document accounts
    for (erased or failed documents, an old version, a purge lost with Redis) are deleted.

    Documents being ingested right now are left alone: their vectors are written before they turn READY. The
    store is listed first and the DB read after, so a document that turns READY in between only looks "missing"
    (an idempotent re-upsert), and one erased in between looks orphaned, which it is. Idempotent: safe to run
    from several hosts at once."""
    store = registry.vector_store()
    stored = set(store.ids())
    expected: dict[str, int] = {}
    for pk, document_id, version, ordinal in Chunk.objects.filter(document__status=DocumentStatus.READY) \
            .values_list("pk", "document_id", "document__version", "ordinal").iterator(chunk_size=_BATCH):
        expected[chunk_vector_id(document_id=document_id, version=version, ordinal=ordinal)] = pk
    in_progress = set(Document.objects.exclude(status__in=[DocumentStatus.READY, DocumentStatus.FAILED])
                      .values_list("pk", flat=True))
    ready = Document.objects.filter(status=DocumentStatus.READY)
    report = IndexReport(documents_ready=ready.count(), chunk_rows=len(expected), vectors=len(stored))
    report.ready_without_chunks = sorted(ready.filter(chunks__isnull=True).values_list("pk", flat=True))
    missing = [pk for vector_id, pk in expected.items() if vector_id not in stored]
    orphans = [vector_id for vector_id in stored
               if vector_id not in expected and _document_of(vector_id) not in in_progress]
    report.missing, report.orphans = len(missing), len(orphans)
    if repair and (missing or orphans):
        for start in range(0, len(missing), _BATCH):
            _write(list(Chunk.objects.filter(pk__in=missing[start:start + _BATCH]).select_related("document")),
                   reembed=False)
        for start in range(0, len(orphans), _BATCH):
            store.delete_ids(ids=orphans[start:start + _BATCH])
        report.repaired = True
        audit_record(action=Action.INDEX_REPAIR, target_type="index",
                     details={"missing": report.missing, "orphans": report.orphans})
        log.warning("vector index drift repaired: %s", report.summary())
    return report


def _document_of(vector_id: str) -> int | None:
    key = chunk_vector_key(vector_id)
    return key[0] if key else None


def keyword_index_compact() -> None:
    """Erase what deleted chunks left in the SQLite file. FTS5 records a delete as a tombstone and keeps the
    erased document's terms in its old segments (measured: names from a deleted contract stay readable in the
    file) until the index is merged; 'optimize' rewrites it, secure_delete zeroes the freed pages, and a
    truncating checkpoint drops the pre-delete page images still sitting in the WAL file. It rewrites the
    whole keyword index, so it runs in a worker after a deletion, never in a web request. PostgreSQL keeps
    dead rows until VACUUM instead: there, schedule VACUUM on docs_app_chunk."""
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO docs_app_chunk_fts(docs_app_chunk_fts) VALUES('optimize')")
        # The names of erased documents, likewise (parties, titles: as confidential as the text).
        cursor.execute("INSERT INTO docs_app_document_names_fts(docs_app_document_names_fts) VALUES('optimize')")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def erasure_compact() -> None:
    """After a deletion: what still holds erased bytes on disk is rewritten (the keyword index and the WAL here,
    Redis's append-only file through services.streams)."""
    keyword_index_compact()
    redis_files_compact()


def _write(batch: list[Chunk], *, reembed: bool) -> int:
    if reembed:
        embedder = registry.embedder()
        vectors = embedder.embed([chunk_embedding_text(title=c.document.metadata_title, heading=c.heading,
                                                       text=c.text, token_len=embedder.count_tokens)
                                  for c in batch])
        for chunk, vector in zip(batch, vectors, strict=True):
            chunk.embedding = vector.tobytes()
        Chunk.objects.bulk_update(batch, ["embedding"])
    else:
        vectors = np.stack([np.frombuffer(bytes(c.embedding), dtype=np.float32) for c in batch])
    vectors_upsert(places=[ChunkPlace.of(c) for c in batch], embeddings=vectors)
    return len(batch)
