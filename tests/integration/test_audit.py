"""Accounts, throttling, the audit trail of every action, the audit review UI, and erasure.

Most tests need only the database. Two drive the real stack (Redis, Chroma, a Celery worker) because the
events they pin are written by the worker: ingestion results and the erasure of the keyword index."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from docs_app.models import (
    AuditEvent,
    Chunk,
    Collection,
    Conversation,
    Document,
    DocumentStatus,
    Grant,
    Question,
    Role,
)
from docs_app.selectors.search import passages_search
from docs_app.services.actor import Actor
from docs_app.services.audit import Action, audit_guard_remove, audit_record
from docs_app.services.grants import (
    AUDITORS_GROUP,
    collection_create,
    grant_revoke,
    grant_set,
    wall_remove,
    wall_set,
)
from docs_app.session_idle import LAST_ACTIVITY_KEY
from docs_app.storage import page_cache_dir
from tests.data import REPO, WEB_HOSTING, cuad, hostile
from tests.harness import PASSWORD, logged_in, make_user, new_events, wait_ready, wait_terminal, wait_until


def _auditor(name: str = "audrey") -> User:
    return make_user(name, Group.objects.get(name=AUDITORS_GROUP))


def _actions(events: list[AuditEvent]) -> list[str]:
    return [e.action for e in events]


def _login(client: Client, username: str, password: str, addr: str = "10.0.0.1", xff: str = "") -> int:
    headers = {"X-Forwarded-For": xff} if xff else {}
    return client.post("/login/", {"username": username, "password": password}, headers=headers,
                       REMOTE_ADDR=addr).status_code


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


# --- Accounts and login throttling --------------------------------------------------------------------------

@pytest.mark.django_db
def test_login_failure_and_logout_each_write_one_event_without_the_password() -> None:
    user = make_user("lena")
    client = Client()
    with new_events() as failed:
        assert _login(client, "lena", "wrong password!", addr="192.0.2.7") == 200
    with new_events() as ok:
        assert _login(client, "lena", PASSWORD, addr="192.0.2.7") == 302
    with new_events() as out:
        client.post("/logout/", REMOTE_ADDR="192.0.2.7")
    assert _actions(failed) == [Action.LOGIN_FAILED]
    assert (failed[0].actor_name, failed[0].outcome, failed[0].client_address) == ("lena", "failed", "192.0.2.7")
    assert _actions(ok) == [Action.LOGIN]
    assert ok[0].actor_id == user.pk and ok[0].client_address == "192.0.2.7"
    assert _actions(out) == [Action.LOGOUT]
    assert out[0].details == {"reason": "user"}
    assert not _signed_in(client)
    dump = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert PASSWORD not in dump and "wrong password!" not in dump


@pytest.mark.django_db
def test_a_password_typed_as_the_user_name_is_not_recorded() -> None:
    with new_events() as events:
        _login(Client(), "Tr0ub4dor&3-secret", "whatever")
    assert _actions(events) == [Action.LOGIN_FAILED]
    assert events[0].actor_name == "" and events[0].details == {"unknown_account": True}
    assert "Tr0ub4dor" not in json.dumps(list(AuditEvent.objects.values()), default=str)


@pytest.mark.django_db
def test_five_failures_lock_the_account_whatever_address_each_attempt_claims() -> None:
    make_user("victim")
    client = Client()
    with new_events() as events:
        for n in range(settings.AXES_FAILURE_LIMIT):
            _login(client, "victim", f"guess {n}", addr=f"198.51.100.{n + 1}", xff=f"203.0.113.{n + 1}")
        # The right password from yet another address is refused: the lock is on the account.
        assert _login(client, "victim", PASSWORD, addr="198.51.100.99", xff="127.0.0.1") == 429
    assert not _signed_in(client)
    assert _actions(events) == [Action.LOGIN_FAILED] * (settings.AXES_FAILURE_LIMIT + 1)
    assert events[-1].outcome == "locked_out"
    # Only REMOTE_ADDR is ever recorded; the forged header is not.
    assert {e.client_address for e in events} <= {f"198.51.100.{n}" for n in range(1, 100)}


@pytest.mark.django_db
def test_a_colleagues_good_login_from_the_same_address_does_not_reset_the_count() -> None:
    """Why the lock is per user only: behind the office proxy every request has the same address, and an
    address-keyed counter would be reset by any colleague's successful login."""
    make_user("victim")
    make_user("insider")
    attacker = Client()
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(attacker, "victim", f"guess {n}", addr="127.0.0.1")
    assert _login(Client(), "insider", PASSWORD, addr="127.0.0.1") == 302
    _login(attacker, "victim", "one more guess", addr="127.0.0.1")
    assert _login(attacker, "victim", PASSWORD, addr="127.0.0.1") == 429


