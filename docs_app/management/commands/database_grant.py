from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from docs_app.services.database import database_app_role_grant


class Command(BaseCommand):
    help = ("PostgreSQL: after `migrate`, run as the owner role, give the app's role (the one web and workers "
            "connect as) its rights: full use of the app's tables, but only SELECT and INSERT on the audit table. "
            "Run it again after every migration that adds tables.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", help="the PostgreSQL role web and workers connect as")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            statements = database_app_role_grant(role=options["role"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        for statement in statements:
            self.stdout.write(statement)
