"""The vector index: a derived copy of Chunk embeddings, rebuilt from the DB whenever needed."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import httpx
import numpy as np
import numpy.typing as npt

T = TypeVar("T")
# A reader of at least this share of the index is served by an unfiltered search for OVERFETCH / share times
# as many neighbours (at most MAX_OVERFETCH), filtered here; a narrower reader by Chroma's own filter, unless the
# caller completes a short list itself (filter_when_short=False): then the unfiltered search serves any share.
UNFILTERED_MIN_SHARE = 0.05
OVERFETCH = 1.5
MAX_OVERFETCH = 2000

log = logging.getLogger(__name__)


class VectorStoreUnavailable(Exception):
    """The vector store stayed unreachable for longer than the store's retry window."""


@dataclass(frozen=True)
class VectorHit:
    vector_id: str  # "<document>:<version>:<ordinal>"
    similarity: float  # cosine similarity, higher is closer
    document_id: int
    collection_id: int


class VectorStore(Protocol):
    """Contract: ids are deterministic and writes are upserts, so replaying a write never duplicates.
    Queries are always filtered by the collection ids the caller computed from the DB; the store never decides
    who may see what. Vectors are L2-normalised float32. A store that is briefly unreachable (a server restart)
    is waited for, with backoff, up to a retry window; past it calls raise VectorStoreUnavailable."""

    def upsert(self, *, ids: Sequence[str], embeddings: npt.NDArray[np.float32],
               metadatas: Sequence[dict[str, int]]) -> None: ...

    def delete_document(self, *, document_id: int) -> None: ...

    def delete_ids(self, *, ids: Sequence[str]) -> None: ...

    def ids(self, *, batch: int = 5000) -> Iterator[str]:
        """Every vector id in the store, in pages of `batch` (for comparing the store with the DB)."""
        ...

    def query(self, *, embedding: npt.NDArray[np.float32], k: int, collection_ids: Sequence[int],
              document_ids: Sequence[int] | None = None, readable_share: float | None = None,
              filter_when_short: bool = True) -> list[VectorHit]:
        """The k nearest vectors among the given collections (and documents), nearest first. `readable_share`
        is a hint: the fraction of the index those collections hold (1.0: all of it), so a store whose filters
        cost in proportion to what they let through can search unfiltered and drop the rest itself. When such a
        search finds fewer than k readable vectors (the unreadable ones were nearer), the store asks again with
        its filter, unless `filter_when_short` is False: then it returns the readable ones it found, which are
        the nearest readable ones, and the caller completes the list another way; such a caller is served by the
        unfiltered search whatever the share."""
        ...

    def reset(self) -> None: ...

    def count(self) -> int: ...

    def ping(self) -> bool: ...


def _page(collection: Any, *, limit: int, offset: int) -> list[str]:
    return list(collection.get(include=[], limit=limit, offset=offset)["ids"])