@pytest.mark.django_db
def test_there_is_no_sign_up_route() -> None:
    names = {p.name for p in get_resolver().url_patterns if isinstance(p, URLPattern)}
    assert not {n for n in names if n and ("signup" in n or "register" in n)}
    assert Client().get("/accounts/signup/").status_code == 404


def test_production_settings_pass_the_deploy_check_without_warnings(tmp_path: Path) -> None:
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="docs_app.settings", DOCS_PRODUCTION="1",
               DOCS_SECRET_KEY=secrets.token_urlsafe(64), DOCS_ALLOWED_HOSTS="docs.example.internal",
               DOCS_DATA_DIR=str(tmp_path))
    env.pop("DOCS_DEBUG", None)
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "System check identified no issues" in output
    assert "WARNING" not in output.upper().replace("--FAIL-LEVEL WARNING", "")


# --- Headers and CSRF ---------------------------------------------------------------------------------------

def _all_patterns(resolver: URLResolver | None = None) -> Iterator[URLPattern]:
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from _all_patterns(entry)
        else:
            yield entry


def test_no_view_is_exempt_from_csrf() -> None:
    exempt = [p.name or str(p.pattern) for p in _all_patterns() if getattr(p.callback, "csrf_exempt", False)]
    assert exempt == []


@pytest.mark.django_db
def test_forms_without_a_csrf_token_are_refused() -> None:
    user = make_user("cara")
    client = Client(enforce_csrf_checks=True)
    assert client.post("/login/", {"username": "cara", "password": PASSWORD}).status_code == 403
    client.force_login(user)
    assert client.post("/logout/").status_code == 403
    assert _signed_in(client)
    assert 'name="csrfmiddlewaretoken"' in Client().get("/login/").content.decode()


@pytest.mark.django_db
def test_self_only_content_security_policy_on_pages_and_errors() -> None:
    user = make_user("cspuser")
    client = Client()
    responses = [client.get("/login/")]
    client.force_login(user)
    responses += [client.get("/"), client.get("/documents/987654/"), client.get("/audit/")]
    assert [r.status_code for r in responses] == [200, 200, 404, 403]
    for response in responses:
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert not re.search(r"https?:|\*", csp)


@pytest.mark.django_db
def test_upload_caps_are_wired(settings) -> None:
    assert settings.DATA_UPLOAD_MAX_NUMBER_FILES == settings.UPLOAD_MAX_FILES > 100  # raised for bulk upload
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    owner = make_user("uploader")
    collection = collection_create(name="Caps", actor=Actor(owner))
    client = logged_in(owner)
    files = [SimpleUploadedFile(f"f{i}.pdf", b"%PDF-1.4\n") for i in range(3)]
    assert client.post(f"/collections/{collection.pk}/upload/", {"files": files}).status_code == 400
    assert not Document.objects.exists()


# --- Session idle timeout -----------------------------------------------------------------------------------

