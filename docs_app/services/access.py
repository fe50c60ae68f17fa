"""Who may do what, computed from the DB on every call (a revoked grant bites on the next request).

Rules: a user's effective role on a collection is the highest role granted to them or any of their groups,
unless an ethical wall (a DENY grant on the user or any of their groups) exists, which overrides every grant.
Staff and superusers get no implicit access to documents: administering the system is not reading files.
Members of the Auditors group read no document at all, whatever grant row may exist (services.grants refuses
to create one; this holds for rows made before that, or behind its back).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import TYPE_CHECKING

from django.contrib.auth.models import Group, PermissionsMixin
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, Q, QuerySet

from docs_app.models import Answer, Chunk, Collection, Conversation, Document, Grant, Role
from docs_app.services.grants import AUDITORS_GROUP

if TYPE_CHECKING:
    from docs_app.services.actor import AnyUser


class Unreadable(Exception):
    """Absent, or not the user's to read: the two look the same, so an ID probe learns nothing. The web answers
    404 for it (docs_app.middleware.UnreadableMiddleware), exactly as for a page that does not exist."""


class Ability(IntEnum):
    READ = 1  # list, view, ask
    UPLOAD = 2  # also download the file, retry a failed ingestion
    MANAGE = 3  # delete, grant

ROLE_RANK = {Role.VIEWER: Ability.READ, Role.CONTRIBUTOR: Ability.UPLOAD, Role.MANAGER: Ability.MANAGE}


def _grants_of(user: AnyUser) -> QuerySet[Grant]:
    if not user.is_authenticated or not user.is_active:
        return Grant.objects.none()
    auditor = Group.objects.filter(name=AUDITORS_GROUP, user__id=user.pk)
    return Grant.objects.filter(Q(user_id=user.pk) | Q(group__user__id=user.pk)).exclude(Exists(auditor))


def user_reviews_audit_only(user: AnyUser) -> bool:
    """An auditor: reads the audit log and no document, so the library and Ask are nothing to them."""
    return (isinstance(user, PermissionsMixin) and user.is_authenticated and user.has_perm("docs_app.review_audit")
            and Group.objects.filter(name=AUDITORS_GROUP, user__id=user.pk).exists())


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
    """The collection if the user holds `ability` on it. Not-readable and absent look the same (Unreadable), so
    an ID probe learns nothing; readable but not permitted for this ability is a plain 403."""
    collection = collections_readable(user).filter(pk=collection_id).first()
    if collection is None:
        raise Unreadable("No such collection")
    held = collection_ability(user, collection)
    if held is None or held < ability:
        raise PermissionDenied("Your role on this collection does not allow that")
    return collection


def documents_readable(user: AnyUser) -> QuerySet[Document]:
    return Document.objects.filter(collection__in=collections_readable(user))


def document_get(user: AnyUser, document_id: int, ability: Ability = Ability.READ) -> Document:
    document = documents_readable(user).select_related("collection").filter(pk=document_id).first()
    if document is None:
        raise Unreadable("No such document")
    held = collection_ability(user, document.collection)
    if held is None or held < ability:
        raise PermissionDenied("Your role on this collection does not allow that")
    return document


def chunks_readable(user: AnyUser) -> QuerySet[Chunk]:
    return Chunk.objects.filter(document__collection__in=collections_readable(user))


def document_ids_readable(user: AnyUser, document_ids: Iterable[object]) -> set[int]:
    """Which of these ids name documents the user may read now (anything that is not an int is dropped: the ids
    come from stored JSON)."""
    ids = {d for d in document_ids if isinstance(d, int)}
    return set(documents_readable(user).filter(id__in=ids).values_list("id", flat=True))


# --- Conversations and answers belong to the person who asked -------------------------------------------

def conversation_get(user: AnyUser, conversation_id: int) -> Conversation:
    """The user's own conversation; someone else's looks exactly like a missing one."""
    conversation = Conversation.objects.filter(pk=conversation_id, owner_id=user.pk).first()
    if conversation is None:
        raise Unreadable("No such conversation")
    return conversation


def conversation_check_owner(user: AnyUser, conversation: Conversation) -> None:
    """For services handed a conversation object: only its owner asks in it."""
    if conversation.owner_id != user.pk:
        raise PermissionDenied("Not your conversation")


def answer_get(user: AnyUser, answer_id: int) -> Answer:
    """An answer to one of the user's own questions; any other looks exactly like a missing one."""
    answer = Answer.objects.filter(pk=answer_id, question__asked_by_id=user.pk).first()
    if answer is None:
        raise Unreadable("No such answer")
    return answer
