"""The audit log at a million events (issue 14): what verification has covered, remembered (AuditVerification),
and indexes for the audit page's user and date filters."""

import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("docs_app", "0006_chunk_keyword_scope")]

    operations = [
        migrations.CreateModel(
            name="AuditVerification",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("head_id", models.BigIntegerField(default=0)),
                ("head_hash", models.CharField(default="0" * 64, max_length=64)),
                ("head_version", models.PositiveSmallIntegerField(default=1)),
                ("head_count", models.BigIntegerField(default=0)),
                ("sweep_id", models.BigIntegerField(default=0)),
                ("sweep_hash", models.CharField(default="0" * 64, max_length=64)),
                ("sweep_version", models.PositiveSmallIntegerField(default=1)),
                ("sweep_count", models.BigIntegerField(default=0)),
                ("sweep_started_at", models.DateTimeField(blank=True, null=True)),
                ("full_at", models.DateTimeField(blank=True, null=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(django.db.models.functions.text.Lower("actor_name"), name="auditevent_actor_lower"),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["created_at"], name="auditevent_created_at"),
        ),
    ]
