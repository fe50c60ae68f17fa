from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from docs_app.services.answering import answers_fail_abandoned
from docs_app.services.documents import documents_requeue_unfinished


class Command(BaseCommand):
    help = ("Queue again every document the database says is unfinished (after a Redis loss or restart), and "
            "fail answers left half-written by a run that died.")

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"re-queued {documents_requeue_unfinished()} unfinished documents")
        self.stdout.write(f"failed {answers_fail_abandoned()} interrupted answers")