@pytest.mark.django_db
def test_background_polling_does_not_keep_an_idle_session_alive(settings) -> None:
    settings.SESSION_IDLE_TIMEOUT_S = 60
    owner = make_user("idler")
    collection = collection_create(name="Idle", actor=Actor(owner))
    client = logged_in(owner)
    assert client.get("/").status_code == 200
    started = client.session[LAST_ACTIVITY_KEY]
    assert client.get(f"/collections/{collection.pk}/status.json").status_code == 200
    assert client.session[LAST_ACTIVITY_KEY] == started  # polling is not activity
    session = client.session
    session[LAST_ACTIVITY_KEY] = time.time() - 61
    session.save()
    with new_events() as events:
        response = client.get(f"/collections/{collection.pk}/status.json")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not _signed_in(client)
    assert _actions(events) == [Action.LOGOUT] and events[0].details == {"reason": "idle"}


@pytest.mark.django_db
def test_a_form_sent_after_the_timeout_says_why_and_returns_to_its_page_after_login(settings) -> None:
    settings.SESSION_IDLE_TIMEOUT_S = 60
    owner = make_user("drafter")
    conversation = Conversation.objects.create(owner=owner, title="t")
    client = logged_in(owner)
    session = client.session
    session[LAST_ACTIVITY_KEY] = time.time() - 61
    session.save()
    page = f"/ask/{conversation.pk}/"
    response = client.post(f"{page}questions/", {"question": "And the notice period?"},
                           HTTP_REFERER=f"http://testserver{page}")
    # Not the POST-only address (405 after login), but the page the question was typed on.
    assert response.status_code == 302 and response["Location"] == f"/login/?next={quote(page, safe='')}"
    assert not Question.objects.exists()
    login_page = client.get(response["Location"]).content.decode()
    assert "signed out after 1 minutes without activity" in login_page
    assert f'name="next" value="{page}"' in login_page
    # A referer from another site is not followed.
    client.force_login(owner)
    session = client.session
    session[LAST_ACTIVITY_KEY] = time.time() - 61
    session.save()
    response = client.post(f"{page}questions/", {"question": "x"}, HTTP_REFERER="https://elsewhere.example/")
    assert response["Location"] == "/login/?next=%2F"


@pytest.mark.django_db
def test_real_activity_within_the_timeout_keeps_the_session(settings) -> None:
    settings.SESSION_IDLE_TIMEOUT_S = 60
    client = logged_in(make_user("busy"))
    session = client.session
    session[LAST_ACTIVITY_KEY] = time.time() - 50
    session.save()
    assert client.get("/").status_code == 200
    assert time.time() - client.session[LAST_ACTIVITY_KEY] < 5
    assert client.get("/").status_code == 200 and _signed_in(client)


# --- Grants, walls and collections: audited in the service, whoever calls it ------------------------------

@pytest.mark.django_db
def test_every_grant_and_wall_change_writes_exactly_one_event() -> None:
    boss, user = make_user("boss"), make_user("worker")
    group = Group.objects.create(name="Litigation")
    as_boss = Actor(boss)
    with new_events() as created:
        collection = collection_create(name="Matter X", actor=as_boss)
    assert _actions(created) == [Action.COLLECTION_CREATE]
    assert Grant.objects.get(collection=collection, user=boss).role == Role.MANAGER

    steps = [
        (lambda: grant_set(collection=collection, role=Role.VIEWER, user=user, actor=as_boss), Action.GRANT_CHANGE),
        (lambda: grant_set(collection=collection, role=Role.CONTRIBUTOR, user=user, actor=as_boss),
         Action.GRANT_CHANGE),
        (lambda: grant_set(collection=collection, role=Role.VIEWER, group=group, actor=as_boss), Action.GRANT_CHANGE),
        (lambda: wall_set(collection=collection, user=user, actor=as_boss), Action.WALL_CHANGE),
        (lambda: wall_remove(grant=Grant.objects.get(user=user), actor=as_boss), Action.WALL_CHANGE),
        (lambda: grant_revoke(grant=Grant.objects.get(group=group), actor=as_boss), Action.GRANT_CHANGE),
    ]
    for step, action in steps:
        with new_events() as events:
            step()
        assert _actions(events) == [action]
        assert events[0].actor_id == boss.pk and events[0].collection_id_ref == collection.pk
    walled = AuditEvent.objects.filter(action=Action.WALL_CHANGE).first()
    assert walled is not None
    assert walled.details == {"principal_type": "user", "principal_id": user.pk, "principal_name": "worker",
                              "role": "deny", "previous_role": "contributor"}
    # Setting what is already there changes nothing and records nothing.
    grant_set(collection=collection, role=Role.VIEWER, user=user, actor=as_boss)
    with new_events() as events:
        grant_set(collection=collection, role=Role.VIEWER, user=user, actor=as_boss)
    assert events == []


