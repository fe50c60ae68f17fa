from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("docs_app", "0003_question_client_address")]

    operations = [
        migrations.AddField(
            model_name="answer",
            name="attempts",
            field=models.PositiveSmallIntegerField(default=0),
        ),
    ]
