from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from docs_app.keyfile import key_create


class Command(BaseCommand):
    help = ("Create the audit chain's HMAC key file (DOCS_AUDIT_KEY_FILE) if it does not exist. Idempotent. Back "
            "the file up apart from the database: without it, keyed audit events cannot be verified.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(settings.AUDIT_KEY_FILE)
        if key_create(path):
            self.stdout.write(f"audit key created: {path} (back it up apart from the database)")
        else:
            self.stdout.write(f"audit key present: {path}")
