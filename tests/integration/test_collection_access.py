"""Creating collections and managing their access in the app (issue 4): who may create, the manager's access
page (404 for outsiders, 403 below manager), grants and walls through services.grants with one audit event
each, grant ids checked against the collection in the URL, the last manager kept, and CSRF on every form."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.test import Client

from docs_app.models import Collection, Grant, Role
from docs_app.services.actor import Actor
from docs_app.services.audit import Action
from docs_app.services.grants import collection_create, grant_set, wall_set
from tests.harness import logged_in, make_user, new_events

pytestmark = pytest.mark.django_db


def _user(name: str, *, can_create: bool = False, staff: bool = False) -> User:
    user = make_user(name, is_staff=staff)
    if can_create:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="docs_app",
                                                         codename="add_collection"))
    return user


def _roles(collection: Collection) -> dict[str, str]:
    return {str(grant.user or grant.group): grant.role
            for grant in Grant.objects.filter(collection=collection).select_related("user", "group")}


@pytest.fixture
def boss() -> User:
    return _user("boss")


@pytest.fixture
def matter(boss: User) -> Collection:
    return collection_create(name="Matter 7", actor=Actor(boss))


def _access(collection: Collection) -> str:
    return f"/collections/{collection.pk}/access/"


# --- Creating collections -------------------------------------------------------------------------------------

def test_only_holders_of_the_add_permission_or_staff_may_create_collections() -> None:
    plain = logged_in(_user("clerk"))
    assert plain.get("/collections/new/").status_code == 403
    assert plain.post("/collections/new/", {"name": "Sneaky"}).status_code == 403
    assert not Collection.objects.exists()
    assert "New collection" not in plain.get("/").content.decode()
    assert "An administrator or a collection manager can give you access" in plain.get("/").content.decode()

    for who in (_user("partner", can_create=True), _user("it", staff=True)):
        client = logged_in(who)
        library = client.get("/").content.decode()
        assert 'href="/collections/new/"' in library and "Create one" in library
        assert client.get("/collections/new/").status_code == 200
    assert Client().get("/collections/new/").status_code == 302  # to the login page


def test_the_creator_becomes_manager_and_the_creation_is_audited_once() -> None:
    partner = _user("partner", can_create=True)
    client = logged_in(partner)
    with new_events() as events:
        response = client.post("/collections/new/", {"name": " Smith v Jones ", "description": "Merger"})
    collection = Collection.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/collections/{collection.pk}/"
    assert (collection.name, collection.description, collection.created_by) == ("Smith v Jones", "Merger", partner)
    assert _roles(collection) == {"partner": Role.MANAGER}
    assert [e.action for e in events] == [Action.COLLECTION_CREATE]
    page = client.get(f"/collections/{collection.pk}/").content.decode()
    assert "you manage it" in page and f'href="/collections/{collection.pk}/access/"' in page


def test_a_duplicate_name_is_a_clear_form_error(matter: Collection) -> None:
    client = logged_in(_user("partner", can_create=True))
    with new_events() as events:
        response = client.post("/collections/new/", {"name": "matter 7", "description": ""})
    assert response.status_code == 200
    assert "A collection named “matter 7” already exists. Choose another name." in response.content.decode()
    assert Collection.objects.count() == 1 and events == []


# --- The access page --------------------------------------------------------------------------------------------

def test_the_access_page_is_for_managers_only(matter: Collection, boss: User) -> None:
    viewer, contributor, stranger = _user("viewer"), _user("contributor"), _user("stranger", staff=True)
    grant_set(collection=matter, role=Role.VIEWER, user=viewer, actor=Actor(boss))
    grant_set(collection=matter, role=Role.CONTRIBUTOR, user=contributor, actor=Actor(boss))
    url = _access(matter)
    for who, code in [(viewer, 403), (contributor, 403), (stranger, 404)]:
        client = logged_in(who)
        assert client.get(url).status_code == code, who
        assert client.post(url, {"action": "grant", "grant-kind": "user", "grant-name": who.username,
                                 "grant-role": "manager"}).status_code == code, who
        assert "Manage access" not in client.get(f"/collections/{matter.pk}/").content.decode()
    assert logged_in(boss).get("/collections/999/access/").status_code == 404
    page = logged_in(boss).get(url)
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('class="grant-row"') == 3 and "(you)" in html and "Contributor (also upload)" in html
    assert _roles(matter) == {"boss": Role.MANAGER, "viewer": Role.VIEWER, "contributor": Role.CONTRIBUTOR}


def test_grant_revoke_wall_and_lift_each_write_one_audit_event(matter: Collection, boss: User) -> None:
    clerk = _user("clerk")
    litigation = Group.objects.create(name="Litigation")
    client, url = logged_in(boss), _access(matter)

    def post(data: dict[str, str], action: str) -> None:
        with new_events() as events:
            response = client.post(url, data)
        assert response.status_code == 302 and response["Location"] == url, data
        assert [e.action for e in events] == [action], data
        assert events[0].actor == boss and events[0].collection_id_ref == matter.pk

    post({"action": "grant", "grant-kind": "user", "grant-name": "clerk", "grant-role": "contributor"},
         Action.GRANT_CHANGE)
    post({"action": "grant", "grant-kind": "group", "grant-name": "Litigation", "grant-role": "viewer"},
         Action.GRANT_CHANGE)
    assert _roles(matter) == {"boss": Role.MANAGER, "clerk": Role.CONTRIBUTOR, "Litigation": Role.VIEWER}
    post({"action": "revoke", "grant": str(Grant.objects.get(group=litigation).pk)}, Action.GRANT_CHANGE)
    post({"action": "wall", "wall-kind": "user", "wall-name": "clerk"}, Action.WALL_CHANGE)
    assert _roles(matter) == {"boss": Role.MANAGER, "clerk": Role.DENY}
    html = client.get(url).content.decode()
    assert html.count('class="wall-row"') == 1 and html.count('class="grant-row"') == 1
    post({"action": "unwall", "grant": str(Grant.objects.get(user=clerk).pk)}, Action.WALL_CHANGE)
    assert _roles(matter) == {"boss": Role.MANAGER}


def test_unknown_names_and_a_standing_wall_are_form_errors(matter: Collection, boss: User) -> None:
    client, url = logged_in(boss), _access(matter)
    with new_events() as events:
        nobody = client.post(url, {"action": "grant", "grant-kind": "user", "grant-name": "ghost",
                                   "grant-role": "viewer"})
        no_group = client.post(url, {"action": "wall", "wall-kind": "group", "wall-name": "Ghosts"})
    assert nobody.status_code == 200 and "No user is called “ghost”." in nobody.content.decode()
    assert no_group.status_code == 200 and "No group is called “Ghosts”." in no_group.content.decode()
    assert events == [] and _roles(matter) == {"boss": Role.MANAGER}

    wall_set(collection=matter, user=_user("walled"), actor=Actor(boss))
    refused = client.post(url, {"action": "grant", "grant-kind": "user", "grant-name": "walled",
                                "grant-role": "viewer"})
    assert "remove the wall first" in refused.content.decode()
    assert _roles(matter)["walled"] == Role.DENY
    assert client.post(url, {"action": "erase"}).status_code == 400
    assert client.post(url, {}).status_code == 400


def test_a_wall_on_a_user_overrides_their_group_grant_on_the_next_request(matter: Collection,
                                                                           boss: User) -> None:
    clerk = _user("clerk")
    clerk.groups.add(Group.objects.create(name="Litigation"))
    grant_set(collection=matter, role=Role.CONTRIBUTOR, group=clerk.groups.get(), actor=Actor(boss))
    walled = logged_in(clerk)
    assert walled.get(f"/collections/{matter.pk}/").status_code == 200
    logged_in(boss).post(_access(matter), {"action": "wall", "wall-kind": "user", "wall-name": "clerk"})
    assert walled.get(f"/collections/{matter.pk}/").status_code == 404
    assert "Matter 7" not in walled.get("/").content.decode()
    assert _roles(matter)["Litigation"] == Role.CONTRIBUTOR  # the group grant stands; the wall overrides it


def test_a_grant_id_from_another_collection_is_a_404_and_changes_nothing(matter: Collection,
                                                                         boss: User) -> None:
    other_owner, clerk = _user("other_owner"), _user("clerk")
    other = collection_create(name="Other matter", actor=Actor(other_owner))
    foreign_grant = grant_set(collection=other, role=Role.VIEWER, user=clerk, actor=Actor(other_owner))
    foreign_wall = wall_set(collection=other, user=_user("screened"), actor=Actor(other_owner))
    own_wall = wall_set(collection=matter, user=clerk, actor=Actor(boss))
    client, url = logged_in(boss), _access(matter)
    before = _roles(other)
    with new_events() as events:
        codes = [client.post(url, {"action": "revoke", "grant": str(foreign_grant.pk)}).status_code,
                 client.post(url, {"action": "unwall", "grant": str(foreign_wall.pk)}).status_code,
                 # the right collection but the wrong kind: a wall is not revoked as a grant, nor the reverse
                 client.post(url, {"action": "revoke", "grant": str(own_wall.pk)}).status_code,
                 client.post(url, {"action": "unwall", "grant": str(Grant.objects.get(user=boss).pk)}).status_code,
                 client.post(url, {"action": "revoke", "grant": "not a number"}).status_code]
    assert codes == [404] * 5
    assert events == [] and _roles(other) == before
    assert _roles(matter) == {"boss": Role.MANAGER, "clerk": Role.DENY}


def test_the_last_manager_cannot_be_removed_demoted_or_walled(matter: Collection, boss: User) -> None:
    client, url = logged_in(boss), _access(matter)
    own = str(Grant.objects.get(user=boss).pk)
    message = "That would leave no one able to manage this collection"
    with new_events() as events:
        revoked = client.post(url, {"action": "revoke", "grant": own}, follow=True)
        demoted = client.post(url, {"action": "grant", "grant-kind": "user", "grant-name": "boss",
                                    "grant-role": "viewer"})
        walled = client.post(url, {"action": "wall", "wall-kind": "user", "wall-name": "boss"})
    for response in (revoked, demoted, walled):
        assert message in response.content.decode()
    assert events == [] and _roles(matter) == {"boss": Role.MANAGER}

    # A manager through a group counts, unless a wall on one of their groups cuts them off.
    partners, everyone = Group.objects.create(name="Partners"), Group.objects.create(name="Everyone")
    boss.groups.add(everyone)
    deputy = _user("deputy")
    deputy.groups.add(partners, everyone)
    grant_set(collection=matter, role=Role.MANAGER, group=partners, actor=Actor(boss))
    walled_everyone = client.post(url, {"action": "wall", "wall-kind": "group", "wall-name": "Everyone"})
    assert message in walled_everyone.content.decode() and "Everyone" not in _roles(matter)

    # With the deputy managing through the group, the boss may step down; the page then sends them away.
    with new_events() as events:
        response = client.post(url, {"action": "revoke", "grant": own})
    assert [e.action for e in events] == [Action.GRANT_CHANGE]
    assert response.status_code == 302 and response["Location"] == "/"
    assert _roles(matter) == {"Partners": Role.MANAGER}
    assert logged_in(deputy).get(url).status_code == 200


def test_every_form_needs_the_csrf_token(matter: Collection, boss: User) -> None:
    creator = _user("partner", can_create=True)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(creator)
    assert strict.post("/collections/new/", {"name": "Forged"}).status_code == 403
    strict.force_login(boss)
    url = _access(matter)
    own = str(Grant.objects.get(user=boss).pk)
    for data in [{"action": "grant", "grant-kind": "user", "grant-name": "partner", "grant-role": "manager"},
                 {"action": "wall", "wall-kind": "user", "wall-name": "partner"},
                 {"action": "revoke", "grant": own}]:
        assert strict.post(url, data).status_code == 403
    assert not Collection.objects.filter(name="Forged").exists() and _roles(matter) == {"boss": Role.MANAGER}
    # The page itself carries the token in every form it renders.
    html = strict.get(url).content.decode()
    assert html.count("<form") == html.count('name="csrfmiddlewaretoken"') == 4  # with the logout form


def test_a_colleague_is_picked_by_full_name_and_an_ambiguous_name_is_refused(matter: Collection, boss: User) -> None:
    """Issue 12, point 8: people know each other by name, not by user name; the picker lists active colleagues."""
    client, url = logged_in(boss), _access(matter)
    make_user("pat", first_name="Pat", last_name="Paralegal")
    make_user("sam1", first_name="Sam", last_name="Smith")
    make_user("sam2", first_name="Sam", last_name="Smith")
    make_user("old", first_name="Old", last_name="Timer", is_active=False)
    page = client.get(url).content.decode()
    assert '<option value="pat">Pat Paralegal (user)</option>' in page and "Old Timer" not in page
    for typed in ("Pat Paralegal", "pat paralegal", "Pat Paralegal (user)", "PAT"):
        client.post(url, {"action": "grant", "grant-kind": "user", "grant-name": typed, "grant-role": "viewer"})
        assert _roles(matter).get("pat") == Role.VIEWER, typed
        Grant.objects.filter(user__username="pat").delete()
    refused = client.post(url, {"action": "grant", "grant-kind": "user", "grant-name": "Sam Smith",
                                "grant-role": "viewer"}).content.decode()
    assert 'class="errorlist' in refused and "No user is called “Sam Smith”" in refused
    assert "sam1" not in _roles(matter) and "sam2" not in _roles(matter)
