"""Faults the ingestion must survive without losing or half-indexing a document."""

from __future__ import annotations

import os
import signal

import pytest

from docs_app import registry
from docs_app.models import Chunk, Collection, Document, DocumentStatus
from tests.data import hostile
from tests.harness import upload, wait_until

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def _active_ingest_pid(document_id: int) -> int | None:
    from workers.celery import app

    for tasks in (app.control.inspect(timeout=1.0).active() or {}).values():
        for task in tasks:
            if task["name"].endswith("document_ingest_task") and document_id in (task.get("args") or []):
                return int(task["worker_pid"])
    return None


def test_a_worker_process_killed_mid_ingest_loses_nothing(services: None) -> None:
    collection = Collection.objects.create(name="Faults")
    document_id = upload(collection, hostile("gen__3000_pages.pdf"))  # long enough to be caught in the middle

    wait_until(lambda: Document.objects.get(pk=document_id).status in {DocumentStatus.EXTRACTING,
                                                                         DocumentStatus.EMBEDDING},
               timeout_s=120, every_s=0.1, what="ingestion to start")
    pid: int | None = None

    def found() -> bool:
        nonlocal pid
        pid = _active_ingest_pid(document_id)
        return pid is not None

    wait_until(found, timeout_s=60, every_s=0.2, what="the task to show up as active")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would

    # acks_late + reject_on_worker_lost: the message goes back to the queue and a fresh process finishes it.
    wait_until(lambda: Document.objects.get(pk=document_id).is_terminal, timeout_s=600, what="recovery")
    document = Document.objects.get(pk=document_id)
    assert document.status == DocumentStatus.READY, document.error
    assert document.attempts >= 2
    chunks = Chunk.objects.filter(document=document)
    assert chunks.count() == len({c.vector_id for c in chunks})
    stored = registry.vector_store()._coll().get(where={"document_id": document_id}, include=[])  # type: ignore[attr-defined]
    assert set(stored["ids"]) == {c.vector_id for c in chunks}
