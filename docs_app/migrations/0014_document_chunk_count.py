"""Document.chunk_count: the passages of the current version, so a scope's size is a sum over documents."""

import importlib

from django.db import migrations, models
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce

# Adding a NOT NULL column makes Django rebuild docs_app_document on SQLite, which drops the triggers that keep
# the document names' keyword index in step (migration 0011): they are made again afterwards, in both directions.
_NAMES = importlib.import_module("docs_app.migrations.0011_document_metadata")


def _names_index_remake(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor == "sqlite":
        for sql in _NAMES.SQLITE_NAMES_DROP + _NAMES.SQLITE_NAMES:
            schema_editor.execute(sql)


def _count_chunks(apps, schema_editor):  # type: ignore[no-untyped-def]
    Document = apps.get_model("docs_app", "Document")
    Chunk = apps.get_model("docs_app", "Chunk")
    per_document = (Chunk.objects.filter(document_id=OuterRef("pk")).order_by().values("document_id")
                    .annotate(n=Count("id")).values("n"))
    Document.objects.update(chunk_count=Coalesce(Subquery(per_document), 0))


class Migration(migrations.Migration):

    dependencies = [
        ('docs_app', '0013_upload_batches'),
    ]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, _names_index_remake),
        migrations.AddField(
            model_name='document',
            name='chunk_count',
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(_count_chunks, migrations.RunPython.noop),
        migrations.RunPython(_names_index_remake, migrations.RunPython.noop),
    ]
