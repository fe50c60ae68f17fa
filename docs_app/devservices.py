"""Real services on free loopback ports for the test suite (tests/conftest.py) and the benchmarks (bench/): a
Redis server, a Chroma server, an S3-compatible server and Celery workers, each logging to a file and stopped with
its process group. Never used by the running app (`make run` starts its services with honcho, see Procfile).

Nothing outlives the run that started it. Each service runs in its own process group (a Ctrl-C meant for the
benchmark must not kill a worker half-way through a write) beside a tiny reaper: a shell that waits for the end
of a pipe whose other end only the starting process holds. However that process ends (return, exception,
SIGINT, SIGTERM, a timeout's SIGKILL) the pipe closes, and the reaper ends the service's whole group: SIGTERM,
then SIGKILL after a grace period. `stop()` is the orderly path; the reaper is what remains when there is none.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from docs_app.keyfile import key_create

REPO = Path(__file__).resolve().parent.parent
REDIS_CONF = REPO / "scripts" / "redis.conf"
SUPERVISE = REPO / "scripts" / "supervise.sh"


_ports_given: set[int] = set()


def free_port() -> int:
    """A loopback port free now and not given before by this process: the kernel may hand the port it just
    freed out again, and two services told the same port fail in ways that look like anything else."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _ports_given:
            _ports_given.add(port)
            return port


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
        _killpg(proc.pid, signal.SIGKILL)  # the leader is gone; children it left behind are not
        return
    _killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        _killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    _killpg(proc.pid, signal.SIGKILL)


def kill_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the whole process group at once, as a host losing power would: no handler runs, nothing is
    flushed, no message is handed back."""
    _killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def redis_port(redis_url: str) -> int:
    return int(redis_url.rsplit(":", 1)[1].split("/")[0])


# Waits for end-of-file on its stdin (the starting process died or let go), then ends the service's group.
_REAPER = ('read _ignored; kill -TERM "-$1" 2>/dev/null || exit 0; i=0; '
           'while [ "$i" -lt "$2" ] && kill -0 "-$1" 2>/dev/null; do sleep 1; i=$((i + 1)); done; '
           'kill -KILL "-$1" 2>/dev/null')
REAPER_GRACE_S = 10


@dataclass
class _Started:
    name: str
    argv: list[str]
    env: dict[str, str] | None
    port: int | None
    reaper: subprocess.Popen[bytes]


class Services:
    """Starts services whose output goes to `<log_dir>/<name>.log`; `stop()` ends them, last started first."""

    def __init__(self, *, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.log_dir = log_dir
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self._started: dict[int, _Started] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None, *,
              port: int | None = None) -> subprocess.Popen[bytes]:
        """Start a service in its own process group, with its reaper; waits for `port` if given."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env or self.env, cwd=REPO,
                                    start_new_session=True)
        reaper = subprocess.Popen(["/bin/sh", "-c", _REAPER, "reaper", str(proc.pid), str(REAPER_GRACE_S)],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        self.procs.append(proc)
        self._started[proc.pid] = _Started(name, argv, env, port, reaper)
        if port is not None:
            wait_for_port(port, proc=proc, name=name)
        return proc

    def redis(self, *, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
        # The app's configuration (scripts/redis.conf, as in the Procfile): an append-only file written to disk
        # every second (a restart replays it), no snapshots.
        return self.start("redis", [venv_bin("redis-server"), str(REDIS_CONF), "--port", str(port),
                                    "--bind", "127.0.0.1", "--dir", str(data_dir)], port=port)

    def chroma(self, *, port: int, path: Path) -> subprocess.Popen[bytes]:
        return self.start("chroma", [venv_bin("chroma"), "run", "--host", "127.0.0.1", "--port", str(port),
                                     "--path", str(path)], port=port)

    def s3(self, *, port: int) -> subprocess.Popen[bytes]:
        """An S3-compatible server (moto's, a test dependency) on loopback, holding its buckets in memory: what
        the tests run the object-store path against, in place of the office's MinIO."""
        return self.start("s3", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                          port=port)

    def worker(self, name: str, *, queues: str = "ingest,answer", concurrency: int = 2, loglevel: str = "INFO",
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """A Celery worker under scripts/supervise.sh, as the Procfile runs it: started again if it dies unasked
        (a broker outage can end it), stopped with its group."""
        return self.start(f"worker-{name}", [
            str(SUPERVISE), sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", queues,
            "-c", str(concurrency), "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--loglevel", loglevel,
        ], env=env)

    def find(self, name: str) -> subprocess.Popen[bytes]:
        """The running service started under `name` (the last one, if several)."""
        for proc in reversed(self.procs):
            if self._started[proc.pid].name == name:
                return proc
        raise LookupError(f"no service {name!r} is running")

    def stop(self, proc: subprocess.Popen[bytes] | None = None, *, grace_s: float = 30) -> None:
        for one in [proc] if proc is not None else list(reversed(self.procs)):
            stop_process(one, grace_s=grace_s)
            self._forget(one)

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the service's whole process group (see kill_process)."""
        kill_process(proc)
        self._forget(proc)

    def restart(self, proc: subprocess.Popen[bytes], *, kill: bool = False,
                down_s: float = 0) -> subprocess.Popen[bytes]:
        """The same service again, with the same command line (same port, same data): after a SIGKILL when
        `kill`, else after an orderly stop, and `down_s` seconds without it. A service already killed with
        kill_process (still known here) is only started again."""
        started = self._started[proc.pid]
        if kill:
            self.kill(proc)
        else:
            self.stop(proc)
        time.sleep(down_s)
        return self.start(started.name, started.argv, started.env, port=started.port)

    def _forget(self, proc: subprocess.Popen[bytes]) -> None:
        started = self._started.pop(proc.pid, None)
        if proc in self.procs:
            self.procs.remove(proc)
        if started is not None:
            # The service is gone: the reaper must not signal a process group whose id may be reused.
            started.reaper.kill()
            started.reaper.wait()
            if started.reaper.stdin is not None:
                started.reaper.stdin.close()


@contextmanager
def signals_end_the_run() -> Iterator[None]:
    """SIGTERM and SIGHUP end the run the way Ctrl-C does (an exception in the main thread), so `finally`
    blocks stop what the run started; Python's default for them is to die without running any."""

    def interrupt(signum: int, _frame: object) -> None:
        # Once: a second signal must not cut the teardown the first one started short (the reapers remain).
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
    with signals_end_the_run():
        try:
            services.redis(port=redis_port(os.environ["DOCS_REDIS_URL"]), data_dir=workdir)
            services.chroma(port=int(os.environ["DOCS_CHROMA_PORT"]), path=workdir / "chroma")
            services.worker("bench", concurrency=concurrency, loglevel="WARNING")
            yield
        finally:
            services.stop()
