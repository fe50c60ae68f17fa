import os
from typing import Any

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docs_app.settings")

app = Celery("docs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])


@worker_ready.connect
def _requeue_unfinished(sender: Any = None, **kwargs: Any) -> None:
    # Redis only carries messages: when an ingest worker comes up (after a crash, a reboot, a lost Redis),
    # whatever the database says is unfinished is queued again. Ingestion is idempotent, so a document that
    # is also still in the queue is simply skipped the second time.
    queues = {queue.name for queue in sender.app.amqp.queues.consume_from.values()} if sender else set()
    if "ingest" in queues:
        from docs_app.services.documents import documents_requeue_unfinished

        documents_requeue_unfinished()
