"""The reconciler: the database says what is unfinished; Redis only carries messages. A pass queues again the
work that is unfinished and that no queue holds and no live run is doing, takes over answers whose run died,
refuses answers that waited too long, and (every INDEX_CHECK_EVERY_S) compares the vector index with the DB.

It runs every RECONCILE_EVERY_S in its own process (`manage.py reconcile --loop`, the Procfile's `reconciler`)
and once when a worker starts. Several may run on several hosts: a pass holds a Redis lock, and every step is
idempotent anyway (a document queued twice is ingested once: services.ingest claims it).

What counts as unfinished and stale:
- a document QUEUED for longer than RECONCILE_GRACE_S whose message is not waiting in Redis (services.enqueue's
  ledger): the message was lost with Redis, never sent (Redis was down), or taken by a worker that died before
  starting it;
- a document being ingested (EXTRACTING, EMBEDDING) whose run is dead: its process is gone (this host) or its
  heartbeat is older than WORK_STALE_S (a lost host);
- an answer PENDING for longer than RECONCILE_GRACE_S whose message is not waiting in Redis;
- an answer STREAMING whose run's lease is gone (lapsed ANSWER_LEASE_S after the run's host died, or its
  process is gone on this host): queued again if it has runs left, failed with the reason if not;
- an answer PENDING for longer than ANSWER_WAIT_MAX_S: refused with "busy, try again".
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.conf import settings
from django.utils import timezone

from docs_app import registry
from docs_app.models import Answer, AnswerStatus, Document, DocumentStatus
from docs_app.services.answering import CRASHED_TEXT, WAITED_TEXT, answer_fail
from docs_app.services.enqueue import (
    ANSWER_GENERATE,
    DOCUMENT_INGEST,
    QUEUE_ERRORS,
    ledger_ids,
    ledger_strike,
    task_send,
)
from docs_app.services.index import IndexReport, index_check
from docs_app.services.ingest import run_is_stale
from docs_app.services.liveness import run_dead_here, run_identity
from docs_app.services.streams import answer_lease_live, redis_client
from docs_app.storage import spool_sweep

log = logging.getLogger(__name__)

LOCK_KEY = "docs:reconcile:lock"
LOCK_S = 900
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


@dataclass
class ReconcileReport:
    documents_queued: int = 0
    answers_queued: int = 0
    answers_taken_over: int = 0
    answers_failed: int = 0
    answers_refused: int = 0
    index: IndexReport | None = None
    skipped: str = ""

    @property
    def idle(self) -> bool:
        """Nothing was found to do (and no index check ran)."""
        return not (self.skipped or self.index or self.documents_queued or self.answers_queued
                    or self.answers_taken_over or self.answers_failed or self.answers_refused)

    def summary(self) -> str:
        if self.skipped:
            return f"skipped: {self.skipped}"
        text = (f"queued again {self.documents_queued} documents and {self.answers_queued} answers; "
                f"took over {self.answers_taken_over} answers, failed {self.answers_failed} out of runs, "
                f"refused {self.answers_refused} that waited too long")
        if self.index is not None:
            text += f"; index: {self.index.summary()}"
        return text


def reconcile(*, check_index: bool = False) -> ReconcileReport:
    """One pass. With Redis unreachable nothing can be queued: the pass is skipped (and says so)."""
    report = ReconcileReport()
    # Host-local, so outside the lock: copies of originals that killed processes of this host left in its spool.
    swept = spool_sweep()
    if swept:
        log.info("reconciler: removed %s temporary copies left by processes that are gone", swept)
    token = run_identity()
    try:
        _lock_free_if_stale(token)
        if not redis_client().set(LOCK_KEY, token, nx=True, ex=LOCK_S):
            report.skipped = "another reconciler is in a pass"
            return report
    except QUEUE_ERRORS as exc:
        report.skipped = f"the task queue (Redis) is unreachable: {exc}"
        return report
    try:
        documents_reconcile(report)
        answers_reconcile(report)
        if check_index:
            # Not while Chroma is down: the check would wait out the store's retry window on every pass.
            if registry.vector_store().ping():
                report.index = index_check(repair=True)
            else:
                log.warning("reconciler: the vector store does not answer; the index check waits for a later pass")
    except QUEUE_ERRORS as exc:
        report.skipped = f"the task queue (Redis) became unreachable during the pass: {exc}"
    finally:
        with contextlib.suppress(redis.RedisError):
            redis_client().eval(_RELEASE, 1, LOCK_KEY, token)
    return report


def _lock_free_if_stale(token: str) -> None:
    """A lock whose holder is this very process (not in a pass now: passes run one at a time) or a process of this
    host that is gone is stale: a pass that died with Redis could not release it, and Redis restarted from its
    append-only file brings it back for the rest of LOCK_S. Freed at once (compare-and-delete), not waited out."""
    holder = redis_client().get(LOCK_KEY)
    if holder is None:
        return
    held = holder.decode() if isinstance(holder, bytes) else str(holder)
    own = held.rsplit(":", 1)[0] == token.rsplit(":", 1)[0]
    if own or run_dead_here(held):
        log.warning("reconciler: freeing the stale lock of %s", held)
        redis_client().eval(_RELEASE, 1, LOCK_KEY, held)


def documents_reconcile(report: ReconcileReport) -> None:
    now = timezone.now()
    grace_before = now - timedelta(seconds=settings.RECONCILE_GRACE_S)
    waiting = ledger_ids(DOCUMENT_INGEST)
    unfinished = Document.objects.exclude(status__in=[DocumentStatus.READY, DocumentStatus.FAILED]).values_list(
        "pk", "status", "updated_at", "run_owner", "heartbeat_at")
    due: list[int] = []
    open_ids: set[int] = set()
    for pk, status, updated_at, owner, heartbeat_at in unfinished:
        open_ids.add(pk)
        # A claim proves a worker took the message, whatever the ledger says: such a document is judged by its
        # run alone (queuing one twice costs nothing, services.ingest claims it once).
        if pk in waiting and not owner:
            continue
        if status == DocumentStatus.QUEUED and not owner:
            if updated_at < grace_before:
                due.append(pk)
        elif run_is_stale(owner=owner, heartbeat_at=heartbeat_at, now=now):
            if owner:
                # Let go of the dead run's claim (only if it is still that run's): the message queued now is then
                # what the ledger answers for, and later passes do not queue the document again meanwhile.
                Document.objects.filter(pk=pk, run_owner=owner).update(run_owner="")
            due.append(pk)
    ledger_strike(DOCUMENT_INGEST, *(waiting - open_ids))  # finished or erased meanwhile
    for pk in due:
        if not task_send(DOCUMENT_INGEST, pk):
            raise redis.ConnectionError("the task queue went away")
        report.documents_queued += 1
    if due:
        log.warning("reconciler: queued again %d unfinished documents that no queue held: %s", len(due), due[:50])


def answers_reconcile(report: ReconcileReport) -> None:
    now = timezone.now()
    grace_before = now - timedelta(seconds=settings.RECONCILE_GRACE_S)
    refuse_before = now - timedelta(seconds=settings.ANSWER_WAIT_MAX_S)
    waiting = ledger_ids(ANSWER_GENERATE)
    open_answers = list(Answer.objects.select_related("question__asked_by")
                        .filter(status__in=[AnswerStatus.PENDING, AnswerStatus.STREAMING]).order_by("pk"))
    for answer in open_answers:
        if answer.status == AnswerStatus.PENDING:
            if answer.created_at < refuse_before:
                answer_fail(answer=answer, message=WAITED_TEXT.format(minutes=settings.ANSWER_WAIT_MAX_S // 60))
                report.answers_refused += 1
            elif answer.pk not in waiting and answer.created_at < grace_before:
                _send_answer(answer.pk)
                report.answers_queued += 1
        elif not answer_lease_live(answer_id=answer.pk):
            # Its run died (a lost host, a killed process) and nothing took it over yet.
            if answer.attempts >= settings.ANSWER_MAX_RUNS:
                answer_fail(answer=answer, message=CRASHED_TEXT.format(runs=answer.attempts))
                report.answers_failed += 1
            elif Answer.objects.filter(pk=answer.pk, status=AnswerStatus.STREAMING).update(
                    status=AnswerStatus.PENDING):
                if answer.pk not in waiting:
                    _send_answer(answer.pk)
                report.answers_taken_over += 1
    ledger_strike(ANSWER_GENERATE, *(waiting - {answer.pk for answer in open_answers}))
    if report.answers_taken_over or report.answers_queued:
        log.warning("reconciler: took over %d answers and queued %d that no queue held",
                    report.answers_taken_over, report.answers_queued)


def _send_answer(answer_id: int) -> None:
    if not task_send(ANSWER_GENERATE, answer_id):
        raise redis.ConnectionError("the task queue went away")
