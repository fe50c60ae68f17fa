import os
import threading
from typing import Any

from celery import Celery
from celery.signals import celeryd_after_setup, worker_process_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docs_app.settings")

app = Celery("docs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])

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
    if "answer" in _consumed_queues(instance):
        from docs_app.services.model_status import answer_runtime_prepare

        _answers_here = True
        answer_runtime_prepare()


@worker_process_init.connect
def _preload_answer_model(**kwargs: Any) -> None:
    # In a thread: the pool process must report ready within seconds, a large model takes longer to load.
    if _answers_here:
        from docs_app.services.answering import answer_model_preload

        threading.Thread(target=answer_model_preload, name="model-preload", daemon=True).start()


@worker_ready.connect
def _requeue_unfinished(sender: Any = None, **kwargs: Any) -> None:
    # Redis only carries messages: when a worker comes up (after a crash, a reboot, a lost Redis), whatever
    # the database says is unfinished is queued again (ingestion is idempotent: a document also still in the
    # queue is skipped the second time), and answers whose run died are failed with the reason.
    queues = _consumed_queues(sender)
    if "ingest" in queues:
        from docs_app.services.documents import documents_requeue_unfinished

        documents_requeue_unfinished()
    if "answer" in queues:
        from docs_app.services.answering import answers_fail_abandoned

        answers_fail_abandoned()
