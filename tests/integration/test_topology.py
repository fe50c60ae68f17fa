"""The production topology on one machine (issue 15): every service a separate process on a "host" of its own —
a Linux network namespace with its own address on a bridge (tests/topology.py), or, where namespaces cannot be
made, a host name and data directory on loopback:

    data     Redis, the Chroma server, the S3-compatible store (moto's server, standing in for MinIO)
    web      gunicorn and the periodic reconciler
    ingest1  an ingest worker          ingest2  another ingest worker
    answer   the answer worker (the stand-in Gemma)

The test plays the browser from outside (HTTP to the web host only). It bulk-uploads contracts, asks a question
and reads the answer's stream, then cuts ingest1 off while it is in the middle of a document: its cable is pulled
(`ip link set … down`) and its processes frozen (SIGSTOP). The freeze is needed because the database is reached
through the file system here (the SQLite file, or PostgreSQL's unix socket), which no network namespace cuts: a
host cut off from a network database loses its connection, and this one must lose it too. Its claim's heartbeat
lapses (WORK_STALE_S), the reconciler queues the document again and ingest2 takes it over. Then the cut host comes
back (cable in, SIGCONT) with its stale run still going: it must write nothing. Every document ends READY exactly
once, its chunk rows and its Chroma vectors the same set.

Runs with the suite (`make test`, `make test-postgres`), in about two minutes on this 2-core machine."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import OperationalError, connection, transaction

from docs_app.adapters.vectorstore import ChromaVectorStore
from docs_app.devservices import REDIS_CONF, Services, free_port, venv_bin
from docs_app.models import Answer, AnswerStatus, AuditEvent, Chunk, Citation, Document, DocumentStatus, Role
from docs_app.pipeline.prompt import citations_parse
from docs_app.services.audit import Action
from tests.conftest import LOG_DIR, worker_env
from tests.data import JOINT_VENTURE, JOINT_VENTURE_QUESTION, cuad, cuad_smallest
from tests.harness import PASSWORD, wait_until
from tests.topology import Host, Network

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

HOSTS = ("data", "web", "ingest1", "ingest2", "answer")
BUCKET = "topology-originals"
S3_KEYS = {"DOCS_S3_ACCESS_KEY_ID": "topology-access", "DOCS_S3_SECRET_ACCESS_KEY": "topology-secret"}
RUNNING = (DocumentStatus.EXTRACTING, DocumentStatus.EMBEDDING)
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Iterator[Network]:
    made = Network.make(HOSTS)
    if made.namespaces:
        # This process and every process it starts may reach the test hosts, and nothing else beyond loopback.
        monkeypatch.setenv("DOCS_NETGUARD_TEST_HOSTS", made.subnet)
    else:
        print(f"\ntopology on loopback: {made.why_loopback}")  # the report says which layout ran
    yield made
    made.remove()


class Topology:
    """The processes of the run, started on their hosts; all stopped by `stop()`."""

    def __init__(self, network: Network, devservices: Services, root: Path) -> None:
        self.network, self.devservices, self.root = network, devservices, root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        data = network.hosts["data"]
        self.ports = {name: free_port() for name in ("redis", "chroma", "s3", "web")}
        self.s3_endpoint = f"http://{data.address}:{self.ports['s3']}"
        self.web_base = f"http://{network.hosts['web'].address}:{self.ports['web']}"
        # Redis on a network answers only with a password (its protected mode refuses clients that are not local).
        self.redis_password = secrets.token_hex(16)
        self.env = {
            **worker_env(),
            "DOCS_REDIS_URL": f"redis://:{self.redis_password}@{data.address}:{self.ports['redis']}/0",
            "DOCS_CHROMA_HOST": data.address, "DOCS_CHROMA_PORT": str(self.ports["chroma"]),
            "DOCS_STORAGE": "s3", "DOCS_S3_ENDPOINT_URL": self.s3_endpoint, "DOCS_S3_BUCKET": BUCKET, **S3_KEYS,
            "DOCS_ALLOWED_HOSTS": network.hosts["web"].address,
        }

    def host_env(self, host: Host) -> dict[str, str]:
        """Each host its own data directory (models, caches, spool) and name; nothing on disk is shared but the
        database (see the module's docstring)."""
        data_dir = self.root / host.name
        return {**self.env, "DOCS_DATA_DIR": str(data_dir), "DOCS_FILES_DIR": str(data_dir / "files"),
                "DOCS_HOST_ID": f"{host.name}-host"}

    def start(self, host_name: str, service: str, argv: list[str], *, port: int | None = None) -> None:
        host = self.network.hosts[host_name]
        proc = self.devservices.start(f"topology-{host_name}-{service}", host.argv(argv), self.host_env(host))
        self.procs[f"{host_name}/{service}"] = proc
        if port is not None:
            _wait_tcp(host.address, port, proc, f"{service} on {host_name}")

    def worker(self, host_name: str, queue: str) -> None:
        self.start(host_name, "worker", [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", queue,
                                         "-c", "1", "-n", f"{host_name}@%h", "--without-gossip", "--without-mingle",
                                         "--loglevel", "INFO"])

    def log(self, host_name: str, service: str) -> str:
        path = LOG_DIR / f"topology-{host_name}-{service}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def signal_host(self, host_name: str, sig: signal.Signals) -> None:
        for key, proc in self.procs.items():
            if key.startswith(f"{host_name}/"):
                os.killpg(proc.pid, sig)

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            self.devservices.stop(proc, grace_s=10)


def _wait_tcp(address: str, port: int, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see {LOG_DIR}")
        with socket.socket() as sock:
            sock.settimeout(1)
            if sock.connect_ex((address, port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not open {address}:{port}")


class Browser:
    """A person at the web host's address: logs in, uploads, asks, reads the answer's Server-Sent Events."""

    def __init__(self, base: str, username: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=httpx.Timeout(120.0, connect=10.0), follow_redirects=True)
        token = _CSRF.search(self.http.get("/login/").text)
        assert token is not None
        done = self.http.post("/login/", data={"username": username, "password": PASSWORD,
                                              "csrfmiddlewaretoken": token.group(1)})
        assert done.status_code == 200 and "/login/" not in str(done.url), done.text[:500]

    def _headers(self, url: str) -> dict[str, str]:
        return {"X-CSRFToken": self.http.cookies.get("csrftoken") or "", "Referer": self.base + url,
                "Accept": "application/json"}

    def upload(self, collection_id: int, paths: list[Path]) -> list[int]:
        url = f"/collections/{collection_id}/upload/"
        files = [("files", (path.name, path.read_bytes(), "application/pdf")) for path in paths]
        response = self.http.post(url, files=files, headers=self._headers(url))
        assert response.status_code == 200, response.text[:500]
        outcomes = response.json()["outcomes"]
        assert [o["status"] for o in outcomes] == ["queued"] * len(paths), outcomes
        return [int(o["document_id"]) for o in outcomes]

    def ask(self, question: str) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        response = self.http.post("/ask/", data={"question": question}, headers=self._headers("/ask/"))
        assert response.status_code == 201, response.text[:500]
        asked = response.json()
        events: list[tuple[str, dict[str, Any]]] = []
        with self.http.stream("GET", asked["stream_url"], timeout=httpx.Timeout(300.0, connect=10.0)) as stream:
            assert stream.status_code == 200
            event = ""
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event in ("sources", "done", "error"):
                    data = json.loads(line[6:])
                    events.append((event, data if isinstance(data, dict) else {"value": data}))
                    if event in ("done", "error"):
                        break
                elif line.startswith("data: ") and event == "token":
                    events.append((event, {"text": line[6:]}))
        return int(asked["answer_id"]), events


def _wait_ready(document_ids: list[int], timeout_s: float) -> None:
    wait_until(lambda: Document.objects.filter(pk__in=document_ids, status=DocumentStatus.READY).count()
               == len(document_ids) or Document.objects.filter(pk__in=document_ids,
                                                               status=DocumentStatus.FAILED).exists(),
               timeout_s=timeout_s, every_s=0.5, what=f"documents {document_ids} to be ingested")
    failed = list(Document.objects.filter(pk__in=document_ids, status=DocumentStatus.FAILED).values_list("pk", "error"))
    assert not failed, failed


def _holds_no_write_lock(document_id: int) -> bool:
    """True when no process holds the database's write lock (SQLite) or the document's row (PostgreSQL): a
    process frozen inside a write would hold it for good, which a real network cut does not do (the server drops
    the lost client's connection and its locks)."""
    if connection.vendor == "sqlite":
        probe = sqlite3.connect(str(connection.settings_dict["NAME"]), timeout=0.3)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.rollback()
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            probe.close()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '300ms'")
            cursor.execute("SELECT 1 FROM docs_app_document WHERE id = %s FOR UPDATE", [document_id])
        return True
    except OperationalError:
        return False


def _cut_mid_document(topology: Topology, document_ids: list[int]) -> int:
    """Cut ingest1 off while it holds one of the documents; returns that document's id."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        held = Document.objects.filter(pk__in=document_ids, status__in=RUNNING,
                                       run_owner__startswith="ingest1-host:").values_list("pk", flat=True).first()
        if held is None:
            time.sleep(0.05)
            continue
        topology.signal_host("ingest1", signal.SIGSTOP)
        still_held = Document.objects.filter(pk=held, status__in=RUNNING,
                                             run_owner__startswith="ingest1-host:").exists()
        if still_held and _holds_no_write_lock(held):
            topology.network.cut("ingest1")
            return int(held)
        topology.signal_host("ingest1", signal.SIGCONT)  # frozen mid-write, or just done: try the next moment
        time.sleep(0.1)
    raise AssertionError("ingest1 never held a document of the batch")


def _assert_ready_once_and_indexed(store: ChromaVectorStore, document_ids: list[int]) -> int:
    """Each document READY, finished once (one "ready" audit record), its chunk rows and vectors the same set;
    returns the number of chunks."""
    total = 0
    for document in Document.objects.filter(pk__in=document_ids):
        assert document.status == DocumentStatus.READY and not document.run_owner, (document.pk, document.error)
        ready = AuditEvent.objects.filter(action=Action.INGEST, document_id_ref=document.pk, outcome="ready").count()
        assert ready == 1, f"document {document.pk} was finished {ready} times"
        rows = {chunk.vector_id for chunk in Chunk.objects.filter(document=document).select_related("document")}
        vectors = store._coll().get(where={"document_id": document.pk}, include=[])["ids"]
        assert rows and len(vectors) == len(set(vectors)) and set(vectors) == rows, document.pk
        total += len(rows)
    return total


def test_two_ingest_hosts_one_answer_host_and_a_host_cut_off_mid_batch(
        django_db_setup: None, devservices: Services, network: Network, tmp_path: Path, user_factory: Any,
        collection_with_grant: Any) -> None:
    started = time.monotonic()
    topology = Topology(network, devservices, tmp_path)
    data = network.hosts["data"]
    try:
        (tmp_path / "data").mkdir(mode=0o700)
        topology.start("data", "redis", [venv_bin("redis-server"), str(REDIS_CONF), "--port",
                                         str(topology.ports["redis"]), "--bind", data.address,
                                         "--dir", str(tmp_path / "data"), "--requirepass", topology.redis_password],
                       port=topology.ports["redis"])
        topology.start("data", "chroma", [venv_bin("chroma"), "run", "--host", data.address, "--port",
                                          str(topology.ports["chroma"]), "--path", str(tmp_path / "data" / "chroma")],
                       port=topology.ports["chroma"])
        topology.start("data", "s3", [sys.executable, "-m", "moto.server", "-H", data.address, "-p",
                                      str(topology.ports["s3"])], port=topology.ports["s3"])
        boto3.client("s3", endpoint_url=topology.s3_endpoint, region_name="us-east-1",
                     aws_access_key_id=S3_KEYS["DOCS_S3_ACCESS_KEY_ID"],
                     aws_secret_access_key=S3_KEYS["DOCS_S3_SECRET_ACCESS_KEY"]).create_bucket(Bucket=BUCKET)
        # The answer host first: it proves its model at start, which takes longest.
        topology.worker("answer", "answer")
        topology.worker("ingest1", "ingest")
        topology.worker("ingest2", "ingest")
        topology.start("web", "gunicorn", [venv_bin("gunicorn"), "docs_app.wsgi:application", "--bind",
                                           f"{network.hosts['web'].address}:{topology.ports['web']}",
                                           "--worker-class", "gthread", "--workers", "1", "--threads", "8",
                                           "--timeout", "300"], port=topology.ports["web"])
        topology.start("web", "reconciler", [sys.executable, "manage.py", "reconcile", "--loop", "--every", "2",
                                             "--index-every", "3600"])
        for name in ("ingest1", "ingest2", "answer"):
            wait_until(lambda name=name: " ready." in topology.log(name, "worker"),  # type: ignore[misc]
                       timeout_s=180, what=f"the worker on {name} to be ready")
        services_s = time.monotonic() - started

        user = user_factory("topology-manager")
        # The web host runs the production settings, whose password hashers do not include the suite's fast one.
        user.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
        user.save(update_fields=["password"])
        collection = collection_with_grant("Topology", user, Role.MANAGER)
        browser = Browser(topology.web_base, user.username)
        store = ChromaVectorStore(host=data.address, port=topology.ports["chroma"],
                                  collection_name=settings.CHROMA_COLLECTION)

        first = browser.upload(collection.pk, [cuad(JOINT_VENTURE), *cuad_smallest(3, skip=40)])
        _wait_ready(first, timeout_s=240)
        first_s = time.monotonic() - started - services_s
        # Both ingest hosts took part.
        assert all("document_ingest_task" in topology.log(name, "worker") for name in ("ingest1", "ingest2"))

        answer_id, events = browser.ask(JOINT_VENTURE_QUESTION)
        kinds = [kind for kind, _ in events]
        assert kinds[0] == "sources" and kinds[-1] == "done" and "token" in kinds, kinds
        sources = events[0][1].get("value") or []
        joint_venture = Document.objects.get(pk=first[0])
        assert sources and {source["document_id"] for source in sources} <= set(first)
        # Numbered sources with document and page, the term clause (page 2 of the joint venture) among them.
        assert any(source["document_id"] == joint_venture.pk and source["page"] == 2
                   and "February 28, 2004" in " ".join(source["text"].split()) for source in sources), sources
        answer = Answer.objects.get(pk=answer_id)
        assert answer.status == AnswerStatus.DONE, (answer.status, answer.error)
        _segments, cited = citations_parse(answer.text, valid_numbers={s["number"] for s in sources})
        assert sorted(Citation.objects.filter(answer=answer).values_list("number", flat=True)) == cited
        answer_s = time.monotonic() - started - services_s - first_s

        second = browser.upload(collection.pk, cuad_smallest(6, skip=50))
        cut_document = _cut_mid_document(topology, second)
        cut_at = time.monotonic()
        _wait_ready(second, timeout_s=240)
        taken_over_s = time.monotonic() - cut_at
        assert Document.objects.get(pk=cut_document).attempts == 2  # the cut host's run, and the one that took over

        # The cut host comes back with its stale run still going: the run finds its claim gone and writes nothing.
        network.plug("ingest1")
        topology.signal_host("ingest1", signal.SIGCONT)
        wait_until(lambda: "taken over by another run" in topology.log("ingest1", "worker"), timeout_s=120,
                   what="the cut host's stale run to find its claim gone")
        time.sleep(3)  # its task's retry, which finds the document finished
        chunks = _assert_ready_once_and_indexed(store, first + second)
        # No vector in Chroma that is not a chunk row: nothing doubled, nothing stray.
        assert store._coll().count() == chunks == Chunk.objects.filter(document__collection=collection).count()
    finally:
        topology.stop()
    print(f"\ntopology ({'namespaces ' + network.subnet if network.namespaces else 'loopback'}): services "
          f"{services_s:.0f} s, first batch {first_s:.0f} s, answer {answer_s:.0f} s, takeover of the cut "
          f"host's document and the rest of the batch {taken_over_s:.0f} s, {chunks} chunks")
