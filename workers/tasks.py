"""Thin tasks: take IDs, call one service, own the retry policy."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celery import Task

from docs_app.services.streams import LEASE_S, AnswerBusy
from workers.celery import app

log = logging.getLogger(__name__)

# acks_late + reject_on_worker_lost: a worker killed mid-task hands the message back instead of losing it.
# The Document.attempts counter (not Celery's retry count, which a killed worker never increments) stops a
# poison document from looping.
_RELIABLE: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True}


if TYPE_CHECKING:
    _TaskBase = Task[Any, Any]
else:
    _TaskBase = Task


class IngestTask(_TaskBase):
    def on_failure(self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        # Retries exhausted on an unexpected error: the document fails with the reason, it does not vanish.
        from docs_app.services.ingest import document_fail

        document_id = kwargs.get("document_id", args[0] if args else None)
        if document_id is not None:
            document_fail(document_id=document_id, reason=f"internal error: {type(exc).__name__}: {exc}"[:500])


@app.task(base=IngestTask, autoretry_for=(Exception,), retry_backoff=2, retry_backoff_max=60,
          max_retries=4, **_RELIABLE)
def document_ingest_task(document_id: int) -> None:
    from docs_app.services.ingest import document_ingest

    document_ingest(document_id=document_id)


@app.task(autoretry_for=(Exception,), retry_backoff=2, retry_backoff_max=300, max_retries=10,
          **_RELIABLE)
def vectors_delete_task(document_id: int) -> None:
    from docs_app import registry

    registry.vector_store().delete_document(document_id=document_id)


@app.task(autoretry_for=(Exception,), retry_backoff=2, retry_backoff_max=60, max_retries=5,
          **_RELIABLE)
def keyword_index_compact_task() -> None:
    from docs_app.services.index import keyword_index_compact

    keyword_index_compact()


# AnswerBusy: another run holds the answer's lease. Retry until that lease can have lapsed (a dead run's does).
@app.task(queue="answer", autoretry_for=(AnswerBusy,), default_retry_delay=LEASE_S // 2, max_retries=10,
          **_RELIABLE)
def answer_generate_task(answer_id: int) -> None:
    from docs_app.services.answering import answer_generate

    answer_generate(answer_id=answer_id)
