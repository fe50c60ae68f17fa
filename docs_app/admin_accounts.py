"""Users and groups in the Django admin (imported by docs_app.admin). Membership and permission changes are
audited by services.membership whoever makes them; here the admin forms refuse, with a message instead of an
error page, a membership change that would lift an ethical wall, and a group deletion that would."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from docs_app.models import Grant, Role
from docs_app.services.membership import wall_lift_refusal, walls_lifted_by_leaving

User = get_user_model()


class WallAwareUserChangeForm(UserChangeForm):  # type: ignore[type-arg]
    def clean_groups(self) -> Any:
        groups = self.cleaned_data.get("groups")
        if self.instance.pk and groups is not None:
            kept = {group.pk for group in groups}
            leaving = set(self.instance.groups.values_list("id", flat=True)) - kept
            lifted = walls_lifted_by_leaving(user_id=self.instance.pk, group_ids=leaving)
            if lifted:
                raise wall_lift_refusal(username=self.instance.get_username(), lifted=lifted)
        return groups


class DocsUserAdmin(UserAdmin):  # type: ignore[type-arg]
    form = WallAwareUserChangeForm


def _walls_members(group: Group) -> bool:
    return Grant.objects.filter(group=group, role=Role.DENY).exists() and group.user_set.exists()


class DocsGroupAdmin(GroupAdmin):
    def has_delete_permission(self, request: HttpRequest, obj: Group | None = None) -> bool:
        if obj is not None and _walls_members(obj):
            return False  # deleting it would lift its walls: lift them on the collections first
        return super().has_delete_permission(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Group]) -> None:
        for group in queryset:
            try:
                group.delete()
            except ValidationError as refused:
                messages.error(request, "; ".join(refused.messages))


admin.site.unregister(User)
admin.site.register(User, DocsUserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, DocsGroupAdmin)