@pytest.mark.django_db
def test_a_grant_cannot_quietly_lift_an_ethical_wall() -> None:
    from django.core.exceptions import ValidationError

    boss, user = make_user("boss"), make_user("walled")
    collection = collection_create(name="Matter W", actor=Actor(boss))
    wall_set(collection=collection, user=user, actor=Actor(boss))
    with pytest.raises(ValidationError):
        grant_set(collection=collection, role=Role.MANAGER, user=user, actor=Actor(boss))
    with pytest.raises(ValidationError):
        grant_revoke(grant=Grant.objects.get(user=user), actor=Actor(boss))
    assert Grant.objects.get(user=user).role == Role.DENY


# --- Django admin goes through the same services ------------------------------------------------------------

@pytest.fixture
def admin_client(db) -> Client:
    return logged_in(User.objects.create_superuser("root", password=PASSWORD))


@pytest.mark.django_db
def test_admin_grant_edits_are_audited(admin_client: Client) -> None:
    owner, user = make_user("owner"), make_user("clerk")
    collection = collection_create(name="Admin matter", actor=Actor(owner))
    with new_events() as added:
        r = admin_client.post("/admin/docs_app/grant/add/",
                              {"collection": collection.pk, "user": user.pk, "group": "", "role": "viewer"})
    assert r.status_code == 302, r.content[:2000]
    grant = Grant.objects.get(user=user)
    with new_events() as walled:
        admin_client.post(f"/admin/docs_app/grant/{grant.pk}/change/",
                          {"collection": collection.pk, "user": user.pk, "group": "", "role": "deny"})
    with new_events() as removed:
        admin_client.post(f"/admin/docs_app/grant/{grant.pk}/delete/", {"post": "yes"})
    assert _actions(added) == [Action.GRANT_CHANGE]
    assert _actions(walled) == [Action.WALL_CHANGE]
    assert _actions(removed) == [Action.WALL_CHANGE]
    assert removed[0].details["previous_role"] == "deny" and removed[0].details["role"] is None
    assert not Grant.objects.filter(user=user).exists()


@pytest.mark.django_db
def test_admin_collection_with_inline_grants_is_audited(admin_client: Client) -> None:
    user = make_user("para")
    form = {"name": "Inline matter", "description": "", "grants-TOTAL_FORMS": "1", "grants-INITIAL_FORMS": "0",
            "grants-MIN_NUM_FORMS": "0", "grants-MAX_NUM_FORMS": "1000", "grants-0-user": user.pk,
            "grants-0-group": "", "grants-0-role": "contributor"}
    with new_events() as events:
        assert admin_client.post("/admin/docs_app/collection/add/", form).status_code == 302
    collection = Collection.objects.get(name="Inline matter")
    assert _actions(events) == [Action.COLLECTION_CREATE, Action.GRANT_CHANGE]
    roles = dict(Grant.objects.filter(collection=collection).values_list("user__username", "role"))
    assert roles == {"root": "manager", "para": "contributor"}


