"""The vector index is derived: rebuild it from Chunk rows (stored embeddings) whenever it is lost, stale or
bloated. Chroma's deletes are soft, so a rebuild is also how erased vectors leave its files for good."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from django.db import connection

from docs_app import registry
from docs_app.models import Chunk, DocumentStatus, chunk_vector_id
from docs_app.pipeline.prepare import chunk_embedding_text
from docs_app.services.audit import Action, audit_record

_BATCH = 2000


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
