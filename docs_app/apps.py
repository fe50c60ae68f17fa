from django.apps import AppConfig


class DocsAppConfig(AppConfig):
    name = "docs_app"
    verbose_name = "Private documents"
    default_auto_field = "django.db.models.BigAutoField"