@pytest.mark.django_db
def test_admin_cannot_add_change_or_delete_audit_events(admin_client: Client) -> None:
    event = audit_record(action=Action.VIEW, actor_name="someone")
    base = "/admin/docs_app/auditevent"
    assert admin_client.get(f"{base}/").status_code == 200
    assert admin_client.get(f"{base}/add/").status_code == 403
    assert admin_client.post(f"{base}/{event.pk}/change/", {"actor_name": "x"}).status_code == 403
    assert admin_client.post(f"{base}/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).actor_name == "someone"


@pytest.mark.django_db
def test_admin_document_delete_erases_with_a_receipt(admin_client: Client) -> None:
    owner = make_user("owner")
    collection = collection_create(name="Erase matter", actor=Actor(owner))
    document = Document.objects.create(collection=collection, title="Lease", original_name="lease.pdf",
                                       stored_name="x.pdf", sha256="ab" * 32, size_bytes=10)
    Chunk.objects.create(document=document, ordinal=0, page=1, char_start=0, char_end=5, text="hello",
                         embedding=b"")
    assert "hello" not in admin_client.get(f"/admin/docs_app/document/{document.pk}/change/").content.decode()
    with new_events() as events:
        admin_client.post(f"/admin/docs_app/document/{document.pk}/delete/", {"post": "yes"})
    assert _actions(events) == [Action.DELETE]
    assert events[0].details["sha256"] == "ab" * 32 and events[0].actor_name == "root"
    assert not Document.objects.filter(pk=document.pk).exists() and not Chunk.objects.exists()


# --- The audit review UI -------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_auditor_role_exists_after_migrate_and_create_roles_is_idempotent() -> None:
    from django.core.management import call_command

    group = Group.objects.get(name=AUDITORS_GROUP)
    assert list(group.permissions.values_list("codename", flat=True)) == ["review_audit"]
    group.permissions.clear()
    out = io.StringIO()
    call_command("create_roles", stdout=out)
    call_command("create_roles", stdout=out)
    assert Group.objects.filter(name=AUDITORS_GROUP).count() == 1
    assert _auditor().has_perm("docs_app.review_audit")
    assert "review_audit" in out.getvalue()


@pytest.mark.django_db
def test_only_auditors_and_admins_review_the_log_and_auditors_read_no_document() -> None:
    owner = make_user("owner")
    collection = collection_create(name="Secret matter", actor=Actor(owner))
    document = Document.objects.create(collection=collection, title="Secret", original_name="s.pdf",
                                       stored_name="s.pdf", sha256="cd" * 32, size_bytes=1)
    assert Client().get("/audit/")["Location"].startswith("/login/")
    plain = logged_in(owner)
    assert plain.get("/audit/").status_code == 403
    assert plain.get("/audit/export.csv").status_code == 403
    auditor = logged_in(_auditor())
    assert auditor.get("/audit/").status_code == 200
    assert auditor.get(f"/documents/{document.pk}/").status_code == 404
    assert auditor.get(f"/collections/{collection.pk}/").status_code == 404
    assert "Secret matter" not in auditor.get("/").content.decode()


@pytest.mark.django_db
def test_audit_list_filters_pages_and_shows_the_chain_status() -> None:
    for i in range(60):
        audit_record(action=Action.VIEW, actor_name="alice", collection_id=1, document_id=i)
    audit_record(action=Action.DOWNLOAD, actor_name="bob", collection_id=2, document_id=500)
    client = logged_in(_auditor())
    page = client.get("/audit/").content.decode()
    assert "Chain verified" in page and "Page 1 of 2" in page
    only_bob = client.get("/audit/", {"user": "bob", "action": Action.DOWNLOAD}).content.decode()
    assert "1 event," in only_bob and "document.download" in only_bob
    by_doc = client.get("/audit/", {"document": "500"}).content.decode()
    assert "1 event," in by_doc
    assert "0 events" in client.get("/audit/", {"collection": "2", "until": "2000-01-01"}).content.decode()
    audit_guard_remove()
    AuditEvent.objects.filter(document_id_ref=7).update(outcome="forged")
    broken = client.get("/audit/").content.decode()
    forged = AuditEvent.objects.get(document_id_ref=7)
    assert f"Chain BROKEN at event #{forged.pk}" in broken


@pytest.mark.django_db
def test_export_streams_the_filtered_events_and_is_itself_audited() -> None:
    audit_record(action=Action.VIEW, actor_name="alice", document_id=1)
    audit_record(action=Action.DOWNLOAD, actor_name="=cmd|' /C calc'!A0", document_id=2)
    auditor = _auditor()
    client = logged_in(auditor)
    with new_events() as events:
        response = client.get("/audit/export.csv", {"action": Action.DOWNLOAD})
        body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert _actions(events) == [Action.AUDIT_EXPORT]
    assert events[0].actor_id == auditor.pk
    assert events[0].details == {"filters": {"action": Action.DOWNLOAD}, "rows": 1}
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["action"] for r in rows] == [Action.DOWNLOAD]
    assert rows[0]["actor_name"].startswith("'=")


