from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from docs_app.services.index import index_rebuild


class Command(BaseCommand):
    help = ("Rebuild the Chroma index from the database. Also compacts: erased documents' vectors, which "
            "Chroma only soft-deletes, leave its files. --reembed recomputes vectors with the current model.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--reembed", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        written = index_rebuild(reembed=options["reembed"])
        self.stdout.write(f"index rebuilt: {written} chunks written")
