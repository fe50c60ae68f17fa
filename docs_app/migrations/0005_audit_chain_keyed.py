"""Audit chain version 2 (HMAC under a key outside the database) and a guard against INSERT OR REPLACE.

Existing events keep chain_version 1 and verify as before; new events are written as version 2."""

from django.db import migrations, models


def guard_install(apps, schema_editor):
    from docs_app.services.audit import audit_guard_install

    audit_guard_install(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("docs_app", "0004_answer_attempts")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="chain_version",
            field=models.PositiveSmallIntegerField(default=1),
        ),
        # Installs the new REPLACE trigger, and the UPDATE/DELETE ones again should the column change have
        # rebuilt the table.
        migrations.RunPython(guard_install, migrations.RunPython.noop),
    ]