# --- The real stack: events from the worker, and erasure down to the bytes of the database file -----------

def _db_bytes() -> bytes:
    path = Path(connection.settings_dict["NAME"])
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def _checkpoint() -> None:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _index_terms_of(document_id: int, avoid: str) -> set[str]:
    """Long keyword-index terms that occur only in this document's chunks and not in its file name (other
    tests of this session ingest files with the same name; test_erasure.py pins that names go too)."""
    path = connection.settings_dict["NAME"]
    with sqlite3.connect(path) as db:
        db.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, docs_app_chunk_fts, 'row')")
        terms = {t for (t,) in db.execute("SELECT term FROM temp.vocab WHERE length(term) >= 9")
                 if t.isalpha() and t not in avoid.lower()}
    others = " ".join(Chunk.objects.exclude(document_id=document_id).values_list("text", flat=True)).lower()
    return {t for t in terms if t not in others}


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_document_lifecycle_writes_one_event_per_action_and_delete_erases_the_text(services: None) -> None:
    manager, contributor = make_user("mona"), make_user("carl")
    collection = collection_create(name="Lifecycle", actor=Actor(manager))
    grant_set(collection=collection, role=Role.CONTRIBUTOR, user=contributor, actor=Actor(manager))
    carl, mona = Client(), Client()
    carl.force_login(contributor)
    mona.force_login(manager)

    with new_events() as uploaded:
        with cuad(WEB_HOSTING).open("rb") as pdf:
            carl.post(f"/collections/{collection.pk}/upload/", {"files": [pdf]})
        carl.post(f"/collections/{collection.pk}/upload/",
                  {"files": [SimpleUploadedFile("photo.pdf", b"\x89PNG\r\n\x1a\n" + b"\0" * 64)]})
    assert _actions(uploaded) == [Action.UPLOAD, Action.UPLOAD]
    assert [e.outcome for e in uploaded] == ["ok", "rejected"]
    document = Document.objects.get(collection=collection)

    with new_events() as ingested:
        document = wait_ready(document.pk)
    assert _actions(ingested) == [Action.INGEST] and ingested[0].outcome == "ready"

    with new_events() as viewed:
        assert carl.get(f"/documents/{document.pk}/").status_code == 200
    with new_events() as imaged:
        assert carl.get(f"/documents/{document.pk}/pages/1.png").status_code == 200
    with new_events() as downloaded:
        response = carl.get(f"/documents/{document.pk}/download/")
        assert b"".join(response.streaming_content).startswith(b"%PDF")  # type: ignore[attr-defined]
    assert _actions(viewed) == [Action.PAGE_VIEW]
    assert imaged == []  # the viewer page that shows the image recorded the view
    assert _actions(downloaded) == [Action.DOWNLOAD]

    texts = list(Chunk.objects.filter(document=document).values_list("text", flat=True))
    file_path, cache_dir = Path(settings.MEDIA_ROOT) / document.stored_name, page_cache_dir(document)
    assert cache_dir.exists()
    if connection.vendor == "sqlite":
        terms = _index_terms_of(document.pk, avoid=document.original_name + document.title)
        assert len(terms) >= 3, terms
        _checkpoint()
        before = _db_bytes()
        assert texts[0][:40].encode() in before and any(t.encode() in before for t in terms)
    else:
        # PostgreSQL keeps a deleted row's bytes in its files until VACUUM (README, "PostgreSQL"); what this test
        # can pin there is that the rows and their keyword-index matches are gone.
        terms = {w for w in " ".join(texts).split() if len(w) >= 9 and w.isalpha()}
        assert passages_search(user=contributor, text=sorted(terms)[0])

    with new_events() as deleted:
        assert mona.post(f"/documents/{document.pk}/delete/").status_code == 302
    assert _actions(deleted) == [Action.DELETE]
    receipt = deleted[0]
    assert (receipt.document_id_ref, receipt.actor_id, receipt.actor_name) == (document.pk, manager.pk, "mona")
    assert receipt.details["sha256"] == document.sha256 and receipt.created_at is not None
    assert not file_path.exists() and not cache_dir.exists()

    def erased() -> bool:
        if connection.vendor != "sqlite":
            return not Chunk.objects.filter(document_id=document.pk).exists() and not any(
                passages_search(user=contributor, text=t) for t in sorted(terms)[:20])
        _checkpoint()
        data = _db_bytes()
        return not any(t.encode() in data for t in terms) and not any(x[:40].encode() in data for x in texts)

    wait_until(erased, timeout_s=60, what="the keyword index to be compacted by the worker")

    rows = json.dumps(list(AuditEvent.objects.values()), default=str)
    assert PASSWORD not in rows
    assert not any(x[:40] in rows for x in texts)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_failed_ingestion_writes_one_event_from_the_worker(services: None, tmp_path: Path) -> None:
    owner = make_user("owner")
    collection = collection_create(name="Hostile", actor=Actor(owner))
    client = logged_in(owner)
    no_text = tmp_path / "scan.pdf"
    shutil.copy(hostile("qpdf__bad-data-out.pdf"), no_text)
    with no_text.open("rb") as pdf:
        client.post(f"/collections/{collection.pk}/upload/", {"files": [pdf]})
    document = Document.objects.get(collection=collection)
    with new_events() as events:
        assert wait_terminal(document.pk).status == DocumentStatus.FAILED
    assert _actions(events) == [Action.INGEST] and events[0].outcome == "failed"


