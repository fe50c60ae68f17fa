"""Who may do what, computed from the DB on every call (a revoked grant bites on the next request).

Rules: a user's effective role on a collection is the highest role granted to them or any of their groups,
unless an ethical wall (a DENY grant on the user or any of their groups) exists, which overrides every grant.
Staff and superusers get no implicit access to documents: administering the system is not reading files.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from docs_app.models import Chunk, Collection, Document, Grant, Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    AnyUser = AbstractBaseUser | AnonymousUser


class Ability(IntEnum):
    READ = 1  # list, view, ask
    UPLOAD = 2  # also download the file, retry a failed ingestion
    MANAGE = 3  # delete, grant

ROLE_RANK = {Role.VIEWER: Ability.READ, Role.CONTRIBUTOR: Ability.UPLOAD, Role.MANAGER: Ability.MANAGE}


def _grants_of(user: AnyUser) -> QuerySet[Grant]:
    if not user.is_authenticated or not user.is_active:
        return Grant.objects.none()
    return Grant.objects.filter(Q(user_id=user.pk) | Q(group__user__id=user.pk))


def collections_with(user: AnyUser, ability: Ability) -> QuerySet[Collection]:
    grants = _grants_of(user)
    walled = grants.filter(role=Role.DENY).values("collection_id")
    roles = [role for role, rank in ROLE_RANK.items() if rank >= ability]
    allowed = grants.filter(role__in=roles).values("collection_id")
    return Collection.objects.filter(id__in=allowed).exclude(id__in=walled)


def collections_readable(user: AnyUser) -> QuerySet[Collection]:
    return collections_with(user, Ability.READ)


def collection_ability(user: AnyUser, collection: Collection) -> Ability | None:
    roles = set(_grants_of(user).filter(collection=collection).values_list("role", flat=True))
    if Role.DENY in roles or not roles:
        return None
    return max(ROLE_RANK[Role(role)] for role in roles)


def collection_get(user: AnyUser, collection_id: int, ability: Ability = Ability.READ) -> Collection:
    """The collection if the user holds `ability` on it. Not-readable and absent look the same (404), so an ID
    probe learns nothing; readable but not permitted for this ability is a plain 403."""
    collection = collections_readable(user).filter(pk=collection_id).first()
    if collection is None:
        raise Http404("No such collection")
    held = collection_ability(user, collection)
    if held is None or held < ability:
        raise PermissionDenied("Your role on this collection does not allow that")
    return collection


def documents_readable(user: AnyUser) -> QuerySet[Document]:
    return Document.objects.filter(collection__in=collections_readable(user))


def document_get(user: AnyUser, document_id: int, ability: Ability = Ability.READ) -> Document:
    document = documents_readable(user).select_related("collection").filter(pk=document_id).first()
    if document is None:
        raise Http404("No such document")
    held = collection_ability(user, document.collection)
    if held is None or held < ability:
        raise PermissionDenied("Your role on this collection does not allow that")
    return document


def chunks_readable(user: AnyUser) -> QuerySet[Chunk]:
    return Chunk.objects.filter(document__collection__in=collections_readable(user))
