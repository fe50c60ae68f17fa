"""Writes on who may see what: collections, grants, ethical walls, and the built-in roles. Every change is
audited here, whoever makes it (views, Django admin, commands), so the log cannot be bypassed by a UI.

A principal (one user or one group) holds at most one Grant row per collection (a DB constraint), and an
ethical wall is that row with role DENY. So walling a principal replaces its grant, and `grant_set` refuses
to lift a wall: lifting one is a deliberate, separately audited act (`wall_remove`).

A change that would leave a managed collection with no one able to manage it is refused: nobody could grant
access to it any more (issue 4).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from docs_app.models import Collection, Grant, Role
from docs_app.services.actor import Actor
from docs_app.services.audit import Action, audit_record

if TYPE_CHECKING:
    from django.contrib.auth.models import User

AUDITORS_GROUP = "Auditors"
GRANTABLE_ROLES = (Role.VIEWER, Role.CONTRIBUTOR, Role.MANAGER)


def _principal(user: User | None, group: Group | None) -> dict[str, object]:
    if (user is None) == (group is None):
        raise ValidationError("A grant names exactly one user or one group.")
    return {"user": user, "group": None} if user is not None else {"user": None, "group": group}


def _principal_label(grant_or_kwargs: Grant | dict[str, object]) -> dict[str, object]:
    """IDs plus the name at the time: the user or group may be renamed or removed later."""
    if isinstance(grant_or_kwargs, Grant):
        user, group = grant_or_kwargs.user, grant_or_kwargs.group
    else:
        user, group = grant_or_kwargs["user"], grant_or_kwargs["group"]  # type: ignore[assignment]
    if user is not None:
        return {"principal_type": "user", "principal_id": user.pk, "principal_name": user.get_username()}
    assert group is not None
    return {"principal_type": "group", "principal_id": group.pk, "principal_name": group.name}


def _record(*, action: str, collection: Collection, actor: Actor, principal: dict[str, object], role: str | None,
            previous: str | None) -> None:
    audit_record(action=action, actor=actor, target_type="collection",
                 target_id=collection.pk, collection_id=collection.pk,
                 details={**principal, "role": role, "previous_role": previous})


def _is_auditor(*, user: User | None, group: Group | None) -> bool:
    if group is not None:
        return group.name == AUDITORS_GROUP
    return user is not None and user.groups.filter(name=AUDITORS_GROUP).exists()


def _has_a_manager(collection: Collection) -> bool:
    """The rule of services.access, asked of the whole collection: an active user holding the manager role
    (their own or a group's) and no wall (their own or a group's)."""
    grants = Grant.objects.filter(collection=collection)
    managing, walls = grants.filter(role=Role.MANAGER), grants.filter(role=Role.DENY)
    # The NULL principal ids are filtered out: `NOT IN (..., NULL)` would match no one.
    return get_user_model().objects.filter(is_active=True).filter(
        Q(pk__in=managing.filter(user__isnull=False).values("user_id"))
        | Q(groups__in=managing.filter(group__isnull=False).values("group_id"))
    ).exclude(pk__in=walls.filter(user__isnull=False).values("user_id")).exclude(
        groups__in=walls.filter(group__isnull=False).values("group_id")).exists()


@contextmanager
def _keeps_a_manager(collection: Collection) -> Iterator[None]:
    """Wrap a change inside the caller's transaction: raising here undoes the change and its audit event. The
    collection row is locked first, so two managers demoting each other at once cannot both succeed. A
    collection that had no manager already (its last one left the firm) stays fixable by an administrator."""
    Collection.objects.select_for_update().get(pk=collection.pk)
    had_one = _has_a_manager(collection)
    yield
    if had_one and not _has_a_manager(collection):
        raise ValidationError("That would leave no one able to manage this collection; "
                              "give someone else the manager role first.")


def collection_create(*, name: str, actor: Actor, description: str = "") -> Collection:
    """The creator becomes the collection's manager: someone must be able to grant access to it."""
    created_by = actor.account
    if created_by is None:
        raise ValidationError("A collection is created by a signed-in user, who becomes its manager.")
    with transaction.atomic():
        collection = Collection.objects.create(name=name, description=description, created_by=created_by)
        Grant.objects.create(collection=collection, user=created_by, role=Role.MANAGER)
        audit_record(action=Action.COLLECTION_CREATE, actor=actor, target_type="collection",
                     target_id=collection.pk, collection_id=collection.pk,
                     details={"manager": created_by.get_username()})
    return collection


