"""Bulk import a directory tree of PDFs into a collection, with a progress bar and a summary."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from docs_app.models import Collection
from docs_app.services.actor import Actor
from docs_app.services.documents import UploadOutcome, document_upload


class Command(BaseCommand):
    help = "Import every file under PATH into a collection (created if missing). Exits 1 if any file was rejected."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--collection", required=True, help="collection name")
        parser.add_argument("--as-user", default="", help="user recorded as uploader (default: none, 'system')")
        parser.add_argument("--limit", type=int, default=0, help="import at most N files (0: all)")

    def handle(self, *args: Any, **options: Any) -> None:
        root: Path = options["path"]
        if not root.is_dir():
            raise CommandError(f"{root} is not a directory")
        user = None
        if options["as_user"]:
            user = get_user_model().objects.filter(username=options["as_user"]).first()
            if user is None:
                raise CommandError(f"no user {options['as_user']!r}")
        collection, _ = Collection.objects.get_or_create(name=options["collection"], defaults={"created_by": user})
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
        if options["limit"]:
            files = files[: options["limit"]]
        outcomes: list[UploadOutcome] = []
        for index, path in enumerate(files, start=1):
            with path.open("rb") as source:
                outcomes.append(document_upload(collection=collection, name=path.name, source=source,
                                                actor=Actor(user=user)))
            self._progress(index, len(files))
        self._summary(outcomes)
        if any(o.status == "rejected" for o in outcomes):
            sys.exit(1)

    def _progress(self, done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        self.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending="")
        if done == total:
            self.stderr.write("")

    def _summary(self, outcomes: list[UploadOutcome]) -> None:
        counts = Counter(o.status for o in outcomes)
        self.stdout.write(
            f"imported {counts['queued']}, duplicate {counts['duplicate']}, rejected {counts['rejected']}"
        )
        for outcome in outcomes:
            if outcome.status != "queued":
                self.stdout.write(f"  {outcome.status}: {outcome.name}: {outcome.reason}")
        waiting = sum(1 for o in outcomes if o.note)
        if waiting:
            self.stdout.write(
                f"{waiting} of the imported files wait for the task queue: Redis ({_where(settings.REDIS_URL)}) "
                "could not be reached. They are stored and recorded as queued; processing starts by itself once "
                "Redis is back and the reconciler runs (`manage.py reconcile`, or the `reconciler` process of "
                "`make run`). Nothing needs to be imported again.")


def _where(url: str) -> str:
    parts = urlsplit(url)  # host and port only: the URL may carry a password
    return f"{parts.hostname}:{parts.port or 6379}"
