"""Scope words in the keyword index (issue 14): FTS5 filters by collection, document and head ordinal inside the
index, before ranking, instead of ranking every match in the firm and dropping the unreadable ones afterwards.

The FTS5 table gets a second column, `keyword_scope`, read from the chunk row like `text` (external content),
so the delete trigger always removes exactly the words it indexed. PostgreSQL keeps its GIN index on the text and
filters with its planner; the column is filled there too."""

from django.db import migrations, models

SQLITE_FTS_DROP = [
    "DROP TRIGGER IF EXISTS docs_app_chunk_fts_ai",
    "DROP TRIGGER IF EXISTS docs_app_chunk_fts_ad",
    "DROP TRIGGER IF EXISTS docs_app_chunk_fts_au",
    "DROP TABLE IF EXISTS docs_app_chunk_fts",
]
SQLITE_FTS_SCOPED = [
    "CREATE VIRTUAL TABLE docs_app_chunk_fts USING fts5(text, keyword_scope, content='docs_app_chunk', "
    "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER docs_app_chunk_fts_ai AFTER INSERT ON docs_app_chunk BEGIN "
    "INSERT INTO docs_app_chunk_fts(rowid, text, keyword_scope) VALUES (new.id, new.text, new.keyword_scope); END",
    "CREATE TRIGGER docs_app_chunk_fts_ad AFTER DELETE ON docs_app_chunk BEGIN "
    "INSERT INTO docs_app_chunk_fts(docs_app_chunk_fts, rowid, text, keyword_scope) "
    "VALUES ('delete', old.id, old.text, old.keyword_scope); END",
    "CREATE TRIGGER docs_app_chunk_fts_au AFTER UPDATE OF text, keyword_scope ON docs_app_chunk BEGIN "
    "INSERT INTO docs_app_chunk_fts(docs_app_chunk_fts, rowid, text, keyword_scope) "
    "VALUES ('delete', old.id, old.text, old.keyword_scope); "
    "INSERT INTO docs_app_chunk_fts(rowid, text, keyword_scope) VALUES (new.id, new.text, new.keyword_scope); END",
    "INSERT INTO docs_app_chunk_fts(docs_app_chunk_fts) VALUES ('rebuild')",
]
SQLITE_FTS_TEXT_ONLY = [
    "CREATE VIRTUAL TABLE docs_app_chunk_fts USING fts5(text, content='docs_app_chunk', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER docs_app_chunk_fts_ai AFTER INSERT ON docs_app_chunk BEGIN "
    "INSERT INTO docs_app_chunk_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER docs_app_chunk_fts_ad AFTER DELETE ON docs_app_chunk BEGIN "
    "INSERT INTO docs_app_chunk_fts(docs_app_chunk_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER docs_app_chunk_fts_au AFTER UPDATE OF text ON docs_app_chunk BEGIN "
    "INSERT INTO docs_app_chunk_fts(docs_app_chunk_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO docs_app_chunk_fts(rowid, text) VALUES (new.id, new.text); END",
    "INSERT INTO docs_app_chunk_fts(docs_app_chunk_fts) VALUES ('rebuild')",
]
# Mirrors docs_app.models.chunk_keyword_scope (a migration must not import code that may change later).
FILL_SCOPE = (
    "UPDATE docs_app_chunk SET keyword_scope = 'c' || (SELECT d.collection_id FROM docs_app_document d "
    "WHERE d.id = docs_app_chunk.document_id) || ' d' || document_id "
    "|| CASE WHEN ordinal < 8 THEN ' o' || ordinal ELSE '' END"
)


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        # Adding the column rebuilt the chunk table (SQLite), which dropped the old triggers; the index goes too.
        for sql in SQLITE_FTS_DROP:
            schema_editor.execute(sql)
    schema_editor.execute(FILL_SCOPE)
    if schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_FTS_SCOPED:
            schema_editor.execute(sql)


def drop_scoped(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_FTS_DROP:
            schema_editor.execute(sql)


def recreate_text_only(apps, schema_editor):
    # Backwards, after the column is gone: SQLite removes a column by rebuilding the table, which drops its
    # triggers, so the old index and its triggers come back last.
    if schema_editor.connection.vendor == "sqlite":
        for sql in SQLITE_FTS_DROP + SQLITE_FTS_TEXT_ONLY:
            schema_editor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [("docs_app", "0005_audit_chain_keyed")]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, recreate_text_only),
        migrations.AddField(
            model_name="chunk",
            name="keyword_scope",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.RunPython(forwards, drop_scoped),
    ]
