"""The audit log is append-only in the database and hash-chained, and `verify_audit` names the first broken
link. No worker needed: plain DB tests (the autouse `_audit_guard` fixture installs the triggers)."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from datetime import UTC, timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from docs_app.keyfile import key_create
from docs_app.models import AuditEvent
from docs_app.selectors.audit import audit_csv_rows, audit_events_filter
from docs_app.services.audit import (
    GENESIS_HASH,
    Action,
    audit_guard_remove,
    audit_record,
    audit_verify,
    event_hash,
)

pytestmark = pytest.mark.django_db


def _events(n: int = 5) -> list[AuditEvent]:
    return [
        audit_record(
            action=Action.VIEW,
            actor_name=f"user{i}",
            target_type="document",
            target_id=i,
            document_id=i,
            details={"page": i},
        )
        for i in range(n)
    ]


def _verify_cmd(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("verify_audit", *args, stdout=out)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_each_event_links_to_the_previous_hash_and_the_chain_verifies() -> None:
    events = _events()
    assert events[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    report = audit_verify()
    assert report.ok and report.checked == 5
    code, out = _verify_cmd()
    assert code == 0
    assert "5 events verified" in out and events[-1].hash in out


def test_database_refuses_raw_update_and_delete() -> None:
    event = _events(1)[0]
    for sql in (
        f"UPDATE docs_app_auditevent SET outcome = 'forged' WHERE id = {event.pk}",
        f"DELETE FROM docs_app_auditevent WHERE id = {event.pk}",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    assert AuditEvent.objects.get(pk=event.pk).outcome == "ok"


def test_orm_update_and_delete_are_refused_too() -> None:
    _events(2)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.all().update(actor_name="nobody")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.count() == 2


def test_edit_with_guard_removed_is_caught_and_named() -> None:
    events = _events()
    audit_guard_remove()  # what someone with write access to the database file could do
    with connection.cursor() as cursor:
        cursor.execute("UPDATE docs_app_auditevent SET details = %s WHERE id = %s", ['{"page": 99}', events[2].pk])
    code, out = _verify_cmd()
    assert code == 1
    assert f"BROKEN at event #{events[2].pk}" in out
    assert "altered" in out


def test_deleted_middle_row_is_caught_at_the_next_event() -> None:
    events = _events()
    audit_guard_remove()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM docs_app_auditevent WHERE id = %s", [events[2].pk])
    code, out = _verify_cmd()
    assert code == 1
    assert f"BROKEN at event #{events[3].pk}" in out
    assert "removed or reordered" in out


def test_changed_timestamp_breaks_the_chain() -> None:
    events = _events(3)
    audit_guard_remove()
    AuditEvent.objects.filter(pk=events[1].pk).update(created_at=events[1].created_at - timedelta(days=1))
    report = audit_verify()
    assert not report.ok and report.first_broken_id == events[1].pk


def test_rewritten_chain_passes_alone_but_fails_against_an_anchor(settings) -> None:
    """An attacker who holds the key and recomputes every hash after an edit produces a valid-looking chain;
    a head kept elsewhere exposes it: the one verify_audit anchored by itself, and one passed with --anchor."""
    events = _events()
    _, out = _verify_cmd()
    anchor = events[-1].hash
    assert anchor in out
    audit_guard_remove()
    prev = events[1].hash
    for event in AuditEvent.objects.filter(pk__gte=events[2].pk).order_by("id"):
        if event.pk == events[2].pk:
            event.details = {"page": 99}
        event.prev_hash = prev
        event.hash = event_hash(event)
        event.save()
        prev = event.hash
    assert audit_verify(AuditEvent.objects.order_by("id")).ok  # the chain alone
    code, out = _verify_cmd("--anchor", anchor)
    assert code == 1 and "rewritten or cut short" in out
    settings.AUDIT_ANCHOR_FILE.unlink()  # the anchor file lost too: the head written down elsewhere remains
    code, out = _verify_cmd("--anchor", anchor)
    assert code == 1 and "REWRITTEN or TRUNCATED" in out


def test_filters_select_by_user_action_collection_document_and_dates() -> None:
    audit_record(action=Action.LOGIN, actor_name="alice")
    audit_record(action=Action.VIEW, actor_name="alice", collection_id=7, document_id=70)
    audit_record(action=Action.VIEW, actor_name="bob", collection_id=8, document_id=80)
    assert audit_events_filter(actor_name="ALICE").count() == 2
    assert audit_events_filter(action=Action.VIEW).count() == 2
    assert list(audit_events_filter(collection_id=8).values_list("actor_name", flat=True)) == ["bob"]
    assert audit_events_filter(document_id=70).count() == 1
    newest = AuditEvent.objects.order_by("-id").first()
    assert newest is not None
    assert audit_events_filter(since=newest.created_at + timedelta(seconds=1)).count() == 0
    assert audit_events_filter(until=newest.created_at + timedelta(seconds=1)).count() == 3


def test_csv_cells_cannot_smuggle_spreadsheet_formulas() -> None:
    audit_record(action=Action.UPLOAD, actor_name='=HYPERLINK("http://x")', details={"name": "@evil.pdf"})
    header, row = list(audit_csv_rows(audit_events_filter()))
    assert header[0] == "id"
    assert row[header.index("actor_name")].startswith("'=")
    assert all(not cell.startswith(("=", "+", "-", "@")) for cell in row)


# --- Issue 10, item 4: REPLACE, the keyed chain, anchors outside the database -----------------------------

def _unkeyed_hash(event: AuditEvent) -> str:
    """What someone without the key can compute: the plain SHA-256 chain of version 1."""
    record = {
        "created_at": event.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor_id": event.actor_id, "actor_name": event.actor_name, "action": event.action,
        "target_type": event.target_type, "target_id": event.target_id, "collection_id": event.collection_id_ref,
        "document_id": event.document_id_ref, "client_address": event.client_address, "outcome": event.outcome,
        "details": event.details, "prev_hash": event.prev_hash,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _rows() -> tuple[list[str], list[list[object]]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM docs_app_auditevent ORDER BY id")
        columns = [c[0] for c in cursor.description]
        return columns, [list(row) for row in cursor.fetchall()]


def test_insert_or_replace_cannot_rewrite_an_event() -> None:
    """With the triggers in place, REPLACE used to delete and re-insert a row without firing the DELETE guard.
    PostgreSQL's form of it, INSERT ... ON CONFLICT DO UPDATE, fires the UPDATE guard."""
    events = _events(3)
    columns, rows = _rows()
    row = rows[1]
    row[columns.index("outcome")] = "forged"
    for conflict in ("id", "hash"):  # a REPLACE conflicting on either unique column deletes the old row
        if conflict == "hash":
            row[columns.index("id")] = events[-1].pk + 100
        values = ", ".join(["%s"] * len(columns))
        if connection.vendor == "postgresql":
            sql = (f"INSERT INTO docs_app_auditevent ({', '.join(columns)}) VALUES ({values}) "
                   f"ON CONFLICT ({conflict}) DO UPDATE SET outcome = EXCLUDED.outcome")
        else:
            sql = f"INSERT OR REPLACE INTO docs_app_auditevent ({', '.join(columns)}) VALUES ({values})"
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
            cur.execute(sql, row)
    assert [e.outcome for e in AuditEvent.objects.order_by("id")] == ["ok"] * 3


