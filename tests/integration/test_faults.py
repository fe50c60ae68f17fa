"""Faults the system must survive without losing, doubling or half-indexing a document, or leaving a question
without an answer or a "busy, try again": a worker process killed mid-ingest, Redis restarted (its data kept by
the append-only file, or lost), Redis down altogether, the Chroma server restarted mid-batch, drift between the
index and the database, a whole worker host lost. Real processes, real signals; the periodic reconciler
(`manage.py reconcile --loop`) runs beside the suite's worker as it runs beside the workers in production.

Every test ends with each of its documents READY (or FAILED with a reason), ingested once, its chunk rows and
its vectors in agreement, and check_index finding no drift."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings
from django.urls import reverse

from docs_app import registry
from docs_app.devservices import SUPERVISE, Services, kill_process
from docs_app.models import (
    Answer,
    AnswerStatus,
    AuditEvent,
    Chunk,
    Collection,
    Document,
    DocumentStatus,
    Grant,
    Role,
)
from docs_app.services.audit import Action
from docs_app.services.index import index_check
from docs_app.services.streams import lease_holder_pid, redis_client
from tests.conftest import worker_env
from tests.data import JOINT_VENTURE, JOINT_VENTURE_QUESTION, REPO, cuad, cuad_smallest, hostile
from tests.harness import ask, ingest, logged_in, make_user, stream_events, upload, wait_until

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

RUNNING = (DocumentStatus.EXTRACTING, DocumentStatus.EMBEDDING)
FINISHED_ANSWER = (AnswerStatus.DONE, AnswerStatus.ABSTAINED)
QUESTIONS = (JOINT_VENTURE_QUESTION, "Who may terminate the MightyCell joint venture agreement?")


def _start_reconciler(devservices: Services) -> subprocess.Popen[bytes]:
    """The periodic reconciler, as the Procfile runs it, at a test's pace: a pass every 2 s, the index every 10 s."""
    return devservices.start("reconciler", [str(SUPERVISE), sys.executable, "manage.py", "reconcile", "--loop",
                                            "--every", "2", "--index-every", "10"], env=worker_env())


@pytest.fixture
def reconciler(services: None, devservices: Services) -> Iterator[None]:
    proc = _start_reconciler(devservices)
    yield
    devservices.stop(proc)


def _active_ingest_pid(document_id: int) -> int | None:
    from workers.celery import app

    for tasks in (app.control.inspect(timeout=1.0).active() or {}).values():
        for task in tasks:
            if task["name"].endswith("document_ingest_task") and document_id in (task.get("args") or []):
                return int(task["worker_pid"])
    return None


def _asker_and_matter(name: str) -> tuple[Collection, Client]:
    user = make_user(name)
    collection = Collection.objects.create(name=f"Matter {name}")
    Grant.objects.create(collection=collection, user=user, role=Role.CONTRIBUTOR)
    return collection, logged_in(user)


def _wait_finished(document_ids: Sequence[int], answer_ids: Sequence[int] = (), *, timeout_s: float = 240) -> None:
    wait_until(lambda: not Document.objects.filter(pk__in=document_ids).exclude(
        status__in=[DocumentStatus.READY, DocumentStatus.FAILED]).exists() and not Answer.objects.filter(
        pk__in=answer_ids, status__in=[AnswerStatus.PENDING, AnswerStatus.STREAMING]).exists(),
        timeout_s=timeout_s, what="every document and answer to finish")


def _assert_each_ready_once_and_indexed(document_ids: list[int]) -> None:
    """READY, ingested exactly once (one "ready" record in the audit log), chunk rows == vectors."""
    store = registry.vector_store()
    documents = list(Document.objects.filter(pk__in=document_ids))
    assert len(documents) == len(set(document_ids))  # none missing
    for document in documents:
        assert document.status == DocumentStatus.READY, (document.pk, document.error)
        assert not document.run_owner
        ready_records = AuditEvent.objects.filter(action=Action.INGEST, document_id_ref=document.pk, outcome="ready")
        assert ready_records.count() == 1, f"document {document.pk} was finished {ready_records.count()} times"
        chunks = {chunk.vector_id for chunk in Chunk.objects.filter(document=document).select_related("document")}
        assert chunks
        stored = store._coll().get(where={"document_id": document.pk}, include=[])  # type: ignore[attr-defined]
        assert set(stored["ids"]) == chunks, f"document {document.pk}: Chroma and the DB disagree"


