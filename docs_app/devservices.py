"""Real services on free loopback ports for the test suite (tests/conftest.py) and the benchmarks (bench/): a
Redis server, a Chroma server and Celery workers, each logging to a file and stopped with its process group.
Never used by the running app (`make run` starts its services with honcho, see Procfile).
"""

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

from docs_app.keyfile import key_create

REPO = Path(__file__).resolve().parent.parent
REDIS_CONF = REPO / "scripts" / "redis.conf"


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


def redis_port(redis_url: str) -> int:
    return int(redis_url.rsplit(":", 1)[1].split("/")[0])


class Services:
    """Starts services whose output goes to `<log_dir>/<name>.log`; `stop()` ends them, last started first."""

    def __init__(self, *, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env or self.env, cwd=REPO,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def redis(self, *, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
        # The app's configuration (scripts/redis.conf, as in the Procfile): an append-only file, no snapshots.
        proc = self.start("redis", [venv_bin("redis-server"), str(REDIS_CONF), "--port", str(port),
                                    "--bind", "127.0.0.1", "--dir", str(data_dir)])
        wait_for_port(port, proc=proc, name="redis-server")
        return proc

    def chroma(self, *, port: int, path: Path) -> subprocess.Popen[bytes]:
        proc = self.start("chroma", [venv_bin("chroma"), "run", "--host", "127.0.0.1", "--port", str(port),
                                     "--path", str(path)])
        wait_for_port(port, proc=proc, name="chroma")
        return proc

    def worker(self, name: str, *, queues: str = "ingest,answer", concurrency: int = 2, loglevel: str = "INFO",
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return self.start(f"worker-{name}", [
            sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", queues, "-c", str(concurrency),
            "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--loglevel", loglevel,
        ], env=env)

    def stop(self, proc: subprocess.Popen[bytes] | None = None, *, grace_s: float = 30) -> None:
        for one in [proc] if proc is not None else list(reversed(self.procs)):
            stop_process(one, grace_s=grace_s)
            self.procs.remove(one)


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
        # The audit chain is keyed (docs_app.services.audit): a run keeps its own key and anchors.
        "DOCS_AUDIT_KEY_FILE": str(workdir / "keys" / "audit-hmac.key"),
        "DOCS_AUDIT_ANCHOR_FILE": str(workdir / "keys" / "audit-anchors.log"),
        **extra_env,
    })
    key_create(Path(os.environ["DOCS_AUDIT_KEY_FILE"]))


@contextmanager
def services_running(workdir: Path, *, concurrency: int = 2) -> Iterator[None]:
    """For a benchmark: Redis, Chroma (persisting under workdir, so a re-run reuses the index) and one worker on
    both queues, with the settings `configure` chose; all stopped on exit."""
    services = Services(log_dir=workdir / "logs", env=dict(os.environ))
    try:
        services.redis(port=redis_port(os.environ["DOCS_REDIS_URL"]), data_dir=workdir)
        services.chroma(port=int(os.environ["DOCS_CHROMA_PORT"]), path=workdir / "chroma")
        services.worker("bench", concurrency=concurrency, loglevel="WARNING")
        yield
    finally:
        services.stop()