def test_a_chain_rebuilt_without_the_key_fails_verification() -> None:
    """64 events rewritten with recomputed unkeyed hashes (the guard dropped, as the database file's owner can)
    used to verify as intact."""
    events = _events(64)
    assert audit_verify().ok
    audit_guard_remove()
    prev = GENESIS_HASH
    for event in AuditEvent.objects.order_by("id"):
        if event.pk == events[10].pk:
            event.details = {"page": 999}
        event.chain_version = 1
        event.prev_hash = prev
        event.hash = _unkeyed_hash(event)
        prev = event.hash
        AuditEvent.objects.filter(pk=event.pk).update(details=event.details, chain_version=1,
                                                      prev_hash=event.prev_hash, hash=event.hash)
    report = audit_verify()
    assert not report.ok and "not keyed" in report.problem
    code, out = _verify_cmd()
    assert code == 1 and "BROKEN" in out


def test_keyed_events_do_not_verify_under_another_key_or_without_it(settings, tmp_path) -> None:
    events = _events(3)
    settings.AUDIT_KEY_FILE = tmp_path / "other.key"
    key_create(settings.AUDIT_KEY_FILE)
    report = audit_verify()
    assert not report.ok and report.first_broken_id == events[0].pk and "altered" in report.problem
    settings.AUDIT_KEY_FILE = tmp_path / "lost.key"
    report = audit_verify()
    assert not report.ok and "key file" in report.problem and "missing" in report.problem


