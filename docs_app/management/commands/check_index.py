from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from docs_app.services.index import index_check


class Command(BaseCommand):
    help = ("Compare Documents, Chunk rows and the Chroma index, and repair drift: vectors missing for ready "
            "documents are written again from the database, vectors nothing in the database accounts for are "
            "deleted. --dry-run only reports (exit 1 on drift).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        report = index_check(repair=not options["dry_run"])
        self.stdout.write(report.summary())
        if report.ready_without_chunks:
            self.stdout.write("ready documents without chunk rows cannot be repaired from the database: "
                              "retry them from the library, or delete and upload them again")
        if options["dry_run"] and report.drift:
            sys.exit(1)
