"""Group membership decides access as much as grants do (issue 10, item 1): every membership and permission
change is audited whoever makes it, and a change that would lift an ethical wall is refused until the wall is
lifted through its own audited path. Driven through the real Django admin."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import Client

from docs_app.models import AuditEvent, Document, Grant, Role
from docs_app.services.actor import Actor
from docs_app.services.audit import Action, audit_verify
from docs_app.services.grants import collection_create, grant_set, wall_remove, wall_set

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


@contextmanager
def _new_events(action: str) -> Iterator[list[AuditEvent]]:
    last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    found: list[AuditEvent] = []
    yield found
    found.extend(AuditEvent.objects.filter(id__gt=last, action=action).order_by("id"))


def _user_form(user: User, groups: list[Group], **flags: bool) -> dict[str, object]:
    joined = user.date_joined
    form: dict[str, object] = {
        "username": user.username, "first_name": "", "last_name": "", "email": "", "is_active": "on",
        "groups": [g.pk for g in groups], "user_permissions": [], "last_login_0": "", "last_login_1": "",
        "date_joined_0": joined.strftime("%Y-%m-%d"), "date_joined_1": joined.strftime("%H:%M:%S"),
    }
    form.update({name: "on" for name, on in flags.items() if on})
    return form


@pytest.fixture
def world() -> dict[str, object]:
    root = User.objects.create_superuser("root", password=PASSWORD)
    boss = User.objects.create_user("boss", password=PASSWORD)
    erin = User.objects.create_user("erin", password=PASSWORD)
    matter = collection_create(name="Matter A", actor=Actor(user=boss))
    firm, litigation = Group.objects.create(name="Firm"), Group.objects.create(name="Litigation")
    grant_set(collection=matter, role=Role.VIEWER, group=firm, actor=Actor(user=boss))
    wall_set(collection=matter, group=litigation, actor=Actor(user=boss))
    erin.groups.add(firm, litigation)
    document = Document.objects.create(collection=matter, title="Settlement", original_name="s.pdf",
                                       stored_name="s.pdf", sha256="aa" * 32, size_bytes=1)
    admin, reader = Client(), Client()
    admin.force_login(root)
    reader.force_login(erin)
    return {"root": root, "boss": boss, "erin": erin, "matter": matter, "firm": firm, "litigation": litigation,
            "document": document, "admin": admin, "reader": reader}


def test_an_admin_cannot_lift_a_group_wall_by_editing_membership(world) -> None:
    erin, firm, litigation = world["erin"], world["firm"], world["litigation"]
    admin, reader, url = world["admin"], world["reader"], f"/documents/{world['document'].pk}/"
    assert reader.get(url).status_code == 404

    with _new_events(Action.MEMBERSHIP_CHANGE) as events:
        response = admin.post(f"/admin/auth/user/{erin.pk}/change/", _user_form(erin, [firm]))
    assert response.status_code == 200 and "would lift an ethical wall" in response.content.decode()
    assert set(erin.groups.all()) == {firm, litigation} and events == []
    assert reader.get(url).status_code == 404
    # Nor from a shell, from either side of the relation, nor by deleting the group.
    for attempt in (lambda: erin.groups.remove(litigation), lambda: litigation.user_set.remove(erin),
                    lambda: erin.groups.clear(), lambda: erin.groups.set([firm]), litigation.delete):
        with pytest.raises(ValidationError), transaction.atomic():
            attempt()
    assert set(erin.groups.all()) == {firm, litigation}
    assert admin.get(f"/admin/auth/group/{litigation.pk}/delete/").status_code == 403

    # Lifting the wall is its own audited act; the membership change after it is an ordinary, audited one.
    wall_remove(grant=Grant.objects.get(group=litigation), actor=Actor(user=world["boss"]))
    with _new_events(Action.MEMBERSHIP_CHANGE) as events:
        assert admin.post(f"/admin/auth/user/{erin.pk}/change/", _user_form(erin, [firm])).status_code == 302
    assert [(e.actor_name, e.details["change"], e.details["group_name"]) for e in events] == [
        ("root", "removed", "Litigation")]
    assert reader.get(url).status_code == 200


def test_every_membership_and_permission_change_is_audited_with_who_made_it(world) -> None:
    root, firm, matter = world["root"], world["firm"], world["matter"]
    admin = world["admin"]
    with _new_events(Action.MEMBERSHIP_CHANGE) as joined:
        response = admin.post(f"/admin/auth/user/{root.pk}/change/",
                              _user_form(root, [firm], is_staff=True, is_superuser=True))
    assert response.status_code == 302
    assert len(joined) == 1
    event = joined[0]
    assert (event.actor_id, event.target_id, event.client_address) == (root.pk, str(root.pk), "127.0.0.1")
    assert event.details["change"] == "added" and event.details["group_id"] == firm.pk
    assert event.details["grants"] == [{"collection_id": matter.pk, "role": "viewer"}]

    review = Permission.objects.get(codename="review_audit")
    with _new_events(Action.PERMISSION_CHANGE) as granted:
        response = admin.post(f"/admin/auth/group/{firm.pk}/change/", {"name": "Firm", "permissions": [review.pk]})
    assert response.status_code == 302
    assert [(e.actor_name, e.details["change"], e.details["permissions"]) for e in granted] == [
        ("root", "added", ["docs_app.review_audit"])]

    # Outside a request (a shell, a command) the change is still recorded, as made by no one in particular.
    erin = world["erin"]
    with _new_events(Action.MEMBERSHIP_CHANGE) as left:
        firm.user_set.remove(erin)
    assert [(e.actor_name, e.details["change"], e.details["user_name"]) for e in left] == [("", "removed", "erin")]
    assert left[0].details["via"].startswith("no request")
    with _new_events(Action.PERMISSION_CHANGE) as direct:
        erin.user_permissions.add(review)
    assert [e.details["principal_name"] for e in direct] == ["erin"]
    assert audit_verify().ok
