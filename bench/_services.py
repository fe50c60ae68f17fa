"""Real services for a benchmark run: Redis, a Chroma server and a Celery worker on free loopback ports, with
the app's settings pointed at a private work directory. Same shape as the test harness (tests/conftest.py),
without pytest."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def venv_bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found")
    return found


def wait_for_port(port: int, *, proc: subprocess.Popen[bytes], name: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited early with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{name} did not open port {port}")


def stop_process(proc: subprocess.Popen[bytes], *, grace_s: float = 20) -> None:
    """SIGTERM the process group (workers have children), SIGKILL it if it outlives the grace period."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def configure(workdir: Path, **extra_env: str) -> None:
    """Point the app's settings at workdir and fresh ports; call before django.setup()."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.update({
        "DJANGO_SETTINGS_MODULE": "docs_app.settings",
        "DOCS_DATA_DIR": str(workdir / "data"),
        "DOCS_DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "DOCS_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "DOCS_CHROMA_PORT": str(free_port()),
        "DOCS_LOG_LEVEL": "WARNING",
        **extra_env,
    })


@contextmanager
def services_running(workdir: Path, *, concurrency: int = 2) -> Iterator[None]:
    """Start Redis, Chroma (persisting under workdir, so a re-run reuses the index) and one worker on both
    queues; stop them all on exit."""
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    redis_port = int(os.environ["DOCS_REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    chroma_port = int(os.environ["DOCS_CHROMA_PORT"])
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=dict(os.environ),
                                start_new_session=True)
        procs.append(proc)
        return proc

    try:
        redis = start("redis", [venv_bin("redis-server"), "--port", str(redis_port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", str(workdir)])
        wait_for_port(redis_port, proc=redis, name="redis-server")
        chroma = start("chroma", [venv_bin("chroma"), "run", "--host", "127.0.0.1", "--port", str(chroma_port),
                                  "--path", str(workdir / "chroma")])
        wait_for_port(chroma_port, proc=chroma, name="chroma")
        start("worker", [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", "ingest,answer",
                         "-c", str(concurrency), "-n", "bench@%h", "--without-gossip", "--without-mingle",
                         "--loglevel", "WARNING"])
        yield
    finally:
        for proc in reversed(procs):
            stop_process(proc, grace_s=30)
