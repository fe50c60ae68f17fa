from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from docs_app.models import AuditEvent
from docs_app.services.audit import audit_anchor_head
from docs_app.services.audit_verification import audit_verify_full


class Command(BaseCommand):
    help = ("Recompute the whole audit hash chain (keyed events with the audit key; in batches, so in bounded memory "
            "at any size) and check the heads anchored in "
            "DOCS_AUDIT_ANCHOR_FILE; exit 1 and name the first broken link if it does not hold. On success the "
            "head is anchored again and printed: keeping a copy elsewhere (--anchor later) also catches a "
            "rewrite by someone who holds both the database and the key. Schedule it (e.g. nightly): the audit "
            "page verifies new events at once and old ones a slice per visit.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--anchor", action="append", default=[], metavar="HASH",
                            help="a head hash printed by an earlier run; it must still be in the chain")

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_verify_full()
        if not report.ok:
            where = f" at event #{report.first_broken_id}" if report.first_broken_id is not None else ""
            self.stdout.write(f"audit chain BROKEN{where}: {report.problem} ({report.checked} events verified)")
            sys.exit(1)
        missing = [a for a in options["anchor"]
                   if not AuditEvent.objects.filter(hash=a.strip().lower()).exists()]
        if missing:
            self.stdout.write("audit chain REWRITTEN or TRUNCATED: anchored head(s) not found: "
                              + ", ".join(missing))
            sys.exit(1)
        head = audit_anchor_head()
        self.stdout.write(f"audit chain intact: {report.checked} events verified")
        if head is not None:
            self.stdout.write(f"head: event #{head[0]} {head[1]}")