def grant_set(*, collection: Collection, role: str, actor: Actor,
              user: User | None = None, group: Group | None = None) -> Grant:
    """Give a principal a role on the collection, replacing its current role."""
    if role not in GRANTABLE_ROLES:
        raise ValidationError(f"{role!r} is not a grantable role; walls are set with wall_set.")
    who = _principal(user, group)
    if _is_auditor(user=user, group=group):
        raise ValidationError("Auditors review the audit log and read no document: they cannot be granted a role "
                              "on a collection.")
    with transaction.atomic(), _keeps_a_manager(collection):
        grant = Grant.objects.select_for_update().filter(collection=collection, **who).first()
        previous = grant.role if grant is not None else None
        if previous == Role.DENY:
            raise ValidationError("An ethical wall stands between this principal and the collection; "
                                  "remove the wall first.")
        if previous == role:
            assert grant is not None
            return grant  # nothing changed, nothing to record
        if grant is None:
            grant = Grant.objects.create(collection=collection, role=role, **who)
        else:
            grant.role = role
            grant.save(update_fields=["role"])
        _record(action=Action.GRANT_CHANGE, collection=collection, actor=actor,
                principal=_principal_label(who), role=role, previous=previous)
    return grant


def grant_revoke(*, grant: Grant, actor: Actor) -> None:
    if grant.role == Role.DENY:
        raise ValidationError("That is an ethical wall; remove it with wall_remove.")
    with transaction.atomic(), _keeps_a_manager(grant.collection):
        deleted, _ = Grant.objects.filter(pk=grant.pk, role=grant.role).delete()
        if deleted:
            _record(action=Action.GRANT_CHANGE, collection=grant.collection, actor=actor,
                    principal=_principal_label(grant), role=None, previous=grant.role)


def wall_set(*, collection: Collection, actor: Actor, user: User | None = None,
             group: Group | None = None) -> Grant:
    """Put an ethical wall between a principal and the collection. It replaces the principal's own grant
    and overrides every grant it holds through groups (see services.access)."""
    who = _principal(user, group)
    with transaction.atomic(), _keeps_a_manager(collection):
        grant = Grant.objects.select_for_update().filter(collection=collection, **who).first()
        previous = grant.role if grant is not None else None
        if previous == Role.DENY:
            assert grant is not None
            return grant
        if grant is None:
            grant = Grant.objects.create(collection=collection, role=Role.DENY, **who)
        else:
            grant.role = Role.DENY
            grant.save(update_fields=["role"])
        _record(action=Action.WALL_CHANGE, collection=collection, actor=actor,
                principal=_principal_label(who), role=Role.DENY, previous=previous)
    return grant


def wall_remove(*, grant: Grant, actor: Actor) -> None:
    """Lift a wall. The principal is left with no role of its own: access is granted again explicitly."""
    if grant.role != Role.DENY:
        raise ValidationError("That is a grant, not an ethical wall.")
    with transaction.atomic():
        deleted, _ = Grant.objects.filter(pk=grant.pk, role=Role.DENY).delete()
        if deleted:
            _record(action=Action.WALL_CHANGE, collection=grant.collection, actor=actor,
                    principal=_principal_label(grant), role=None, previous=Role.DENY)


def roles_ensure(*, using: str = "default") -> Group:
    """The auditor role: reads and exports the audit log, holds no grant, so it reads no document."""
    group, _ = Group.objects.using(using).get_or_create(name=AUDITORS_GROUP)
    permission = Permission.objects.using(using).filter(
        content_type__app_label="docs_app", codename="review_audit").first()
    if permission is not None:  # absent only before docs_app's permissions exist (first migrate, mid-way)
        # Through the link table, not group.permissions.add: the built-in role is code, restored on every
        # migrate (and test-database flush) without an audit event; a change a person makes is audited
        # (services.membership).
        Group.permissions.through.objects.using(using).get_or_create(group=group, permission=permission)
    return group