def test_events_written_before_the_key_still_verify_and_are_sealed_by_the_next_keyed_one() -> None:
    """An unkeyed (version 1) prefix, as an upgraded installation has, verifies; the first keyed event links to
    it; an unkeyed event after a keyed one is refused as a downgrade."""
    events = _events(3)
    audit_guard_remove()
    prev = GENESIS_HASH
    for event in events:  # make them what the previous version wrote
        event.chain_version, event.prev_hash = 1, prev
        event.hash = _unkeyed_hash(event)
        prev = event.hash
        AuditEvent.objects.filter(pk=event.pk).update(chain_version=1, prev_hash=event.prev_hash, hash=event.hash)
    assert "not keyed" in audit_verify().problem  # not yet sealed
    sealed = audit_record(action=Action.LOGIN, actor_name="first-after-upgrade")
    assert sealed.chain_version == 2 and sealed.prev_hash == prev
    assert audit_verify().ok
    downgraded = audit_record(action=Action.VIEW, actor_name="x")
    AuditEvent.objects.filter(pk=downgraded.pk).update(chain_version=1)
    downgraded.refresh_from_db()
    AuditEvent.objects.filter(pk=downgraded.pk).update(hash=_unkeyed_hash(downgraded))
    report = audit_verify()
    assert not report.ok and report.first_broken_id == downgraded.pk and "downgraded" in report.problem


@pytest.mark.django_db(transaction=True)
def test_heads_are_anchored_outside_the_database_and_catch_a_cut_or_a_keyed_rewrite(settings) -> None:
    """Even someone holding the key cannot cut the chain short or rebuild it past an anchored head unnoticed;
    the anchor file is written after commit, without anyone running a command."""
    settings.AUDIT_ANCHOR_EVERY_S = 0
    events = _events(6)
    lines = settings.AUDIT_ANCHOR_FILE.read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [e.pk for e in events]
    assert oct(settings.AUDIT_ANCHOR_FILE.stat().st_mode & 0o777) == "0o600"
    assert audit_verify().ok
    audit_guard_remove()
    AuditEvent.objects.filter(pk__gte=events[4].pk).delete()  # cut short: the chain alone still verifies
    report = audit_verify()
    assert not report.ok and f"#{events[4].pk}" in report.problem and "cut short" in report.problem
    code, out = _verify_cmd()
    assert code == 1 and "BROKEN" in out


@pytest.mark.django_db(transaction=True)
def test_an_anchor_line_written_without_the_key_is_rejected(settings) -> None:
    settings.AUDIT_ANCHOR_EVERY_S = 0
    events = _events(2)
    with settings.AUDIT_ANCHOR_FILE.open("a") as anchors:
        anchors.write(json.dumps({"id": events[0].pk, "hash": events[0].hash, "at": "2030-01-01T00:00:00+00:00",
                                  "mac": "0" * 64}) + "\n")
    report = audit_verify()
    assert not report.ok and "not written with the audit key" in report.problem
