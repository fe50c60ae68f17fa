"""A private, throw-away copy of the whole stack for benchmarks: its own data directory, SQLite file, Redis,
Chroma server and Celery workers on free loopback ports. Nothing touches a running installation."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalStack:
    def __init__(self, *, ingest_workers: int = 1, concurrency: int = 2, answer_worker: bool = False,
                 keep: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="docs-bench-"))
        self._procs: list[subprocess.Popen[bytes]] = []
        self._ingest_workers = ingest_workers
        self._concurrency = concurrency
        self._answer_worker = answer_worker
        self._keep = keep
        self.redis_port = _free_port()
        self.chroma_port = _free_port()
        os.environ.update({
            "DJANGO_SETTINGS_MODULE": "docs_app.settings",
            "DOCS_DATA_DIR": str(self.dir / "data"),
            "DOCS_DATABASE_URL": f"sqlite:///{self.dir / 'bench.sqlite3'}",
            "DOCS_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "DOCS_CHROMA_PORT": str(self.chroma_port),
            "PYTHONPATH": str(REPO),
        })

    def __enter__(self) -> LocalStack:
        import django
        from django.core.management import call_command

        sys.path.insert(0, str(REPO))
        django.setup()
        call_command("migrate", verbosity=0)
        self._start("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", str(self.dir)], self.redis_port)
        chroma = str(Path(sys.executable).parent / "chroma")
        self._start("chroma", [chroma, "run", "--host", "127.0.0.1", "--port", str(self.chroma_port),
                               "--path", str(self.dir / "chroma")], self.chroma_port)
        names = []
        for n in range(self._ingest_workers):
            names.append(f"ingest{n}")
            self._start(names[-1], [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", "ingest",
                                    "-c", str(self._concurrency), "-n", f"{names[-1]}@%h", "--without-gossip",
                                    "--without-mingle", "--loglevel", "WARNING"])
        if self._answer_worker:
            names.append("answer")
            self._start("answer", [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", "answer",
                                   "-c", "1", "-n", "answer@%h", "--without-gossip", "--without-mingle",
                                   "--loglevel", "WARNING"])
        self._wait_for_workers(names)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for proc in reversed(self._procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self._procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if not self._keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _start(self, name: str, argv: list[str], port: int | None = None) -> None:
        log = (self.dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        self._procs.append(proc)
        if port is None:
            return
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"{name} did not start; see {self.dir / (name + '.log')}")

    def _wait_for_workers(self, names: list[str]) -> None:
        from workers.celery import app

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=1.0) or []
            seen = {key.split("@")[0] for reply in replies for key in reply}
            if set(names) <= seen:
                return
        raise RuntimeError(f"workers {names} did not come up; logs in {self.dir}")
