"""On PostgreSQL the app connects as a role that does not own the audit table (issue 15): it appends and reads
events, and the database refuses it everything that could change, remove or unguard them, whatever the trigger.
Runs under `make test-postgres` (the role comes from DOCS_TEST_APP_DATABASE_URL); skipped on SQLite, which has
no roles and where the triggers are the guard (tests/unit/test_audit_chain.py)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from docs_app.models import AuditEvent
from docs_app.services.audit import Action, audit_record
from tests.conftest import app_database_url, on_postgresql

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not on_postgresql(), reason="PostgreSQL roles: run with `make test-postgres`"),
]

TABLE = AuditEvent._meta.db_table


@pytest.fixture
def app_connection() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(app_database_url().replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        yield conn


@pytest.mark.parametrize("statement", [
    f"DROP TRIGGER audit_append_only ON {TABLE}",
    f"ALTER TABLE {TABLE} DISABLE TRIGGER audit_append_only",
    f"ALTER TABLE {TABLE} DISABLE TRIGGER ALL",
    f"ALTER TABLE {TABLE} DROP COLUMN prev_hash",
    f"ALTER TABLE {TABLE} OWNER TO CURRENT_USER",
    f"DROP TABLE {TABLE}",
    f"TRUNCATE {TABLE}",
    f"UPDATE {TABLE} SET outcome = 'forged'",
    f"DELETE FROM {TABLE}",
    "DROP FUNCTION audit_append_only()",
    "CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger AS $$ BEGIN RETURN NULL; END; $$ "
    "LANGUAGE plpgsql",
])
def test_app_role_cannot_change_remove_or_unguard_audit_events(
        app_connection: psycopg.Connection[tuple[object, ...]], statement: str) -> None:
    event = audit_record(action=Action.VIEW, actor_name="someone", target_type="document", target_id=1)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_connection.execute(statement)
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.outcome, stored.hash) == ("ok", event.hash)
    assert AuditEvent.objects.count() == 1


def test_app_role_appends_and_reads_events_and_owns_nothing(
        app_connection: psycopg.Connection[tuple[object, ...]]) -> None:
    """What the app needs still works as that role (the suite's workers run with it and write events too)."""
    event = audit_record(action=Action.VIEW, actor_name="someone", target_type="document", target_id=1)
    conn = app_connection
    assert conn.execute(f"SELECT hash FROM {TABLE} WHERE id = %s", [event.pk]).fetchone() == (event.hash,)
    rights = conn.execute(
        "SELECT has_table_privilege(current_user, %s, 'INSERT'), has_table_privilege(current_user, %s, 'UPDATE'), "
        "has_table_privilege(current_user, 'docs_app_chunk', 'DELETE')", [TABLE, TABLE]).fetchone()
    assert rights == (True, False, True)
    owned = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = current_user"
    ).fetchone()
    assert owned == (0,)
    assert conn.execute("SELECT current_user = tableowner FROM pg_tables WHERE tablename = %s",
                        [TABLE]).fetchone() == (False,)
