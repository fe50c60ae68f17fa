"""Who is running a piece of work, and whether that run is still alive.

A run names itself `<host>:<pid>:<nonce>` in the claim it takes (a document's run_owner, an answer's Redis
lease). Whether a claim is dead is decided two ways:
- on the claim's own host, at once: its process is gone (a worker child killed, a worker restarted);
- anywhere, by time: its heartbeat or lease has lapsed (its host is gone, or cut off).
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable

from django.conf import settings

from docs_app.pipeline.processes import process_alive


def run_identity() -> str:
    return f"{settings.HOST_ID}:{os.getpid()}:{uuid.uuid4().hex}"


def run_pid(identity: str) -> int | None:
    parts = identity.split(":")
    return int(parts[1]) if len(parts) == 3 and parts[1].isascii() and parts[1].isdigit() else None


def run_dead_here(identity: str) -> bool:
    """The run was on this host and its process is gone. Runs on other hosts are left to their heartbeat."""
    pid = run_pid(identity)
    if pid is None or identity.split(":", 1)[0] != settings.HOST_ID:
        return False
    return not process_alive(pid)


class Beat(threading.Thread):
    """Calls `beat` every `every_s` seconds until stopped, in a thread of its own: a run's liveness must not hang
    on what the run is doing (a long model call, a wait for the vector store). `beat` returns False when the
    claim is no longer this run's; `lost` is then set and the beat stops."""

    def __init__(self, *, beat: Callable[[], bool], every_s: float, name: str,
                 on_error: Callable[[BaseException], None], finish: Callable[[], None] | None = None) -> None:
        super().__init__(name=name, daemon=True)
        self._beat = beat
        self._every_s = every_s
        self._on_error = on_error
        self._finish = finish
        self._stop_event = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        try:
            while not self._stop_event.wait(self._every_s):
                try:
                    if not self._beat():
                        self.lost.set()
                        return
                except Exception as exc:  # a missed beat is not fatal: the next one may get through
                    self._on_error(exc)
        finally:
            if self._finish is not None:
                self._finish()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)
