"""What the database itself enforces beyond the schema: on PostgreSQL, the app's role and its rights.

Migrations run as an owner role; web and workers connect as an app role that does not own the audit table, so
it can append events and read them but can neither change nor remove them, nor drop or disable the append-only
trigger (only a table's owner may). SQLite has no roles: there the triggers are the guard (services.audit).
"""

from __future__ import annotations

from django.db import connection

from docs_app.models import AuditEvent


def database_app_role_grant(*, role: str) -> list[str]:
    """Run as the owner after `migrate`: give `role` what the app needs on every table and sequence of the
    current schema, and only SELECT and INSERT on the audit table. Idempotent; returns the statements run."""
    if connection.vendor != "postgresql":
        raise ValueError("roles exist on PostgreSQL only; on SQLite the audit triggers are the guard")
    who = connection.ops.quote_name(role)
    audit = connection.ops.quote_name(AuditEvent._meta.db_table)
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {who}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {who}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {who}",
        # Owner-only rights (ALTER, DROP, DISABLE TRIGGER) were never granted; TRUNCATE and REFERENCES neither.
        f"REVOKE UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES ON {audit} FROM {who}",
    ]
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableowner FROM pg_tables WHERE tablename = %s", [AuditEvent._meta.db_table])
        owner = cursor.fetchone()
        if owner is not None and owner[0] == role:
            raise ValueError(f"role {role!r} owns the audit table: the app must connect as another role")
        for statement in statements:
            cursor.execute(statement)
    return statements
