"""The append-only, hash-chained audit log.

Each event stores the hash of the one before it; the hash covers every recorded field, so changing,
removing or re-ordering a row breaks the chain at that row and `verify_audit` names it. Independently, the
database itself refuses UPDATE, DELETE and an INSERT that would replace a row (triggers installed by
migrations). Events never hold document text or passwords: only IDs, names of people, and outcomes.

Chain versions (issue 10, item 4): version 1 events (written before the key existed) hash with plain SHA-256;
version 2 events with HMAC-SHA-256 under a key kept in a file outside the database (docs_app.keyfile), so
someone who can write the database but not read the key cannot recompute the chain after an edit. A version 1
event after a version 2 event is a downgrade and breaks the chain. The head is also anchored outside the
database, in an append-only file (and the `docs_app.audit.anchor` log), so a chain cut short or rebuilt by
someone who does hold the key still fails against the anchors written before.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from docs_app.keyfile import key_read
from docs_app.models import AuditEvent

if TYPE_CHECKING:
    from docs_app.services.actor import Actor

GENESIS_HASH = "0" * 64
CHAIN_VERSION = 2  # what new events are written with; see the module docstring
TABLE = AuditEvent._meta.db_table
# Any constant will do: it names the lock that serialises appends on PostgreSQL.
_PG_CHAIN_LOCK = 7_366_001
anchor_log = logging.getLogger("docs_app.audit.anchor")


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
    MEMBERSHIP_CHANGE = "access.membership_change"
    PERMISSION_CHANGE = "access.permission_change"
    GROUP_DELETE = "access.group_delete"
    COLLECTION_CREATE = "collection.create"
    AUDIT_EXPORT = "audit.export"
    INDEX_REBUILD = "index.rebuild"
    INDEX_REPAIR = "index.repair"
    BACKUP = "system.backup"
    RESTORE = "system.restore"


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
    if event.chain_version != 1:  # version 1 events were hashed without the field
        record["chain_version"] = event.chain_version
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class AuditKeyMissing(ImproperlyConfigured):
    pass


def audit_key() -> bytes:
    key = key_read(Path(settings.AUDIT_KEY_FILE))
    if key is None:
        raise AuditKeyMissing(f"The audit key file {settings.AUDIT_KEY_FILE} is missing: keyed audit events can "
                              "be neither written nor verified. Restore it from its backup, or on a new "
                              "installation create it with `manage.py audit_key_create`.")
    return key


def event_hash(event: AuditEvent) -> str:
    if event.chain_version == 1:
        return hashlib.sha256(_canonical(event)).hexdigest()
    if event.chain_version == CHAIN_VERSION:
        return hmac.new(audit_key(), _canonical(event), hashlib.sha256).hexdigest()
    raise ValueError(f"unknown audit chain version {event.chain_version}")


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
            chain_version=CHAIN_VERSION,
        )
        event.hash = event_hash(event)
        event.save(force_insert=True)
        event_id, event_hash_ = event.pk, event.hash
        transaction.on_commit(lambda: _anchor_if_due(event_id, event_hash_))
    return event


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    first_broken_id: int | None = None
    problem: str = ""


def event_link_problem(event: AuditEvent, *, prev_hash: str, prev_version: int) -> str:
    """Why `event` does not continue a chain whose previous event has `prev_hash` and chain version
    `prev_version` (GENESIS_HASH and 1 before the first event); empty if it does."""
    if event.prev_hash != prev_hash:
        return "previous-hash link broken (a row was removed or reordered)"
    if event.chain_version < prev_version or event.chain_version not in (1, CHAIN_VERSION):
        return "chain version downgraded (an unkeyed row after keyed ones: the row was forged)"
    try:
        computed = event_hash(event)
    except AuditKeyMissing:
        return f"keyed events cannot be verified: the key file {settings.AUDIT_KEY_FILE} is missing"
    if not hmac.compare_digest(computed, event.hash):
        return "content does not match its hash (the row was altered)"
    return ""


# The newest event must be keyed: keyed events seal the unkeyed ones before them (their prev_hash), so an
# all-unkeyed chain is one rebuilt without the key. (Right after the upgrade the first new event, e.g. the next
# login, seals the older events.)
UNKEYED_HEAD = "the newest event is not keyed: the chain was rebuilt without the audit key"


def audit_verify(events: Iterable[AuditEvent] | None = None) -> ChainReport:
    """Recompute the chain from the first event and name the first link that does not hold; then check that
    every head anchored outside the database is still in it, unchanged."""
    rows = events if events is not None else AuditEvent.objects.order_by("id").iterator(chunk_size=2000)
    prev = GENESIS_HASH
    version = 1
    checked = 0
    for event in rows:
        problem = event_link_problem(event, prev_hash=prev, prev_version=version)
        if problem:
            return ChainReport(False, checked, event.pk, problem)
        prev, version = event.hash, event.chain_version
        checked += 1
    if checked and version != CHAIN_VERSION:
        return ChainReport(False, checked, None, UNKEYED_HEAD)
    if events is None:
        problem = audit_anchors_problem()
        if problem:
            return ChainReport(False, checked, None, problem)
    return ChainReport(True, checked)


# --- Anchors: the head, written outside the database --------------------------------------------------------

def _anchor_mac(key: bytes, event_id: int, hash_: str, at: str) -> str:
    return hmac.new(key, f"{event_id}:{hash_}:{at}".encode(), hashlib.sha256).hexdigest()


def audit_anchor(event_id: int, hash_: str) -> None:
    """Append one anchor line (the event id, its hash, when, and a MAC over them) to the anchor file, opened
    append-only, and send the same to the anchor log (route it to syslog or journald: a copy the app's user
    cannot edit)."""
    at = datetime.now(UTC).isoformat(timespec="seconds")
    line = json.dumps({"id": event_id, "hash": hash_, "at": at, "mac": _anchor_mac(audit_key(), event_id, hash_, at)})
    path = Path(settings.AUDIT_ANCHOR_FILE)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)
    anchor_log.info("audit head #%s %s", event_id, hash_)


def audit_anchor_head() -> tuple[int, str] | None:
    head = AuditEvent.objects.order_by("-id").values_list("id", "hash").first()
    if head is not None:
        audit_anchor(*head)
    return head


def _anchor_if_due(event_id: int, hash_: str) -> None:
    """Called after commit: anchors are written periodically, not for every event. The event is committed
    already, so a failure to anchor is logged, not raised into the request that wrote it."""
    try:
        age = time.time() - Path(settings.AUDIT_ANCHOR_FILE).stat().st_mtime
    except FileNotFoundError:
        age = float("inf")
    if age >= settings.AUDIT_ANCHOR_EVERY_S:
        try:
            audit_anchor(event_id, hash_)
        except (OSError, ImproperlyConfigured):
            anchor_log.exception("could not anchor audit event #%s in %s", event_id, settings.AUDIT_ANCHOR_FILE)


_ANCHOR_BATCH = 500


def audit_anchors_problem(*, latest_only: bool = False) -> str:
    """Whether every head anchored outside the database (or only the newest, `latest_only`) is written with the
    audit key and still in the chain, unchanged; empty if so. The file is read line by line and the anchored
    events looked up a batch at a time, so a year of anchors (one a minute) takes bounded memory.

    The newest anchor alone stands for all of them when the chain's links verify: rewriting any event before it
    changes every later hash, the anchored one included."""
    path = Path(settings.AUDIT_ANCHOR_FILE)
    if not path.exists():
        return ""
    key = audit_key()
    lines = [(number, line) for number, line in _last_line(path)] if latest_only else _numbered_lines(path)
    batch: dict[int, str] = {}
    for number, line in lines:
        try:
            entry = json.loads(line)
            event_id, hash_, at, mac = int(entry["id"]), str(entry["hash"]), str(entry["at"]), str(entry["mac"])
        except (ValueError, KeyError, TypeError):
            return f"anchor file line {number} is unreadable"
        if not hmac.compare_digest(mac, _anchor_mac(key, event_id, hash_, at)):
            return f"anchor file line {number} was not written with the audit key"
        batch[event_id] = hash_
        if len(batch) >= _ANCHOR_BATCH:
            problem = _anchored_events_problem(batch)
            if problem:
                return problem
            batch = {}
    return _anchored_events_problem(batch)


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield number, line


def _last_line(path: Path) -> Iterator[tuple[int | str, str]]:
    """The file's last line, read from its end (its number is not counted: "last")."""
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        end = handle.tell()
        handle.seek(max(0, end - 4096))
        tail = handle.read().decode("utf-8", errors="replace").strip().splitlines()
    if tail:
        yield "last", tail[-1]


def _anchored_events_problem(anchors: dict[int, str]) -> str:
    if not anchors:
        return ""
    stored = dict(AuditEvent.objects.filter(id__in=anchors).values_list("id", "hash"))
    for event_id, hash_ in sorted(anchors.items()):
        if stored.get(event_id) != hash_:
            return (f"anchored event #{event_id} is missing or changed: the chain was rewritten or cut short "
                    "after that head was anchored")
    return ""


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
            # INSERT OR REPLACE deletes the row it conflicts with without firing DELETE triggers (unless the
            # connection enabled recursive_triggers): refuse any insert that names an existing id or hash.
            existing = f"SELECT 1 FROM {TABLE} WHERE id = NEW.id OR hash = NEW.hash"  # noqa: S608 - constants
            cursor.execute(
                f"CREATE TRIGGER IF NOT EXISTS audit_no_replace BEFORE INSERT ON {TABLE} WHEN EXISTS ({existing}) "
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
            cursor.execute("DROP TRIGGER IF EXISTS audit_no_replace;")
        elif conn.vendor == "postgresql":
            cursor.execute(f"DROP TRIGGER IF EXISTS audit_append_only ON {TABLE};")
