"""Nothing leaves the machine: every Python process of the test run refuses and records connections that are
not to loopback (tests/netguard/sitecustomize.py). An ingestion runs end to end; the record must stay empty."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from docs_app.models import Collection
from tests.conftest import NETGUARD_LOG, worker_env
from tests.data import cuad_first
from tests.harness import ingest

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_the_guard_refuses_and_records_outbound_connections() -> None:
    before = NETGUARD_LOG.read_text() if NETGUARD_LOG.exists() else ""
    with pytest.raises(OSError), socket.create_connection(("192.0.2.10", 443), timeout=1):
        pass
    recorded = NETGUARD_LOG.read_text()[len(before):]
    assert "192.0.2.10" in recorded
    # Leave the record as it was: the next test asserts that the real work adds nothing to it.
    NETGUARD_LOG.write_text(before)


def test_worker_processes_start_with_the_guard_installed() -> None:
    probe = "import socket; print(socket.socket.connect.__name__, socket.getaddrinfo.__name__)"
    out = subprocess.run([sys.executable, "-c", probe], env=worker_env(), capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["_connect", "_getaddrinfo"]


def test_an_ingestion_attempts_no_outbound_connection(services: None) -> None:
    NETGUARD_LOG.write_text("")
    collection = Collection.objects.create(name="Privacy")
    ingest(collection, cuad_first(6)[5])
    assert NETGUARD_LOG.read_text() == ""
