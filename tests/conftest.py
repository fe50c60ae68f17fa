"""Real services for the suite: a Redis server, a Chroma server and a Celery worker process, started once per
test session on free loopback ports (docs_app.devservices, shared with the benchmarks) and stopped at the end.
Nothing here is a fake. Also the fixtures most tests build on: users, collections with a grant, and documents
ingested by the real worker (tests/harness.py)."""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.contrib.auth.models import User

from docs_app.devservices import Services, redis_port, signals_end_the_run
from docs_app.models import Collection, Grant
from tests import harness
from tests.data import REPO
from tests.harness import CollectionFactory, DocumentFactory, UserFactory, wait_until

RUN_DIR = Path(os.environ["DOCS_TEST_RUN_DIR"])
LOG_DIR = RUN_DIR / "logs"

# Every process of the run (this one, Redis aside, Chroma, the workers, the extraction children) refuses and
# records connections that leave the machine; tests/integration/test_privacy.py asserts the record is empty.
NETGUARD_LOG = RUN_DIR / "netguard.log"
os.environ["DOCS_NETGUARD_LOG"] = str(NETGUARD_LOG)
os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO / "tests" / "netguard"), str(REPO)])
importlib.import_module("tests.netguard.sitecustomize")


@pytest.fixture(scope="session")
def devservices() -> Iterator[Services]:
    # SIGTERM ends the session like Ctrl-C (teardown runs); if even that is skipped, each service's reaper ends
    # it when this process is gone (docs_app.devservices).
    started = Services(log_dir=LOG_DIR)
    with signals_end_the_run():
        yield started
        started.stop()


@pytest.fixture(scope="session")
def redis_server(devservices: Services) -> str:
    # The production configuration, its files in the data directory: the erasure test reads them.
    settings.DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    devservices.redis(port=redis_port(settings.REDIS_URL), data_dir=settings.DATA_DIR)
    return str(settings.REDIS_URL)


@pytest.fixture(scope="session")
def chroma_server(devservices: Services) -> int:
    devservices.chroma(port=settings.CHROMA_PORT, path=RUN_DIR / "chroma")
    return int(settings.CHROMA_PORT)


def on_postgresql() -> bool:
    return bool(settings.DATABASES["default"]["ENGINE"].endswith("postgresql"))


def app_database_url() -> str:
    """The URL the app's processes (the workers) use for the test database: on PostgreSQL the app role that
    `make test-postgres` created (DOCS_TEST_APP_DATABASE_URL), pointed at the test database."""
    if not on_postgresql():
        return f"sqlite:///{settings.DATABASES['default']['TEST']['NAME']}"
    parts = urlsplit(os.environ["DOCS_TEST_APP_DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + quote(str(settings.DATABASES["default"]["NAME"]))))


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "docs_app.settings"
    env["DOCS_DATABASE_URL"] = app_database_url()
    return env


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> None:
    """pytest-django's test database, migrated by the owner role; on PostgreSQL the app role then gets the rights
    production gives it (`manage.py database_grant`), and no more."""
    if on_postgresql():
        from docs_app.services.database import database_app_role_grant

        with django_db_blocker.unblock():
            database_app_role_grant(role=str(urlsplit(os.environ["DOCS_TEST_APP_DATABASE_URL"]).username))


def wait_for_worker(name: str, timeout_s: float = 120) -> None:
    from workers.celery import app

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1.0) or []
        if any(any(key.startswith(f"{name}@") for key in reply) for reply in replies):
            return
    raise RuntimeError(f"worker {name} did not answer within {timeout_s}s; see {LOG_DIR}")


@pytest.fixture(scope="session")
def services(django_db_setup: None, django_db_blocker: object, redis_server: str, chroma_server: int,
             devservices: Services) -> Iterator[None]:
    """Redis + Chroma + one Celery worker consuming both queues, sharing the test database file."""
    proc = devservices.worker("suite", env=worker_env())
    wait_for_worker("suite")
    yield
    devservices.stop(proc)


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
    # Anchors name events of earlier tests, whose rows the flush between tests removed.
    settings.AUDIT_ANCHOR_FILE.unlink(missing_ok=True)
    yield
    if transactional:
        audit_guard_remove()
        settings.AUDIT_ANCHOR_FILE.unlink(missing_ok=True)


@pytest.fixture
def wait() -> Callable[..., None]:
    return wait_until


# --- The people and things most tests start from ------------------------------------------------------------

@pytest.fixture
def user_factory() -> UserFactory:
    """`make_user(name, *groups, **fields)`: an account with the harness password, in the given groups."""
    return harness.make_user


@pytest.fixture
def collection_with_grant() -> CollectionFactory:
    """`make_collection(name, user=None, role=None, **fields)`: a collection, and the user's role on it."""

    def make(name: str, user: User | None = None, role: str | None = None, **fields: object) -> Collection:
        collection = Collection.objects.create(name=name, **fields)  # type: ignore[arg-type]
        if user is not None and role is not None:
            Grant.objects.create(collection=collection, user=user, role=role)
        return collection

    return make


@pytest.fixture
def ingested_document(services: None) -> DocumentFactory:
    """`ingest(collection, path)`: the file uploaded, ingested by the suite's worker, and READY."""
    return harness.ingest
