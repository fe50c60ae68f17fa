from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from docs_app.models import AuditEvent
from docs_app.services.audit import audit_verify


class Command(BaseCommand):
    help = ("Recompute the audit hash chain; exit 1 and name the first broken link if it does not hold. "
            "Prints the head hash: write it down somewhere the database's owner cannot edit, and pass it "
            "back with --anchor later. That also catches a chain someone rewrote from scratch or cut short "
            "at the end, which no chain can show by itself.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--anchor", action="append", default=[], metavar="HASH",
                            help="a head hash printed by an earlier run; it must still be in the chain")

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_verify()
        if not report.ok:
            self.stdout.write(
                f"audit chain BROKEN at event #{report.first_broken_id}: {report.problem} "
                f"({report.checked} events before it verified)"
            )
            sys.exit(1)
        missing = [a for a in options["anchor"]
                   if not AuditEvent.objects.filter(hash=a.strip().lower()).exists()]
        if missing:
            self.stdout.write("audit chain REWRITTEN or TRUNCATED: anchored head(s) not found: "
                              + ", ".join(missing))
            sys.exit(1)
        head = AuditEvent.objects.order_by("-id").values_list("id", "hash").first()
        self.stdout.write(f"audit chain intact: {report.checked} events verified")
        if head is not None:
            self.stdout.write(f"head: event #{head[0]} {head[1]}")
