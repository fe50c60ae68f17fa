"""The one place that queues work for the workers.

Tasks are sent by name through the Celery app (`workers.celery`, which imports nothing of the app), never by
importing `workers.tasks`: the tasks import the services, so a service importing the tasks would close an
import circle. The names below are checked against the registered tasks by tests/unit/test_architecture.py,
and queues come from CELERY_TASK_ROUTES, as for `.delay()`.

Every function queues after the current transaction commits: a worker must never look for a row that is not
there yet. Outside a transaction that is at once.
"""

from __future__ import annotations

from django.db import transaction

from workers.celery import app

DOCUMENT_INGEST = "workers.tasks.document_ingest_task"
VECTORS_DELETE = "workers.tasks.vectors_delete_task"
ERASURE_COMPACT = "workers.tasks.erasure_compact_task"
ANSWER_GENERATE = "workers.tasks.answer_generate_task"
TASK_NAMES = (DOCUMENT_INGEST, VECTORS_DELETE, ERASURE_COMPACT, ANSWER_GENERATE)


def _send(name: str, *args: int) -> None:
    transaction.on_commit(lambda: app.send_task(name, args=list(args)))


def document_ingest_enqueue(*, document_id: int) -> None:
    _send(DOCUMENT_INGEST, document_id)


def vectors_delete_enqueue(*, document_id: int) -> None:
    _send(VECTORS_DELETE, document_id)


def erasure_compact_enqueue() -> None:
    _send(ERASURE_COMPACT)


def answer_generate_enqueue(*, answer_id: int) -> None:
    _send(ANSWER_GENERATE, answer_id)
