"""Section headings in the keyword index: a passage's heading ("22 Jurisdiction and Choice of Law") names what
its clause is about in words the clause itself rarely repeats. The embedded text already carries the heading
(pipeline.prepare); the keyword side now matches it too. bench/retrieval.py, 60 CUAD contracts, every phrasing
the same or better (README, stop 25).

SQLite: the FTS5 table gets a third column, `heading`, read from the chunk row like the others (external content,
so the delete trigger removes exactly what was indexed). PostgreSQL: a GIN index on the heading and text together,
the expression the keyword queries match (selectors.retrieval.PASSAGE_TSVECTOR)."""

import importlib

from django.db import migrations

_SCOPED = importlib.import_module("docs_app.migrations.0006_chunk_keyword_scope")

SQLITE_FTS_WITH_HEADING = [
    "CREATE VIRTUAL TABLE docs_app_chunk_fts USING fts5(text, keyword_scope, heading, content='docs_app_chunk', "
    "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER docs_app_chunk_fts_ai AFTER INSERT ON docs_app_chunk BEGIN "
    "INSERT INTO docs_app_chunk_fts(rowid, text, keyword_scope, heading) "
    "VALUES (new.id, new.text, new.keyword_scope, new.heading); END",
    "CREATE TRIGGER docs_app_chunk_fts_ad AFTER DELETE ON docs_app_chunk BEGIN "
    "INSERT INTO docs_app_chunk_fts(docs_app_chunk_fts, rowid, text, keyword_scope, heading) "
    "VALUES ('delete', old.id, old.text, old.keyword_scope, old.heading); END",
    "CREATE TRIGGER docs_app_chunk_fts_au AFTER UPDATE OF text, keyword_scope, heading ON docs_app_chunk BEGIN "
    "INSERT INTO docs_app_chunk_fts(docs_app_chunk_fts, rowid, text, keyword_scope, heading) "
    "VALUES ('delete', old.id, old.text, old.keyword_scope, old.heading); "
    "INSERT INTO docs_app_chunk_fts(rowid, text, keyword_scope, heading) "
    "VALUES (new.id, new.text, new.keyword_scope, new.heading); END",
    "INSERT INTO docs_app_chunk_fts(docs_app_chunk_fts) VALUES ('rebuild')",
]
POSTGRES_INDEX = ("CREATE INDEX IF NOT EXISTS docs_app_chunk_heading_text_fts ON docs_app_chunk "
                  "USING gin (to_tsvector('english', heading || ' ' || text))")
POSTGRES_INDEX_DROP = "DROP INDEX IF EXISTS docs_app_chunk_heading_text_fts"


def forwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "sqlite":
        for sql in _SCOPED.SQLITE_FTS_DROP + SQLITE_FTS_WITH_HEADING:
            schema_editor.execute(sql)
    else:
        schema_editor.execute(POSTGRES_INDEX)


def backwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "sqlite":
        for sql in _SCOPED.SQLITE_FTS_DROP + _SCOPED.SQLITE_FTS_SCOPED:
            schema_editor.execute(sql)
    else:
        schema_editor.execute(POSTGRES_INDEX_DROP)


class Migration(migrations.Migration):
    dependencies = [("docs_app", "0014_document_chunk_count")]

    operations = [migrations.RunPython(forwards, backwards)]