def _assert_index_agrees() -> None:
    # Rows of earlier tests were flushed, their vectors were not: the repair deletes them as orphans first.
    index_check(repair=True)
    report = index_check(repair=False)
    assert not report.drift, report.summary()


def _answers_finished(answer_ids: list[int]) -> None:
    for answer in Answer.objects.filter(pk__in=answer_ids):
        assert answer.status in FINISHED_ANSWER, (answer.pk, answer.status, answer.error)


def test_a_worker_process_killed_mid_ingest_loses_nothing(services: None) -> None:
    collection = Collection.objects.create(name="Faults")
    document_id = upload(collection, hostile("gen__3000_pages.pdf"))  # long enough to be caught in the middle

    wait_until(lambda: Document.objects.get(pk=document_id).status in RUNNING,
               timeout_s=120, every_s=0.1, what="ingestion to start")
    pid: int | None = None

    def found() -> bool:
        nonlocal pid
        pid = _active_ingest_pid(document_id)
        return pid is not None

    wait_until(found, timeout_s=60, every_s=0.2, what="the task to show up as active")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # as the kernel's OOM killer would

    # acks_late + reject_on_worker_lost: the message goes back to the queue, and the next run takes the claim of
    # the dead process over at once (same host, process gone).
    wait_until(lambda: Document.objects.get(pk=document_id).is_terminal, timeout_s=600, what="recovery")
    document = Document.objects.get(pk=document_id)
    assert document.status == DocumentStatus.READY, document.error
    assert document.attempts >= 2
    _assert_each_ready_once_and_indexed([document_id])


def _children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_worker_that_dies_unasked_is_started_again_and_takes_new_work(services: None,
                                                                        devservices: Services) -> None:
    # Celery's main process itself can die (kombu ends it with "Unrecoverable error" when Redis drops while it
    # acknowledges a task; the kernel's OOM killer). Under scripts/supervise.sh, as the Procfile runs it, it comes
    # back; before, the Procfile's honcho stopped the whole app when one process exited.
    from tests.conftest import LOG_DIR, wait_for_worker

    supervisor = devservices.find("worker-suite")
    [worker] = _children(supervisor.pid)
    os.kill(worker, signal.SIGKILL)
    wait_until(lambda: any(child != worker for child in _children(supervisor.pid)), timeout_s=30,
               what="the worker to be started again")
    wait_for_worker("suite")
    assert supervisor.poll() is None
    assert "exited with status 137; starting it again" in (LOG_DIR / "worker-suite.log").read_text()

    document = ingest(Collection.objects.create(name="After a crash"), cuad(JOINT_VENTURE))
    assert document.status == DocumentStatus.READY


@pytest.mark.parametrize("data", ["kept", "lost"])
def test_redis_restarted_with_tasks_queued_and_running_loses_nothing(services: None, reconciler: None,
                                                                      devservices: Services, data: str) -> None:
    """SIGKILL, then start again on the same port and files. "kept": the append-only file (fsync every second)
    replays the queues; "lost": Redis comes back empty (no persistence, a lost disk), and the reconciler queues
    again what the database says is unfinished."""
    collection, client = _asker_and_matter(f"redis-{data}")
    ingest(collection, cuad(JOINT_VENTURE))
    document_ids = [upload(collection, path) for path in cuad_smallest(6)]
    answer_ids = [ask(client, question)["answer_id"] for question in QUESTIONS]
    wait_until(lambda: Document.objects.filter(pk__in=document_ids, status__in=RUNNING).exists(), every_s=0.05,
               timeout_s=120, what="ingestion to start")
    assert Document.objects.filter(pk__in=document_ids, status=DocumentStatus.QUEUED).exists()

    if data == "lost":
        redis_client().flushall()  # written to the append-only file: the restarted server starts empty
    devservices.restart(devservices.find("redis"), kill=True, down_s=2)

    _wait_finished(document_ids, answer_ids)
    _assert_each_ready_once_and_indexed(document_ids)
    _answers_finished(answer_ids)
    _assert_index_agrees()


