from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from docs_app.services.backup import BackupError, backup_create


class Command(BaseCommand):
    help = ("Back up this instance into DIR (absent or empty): a consistent snapshot of the database (SQLite's "
            "backup API, or pg_dump of one snapshot on PostgreSQL), the stored originals it names, and a "
            "manifest with the audit head. Not included: the audit key (back it up apart), Chroma (rebuilt on "
            "restore from the vectors in the database), page renders. Audited as system.backup.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = backup_create(target=options["directory"])
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"backup written to {report.path}: {report.documents} documents, {report.chunks} chunks, "
                          f"{report.files} files, {report.bytes / 1e6:.1f} MB in {report.seconds:.1f}s")
        self.stdout.write(f"audit head: event #{report.audit_head_id} {report.audit_head_hash}")
        if report.missing_files:
            self.stdout.write(f"files erased after the snapshot (documents {report.missing_files}): not included")
        self.stdout.write("keep the audit key file with a separate backup: the restore needs the same key")
