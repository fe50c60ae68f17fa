"""Incremental verification of the audit chain (the audit page) and the whole-chain walk in batches
(`verify_audit`). Plain DB tests; small batches and a zero time budget stand in for a million events."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from docs_app.models import AuditEvent, AuditVerification
from docs_app.services import audit, audit_verification
from docs_app.services.audit import Action, audit_guard_remove, audit_record, event_hash
from docs_app.services.audit_verification import audit_verify_full, audit_verify_incremental

pytestmark = pytest.mark.django_db


def _events(n: int) -> list[AuditEvent]:
    return [audit_record(action=Action.VIEW, actor_name=f"user{i}", document_id=i) for i in range(n)]


def _forge(event: AuditEvent) -> None:
    audit_guard_remove()
    AuditEvent.objects.filter(pk=event.pk).update(outcome="forged")


def test_each_call_verifies_only_what_is_new_and_remembers_the_head() -> None:
    events = _events(5)
    first = audit_verify_incremental()
    assert first.ok and first.checked == 5 and first.head_id == events[-1].pk and first.pending == 0
    more = _events(3)
    second = audit_verify_incremental()
    assert second.ok and second.checked == 8 and second.head_id == more[-1].pk
    state = AuditVerification.objects.get()
    assert (state.head_id, state.head_hash, state.head_count) == (more[-1].pk, more[-1].hash, 8)


def test_a_small_budget_answers_at_once_and_catches_up_over_later_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_verification, "_BATCH", 2)
    monkeypatch.setattr(audit_verification, "_AT_LEAST", 2)
    events = _events(9)
    partial = audit_verify_incremental(budget_s=0)
    assert partial.ok and partial.checked == 2 and partial.pending == 7
    for _ in range(4):
        status = audit_verify_incremental(budget_s=0)
    assert status.ok and status.checked == 9 and status.pending == 0 and status.head_id == events[-1].pk


def test_the_sweep_finds_an_old_row_altered_after_it_was_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_verification, "_BATCH", 2)
    monkeypatch.setattr(audit_verification, "_AT_LEAST", 2)
    events = _events(8)
    while not audit_verify_incremental(budget_s=0).full_at:  # the head, then one complete pass of old events
        pass
    _forge(events[1])
    found = None
    for _ in range(10):
        status = audit_verify_incremental(budget_s=0)
        if not status.ok:
            found = status
            break
    assert found is not None and found.first_broken_id == events[1].pk and "altered" in found.problem
    # A break is not remembered past: every later load says so again.
    assert not audit_verify_incremental().ok


def test_a_rewritten_head_or_a_broken_new_event_is_reported_at_once() -> None:
    events = _events(4)
    assert audit_verify_incremental().ok
    audit_guard_remove()
    rewritten = AuditEvent.objects.get(pk=events[-1].pk)
    rewritten.details = {"page": 99}
    rewritten.hash = event_hash(rewritten)
    rewritten.save()
    status = audit_verify_incremental()
    assert not status.ok and status.first_broken_id == events[-1].pk and "rewritten" in status.problem


def test_a_forged_new_event_is_named() -> None:
    _events(3)
    assert audit_verify_incremental().ok
    new = _events(2)
    _forge(new[0])
    status = audit_verify_incremental()
    assert not status.ok and status.first_broken_id == new[0].pk and status.checked == 3


def test_verify_audit_walks_the_chain_in_batches_and_records_a_complete_pass(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_verification, "_BATCH", 3)
    events = _events(10)
    with CaptureQueriesContext(connection) as queries:
        report = audit_verify_full()
    reads = [q["sql"] for q in queries.captured_queries if 'FROM "docs_app_auditevent"' in q["sql"]]
    assert report.ok and report.checked == 10 and len(reads) == 5  # 3 + 3 + 3 + 1, then an empty page
    assert all("LIMIT 3" in sql for sql in reads)
    state = AuditVerification.objects.get()
    assert state.head_id == events[-1].pk and state.full_at is not None
    out = io.StringIO()
    call_command("verify_audit", stdout=out)
    assert "10 events verified" in out.getvalue() and events[-1].hash in out.getvalue()


# --- The keyed chain (issue 10) seen incrementally --------------------------------------------------------

def test_a_downgraded_new_event_or_a_missing_key_is_named_by_the_page(settings, tmp_path) -> None:
    _events(3)
    assert audit_verify_incremental().ok
    downgraded = _events(1)[0]
    audit_guard_remove()
    AuditEvent.objects.filter(pk=downgraded.pk).update(chain_version=1)
    status = audit_verify_incremental()
    assert not status.ok and status.first_broken_id == downgraded.pk and "downgraded" in status.problem
    AuditEvent.objects.filter(pk=downgraded.pk).update(chain_version=2)
    settings.AUDIT_KEY_FILE = tmp_path / "lost.key"
    status = audit_verify_incremental()
    assert not status.ok and "key file" in status.problem


@pytest.mark.django_db(transaction=True)
def test_the_page_checks_the_newest_anchor_and_verify_audit_every_one(settings, monkeypatch) -> None:
    settings.AUDIT_ANCHOR_EVERY_S = 0
    events = _events(6)  # each anchored after its commit
    assert audit_verify_incremental().ok
    AuditVerification.objects.all().delete()  # a page that has verified nothing yet
    audit_guard_remove()
    AuditEvent.objects.filter(pk=events[-1].pk).delete()  # cut short past the newest anchor
    status = audit_verify_incremental()
    assert not status.ok and f"#{events[-1].pk}" in status.problem and "cut short" in status.problem
    monkeypatch.setattr(audit, "_ANCHOR_BATCH", 2)  # the full check reads anchors a batch at a time
    assert "cut short" in audit.audit_anchors_problem()
    assert not audit_verify_full().ok
