"""Group membership and permissions: who may see what through groups (services.access), audited whoever
changes it (issue 10, item 1).

Access flows through group membership as much as through grants, so a membership change is an access change:
- every change of User.groups, Group.permissions and User.user_permissions writes an audit event, whether it
  comes from the Django admin, the app or a shell (docs_app.membership_audit connects the signals);
- removing a user from a group that carries an ethical wall would lift that wall for them without the
  separately audited act that lifting a wall is (services.grants.wall_remove). It is refused, as is deleting
  a group that walls anyone off: lift the wall first on the collection's access page (or put a wall on the
  person themselves, then move them), and the membership change is then an ordinary one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.db.models import Q

from docs_app.models import Grant, Role
from docs_app.services.actor import SYSTEM, actor_current
from docs_app.services.audit import Action, audit_record


def walls_lifted_by_leaving(*, user_id: int, group_ids: Iterable[int]) -> dict[int, list[int]]:
    """{group id: [collection ids]} for the walls that leaving these groups would lift for this user: walls
    the group carries and the user does not also stand behind in person or through a group they keep."""
    leaving = set(group_ids)
    walls = Grant.objects.filter(role=Role.DENY, group_id__in=leaving).values_list("group_id", "collection_id")
    if not walls:
        return {}
    kept_groups = Group.objects.filter(user__id=user_id).exclude(id__in=leaving).values("id")
    still_walled = set(Grant.objects.filter(role=Role.DENY).filter(
        Q(user_id=user_id) | Q(group_id__in=kept_groups)).values_list("collection_id", flat=True))
    lifted: dict[int, list[int]] = {}
    for group_id, collection_id in walls:
        if collection_id not in still_walled:
            lifted.setdefault(group_id, []).append(collection_id)
    return lifted


def wall_lift_refusal(*, username: str, lifted: dict[int, list[int]]) -> ValidationError:
    names = dict(Group.objects.filter(id__in=lifted).values_list("id", "name"))
    parts = [f"group “{names.get(g, g)}” walls them off collection(s) {', '.join(f'#{c}' for c in sorted(cs))}"
             for g, cs in sorted(lifted.items())]
    return ValidationError(
        f"Removing {username} from that group would lift an ethical wall ({'; '.join(parts)}). Lift the wall "
        "on the collection's access page first (that is audited as a wall change), or wall the person "
        "individually before moving them.")


def _group_access(group_id: int) -> dict[str, list[Any]]:
    rows = Grant.objects.filter(group_id=group_id).values_list("collection_id", "role").order_by("collection_id")
    return {"grants": [{"collection_id": c, "role": r} for c, r in rows if r != Role.DENY],
            "walls": [c for c, r in rows if r == Role.DENY]}


def _record(*, action: str, target_type: str, target_id: int, details: dict[str, Any]) -> None:
    current = actor_current()
    if current is None:
        details = {**details, "via": "no request (shell, command or migration)"}
    audit_record(action=action, actor=current or SYSTEM, target_type=target_type, target_id=target_id,
                 details=details)


def membership_record(*, change: str, user_id: int, username: str, group_ids: Iterable[int]) -> None:
    """One event per (user, group) pair, with what the group grants and walls at the time."""
    names = dict(Group.objects.filter(id__in=set(group_ids)).values_list("id", "name"))
    for group_id in sorted(set(group_ids)):
        _record(action=Action.MEMBERSHIP_CHANGE, target_type="user", target_id=user_id,
                details={"change": change, "user_id": user_id, "user_name": username, "group_id": group_id,
                         "group_name": names.get(group_id, ""), **_group_access(group_id)})


def permissions_record(*, change: str, principal_type: str, principal_id: int, principal_name: str,
                       permission_ids: Iterable[int]) -> None:
    codes = sorted(f"{app}.{code}" for app, code in Permission.objects.filter(id__in=set(permission_ids))
                   .values_list("content_type__app_label", "codename"))
    if codes:
        _record(action=Action.PERMISSION_CHANGE, target_type=principal_type, target_id=principal_id,
                details={"change": change, "principal_type": principal_type, "principal_id": principal_id,
                         "principal_name": principal_name, "permissions": codes})


def group_delete_check_and_record(*, group: Group) -> None:
    """Before a group is deleted: refuse if it walls anyone off, else record what it granted and to whom."""
    access = _group_access(group.pk)
    members = list(group.user_set.values_list("id", flat=True))
    if access["walls"] and members:
        raise ValidationError(
            f"Group “{group.name}” walls its members off collection(s) "
            f"{', '.join(f'#{c}' for c in access['walls'])}: lift those walls first.")
    _record(action=Action.GROUP_DELETE, target_type="group", target_id=group.pk,
            details={"group_id": group.pk, "group_name": group.name, "members": members, **access})
