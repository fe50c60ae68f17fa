from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from docs_app.services.audit import audit_verify


class Command(BaseCommand):
    help = "Recompute the audit hash chain; exit 1 and name the first broken link if it does not hold."

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_verify()
        if report.ok:
            self.stdout.write(f"audit chain intact: {report.checked} events verified")
            return
        self.stdout.write(
            f"audit chain BROKEN at event #{report.first_broken_id}: {report.problem} "
            f"({report.checked} events before it verified)"
        )
        sys.exit(1)
