"""Real services for the suite: a Redis server, a Chroma server and a Celery worker process, started once per
test session on free loopback ports and stopped at the end. Nothing here is a fake."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

from bench._services import stop_process, venv_bin, wait_for_port

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("DOCS_SHARED_DATA", REPO.parent / "shared" / "data"))
CUAD_DIR = SHARED_DATA / "legal" / "cuad_pdf"
HOSTILE_DIR = SHARED_DATA / "hostile"
RUN_DIR = Path(os.environ["DOCS_TEST_RUN_DIR"])
LOG_DIR = RUN_DIR / "logs"

# Every process of the run (this one, Redis aside, Chroma, the workers, the extraction children) refuses and
# records connections that leave the machine; tests/integration/test_privacy.py asserts the record is empty.
NETGUARD_LOG = RUN_DIR / "netguard.log"
os.environ["DOCS_NETGUARD_LOG"] = str(NETGUARD_LOG)
os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests" / "netguard"), str(REPO)])
importlib.import_module("tests.netguard.sitecustomize")


def _start(name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = (LOG_DIR / f"{name}.log").open("wb")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                            start_new_session=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    port = int(settings.REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    proc = _start("redis", [venv_bin("redis-server"), "--port", str(port), "--bind", "127.0.0.1",
                            "--save", "", "--appendonly", "no", "--dir", str(RUN_DIR)])
    wait_for_port(port, proc=proc, name="redis-server")
    yield settings.REDIS_URL
    stop_process(proc)


@pytest.fixture(scope="session")
def chroma_server() -> Iterator[int]:
    port = settings.CHROMA_PORT
    proc = _start("chroma", [venv_bin("chroma"), "run", "--host", "127.0.0.1", "--port", str(port),
                             "--path", str(RUN_DIR / "chroma")])
    wait_for_port(port, proc=proc, name="chroma")
    yield port
    stop_process(proc)


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "docs_app.settings"
    env["DOCS_DATABASE_URL"] = f"sqlite:///{settings.DATABASES['default']['TEST']['NAME']}"
    return env


def start_worker(name: str, queues: str = "ingest,answer", concurrency: int = 2) -> subprocess.Popen[bytes]:
    return _start(f"worker-{name}", [
        sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", queues, "-c", str(concurrency),
        "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "--loglevel", "INFO",
    ], env=worker_env())


def wait_for_worker(name: str, timeout_s: float = 120) -> None:
    from workers.celery import app

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if any(any(key.startswith(f"{name}@") for key in reply) for reply in replies):
            return
    raise RuntimeError(f"worker {name} did not answer within {timeout_s}s; see {LOG_DIR}")


@pytest.fixture(scope="session")
def services(django_db_setup: None, django_db_blocker: object, redis_server: str,
             chroma_server: int) -> Iterator[None]:
    """Redis + Chroma + one Celery worker consuming both queues, sharing the test database file."""
    proc = start_worker("suite")
    wait_for_worker("suite")
    yield
    stop_process(proc, grace_s=30)


@pytest.fixture(autouse=True)
def _audit_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """The audit table refuses UPDATE/DELETE, as in production. Transactional tests end with a flush that
    deletes every row, so the guard is lifted just for that flush."""
    marker = request.node.get_closest_marker("django_db")
    uses_live = "live_server" in request.fixturenames
    if marker is None and "db" not in request.fixturenames and "transactional_db" not in request.fixturenames \
            and not uses_live:
        yield
        return
    transactional = uses_live or "transactional_db" in request.fixturenames or bool(
        marker and marker.kwargs.get("transaction"))
    request.getfixturevalue("transactional_db" if transactional else "db")
    from docs_app.services.audit import audit_guard_install, audit_guard_remove

    audit_guard_install()
    yield
    if transactional:
        audit_guard_remove()


def wait_until(predicate: Callable[[], bool], *, timeout_s: float = 180, every_s: float = 0.5,
               what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; worker logs in {LOG_DIR}")


@pytest.fixture
def wait() -> Callable[..., None]:
    return wait_until
