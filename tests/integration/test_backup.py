"""Backups that restore (issue 15): ingest and ask here, `manage.py backup`, then `manage.py restore` into a fresh
instance (its own data directory, database, Chroma server and Redis database; the audit key copied as from its
own backup) whose answers cite the same pages and whose audit chain verifies. Real services throughout; on
PostgreSQL (`make test-postgres`) the same test goes through pg_dump and pg_restore."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from docs_app.devservices import Services, free_port
from docs_app.models import Answer, AnswerStatus, AuditEvent, Citation, Role
from docs_app.services.audit import Action
from tests.conftest import on_postgresql
from tests.data import JOINT_VENTURE, JOINT_VENTURE_QUESTION, REPO, cuad
from tests.harness import CollectionFactory, DocumentFactory, UserFactory, ask, logged_in, stream_events

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def fresh_instance(tmp_path: Path, devservices: Services) -> Iterator[dict[str, str]]:
    """The environment of an empty instance on this machine, sharing only the Redis server (another database
    number) and the stand-in model file with the suite."""
    root = tmp_path / "fresh"
    keys = root / "keys"
    keys.mkdir(mode=0o700, parents=True)
    shutil.copy2(settings.AUDIT_KEY_FILE, keys / "audit-hmac.key")  # the key comes back from its own backup
    chroma_port = free_port()
    chroma = devservices.chroma(port=chroma_port, path=root / "chroma")
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "docs_app.settings",
        "DOCS_DATA_DIR": str(root / "data"),
        "DOCS_AUDIT_KEY_FILE": str(keys / "audit-hmac.key"),
        "DOCS_AUDIT_ANCHOR_FILE": str(keys / "audit-anchors.log"),
        "DOCS_CHROMA_PORT": str(chroma_port),
        "DOCS_REDIS_URL": str(settings.REDIS_URL).rsplit("/", 1)[0] + "/1",
        "DOCS_LLM_MODEL_PATH": str(settings.LLM_STANDIN_PATH),
    })
    database = ""
    if on_postgresql():
        database = f"restored_{os.getpid()}"
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {database}")
        env["DOCS_DATABASE_URL"] = urlunsplit(urlsplit(os.environ["DOCS_DATABASE_URL"])._replace(path="/" + database))
    else:
        env["DOCS_DATABASE_URL"] = f"sqlite:///{root / 'db.sqlite3'}"
    yield env
    devservices.stop(chroma)
    if database:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "manage.py"), *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=600, check=False)


def test_backup_restored_into_a_fresh_instance_answers_citing_the_same_pages_with_the_audit_chain_intact(
        tmp_path: Path, fresh_instance: dict[str, str], user_factory: UserFactory,
        collection_with_grant: CollectionFactory, ingested_document: DocumentFactory) -> None:
    user = user_factory("alice")
    collection = collection_with_grant("Matter MightyCell", user, Role.VIEWER)
    document = ingested_document(collection, cuad(JOINT_VENTURE))
    asked = ask(logged_in(user), JOINT_VENTURE_QUESTION)
    assert stream_events(logged_in(user), asked["stream_url"])[-1].event == "done"
    answer = Answer.objects.get(pk=asked["answer_id"])
    assert answer.status == AnswerStatus.DONE
    sources = [[s["document_id"], s["page"], s["chunk_id"]] for s in answer.sources]
    citations = [[c.number, c.document_id, c.page] for c in Citation.objects.filter(answer=answer)]
    assert sources and {page for _, page, _ in sources} >= {2}  # the term clause is on page 2

    backup = tmp_path / "backup"
    out = io.StringIO()
    call_command("backup", str(backup), stdout=out)
    manifest = json.loads((backup / "manifest.json").read_text())
    backup_event = AuditEvent.objects.filter(action=Action.BACKUP).get()
    assert manifest["audit"]["head_id"] == backup_event.pk and manifest["audit"]["head_hash"] == backup_event.hash
    assert [(f["document_id"], f["sha256"]) for f in manifest["files"]] == [(document.pk, document.sha256)]
    assert manifest["counts"]["chunks"] == document.chunks.count()
    assert (backup / ("database.pgdump" if on_postgresql() else "database.sqlite3")).is_file()
    # Not in the backup: the key (kept apart), nor Chroma's files (rebuilt from the database).
    key = settings.AUDIT_KEY_FILE.read_text().strip()
    assert all(key.encode() not in path.read_bytes() for path in backup.rglob("*") if path.is_file())
    assert not any("chroma" in path.name for path in backup.rglob("*"))

    restored = _manage(fresh_instance, "restore", str(backup))
    assert restored.returncode == 0, restored.stderr + restored.stdout
    assert f"1 documents, {document.chunks.count()} chunks, 1 files" in restored.stdout

    probe = subprocess.run([sys.executable, "-m", "tests.instance_probe", "alice", JOINT_VENTURE_QUESTION],
                           env=fresh_instance, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert probe.returncode == 0, probe.stderr[-3000:]
    again = json.loads(probe.stdout.strip().splitlines()[-1])
    assert again["status"] == AnswerStatus.DONE, again["error"]
    assert again["sources"] == sources
    assert again["citations"] == citations

    verified = _manage(fresh_instance, "verify_audit")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit chain intact" in verified.stdout
    # The restored chain goes on from the backup's head: the restore and the new question are recorded after it.
    actions = _manage(fresh_instance, "shell", "-c", (
        "from docs_app.models import AuditEvent as E; "
        f"print([e.action for e in E.objects.filter(id__gte={backup_event.pk}).order_by('id')])"))
    assert actions.returncode == 0, actions.stderr
    listed = actions.stdout.strip().splitlines()[-1]
    assert listed.startswith(f"['{Action.BACKUP}', '{Action.INDEX_REBUILD}', '{Action.RESTORE}'"), listed
    assert Action.ASK in listed


def test_restore_refuses_an_instance_that_holds_data(tmp_path: Path, user_factory: UserFactory) -> None:
    user_factory("alice")
    call_command("backup", str(tmp_path / "backup"), stdout=io.StringIO())
    with pytest.raises(CommandError, match=r"already holds data|not empty"):
        call_command("restore", str(tmp_path / "backup"), stdout=io.StringIO())
    assert AuditEvent.objects.filter(action=Action.RESTORE).count() == 0
