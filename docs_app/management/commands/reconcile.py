"""The reconciler (services.reconcile): one pass, or a pass every RECONCILE_EVERY_S with `--loop` (the Procfile's
`reconciler` process). Several may run on several hosts: a pass holds a Redis lock."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from docs_app.services.reconcile import reconcile


class Command(BaseCommand):
    help = ("Queue again the work the database says is unfinished and no queue holds (after a Redis loss, a lost "
            "worker host), take over answers whose run died, refuse answers that waited too long, and compare "
            "the vector index with the database (--index, and periodically with --loop).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="run a pass every --every seconds until stopped")
        parser.add_argument("--every", type=float, default=settings.RECONCILE_EVERY_S)
        parser.add_argument("--index-every", type=float, default=settings.INDEX_CHECK_EVERY_S,
                            help="with --loop: check the vector index this often (seconds)")
        parser.add_argument("--index", action="store_true", help="check (and repair) the vector index too")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["loop"]:
            self.stdout.write(reconcile(check_index=options["index"]).summary())
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        next_index = time.monotonic()  # an index check in the first pass: the last run may have ended anyhow
        self.stdout.write(f"reconciler: a pass every {options['every']:g} s, the index every "
                          f"{options['index_every']:g} s")
        while not stop.is_set():
            check_index = time.monotonic() >= next_index
            try:
                report = reconcile(check_index=check_index)
            except Exception as exc:  # a pass that fails (the database busy, Chroma down) must not end the loop
                self.stderr.write(f"reconciler pass failed: {type(exc).__name__}: {exc}")
            else:
                if report.index is not None:
                    next_index = time.monotonic() + options["index_every"]
                if not report.idle:
                    self.stdout.write(report.summary())
            self.stdout.flush()
            stop.wait(options["every"])
