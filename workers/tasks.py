"""Thin tasks: take IDs, call one service, own the retry policy.

This module sits above the services: it imports them, and they never import it (they queue tasks by name
through docs_app.services.enqueue), so the import graph has no circle.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from celery import Task
from celery.signals import celeryd_after_setup, task_received, worker_process_init, worker_ready
from django.conf import settings
from django.db import DatabaseError

from docs_app import registry
from docs_app.services.answering import answer_generate, answer_model_preload
from docs_app.services.enqueue import LEDGERS, ledger_strike
from docs_app.services.index import erasure_compact, vector_store_prepare
from docs_app.services.ingest import document_fail, document_ingest
from docs_app.services.model_status import answer_runtime_prepare, embedder_prepare, embedder_threads_share
from docs_app.services.reconcile import reconcile
from docs_app.services.streams import AnswerBusy
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
        document_id = kwargs.get("document_id", args[0] if args else None)
        if document_id is not None:
            document_fail(document_id=document_id, reason=f"internal error: {type(exc).__name__}: {exc}"[:500])


@app.task(base=IngestTask, autoretry_for=(Exception,), retry_backoff=2, retry_backoff_max=60,
          max_retries=4, **_RELIABLE)
def document_ingest_task(document_id: int) -> None:
    document_ingest(document_id=document_id)


@app.task(autoretry_for=(Exception,), retry_backoff=2, retry_backoff_max=300, max_retries=10,
          **_RELIABLE)
def vectors_delete_task(document_id: int) -> None:
    registry.vector_store().delete_document(document_id=document_id)


@app.task(autoretry_for=(Exception,), retry_backoff=2, retry_backoff_max=60, max_retries=5,
          **_RELIABLE)
def erasure_compact_task() -> None:
    erasure_compact()


# AnswerBusy: another run holds the answer's lease. Retry until that lease can have lapsed (a dead run's does).
@app.task(queue="answer", autoretry_for=(AnswerBusy,), default_retry_delay=settings.ANSWER_LEASE_S // 2,
          max_retries=10, **_RELIABLE)
def answer_generate_task(answer_id: int) -> None:
    answer_generate(answer_id=answer_id)


# --- The worker's start-up: signal handlers live here, beside the tasks, because they call services ---------

# Set in the worker's main process before its pool processes fork, read in each of them.
_answers_here = False


def _consumed_queues(worker: Any) -> set[str]:
    return {queue.name for queue in worker.app.amqp.queues.consume_from.values()} if worker else set()


@celeryd_after_setup.connect
def _prove_answer_model(sender: Any = None, instance: Any = None, **kwargs: Any) -> None:
    # Before the pool starts: prove in a child process that the model generates on this CPU and which
    # llama.cpp backend does it. The choice reaches the pool processes through the environment; a failure
    # is one log line and a red state on /status/, and every answer then fails with the reason.
    global _answers_here
    embedder_threads_share(processes=int(getattr(instance, "concurrency", 0) or 1))
    if "answer" in _consumed_queues(instance):
        _answers_here = True
        answer_runtime_prepare()


@worker_process_init.connect
def _preload_models(**kwargs: Any) -> None:
    # In threads: the pool process must report ready within seconds; loading a model and proving the
    # embedder's precision take longer. Both queues embed (passages, questions) and search or write the vector
    # store, whose client is built after the embedder's probe so that it does not disturb the probe's timing.
    threading.Thread(target=_embedder_and_store_prepare, name="embedder-preload", daemon=True).start()
    if _answers_here:
        threading.Thread(target=answer_model_preload, name="model-preload", daemon=True).start()


def _embedder_and_store_prepare() -> None:
    embedder_prepare()
    vector_store_prepare()


@worker_ready.connect
def _reconcile_at_start(sender: Any = None, **kwargs: Any) -> None:
    # A worker coming up (after a crash, a reboot, a lost Redis) does not wait for the periodic reconciler:
    # work the database says is unfinished and no queue holds is queued again, runs that died here are taken
    # over (services.reconcile).
    try:
        log.info("reconciler at worker start: %s", reconcile().summary())
    except DatabaseError as exc:  # no tables yet (a database never migrated) or one that is down: one line
        log.warning("the reconciler's pass at worker start could not read the database (%s: %s); the reconciler's "
                    "periodic pass tries again", type(exc).__name__, str(exc)[:200])
    except Exception:
        log.exception("the reconciler's pass at worker start failed")


@task_received.connect
def _strike_off_the_ledger(request: Any = None, **kwargs: Any) -> None:
    # The message left Redis for this worker: from now on the run's claim (or, if this worker dies first, the
    # reconciler) answers for the work, not the queue (services.enqueue's ledger).
    name = getattr(request, "name", "")
    args = getattr(request, "args", None) or []
    if name in LEDGERS and args:
        try:
            ledger_strike(name, int(args[0]))
        except Exception:  # the reconciler queues the work again at worst: a duplicate, never a loss
            log.warning("could not strike %s%s off the ledger", name, tuple(args), exc_info=True)