def test_with_redis_down_uploads_and_questions_are_kept_and_done_when_it_is_back(
        services: None, reconciler: None, devservices: Services, tmp_path: Path) -> None:
    collection, client = _asker_and_matter("no-redis")
    ingest(collection, cuad(JOINT_VENTURE))
    redis = devservices.find("redis")
    kill_process(redis)
    try:
        # As a new user would: bulk import a folder with no Redis listening.
        folder = tmp_path / "referrals"
        folder.mkdir()
        for path in cuad_smallest(3):
            shutil.copy(path, folder / path.name)
        started = time.monotonic()
        imported = subprocess.run([sys.executable, "manage.py", "import_folder", str(folder), "--collection",
                                   "Referrals"], env=worker_env(), cwd=REPO, capture_output=True, text=True,
                                  timeout=300, check=False)
        assert imported.returncode == 0, imported.stdout + imported.stderr
        assert "Traceback" not in imported.stderr
        assert "imported 3" in imported.stdout and "3 of the imported files wait for the task queue" in \
            imported.stdout, imported.stdout
        assert time.monotonic() - started < 120  # no long wait on a dead server per file
        imported_ids = list(Document.objects.filter(collection__name="Referrals").values_list("pk", flat=True))
        assert len(imported_ids) == 3
        assert set(Document.objects.filter(pk__in=imported_ids).values_list("status", flat=True)) == {"queued"}

        # The web upload: stored, and the person is told that processing waits for the queue.
        with cuad_smallest(1, skip=3)[0].open("rb") as source:
            response = client.post(reverse("upload", args=[collection.pk]), {"files": [source]},
                                   HTTP_ACCEPT="application/json")
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["queue_waiting"] and body["outcomes"][0]["status"] == "queued"
        uploaded_id = body["outcomes"][0]["document_id"]
        with cuad_smallest(1, skip=4)[0].open("rb") as source:
            page = client.post(reverse("upload", args=[collection.pk]), {"files": [source]})
        assert page.status_code == 200 and 'id="queue-waiting"' in page.content.decode()

        # Asking: the question is kept; its stream says the queue is unreachable instead of failing.
        asked = client.post(reverse("ask"), {"question": JOINT_VENTURE_QUESTION}, HTTP_ACCEPT="application/json")
        assert asked.status_code == 201, asked.content
        assert asked.json()["queue_down"] is True
        with override_settings(ANSWER_STREAM_MAX_S=3):
            events = stream_events(client, asked.json()["stream_url"], queued=True)
        assert events and events[0].event == "queued" and json.loads(events[0].data)["queue_down"] is True
        for url in (reverse("library"), reverse("collection", args=[collection.pk]), asked.json()["conversation_url"]):
            assert client.get(url).status_code == 200, url
    finally:
        devservices.restart(redis, kill=True)

    # Redis is back: the reconciler queues what waited, the worker does it.
    waited = [*imported_ids, uploaded_id]
    _wait_finished(waited, [asked.json()["answer_id"]])
    _assert_each_ready_once_and_indexed(waited)
    _answers_finished([asked.json()["answer_id"]])
    _assert_index_agrees()


def test_chroma_restarted_mid_batch_every_document_ends_ready_and_indexed(services: None, reconciler: None,
                                                                          devservices: Services) -> None:
    collection = Collection.objects.create(name="Chroma restart")
    document_ids = [upload(collection, path) for path in cuad_smallest(6, skip=5)]
    wait_until(lambda: Document.objects.filter(pk__in=document_ids, status=DocumentStatus.EMBEDDING).exists(),
               every_s=0.05, timeout_s=120, what="a document to reach the embedding step")

    devservices.restart(devservices.find("chroma"), kill=True, down_s=3)

    # The vector writes wait for the server with backoff (no attempt is spent on it) and every document finishes.
    _wait_finished(document_ids)
    for document in Document.objects.filter(pk__in=document_ids):
        assert document.status == DocumentStatus.READY, document.error
    _assert_index_agrees()
    _assert_each_ready_once_and_indexed(document_ids)


