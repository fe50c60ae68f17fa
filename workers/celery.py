import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docs_app.settings")

app = Celery("docs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])