@pytest.mark.django_db
def test_failed_logins_for_unknown_names_are_aggregated_not_one_row_each(redis_server: str, settings) -> None:
    """Issue 10, item 10: an anonymous client used to add one permanent row per made-up name."""
    from docs_app.auth_events import UNKNOWN_UNRECORDED_KEY, UNKNOWN_WINDOW_KEY
    from docs_app.services.streams import redis_client

    settings.LOGIN_UNKNOWN_EVENT_EVERY_S = 60
    redis_client().delete(UNKNOWN_WINDOW_KEY, UNKNOWN_UNRECORDED_KEY)
    make_user("known")
    client = Client()
    with new_events() as unknown:
        for n in range(50):
            _login(client, f"ghost{n}", "guess")
    assert _actions(unknown) == [Action.LOGIN_FAILED]
    assert unknown[0].details == {"unknown_account": True}
    with new_events() as known:
        for n in range(2):
            _login(client, "known", f"guess {n}")
    assert [(e.action, e.actor_name) for e in known] == [(Action.LOGIN_FAILED, "known")] * 2
    redis_client().delete(UNKNOWN_WINDOW_KEY)  # the minute is over
    with new_events() as later:
        _login(client, "ghost-again", "guess")
    assert _actions(later) == [Action.LOGIN_FAILED]
    assert later[0].details == {"unknown_account": True, "unrecorded_before": 49}
