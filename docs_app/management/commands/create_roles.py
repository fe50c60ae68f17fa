from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from docs_app.services.grants import AUDITORS_GROUP, roles_ensure


class Command(BaseCommand):
    help = (f"Create the built-in roles (the {AUDITORS_GROUP!r} group, which may review and export the audit "
            "log but reads no document). Idempotent; `migrate` runs it too.")

    def handle(self, *args: Any, **options: Any) -> None:
        group = roles_ensure()
        perms = ", ".join(sorted(group.permissions.values_list("codename", flat=True))) or "none"
        self.stdout.write(f"role {group.name!r} ready (permissions: {perms}); "
                          "add auditors to it in the admin")
