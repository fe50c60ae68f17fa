"""The Celery app. It imports nothing of docs_app: services queue work through it by task name
(docs_app.services.enqueue), and the tasks and the worker's start-up hooks (workers.tasks), which import the
services, are found by autodiscovery."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docs_app.settings")

app = Celery("docs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])
