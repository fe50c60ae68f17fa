"""The append-only, hash-chained audit log.

Each event stores the hash of the one before it; the hash covers every recorded field, so changing,
removing or re-ordering a row breaks the chain at that row and `verify_audit` names it. Independently, the
database itself refuses UPDATE and DELETE on the table (triggers installed by a migration).
Events never hold document text or passwords: only IDs, names and outcomes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from docs_app.models import AuditEvent

if TYPE_CHECKING:
    from docs_app.services.actor import Actor

GENESIS_HASH = "0" * 64
TABLE = AuditEvent._meta.db_table
# Any constant will do: it names the lock that serialises appends on PostgreSQL.
_PG_CHAIN_LOCK = 7_366_001


class Action:
    LOGIN = "auth.login"
    LOGIN_FAILED = "auth.login_failed"
    LOGOUT = "auth.logout"
    PASSWORD_CHANGE = "auth.password_change"  # noqa: S105 - an event name, not a password
    UPLOAD = "document.upload"
    INGEST = "document.ingest"
    VIEW = "document.view"
    PAGE_VIEW = "document.page_view"
    DOWNLOAD = "document.download"
    DELETE = "document.delete"
    RETRY = "document.retry"
    SEARCH = "document.search"
    ASK = "question.ask"
    ANSWER = "question.answer"
    GRANT_CHANGE = "access.grant_change"
    WALL_CHANGE = "access.wall_change"
    COLLECTION_CREATE = "collection.create"
    AUDIT_EXPORT = "audit.export"
    INDEX_REBUILD = "index.rebuild"
    INDEX_REPAIR = "index.repair"


ALL_ACTIONS = sorted(value for name, value in vars(Action).items() if name.isupper())


def _canonical(event: AuditEvent) -> bytes:
    created = event.created_at.astimezone(UTC).isoformat(timespec="microseconds")
    record = {
        "created_at": created,
        "actor_id": event.actor_id,
        "actor_name": event.actor_name,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "collection_id": event.collection_id_ref,
        "document_id": event.document_id_ref,
        "client_address": event.client_address,
        "outcome": event.outcome,
        "details": event.details,
        "prev_hash": event.prev_hash,
    }
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def event_hash(event: AuditEvent) -> str:
    return hashlib.sha256(_canonical(event)).hexdigest()


def audit_record(
    *,
    action: str,
    actor: Actor | None = None,
    actor_name: str = "",
    target_type: str = "",
    target_id: object = "",
    collection_id: int | None = None,
    document_id: int | None = None,
    outcome: str = "ok",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Runs in its own atomic block so it commits with (or rolls back with) the caller's
    work. No actor: the system acted (a worker's own step, a command)."""
    user = actor.user if actor is not None else None
    real_actor = user if user is not None and user.is_authenticated else None
    name = actor_name or (real_actor.get_username() if real_actor is not None else "")
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PG_CHAIN_LOCK])
        # On SQLite the IMMEDIATE transaction already holds the database write lock here, so the
        # read-then-append below cannot interleave with another process.
        last = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        event = AuditEvent(
            created_at=timezone.now(),
            actor_id=real_actor.pk if real_actor is not None else None,
            actor_name=name[:150],
            action=action,
            target_type=target_type,
            target_id=str(target_id)[:64],
            collection_id_ref=collection_id,
            document_id_ref=document_id,
            # Workers act for a request made earlier: their actor carries the address recorded with it.
            client_address=actor.address if actor is not None else "",
            outcome=outcome,
            details=details or {},
            prev_hash=last or GENESIS_HASH,
        )
        event.hash = event_hash(event)
        event.save(force_insert=True)
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    problem: str = ""


def audit_verify(events: Iterable[AuditEvent] | None = None) -> ChainReport:
    """Recompute the chain from the first event and name the first link that does not hold."""
    rows = events if events is not None else AuditEvent.objects.order_by("id").iterator(chunk_size=2000)
    prev = GENESIS_HASH
    checked = 0
    for event in rows:
        if event.prev_hash != prev:
            return ChainReport(False, checked, event.pk,
                               "previous-hash link broken (a row was removed or reordered)")
        if event_hash(event) != event.hash:
            return ChainReport(False, checked, event.pk,
                               "content does not match its hash (the row was altered)")
        prev = event.hash
        checked += 1
    return ChainReport(True, checked)


# --- The database guard -----------------------------------------------------------------------------------

def audit_guard_install(conn: BaseDatabaseWrapper | None = None) -> None:
    """Make the database itself refuse UPDATE and DELETE on the audit table."""
    conn = conn or connection
    with conn.cursor() as cursor:
        if conn.vendor == "sqlite":
            for op in ("UPDATE", "DELETE"):
                cursor.execute(
                    f"CREATE TRIGGER IF NOT EXISTS audit_no_{op.lower()} BEFORE {op} ON {TABLE} "
                    "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;"
                )
        elif conn.vendor == "postgresql":
            cursor.execute(
                "CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'audit log is append-only'; END; $$ LANGUAGE plpgsql;"
            )
            cursor.execute(f"DROP TRIGGER IF EXISTS audit_append_only ON {TABLE};")
            cursor.execute(
                f"CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {TABLE} "
                "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();"
            )


def audit_guard_remove(conn: BaseDatabaseWrapper | None = None) -> None:
    """Only for test-database teardown and the tamper tests: what an attacker with DB rights could do."""
    conn = conn or connection
    with conn.cursor() as cursor:
        if conn.vendor == "sqlite":
            cursor.execute("DROP TRIGGER IF EXISTS audit_no_update;")
            cursor.execute("DROP TRIGGER IF EXISTS audit_no_delete;")
        elif conn.vendor == "postgresql":
            cursor.execute(f"DROP TRIGGER IF EXISTS audit_append_only ON {TABLE};")
