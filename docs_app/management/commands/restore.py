from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from docs_app.services.backup import BackupError, backup_restore_database, backup_restore_finish
from docs_app.services.database import database_app_role_grant


class Command(BaseCommand):
    help = ("Fill an empty instance from a backup made by `manage.py backup`: the database (then `migrate`), the "
            "stored files, the Chroma index rebuilt from the vectors in the database, the audit chain checked "
            "against the backup's head. Needs the same audit key file as the backup. Audited as system.restore. "
            "PostgreSQL: run as the owner role, into a new empty database; --grant-role gives the app's role its "
            "rights afterwards (as `manage.py database_grant`).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)
        parser.add_argument("--grant-role", default="", help="PostgreSQL: the role web and workers connect as")

    def handle(self, *args: Any, **options: Any) -> None:
        source = options["directory"].resolve()
        try:
            manifest = backup_restore_database(source=source)
            call_command("migrate", interactive=False, verbosity=0)
            if options["grant_role"]:
                database_app_role_grant(role=options["grant_role"])
            report = backup_restore_finish(source=source)
        except (BackupError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"restored the backup of {manifest['created_at']}: {report.documents} documents, "
                          f"{report.chunks} chunks, {report.files} files, {report.vectors} vectors indexed, "
                          f"{report.audit_events} audit events in {report.seconds:.1f}s")
        self.stdout.write(f"audit chain intact up to the backup's head #{manifest['audit']['head_id']} "
                          f"{manifest['audit']['head_hash']}")
        if report.anchors_set_aside:
            self.stdout.write(f"heads anchored after the backup named events it does not hold: that anchor file is "
                              f"kept as {report.anchors_set_aside}")
