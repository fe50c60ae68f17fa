"""Vector queries for wide readers: an unfiltered search with over-fetch, filtered by collection in the adapter,
falls back to Chroma's own filter when the share it was told was wrong, unless the caller completes the list
itself (then any reader is searched unfiltered). And the store client a worker builds at start. Real Chroma
server."""

from __future__ import annotations

import numpy as np
import pytest
from django.conf import settings

from docs_app import registry
from docs_app.adapters.vectorstore import ChromaVectorStore
from docs_app.services.index import vector_store_prepare


@pytest.fixture
def store(chroma_server: int) -> ChromaVectorStore:
    store = ChromaVectorStore(host="127.0.0.1", port=settings.CHROMA_PORT, collection_name="test-wide-readers")
    store.reset()
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    # Collection 1 holds 10 vectors of 300, the rest are in collection 2.
    store.upsert(ids=[f"{i}:1:0" for i in range(300)], embeddings=vectors,
                 metadatas=[{"document_id": i, "collection_id": 1 if i < 10 else 2, "page": 1, "ordinal": 0}
                            for i in range(300)])
    return store


def test_only_readable_collections_come_back_whatever_the_share_hint(store: ChromaVectorStore) -> None:
    probe = np.ones(16, dtype=np.float32) / 4.0
    exact = store.query(embedding=probe, k=5, collection_ids=[1])
    assert len(exact) == 5 and {h.collection_id for h in exact} == {1}
    for hint in (None, 0.01, 0.5, 1.0):  # 1.0 and 0.5 are wrong here: the adapter must notice
        hits = store.query(embedding=probe, k=5, collection_ids=[1], readable_share=hint)
        assert [h.vector_id for h in hits] == [h.vector_id for h in exact], hint
    everything = store.query(embedding=probe, k=20, collection_ids=[1, 2], readable_share=1.0)
    assert len(everything) == 20
    sims = [h.similarity for h in everything]
    assert sims == sorted(sims, reverse=True)


def test_a_short_unfiltered_search_is_returned_as_found_when_the_caller_completes_it(
        store: ChromaVectorStore) -> None:
    probe = np.ones(16, dtype=np.float32) / 4.0
    exact = store.query(embedding=probe, k=10, collection_ids=[1])
    # Told that collection 1 is half the index, the store searches 2 x 1.5 x 5 = 15 neighbours unfiltered: few or
    # none of them are collection 1's. Those found are the nearest of collection 1, in order.
    short = store.query(embedding=probe, k=5, collection_ids=[1], readable_share=0.5, filter_when_short=False)
    assert len(short) < 5
    assert [h.vector_id for h in short] == [h.vector_id for h in exact[:len(short)]]


def test_a_narrow_reader_is_searched_unfiltered_only_when_the_caller_completes_the_list(
        store: ChromaVectorStore, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = np.ones(16, dtype=np.float32) / 4.0
    exact = store.query(embedding=probe, k=5, collection_ids=[1])
    searched: list[object] = []
    real_search = store._search

    def recording(embedding: np.ndarray, k: int, *, where: object) -> list:  # type: ignore[type-arg]
        searched.append(where)
        return real_search(embedding, k, where=where)

    monkeypatch.setattr(store, "_search", recording)
    # Collection 1 is 10 of 300 vectors (3%), under the share that is searched unfiltered by default.
    filtered = store.query(embedding=probe, k=5, collection_ids=[1], readable_share=10 / 300)
    assert searched == [{"collection_id": {"$in": [1]}}]
    assert [h.vector_id for h in filtered] == [h.vector_id for h in exact]
    searched.clear()
    completed = store.query(embedding=probe, k=5, collection_ids=[1], readable_share=10 / 300,
                            filter_when_short=False)
    assert searched == [None]  # one unfiltered search, no filtered one after it
    assert [h.vector_id for h in completed] == [h.vector_id for h in exact[:len(completed)]]


def test_a_worker_builds_its_store_client_at_start_and_an_unreachable_store_does_not_stop_it(
        chroma_server: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    registry._vector_store.cache_clear()
    vector_store_prepare()
    assert registry._vector_store.cache_info().currsize == 1  # the first task finds it built

    def unreachable() -> ChromaVectorStore:
        raise ConnectionError("no route to host")

    monkeypatch.setattr(registry, "vector_store", unreachable)
    vector_store_prepare()  # logs, does not raise: the task that needs the store waits for it
    assert "could not be built at start" in caplog.text