class ChromaVectorStore:
    """Talks to a Chroma server (`chroma run`): the embedded client is not process-safe and several workers
    write at once. At scale the same code points at a remote Chroma."""

    def __init__(self, *, host: str, port: int, collection_name: str, retry_s: float = 0) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        self._client = chromadb.HttpClient(
            host=host, port=port, settings=ChromaSettings(anonymized_telemetry=False)
        )
        self._name = collection_name
        self._collection: Any = None
        self._retry_s = retry_s

    @classmethod
    def from_settings(cls, settings: Any) -> ChromaVectorStore:
        return cls(host=settings.CHROMA_HOST, port=settings.CHROMA_PORT, collection_name=settings.CHROMA_COLLECTION,
                   retry_s=settings.VECTOR_STORE_RETRY_S)

    def _coll(self) -> Any:
        if self._collection is None:
            self._collection = self._client.get_or_create_collection(
                name=self._name, embedding_function=None, metadata={"hnsw:space": "cosine"}
            )
        return self._collection

    def _with_collection(self, call: Callable[[Any], T]) -> T:
        """Run `call` on the collection. A server that does not answer (restarting) is retried with backoff for
        the retry window; a collection handle that names a collection gone from the server (recreated by a
        reindex, or lost with the server's data) is looked up again."""
        from chromadb.errors import NotFoundError

        deadline = time.monotonic() + self._retry_s
        delay = 0.5
        while True:
            try:
                try:
                    return call(self._coll())
                except NotFoundError:
                    self._collection = None
                    return call(self._coll())
            except httpx.TransportError as exc:
                self._collection = None
                if time.monotonic() + delay > deadline:
                    raise VectorStoreUnavailable(f"the Chroma server did not answer: {exc}") from exc
                log.warning("the Chroma server did not answer (%s); trying again in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def upsert(self, *, ids: Sequence[str], embeddings: npt.NDArray[np.float32],
               metadatas: Sequence[dict[str, int]]) -> None:
        if len(ids) == 0:
            return
        self._with_collection(lambda c: c.upsert(ids=list(ids), embeddings=embeddings, metadatas=list(metadatas)))

    def delete_document(self, *, document_id: int) -> None:
        self._with_collection(lambda c: c.delete(where={"document_id": document_id}))

    def delete_ids(self, *, ids: Sequence[str]) -> None:
        if ids:
            self._with_collection(lambda c: c.delete(ids=list(ids)))

    def ids(self, *, batch: int = 5000) -> Iterator[str]:
        offset = 0
        while True:
            page: list[str] = self._with_collection(functools.partial(_page, limit=batch, offset=offset))
            yield from page
            if len(page) < batch:
                return
            offset += len(page)

    def query(self, *, embedding: npt.NDArray[np.float32], k: int, collection_ids: Sequence[int],
              document_ids: Sequence[int] | None = None, readable_share: float | None = None,
              filter_when_short: bool = True) -> list[VectorHit]:
        if not collection_ids or k <= 0:
            return []
        allowed = {int(c) for c in collection_ids}
        if document_ids is None and readable_share is not None and (
                readable_share >= UNFILTERED_MIN_SHARE or not filter_when_short):
            # Chroma evaluates a metadata filter by listing every record it lets through: a reader of most of a
            # large index pays for all of it (bench/scale.py: 16x an unfiltered search for a reader of everything
            # at 20k chunks). For a wide reader it is cheaper to search more neighbours unfiltered and drop the
            # unreadable ones here.
            share = max(readable_share, 1e-6)
            wanted = k if share >= 1.0 else min(MAX_OVERFETCH, math.ceil(k * OVERFETCH / share))
            nearest = self._search(embedding, wanted, where=None)
            hits = [hit for hit in nearest if hit.collection_id in allowed]
            if len(hits) >= k or len(nearest) < wanted or not filter_when_short:  # enough, or the whole index
                return hits[:k]
            # Too few readable among them (the share was a guess): ask with the filter after all.
        where: dict[str, Any] = {"collection_id": {"$in": sorted(allowed)}}
        if document_ids is not None:
            if not document_ids:
                return []
            where = {"$and": [where, {"document_id": {"$in": [int(d) for d in document_ids]}}]}
        return self._search(embedding, k, where=where)

    def _search(self, embedding: npt.NDArray[np.float32], k: int, *, where: dict[str, Any] | None) -> list[VectorHit]:
        result = self._with_collection(lambda c: c.query(
            query_embeddings=[embedding], n_results=k, where=where, include=["metadatas", "distances"]
        ))
        hits = []
        for vector_id, distance, meta in zip(
            result["ids"][0], result["distances"][0], result["metadatas"][0], strict=True
        ):
            hits.append(VectorHit(vector_id=vector_id, similarity=1.0 - float(distance),
                                  document_id=int(meta["document_id"]), collection_id=int(meta["collection_id"])))
        return hits

    def reset(self) -> None:
        # An absent collection is fine: there is nothing to drop.
        with contextlib.suppress(Exception):
            self._client.delete_collection(self._name)
        self._collection = None
        self._coll()

    def count(self) -> int:
        return int(self._with_collection(lambda c: c.count()))

    def ping(self) -> bool:
        try:
            self._client.heartbeat()
        except Exception:
            return False
        return True
