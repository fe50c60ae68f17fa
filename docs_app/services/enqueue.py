"""The one place that queues work for the workers.

Tasks are sent by name through the Celery app (`workers.celery`, which imports nothing of the app), never by
importing `workers.tasks`: the tasks import the services, so a service importing the tasks would close an
import circle. The names below are checked against the registered tasks by tests/unit/test_architecture.py,
and queues come from CELERY_TASK_ROUTES, as for `.delay()`.

Every function queues after the current transaction commits: a worker must never look for a row that is not
there yet. Outside a transaction that is at once.

The database is the source of truth, the queue only a messenger: when Redis cannot be reached the row is kept
(the document stays "queued", the answer "pending"), nothing raises, and the reconciler
(services.reconcile) queues it once Redis is back. After a failed send, sends are skipped for a few seconds
rather than each waiting on a dead server: a folder of 2,000 files must not wait 2,000 times.

The ledger: for documents and answers, the ids whose message sits in Redis waiting for a worker, kept in Redis
beside the messages (so both survive or vanish together). A worker strikes an id off when it receives the
message. The reconciler queues unfinished work that is in no queue, and only that: a queue of 2,000 documents is
not doubled on every pass.
"""

from __future__ import annotations

import logging
import threading
import time

import kombu.exceptions
import redis
from django.db import transaction

from docs_app.services.streams import redis_client
from workers.celery import app

log = logging.getLogger(__name__)

DOCUMENT_INGEST = "workers.tasks.document_ingest_task"
VECTORS_DELETE = "workers.tasks.vectors_delete_task"
ERASURE_COMPACT = "workers.tasks.erasure_compact_task"
ANSWER_GENERATE = "workers.tasks.answer_generate_task"
TASK_NAMES = (DOCUMENT_INGEST, VECTORS_DELETE, ERASURE_COMPACT, ANSWER_GENERATE)

LEDGERS = {DOCUMENT_INGEST: "docs:queued:documents", ANSWER_GENERATE: "docs:queued:answers"}
QUEUE_ERRORS = (kombu.exceptions.OperationalError, redis.RedisError, OSError)
# After a failed send, later sends are skipped (the work waits for the reconciler) for this long.
SKIP_AFTER_FAILURE_S = 5.0

_lock = threading.Lock()
_down_until = 0.0


def _send(name: str, *args: int) -> None:
    transaction.on_commit(lambda: task_send(name, *args))


def task_send(name: str, *args: int) -> bool:
    """Send now; False (logged, never raised) when the queue is unreachable: the work waits for the reconciler."""
    global _down_until
    if queue_unreachable():
        return False
    try:
        app.send_task(name, args=list(args))
        # After the send, so a failed send leaves no entry. A worker on another host may receive the message and
        # strike the id off before this line runs, leaving the entry behind; the reconciler therefore trusts the
        # ledger only for documents no run has claimed (services.reconcile.documents_reconcile).
        if name in LEDGERS:
            redis_client().sadd(LEDGERS[name], args[0])
    except QUEUE_ERRORS as exc:
        with _lock:
            _down_until = time.monotonic() + SKIP_AFTER_FAILURE_S
        log.warning("the task queue is unreachable (%s): %s%s waits for the reconciler", exc, name, tuple(args))
        return False
    return True


def queue_unreachable() -> bool:
    """A send failed in this process moments ago: work recorded now waits for the reconciler."""
    return time.monotonic() < _down_until


def ledger_ids(name: str) -> set[int]:
    """Ids whose message is waiting in Redis for a worker (see the module docstring)."""
    return {int(member) for member in redis_client().smembers(LEDGERS[name])}


def ledger_strike(name: str, *ids: int) -> None:
    if ids:
        redis_client().srem(LEDGERS[name], *ids)


def document_ingest_enqueue(*, document_id: int) -> None:
    _send(DOCUMENT_INGEST, document_id)


def vectors_delete_enqueue(*, document_id: int) -> None:
    _send(VECTORS_DELETE, document_id)


def erasure_compact_enqueue() -> None:
    _send(ERASURE_COMPACT)


def answer_generate_enqueue(*, answer_id: int) -> None:
    _send(ANSWER_GENERATE, answer_id)
