"""Database-level guarantees the ORM cannot express: the append-only audit table, and the keyword index
over chunk text (SQLite FTS5 on the embedded default, a GIN full-text index on PostgreSQL)."""

from django.db import migrations

SQLITE_FTS = [
    "CREATE VIRTUAL TABLE docs_app_chunk_fts USING fts5(text, content='docs_app_chunk', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER docs_app_chunk_fts_ai AFTER INSERT ON docs_app_chunk BEGIN "
    "INSERT INTO docs_app_chunk_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER docs_app_chunk_fts_ad AFTER DELETE ON docs_app_chunk BEGIN "
    "INSERT INTO docs_app_chunk_fts(docs_app_chunk_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER docs_app_chunk_fts_au AFTER UPDATE OF text ON docs_app_chunk BEGIN "
    "INSERT INTO docs_app_chunk_fts(docs_app_chunk_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO docs_app_chunk_fts(rowid, text) VALUES (new.id, new.text); END",
]
SQLITE_FTS_DROP = [
    "DROP TRIGGER IF EXISTS docs_app_chunk_fts_ai",
    "DROP TRIGGER IF EXISTS docs_app_chunk_fts_ad",
    "DROP TRIGGER IF EXISTS docs_app_chunk_fts_au",
    "DROP TABLE IF EXISTS docs_app_chunk_fts",
]
POSTGRES_FTS = [
    "CREATE INDEX docs_app_chunk_text_fts ON docs_app_chunk USING gin (to_tsvector('english', text))",
]
POSTGRES_FTS_DROP = ["DROP INDEX IF EXISTS docs_app_chunk_text_fts"]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for sql in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(sql)

    return run


def guard_install(apps, schema_editor):
    from docs_app.services.audit import audit_guard_install

    audit_guard_install(schema_editor.connection)


def guard_remove(apps, schema_editor):
    from docs_app.services.audit import audit_guard_remove

    audit_guard_remove(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("docs_app", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE_FTS, "postgresql": POSTGRES_FTS}),
            _run({"sqlite": SQLITE_FTS_DROP, "postgresql": POSTGRES_FTS_DROP}),
        ),
        migrations.RunPython(guard_install, guard_remove),
    ]
