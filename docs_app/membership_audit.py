"""Signal receivers that route every group-membership and permission change, however it is made, through
services.membership (connected in DocsAppConfig.ready). Adds are recorded once they happened (post_add carries
only the rows really inserted); removals before they happen, inside the same transaction, so a refused removal
leaves neither the change nor its event."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Model
from django.db.models.signals import m2m_changed, pre_delete

from docs_app.services.membership import (
    group_delete_check_and_record,
    membership_record,
    permissions_record,
    wall_lift_refusal,
    walls_lifted_by_leaving,
)

_CHANGE = {"post_add": "added", "pre_remove": "removed", "pre_clear": "removed"}


def _pairs(instance: Model, reverse: bool, pk_set: set[int] | None, action: str,
           through: Any, left: str, right: str) -> list[tuple[int, int]]:
    """(left id, right id) rows the change touches: for removals only rows that exist."""
    if reverse:
        pairs = [(pk, instance.pk) for pk in pk_set or ()]
        rows = through.objects.filter(**{right: instance.pk})
    else:
        pairs = [(instance.pk, pk) for pk in pk_set or ()]
        rows = through.objects.filter(**{left: instance.pk})
    if action == "post_add":
        return pairs
    existing = set(rows.values_list(left, right))
    return sorted(existing) if action == "pre_clear" else [p for p in pairs if p in existing]


def _by_first(pairs: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    grouped: dict[int, list[int]] = {}
    for first, second in pairs:
        grouped.setdefault(first, []).append(second)
    return grouped


def on_user_groups_changed(sender: Any, instance: Model, action: str, reverse: bool, pk_set: set[int] | None,
                           **kwargs: Any) -> None:
    if action not in _CHANGE:
        return
    users = get_user_model()
    for user_id, group_ids in _by_first(_pairs(instance, reverse, pk_set, action, sender, "user_id",
                                               "group_id")).items():
        username = users.objects.filter(pk=user_id).values_list(users.USERNAME_FIELD, flat=True).first() or ""
        if _CHANGE[action] == "removed":
            lifted = walls_lifted_by_leaving(user_id=user_id, group_ids=group_ids)
            if lifted:
                raise wall_lift_refusal(username=username, lifted=lifted)
        membership_record(change=_CHANGE[action], user_id=user_id, username=username, group_ids=group_ids)


def on_group_permissions_changed(sender: Any, instance: Model, action: str, reverse: bool,
                                 pk_set: set[int] | None, **kwargs: Any) -> None:
    if action not in _CHANGE:
        return
    names = dict(Group.objects.values_list("id", "name"))
    for group_id, permission_ids in _by_first(_pairs(instance, reverse, pk_set, action, sender, "group_id",
                                                     "permission_id")).items():
        permissions_record(change=_CHANGE[action], principal_type="group", principal_id=group_id,
                           principal_name=names.get(group_id, ""), permission_ids=permission_ids)


def on_user_permissions_changed(sender: Any, instance: Model, action: str, reverse: bool,
                                pk_set: set[int] | None, **kwargs: Any) -> None:
    if action not in _CHANGE:
        return
    users = get_user_model()
    for user_id, permission_ids in _by_first(_pairs(instance, reverse, pk_set, action, sender, "user_id",
                                                    "permission_id")).items():
        username = users.objects.filter(pk=user_id).values_list(users.USERNAME_FIELD, flat=True).first() or ""
        permissions_record(change=_CHANGE[action], principal_type="user", principal_id=user_id,
                           principal_name=username, permission_ids=permission_ids)


def on_group_delete(sender: Any, instance: Group, **kwargs: Any) -> None:
    group_delete_check_and_record(group=instance)


def connect() -> None:
    users = get_user_model()
    m2m_changed.connect(on_user_groups_changed, sender=users.groups.through, dispatch_uid="docs_audit_groups")
    m2m_changed.connect(on_group_permissions_changed, sender=Group.permissions.through,
                        dispatch_uid="docs_audit_group_permissions")
    m2m_changed.connect(on_user_permissions_changed, sender=users.user_permissions.through,
                        dispatch_uid="docs_audit_user_permissions")
    pre_delete.connect(on_group_delete, sender=Group, dispatch_uid="docs_audit_group_delete")