def test_check_index_reports_drift_and_the_reconciler_repairs_it(services: None, devservices: Services,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    collection = Collection.objects.create(name="Drift")
    document = ingest(collection, cuad_smallest(1, skip=11)[0])
    _assert_index_agrees()  # leftovers of earlier tests out of the way
    store = registry.vector_store()
    vector_ids = sorted(chunk.vector_id for chunk in document.chunks.select_related("document"))
    stray = [f"{document.pk}:{document.version + 7}:0", "987654:0:0"]  # an old version, an erased document
    embedding = registry.embedder().embed(["stray"])
    store.delete_ids(ids=vector_ids[:2])  # vectors lost (a Chroma restart that lost writes)
    store.upsert(ids=stray, embeddings=embedding.repeat(2, axis=0),
                 metadatas=[{"document_id": int(v.split(":")[0]), "collection_id": collection.pk, "page": 1,
                             "ordinal": 0} for v in stray])

    with pytest.raises(SystemExit) as exited:
        call_command("check_index", "--dry-run")
    assert exited.value.code == 1
    out = capsys.readouterr().out
    assert "missing 2, orphans 2" in out, out

    # The reconciler's periodic index check repairs it: missing vectors from the DB, orphans deleted.
    reconciler = _start_reconciler(devservices)
    try:
        wait_until(lambda: not index_check(repair=False).drift, timeout_s=90, what="the reconciler to repair it")
    finally:
        devservices.stop(reconciler)
    assert set(store.ids()) >= set(vector_ids) and not set(stray) & set(store.ids())
    repair = AuditEvent.objects.filter(action=Action.INDEX_REPAIR).last()
    assert repair is not None and repair.details == {"missing": 2, "orphans": 2}
    _assert_each_ready_once_and_indexed([document.pk])


def test_a_lost_worker_host_has_its_documents_and_answers_taken_over(services: None, reconciler: None,
                                                                     devservices: Services) -> None:
    """Another host's worker (its own host name in every claim, so nothing is taken over by "its process is
    gone") dies whole: main process and children SIGKILLed at once, no message handed back. Its messages sit in
    Redis until the visibility timeout (an hour); the claims' heartbeats and leases lapse within seconds
    (WORK_STALE_S, ANSWER_LEASE_S) and the reconciler hands the work to the surviving worker."""
    from workers.celery import app

    collection, client = _asker_and_matter("host-lost")
    ingest(collection, cuad(JOINT_VENTURE))
    suite = [name for reply in app.control.ping(timeout=1.0) for name in reply if name.startswith("suite@")]
    env = {**worker_env(), "DOCS_HOST_ID": "lost-host", "DOCS_LLM_MAX_ANSWER_TOKENS": "200"}
    lost = devservices.worker("lost-host", env=env)
    for queue in ("ingest", "answer"):  # the surviving worker steps aside so the lost host takes the work
        app.control.cancel_consumer(queue, destination=suite, reply=True)
    try:
        from tests.conftest import wait_for_worker

        wait_for_worker("lost-host")
        document_ids = [upload(collection, path) for path in cuad_smallest(3, skip=17)]
        answer_id = ask(client, QUESTIONS[0])["answer_id"]

        def lost_host_busy() -> bool:
            owners = list(Document.objects.filter(pk__in=document_ids).values_list("run_owner", flat=True))
            return any(owner.startswith("lost-host:") for owner in owners) and lease_holder_pid(answer_id) is not None \
                and Answer.objects.get(pk=answer_id).status == AnswerStatus.STREAMING

        wait_until(lost_host_busy, timeout_s=180, every_s=0.05, what="the other host to be ingesting and answering")
        kill_process(lost)
        killed_at = time.monotonic()
        assert Answer.objects.get(pk=answer_id).status == AnswerStatus.STREAMING
    finally:
        for queue in ("ingest", "answer"):
            app.control.add_consumer(queue, destination=suite, reply=True)
        devservices.stop(lost)

    _wait_finished(document_ids, [answer_id], timeout_s=240)
    taken_over_s = time.monotonic() - killed_at
    _assert_each_ready_once_and_indexed(document_ids)
    _answers_finished([answer_id])
    assert Answer.objects.get(pk=answer_id).attempts == 2  # the lost run, and the one that took over
    # Bounded: the claims lapse after WORK_STALE_S / ANSWER_LEASE_S, then a reconciler pass and the work itself.
    assert taken_over_s < settings.WORK_STALE_S + 180, taken_over_s
    _assert_index_agrees()
