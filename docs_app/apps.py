from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DocsAppConfig(AppConfig):
    name = "docs_app"
    verbose_name = "Private documents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed

        from docs_app import auth_events, checks, membership_audit

        user_logged_in.connect(auth_events.on_user_logged_in, dispatch_uid="docs_audit_login")
        user_logged_out.connect(auth_events.on_user_logged_out, dispatch_uid="docs_audit_logout")
        user_login_failed.connect(auth_events.on_user_login_failed, dispatch_uid="docs_audit_login_failed")
        # Group membership and permissions decide access as much as grants do: audited whoever changes them.
        membership_audit.connect()
        # Roles are code, not data: every migrate (and every test-database flush) recreates them.
        post_migrate.connect(_roles_after_migrate, sender=self, dispatch_uid="docs_roles_ensure")
        checks.data_directory_warn()


def _roles_after_migrate(**kwargs: Any) -> None:
    from docs_app.services.grants import roles_ensure

    roles_ensure(using=kwargs.get("using", "default"))
