"""Django admin for access and oversight. Every grant or wall change goes through services.grants and every
document deletion through services.documents, so the admin writes the same audit events (and erases the
same files) as the app. The audit log is read-only here as it is in the database."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from docs_app import admin_accounts  # noqa: F401 - registers the wall-aware user and group admins
from docs_app.models import AuditEvent, Collection, Document, Grant, Role
from docs_app.services.actor import Actor
from docs_app.services.documents import document_delete
from docs_app.services.grants import collection_create, grant_revoke, grant_set, wall_remove, wall_set
from docs_app.web import request_actor


def _grant_apply(*, actor: Actor, before: Grant | None, after: Grant | None) -> None:
    """Turn one admin edit of a Grant row into service calls: set what is, then remove what was. Setting first
    matters: moving the only manager grant from one person to another must never pass through "no manager"."""
    moved = before is not None and (after is None or (before.user_id, before.group_id) != (after.user_id,
                                                                                            after.group_id))
    if after is not None:
        if not moved and before is not None and before.role == Role.DENY and after.role != Role.DENY:
            wall_remove(grant=before, actor=actor)
        who: dict[str, Any] = {"user": after.user, "group": after.group}
        if after.role == Role.DENY:
            saved = wall_set(collection=after.collection, actor=actor, **who)
        else:
            saved = grant_set(collection=after.collection, role=after.role, actor=actor, **who)
        after.pk = saved.pk
    if moved and before is not None:
        remover = wall_remove if before.role == Role.DENY else grant_revoke
        remover(grant=before, actor=actor)


def _refused(request: HttpRequest, error: ValidationError) -> None:
    # The services refuse changes that would break an access rule (e.g. leave a collection with no manager);
    # in the admin that is a message to the administrator, not a server error.
    messages.error(request, "; ".join(error.messages))


def _grant_before(grant: Grant) -> Grant | None:
    return Grant.objects.select_related("user", "group", "collection").filter(pk=grant.pk).first() \
        if grant.pk else None


class GrantInline(admin.TabularInline):  # type: ignore[type-arg]
    model = Grant
    extra = 1
    fields = ["user", "group", "role"]


@admin.register(Collection)
class CollectionAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["name", "created_by", "created_at"]
    search_fields = ["name"]
    fields = ["name", "description"]
    inlines = [GrantInline]

    def save_model(self, request: HttpRequest, obj: Collection, form: Any, change: bool) -> None:
        if change:
            obj.save()
            return
        created = collection_create(name=obj.name, description=obj.description, actor=request_actor(request))
        obj.pk, obj.created_by, obj.created_at = created.pk, created.created_by, created.created_at

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not Grant:
            super().save_formset(request, form, formset, change)
            return
        pending = formset.save(commit=False)
        try:
            for grant in pending:
                _grant_apply(actor=request_actor(request), before=_grant_before(grant), after=grant)
            for deleted in formset.deleted_objects:
                _grant_apply(actor=request_actor(request), before=_grant_before(deleted), after=None)
        except ValidationError as error:
            _refused(request, error)

    def has_delete_permission(self, request: HttpRequest, obj: Collection | None = None) -> bool:
        # Deleting a collection would drop its grants and walls without a trace; documents must be erased
        # one by one (each with its receipt) and the collection then kept as a record of the matter.
        return False


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["collection", "user", "group", "role", "created_at"]
    list_filter = ["role", "collection"]
    fields = ["collection", "user", "group", "role"]

    def save_model(self, request: HttpRequest, obj: Grant, form: Any, change: bool) -> None:
        try:
            _grant_apply(actor=request_actor(request), before=_grant_before(obj) if change else None, after=obj)
        except ValidationError as error:
            _refused(request, error)

    def delete_model(self, request: HttpRequest, obj: Grant) -> None:
        try:
            _grant_apply(actor=request_actor(request), before=obj, after=None)
        except ValidationError as error:
            _refused(request, error)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Grant]) -> None:
        try:
            for grant in queryset.select_related("user", "group", "collection"):
                _grant_apply(actor=request_actor(request), before=grant, after=None)
        except ValidationError as error:
            _refused(request, error)


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Metadata only: the admin never shows extracted text or names; reading a document is a grant-checked,
    audited act in the app, not an admin privilege."""

    # No title or file name, here or in search: administering the system is not reading what the documents are
    # called ("Smith, HIV test results.pdf" is content). Ids and hashes identify a document well enough.
    list_display = ["id", "collection_id", "status", "page_count", "size_bytes", "uploaded_by", "created_at"]
    list_filter = ["status"]
    search_fields = ["=id", "sha256"]
    fields = ("id", "collection_id", "sha256", "size_bytes", "page_count", "status", "error",
              "attempts", "version", "uploaded_by", "created_at", "updated_at")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # uploads go through the app's validation and ingestion

    def has_change_permission(self, request: HttpRequest, obj: Document | None = None) -> bool:
        return False

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        document_delete(document=obj, actor=request_actor(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        for document in queryset:
            document_delete(document=document, actor=request_actor(request))


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ["id", "created_at", "actor_name", "action", "target_type", "target_id",
                    "collection_id_ref", "document_id_ref", "client_address", "outcome"]
    list_filter = ["action", "outcome"]
    search_fields = ["actor_name", "target_id"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False
