"""The audit log is append-only in the database and hash-chained, and `verify_audit` names the first broken
link. No worker needed: plain DB tests (the autouse `_audit_guard` fixture installs the triggers)."""

from __future__ import annotations

import io
import itertools
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

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


def test_rewritten_chain_passes_alone_but_fails_against_an_anchor() -> None:
    """An attacker who recomputes every hash after an edit produces a valid-looking chain; only a head hash
    kept elsewhere (printed by verify_audit) exposes it."""
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
    assert audit_verify().ok
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
